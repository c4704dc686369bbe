package dctest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestDrainDataCenter evacuates a data center under load through the admin
// API and then stops it (SIGTERM), as an operator would before planned
// work: not a single client request may fail, and nothing is lost.
func TestDrainDataCenter(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	w := setup(t, c, 6, 6)
	lctx, stopLoad := context.WithCancel(context.Background())
	l := w.start(lctx, 500*time.Millisecond)
	waitAcks(t, l, 100, "load before the drain")

	start := time.Now()
	req, _ := http.NewRequest(http.MethodPost, c.dc("dc2").URL+"/_planb/admin/v1/drain", nil)
	req.Header.Set("Authorization", "Bearer "+c.file.AdminToken)
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("drain dc2: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("drain dc2: %d %s", resp.StatusCode, body)
	}
	t.Logf("drain answered in %v: %s", time.Since(start).Round(time.Millisecond), body)
	if c.ready("dc2") == nil {
		t.Errorf("dc2 still reports ready after the drain")
	}
	waitAcks(t, l, 60, "load while dc2 is drained")

	// Rebalancing (by an operator here; every node's automatic one uses
	// the same code) must not hand leaderships back to a draining node.
	req, _ = http.NewRequest(http.MethodPost, c.dc("dc1").URL+"/_planb/admin/v1/rebalance", nil)
	req.Header.Set("Authorization", "Bearer "+c.file.AdminToken)
	resp, err = (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatalf("rebalance: %v", err)
	}
	var reb struct {
		Moves    []struct{ Stream, To string } `json:"moves"`
		Draining []string                      `json:"draining"`
	}
	err = json.NewDecoder(resp.Body).Decode(&reb)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("rebalance: %d %v", resp.StatusCode, err)
	}
	if !slices.Contains(reb.Draining, "dc2") {
		t.Errorf("rebalance does not know dc2 is draining: %+v", reb)
	}
	for _, m := range reb.Moves {
		if m.To == "dc2" {
			t.Errorf("rebalance handed %s to the draining dc2", m.Stream)
		}
	}
	var counts map[string]int
	testutil.WaitFor(t, 30*time.Second, "every partition led after the rebalance", func() error {
		counts, err = c.eventLeaders("dc1")
		return err
	})
	if counts["dc2"] != 0 {
		t.Errorf("partitions led by the draining dc2 after a rebalance: %v", counts)
	}

	c.signal("dc2", syscall.SIGTERM)
	testutil.WaitFor(t, 30*time.Second, "dc2 stops", func() error {
		hc := &http.Client{Timeout: time.Second}
		if r, err := hc.Get(c.dc("dc2").URL + "/health"); err == nil {
			r.Body.Close()
			return errors.New("dc2 still answers")
		}
		return nil
	})
	waitAcks(t, l, 100, "load after dc2 stopped")
	stopLoad()
	l.wait()
	acks, errs := l.snapshot()
	g := gaps(acks, w.rooms, start, acks[len(acks)-1].at)
	var worst time.Duration
	for _, d := range g {
		worst = max(worst, d)
	}
	t.Logf("acknowledged sends: %d; longest gap in a room during the evacuation: %v; client-visible errors: %v",
		len(acks), worst.Round(time.Millisecond), errs)
	if len(errs) > 0 {
		t.Errorf("client requests failed during a planned evacuation: %v", errs)
	}
	verify(t, c, w, acks, "dc1", "dc3")
}
