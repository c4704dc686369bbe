package projection

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/planb-chat/planb"
)

// ephemeral returns the content of the joined room's ephemeral event of
// type typ, or nil.
func ephemeral(t *testing.T, jr *JoinedRoom, typ string) json.RawMessage {
	t.Helper()
	for _, e := range jr.Ephemeral.Events {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		var te typedContent
		if err := json.Unmarshal(b, &te); err != nil {
			t.Fatal(err)
		}
		if te.Type == typ {
			return te.Content
		}
	}
	return nil
}

func TestUnreadCountsAndReceipts(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	b1 := r.say(bob, "hello")
	r.say(bob, "how are you")
	r.send(bob, obj{"msgtype": "m.notice", "body": "a bot says hi"})
	r.say(bob, "still there?")
	r.say(alice, "yes")

	unread := func(user string) Unread {
		t.Helper()
		resp, _, _ := w.sync(user, nil, nil)
		return resp.Rooms.Join[r.id].UnreadNotifications
	}
	if got := unread(alice); got != (Unread{Notifications: 3}) {
		t.Errorf("alice before any receipt: %+v, want 3 notifications (the notice and her own message do not count)", got)
	}
	if got := unread(bob); got != (Unread{Notifications: 1}) {
		t.Errorf("bob: %+v, want 1 (alice's reply)", got)
	}

	_, _, tokAlice := w.sync(alice, nil, nil)
	_, _, tokBob := w.sync(bob, nil, nil)
	w.m.ApplyReceipt(1, r.id, alice, "m.read", Receipt{EventID: b1.EventID, TS: 123})
	if got := unread(alice); got != (Unread{Notifications: 2}) {
		t.Errorf("alice after reading %s: %+v, want 2", b1.EventID, got)
	}
	if got, ok := w.m.Receipt(r.id, alice, "m.read", ""); !ok || got.EventID != b1.EventID || got.Pos != 1 {
		t.Errorf("Receipt = %+v %v", got, ok)
	}

	// Other members learn of the receipt on their next sync.
	resp, has, _ := w.sync(bob, &tokBob, nil)
	if !has || resp.Rooms.Join[r.id] == nil {
		t.Fatalf("bob's incremental sync lacks the receipt: %+v", resp.Rooms)
	}
	var rc map[string]map[string]map[string]struct {
		TS int64 `json:"ts"`
	}
	if err := json.Unmarshal(ephemeral(t, resp.Rooms.Join[r.id], "m.receipt"), &rc); err != nil {
		t.Fatalf("m.receipt: %v", err)
	}
	if rc[b1.EventID]["m.read"][alice].TS != 123 {
		t.Errorf("m.receipt content %v, want alice's read of %s at 123", rc, b1.EventID)
	}
	resp, _, _ = w.sync(alice, &tokAlice, nil)
	if jr := resp.Rooms.Join[r.id]; jr == nil || jr.UnreadNotifications.Notifications != 2 {
		t.Errorf("alice's incremental sync after her receipt: %+v", jr)
	}

	// Private receipts are shown to their owner only.
	_, _, tokBob = w.sync(bob, nil, nil)
	w.m.ApplyReceipt(2, r.id, alice, "m.read.private", Receipt{EventID: b1.EventID, TS: 124})
	resp, _, _ = w.sync(bob, &tokBob, nil)
	if jr := resp.Rooms.Join[r.id]; jr != nil && ephemeral(t, jr, "m.receipt") != nil {
		t.Errorf("bob sees alice's private receipt: %s", ephemeral(t, jr, "m.receipt"))
	}

	// A mention highlights.
	mention := r.send(bob, obj{"msgtype": "m.text", "body": "look", "m.mentions": obj{"user_ids": []string{alice}}})
	if got := unread(alice); got != (Unread{Notifications: 3, Highlights: 1}) {
		t.Errorf("alice after a mention: %+v, want 3 notifications, 1 highlight", got)
	}
	if got := unread(bob); got.Highlights != 0 {
		t.Errorf("bob highlighted by a mention of alice: %+v", got)
	}
	w.m.ApplyReceipt(3, r.id, alice, "m.read", Receipt{EventID: mention.EventID, TS: 125})
	if got := unread(alice); got != (Unread{}) {
		t.Errorf("alice after reading everything: %+v, want zero", got)
	}

	// Receipts for unknown rooms and replays are ignored.
	w.m.ApplyReceipt(4, "!missing:hs", alice, "m.read", Receipt{EventID: b1.EventID})
	w.m.ApplyReceipt(3, r.id, alice, "m.read", Receipt{EventID: b1.EventID})
	if got, _ := w.m.Receipt(r.id, alice, "m.read", ""); got.EventID != mention.EventID {
		t.Errorf("a replayed receipt moved alice's read marker back to %s", got.EventID)
	}
	if pos := w.m.Position().Receipts; pos != 4 {
		t.Errorf("receipts position %d, want 4", pos)
	}
}

func TestTyping(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(alice, nil, nil)

	now := time.Now()
	w.m.SetTyping(r.id, bob, true, now.Add(30*time.Second))
	resp, has, tok2 := w.sync(alice, &tok, nil)
	jr := resp.Rooms.Join[r.id]
	if !has || jr == nil {
		t.Fatalf("typing did not reach alice's sync: %+v", resp.Rooms)
	}
	var typing struct {
		UserIDs []string `json:"user_ids"`
	}
	if err := json.Unmarshal(ephemeral(t, jr, "m.typing"), &typing); err != nil {
		t.Fatalf("m.typing: %v", err)
	}
	if len(typing.UserIDs) != 1 || typing.UserIDs[0] != bob {
		t.Errorf("typing users %v, want [bob]", typing.UserIDs)
	}
	if tok2.Typing <= tok.Typing {
		t.Errorf("typing position did not move: %d then %d", tok.Typing, tok2.Typing)
	}

	// Nothing expires before the deadline.
	w.m.ExpireTyping(now)
	if resp, has, _ := w.sync(alice, &tok2, nil); has || len(resp.Rooms.Join) != 0 {
		t.Errorf("early ExpireTyping changed something: %+v", resp.Rooms.Join)
	}
	// Stopping typing that never started is not news either.
	w.m.SetTyping(r.id, carol, false, time.Time{})
	if resp, has, _ := w.sync(alice, &tok2, nil); has || len(resp.Rooms.Join) != 0 {
		t.Errorf("clearing absent typing changed something: %+v", resp.Rooms.Join)
	}

	w.m.ExpireTyping(now.Add(31 * time.Second))
	resp, has, _ = w.sync(alice, &tok2, nil)
	jr = resp.Rooms.Join[r.id]
	if !has || jr == nil {
		t.Fatalf("expiry did not reach alice's sync: %+v", resp.Rooms)
	}
	content := ephemeral(t, jr, "m.typing")
	typing.UserIDs = nil
	if err := json.Unmarshal(content, &typing); err != nil || typing.UserIDs == nil || len(typing.UserIDs) != 0 {
		t.Errorf("m.typing after expiry = %s, want user_ids []", content)
	}

	// A fresh initial sync says nothing about typing.
	resp, _, _ = w.sync(alice, nil, nil)
	if c := ephemeral(t, resp.Rooms.Join[r.id], "m.typing"); c != nil {
		t.Errorf("initial sync shows typing %s with nobody typing", c)
	}
	// Typing in unknown rooms is dropped.
	w.m.SetTyping("!missing:hs", bob, true, now.Add(time.Minute))
}

func TestApplyIsIdempotent(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	ev := r.say(alice, "once")
	seq := w.next[0]
	before := w.m.Stats()
	timeline := r.timelineIDs()
	pos := w.m.Position()

	rec := &planb.Record{Events: []*planb.Event{ev}}
	for range 3 {
		if err := w.m.ApplyRecord(0, seq, rec); err != nil {
			t.Fatalf("replay: %v", err)
		}
	}
	// An older sequence with a new event is a replay too.
	stale := r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "stale"})
	if err := w.m.ApplyRecord(0, seq-1, &planb.Record{Events: []*planb.Event{stale}}); err != nil {
		t.Fatalf("stale replay: %v", err)
	}
	if got := w.m.Stats(); got != before {
		t.Errorf("stats after replays %+v, want %+v", got, before)
	}
	equalIDs(t, "timeline after replays", r.timelineIDs(), timeline)
	if got := w.m.Position(); got.String() != pos.String() {
		t.Errorf("position moved from %s to %s", pos, got)
	}
	resp, _, _ := w.sync(alice, nil, timelineLimit(100))
	equalIDs(t, "sync after replays", ids(resp.Rooms.Join[r.id].Timeline.Events), timeline)

	// Account data replays are ignored too.
	w.m.ApplyAccountData(5, alice, "", "m.direct", json.RawMessage(`{"a":1}`))
	w.m.ApplyAccountData(5, alice, "", "m.direct", json.RawMessage(`{"b":2}`))
	if got, err := w.m.AccountData(alice, "", "m.direct"); err != nil || string(got) != `{"a":1}` {
		t.Errorf("account data after replay = %s %v", got, err)
	}

	for _, p := range []int{-1, 2} {
		if err := w.m.ApplyRecord(p, 100, rec); err == nil {
			t.Errorf("ApplyRecord to partition %d of 2 succeeded", p)
		}
	}
	// A record for a room never created is skipped, not fatal.
	ghost := &planb.Event{RoomID: "!ghost:hs", Sender: alice, Type: planb.TypeMessage, Content: json.RawMessage(`{}`)}
	ghost.ComputeID()
	if err := w.m.ApplyRecord(1, 1, &planb.Record{Events: []*planb.Event{ghost}}); err != nil {
		t.Fatalf("record for an unknown room: %v", err)
	}
	if w.m.HasRoom("!ghost:hs") {
		t.Error("an unknown room appeared from a non-create event")
	}
}

func TestWaitFor(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 1, alice, "shared") // seq 1 of partition 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Reached positions return at once; typing is never waited for.
	if err := w.m.WaitFor(ctx, Token{Parts: []uint64{0, 1}, Typing: 1 << 62}); err != nil {
		t.Fatalf("WaitFor reached position: %v", err)
	}
	if err := w.m.WaitPartition(ctx, 1, 1); err != nil {
		t.Fatalf("WaitPartition reached position: %v", err)
	}

	part := make(chan error, 1)
	go func() { part <- w.m.WaitPartition(ctx, 1, 3) }()
	all := make(chan error, 1)
	go func() { all <- w.m.WaitFor(ctx, Token{Parts: []uint64{0, 3}, Receipts: 2, AccountData: 1}) }()

	r.say(alice, "two") // seq 2
	select {
	case err := <-part:
		t.Fatalf("WaitPartition(1, 3) returned %v at sequence 2", err)
	default:
	}
	r.say(alice, "three") // seq 3
	if err := <-part; err != nil {
		t.Fatalf("WaitPartition(1, 3): %v", err)
	}
	select {
	case err := <-all:
		t.Fatalf("WaitFor returned %v before receipts and account data", err)
	default:
	}
	w.m.SkipReceiptPos(2)
	w.m.ApplyAccountData(1, alice, "", "m.direct", json.RawMessage(`{}`))
	if err := <-all; err != nil {
		t.Fatalf("WaitFor: %v", err)
	}

	// Positions never reached: the context ends the wait.
	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	err := w.m.WaitFor(short, Token{Parts: []uint64{0, 99}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitFor of an unreached position = %v, want DeadlineExceeded", err)
	}
	short2, cancelShort2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort2()
	if err := w.m.WaitPartition(short2, 0, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitPartition of an unreached position = %v, want DeadlineExceeded", err)
	}
}

func TestSyncWakeChannel(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	other := w.createRoom("!other:hs", 1, carol, "shared")

	wake := func(user string) <-chan struct{} {
		_, _, ch, _ := w.m.Sync(SyncRequest{User: user, Device: "DEV"})
		return ch
	}

	a, b, c := wake(alice), wake(bob), wake(carol)
	if closed(a) || closed(b) || closed(c) {
		t.Fatal("fresh wake channel already closed")
	}
	r.say(alice, "hi")
	if !closed(a) || !closed(b) {
		t.Error("a new event did not wake the room's members")
	}
	if closed(c) {
		t.Error("an event in a room carol is not in woke her")
	}

	// An invite wakes the invitee.
	c = wake(carol)
	r.member(alice, carol, planb.MembershipInvite)
	if !closed(c) {
		t.Error("an invite did not wake the invitee")
	}

	// Receipts and typing wake the room's members.
	a = wake(alice)
	w.m.ApplyReceipt(1, r.id, bob, "m.read", Receipt{EventID: w.m.LastMembershipEvent(r.id, bob)})
	if !closed(a) {
		t.Error("a receipt did not wake alice")
	}
	a = wake(alice)
	w.m.SetTyping(r.id, bob, true, time.Now().Add(time.Minute))
	if !closed(a) {
		t.Error("typing did not wake alice")
	}

	// After leaving, the room's events no longer wake bob, but his leave does.
	b = wake(bob)
	r.leave(bob)
	if !closed(b) {
		t.Error("bob's own leave did not wake him")
	}
	b = wake(bob)
	r.say(alice, "bob is gone")
	if closed(b) {
		t.Error("an event after bob left woke him")
	}
	other.say(carol, "noise")

	// A user the model has never seen wakes on any progress and then finds
	// their first room.
	d := wake("@dave:hs")
	if closed(d) {
		t.Fatal("unknown user's wake channel already closed")
	}
	r.join("@dave:hs")
	if !closed(d) {
		t.Error("unknown user's wake channel not closed by their join")
	}
	resp, _, _ := w.sync("@dave:hs", nil, nil)
	if resp.Rooms.Join[r.id] == nil {
		t.Error("dave's room missing after the wake")
	}
}

// The legacy name rules (.m.rule.contains_user_name and
// .m.rule.contains_display_name) match the name as a whole word, and since
// Matrix 1.7 they do not apply to events that carry m.mentions: the
// mentions property alone decides then.
func TestHighlightLegacyNameRules(t *testing.T) {
	for _, c := range []struct {
		name    string
		content obj
		want    int
	}{
		{"localpart as a word", obj{"msgtype": "m.text", "body": "hey Alice!"}, 1},
		{"display name as a word", obj{"msgtype": "m.text", "body": "ask the creator"}, 1},
		{"mentioned by user ID", obj{"msgtype": "m.text", "body": "x", "m.mentions": obj{"user_ids": []string{alice}}}, 1},
		{"other user mentioned", obj{"msgtype": "m.text", "body": "x", "m.mentions": obj{"user_ids": []string{bob}}}, 0},
		{"localpart inside a word", obj{"msgtype": "m.text", "body": "malice aforethought"}, 0},
		{"display name inside a word", obj{"msgtype": "m.text", "body": "procreators unite"}, 0},
		{"name in body but m.mentions without alice", obj{"msgtype": "m.text", "body": "alice, look", "m.mentions": obj{}}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := newWorld(t, 1)
			r := w.createRoom("!r:hs", 0, alice, "shared") // alice's display name is "Creator"
			r.join(bob)
			r.send(bob, c.content)
			resp, _, _ := w.sync(alice, nil, nil)
			if got := resp.Rooms.Join[r.id].UnreadNotifications; got.Highlights != c.want || got.Notifications != 1 {
				t.Errorf("content %v: %+v, want 1 notification and %d highlights", c.content, got, c.want)
			}
		})
	}
}

// Appliers and readers run concurrently on a node; the race detector
// checks the lock rules.
func TestConcurrentApplyAndRead(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	const n = 200
	base := w.next[0] // sequence of the join
	evs := make([]*planb.Event, n)
	for i := range evs {
		evs[i] = r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "m"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		for i, ev := range evs {
			if err := w.m.ApplyRecord(0, base+uint64(1+i), &planb.Record{Events: []*planb.Event{ev}}); err != nil {
				done <- err
				return
			}
			w.m.ApplyReceipt(uint64(1+i), r.id, bob, "m.read", Receipt{EventID: ev.EventID})
			w.m.SetTyping(r.id, alice, i%2 == 0, time.Now().Add(time.Minute))
		}
		done <- nil
	}()
	var since *Token
	for {
		resp, _, wake, _ := w.m.Sync(SyncRequest{User: bob, Device: "DEV", Since: since})
		tok, err := ParseToken(resp.NextBatch, 2)
		if err != nil {
			t.Fatal(err)
		}
		since = &tok
		if _, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 5, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal(resp); err != nil {
			t.Fatal(err)
		}
		if tok.Parts[0] >= base+n {
			break
		}
		select {
		case <-wake:
		case <-ctx.Done():
			t.Fatalf("sync stuck at %s", tok)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(r.timelineIDs()); got != 7+n {
		t.Errorf("timeline has %d events, want %d", got, 7+n)
	}
}
