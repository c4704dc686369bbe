package roomauth

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/planb-chat/planb"
)

// Power level defaults from the m.room.power_levels schema of the spec.
const (
	defaultBan               = 50
	defaultKick              = 50
	defaultRedact            = 50
	defaultInvite            = 0
	defaultStateDefault      = 50
	defaultEventsDefault     = 0
	defaultUsersDefault      = 0
	defaultNotificationsRoom = 50
	// creatorLevel is the room creator's level while the room has no
	// m.room.power_levels event (room versions 1 to 11).
	creatorLevel = 100
)

// Canonical JSON limits power levels to [-(2**53)+1, (2**53)-1].
const (
	maxLevel = 1<<53 - 1
	minLevel = -maxLevel
)

// PowerLevels is the effective content of a room's m.room.power_levels
// event, with the spec's defaults filled in for absent keys. The zero value
// is not meaningful; build one with ParsePowerLevels.
type PowerLevels struct {
	Ban    int64 // level needed to ban, and with Kick to unban
	Kick   int64 // level needed to kick
	Invite int64 // level needed to invite, or to authorise a restricted join
	Redact int64 // level needed to redact other users' events
	// StateDefault is the level needed for state events not in Events.
	StateDefault int64
	// EventsDefault is the level needed for message events not in Events.
	EventsDefault int64
	// UsersDefault is the level of users not in Users.
	UsersDefault int64
	// Users maps user IDs to their level; others have UsersDefault.
	Users map[string]int64
	// Events maps event types to the level needed to send them; other types
	// need StateDefault (state events) or EventsDefault (message events).
	Events map[string]int64
	// NotificationsRoom is the level needed to trigger an @room notification.
	NotificationsRoom int64
}

// PowerLevelsMemo is implemented by state readers that remember the power
// levels parsed from their current m.room.power_levels event (nil: the room
// has none), so that checking many events against one state parses it
// once. Check and CheckRedaction use it when their state offers it.
type PowerLevelsMemo interface {
	// MemoPowerLevels returns the levels remembered for ev, if any.
	MemoPowerLevels(ev *planb.Event) (PowerLevels, bool)
	// RememberPowerLevels remembers pl as the levels parsed for ev.
	RememberPowerLevels(ev *planb.Event, pl PowerLevels)
}

// powerLevels is ParsePowerLevels through state's memo, if it has one.
// Callers must not modify the result's maps.
func powerLevels(state planb.StateReader) PowerLevels {
	memo, ok := state.(PowerLevelsMemo)
	if !ok {
		return ParsePowerLevels(state)
	}
	ev := state.Get(planb.TypePowerLevels, "")
	if pl, ok := memo.MemoPowerLevels(ev); ok {
		return pl
	}
	pl := ParsePowerLevels(state)
	memo.RememberPowerLevels(ev, pl)
	return pl
}

// ParsePowerLevels returns the power levels in force in state. Without an
// m.room.power_levels event the spec's defaults apply: the room creator (the
// creator key of m.room.create, falling back to its sender) has level 100
// and everyone else 0; state_default is 50 and events_default 0.
//
// ParsePowerLevels never fails. Check only admits integer values into a
// room version 10 room, but reading is lenient: a numeric string in the
// format of older room versions is accepted too, and any other malformed
// value falls back to the default, so that a damaged event cannot make a
// room unreadable.
func ParsePowerLevels(state planb.StateReader) PowerLevels {
	pl := PowerLevels{
		Ban:               defaultBan,
		Kick:              defaultKick,
		Invite:            defaultInvite,
		Redact:            defaultRedact,
		StateDefault:      defaultStateDefault,
		EventsDefault:     defaultEventsDefault,
		UsersDefault:      defaultUsersDefault,
		Users:             map[string]int64{},
		Events:            map[string]int64{},
		NotificationsRoom: defaultNotificationsRoom,
	}
	if state == nil {
		return pl
	}
	ev := state.Get(planb.TypePowerLevels, "")
	if ev == nil {
		if creator := roomCreator(state); creator != "" {
			pl.Users[creator] = creatorLevel
		}
		return pl
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(ev.Content, &c) != nil {
		return pl
	}
	for key, dst := range map[string]*int64{
		"ban":            &pl.Ban,
		"kick":           &pl.Kick,
		"invite":         &pl.Invite,
		"redact":         &pl.Redact,
		"state_default":  &pl.StateDefault,
		"events_default": &pl.EventsDefault,
		"users_default":  &pl.UsersDefault,
	} {
		if v, ok := lenientLevel(c[key]); ok {
			*dst = v
		}
	}
	readLevelMap(c["users"], pl.Users)
	readLevelMap(c["events"], pl.Events)
	notif := map[string]int64{}
	readLevelMap(c["notifications"], notif)
	if v, ok := notif["room"]; ok {
		pl.NotificationsRoom = v
	}
	return pl
}

// UserLevel returns userID's power level: its entry in Users, or
// UsersDefault.
func (pl PowerLevels) UserLevel(userID string) int64 {
	if v, ok := pl.Users[userID]; ok {
		return v
	}
	return pl.UsersDefault
}

// EventLevel returns the level needed to send an event of eventType: its
// entry in Events, or StateDefault for state events and EventsDefault for
// message events. Membership changes are governed by Invite, Kick and Ban
// instead, and redacting another user's event additionally by Redact.
func (pl PowerLevels) EventLevel(eventType string, isState bool) int64 {
	if v, ok := pl.Events[eventType]; ok {
		return v
	}
	if isState {
		return pl.StateDefault
	}
	return pl.EventsDefault
}

// roomCreator returns the creator of the room in state, or "".
func roomCreator(state planb.StateReader) string {
	create := state.Get(planb.TypeCreate, "")
	if create == nil {
		return ""
	}
	var c struct {
		Creator any `json:"creator"`
	}
	_ = json.Unmarshal(create.Content, &c) // a bad create event was rejected by Check
	if s, ok := c.Creator.(string); ok && s != "" {
		return s
	}
	return create.Sender
}

// readLevelMap adds the well-formed entries of a JSON object of levels to dst.
func readLevelMap(raw json.RawMessage, dst map[string]int64) {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return
	}
	for k, v := range m {
		if n, ok := lenientLevel(v); ok {
			dst[k] = n
		}
	}
}

// strictLevel parses a JSON integer in the canonical JSON range, as room
// version 10 requires: no strings, fractions or exponents.
func strictLevel(raw json.RawMessage) (int64, bool) {
	tok := bytes.TrimSpace(raw)
	if len(tok) == 0 || (tok[0] != '-' && (tok[0] < '0' || tok[0] > '9')) {
		return 0, false
	}
	n, err := strconv.ParseInt(string(tok), 10, 64)
	if err != nil || n > maxLevel || n < minLevel {
		return 0, false
	}
	return n, true
}

// lenientLevel parses a JSON integer, or a string holding one in the
// format older room versions allow (optional sign, leading zeroes and
// surrounding whitespace).
func lenientLevel(raw json.RawMessage) (int64, bool) {
	if n, ok := strictLevel(raw); ok {
		return n, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64) // accepts one leading + or -
	if err != nil || n > maxLevel || n < minLevel {
		return 0, false
	}
	return n, true
}

// plContent is the content of a new m.room.power_levels event whose values
// passed the room version 10 integer checks. Absent keys are absent from
// the maps: the change rules compare what the events say, not the defaults.
type plContent struct {
	top           map[string]int64 // users_default, events_default, state_default, ban, redact, kick, invite
	users         map[string]int64
	events        map[string]int64
	notifications map[string]int64
}

// plTopKeys are the top-level integer properties of m.room.power_levels,
// in the order the auth rules list them.
var plTopKeys = []string{"users_default", "events_default", "state_default", "ban", "redact", "kick", "invite"}

// parsePLStrict parses power levels content under auth rules 9.1 to 9.3 of
// room version 10. It returns an M_FORBIDDEN error naming the first bad
// property.
func parsePLStrict(content json.RawMessage) (plContent, error) {
	p := plContent{top: map[string]int64{}, users: map[string]int64{}, events: map[string]int64{}, notifications: map[string]int64{}}
	var c map[string]json.RawMessage
	if err := json.Unmarshal(content, &c); err != nil || c == nil {
		return p, planb.Forbidden("m.room.power_levels content must be a JSON object")
	}
	for _, key := range plTopKeys {
		raw, ok := c[key]
		if !ok {
			continue
		}
		n, ok := strictLevel(raw)
		if !ok {
			return p, planb.Forbidden("m.room.power_levels: %s must be an integer, got %s", key, clip(raw))
		}
		p.top[key] = n
	}
	for _, obj := range []struct {
		key string
		dst map[string]int64
	}{{"events", p.events}, {"notifications", p.notifications}, {"users", p.users}} {
		raw, ok := c[obj.key]
		if !ok {
			continue
		}
		if err := strictLevelMap(obj.key, raw, obj.dst); err != nil {
			return p, err
		}
	}
	for u := range p.users {
		if !planb.ValidUserID(u) {
			return p, planb.Forbidden("m.room.power_levels: users key %q is not a valid user ID", u)
		}
	}
	return p, nil
}

// strictLevelMap parses a JSON object whose values must all be integers.
func strictLevelMap(key string, raw json.RawMessage, dst map[string]int64) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return planb.Forbidden("m.room.power_levels: %s must be an object of integers", key)
	}
	for k, v := range m {
		n, ok := strictLevel(v)
		if !ok {
			return planb.Forbidden("m.room.power_levels: %s[%q] must be an integer, got %s", key, k, clip(v))
		}
		dst[k] = n
	}
	return nil
}

// clip shortens raw JSON for an error message.
func clip(raw json.RawMessage) string {
	const max = 32
	s := string(bytes.TrimSpace(raw))
	if len(s) <= max {
		return s
	}
	i := max
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "..."
}

// checkPowerLevelsChange applies auth rules 9.4 to 9.10 of room version 10:
// a sender may only touch levels at or below their own, and may not change
// another user's entry at or above their own level.
// have is the sender's current level.
func checkPowerLevelsChange(ev *planb.Event, state planb.StateReader, newPL plContent, have int64) error {
	prev := state.Get(planb.TypePowerLevels, "")
	if prev == nil {
		return nil // rule 9.4: the first power levels event is allowed
	}
	// The current event passed these same checks when it was accepted, so
	// a parse error here means damaged state; read what can be read.
	oldPL, _ := parsePLStrict(prev.Content)

	for _, key := range plTopKeys {
		if err := checkChange(key, oldPL.top, newPL.top, key, have, false, ""); err != nil {
			return err
		}
	}
	for _, m := range []struct {
		name     string
		old, new map[string]int64
	}{{"events", oldPL.events, newPL.events}, {"notifications", oldPL.notifications, newPL.notifications}} {
		for _, k := range unionKeys(m.old, m.new) {
			if err := checkChange(m.name+"["+strconv.Quote(k)+"]", m.old, m.new, k, have, false, ""); err != nil {
				return err
			}
		}
	}
	for _, u := range unionKeys(oldPL.users, newPL.users) {
		if err := checkChange("the level of "+u, oldPL.users, newPL.users, u, have, u != ev.Sender, u); err != nil {
			return err
		}
	}
	return nil
}

// checkChange checks one power level entry k that may be present in old,
// new or both. For entries of other users (otherUser) the old value must be
// strictly below the sender's level; otherwise it may equal it.
func checkChange(what string, old, new map[string]int64, k string, have int64, otherUser bool, user string) error {
	o, hadOld := old[k]
	n, hasNew := new[k]
	if hadOld == hasNew && o == n {
		return nil // unchanged (or absent in both)
	}
	if hadOld {
		if otherUser && o >= have {
			return planb.Forbidden("cannot change the power level of %s: theirs (%d) is not below yours (%d)", user, o, have)
		}
		if o > have {
			return planb.Forbidden("cannot change %s: its current value %d is above your power level %d", what, o, have)
		}
	}
	if hasNew && n > have {
		return planb.Forbidden("cannot set %s to %d: above your power level %d", what, n, have)
	}
	return nil
}

// unionKeys returns the keys of a and b, sorted so that errors are stable.
func unionKeys(a, b map[string]int64) []string {
	seen := make(map[string]bool, len(a)+len(b))
	var keys []string
	for _, m := range []map[string]int64{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// levelError is the message for an action needing more power.
func levelError(action string, need, have int64) error {
	return planb.Forbidden("insufficient power level to %s: need %d, have %d", action, need, have)
}
