package dctest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestTwoDataCentersLost loses two of the three data centers one after the
// other, under load: first with the first one back in between (dc1 lost
// and restarted, then dc3 lost), then without (dc3 still down, dc1 lost as
// well, leaving dc2 alone). While dc2 is alone it must say so (not ready,
// 503 for a send) and acknowledge nothing; once dc3 returns, writes resume
// in every room; after dc1 returns too, every acknowledged write is at
// every data center exactly once, in one order.
func TestTwoDataCentersLost(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	w := setup(t, c, 6, 8)
	ctx := context.Background()
	lctx, stopLoad := context.WithCancel(ctx)
	l := w.start(lctx, 500*time.Millisecond)
	waitAcks(t, l, 150, "load before the first loss")

	resumed := func(what string, since time.Time) {
		t.Helper()
		waitResumed(t, l, w, since, what)
		t.Logf("%s: %s", what, time.Since(since).Round(100*time.Millisecond))
	}

	// The first loss, with the first data center back before the second.
	kill1 := time.Now()
	c.signal("dc1", syscall.SIGKILL)
	resumed("every room writable after losing dc1", kill1)
	c.restart("dc1")
	acks, _ := l.snapshot()
	verify(t, c, w, acks, "dc1")
	kill3 := time.Now()
	c.signal("dc3", syscall.SIGKILL)
	resumed("every room writable after losing dc3 (dc1 back)", kill3)

	// The second loss without the first back: dc2 is alone.
	kill1 = time.Now()
	c.signal("dc1", syscall.SIGKILL)
	alone := c.dc("dc2").URL
	testutil.WaitFor(t, 30*time.Second, "dc2 says it cannot serve alone", func() error {
		return getStatus(alone+"/ready", "", 503)
	})
	t.Logf("dc2 not ready %s after it was left alone", time.Since(kill1).Round(100*time.Millisecond))
	time.Sleep(3 * time.Second) // writes in flight at the loss have ended
	before, _ := l.snapshot()
	time.Sleep(5 * time.Second)
	during, errs := l.snapshot()
	if n := len(during) - len(before); n != 0 {
		t.Errorf("dc2 alone acknowledged %d writes (it cannot commit without a second data center)", n)
	}
	t.Logf("while dc2 was alone: client-visible errors so far %v", errs)

	back := time.Now()
	c.restart("dc3")
	resumed("every room writable once dc3 is back with dc2", back)
	c.restart("dc1")
	waitAcks(t, l, 100, "load with all three back")
	stopLoad()
	l.wait()
	acks, errs = l.snapshot()
	t.Logf("acknowledged sends: %d; client-visible errors: %v", len(acks), errs)
	verify(t, c, w, acks, "dc1", "dc2", "dc3")
}
