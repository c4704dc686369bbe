package projection

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/planb-chat/planb/pushrules"
)

// Unread counts follow the user's push rules, evaluated: a DM notifies, an
// edit or a reaction does not, a room rule without notify mutes the room,
// and a change of the rules counts again.
func TestUnreadFollowsPushRules(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	first := r.say(bob, "hello")
	r.send(bob, obj{"msgtype": "m.text", "body": "* hello", "m.new_content": obj{"msgtype": "m.text", "body": "hello"},
		"m.relates_to": obj{"rel_type": "m.replace", "event_id": first.EventID}})
	r.commit(r.event(bob, "m.reaction", nil, obj{"m.relates_to": obj{"rel_type": "m.annotation", "event_id": first.EventID, "key": "👍"}}))
	r.commit(r.state(bob, "m.room.topic", "", obj{"topic": "plans"}))
	r.send(bob, obj{"msgtype": "m.text", "body": "everyone", "m.mentions": obj{"room": true}}) // bob has level 0: no highlight

	counts := func() Unread {
		t.Helper()
		resp, _, _ := w.sync(alice, nil, nil)
		return resp.Rooms.Join[r.id].UnreadNotifications
	}
	if got := counts(); got != (Unread{Notifications: 2}) {
		t.Errorf("before rules: %+v, want 2 notifications (the message and the room mention; not the edit, reaction or topic)", got)
	}

	mute := &pushrules.Stored{}
	if err := mute.Put(pushrules.KindRoom, r.id, json.RawMessage(`{"actions":[]}`), "", ""); err != nil {
		t.Fatal(err)
	}
	raw, err := mute.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.m.ApplyAccountData(1, alice, "", pushrules.EventType, raw); err != nil {
		t.Fatal(err)
	}
	r.say(bob, "are you there?")
	if got := counts(); got != (Unread{}) {
		t.Errorf("muted room: %+v, want nothing", got)
	}

	// A keyword rule that highlights, and the room unmuted.
	kw := &pushrules.Stored{}
	if err := kw.Put(pushrules.KindContent, "lunch", json.RawMessage(`{"actions":["notify",{"set_tweak":"highlight"}],"pattern":"lunch"}`), "", ""); err != nil {
		t.Fatal(err)
	}
	raw, _ = kw.Marshal()
	if err := w.m.ApplyAccountData(2, alice, "", pushrules.EventType, raw); err != nil {
		t.Fatal(err)
	}
	r.say(bob, "Lunch at noon?")
	if got := counts(); got != (Unread{Notifications: 4, Highlights: 1}) {
		t.Errorf("with a keyword rule: %+v, want 4 notifications and 1 highlight", got)
	}
}

// GET /notifications lists what the rules say notify, newest first, with
// read flags from the receipt, only highlights on request, and pages.
func TestNotificationsList(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	first := r.say(bob, "one")
	r.send(bob, obj{"msgtype": "m.notice", "body": "bot"})
	mention := r.send(bob, obj{"msgtype": "m.text", "body": "two", "m.mentions": obj{"user_ids": []string{alice}}})
	third := r.say(bob, "three")
	r.say(alice, "mine")
	if err := w.m.ApplyReceipt(1, r.id, alice, "m.read", Receipt{EventID: first.EventID}); err != nil {
		t.Fatal(err)
	}
	page, err := w.m.Notifications(alice, "", "", 10, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range page.Notifications {
		got = append(got, n.Event.EventID)
		if n.RoomID != r.id || n.TS == 0 || len(n.Actions) == 0 {
			t.Errorf("notification %+v", n)
		}
		if n.Read != (n.Event.EventID == first.EventID) {
			t.Errorf("%s read = %v", n.Event.EventID, n.Read)
		}
	}
	if want := []string{third.EventID, mention.EventID, first.EventID}; strings.Join(got, ",") != strings.Join(want, ",") || page.NextToken != "" {
		t.Fatalf("notifications %v (next %q), want %v", got, page.NextToken, want)
	}
	hl, err := w.m.Notifications(alice, "", "", 10, true)
	if err != nil || len(hl.Notifications) != 1 || hl.Notifications[0].Event.EventID != mention.EventID {
		t.Errorf("only highlights: %+v %v", hl, err)
	}
	p1, err := w.m.Notifications(alice, "", "", 2, false)
	if err != nil || len(p1.Notifications) != 2 || p1.NextToken == "" {
		t.Fatalf("first page of 2: %+v %v", p1, err)
	}
	p2, err := w.m.Notifications(alice, "", p1.NextToken, 2, false)
	if err != nil || len(p2.Notifications) != 1 || p2.Notifications[0].Event.EventID != first.EventID || p2.NextToken != "" {
		t.Errorf("second page: %+v %v", p2, err)
	}
	if _, err := w.m.Notifications(alice, "", "garbage", 2, false); err == nil {
		t.Errorf("a bad from token was accepted")
	}
}
