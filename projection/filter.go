package projection

import (
	"strings"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// Filter is a sync filter (spec: POST /user/{userId}/filter).
type Filter struct {
	EventFields []string     `json:"event_fields,omitempty"`
	EventFormat string       `json:"event_format,omitempty"`
	AccountData *EventFilter `json:"account_data,omitempty"`
	Presence    *EventFilter `json:"presence,omitempty"`
	Room        *RoomFilter  `json:"room,omitempty"`
}

// EventFilter selects events by type and sender.
type EventFilter struct {
	Limit      *int      `json:"limit,omitempty"` // nil: the default; 0: no events (state only), as Synapse allows
	Types      *[]string `json:"types,omitempty"`
	NotTypes   []string  `json:"not_types,omitempty"`
	Senders    *[]string `json:"senders,omitempty"`
	NotSenders []string  `json:"not_senders,omitempty"`
}

// RoomEventFilter selects room events.
type RoomEventFilter struct {
	EventFilter
	Rooms                   *[]string `json:"rooms,omitempty"`
	NotRooms                []string  `json:"not_rooms,omitempty"`
	ContainsURL             *bool     `json:"contains_url,omitempty"`
	LazyLoadMembers         bool      `json:"lazy_load_members,omitempty"`
	IncludeRedundantMembers bool      `json:"include_redundant_members,omitempty"`
	UnreadThreadNotifs      bool      `json:"unread_thread_notifications,omitempty"`
}

// RoomFilter selects rooms and what of them sync returns.
type RoomFilter struct {
	Rooms        *[]string        `json:"rooms,omitempty"`
	NotRooms     []string         `json:"not_rooms,omitempty"`
	IncludeLeave bool             `json:"include_leave,omitempty"`
	Timeline     *RoomEventFilter `json:"timeline,omitempty"`
	State        *RoomEventFilter `json:"state,omitempty"`
	Ephemeral    *RoomEventFilter `json:"ephemeral,omitempty"`
	AccountData  *RoomEventFilter `json:"account_data,omitempty"`
}

// ParseFilter decodes and checks a filter.
func ParseFilter(b []byte) (*Filter, error) {
	var f Filter
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, planb.BadJSON("invalid filter: %v", err)
	}
	if f.EventFormat != "" && f.EventFormat != "client" && f.EventFormat != "federation" {
		return nil, planb.BadJSON("invalid filter: event_format must be client or federation")
	}
	if err := f.checkIDs(); err != nil {
		return nil, err
	}
	return &f, nil
}

// checkIDs requires the room and sender lists of a filter to hold room and
// user IDs (as Synapse's filter schema does): a filter naming "general"
// instead of a room ID would silently match nothing.
func (f *Filter) checkIDs() error {
	check := func(field string, ids []string, sigil byte) error {
		for _, id := range ids {
			ok := len(id) > 1 && id[0] == sigil // room IDs of v12 rooms have no server name
			if sigil == '@' {
				s, _, _, err := planb.SplitID(id)
				ok = err == nil && s == '@'
			}
			if !ok {
				return planb.BadJSON("invalid filter: %s: %q is not a %c-ID", field, id, sigil)
			}
		}
		return nil
	}
	event := func(name string, e *EventFilter) error {
		if e == nil {
			return nil
		}
		if e.Senders != nil {
			if err := check(name+".senders", *e.Senders, '@'); err != nil {
				return err
			}
		}
		return check(name+".not_senders", e.NotSenders, '@')
	}
	roomEvent := func(name string, e *RoomEventFilter) error {
		if e == nil {
			return nil
		}
		if e.Rooms != nil {
			if err := check(name+".rooms", *e.Rooms, '!'); err != nil {
				return err
			}
		}
		if err := check(name+".not_rooms", e.NotRooms, '!'); err != nil {
			return err
		}
		return event(name, &e.EventFilter)
	}
	if err := event("account_data", f.AccountData); err != nil {
		return err
	}
	if err := event("presence", f.Presence); err != nil {
		return err
	}
	r := f.Room
	if r == nil {
		return nil
	}
	if r.Rooms != nil {
		if err := check("room.rooms", *r.Rooms, '!'); err != nil {
			return err
		}
	}
	if err := check("room.not_rooms", r.NotRooms, '!'); err != nil {
		return err
	}
	for name, e := range map[string]*RoomEventFilter{"room.timeline": r.Timeline, "room.state": r.State,
		"room.ephemeral": r.Ephemeral, "room.account_data": r.AccountData} {
		if err := roomEvent(name, e); err != nil {
			return err
		}
	}
	return nil
}

// matchPattern matches Matrix filter patterns where '*' is a wildcard.
func matchPattern(pattern, s string) bool {
	if !strings.Contains(pattern, "*") {
		return pattern == s
	}
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i := 1; i < len(parts)-1; i++ {
		j := strings.Index(s, parts[i])
		if j < 0 {
			return false
		}
		s = s[j+len(parts[i]):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if matchPattern(p, s) {
			return true
		}
	}
	return false
}

// Allows reports whether the filter lets the event type and sender through.
// A nil filter allows everything.
func (f *EventFilter) Allows(eventType, sender string) bool {
	if f == nil {
		return true
	}
	if matchAny(f.NotTypes, eventType) || matchAny(f.NotSenders, sender) {
		return false
	}
	if f.Types != nil && !matchAny(*f.Types, eventType) {
		return false
	}
	if f.Senders != nil && !matchAny(*f.Senders, sender) {
		return false
	}
	return true
}

// AllowsEvent reports whether the room event filter lets ev through.
func (f *RoomEventFilter) AllowsEvent(ev *planb.Event, content json.RawMessage) bool {
	if f == nil {
		return true
	}
	if !f.EventFilter.Allows(ev.Type, ev.Sender) || !f.AllowsRoom(ev.RoomID) {
		return false
	}
	if f.ContainsURL != nil {
		var c struct {
			URL *string `json:"url"`
		}
		_ = json.Unmarshal(content, &c)
		if (c.URL != nil) != *f.ContainsURL {
			return false
		}
	}
	return true
}

// AllowsType reports whether the filter lets events of eventType through
// (ephemeral and account data). A nil filter allows everything.
func (f *RoomEventFilter) AllowsType(eventType string) bool {
	if f == nil {
		return true
	}
	return f.EventFilter.Allows(eventType, "")
}

// AllowsRoom reports whether the filter lets events of roomID through.
func (f *RoomEventFilter) AllowsRoom(roomID string) bool {
	if f == nil {
		return true
	}
	for _, r := range f.NotRooms {
		if r == roomID {
			return false
		}
	}
	if f.Rooms != nil {
		for _, r := range *f.Rooms {
			if r == roomID {
				return true
			}
		}
		return false
	}
	return true
}

// allowsRoom reports whether the room filter includes roomID.
func (f *RoomFilter) allowsRoom(roomID string) bool {
	if f == nil {
		return true
	}
	return (&RoomEventFilter{Rooms: f.Rooms, NotRooms: f.NotRooms}).AllowsRoom(roomID)
}

// limit returns the filter's limit or def when unset; at most max.
func (f *RoomEventFilter) limit(def, maxN int) int {
	if f == nil || f.Limit == nil || *f.Limit < 0 {
		return def
	}
	return min(*f.Limit, maxN)
}
