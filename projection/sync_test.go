package projection

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/planb-chat/planb"
)

func TestInitialSyncJoinedRoom(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 1, alice, "shared") // events 0-5
	join := r.join(bob)                            // 6
	msgs := r.sayN(bob, 12)                        // 7-18

	resp, has, next := w.sync(alice, nil, timelineLimit(5))
	if !has {
		t.Fatal("initial sync reported nothing new")
	}
	jr := resp.Rooms.Join[r.id]
	if jr == nil {
		t.Fatalf("room missing from rooms.join: %+v", resp.Rooms)
	}
	if len(resp.Rooms.Invite) != 0 || len(resp.Rooms.Leave) != 0 {
		t.Fatalf("unexpected invite/leave sections: %+v", resp.Rooms)
	}
	equalIDs(t, "timeline", ids(jr.Timeline.Events), msgs[7:])
	if !jr.Timeline.Limited {
		t.Error("timeline of 5 out of 19 events is not limited")
	}
	if jr.Timeline.PrevBatch != "t14" {
		t.Errorf("prev_batch = %q, want t14 (the window starts at event 14)", jr.Timeline.PrevBatch)
	}
	st := stateTypes(t, jr.State)
	for _, k := range []string{"m.room.create|", "m.room.member|" + alice, "m.room.member|" + bob,
		"m.room.power_levels|", "m.room.join_rules|", "m.room.history_visibility|", "m.room.name|"} {
		if _, ok := st[k]; !ok {
			t.Errorf("state lacks %s", k)
		}
	}
	if len(st) != 7 {
		t.Errorf("state has %d entries, want 7: %v", len(st), st)
	}
	if st["m.room.member|"+bob].EventID != join.EventID {
		t.Errorf("bob's member state is %s, want his join %s", st["m.room.member|"+bob].EventID, join.EventID)
	}
	for _, ev := range jr.Timeline.Events {
		if ev.RoomID != "" {
			t.Errorf("timeline event %s carries room_id inside /sync", ev.EventID)
		}
	}
	if jr.Summary == nil || jr.Summary.Joined != 2 || len(jr.Summary.Heroes) != 1 || jr.Summary.Heroes[0] != bob {
		t.Errorf("summary = %+v, want 2 joined and hero bob", jr.Summary)
	}
	if next.Parts[1] != w.next[1] || next.Parts[0] != 0 {
		t.Errorf("next_batch %q does not name the applied positions %v", resp.NextBatch, w.next)
	}

	// prev_batch continues the timeline backwards through /messages.
	page, err := w.m.Messages(alice, "DEV", r.id, jr.Timeline.PrevBatch, "", true, 3, nil)
	if err != nil {
		t.Fatalf("messages from prev_batch: %v", err)
	}
	equalIDs(t, "page before the timeline", ids(page.Chunk), []string{msgs[6], msgs[5], msgs[4]})

	// Without a filter the timeline holds the newest 10 events.
	resp, _, _ = w.sync(alice, nil, nil)
	jr = resp.Rooms.Join[r.id]
	equalIDs(t, "default timeline", ids(jr.Timeline.Events), msgs[2:])
	if jr.Timeline.PrevBatch != "t9" || !jr.Timeline.Limited {
		t.Errorf("default timeline prev_batch %q limited %v, want t9 and limited", jr.Timeline.PrevBatch, jr.Timeline.Limited)
	}

	// A user in no room gets an empty sync.
	resp, has, _ = w.sync(eve, nil, nil)
	if has || len(resp.Rooms.Join)+len(resp.Rooms.Invite)+len(resp.Rooms.Leave) != 0 {
		t.Errorf("outsider's sync has %v: %+v", has, resp.Rooms)
	}
}

func TestInitialSyncTimelineThatFits(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	resp, _, _ := w.sync(alice, nil, timelineLimit(20))
	jr := resp.Rooms.Join[r.id]
	if jr == nil {
		t.Fatal("room missing")
	}
	equalIDs(t, "timeline", ids(jr.Timeline.Events), r.timelineIDs())
	if jr.Timeline.Limited || jr.Timeline.PrevBatch != "t0" {
		t.Errorf("complete timeline: limited %v prev_batch %q, want false and t0", jr.Timeline.Limited, jr.Timeline.PrevBatch)
	}
	if len(jr.State.Events) != 0 {
		t.Errorf("state duplicates the timeline: %d events", len(jr.State.Events))
	}
}

func TestIncrementalSync(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(bob, nil, nil)

	m1, m2 := r.say(alice, "one"), r.say(alice, "two")
	resp, has, tok2 := w.sync(bob, &tok, nil)
	jr := resp.Rooms.Join[r.id]
	if !has || jr == nil {
		t.Fatalf("incremental sync missed the new messages: %+v", resp.Rooms)
	}
	equalIDs(t, "incremental timeline", ids(jr.Timeline.Events), []string{m1.EventID, m2.EventID})
	if jr.Timeline.Limited || len(jr.State.Events) != 0 {
		t.Errorf("limited %v with %d state events, want an unlimited timeline and no state", jr.Timeline.Limited, len(jr.State.Events))
	}

	// Nothing new: the room is left out.
	resp, has, tok3 := w.sync(bob, &tok2, nil)
	if has || len(resp.Rooms.Join) != 0 {
		t.Errorf("sync with nothing new returned %v: %+v", has, resp.Rooms.Join)
	}
	if tok3.String() != tok2.String() {
		t.Errorf("next_batch moved from %s to %s with nothing applied", tok2, tok3)
	}

	// Events in other rooms of other users do not show up.
	other := w.createRoom("!other:hs", 1, carol, "shared")
	other.say(carol, "elsewhere")
	if resp, has, _ := w.sync(bob, &tok2, nil); has || len(resp.Rooms.Join) != 0 {
		t.Errorf("bob saw a room he is not in: %+v", resp.Rooms.Join)
	}
}

func TestIncrementalSyncLimitedGapCarriesStateDelta(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	_, _, tok := w.sync(alice, nil, nil)
	cj := r.join(carol)
	msgs := r.sayN(carol, 8)

	resp, _, _ := w.sync(alice, &tok, timelineLimit(3))
	jr := resp.Rooms.Join[r.id]
	if jr == nil {
		t.Fatal("room missing")
	}
	equalIDs(t, "timeline", ids(jr.Timeline.Events), msgs[5:])
	if !jr.Timeline.Limited {
		t.Error("gap of 9 events with limit 3 is not limited")
	}
	st := stateTypes(t, jr.State)
	if len(st) != 1 || st["m.room.member|"+carol].EventID != cj.EventID {
		t.Errorf("state of the gap = %v, want only carol's join", st)
	}
}

func TestSyncInvite(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	_, _, tok := w.sync(carol, nil, nil) // carol has no rooms yet
	inv := r.member(alice, carol, planb.MembershipInvite)

	resp, has, tok2 := w.sync(carol, &tok, nil)
	ir := resp.Rooms.Invite[r.id]
	if !has || ir == nil {
		t.Fatalf("invite missing: %+v", resp.Rooms)
	}
	if len(resp.Rooms.Join) != 0 || len(resp.Rooms.Leave) != 0 {
		t.Errorf("invited room also elsewhere: %+v", resp.Rooms)
	}
	got := map[string]StrippedEvent{}
	for _, e := range ir.InviteState.Events {
		got[e.Type+"|"+e.StateKey] = e
	}
	for _, k := range []string{"m.room.create|", "m.room.join_rules|", "m.room.name|", "m.room.member|" + carol} {
		if _, ok := got[k]; !ok {
			t.Errorf("invite_state lacks %s: %v", k, got)
		}
	}
	for _, k := range []string{"m.room.power_levels|", "m.room.history_visibility|", "m.room.member|" + alice} {
		if _, ok := got[k]; ok {
			t.Errorf("invite_state leaks %s", k)
		}
	}
	me := got["m.room.member|"+carol]
	if me.Sender != alice || string(me.Content) != string(inv.Content) {
		t.Errorf("stripped invite = %+v, want alice's %s", me, inv.Content)
	}
	var jr struct {
		JoinRule string `json:"join_rule"`
	}
	if err := json.Unmarshal(got["m.room.join_rules|"].Content, &jr); err != nil || jr.JoinRule != "public" {
		t.Errorf("stripped join rules %s", got["m.room.join_rules|"].Content)
	}

	// The invite is reported once by incremental syncs, always by initial ones.
	if resp, has, _ := w.sync(carol, &tok2, nil); has || len(resp.Rooms.Invite) != 0 {
		t.Errorf("invite repeated: %+v", resp.Rooms.Invite)
	}
	if resp, _, _ := w.sync(carol, nil, nil); resp.Rooms.Invite[r.id] == nil {
		t.Error("initial sync lost the pending invite")
	}

	// Joining moves the room to rooms.join with everything from the start.
	join := r.join(carol)
	resp, _, _ = w.sync(carol, &tok2, nil)
	if len(resp.Rooms.Invite) != 0 {
		t.Errorf("joined room still invited: %+v", resp.Rooms.Invite)
	}
	jrm := resp.Rooms.Join[r.id]
	if jrm == nil {
		t.Fatal("joined room missing")
	}
	equalIDs(t, "timeline after join", ids(jrm.Timeline.Events), r.timelineIDs())
	if last := jrm.Timeline.Events[len(jrm.Timeline.Events)-1]; last.EventID != join.EventID {
		t.Errorf("timeline ends with %s, want the join", last.EventID)
	}
}

func TestSyncLeaveShownOnce(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	before := r.say(alice, "before")
	_, _, tok := w.sync(bob, nil, nil)
	leave := r.leave(bob)
	after := r.say(alice, "after")

	resp, has, tok2 := w.sync(bob, &tok, nil)
	lr := resp.Rooms.Leave[r.id]
	if !has || lr == nil {
		t.Fatalf("left room missing from rooms.leave: %+v", resp.Rooms)
	}
	if resp.Rooms.Join[r.id] != nil {
		t.Error("left room still in rooms.join")
	}
	got := ids(lr.Timeline.Events)
	if len(got) == 0 || got[len(got)-1] != leave.EventID {
		t.Fatalf("leave timeline %v does not end with the leave %s", got, leave.EventID)
	}
	if contains(got, after.EventID) {
		t.Error("leave timeline shows an event sent after bob left")
	}
	if contains(got, before.EventID) {
		t.Error("incremental leave timeline repeats an event from before the token")
	}

	// Shown once: later syncs, even with new events in the room, leave it out.
	r.say(alice, "later")
	resp, has, _ = w.sync(bob, &tok2, includeLeave())
	if has || len(resp.Rooms.Leave)+len(resp.Rooms.Join) != 0 {
		t.Errorf("left room reported again: %v %+v", has, resp.Rooms)
	}

	// Initial syncs show it only with include_leave, and only up to the leave.
	if resp, _, _ := w.sync(bob, nil, nil); len(resp.Rooms.Leave)+len(resp.Rooms.Join) != 0 {
		t.Errorf("initial sync without include_leave shows %+v", resp.Rooms)
	}
	resp, _, _ = w.sync(bob, nil, includeLeave())
	lr = resp.Rooms.Leave[r.id]
	if lr == nil {
		t.Fatal("include_leave initial sync lacks the left room")
	}
	got = ids(lr.Timeline.Events)
	if got[len(got)-1] != leave.EventID || contains(got, after.EventID) {
		t.Errorf("include_leave timeline %v, want it to end at the leave %s", got, leave.EventID)
	}
}

func TestSyncForgottenRoom(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(bob, nil, nil)
	leave := r.leave(bob)
	if resp, _, _ := w.sync(bob, nil, includeLeave()); resp.Rooms.Leave[r.id] == nil {
		t.Fatal("left room missing before forgetting")
	}

	content, _ := json.Marshal(obj{"event_id": leave.EventID})
	w.m.ApplyAccountData(1, bob, r.id, ForgottenType, content)

	if resp, _, _ := w.sync(bob, nil, includeLeave()); len(resp.Rooms.Leave) != 0 {
		t.Errorf("forgotten room still in include_leave initial sync: %+v", resp.Rooms.Leave)
	}
	// A device that has not seen the leave yet learns of it, once.
	resp, _, tok2 := w.sync(bob, &tok, includeLeave())
	if resp.Rooms.Leave[r.id] == nil {
		t.Errorf("forgotten room missing from the incremental sync that spans its leave: %+v", resp.Rooms.Leave)
	}
	if resp, _, _ := w.sync(bob, &tok2, includeLeave()); len(resp.Rooms.Leave) != 0 {
		t.Errorf("forgotten room in a later incremental sync: %+v", resp.Rooms.Leave)
	}
	if len(resp.AccountData.Events) != 0 {
		t.Errorf("the forgotten marker leaked into account_data: %v", resp.AccountData.Events)
	}
	if _, err := w.m.AccountData(bob, r.id, ForgottenType); !errors.Is(err, planb.ErrNotFound) {
		t.Errorf("AccountData(forgotten) = %v, want ErrNotFound", err)
	}

	// Rejoining brings the room back.
	r.join(bob)
	resp, _, _ = w.sync(bob, &tok2, nil)
	if resp.Rooms.Join[r.id] == nil {
		t.Fatalf("rejoined room missing from incremental sync: %+v", resp.Rooms)
	}
	if resp, _, _ := w.sync(bob, nil, nil); resp.Rooms.Join[r.id] == nil {
		t.Fatalf("rejoined room missing from initial sync: %+v", resp.Rooms)
	}
	// Leaving again is a new membership event: the old forget does not hide it.
	leave2 := r.leave(bob)
	resp, _, _ = w.sync(bob, nil, includeLeave())
	lr := resp.Rooms.Leave[r.id]
	if lr == nil {
		t.Fatal("room left after a rejoin is hidden by the earlier forget")
	}
	if got := ids(lr.Timeline.Events); got[len(got)-1] != leave2.EventID {
		t.Errorf("timeline ends with %s, want the second leave", got[len(got)-1])
	}
}

func TestSyncRoomFilter(t *testing.T) {
	w := newWorld(t, 1)
	a := w.createRoom("!a:hs", 0, alice, "shared")
	b := w.createRoom("!b:hs", 0, alice, "shared")
	a.say(alice, "in a")
	f := &Filter{Room: &RoomFilter{NotRooms: []string{b.id},
		Timeline: &RoomEventFilter{EventFilter: EventFilter{Types: list(planb.TypeMessage)}}}}
	resp, _, _ := w.sync(alice, nil, f)
	if resp.Rooms.Join[b.id] != nil {
		t.Error("not_rooms room in sync")
	}
	jr := resp.Rooms.Join[a.id]
	if jr == nil {
		t.Fatal("room a missing")
	}
	if len(jr.Timeline.Events) != 1 || jr.Timeline.Events[0].Type != planb.TypeMessage {
		t.Errorf("timeline types filter let through %v", jr.Timeline.Events)
	}
}

func TestSyncLeavesOutIgnoredUsers(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	r.join(carol)
	ignored := w.createRoom("!i:hs", 0, carol, "shared")
	ignored.member(carol, bob, planb.MembershipInvite)
	other := w.createRoom("!o:hs", 0, alice, "shared")
	other.member(alice, bob, planb.MembershipInvite)
	if err := w.m.ApplyAccountData(1, bob, "", "m.ignored_user_list",
		json.RawMessage(`{"ignored_users":{"`+carol+`":{}}}`)); err != nil {
		t.Fatal(err)
	}
	hello := r.say(carol, "hello from carol")
	name := r.state(carol, planb.TypeMember, carol, obj{"membership": "join", "displayname": "Carol"})
	r.commit(name)
	fromAlice := r.say(alice, "hello from alice")

	resp, _, _ := w.sync(bob, nil, nil)
	if resp.Rooms.Invite[ignored.id] != nil || resp.Rooms.Invite[other.id] == nil {
		t.Errorf("invites %v, want alice's and not carol's", resp.Rooms.Invite)
	}
	tl := ids(resp.Rooms.Join[r.id].Timeline.Events)
	if contains(tl, hello.EventID) || !contains(tl, name.EventID) || !contains(tl, fromAlice.EventID) {
		t.Errorf("timeline %v: want carol's state event %s and alice's message %s, not carol's message %s", tl,
			name.EventID, fromAlice.EventID, hello.EventID)
	}
	// Others still see carol.
	if resp, _, _ := w.sync(alice, nil, nil); !contains(ids(resp.Rooms.Join[r.id].Timeline.Events), hello.EventID) {
		t.Error("alice lost carol's message")
	}
}

func TestEventsCarryTheViewersMembership(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	before := r.say(alice, "before bob")
	join := r.join(bob)
	after := r.say(alice, "after bob joined")
	resp, _, _ := w.sync(bob, nil, nil)
	got := map[string]string{}
	for _, e := range resp.Rooms.Join[r.id].Timeline.Events {
		got[e.EventID] = e.Unsigned.Membership
	}
	for id, want := range map[string]string{before.EventID: "leave", join.EventID: "join", after.EventID: "join"} {
		if got[id] != want {
			t.Errorf("unsigned.membership of %s = %q, want %q (all: %v)", id, got[id], want, got)
		}
	}
}

func TestSyncTimelineLimitZeroGivesStateOnly(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	r.say(alice, "before")
	leave := r.leave(bob)
	zero := 0
	f := &Filter{Room: &RoomFilter{IncludeLeave: true, Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: &zero}}}}
	resp, _, _ := w.sync(bob, nil, f)
	lr := resp.Rooms.Leave[r.id]
	if lr == nil {
		t.Fatalf("left room missing: %+v", resp.Rooms)
	}
	if len(lr.Timeline.Events) != 0 {
		t.Errorf("timeline %v with limit 0, want none", ids(lr.Timeline.Events))
	}
	if st := stateTypes(t, lr.State); st[planb.TypeMember+"|"+bob].EventID != leave.EventID {
		t.Errorf("state %v, want bob's leave %s", st, leave.EventID)
	}
}
