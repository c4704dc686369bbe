package roomauth

import (
	"bytes"
	"encoding/json"
	"net/http"

	"github.com/planb-chat/planb"
)

// Validate checks the structure of ev before the authorization rules run:
// the size limits of the spec ("Size limits" of the client-server API), a
// JSON object as content, a valid sender and, for m.room.member, a valid
// target and a known membership. It returns nil when ev is well formed,
// an M_TOO_LARGE (413) *planb.Error when the event's JSON exceeds
// planb.MaxEventBytes, and an M_BAD_JSON (400) *planb.Error for any other
// problem.
func Validate(ev *planb.Event) error {
	if ev == nil {
		return planb.BadJSON("no event")
	}
	if len(ev.Content) > planb.MaxEventBytes {
		return tooLarge(len(ev.Content))
	}
	if !isJSONObject(ev.Content) {
		return planb.BadJSON("content must be a JSON object")
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return planb.BadJSON("event does not encode as JSON: %v", err)
	}
	if len(b) > planb.MaxEventBytes {
		return tooLarge(len(b))
	}
	for _, f := range []struct{ name, value string }{
		{"type", ev.Type},
		{"state_key", ev.StateKeyOr()},
		{"sender", ev.Sender},
		{"room_id", ev.RoomID},
		{"event_id", ev.EventID},
	} {
		if len(f.value) > planb.MaxIDLength {
			return planb.BadJSON("%s is %d bytes long, more than the limit of %d", f.name, len(f.value), planb.MaxIDLength)
		}
	}
	if ev.Type == "" {
		return planb.BadJSON("event type must not be empty")
	}
	if !planb.ValidUserID(ev.Sender) {
		return planb.BadJSON("sender %q is not a valid user ID", ev.Sender)
	}
	switch ev.Type {
	case planb.TypeMember:
		if ev.StateKey == nil {
			return planb.BadJSON("m.room.member must have a state_key")
		}
		if !planb.ValidUserID(*ev.StateKey) {
			return planb.BadJSON("m.room.member state_key %q is not a valid user ID", *ev.StateKey)
		}
		var c struct {
			Membership any `json:"membership"`
		}
		_ = json.Unmarshal(ev.Content, &c) // content is a valid object, checked above
		m, ok := c.Membership.(string)
		if !ok {
			return planb.BadJSON("m.room.member content must have a membership string")
		}
		switch m {
		case planb.MembershipJoin, planb.MembershipInvite, planb.MembershipLeave, planb.MembershipBan, planb.MembershipKnock:
		default:
			return planb.BadJSON("unknown membership %q", m)
		}
	case planb.TypeRedaction:
		if ev.Redacts == "" {
			return planb.BadJSON("m.room.redaction must name the event it redacts")
		}
	}
	return nil
}

// tooLarge is the error for an event over planb.MaxEventBytes.
func tooLarge(n int) error {
	return planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge,
		"event is %d bytes, more than the limit of %d", n, planb.MaxEventBytes)
}

// isJSONObject reports whether raw is valid JSON whose value is an object.
func isJSONObject(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) > 0 && t[0] == '{' && json.Valid(t)
}
