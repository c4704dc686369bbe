package dctest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
	"github.com/planb-chat/planb/jetstream"
)

// partitionOf places a room as the engine does (the dev cluster runs the
// default partition count).
func partitionOf(room id.RoomID) int {
	return jetstream.PartitionOf(string(room), jetstream.DefaultPartitions)
}

// TestRTOSeries measures recovery over many data-center losses: each round
// SIGKILLs one data center under load, measures per room and per partition
// the longest gap between acknowledged writes, checks RPO = 0 on the
// survivors, and restarts the data center. It runs only when
// PLANB_RTO_KILLS is set (a measurement, not a CI test):
//
//	PLANB_RTO_KILLS=10 go test ./dctest -run TestRTOSeries -v -timeout 60m
func TestRTOSeries(t *testing.T) {
	kills, _ := strconv.Atoi(os.Getenv("PLANB_RTO_KILLS"))
	if kills <= 0 {
		t.Skip("set PLANB_RTO_KILLS=N to measure RTO over N data-center losses")
	}
	c := startCluster(t)
	w := setup(t, c, 6, 16)
	var roomGaps, partGaps []time.Duration
	smooth, total := 0, 0
	for k := 0; k < kills; k++ {
		victim := c.names()[k%3]
		// Start every round from evenly spread leaders, as an operator does
		// after a data center returns (planb admin rebalance).
		c.rebalance()
		lctx, stop := context.WithCancel(context.Background())
		l := w.start(lctx, 500*time.Millisecond)
		waitAcks(t, l, 150, "load before the loss")
		led := c.ledPartitions(victim)
		killAt := time.Now()
		c.signal(victim, syscall.SIGKILL)
		testutil.WaitFor(t, 90*time.Second, "every room accepts writes after the loss", func() error {
			acks, _ := l.snapshot()
			after := map[id.RoomID]bool{}
			for _, a := range acks {
				if a.at.After(killAt.Add(12 * time.Second)) {
					after[a.room] = true
				}
			}
			if len(after) < len(w.rooms) {
				return fmt.Errorf("%d of %d rooms have writes 12 s after the loss", len(after), len(w.rooms))
			}
			return nil
		})
		stop()
		l.wait()
		acks, errs := l.snapshot()
		end := killAt.Add(12 * time.Second)
		g := gaps(acks, w.rooms, killAt, end)
		byPart := map[int]time.Duration{}
		for room, d := range g {
			roomGaps = append(roomGaps, d)
			total++
			if d < time.Second {
				smooth++
			}
			byPart[partitionOf(room)] = max(byPart[partitionOf(room)], d)
		}
		for _, d := range byPart {
			partGaps = append(partGaps, d)
		}
		var worst time.Duration
		for _, d := range g {
			worst = max(worst, d)
		}
		var ledWorst time.Duration
		ledRooms := 0
		for room, d := range g {
			if led[partitionOf(room)] {
				ledRooms++
				ledWorst = max(ledWorst, d)
			}
		}
		t.Logf("kill %d (%s, leading partitions %v): longest per-room gap %v (in its %d rooms: %v); rooms without interruption %d/%d; client errors %v",
			k+1, victim, sortedKeys(led), worst.Round(time.Millisecond), ledRooms, ledWorst.Round(time.Millisecond),
			countBelow(g, time.Second), len(g), errs)
		survivors := []string{}
		for _, n := range c.names() {
			if n != victim {
				survivors = append(survivors, n)
			}
		}
		verify(t, c, w, acks, survivors...)
		c.restart(victim)
	}
	slices.Sort(roomGaps)
	slices.Sort(partGaps)
	q := func(ds []time.Duration, p float64) time.Duration {
		return ds[int(p*float64(len(ds)-1))].Round(time.Millisecond)
	}
	t.Logf("SUMMARY over %d kills: per partition, time until writes resumed: p50 %v p90 %v max %v (n=%d)",
		kills, q(partGaps, .5), q(partGaps, .9), q(partGaps, 1), len(partGaps))
	t.Logf("SUMMARY per room: p50 %v p90 %v max %v; rooms without any interruption (gap < 1 s): %d of %d (%.0f%%)",
		q(roomGaps, .5), q(roomGaps, .9), q(roomGaps, 1), smooth, total, 100*float64(smooth)/float64(total))
}

func countBelow(g map[id.RoomID]time.Duration, d time.Duration) int {
	n := 0
	for _, x := range g {
		if x < d {
			n++
		}
	}
	return n
}

func sortedKeys(m map[int]bool) []int {
	var out []int
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ledPartitions returns the event partitions whose stream leader is in dc,
// from the admin status of another data center.
func (c *cluster) ledPartitions(dc string) map[int]bool {
	c.t.Helper()
	var other string
	for _, n := range c.names() {
		if n != dc {
			other = n
		}
	}
	req, _ := http.NewRequest(http.MethodGet, c.dc(other).URL+"/_planb/admin/v1/status", nil)
	req.Header.Set("Authorization", "Bearer "+c.file.AdminToken)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("admin status: %v", err)
	}
	defer resp.Body.Close()
	var st struct {
		Streams []struct {
			Name     string `json:"name"`
			LeaderDC string `json:"leader_datacenter"`
			Leader   string `json:"leader"`
		} `json:"streams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		c.t.Fatalf("admin status: %v", err)
	}
	out := map[int]bool{}
	for _, s := range st.Streams {
		var p int
		if _, err := fmt.Sscanf(s.Name, "EVENTS_%d", &p); err == nil && (s.LeaderDC == dc || s.Leader == dc) {
			out[p] = true
		}
	}
	return out
}
