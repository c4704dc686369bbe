package roomauth

import (
	"encoding/json"
	"testing"

	"github.com/planb-chat/planb"
)

func TestRedactContent(t *testing.T) {
	for _, tc := range []struct {
		name, typ, content, want string
	}{
		{"member", planb.TypeMember,
			`{"membership":"join","displayname":"Bob","avatar_url":"mxc://x/y","join_authorised_via_users_server":"@alice:x","reason":"r"}`,
			`{"join_authorised_via_users_server":"@alice:x","membership":"join"}`},
		{"create keeps only creator", planb.TypeCreate, `{"creator":"@alice:x","room_version":"10","m.federate":false}`,
			`{"creator":"@alice:x"}`},
		{"join rules", planb.TypeJoinRules, `{"join_rule":"restricted","allow":[{"type":"m.room_membership","room_id":"!s:x"}],"x":1}`,
			`{"allow":[{"type":"m.room_membership","room_id":"!s:x"}],"join_rule":"restricted"}`},
		{"power levels drop invite and notifications", planb.TypePowerLevels,
			`{"ban":50,"events":{"m.room.name":50},"events_default":0,"invite":0,"kick":50,"notifications":{"room":50},"redact":50,"state_default":50,"users":{"@alice:x":100},"users_default":0}`,
			`{"ban":50,"events":{"m.room.name":50},"events_default":0,"kick":50,"redact":50,"state_default":50,"users":{"@alice:x":100},"users_default":0}`},
		{"history visibility", planb.TypeHistoryVisibility, `{"history_visibility":"shared","x":1}`, `{"history_visibility":"shared"}`},
		{"message", planb.TypeMessage, `{"msgtype":"m.text","body":"secret"}`, `{}`},
		{"redaction", planb.TypeRedaction, `{"reason":"spam","redacts":"$x"}`, `{}`},
		{"name", planb.TypeName, `{"name":"n"}`, `{}`},
		{"missing kept keys stay missing", planb.TypeMember, `{"displayname":"Bob"}`, `{}`},
		{"values kept byte for byte", planb.TypeJoinRules, `{"join_rule":"a<b&c"}`, `{"join_rule":"a<b&c"}`},
		{"not an object", planb.TypeMember, `["membership"]`, `{}`},
		{"invalid JSON", planb.TypeMember, `{"membership":`, `{}`},
		{"empty", planb.TypeMember, ``, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(RedactContent(tc.typ, json.RawMessage(tc.content))); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	ev := &planb.Event{EventID: "$e", RoomID: roomID, Sender: bob, Type: planb.TypeMember, StateKey: planb.StrPtr(bob),
		Content: json.RawMessage(`{"membership":"join","displayname":"Bob"}`), Redacts: "$stray", Depth: 3, PrevEvents: []string{"$p"}}
	got := Redact(ev)
	if string(got.Content) != `{"membership":"join"}` || got.Redacts != "" {
		t.Fatalf("redacted event: content %s, redacts %q", got.Content, got.Redacts)
	}
	if got.EventID != "$e" || got.Sender != bob || got.StateKeyOr() != bob || got.Depth != 3 || got.PrevEvents[0] != "$p" {
		t.Fatalf("redaction changed protected fields: %+v", got)
	}
	got.PrevEvents[0], *got.StateKey = "$changed", "changed"
	if string(ev.Content) != `{"membership":"join","displayname":"Bob"}` || ev.Redacts != "$stray" ||
		ev.PrevEvents[0] != "$p" || *ev.StateKey != bob {
		t.Fatalf("Redact modified its argument: %+v", ev)
	}
}
