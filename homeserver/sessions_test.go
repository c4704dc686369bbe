package homeserver

import (
	"strconv"
	"testing"
	"time"
)

func TestSessionCache(t *testing.T) {
	c := newSessionCache()
	now := time.Now()
	alice := Session{UserID: "@alice:x", DeviceID: "A"}

	// Off while the tokens follower does not run.
	c.put(c.ticket(), "h1", alice, 5, now)
	if _, ok := c.get("h1", now); ok {
		t.Fatal("remembered a session while the follower was not running")
	}

	c.setLive(true, 0)
	c.confirm(0, now)
	c.put(c.ticket(), "h1", alice, 5, now)
	if got, ok := c.get("h1", now); !ok || got != alice {
		t.Fatalf("get = %v, %v; want alice", got, ok)
	}
	if _, ok := c.get("h1", now.Add(sessionTTL)); ok {
		t.Error("an entry outlived its TTL")
	}

	// A change the follower saw drops the entry, and a value read before
	// that change (a lower revision) is not remembered again.
	c.changedAt("h1", 9, now)
	if _, ok := c.get("h1", now); ok {
		t.Error("still remembered after its key changed")
	}
	c.put(c.ticket(), "h1", alice, 8, now)
	if _, ok := c.get("h1", now); ok {
		t.Error("remembered a value read before the change the follower saw")
	}
	c.put(c.ticket(), "h1", alice, 10, now)
	if _, ok := c.get("h1", now); !ok {
		t.Error("a value read after the change was not remembered")
	}

	// This node's own deletion forgets at once and for good.
	c.forget("h1", now)
	c.put(c.ticket(), "h1", alice, 1<<40, now)
	if _, ok := c.get("h1", now); ok {
		t.Error("remembered a token this node deleted")
	}

	// A ticket from before a restart of the follower is void: changes
	// between that read and the new start were not seen.
	old := c.ticket()
	c.setLive(false, 0)
	c.setLive(true, 0)
	c.confirm(0, now)
	c.put(old, "h2", alice, 5, now)
	if _, ok := c.get("h2", now); ok {
		t.Error("a ticket from an earlier follower run filled the cache")
	}
	c.put(c.ticket(), "h2", alice, 5, now)
	c.setLive(false, 0)
	if _, ok := c.get("h2", now); ok {
		t.Error("entries survived the follower stopping")
	}
}

func TestSessionCacheIsBounded(t *testing.T) {
	c := newSessionCache()
	c.setLive(true, 0)
	now := time.Now()
	for i := range sessionCacheMax + 100 {
		c.put(c.ticket(), strconv.Itoa(i), Session{UserID: "@u:x"}, 1, now)
	}
	if n := len(c.entries); n > sessionCacheMax {
		t.Errorf("%d entries, want at most %d", n, sessionCacheMax)
	}
}

// The cache answers only while the tokens follower has proven, recently,
// that it applied everything the bucket's leader had: a follower of a
// replica that hears nothing (a cut-off data center) goes stale.
func TestSessionCacheNeedsAFreshFollower(t *testing.T) {
	c := newSessionCache()
	now := time.Now()
	alice := Session{UserID: "@alice:x", DeviceID: "A"}
	c.setLive(true, 10)
	c.put(c.ticket(), "h1", alice, 5, now)
	if _, ok := c.get("h1", now); ok {
		t.Fatal("answered before the follower was ever confirmed current")
	}

	// The leader has 12; the follower applied 10: not current yet.
	c.confirm(12, now)
	if c.fresh(now) {
		t.Fatal("fresh while two records behind the leader")
	}
	c.apply(11)
	if c.fresh(now) {
		t.Fatal("fresh while one record behind the leader")
	}
	c.apply(12)
	if !c.fresh(now) {
		t.Fatal("not fresh after applying what the leader had")
	}
	if got, ok := c.get("h1", now); !ok || got != alice {
		t.Fatalf("get = %v, %v; want alice", got, ok)
	}

	// No confirmation for sessionFreshness: the cache stops answering, and
	// a later confirmation brings it back.
	later := now.Add(sessionFreshness)
	if c.fresh(later) {
		t.Error("still fresh after sessionFreshness without a confirmation")
	}
	if _, ok := c.get("h1", later); ok {
		t.Error("answered from a stale follower")
	}
	c.confirm(12, later)
	if _, ok := c.get("h1", later); !ok {
		t.Error("a new confirmation did not bring the cache back")
	}

	// A confirmation the follower can never reach (its record vanished)
	// gives way to a newer one.
	c.confirm(20, later) // applied stays at 12
	c.confirm(21, later.Add(time.Second))
	if c.fresh(later.Add(2 * sessionFreshness)) {
		t.Fatal("fresh without applying what the leader had")
	}
	stuck := later.Add(sessionFreshness)
	c.confirm(22, stuck)
	c.apply(22)
	if !c.fresh(stuck) {
		t.Error("a confirmation that cannot be reached kept the cache off")
	}

	// A stopped follower is never fresh.
	c.setLive(false, 0)
	if c.fresh(later) {
		t.Error("fresh after the follower stopped")
	}
}
