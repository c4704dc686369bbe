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

	c.setLive(true)
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
	c.setLive(false)
	c.setLive(true)
	c.put(old, "h2", alice, 5, now)
	if _, ok := c.get("h2", now); ok {
		t.Error("a ticket from an earlier follower run filled the cache")
	}
	c.put(c.ticket(), "h2", alice, 5, now)
	c.setLive(false)
	if _, ok := c.get("h2", now); ok {
		t.Error("entries survived the follower stopping")
	}
}

func TestSessionCacheIsBounded(t *testing.T) {
	c := newSessionCache()
	c.setLive(true)
	now := time.Now()
	for i := range sessionCacheMax + 100 {
		c.put(c.ticket(), strconv.Itoa(i), Session{UserID: "@u:x"}, 1, now)
	}
	if n := len(c.entries); n > sessionCacheMax {
		t.Errorf("%d entries, want at most %d", n, sessionCacheMax)
	}
}
