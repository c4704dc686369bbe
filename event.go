package planb

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
)

// Event types planb treats specially.
const (
	TypeCreate            = "m.room.create"
	TypeMember            = "m.room.member"
	TypePowerLevels       = "m.room.power_levels"
	TypeJoinRules         = "m.room.join_rules"
	TypeHistoryVisibility = "m.room.history_visibility"
	TypeGuestAccess       = "m.room.guest_access"
	TypeName              = "m.room.name"
	TypeTopic             = "m.room.topic"
	TypeAvatar            = "m.room.avatar"
	TypeCanonicalAlias    = "m.room.canonical_alias"
	TypeEncryption        = "m.room.encryption"
	TypeRedaction         = "m.room.redaction"
	TypeMessage           = "m.room.message"
	TypeThirdPartyInvite  = "m.room.third_party_invite"
	TypeServerACL         = "m.room.server_acl"
)

// Membership values of m.room.member.
const (
	MembershipJoin   = "join"
	MembershipInvite = "invite"
	MembershipLeave  = "leave"
	MembershipBan    = "ban"
	MembershipKnock  = "knock"
)

// MaxEventBytes is the largest event the spec allows (65536 bytes of JSON).
const MaxEventBytes = 65536

// Event is a room event as it is stored in the log. Clients see it through
// the read models' client format, which adds "unsigned" and leaves out the
// graph fields (prev_events, depth).
type Event struct {
	EventID        string          `json:"event_id"`
	RoomID         string          `json:"room_id"`
	Sender         string          `json:"sender"`
	Type           string          `json:"type"`
	StateKey       *string         `json:"state_key,omitempty"`
	Content        json.RawMessage `json:"content"`
	Redacts        string          `json:"redacts,omitempty"`
	OriginServerTS int64           `json:"origin_server_ts"`
	Depth          int64           `json:"depth"`
	PrevEvents     []string        `json:"prev_events"`
}

// IsState reports whether the event is a state event.
func (e *Event) IsState() bool { return e.StateKey != nil }

// StateKeyOr returns the state key, or "" for a message event.
func (e *Event) StateKeyOr() string {
	if e.StateKey == nil {
		return ""
	}
	return *e.StateKey
}

// Membership returns content.membership of an m.room.member event, or "".
func (e *Event) Membership() string {
	if e.Type != TypeMember {
		return ""
	}
	var c struct {
		Membership string `json:"membership"`
	}
	_ = json.Unmarshal(e.Content, &c) // content was validated as an object when the event was built
	return c.Membership
}

// ComputeID sets EventID to the room-version-4+ form: "$" and the unpadded
// URL-safe base64 of the SHA-256 of the event's JSON without event_id.
// It is deterministic for identical events; two events with the same
// content differ by origin_server_ts or prev_events.
func (e *Event) ComputeID() {
	e.EventID = ""
	b, err := json.Marshal(e)
	if err != nil {
		panic("marshal event: " + err.Error()) // only RawMessage that was validated as JSON
	}
	sum := sha256.Sum256(b)
	e.EventID = "$" + base64.RawURLEncoding.EncodeToString(sum[:])
}

// StrPtr returns a pointer to s (for state keys).
func StrPtr(s string) *string { return &s }

// StateTuple names one entry of room state.
type StateTuple struct {
	Type     string
	StateKey string
}

// StateReader looks up the current state of one room. Get returns nil when
// the state entry does not exist.
type StateReader interface {
	Get(eventType, stateKey string) *Event
}

// StateMap is a StateReader over a map, used to build state step by step.
type StateMap map[StateTuple]*Event

// Get implements StateReader.
func (m StateMap) Get(eventType, stateKey string) *Event {
	return m[StateTuple{eventType, stateKey}]
}

// Apply records a state event in the map; message events are ignored.
func (m StateMap) Apply(e *Event) {
	if e.StateKey != nil {
		m[StateTuple{e.Type, *e.StateKey}] = e
	}
}
