package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestSync checks /sync itself (sync.yaml): the initial sync carries room
// state and timeline, a long poll returns as soon as an event arrives and
// not before its timeout otherwise, a timeline limit yields a limited
// timeline whose prev_batch leads into /messages, and account data appears.
func TestSync(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)
	var sent []id.EventID
	for i := range 5 {
		sent = append(sent, sendText(t, alice, room, fmt.Sprintf("sync-%d", i)))
	}

	t.Run("initial sync", func(t *testing.T) {
		resp, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		must(t, "initial sync", err)
		jr := resp.Rooms.Join[room]
		if jr == nil {
			t.Fatalf("initial sync lacks joined room %s", room)
		}
		have := map[string]bool{}
		for _, ev := range append(slices.Clone(jr.State.Events), jr.Timeline.Events...) {
			if ev.StateKey != nil {
				have[ev.Type.Type+"|"+*ev.StateKey] = true
			}
		}
		for _, k := range []string{"m.room.create|", "m.room.name|", "m.room.power_levels|",
			"m.room.member|" + alice.UserID.String(), "m.room.member|" + bob.UserID.String()} {
			if !have[k] {
				t.Errorf("initial sync state+timeline lacks %s", k)
			}
		}
		tl := jr.Timeline.Events
		if len(tl) == 0 || tl[len(tl)-1].ID != sent[len(sent)-1] {
			t.Errorf("initial sync timeline does not end with the latest message: %v", ids(tl))
		}
	})

	t.Run("long poll wakes on a new event", func(t *testing.T) {
		first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		must(t, "initial sync", err)
		type result struct {
			resp *mautrix.RespSync
			err  error
			took time.Duration
		}
		done := make(chan result, 1)
		go func() {
			start := time.Now()
			resp, err := bob.SyncRequest(ctx, 25_000, first.NextBatch, "", false, "")
			done <- result{resp, err, time.Since(start)}
		}()
		// The send happens while the long poll is (very likely) waiting; if
		// it happens before, the poll returns at once, which is also right.
		ev := sendText(t, alice, room, "wake up")
		var r result
		select {
		case r = <-done:
		case <-time.After(40 * time.Second):
			t.Fatal("long-poll /sync did not return within 40s")
		}
		must(t, "long-poll sync", r.err)
		if r.took > 15*time.Second {
			t.Errorf("long poll returned after %s, want soon after the event arrived", r.took)
		}
		jr := r.resp.Rooms.Join[room]
		if jr == nil || !slices.Contains(ids(jr.Timeline.Events), ev) {
			t.Errorf("long poll returned without %s: %s", ev, jsonString(r.resp.Rooms))
		}
	})

	t.Run("timeout without events", func(t *testing.T) {
		first, err := bob.SyncRequest(ctx, 0, "", "", false, "")
		must(t, "initial sync", err)
		start := time.Now()
		resp, err := bob.SyncRequest(ctx, 1500, first.NextBatch, "", false, "")
		took := time.Since(start)
		must(t, "idle sync", err)
		if took < time.Second {
			t.Errorf("idle long poll with timeout 1500ms returned after %s", took)
		}
		if took > 20*time.Second {
			t.Errorf("idle long poll with timeout 1500ms took %s", took)
		}
		if jr := resp.Rooms.Join[room]; jr != nil && len(jr.Timeline.Events) > 0 {
			t.Errorf("idle sync returned timeline events: %v", ids(jr.Timeline.Events))
		}
		if resp.NextBatch == "" {
			t.Errorf("idle sync without next_batch")
		}
	})

	t.Run("limited timeline and prev_batch", func(t *testing.T) {
		resp, err := bob.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":2}}}`, false, "")
		must(t, "initial sync with timeline limit 2", err)
		jr := resp.Rooms.Join[room]
		if jr == nil {
			t.Fatalf("sync lacks room %s", room)
		}
		tl := jr.Timeline
		if len(tl.Events) != 2 {
			t.Errorf("timeline has %d events, want the limit 2", len(tl.Events))
		}
		if !tl.Limited || tl.PrevBatch == "" {
			t.Fatalf("timeline limited=%v prev_batch=%q, want limited with a prev_batch", tl.Limited, tl.PrevBatch)
		}
		older, err := bob.Messages(ctx, room, tl.PrevBatch, "", mautrix.DirectionBackward, nil, 3)
		must(t, "messages from prev_batch", err)
		if len(older.Chunk) == 0 || len(tl.Events) == 0 {
			t.Fatal("nothing before prev_batch")
		}
		// The first event before prev_batch is the one right before the timeline.
		all, err := allMessages(ctx, bob, room, 100)
		must(t, "read room", err)
		at := slices.Index(ids(all), tl.Events[0].ID)
		if at < 1 || all[at-1].ID != older.Chunk[0].ID {
			t.Errorf("/messages from prev_batch starts at %s, want the event before %s", older.Chunk[0].ID, tl.Events[0].ID)
		}
	})

	t.Run("account data", func(t *testing.T) {
		s := newSyncer(alice)
		must(t, "initial sync", s.once(ctx))
		must(t, "set account data", alice.SetAccountData(ctx, "com.example.sync", map[string]any{"k": "v1"}))
		s.until(t, waitTimeout, func() error {
			if s.accountData["com.example.sync"]["k"] != "v1" {
				return fmt.Errorf("account data in sync = %v", s.accountData["com.example.sync"])
			}
			return nil
		})
		// Bob never sees alice's account data.
		b := newSyncer(bob)
		must(t, "bob's initial sync", b.once(ctx))
		if _, ok := b.accountData["com.example.sync"]; ok {
			t.Errorf("bob's sync carries alice's account data")
		}
	})

	t.Run("state change in timeline", func(t *testing.T) {
		s := newSyncer(bob)
		must(t, "initial sync", s.once(ctx))
		_, err := alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "synced topic"})
		must(t, "set topic", err)
		s.until(t, waitTimeout, func() error {
			for _, ev := range s.rooms[room].timeline {
				if ev.Type == event.StateTopic && ev.Content.Raw["topic"] == "synced topic" {
					return nil
				}
			}
			return fmt.Errorf("topic change not in bob's timeline")
		})
	})
}
