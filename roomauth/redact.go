package roomauth

import (
	"bytes"
	"encoding/json"

	"github.com/planb-chat/planb"
)

// redactKeep lists the content keys the room version 10 redaction
// algorithm keeps for each event type (the spec's "v9 redactions"; v10 did
// not change them). Content of any other type is emptied.
var redactKeep = map[string][]string{
	planb.TypeMember:            {"membership", "join_authorised_via_users_server"},
	planb.TypeCreate:            {"creator"},
	planb.TypeJoinRules:         {"join_rule", "allow"},
	planb.TypePowerLevels:       {"ban", "events", "events_default", "kick", "redact", "state_default", "users", "users_default"},
	planb.TypeHistoryVisibility: {"history_visibility"},
}

// RedactContent returns the content an event of eventType keeps after
// redaction in a room version 10 room: only the keys the spec protects for
// that type, with their values unchanged; "{}" for every other type and for
// content that is not a JSON object. The result is always a JSON object.
func RedactContent(eventType string, content json.RawMessage) json.RawMessage {
	keep := redactKeep[eventType]
	if len(keep) == 0 {
		return json.RawMessage("{}")
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(content, &c) != nil {
		return json.RawMessage("{}")
	}
	out := make(map[string]json.RawMessage, len(keep))
	for _, k := range keep {
		if v, ok := c[k]; ok {
			out[k] = v
		}
	}
	// An encoder without HTML escaping keeps the values as they were sent.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(out) != nil {
		return json.RawMessage("{}") // cannot happen: the values were decoded from JSON
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// Redact returns a copy of ev as the room version 10 redaction algorithm
// leaves it: content reduced by RedactContent and the top-level "redacts"
// key removed (the algorithm does not keep it before room version 11). The
// graph and identity fields are kept, so the event ID of the original still
// names it. ev is not modified.
func Redact(ev *planb.Event) *planb.Event {
	out := *ev
	out.Content = RedactContent(ev.Type, ev.Content)
	out.Redacts = ""
	out.PrevEvents = append([]string(nil), ev.PrevEvents...)
	if ev.StateKey != nil {
		out.StateKey = planb.StrPtr(*ev.StateKey)
	}
	return &out
}
