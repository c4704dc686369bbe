package projection

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/planb-chat/planb"
)

// readAll pages backwards through everything user may read of the room.
func readAll(t *testing.T, w *world, user string, r *room) []string {
	t.Helper()
	page, err := w.m.Messages(user, "DEV", r.id, "", "", true, maxPage, nil)
	if err != nil {
		t.Fatalf("messages for %s: %v", user, err)
	}
	out := ids(page.Chunk)
	slices.Reverse(out)
	return out
}

func TestHistoryVisibilitySharedShowsEarlierEvents(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	m1 := r.say(alice, "one")
	r.join(bob)
	m2 := r.say(alice, "two")

	got := readAll(t, w, bob, r)
	if !contains(got, m1.EventID) || !contains(got, m2.EventID) {
		t.Errorf("shared room: bob reads %v, want both %s and %s", got, m1.EventID, m2.EventID)
	}
	if _, err := w.m.Event(bob, "DEV", r.id, m1.EventID); err != nil {
		t.Errorf("Event(m1) for bob in a shared room: %v", err)
	}
	resp, _, _ := w.sync(bob, nil, nil)
	if tl := ids(resp.Rooms.Join[r.id].Timeline.Events); !contains(tl, m1.EventID) {
		t.Errorf("initial sync timeline %v lacks the earlier %s", tl, m1.EventID)
	}
}

func TestHistoryVisibilityJoinedHidesEarlierEvents(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "joined")
	m1 := r.say(alice, "one")
	join := r.join(bob)
	m2 := r.say(alice, "two")

	got := readAll(t, w, bob, r)
	if contains(got, m1.EventID) {
		t.Errorf("joined room: bob reads %s, sent before he joined", m1.EventID)
	}
	if !contains(got, join.EventID) || !contains(got, m2.EventID) {
		t.Errorf("bob reads %v, want his join and %s", got, m2.EventID)
	}
	_, err := w.m.Event(bob, "DEV", r.id, m1.EventID)
	wantCode(t, "Event(m1) for bob", err, planb.CodeNotFound, http.StatusNotFound)
	resp, _, _ := w.sync(bob, nil, nil)
	if tl := ids(resp.Rooms.Join[r.id].Timeline.Events); contains(tl, m1.EventID) {
		t.Errorf("initial sync timeline %v shows %s from before the join", tl, m1.EventID)
	}
	// alice, joined all along, reads everything.
	if got := readAll(t, w, alice, r); !contains(got, m1.EventID) {
		t.Errorf("alice lost %s", m1.EventID)
	}
}

func TestLeftUserCannotReadAfterLeaving(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	m1 := r.say(alice, "while bob is here")
	leave := r.leave(bob)
	m2 := r.say(alice, "after bob left")
	r.commit(r.state(alice, planb.TypeName, "", obj{"name": "renamed"}))
	m3 := r.say(alice, "later still")
	afterLeave := []string{m2.EventID, m3.EventID}

	got := readAll(t, w, bob, r)
	if len(got) == 0 || got[len(got)-1] != leave.EventID {
		t.Fatalf("bob's history %v does not end with his leave", got)
	}
	if !contains(got, m1.EventID) {
		t.Errorf("bob lost %s, sent while he was joined", m1.EventID)
	}
	// Every way of naming a later position stops at the leave.
	for _, from := range []string{"", topoToken(len(r.timelineIDs())), topoToken(1 << 20), w.m.Position().String()} {
		for _, backwards := range []bool{true, false} {
			start := from
			if !backwards {
				start = "t0"
			}
			page, err := w.m.Messages(bob, "DEV", r.id, start, "", backwards, 100, nil)
			if err != nil {
				t.Fatalf("messages from %q: %v", start, err)
			}
			for _, id := range ids(page.Chunk) {
				if contains(afterLeave, id) {
					t.Errorf("messages from %q backwards=%v shows %s, sent after bob left", start, backwards, id)
				}
			}
		}
	}
	for _, id := range afterLeave {
		_, err := w.m.Event(bob, "DEV", r.id, id)
		wantCode(t, "Event after leave", err, planb.CodeNotFound, http.StatusNotFound)
	}
	ctx, err := w.m.Context(bob, "DEV", r.id, m1.EventID, 20, nil)
	if err != nil {
		t.Fatalf("context: %v", err)
	}
	for _, id := range ids(ctx.EventsAfter) {
		if contains(afterLeave, id) {
			t.Errorf("context shows %s, sent after bob left", id)
		}
	}
	// State is as it was when bob left.
	name, err := w.m.StateEvent(bob, r.id, planb.TypeName, "")
	if err != nil {
		t.Fatalf("state event: %v", err)
	}
	if string(name.Content) == `{"name":"renamed"}` {
		t.Error("bob sees the name set after he left")
	}
}

// The spec's history visibility algorithm: "If the history_visibility was
// set to shared, and the user was joined to the room at any point after the
// event was sent, allow." Leaving later does not take that away.
func TestHistoryVisibilitySharedBeforeJoinStaysReadableAfterLeaving(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	m1 := r.say(alice, "before bob joined")
	r.join(bob)
	r.say(alice, "while bob is here")
	r.leave(bob)

	if got := readAll(t, w, bob, r); !contains(got, m1.EventID) {
		t.Errorf("bob, who joined after %s in a shared room and then left, reads only %v", m1.EventID, got)
	}
	if _, err := w.m.Event(bob, "DEV", r.id, m1.EventID); err != nil {
		t.Errorf("Event(%s) for bob after leaving: %v", m1.EventID, err)
	}
}

func TestOutsiderIsForbidden(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	m1 := r.say(alice, "private")
	for _, roomID := range []string{r.id, "!missing:hs"} {
		checks := map[string]error{}
		_, checks["Messages"] = w.m.Messages(eve, "DEV", roomID, "", "", true, 10, nil)
		_, checks["Context"] = w.m.Context(eve, "DEV", roomID, m1.EventID, 10, nil)
		_, checks["Event"] = w.m.Event(eve, "DEV", roomID, m1.EventID)
		_, checks["State"] = w.m.State(eve, roomID)
		_, checks["StateEvent"] = w.m.StateEvent(eve, roomID, planb.TypeName, "")
		_, checks["Members"] = w.m.Members(eve, roomID, "", "", "")
		_, checks["JoinedMembers"] = w.m.JoinedMembers(eve, roomID)
		for name, err := range checks {
			if name == "Event" { // the spec's 404: the event is missing or not the user's to read
				wantCode(t, name+" "+roomID, err, planb.CodeNotFound, http.StatusNotFound)
				continue
			}
			wantCode(t, name+" "+roomID, err, planb.CodeForbidden, http.StatusForbidden)
		}
	}
}

func TestMessagesPaginationRoundTrip(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	for i := range 23 {
		r.say([]string{alice, bob}[i%2], "msg")
	}
	all := r.timelineIDs()

	type pageTokens struct {
		start, end string
		chunk      []string
	}
	var pages []pageTokens
	var back []string
	from := ""
	for n := 0; ; n++ {
		if n > 100 {
			t.Fatal("backwards pagination does not end")
		}
		page, err := w.m.Messages(bob, "DEV", r.id, from, "", true, 4, nil)
		if err != nil {
			t.Fatalf("messages backwards from %q: %v", from, err)
		}
		if len(page.Chunk) > 4 {
			t.Fatalf("page of %d events with limit 4", len(page.Chunk))
		}
		if from != "" && page.Start != from {
			t.Errorf("start %q, want the from token %q", page.Start, from)
		}
		pages = append(pages, pageTokens{page.Start, page.End, ids(page.Chunk)})
		back = append(back, ids(page.Chunk)...)
		if page.End == "" {
			break
		}
		from = page.End
	}
	slices.Reverse(back)
	equalIDs(t, "backwards pagination", back, all)

	// Paging forwards between a backwards page's end and start gives the
	// same events in the other order.
	deepest := ""
	for _, p := range pages {
		if p.end == "" {
			continue
		}
		deepest = p.end
		page, err := w.m.Messages(bob, "DEV", r.id, p.end, p.start, false, 100, nil)
		if err != nil {
			t.Fatalf("messages forwards %s..%s: %v", p.end, p.start, err)
		}
		want := slices.Clone(p.chunk)
		slices.Reverse(want)
		equalIDs(t, "forwards "+p.end+".."+p.start, ids(page.Chunk), want)
	}

	// Paging forwards from the deepest end token, which sits right before
	// the oldest event of the page it ended, reaches the newest event.
	if len(pages) < 2 {
		t.Fatalf("%d pages, want several", len(pages))
	}
	ended := pages[len(pages)-2].chunk
	n := slices.Index(all, ended[len(ended)-1])
	var fwd []string
	from = deepest
	for pagesN := 0; ; pagesN++ {
		if pagesN > 100 {
			t.Fatal("forwards pagination does not end")
		}
		page, err := w.m.Messages(bob, "DEV", r.id, from, "", false, 5, nil)
		if err != nil {
			t.Fatalf("messages forwards from %q: %v", from, err)
		}
		fwd = append(fwd, ids(page.Chunk)...)
		if page.End == "" {
			break
		}
		from = page.End
	}
	equalIDs(t, "forwards pagination from "+deepest, fwd, all[n:])

	// to bounds a page.
	page, err := w.m.Messages(bob, "DEV", r.id, "t20", "t10", true, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(all[10:20])
	slices.Reverse(want)
	equalIDs(t, "t20 back to t10", ids(page.Chunk), want)
}

func TestMessagesFromSyncToken(t *testing.T) {
	w := newWorld(t, 2)
	w.createRoom("!noise:hs", 0, carol, "shared").sayN(carol, 3) // another partition moves too
	r := w.createRoom("!r:hs", 1, alice, "shared")
	early := r.sayN(alice, 10)
	_, _, tok := w.sync(alice, nil, nil)
	late := r.sayN(alice, 5)

	page, err := w.m.Messages(alice, "DEV", r.id, tok.String(), "", true, 3, nil)
	if err != nil {
		t.Fatalf("messages from a sync token: %v", err)
	}
	equalIDs(t, "backwards from the sync token", ids(page.Chunk), []string{early[9], early[8], early[7]})

	page, err = w.m.Messages(alice, "DEV", r.id, tok.String(), "", false, 10, nil)
	if err != nil {
		t.Fatalf("messages forwards from a sync token: %v", err)
	}
	equalIDs(t, "forwards from the sync token", ids(page.Chunk), late)
	if page.End != "" {
		t.Errorf("forwards page reached the end but has end %q", page.End)
	}

	for _, bad := range []string{"garbage", "s1_2_3", "t-1", "s1_2_3_4_5_6", "s1_2_3_4_5_6_7_8_9"} {
		_, err := w.m.Messages(alice, "DEV", r.id, bad, "", true, 3, nil)
		wantCode(t, "from "+bad, err, planb.CodeInvalidParam, http.StatusBadRequest)
	}
}

func TestRedaction(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	secret := r.send(alice, obj{"msgtype": "m.text", "body": "secret", "url": "mxc://hs/x"})
	unreadBefore := unreadOf(t, w, bob, r.id)

	// A redaction in another room does not touch the event.
	other := w.createRoom("!other:hs", 1, alice, "shared")
	other.commit(other.redaction(alice, secret.EventID))
	ev, err := w.m.Event(bob, "DEV", r.id, secret.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Unsigned.RedactedBecause != nil || string(ev.Content) != string(secret.Content) {
		t.Fatalf("a redaction in another room redacted the event: %+v", ev)
	}

	red := r.redaction(alice, secret.EventID)
	r.commit(red)
	ev, err = w.m.Event(bob, "DEV", r.id, secret.EventID)
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Content) != "{}" {
		t.Errorf("redacted content = %s, want {}", ev.Content)
	}
	rb := ev.Unsigned.RedactedBecause
	if rb == nil || rb.EventID != red.EventID || rb.Redacts != secret.EventID || rb.Sender != alice || rb.Type != planb.TypeRedaction {
		t.Fatalf("redacted_because = %+v, want the redaction %s", rb, red.EventID)
	}
	// Sync and /messages show the redacted form too.
	resp, _, _ := w.sync(bob, nil, nil)
	for _, e := range resp.Rooms.Join[r.id].Timeline.Events {
		if e.EventID == secret.EventID && (string(e.Content) != "{}" || e.Unsigned.RedactedBecause == nil) {
			t.Errorf("sync shows the redacted event as %s", e.Content)
		}
	}
	if got := unreadOf(t, w, bob, r.id); got != unreadBefore-1 {
		t.Errorf("unread after redaction = %d, want %d", got, unreadBefore-1)
	}

	// A second redaction keeps the first as the reason.
	r.commit(r.redaction(bob, secret.EventID))
	ev, _ = w.m.Event(bob, "DEV", r.id, secret.EventID)
	if ev.Unsigned.RedactedBecause.EventID != red.EventID {
		t.Errorf("redacted_because moved to %s", ev.Unsigned.RedactedBecause.EventID)
	}

	// Redacting a member event keeps the membership only.
	creatorJoin := w.m.LastMembershipEvent(r.id, alice)
	r.commit(r.redaction(alice, creatorJoin))
	ev, err = w.m.Event(bob, "DEV", r.id, creatorJoin)
	if err != nil {
		t.Fatal(err)
	}
	if string(ev.Content) != `{"membership":"join"}` {
		t.Errorf("redacted member content = %s, want only the membership", ev.Content)
	}
}

// redaction returns an m.room.redaction of target.
func (r *room) redaction(sender, target string) *planb.Event {
	ev := r.event(sender, planb.TypeRedaction, nil, obj{"reason": "test"})
	ev.Redacts = target
	ev.ComputeID()
	r.last = ev.EventID
	return ev
}

// unreadOf returns user's notification count in roomID from an initial sync.
func unreadOf(t *testing.T, w *world, user, roomID string) int {
	t.Helper()
	resp, _, _ := w.sync(user, nil, nil)
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		t.Fatalf("%s is not joined to %s", user, roomID)
	}
	return jr.UnreadNotifications.Notifications
}

func TestTransactionIDOnlyForSendingDevice(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	plain := r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "a"})
	withTxn := r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "b"})
	r.commitTxns([]planb.Txn{{Event: 1, Key: "key1", DeviceID: "DEV", TxnID: "txn1"}}, plain, withTxn)

	if got, err := w.m.TxnEvent("key1"); err != nil || got == nil || got.EventID != withTxn.EventID {
		t.Fatalf("TxnEvent(key1) = %v, %v, want %s", got, err, withTxn.EventID)
	}
	for _, c := range []struct {
		user, device, id, want string
	}{
		{alice, "DEV", withTxn.EventID, "txn1"},
		{alice, "OTHER", withTxn.EventID, ""},
		{bob, "DEV", withTxn.EventID, ""},
		{alice, "DEV", plain.EventID, ""},
	} {
		ev, err := w.m.Event(c.user, c.device, r.id, c.id)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Unsigned.TransactionID != c.want {
			t.Errorf("%s/%s sees transaction_id %q on %s, want %q", c.user, c.device, ev.Unsigned.TransactionID, c.id, c.want)
		}
	}
}

// Once redacted, an event's content is gone from every view the server
// gives, including those built from the current state: invite_state and
// joined_members.
func TestRedactedStateContentNotServed(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	bobJoin := r.state(bob, planb.TypeMember, bob, obj{"membership": "join", "displayname": "Secret Bob"})
	r.commit(bobJoin)
	name := w.m.StateGet(r.id, planb.TypeName, "")
	r.commit(r.redaction(alice, name.EventID))
	r.commit(r.redaction(bob, bobJoin.EventID))

	// The state API already serves the redacted form.
	ev, err := w.m.StateEvent(alice, r.id, planb.TypeName, "")
	if err != nil || string(ev.Content) != "{}" {
		t.Fatalf("state API name = %v %v, want content {}", ev, err)
	}

	r.member(alice, carol, planb.MembershipInvite)
	resp, _, _ := w.sync(carol, nil, nil)
	for _, e := range resp.Rooms.Invite[r.id].InviteState.Events {
		if e.Type == planb.TypeName && string(e.Content) != "{}" {
			t.Errorf("invite_state serves the redacted name event's content %s", e.Content)
		}
	}

	jm, err := w.m.JoinedMembers(alice, r.id)
	if err != nil {
		t.Fatal(err)
	}
	if dn := jm[bob].DisplayName; dn != nil {
		t.Errorf("joined_members serves the display name %q of a redacted member event", *dn)
	}
}

func TestForgottenRoomIsNotReadable(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	m1 := r.say(alice, "hello")
	leave := r.leave(bob)
	if _, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 10, nil); err != nil {
		t.Fatalf("bob reads the room he left: %v", err)
	}
	content, _ := json.Marshal(obj{"event_id": leave.EventID})
	if err := w.m.ApplyAccountData(1, bob, r.id, ForgottenType, content); err != nil {
		t.Fatal(err)
	}
	_, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 10, nil)
	wantCode(t, "Messages after forgetting", err, planb.CodeForbidden, http.StatusForbidden)
	_, err = w.m.Event(bob, "DEV", r.id, m1.EventID)
	wantCode(t, "Event after forgetting", err, planb.CodeNotFound, http.StatusNotFound)
	// Joining again gives the history back.
	r.join(bob)
	if _, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 10, nil); err != nil {
		t.Errorf("bob reads the room after joining again: %v", err)
	}
}
