package dctest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/pushgwtest"
	"github.com/planb-chat/planb/internal/testutil"
	"github.com/planb-chat/planb/jetstream"
)

// pushDuplicateBound is the documented bound of duplicate pushes after the
// loss of the node sending a partition's pushes (docs/DESIGN.md, "Push
// delivery"): the first attempts in flight at the kill (at most 1024 per
// partition) and those finished since the last cursor save.
const pushDuplicateBound = 1024

// TestPushThroughDataCenterLoss: the data center that leads a room's
// partition, and so sends its pushes, is SIGKILLed while messages are sent
// to the room; every message acknowledged before and after the kill
// reaches the push gateway at least once, and the duplicates stay within
// the documented bound.
func TestPushThroughDataCenterLoss(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx := context.Background()
	gw := pushgwtest.Start(t)
	aliceID, aliceTok := c.register("push-alice", "dc1")
	bobID, bobTok := c.register("push-bob", "dc2")
	setup := c.pinned(aliceID, aliceTok, "dc1")
	bobSetup := c.pinned(bobID, bobTok, "dc2")
	kind := mautrix.PusherKindHTTP
	if err := bobSetup.SetPusher(ctx, &mautrix.Pusher{Kind: &kind, AppID: "org.example.dctest", PushKey: "bob-phone",
		AppDisplayName: "dctest", DeviceDisplayName: "phone", Language: "en", Data: mautrix.PusherData{"url": gw.URL}}); err != nil {
		t.Fatalf("bob sets a pusher: %v", err)
	}
	room, err := setup.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	testutil.WaitFor(t, 30*time.Second, "bob joins", func() error {
		_, err := bobSetup.JoinRoomByID(ctx, room.RoomID)
		return err
	})

	// The victim is the data center leading the room's partition; alice
	// sends through a client that starts at another one and fails over.
	var victim string
	testutil.WaitFor(t, 60*time.Second, "the room's partition has a leader", func() error {
		leaders, err := c.streamLeaders("dc1")
		if err != nil {
			return err
		}
		n := 0
		for name := range leaders {
			if strings.HasPrefix(name, "EVENTS_") {
				n++
			}
		}
		victim = leaders[jetstream.EventStream(jetstream.PartitionOf(string(room.RoomID), n))]
		if victim == "" {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	first := "dc1"
	if victim == "dc1" {
		first = "dc2"
	}
	t.Logf("the room's partition is led by %s; alice sends through %s", victim, first)
	alice := c.client(aliceID, aliceTok, first)
	testutil.WaitFor(t, 60*time.Second, "a first message is pushed", func() error {
		resp, err := alice.SendText(ctx, room.RoomID, "warm-up")
		if err != nil {
			return err
		}
		if len(pushgwtest.ForEvent(gw.Received(), string(resp.EventID))) == 0 {
			time.Sleep(time.Second)
			if len(pushgwtest.ForEvent(gw.Received(), string(resp.EventID))) == 0 {
				return fmt.Errorf("%s not pushed yet", resp.EventID)
			}
		}
		return nil
	})

	// Two senders, acknowledged event IDs recorded, through the kill.
	var (
		mu    sync.Mutex
		acked []id.EventID
		fails int
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := alice.SendMessageEvent(ctx, room.RoomID, event.EventMessage,
					map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("sender %d message %d", s, i)})
				mu.Lock()
				if err == nil {
					acked = append(acked, resp.EventID)
				} else {
					fails++
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(4 * time.Second)
	mu.Lock()
	before := len(acked)
	mu.Unlock()
	c.signal(victim, syscall.SIGKILL)
	killed := time.Now()
	time.Sleep(15 * time.Second)
	close(stop)
	wg.Wait()
	t.Logf("%d messages acknowledged (%d before the kill), %d sends failed for good", len(acked), before, fails)
	if before == 0 || len(acked) == before {
		t.Fatalf("no load on both sides of the kill: %d before, %d in all", before, len(acked))
	}

	wctx, cancel := context.WithTimeout(ctx, 120*time.Second)
	defer cancel()
	missing := func(ns []pushgwtest.Notification) []id.EventID {
		seen := map[string]bool{}
		for _, n := range ns {
			seen[n.EventID] = true
		}
		var out []id.EventID
		for _, e := range acked {
			if !seen[string(e)] {
				out = append(out, e)
			}
		}
		return out
	}
	got, ok := gw.WaitFor(wctx, func(ns []pushgwtest.Notification) bool { return len(missing(ns)) == 0 })
	if !ok {
		m := missing(got)
		t.Fatalf("%d of %d acknowledged messages were never pushed (first: %v)", len(m), len(acked), m[:min(5, len(m))])
	}
	last := time.Time{}
	count := map[string]int{}
	for _, n := range got {
		count[n.EventID]++
		last = n.Received
	}
	dups := 0
	for _, e := range acked {
		dups += count[string(e)] - 1
	}
	t.Logf("every acknowledged message pushed; %d duplicate pushes; the last arrived %.1f s after the kill",
		dups, last.Sub(killed).Seconds())
	if dups > pushDuplicateBound {
		t.Errorf("%d duplicate pushes, more than the documented bound %d", dups, pushDuplicateBound)
	}
}
