package roomauth

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
)

func TestValidate(t *testing.T) {
	long := strings.Repeat("a", planb.MaxIDLength) // one byte more with any sigil
	big := func(n int) json.RawMessage { return json.RawMessage(`{"body":"` + strings.Repeat("x", n) + `"}`) }
	msg := func(f func(e *planb.Event)) *planb.Event {
		e := &planb.Event{EventID: "$e", RoomID: roomID, Sender: bob, Type: planb.TypeMessage,
			Content: json.RawMessage(`{"msgtype":"m.text","body":"hi"}`), PrevEvents: []string{"$p"}}
		if f != nil {
			f(e)
		}
		return e
	}
	member := func(target, content string) *planb.Event {
		return msg(func(e *planb.Event) {
			e.Type, e.StateKey, e.Content = planb.TypeMember, planb.StrPtr(target), json.RawMessage(content)
		})
	}
	for _, tc := range []struct {
		name   string
		ev     *planb.Event
		code   planb.ErrCode // "" when valid
		status int
		msg    string
	}{
		{"message", msg(nil), "", 0, ""},
		{"join", member(bob, `{"membership":"join","displayname":"B"}`), "", 0, ""},
		{"knock", member(bob, `{"membership":"knock"}`), "", 0, ""},
		{"redaction", msg(func(e *planb.Event) { e.Type, e.Redacts, e.Content = planb.TypeRedaction, "$x", json.RawMessage(`{}`) }), "", 0, ""},
		{"content just below the limit", msg(func(e *planb.Event) { e.Content = big(planb.MaxEventBytes - 300) }), "", 0, ""},
		{"nil event", nil, planb.CodeBadJSON, 400, "no event"},
		{"content too large", msg(func(e *planb.Event) { e.Content = big(planb.MaxEventBytes) }), planb.CodeTooLarge, 413, "more than the limit of 65536"},
		{"event too large", msg(func(e *planb.Event) { e.Content = big(planb.MaxEventBytes - 100) }), planb.CodeTooLarge, 413, "more than the limit"},
		{"content missing", msg(func(e *planb.Event) { e.Content = nil }), planb.CodeBadJSON, 400, "content must be a JSON object"},
		{"content an array", msg(func(e *planb.Event) { e.Content = json.RawMessage(`[]`) }), planb.CodeBadJSON, 400, "content must be a JSON object"},
		{"content a string", msg(func(e *planb.Event) { e.Content = json.RawMessage(`"{}"`) }), planb.CodeBadJSON, 400, "content must be a JSON object"},
		{"content invalid", msg(func(e *planb.Event) { e.Content = json.RawMessage(`{"a":}`) }), planb.CodeBadJSON, 400, "content must be a JSON object"},
		{"content with trailing data", msg(func(e *planb.Event) { e.Content = json.RawMessage(`{} {}`) }), planb.CodeBadJSON, 400, "content must be a JSON object"},
		{"type too long", msg(func(e *planb.Event) { e.Type = long + "a" }), planb.CodeBadJSON, 400, "type is 256 bytes long"},
		{"state key too long", msg(func(e *planb.Event) { e.StateKey = planb.StrPtr(long + "a") }), planb.CodeBadJSON, 400, "state_key is 256 bytes"},
		{"sender too long", msg(func(e *planb.Event) { e.Sender = "@" + long }), planb.CodeBadJSON, 400, "sender is 256 bytes"},
		{"room ID too long", msg(func(e *planb.Event) { e.RoomID = "!" + long }), planb.CodeBadJSON, 400, "room_id is 256 bytes"},
		{"event ID too long", msg(func(e *planb.Event) { e.EventID = "$" + long }), planb.CodeBadJSON, 400, "event_id is 256 bytes"},
		{"empty type", msg(func(e *planb.Event) { e.Type = "" }), planb.CodeBadJSON, 400, "event type must not be empty"},
		{"sender not a user ID", msg(func(e *planb.Event) { e.Sender = "bob" }), planb.CodeBadJSON, 400, `sender "bob" is not a valid user ID`},
		{"sender a room ID", msg(func(e *planb.Event) { e.Sender = "!bob:x" }), planb.CodeBadJSON, 400, "not a valid user ID"},
		{"member without state key", msg(func(e *planb.Event) { e.Type, e.Content = planb.TypeMember, json.RawMessage(`{"membership":"join"}`) }), planb.CodeBadJSON, 400, "must have a state_key"},
		{"member state key not a user ID", member("bob", `{"membership":"join"}`), planb.CodeBadJSON, 400, `state_key "bob" is not a valid user ID`},
		{"member without membership", member(bob, `{"displayname":"B"}`), planb.CodeBadJSON, 400, "must have a membership string"},
		{"membership not a string", member(bob, `{"membership":1}`), planb.CodeBadJSON, 400, "must have a membership string"},
		{"unknown membership", member(bob, `{"membership":"joined"}`), planb.CodeBadJSON, 400, `unknown membership "joined"`},
		{"redaction without target", msg(func(e *planb.Event) { e.Type = planb.TypeRedaction }), planb.CodeBadJSON, 400, "must name the event it redacts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate(tc.ev)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("invalid, want valid: %v", err)
				}
				return
			}
			pe, ok := planb.AsError(err)
			if !ok || pe.Code != tc.code || pe.Status != tc.status || !strings.Contains(pe.Message, tc.msg) {
				t.Fatalf("got %v, want %s (%d) containing %q", err, tc.code, tc.status, tc.msg)
			}
		})
	}
}
