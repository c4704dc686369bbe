package projection

import (
	"slices"
	"testing"
	"time"
)

// presenceFeed applies presence records the way the bucket's follower
// does: each at the next sequence of the bucket.
type presenceFeed struct {
	w   *world
	seq uint64
}

// set applies rec for user and returns its sequence.
func (f *presenceFeed) set(user string, rec PresenceRecord) uint64 {
	f.seq++
	f.w.m.ApplyPresence(f.seq, user, &rec)
	return f.seq
}

// presenceOf returns the senders of a sync's presence events and their
// content, by sender.
func presenceOf(t testing.TB, resp *SyncResponse) ([]string, map[string]PresenceContent) {
	t.Helper()
	if resp.Presence == nil {
		t.Fatal("sync without a presence section")
	}
	var senders []string
	by := map[string]PresenceContent{}
	for _, e := range resp.Presence.Events {
		pe, ok := e.(presenceEvent)
		if !ok || pe.Type != "m.presence" {
			t.Fatalf("presence entry %#v is not an m.presence event", e)
		}
		if _, dup := by[pe.Sender]; dup {
			t.Fatalf("presence of %s twice in one sync", pe.Sender)
		}
		senders = append(senders, pe.Sender)
		by[pe.Sender] = pe.Content
	}
	return senders, by
}

func TestPresenceInSync(t *testing.T) {
	w := newWorld(t, 2)
	f := &presenceFeed{w: w}
	now := time.Now().UnixMilli()
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	f.set(bob, PresenceRecord{Presence: PresenceOnline, StatusMsg: "here", LastActiveMS: now})
	f.set(carol, PresenceRecord{Presence: PresenceOnline, LastActiveMS: now}) // shares no room with alice
	f.set(eve, PresenceRecord{Presence: PresenceOffline, LastActiveMS: now})

	// Initial sync: who shares a room and is not offline.
	resp, _, tok := w.sync(alice, nil, nil)
	senders, by := presenceOf(t, resp)
	if !slices.Equal(senders, []string{bob}) {
		t.Fatalf("initial sync shows the presence of %v, want [%s]", senders, bob)
	}
	if c := by[bob]; c.Presence != PresenceOnline || c.StatusMsg == nil || *c.StatusMsg != "here" || c.LastActiveAgo == nil {
		t.Fatalf("bob's presence content = %+v", c)
	}

	// Nothing changed: nothing shown, nothing new.
	resp, has, tok2 := w.sync(alice, &tok, nil)
	if senders, _ := presenceOf(t, resp); len(senders) != 0 || has {
		t.Fatalf("incremental sync without changes shows %v (has %v)", senders, has)
	}

	// A keep-alive (same state, newer activity) shows nothing and wakes nobody.
	_, _, wake, _ := w.m.Sync(SyncRequest{User: alice, Device: "DEV", Since: &tok2})
	rec, rev, _ := w.m.Presence(bob)
	rec.LastActiveMS += 1000
	rec.ChangedRev = rev
	f.set(bob, rec)
	if closed(wake) {
		t.Fatal("a keep-alive woke alice's sync")
	}
	resp, _, tok3 := w.sync(alice, &tok2, nil)
	if senders, _ := presenceOf(t, resp); len(senders) != 0 {
		t.Fatalf("a keep-alive shows %v", senders)
	}

	// A state change wakes and shows; carol's does not reach alice.
	_, _, wake, _ = w.m.Sync(SyncRequest{User: alice, Device: "DEV", Since: &tok3})
	f.set(carol, PresenceRecord{Presence: PresenceUnavailable, LastActiveMS: now})
	if closed(wake) {
		t.Fatal("carol's change woke alice, who shares no room with her")
	}
	f.set(bob, PresenceRecord{Presence: PresenceUnavailable, LastActiveMS: now})
	if !closed(wake) {
		t.Fatal("bob's change did not wake alice's sync")
	}
	resp, has, tok4 := w.sync(alice, &tok3, nil)
	senders, by = presenceOf(t, resp)
	if !slices.Equal(senders, []string{bob}) || by[bob].Presence != PresenceUnavailable || !has {
		t.Fatalf("after bob's change alice sees %v %+v (has %v)", senders, by, has)
	}
	if tok4.Presence != f.seq {
		t.Fatalf("next_batch has presence position %d, want %d", tok4.Presence, f.seq)
	}

	// The filter can leave presence out.
	none := []string{}
	resp, _, _ = w.sync(alice, &tok3, &Filter{Presence: &EventFilter{Types: &none}})
	if senders, _ := presenceOf(t, resp); len(senders) != 0 {
		t.Fatalf("a filter without presence types shows %v", senders)
	}
}

// TestPresenceOfNewRoomMembers: who comes to share a room shows in the next
// incremental sync of both sides, whatever their state, once.
func TestPresenceOfNewRoomMembers(t *testing.T) {
	w := newWorld(t, 2)
	f := &presenceFeed{w: w}
	now := time.Now().UnixMilli()
	r := w.createRoom("!r:hs", 1, alice, "shared")
	f.set(alice, PresenceRecord{Presence: PresenceOnline, LastActiveMS: now})
	// carol never set a presence
	_, _, aliceTok := w.sync(alice, nil, nil)
	_, _, carolTok := w.sync(carol, nil, nil)
	r.join(carol)

	resp, _, aliceNext := w.sync(alice, &aliceTok, nil)
	senders, by := presenceOf(t, resp)
	if !slices.Equal(senders, []string{carol}) || by[carol].Presence != PresenceOffline {
		t.Fatalf("alice's sync after carol joined shows %v %+v, want carol offline", senders, by)
	}
	resp, _, carolNext := w.sync(carol, &carolTok, nil)
	if senders, _ := presenceOf(t, resp); !slices.Equal(senders, []string{alice}) {
		t.Fatalf("carol's sync after she joined shows %v, want [%s]", senders, alice)
	}
	for _, c := range []struct {
		user string
		tok  Token
	}{{alice, aliceNext}, {carol, carolNext}} {
		resp, _, _ := w.sync(c.user, &c.tok, nil)
		if senders, _ := presenceOf(t, resp); len(senders) != 0 {
			t.Fatalf("%s's next sync shows %v again", c.user, senders)
		}
	}
}

func TestPresenceLogCompaction(t *testing.T) {
	w := newWorld(t, 1)
	f := &presenceFeed{w: w}
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(alice, nil, nil)
	for i := range 3000 {
		state := PresenceOnline
		if i%2 == 1 {
			state = PresenceUnavailable
		}
		f.set(bob, PresenceRecord{Presence: state, LastActiveMS: int64(i + 1)})
	}
	w.m.mu.RLock()
	n := len(w.m.presenceLog)
	w.m.mu.RUnlock()
	if n > 1100 {
		t.Fatalf("the presence log holds %d entries for one user", n)
	}
	resp, _, _ := w.sync(alice, &tok, nil)
	senders, by := presenceOf(t, resp)
	if !slices.Equal(senders, []string{bob}) || by[bob].Presence != PresenceUnavailable {
		t.Fatalf("after 3000 changes alice sees %v %+v, want bob unavailable", senders, by)
	}
}

func TestStalePresence(t *testing.T) {
	w := newWorld(t, 1)
	f := &presenceFeed{w: w}
	now := time.Now()
	f.set(alice, PresenceRecord{Presence: PresenceOnline, LastActiveMS: now.Add(-10 * time.Minute).UnixMilli()})
	f.set(bob, PresenceRecord{Presence: PresenceUnavailable, LastActiveMS: now.Add(-10 * time.Minute).UnixMilli()})
	f.set(carol, PresenceRecord{Presence: PresenceOnline, LastActiveMS: now.UnixMilli()})
	f.set(eve, PresenceRecord{Presence: PresenceOffline, LastActiveMS: now.Add(-10 * time.Minute).UnixMilli()})
	if got := w.m.StalePresence(now.Add(-5 * time.Minute)); !slices.Equal(got, []string{alice, bob}) {
		t.Fatalf("StalePresence = %v, want [%s %s]", got, alice, bob)
	}
}
