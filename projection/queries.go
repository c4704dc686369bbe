package projection

import (
	"sort"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// ClientEvent is an event in the client-server API format.
type ClientEvent struct {
	Content        json.RawMessage `json:"content"`
	EventID        string          `json:"event_id"`
	OriginServerTS int64           `json:"origin_server_ts"`
	RoomID         string          `json:"room_id,omitempty"`
	Sender         string          `json:"sender"`
	StateKey       *string         `json:"state_key,omitempty"`
	Type           string          `json:"type"`
	Redacts        string          `json:"redacts,omitempty"`
	Unsigned       *Unsigned       `json:"unsigned,omitempty"`
}

// Unsigned is the unsigned data of a client event.
type Unsigned struct {
	Age             int64           `json:"age"`
	TransactionID   string          `json:"transaction_id,omitempty"`
	PrevContent     json.RawMessage `json:"prev_content,omitempty"`
	PrevSender      string          `json:"prev_sender,omitempty"`
	ReplacesState   string          `json:"replaces_state,omitempty"`
	RedactedBecause *ClientEvent    `json:"redacted_because,omitempty"`
	// Membership is the viewer's membership of the room at the event
	// (spec v1.11, MSC4115): "leave" before they ever joined.
	Membership string `json:"membership,omitempty"`
	// Relations are the bundled aggregations (relations_read.go).
	Relations *Relations `json:"m.relations,omitempty"`
}

// StrippedEvent is a stripped state event (invite_state).
type StrippedEvent struct {
	Content  json.RawMessage `json:"content"`
	Sender   string          `json:"sender"`
	StateKey string          `json:"state_key"`
	Type     string          `json:"type"`
}

// clientEvent formats e for viewer on device. withRoom adds room_id (left out
// inside /sync, which nests events under their room).
func clientEvent(e *Entry, viewer, device string, withRoom bool, now time.Time) ClientEvent {
	ev := e.Event
	ce := ClientEvent{Content: e.Content, EventID: ev.EventID, OriginServerTS: ev.OriginServerTS,
		Sender: ev.Sender, StateKey: ev.StateKey, Type: ev.Type, Redacts: ev.Redacts}
	if withRoom {
		ce.RoomID = ev.RoomID
	}
	u := &Unsigned{Age: max(0, now.UnixMilli()-ev.OriginServerTS), PrevContent: e.PrevContent,
		PrevSender: e.PrevSender, ReplacesState: e.Replaces}
	if e.TxnID != "" && ev.Sender == viewer && e.DeviceID == device {
		u.TransactionID = e.TxnID
	}
	if e.RedactedBy != nil {
		r := e.RedactedBy
		u.RedactedBecause = &ClientEvent{Content: r.Content, EventID: r.EventID, OriginServerTS: r.OriginServerTS,
			Sender: r.Sender, Type: r.Type, Redacts: r.Redacts, RoomID: r.RoomID}
	}
	if e.Room != nil && viewer != "" {
		u.Membership = e.Room.membershipAt(viewer, e.Index)
		if u.Membership == "" {
			u.Membership = planb.MembershipLeave
		}
	}
	ce.Unsigned = u
	return ce
}

// membership returns user's current membership of the room, or "leave" when
// they never had one... "" when there is no member event at all.
func (r *Room) membership(user string) string {
	h := r.members[user]
	if len(h) == 0 {
		return ""
	}
	return h[len(h)-1].membership
}

// membershipAt returns user's membership right after timeline index idx.
func (r *Room) membershipAt(user string, idx int) string {
	h := r.members[user]
	i := sort.Search(len(h), func(i int) bool { return h[i].index > idx })
	if i == 0 {
		return ""
	}
	return h[i-1].membership
}

// lastMembershipEvent returns the ID of user's latest member event, or "".
func (r *Room) lastMembershipEvent(user string) string {
	h := r.members[user]
	if len(h) == 0 {
		return ""
	}
	return h[len(h)-1].eventID
}

// lastMembershipIndex returns the timeline index of user's latest member event.
func (r *Room) lastMembershipIndex(user string) int {
	h := r.members[user]
	if len(h) == 0 {
		return -1
	}
	return h[len(h)-1].index
}

// joinedSince reports whether user was joined at any point at or after
// timeline index idx (the spec's rule for "shared" history).
func (r *Room) joinedSince(user string, idx int) bool {
	h := r.members[user]
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].membership == planb.MembershipJoin {
			return true
		}
		if h[i].index < idx {
			break
		}
	}
	return false
}

// visibilityAt returns the history visibility in force at index idx.
func (r *Room) visibilityAt(idx int) string {
	i := sort.Search(len(r.vis), func(i int) bool { return r.vis[i].index > idx })
	if i == 0 {
		return "shared"
	}
	return r.vis[i-1].value
}

// canSee applies the spec's history visibility rules for user and entry.
func canSee(user string, e *Entry) bool {
	if e.Event.Type == planb.TypeMember && e.Event.StateKeyOr() == user {
		return true // users always see their own membership changes
	}
	return e.Room.canSeeAt(user, e.Index)
}

// canSeeAt applies the history visibility rules to an event at timeline
// index idx that is not the user's own membership change.
func (r *Room) canSeeAt(user string, idx int) bool {
	vis := r.visibilityAt(idx)
	if vis == "world_readable" {
		return true
	}
	mem := r.membershipAt(user, idx)
	switch {
	case mem == planb.MembershipJoin:
		return true
	case vis == "shared" && r.joinedSince(user, idx):
		return true
	case vis == "invited" && mem == planb.MembershipInvite:
		return true
	}
	return false
}

// sortedState returns state entries in a deterministic order.
func sortedState(st map[planb.StateTuple]*Entry) []*Entry {
	out := make([]*Entry, 0, len(st))
	for _, e := range st {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out
}

// RoomView is what a writer sees of one room while holding the model's read
// lock: the state its new events are authorised against and the log
// position they must land at.
type RoomView struct {
	m    *Model
	room *Room
}

// State returns the room's current state.
func (v RoomView) State() planb.StateReader { return v.room.State }

// LastSeq returns the sequence of the room's last record.
func (v RoomView) LastSeq() uint64 { return v.room.LastSeq }

// Depth returns the number of events in the room.
func (v RoomView) Depth() int64 { return int64(v.room.Count) }

// LastEventID returns the ID of the room's latest event.
func (v RoomView) LastEventID() string { return v.room.lastEvent }

// Event returns an event of this room by ID, or nil (also when the store
// cannot be read: the caller then refuses what depends on it).
func (v RoomView) Event(id string) *planb.Event {
	if e, err := v.m.event(id); err == nil && e != nil && e.Room == v.room {
		return e.Event
	}
	return nil
}

// WithRoom calls fn with a view of the room under the model's read lock.
// fn must not call other Model methods. Returns planb.ErrNotFound when the
// room is unknown to this node.
func (m *Model) WithRoom(roomID string, fn func(RoomView) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return planb.ErrNotFound
	}
	return fn(RoomView{m, r})
}

// HasRoom reports whether the room exists on this node's read model.
func (m *Model) HasRoom(roomID string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.rooms[roomID] != nil
}

// TxnEvent returns the event that the client transaction key produced,
// or nil.
func (m *Model) TxnEvent(txnKey string) (*planb.Event, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	id, ok, err := getCopy(m.db, key(kTxn, txnKey))
	if err != nil || !ok {
		return nil, err
	}
	e, err := m.event(string(id))
	if err != nil || e == nil {
		return nil, err
	}
	return e.Event, nil
}

// Membership returns user's current membership of roomID ("" for none).
func (m *Model) Membership(roomID, user string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.rooms[roomID]; r != nil {
		return r.membership(user)
	}
	return ""
}

// JoinedRooms returns the rooms user is joined to.
func (m *Model) JoinedRooms(user string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []string{}
	if u := m.users[user]; u != nil {
		for id, r := range u.rooms {
			if r.membership(user) == planb.MembershipJoin {
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

// PendingRooms returns the rooms user is joined to, invited to or knocking
// on: those a deactivated account must leave.
func (m *Model) PendingRooms(user string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := []string{}
	if u := m.users[user]; u != nil {
		for id, r := range u.rooms {
			switch r.membership(user) {
			case planb.MembershipJoin, planb.MembershipInvite, planb.MembershipKnock:
				out = append(out, id)
			}
		}
	}
	sort.Strings(out)
	return out
}

// AccountData returns user's account data of type dtype (roomID "" for
// global), or planb.ErrNotFound.
func (m *Model) AccountData(user, roomID, dtype string) (json.RawMessage, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u := m.users[user]
	if u == nil {
		return nil, planb.ErrNotFound
	}
	var e adEntry
	var ok bool
	if roomID == "" {
		e, ok = u.global[dtype]
	} else {
		e, ok = u.roomData[roomID][dtype]
	}
	if !ok || string(e.content) == "{}" {
		return nil, planb.ErrNotFound
	}
	return e.content, nil
}

// Receipt returns user's receipt of rtype in roomID for thread ("" for
// the unthreaded one).
func (m *Model) Receipt(roomID, user, rtype, thread string) (Receipt, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.rooms[roomID]; r != nil {
		rc, ok := r.receipts[user][receiptSlot{rtype, thread}]
		return rc, ok
	}
	return Receipt{}, false
}

// PartitionMembers returns how many rooms partition p holds and the users
// joined to any of them (each once, sorted).
func (m *Model) PartitionMembers(p int) (rooms int, users []string) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	seen := map[string]bool{}
	for id, r := range m.rooms {
		if m.partitionOf(id) != p {
			continue
		}
		rooms++
		for uid := range r.members {
			if !seen[uid] && r.membership(uid) == planb.MembershipJoin {
				seen[uid] = true
				users = append(users, uid)
			}
		}
	}
	sort.Strings(users)
	return rooms, users
}

// RoomMembers returns the room's users with the given current membership.
func (m *Model) RoomMembers(roomID, membership string) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return nil
	}
	var out []string
	for uid := range r.members {
		if r.membership(uid) == membership {
			out = append(out, uid)
		}
	}
	sort.Strings(out)
	return out
}
