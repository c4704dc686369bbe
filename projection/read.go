package projection

import (
	"errors"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// maxPage is the most events one /messages or /context call returns.
const maxPage = 1000

// access returns the timeline position up to which user may read the room:
// everything while joined, up to their leaving after they left, everything
// in a world-readable room. Callers hold mu.
func access(r *Room, user string) (int, error) {
	switch r.membership(user) {
	case planb.MembershipJoin:
		return r.Count, nil
	case planb.MembershipLeave, planb.MembershipBan:
		for _, c := range r.members[user] {
			if c.membership == planb.MembershipJoin {
				if r.visibilityAt(r.Count-1) == "world_readable" {
					return r.Count, nil
				}
				return r.lastMembershipIndex(user) + 1, nil
			}
		}
	}
	if r.visibilityAt(r.Count-1) == "world_readable" {
		return r.Count, nil
	}
	return 0, planb.Forbidden("%s is not in room %s", user, r.ID)
}

// room returns the room or an error that does not reveal whether it exists.
func (m *Model) roomFor(roomID, user string) (*Room, int, error) {
	r := m.rooms[roomID]
	if r == nil {
		return nil, 0, planb.Forbidden("%s is not in room %s", user, roomID)
	}
	upto, err := access(r, user)
	if err == nil && m.forgot(r, user) && r.visibilityAt(r.Count-1) != "world_readable" {
		// A forgotten room's history is gone for the user (spec: "Leaving
		// rooms": forget), as for one they were never in.
		return nil, 0, planb.Forbidden("%s forgot room %s", user, r.ID)
	}
	return r, upto, err
}

// forgot reports whether user forgot r since their last membership change.
// Caller holds mu.
func (m *Model) forgot(r *Room, user string) bool {
	u := m.users[user]
	if u == nil {
		return false
	}
	f, ok := u.forgotten[r.ID]
	return ok && f == r.lastMembershipEvent(user)
}

// Page is a /messages response.
type Page struct {
	Chunk []ClientEvent `json:"chunk"`
	Start string        `json:"start"`
	End   string        `json:"end,omitempty"`
	State []ClientEvent `json:"state,omitempty"`
}

// position converts a /messages token to a timeline position of r. Caller
// holds mu.
func (m *Model) position(r *Room, tok string) (int, error) {
	if n, ok := parseTopo(tok); ok {
		return min(n, r.Count), nil
	}
	t, err := ParseToken(tok, len(m.parts))
	if err != nil {
		return 0, planb.InvalidParam("invalid pagination token %q", tok)
	}
	return m.positionAtSeq(r, t.Parts[r.Partition])
}

// Messages answers GET /rooms/{roomId}/messages for user on device.
func (m *Model) Messages(user, device, roomID, from, to string, backwards bool, limit int, f *RoomEventFilter) (*Page, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 10
	}
	limit = min(limit, maxPage)
	pos := upto
	if !backwards {
		pos = 0
	}
	if from != "" {
		if pos, err = m.position(r, from); err != nil {
			return nil, err
		}
	}
	stop := -1
	if to != "" {
		if stop, err = m.position(r, to); err != nil {
			return nil, err
		}
	}
	now := time.Now()
	page := &Page{Chunk: []ClientEvent{}, Start: from}
	if page.Start == "" {
		page.Start = topoToken(pos)
	}
	senders := map[string]bool{}
	i := pos
	if len(page.Chunk) < limit {
		err = m.scan(r, i, backwards, func(e *Entry) (bool, error) {
			if backwards {
				if i <= 0 || (stop >= 0 && i <= stop) {
					return false, nil
				}
				i--
			} else {
				if i >= upto || (stop >= 0 && i >= stop) {
					return false, nil
				}
				i++
			}
			if canSee(user, e) && f.AllowsEvent(e.Event, e.Content) {
				page.Chunk = append(page.Chunk, clientEvent(e, user, device, true, now))
				senders[e.Event.Sender] = true
			}
			return len(page.Chunk) < limit, nil
		})
		if err != nil {
			return nil, err
		}
	}
	if err := m.bundle(r, user, device, true, now, page.Chunk); err != nil {
		return nil, err
	}
	atEnd := (backwards && i <= 0) || (!backwards && i >= upto) || (stop >= 0 && i == stop)
	if !atEnd || len(page.Chunk) == limit {
		page.End = topoToken(i)
	}
	if f != nil && f.LazyLoadMembers {
		st, err := m.stateAt(r, max(pos, i))
		if err != nil {
			return nil, err
		}
		for s := range senders {
			if e := st[planb.StateTuple{Type: planb.TypeMember, StateKey: s}]; e != nil {
				page.State = append(page.State, clientEvent(e, user, device, true, now))
			}
		}
	}
	return page, nil
}

// ContextResult is a /context response.
type ContextResult struct {
	Start        string        `json:"start"`
	End          string        `json:"end"`
	EventsBefore []ClientEvent `json:"events_before"`
	Event        ClientEvent   `json:"event"`
	EventsAfter  []ClientEvent `json:"events_after"`
	State        []ClientEvent `json:"state"`
}

// Context answers GET /rooms/{roomId}/context/{eventId}.
func (m *Model) Context(user, device, roomID, eventID string, limit int, f *RoomEventFilter) (*ContextResult, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	e, err := m.event(eventID)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Room != r || e.Index >= upto || !canSee(user, e) {
		return nil, planb.NotFound("event %s not found", eventID)
	}
	if limit < 0 {
		limit = 10
	}
	limit = min(limit, maxPage)
	now := time.Now()
	res := &ContextResult{Event: clientEvent(e, user, device, true, now), EventsBefore: []ClientEvent{}, EventsAfter: []ClientEvent{}}
	before, after := limit/2, limit-limit/2
	i := e.Index
	if before > 0 {
		err = m.scan(r, i, true, func(x *Entry) (bool, error) {
			i--
			if canSee(user, x) && f.AllowsEvent(x.Event, x.Content) {
				res.EventsBefore = append(res.EventsBefore, clientEvent(x, user, device, true, now))
			}
			return len(res.EventsBefore) < before, nil
		})
		if err != nil {
			return nil, err
		}
	}
	res.Start = topoToken(i)
	j := e.Index + 1
	if after > 0 && j < upto {
		err = m.scan(r, j, false, func(x *Entry) (bool, error) {
			if canSee(user, x) && f.AllowsEvent(x.Event, x.Content) {
				res.EventsAfter = append(res.EventsAfter, clientEvent(x, user, device, true, now))
			}
			j++
			return j < upto && len(res.EventsAfter) < after, nil
		})
		if err != nil {
			return nil, err
		}
	}
	res.End = topoToken(j)
	around := []ClientEvent{res.Event}
	for _, evs := range [][]ClientEvent{around, res.EventsBefore, res.EventsAfter} {
		if err := m.bundle(r, user, device, true, now, evs); err != nil {
			return nil, err
		}
	}
	res.Event = around[0]
	res.State = []ClientEvent{}
	st, err := m.stateAt(r, e.Index)
	if err != nil {
		return nil, err
	}
	for _, s := range sortedState(st) {
		res.State = append(res.State, clientEvent(s, user, device, true, now))
	}
	return res, nil
}

// Event answers GET /rooms/{roomId}/event/{eventId}.
func (m *Model) Event(user, device, roomID, eventID string) (*ClientEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if errors.Is(err, planb.MForbidden) {
		// The spec answers 404 both for a missing event and for one the
		// user may not read, so that event IDs cannot be probed.
		return nil, planb.NotFound("event %s not found", eventID)
	}
	if err != nil {
		return nil, err
	}
	e, err := m.event(eventID)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Room != r || e.Index >= upto || !canSee(user, e) {
		return nil, planb.NotFound("event %s not found", eventID)
	}
	evs := []ClientEvent{clientEvent(e, user, device, true, time.Now())}
	if err := m.bundle(r, user, device, true, time.Now(), evs); err != nil {
		return nil, err
	}
	return &evs[0], nil
}

// readableState returns the state user may see: current while joined (or
// in a world-readable room), as it was when they left otherwise.
func (m *Model) readableState(r *Room, user string, upto int) (map[planb.StateTuple]*Entry, error) {
	if upto >= r.Count {
		return m.currentState(r), nil
	}
	return m.stateAt(r, upto)
}

// State answers GET /rooms/{roomId}/state.
func (m *Model) State(user, roomID string) ([]ClientEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	st, err := m.readableState(r, user, upto)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	out := []ClientEvent{}
	for _, e := range sortedState(st) {
		out = append(out, clientEvent(e, user, "", true, now))
	}
	return out, nil
}

// StateEvent answers GET /rooms/{roomId}/state/{type}/{stateKey}: the event's
// full client form (the HTTP edge returns content unless format=event).
func (m *Model) StateEvent(user, roomID, eventType, stateKey string) (*ClientEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	st, err := m.readableState(r, user, upto)
	if err != nil {
		return nil, err
	}
	e := st[planb.StateTuple{Type: eventType, StateKey: stateKey}]
	if e == nil {
		return nil, planb.NotFound("no %s state with key %q in %s", eventType, stateKey, roomID)
	}
	ce := clientEvent(e, user, "", true, time.Now())
	return &ce, nil
}

// Members answers GET /rooms/{roomId}/members. at is an optional sync token;
// membership and notMembership filter by membership value.
func (m *Model) Members(user, roomID, at, membership, notMembership string) ([]ClientEvent, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r, upto, err := m.roomFor(roomID, user)
	if err != nil {
		return nil, err
	}
	var st map[planb.StateTuple]*Entry
	if at != "" {
		pos, err := m.position(r, at)
		if err != nil {
			return nil, err
		}
		st, err = m.stateAt(r, min(pos, upto))
		if err != nil {
			return nil, err
		}
	} else if st, err = m.readableState(r, user, upto); err != nil {
		return nil, err
	}
	now := time.Now()
	out := []ClientEvent{}
	for _, e := range sortedState(st) {
		if e.Event.Type != planb.TypeMember {
			continue
		}
		mem := e.Event.Membership()
		if (membership != "" && mem != membership) || (notMembership != "" && mem == notMembership) {
			continue
		}
		out = append(out, clientEvent(e, user, "", true, now))
	}
	return out, nil
}

// JoinedMember is one entry of /joined_members.
type JoinedMember struct {
	DisplayName *string `json:"display_name"`
	AvatarURL   *string `json:"avatar_url"`
}

// JoinedMembers answers GET /rooms/{roomId}/joined_members; the user must
// be joined.
func (m *Model) JoinedMembers(user, roomID string) (map[string]JoinedMember, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil || r.membership(user) != planb.MembershipJoin {
		return nil, planb.Forbidden("%s is not in room %s", user, roomID)
	}
	out := map[string]JoinedMember{}
	for k, ev := range r.State {
		if k.Type != planb.TypeMember || ev.Membership() != planb.MembershipJoin {
			continue
		}
		var c struct {
			DisplayName *string `json:"displayname"`
			AvatarURL   *string `json:"avatar_url"`
		}
		_ = json.Unmarshal(m.stateContent(r, k.Type, k.StateKey), &c) // redacted content when redacted
		out[k.StateKey] = JoinedMember{DisplayName: c.DisplayName, AvatarURL: c.AvatarURL}
	}
	return out, nil
}
