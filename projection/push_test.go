package projection

import (
	"encoding/json"
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
