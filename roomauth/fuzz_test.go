package roomauth

import (
	"encoding/json"
	"testing"

	"github.com/planb-chat/planb"
)

// fuzzEvent builds an event from arbitrary bytes: eventJSON is decoded as
// an event (a zero event when it does not decode), and content, when not
// empty, replaces its content without any validation.
func fuzzEvent(eventJSON, content []byte) *planb.Event {
	ev := &planb.Event{}
	if json.Unmarshal(eventJSON, ev) != nil {
		ev = &planb.Event{}
	}
	if len(content) > 0 {
		ev.Content = json.RawMessage(content)
	}
	return ev
}

// fuzzSeeds adds events of every rule family as seeds.
func fuzzSeeds(f *testing.F) {
	r := newRoom(f, JoinRuleKnockRestricted)
	for _, ev := range []*planb.Event{
		r.state1(alice, planb.TypeCreate, "", obj{"creator": alice, "room_version": "10"}),
		r.member(bob, bob, "join", obj{"join_authorised_via_users_server": alice}),
		r.member(alice, bob, "invite", obj{"third_party_invite": obj{"signed": obj{}}}),
		r.member(alice, bob, "ban"),
		r.member(bob, bob, "knock"),
		r.member(alice, alice, "leave"),
		r.pl(alice, obj{"users": obj{alice: 100, bob: 50}, "events": obj{"m.room.name": 50}, "notifications": obj{"room": 20}, "ban": 10}),
		r.state1(alice, planb.TypeJoinRules, "", obj{"join_rule": "restricted", "allow": []obj{{"type": "m.room_membership"}}}),
		r.state1(alice, "org.example", bob, obj{}),
		r.msg(alice),
	} {
		b, err := json.Marshal(ev)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, []byte(nil))
		f.Add(b, []byte(`{"membership":"join","users":{"@a:x":"1"},"ban":1e400,"events":null}`))
	}
	f.Add([]byte(`{"type":"m.room.member","sender":"@b:x","room_id":"!room:x"}`), []byte(`{"membership":"join"}`))
	f.Add([]byte(`not json`), []byte(`{`))
	f.Add([]byte(`{}`), []byte(`[]`))
}

// FuzzCheck feeds arbitrary events to Check against an empty room, a room
// without power levels and a populated room, and stores the arbitrary
// event as the room's power levels, join rules and membership to check
// that damaged state cannot make Check or ParsePowerLevels panic.
func FuzzCheck(f *testing.F) {
	fuzzSeeds(f)
	bare := bareRoom(f).state
	full := newRoom(f, JoinRuleRestricted)
	mods(full)
	// Probes are built here: the room builder may not run inside the target.
	probes := []*planb.Event{full.member(dave, dave, "join", obj{"join_authorised_via_users_server": bob}), full.msg(dave)}
	f.Fuzz(func(t *testing.T, eventJSON, content []byte) {
		ev := fuzzEvent(eventJSON, content)
		for _, state := range []planb.StateReader{nil, planb.StateMap{}, bare, full.state} {
			_ = Check(ev, state)
		}
		_ = CheckRedaction(ev, ev, full.state)
		if ev.Type == planb.TypeRedaction {
			_ = CheckRedaction(ev, nil, bare)
		}
		for _, typ := range []string{planb.TypePowerLevels, planb.TypeJoinRules, planb.TypeMember, planb.TypeCreate} {
			damaged := *ev
			damaged.Type, damaged.RoomID, damaged.StateKey = typ, roomID, planb.StrPtr("")
			if typ == planb.TypeMember {
				damaged.StateKey = planb.StrPtr(dave)
			}
			state := stateWith(full.state, &damaged)
			_ = ParsePowerLevels(state)
			for _, p := range probes {
				_ = Check(p, state)
			}
			_ = Check(ev, state)
		}
		if out := RedactContent(ev.Type, ev.Content); !isJSONObject(out) {
			t.Fatalf("RedactContent(%q, %q) = %q, not a JSON object", ev.Type, ev.Content, out)
		}
	})
}

// FuzzValidate feeds arbitrary events to Validate. Whatever it accepts must
// be an event Check, RedactContent and JSON encoding handle, within size.
func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	full := newRoom(f, JoinRulePublic)
	f.Fuzz(func(t *testing.T, eventJSON, content []byte) {
		ev := fuzzEvent(eventJSON, content)
		if Validate(ev) != nil {
			return
		}
		b, err := json.Marshal(ev)
		if err != nil || len(b) > planb.MaxEventBytes {
			t.Fatalf("valid event does not encode within the limit: %d bytes, %v", len(b), err)
		}
		if !isJSONObject(ev.Content) || !planb.ValidUserID(ev.Sender) {
			t.Fatalf("valid event with bad content or sender: %s", b)
		}
		if ev.Type == planb.TypeMember && (ev.StateKey == nil || ev.Membership() == "") {
			t.Fatalf("valid member event without target or membership: %s", b)
		}
		_ = Check(ev, full.state)
		if out := RedactContent(ev.Type, ev.Content); !isJSONObject(out) {
			t.Fatalf("RedactContent of a valid event is not an object: %s", out)
		}
	})
}
