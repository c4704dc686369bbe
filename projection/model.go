// Package projection holds planb's read models: room state, membership,
// timelines, per-user room lists, receipts, account data and typing. Every
// node derives them from the replicated log (and the receipt and account-data
// buckets) and rebuilds them on start, so any node can answer any client.
//
// Positions: each partition stream, the receipts bucket and the account-data
// bucket have their own sequence; a sync Token is a vector of them.
package projection

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/planb-chat/planb"
)

// Entry is one event of a room's timeline, with what the read model knows
// about it.
type Entry struct {
	Event *planb.Event
	Room  *Room
	// Seq is the stream sequence of the record that holds the event.
	Seq uint64
	// Index is the event's 0-based place in its room's timeline.
	Index int
	// TxnID and DeviceID identify the client transaction, if any; the txnId
	// is shown only to the sending device (unsigned.transaction_id).
	TxnID, DeviceID string
	// PrevContent/PrevSender describe the state this event replaced.
	PrevContent json.RawMessage
	PrevSender  string
	Replaces    string
	// RedactedBy is the redaction event, when the event was redacted; the
	// visible content is then Content (redacted).
	RedactedBy *planb.Event
	Content    json.RawMessage
}

// memberChange is one change of a user's membership in a room.
type memberChange struct {
	index      int // timeline index of the member event
	membership string
}

// visChange is one change of a room's history visibility.
type visChange struct {
	index int
	value string
}

// Receipt is a user's receipt of one type in a room.
type Receipt struct {
	EventID  string
	TS       int64
	ThreadID string
	Pos      uint64 // receipts bucket sequence
}

// Room is the read model of one room.
type Room struct {
	ID        string
	Partition int
	Version   string
	Creator   string
	Timeline  []*Entry
	State     planb.StateMap
	StateLog  []*Entry // state events in timeline order
	LastSeq   uint64   // sequence of the room's last record
	members   map[string][]memberChange
	vis       []visChange
	receipts  map[string]map[string]Receipt // user → receipt type → receipt
	typing    map[string]time.Time          // user → typing until
	typingPos uint64
	// redactions counts the events of the room that were redacted, so
	// that cached unread counts notice.
	redactions int

	// unreadMu guards unread. Queries hold Model.mu for reading and may
	// run at once, so the cache they share needs its own lock; it is taken
	// only under Model.mu and never the other way round.
	unreadMu sync.Mutex
	unread   map[string]*unreadCount // user → count so far
}

// adEntry is one account-data record.
type adEntry struct {
	content json.RawMessage
	pos     uint64
}

// User is the read model of one user's rooms and account data.
type User struct {
	rooms    map[string]*Room
	global   map[string]adEntry
	roomData map[string]map[string]adEntry
	wake     chan struct{} // closed when something for the user changed
	// forgotten maps a room to the membership event the user forgot it at;
	// a later membership event makes the room visible again.
	forgotten map[string]string
}

// Model is the whole read model of one node. Its methods are safe for
// concurrent use.
//
// Lock rules: mu guards every field below it and every Room, Entry and User
// reachable from them. Appliers take mu for writing; queries take it for
// reading and never call out while holding it.
type Model struct {
	partitionOf   func(roomID string) int
	typingHorizon time.Duration

	mu         sync.RWMutex
	parts      []uint64 // applied sequence per partition
	receiptPos uint64
	dataPos    uint64
	typingPos  uint64
	rooms      map[string]*Room
	events     map[string]*Entry
	users      map[string]*User
	txns       map[string]*Entry
	progress   chan struct{} // closed and replaced on every applied change
}

// New returns an empty model for a log of the given number of partitions;
// partitionOf maps a room to its partition.
func New(partitions int, partitionOf func(string) int) *Model {
	return &Model{
		partitionOf:   partitionOf,
		typingHorizon: 30 * time.Second,
		parts:         make([]uint64, partitions),
		typingPos:     uint64(time.Now().UnixMilli()),
		rooms:         map[string]*Room{},
		events:        map[string]*Entry{},
		users:         map[string]*User{},
		txns:          map[string]*Entry{},
		progress:      make(chan struct{}),
	}
}

// user returns the user's model, creating it. Caller holds mu for writing.
func (m *Model) user(id string) *User {
	u := m.users[id]
	if u == nil {
		u = &User{rooms: map[string]*Room{}, global: map[string]adEntry{},
			roomData: map[string]map[string]adEntry{}, wake: make(chan struct{}), forgotten: map[string]string{}}
		m.users[id] = u
	}
	return u
}

// wakeUser wakes the user's waiting syncs. Caller holds mu for writing.
func (m *Model) wakeUser(id string) {
	u := m.user(id)
	close(u.wake)
	u.wake = make(chan struct{})
}

// advance signals progress. Caller holds mu for writing.
func (m *Model) advance() {
	close(m.progress)
	m.progress = make(chan struct{})
}

// ApplyRecord applies record rec, stored at sequence seq of partition p.
// Records must be applied in sequence order per partition; a sequence at or
// below the applied position is ignored (replays are harmless).
func (m *Model) ApplyRecord(p int, seq uint64, rec *planb.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p < 0 || p >= len(m.parts) {
		return fmt.Errorf("apply: partition %d out of range", p)
	}
	if seq <= m.parts[p] {
		return nil
	}
	m.parts[p] = seq
	defer m.advance()
	wake := map[string]bool{}
	touched := map[*Room]bool{}
	for i, ev := range rec.Events {
		room := m.rooms[ev.RoomID]
		if room == nil {
			if ev.Type != planb.TypeCreate {
				// A record for an unknown room cannot have passed the write
				// checks; skip it rather than stop the whole node.
				continue
			}
			room = &Room{ID: ev.RoomID, Partition: p, State: planb.StateMap{},
				members: map[string][]memberChange{}, receipts: map[string]map[string]Receipt{},
				typing: map[string]time.Time{}}
			var c struct {
				RoomVersion string `json:"room_version"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			room.Version = c.RoomVersion
			if room.Version == "" {
				room.Version = "1"
			}
			room.Creator = ev.Sender
			m.rooms[ev.RoomID] = room
		}
		e := &Entry{Event: ev, Room: room, Seq: seq, Index: len(room.Timeline), Content: ev.Content}
		for _, t := range rec.Txns {
			if t.Event == i {
				e.TxnID, e.DeviceID = t.TxnID, t.DeviceID
				m.txns[t.Key] = e
			}
		}
		if ev.IsState() {
			if prev := room.State.Get(ev.Type, *ev.StateKey); prev != nil {
				pe := m.events[prev.EventID]
				if pe != nil {
					e.PrevContent, e.PrevSender = pe.Content, prev.Sender
				}
				e.Replaces = prev.EventID
			}
			room.State.Apply(ev)
			room.StateLog = append(room.StateLog, e)
			switch ev.Type {
			case planb.TypeMember:
				target := *ev.StateKey
				mem := ev.Membership()
				room.members[target] = append(room.members[target], memberChange{e.Index, mem})
				u := m.user(target)
				u.rooms[room.ID] = room
				wake[target] = true
			case planb.TypeHistoryVisibility:
				var c struct {
					V string `json:"history_visibility"`
				}
				_ = json.Unmarshal(ev.Content, &c)
				room.vis = append(room.vis, visChange{e.Index, c.V})
			}
		}
		if ev.Type == planb.TypeRedaction && ev.Redacts != "" {
			if t := m.events[ev.Redacts]; t != nil && t.Room == room && t.RedactedBy == nil {
				t.RedactedBy = ev
				room.redactions++
				t.Content = redact(t.Event.Type, t.Event.Content)
			}
		}
		room.Timeline = append(room.Timeline, e)
		m.events[ev.EventID] = e
		room.LastSeq = seq
		touched[room] = true
	}
	// Who to wake is worked out once per room of the record, not once per
	// event: a group-committed record holds up to hundreds of events, and
	// the members of a big room are many. Everyone whose membership the
	// record changed is in wake already.
	for room := range touched {
		for uid := range m.joinedOrInvited(room) {
			wake[uid] = true
		}
	}
	for uid := range wake {
		m.wakeUser(uid)
	}
	return nil
}

// joinedOrInvited returns the users currently joined to or invited to room.
func (m *Model) joinedOrInvited(room *Room) map[string]bool {
	out := make(map[string]bool, len(room.members))
	for uid, h := range room.members {
		switch h[len(h)-1].membership {
		case planb.MembershipJoin, planb.MembershipInvite:
			out[uid] = true
		}
	}
	return out
}

// ApplyReceipt records a receipt stored at sequence pos of the receipts
// bucket.
func (m *Model) ApplyReceipt(pos uint64, roomID, userID, rtype string, r Receipt) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos <= m.receiptPos {
		return
	}
	m.receiptPos = pos
	defer m.advance()
	room := m.rooms[roomID]
	if room == nil {
		return
	}
	r.Pos = pos
	if room.receipts[userID] == nil {
		room.receipts[userID] = map[string]Receipt{}
	}
	room.receipts[userID][rtype] = r
	for uid := range m.joinedOrInvited(room) {
		m.wakeUser(uid)
	}
}

// SkipReceiptPos moves the receipts position past a record that carried no
// receipt (a deletion, say).
func (m *Model) SkipReceiptPos(pos uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos > m.receiptPos {
		m.receiptPos = pos
		m.advance()
	}
}

// ApplyAccountData records account data of userID (roomID "" for global)
// stored at sequence pos of the account-data bucket. A nil content deletes.
func (m *Model) ApplyAccountData(pos uint64, userID, roomID, dtype string, content json.RawMessage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos <= m.dataPos {
		return
	}
	m.dataPos = pos
	defer m.advance()
	u := m.user(userID)
	if dtype == ForgottenType && roomID != "" {
		var c struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(content, &c)
		u.forgotten[roomID] = c.EventID
		return
	}
	if content == nil {
		content = json.RawMessage(`{}`)
	}
	if roomID == "" {
		u.global[dtype] = adEntry{content, pos}
	} else {
		if u.roomData[roomID] == nil {
			u.roomData[roomID] = map[string]adEntry{}
		}
		u.roomData[roomID][dtype] = adEntry{content, pos}
	}
	m.wakeUser(userID)
}

// SetTyping records that userID is typing in roomID until the deadline
// (typing=false clears it). Typing is ephemeral: it travels over core NATS
// between nodes and is not stored.
func (m *Model) SetTyping(roomID, userID string, typing bool, until time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	room := m.rooms[roomID]
	if room == nil {
		return
	}
	_, was := room.typing[userID]
	if typing {
		room.typing[userID] = until
	} else {
		delete(room.typing, userID)
	}
	if !typing && !was {
		return
	}
	m.bumpTyping(room)
}

// bumpTyping moves the typing position on. Caller holds mu for writing.
func (m *Model) bumpTyping(room *Room) {
	m.typingPos = max(m.typingPos+1, uint64(time.Now().UnixMilli()))
	room.typingPos = m.typingPos
	for uid := range m.joinedOrInvited(room) {
		m.wakeUser(uid)
	}
}

// ExpireTyping clears typing notifications whose deadline passed.
func (m *Model) ExpireTyping(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, room := range m.rooms {
		changed := false
		for uid, until := range room.typing {
			if now.After(until) {
				delete(room.typing, uid)
				changed = true
			}
		}
		if changed {
			m.bumpTyping(room)
		}
	}
}

// ForgottenType is the internal account-data type that records that a user
// forgot a room: content {"event_id": their membership event at the time}.
// It is never shown to clients.
const ForgottenType = "org.planb.forgotten"

// LastMembershipEvent returns the ID of user's latest member event in roomID.
func (m *Model) LastMembershipEvent(roomID, user string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return ""
	}
	if i := r.lastMembershipIndex(user); i >= 0 {
		return r.Timeline[i].Event.EventID
	}
	return ""
}

// StateGet returns the current state event (type, stateKey) of roomID, or nil.
func (m *Model) StateGet(roomID, eventType, stateKey string) *planb.Event {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if r := m.rooms[roomID]; r != nil {
		return r.State.Get(eventType, stateKey)
	}
	return nil
}

// RoomState is a planb.StateReader over the current state of one room,
// reading through the model's lock on each call.
type RoomState struct {
	M      *Model
	RoomID string
}

// Get implements planb.StateReader.
func (s RoomState) Get(eventType, stateKey string) *planb.Event {
	return s.M.StateGet(s.RoomID, eventType, stateKey)
}

// Position returns the current positions as a token.
func (m *Model) Position() Token {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.positionLocked()
}

func (m *Model) positionLocked() Token {
	return Token{Parts: append([]uint64(nil), m.parts...), Receipts: m.receiptPos,
		AccountData: m.dataPos, Typing: m.typingPos}
}

// WaitFor blocks until the model has applied at least the positions of t
// (typing is not waited for), or ctx ends.
func (m *Model) WaitFor(ctx context.Context, t Token) error {
	for {
		m.mu.RLock()
		ok := m.reached(t)
		ch := m.progress
		m.mu.RUnlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for read model: %w", ctx.Err())
		}
	}
}

// Reached reports whether the model has applied positions t.
func (m *Model) Reached(t Token) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.reached(t)
}

// reached reports whether positions t are applied. Caller holds mu.
func (m *Model) reached(t Token) bool {
	for i, s := range t.Parts {
		if i < len(m.parts) && m.parts[i] < s {
			return false
		}
	}
	return m.receiptPos >= t.Receipts && m.dataPos >= t.AccountData
}

// WaitPartition blocks until partition p has applied sequence seq.
func (m *Model) WaitPartition(ctx context.Context, p int, seq uint64) error {
	t := Token{Parts: make([]uint64, p+1)}
	t.Parts[p] = seq
	return m.WaitFor(ctx, t)
}

// Stats reports the model's size.
type Stats struct {
	Rooms, Events, Users int
}

// Stats returns the model's size.
func (m *Model) Stats() Stats {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return Stats{Rooms: len(m.rooms), Events: len(m.events), Users: len(m.users)}
}

// sortedKeys returns a map's keys in order (deterministic output).
func sortedKeys[V any](mp map[string]V) []string {
	out := make([]string, 0, len(mp))
	for k := range mp {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
