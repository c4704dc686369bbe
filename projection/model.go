// Package projection holds planb's read models: room state, membership,
// timelines, per-user room lists, receipts, account data, typing, presence,
// device key state and the user and room directories. Every node derives
// them from the replicated log (and the buckets it follows), so any node
// can answer any client.
//
// The models live in a Pebble store on the node's disk (see store.go):
// timelines and the event, transaction and state-history indexes are read
// from it; what every query needs at once — each room's current state,
// membership changes and visibility, receipts and account data — is also
// held in memory and loaded from the store on start. The store is only
// derived: it records the log positions it reached, a restarted node
// resumes from them, and a store that is missing, of another format or
// damaged is rebuilt from the log.
//
// Positions: each partition stream, the receipts bucket and the account-data
// bucket have their own sequence; a sync Token is a vector of them.
package projection

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	lru "github.com/hashicorp/golang-lru/v2"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/pushrules"
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
	// msg is what search reads of a message, decoded once (nil for events
	// that are not messages).
	msg *msgSummary
	// flat is the event flattened for push rules, made when first needed.
	flat atomic.Pointer[pushrules.Flat]
}

// msgSummary is what search needs of a message's content.
type msgSummary struct {
	notice bool
	body   string
}

// summarizeMessage fills e.msg when e is a message (m.room.message,
// m.room.encrypted, m.sticker).
func summarizeMessage(e *Entry) {
	switch e.Event.Type {
	case planb.TypeMessage, "m.room.encrypted", "m.sticker":
	default:
		return
	}
	var mc struct {
		MsgType string `json:"msgtype"`
		Body    string `json:"body"`
	}
	_ = json.Unmarshal(e.Event.Content, &mc)
	e.msg = &msgSummary{notice: mc.MsgType == "m.notice", body: mc.Body}
}

// memberChange is one change of a user's membership in a room.
type memberChange struct {
	index      int // timeline index of the member event
	membership string
	eventID    string
}

// visChange is one change of a room's history visibility.
type visChange struct {
	index int
	value string
}

// Receipt is a user's receipt of one type in a room, unthreaded
// (ThreadID "") or for one thread ("main" or a thread root's ID).
type Receipt struct {
	EventID  string
	TS       int64
	ThreadID string
	Pos      uint64 // receipts bucket sequence
}

// receiptSlot is what one receipt of a user in a room replaces: the
// spec keeps one event per user, receipt type and thread.
type receiptSlot struct {
	rtype, thread string
}

// Room is the read model of one room. Its timeline is in the store.
type Room struct {
	ID        string
	Partition int
	Version   string
	Creator   string
	Count     int // events in the timeline
	LastSeq   uint64
	lastEvent string // ID of the newest event
	State     planb.StateMap
	current   map[planb.StateTuple]*Entry // the entry of each current state event
	// tail holds the room's newest entries, decoded: tail[i] is entry
	// tailStart+i, and tailStart+len(tail) == Count. Syncs and unread
	// counts read mostly these; at most 2×tailSize are kept.
	tail      []*Entry
	tailStart int
	members   map[string][]memberChange
	// memberChangedAt is the index of the room's latest membership change.
	memberChangedAt int
	vis             []visChange
	receipts        map[string]map[receiptSlot]Receipt // user → receipt type and thread → receipt
	typing          map[string]time.Time               // user → typing until
	typingPos       uint64
	// redactions counts the events of the room that were redacted, so
	// that cached unread counts notice.
	redactions int

	// unreadMu guards unread. Queries hold Model.mu for reading and may
	// run at once, so the cache they share needs its own lock; it is taken
	// only under Model.mu and never the other way round.
	unreadMu sync.Mutex
	unread   map[string]*unreadCount // user → count so far
	// pushMu guards push, what push rules need of the room (roomPushInfo).
	pushMu sync.Mutex
	push   *roomPush
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
	devices   map[string]*deviceState
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
	db         *pebble.DB
	space      diskSpace
	parts      []uint64 // applied sequence per partition
	receiptPos uint64
	dataPos    uint64
	typingPos  uint64
	tdPos      uint64 // applied sequence of the to-device stream
	keysPos    uint64 // of the device-keys bucket
	otkPos     uint64 // of the one-time-keys bucket
	fbPos      uint64 // of the fallback-keys bucket
	// presencePos is the applied sequence of the presence bucket. The
	// presence model is held only in memory and read from the bucket again
	// at every start (see presence.go).
	presencePos uint64
	presence    map[string]*presenceState // user → presence
	presenceLog []presenceChange          // changes in position order, compacted
	rooms       map[string]*Room
	users       map[string]*User

	// The directories (directory.go): the accounts and room-directory
	// buckets' applied sequences, every user's global profile, the
	// published rooms, and the rooms whose members everyone may find.
	accountsPos, directoryPos uint64
	profiles                  map[string]Profile
	published                 map[string]bool
	openRooms                 map[string]*Room

	// earlyReceipts holds receipts of rooms not applied yet (setReceipt).
	earlyReceipts map[string]map[string]map[receiptSlot]Receipt
	events        int   // events in all timelines
	fault         error // why the last write to the store failed; nil after a success
	closed        bool
	damaged       atomic.Pointer[error] // set for good when the store is found damaged
	progress      chan struct{}         // closed and replaced on every applied change
	// rules caches users' compiled push rules (pushRules); safe without mu.
	rules *lru.Cache[string, compiledRules]
}

// New returns an empty model for a log of the given number of partitions,
// with its store in memory; partitionOf maps a room to its partition.
func New(partitions int, partitionOf func(string) int) *Model {
	m, _, err := Open(partitions, partitionOf, StoreOptions{})
	if err != nil {
		panic(fmt.Sprintf("an in-memory read model store cannot be opened: %v", err))
	}
	return m
}

// Open returns the model kept in the store o names, loaded as far as the
// store reached. reset says why the store was created afresh ("" when it
// was reused): the log must then be read from its beginning.
func Open(partitions int, partitionOf func(string) int, o StoreOptions) (m *Model, reset string, err error) {
	m = &Model{partitionOf: partitionOf, typingHorizon: 30 * time.Second,
		parts: make([]uint64, partitions), typingPos: uint64(time.Now().UnixMilli()), progress: make(chan struct{}),
		presence: map[string]*presenceState{}}
	if m.rules, err = lru.New[string, compiledRules](rulesCacheSize); err != nil {
		return nil, "", fmt.Errorf("push rules cache: %w", err)
	}
	o.corrupt = m.corrupted
	db, reset, err := openStore(o)
	if err != nil {
		return nil, "", err
	}
	m.db = db
	m.space = diskSpace{now: time.Now, fs: o.fs, dir: o.Dir, min: o.MinFreeBytes}
	if m.space.fs == nil {
		m.space.fs = vfs.Default
	}
	if m.space.min == 0 {
		m.space.min = 256 << 20
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.load(); err != nil {
		db.Close()
		if o.Dir == "" || reset != "" {
			return nil, "", err
		}
		// A store that opens but cannot be read back is damaged: rebuild.
		o.Rebuild = true
		m2, _, err2 := Open(partitions, partitionOf, o)
		return m2, fmt.Sprintf("the store could not be read back (%v)", err), err2
	}
	return m, reset, nil
}

// Close closes the store; the model must not be used after.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	// Write the memtables out, so that the next start need not replay
	// Pebble's WAL into memory (up to 128 MiB of memtables, seconds of
	// start-up). Not when a write failed (the disk may be full) or the
	// store's directory is gone (Pebble cannot go on without it).
	if m.fault == nil && m.damaged.Load() == nil && m.storeDirPresent() {
		_ = m.db.Flush() // a failure only costs the replay at the next start
	}
	if err := m.db.Close(); err != nil {
		return fmt.Errorf("close the read model store: %w", err)
	}
	return nil
}

// storeDirPresent reports whether the store's directory still exists
// (always for an in-memory store).
func (m *Model) storeDirPresent() bool {
	if m.space.dir == "" {
		return true
	}
	_, err := m.space.fs.Stat(m.space.dir)
	return err == nil
}

// Fault returns why the last write to the store failed (a full disk, say),
// or nil once a write succeeded again; or, for good, that the store was
// found damaged.
func (m *Model) Fault() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if d := m.damaged.Load(); d != nil {
		return *d
	}
	return m.fault
}

// corrupted records damage Pebble found in the store. It is called from
// inside Pebble's reads, with or without mu held, so it takes no lock.
func (m *Model) corrupted(err error) { m.damaged.CompareAndSwap(nil, &err) }

// failed records a failed write and puts the in-memory part of the model
// back to what the store holds (the batch that failed was not applied), so
// that the record can be applied again. Caller holds mu for writing.
func (m *Model) failed(err error) error {
	err = fmt.Errorf("write the read model store: %w", err)
	m.fault = err
	if lerr := m.load(); lerr != nil {
		m.fault = fmt.Errorf("%w; reading it back: %v", err, lerr)
	}
	return m.fault
}

// roomToWrite returns an error while the store's disk is short of space,
// as the model's fault. Caller holds mu for writing.
func (m *Model) roomToWrite() error {
	if err := m.space.check(); err != nil {
		m.fault = err
		return err
	}
	return nil
}

// commit writes b and records the outcome. Caller holds mu for writing.
func (m *Model) commit(b *pebble.Batch) error {
	if err := b.Commit(pebble.NoSync); err != nil {
		return m.failed(err)
	}
	m.fault = nil
	return nil
}

// user returns the user's model, creating it. Caller holds mu for writing.
func (m *Model) user(id string) *User {
	u := m.users[id]
	if u == nil {
		u = &User{rooms: map[string]*Room{}, global: map[string]adEntry{},
			roomData: map[string]map[string]adEntry{}, wake: make(chan struct{}), forgotten: map[string]string{},
			devices: map[string]*deviceState{}}
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
// below the applied position is ignored (replays are harmless). When the
// store cannot be written the model stays at the previous record and the
// error is returned; applying the record again later is safe.
func (m *Model) ApplyRecord(p int, seq uint64, rec *planb.Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p < 0 || p >= len(m.parts) {
		return fmt.Errorf("apply: partition %d out of range", p)
	}
	if err := m.roomToWrite(); err != nil {
		return err
	}
	if seq <= m.parts[p] {
		return nil
	}
	b := m.db.NewIndexedBatch()
	defer b.Close()
	wake := map[string]bool{}
	touched := map[*Room]bool{}
	added := 0
	for i, ev := range rec.Events {
		room := m.rooms[ev.RoomID]
		if room == nil {
			if ev.Type != planb.TypeCreate {
				// A record for an unknown room cannot have passed the write
				// checks; skip it rather than stop the whole node.
				continue
			}
			room = newRoom(ev.RoomID, p)
			var c struct {
				RoomVersion string `json:"room_version"`
			}
			_ = json.Unmarshal(ev.Content, &c)
			room.Version = c.RoomVersion
			if room.Version == "" {
				room.Version = "1"
			}
			room.Creator = ev.Sender
			if early := m.earlyReceipts[ev.RoomID]; early != nil {
				room.receipts = early
				delete(m.earlyReceipts, ev.RoomID)
			}
			m.rooms[ev.RoomID] = room
		}
		e := &Entry{Event: ev, Room: room, Seq: seq, Index: room.Count, Content: ev.Content}
		summarizeMessage(e)
		for _, t := range rec.Txns {
			if t.Event == i {
				e.TxnID, e.DeviceID = t.TxnID, t.DeviceID
				b.Set(key(kTxn, t.Key), []byte(ev.EventID), nil)
			}
		}
		if !touched[room] {
			b.Set(withNum(key(kSeq, room.ID), seq), num(uint64(e.Index)), nil)
		}
		if ev.IsState() {
			tuple := planb.StateTuple{Type: ev.Type, StateKey: *ev.StateKey}
			if prev := room.State.Get(ev.Type, *ev.StateKey); prev != nil {
				pe := room.current[tuple]
				e.PrevContent, e.PrevSender = pe.Content, prev.Sender
				e.Replaces = prev.EventID
			}
			room.State.Apply(ev)
			room.current[tuple] = e
			b.Set(key(kState, room.ID, ev.Type, *ev.StateKey), num(uint64(e.Index)), nil)
			b.Set(withNum(key(kStateLog, room.ID), uint64(e.Index)), nil, nil)
			switch ev.Type {
			case planb.TypeMember:
				target := *ev.StateKey
				mem := ev.Membership()
				room.members[target] = append(room.members[target], memberChange{e.Index, mem, ev.EventID})
				room.memberChangedAt = e.Index
				b.Set(withNum(key(kMember, room.ID, target), uint64(e.Index)), appendStr(appendStr(nil, mem), ev.EventID), nil)
				u := m.user(target)
				u.rooms[room.ID] = room
				wake[target] = true
			case planb.TypeHistoryVisibility:
				var c struct {
					V string `json:"history_visibility"`
				}
				_ = json.Unmarshal(ev.Content, &c)
				room.vis = append(room.vis, visChange{e.Index, c.V})
				b.Set(withNum(key(kVis, room.ID), uint64(e.Index)), []byte(c.V), nil)
				m.noteOpen(room)
			case planb.TypeJoinRules:
				m.noteOpen(room)
			}
		}
		if ev.Type == planb.TypeRedaction && ev.Redacts != "" {
			if err := m.redact(b, room, ev); err != nil {
				return m.failed(err)
			}
		}
		if err := m.indexRelation(b, room, e); err != nil {
			return m.failed(err)
		}
		raw, err := encodeEntry(e)
		if err != nil {
			return m.failed(err)
		}
		b.Set(entryKey(room.ID, e.Index), raw, nil)
		b.Set(key(kID, ev.EventID), withNum(appendStr(nil, room.ID), uint64(e.Index)), nil)
		indexForSearch(b, e)
		room.appendTail(e)
		room.Count++
		room.LastSeq, room.lastEvent = seq, ev.EventID
		added++
		touched[room] = true
	}
	for room := range touched {
		meta, err := json.Marshal(roomMeta{Partition: room.Partition, Version: room.Version, Creator: room.Creator,
			Count: room.Count, LastSeq: room.LastSeq, LastEvent: room.lastEvent, Redactions: room.redactions})
		if err != nil {
			return m.failed(err)
		}
		b.Set(key(kRoom, room.ID), meta, nil)
	}
	b.Set(keyPart(p), num(seq), nil)
	if err := m.commit(b); err != nil {
		return err
	}
	m.parts[p] = seq
	m.events += added
	defer m.advance()
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

// redact applies redaction ev of room to its target in b, when the target
// is an event of the same room not redacted yet. Caller holds mu for
// writing.
func (m *Model) redact(b *pebble.Batch, room *Room, ev *planb.Event) error {
	r, idx, ok, err := m.locate(b, ev.Redacts)
	if err != nil || !ok || r != room {
		return err
	}
	t, err := m.entryAt(b, room, idx)
	if err != nil || t.RedactedBy != nil {
		return err
	}
	t.RedactedBy = ev
	t.Content = redact(t.Event.Type, t.Event.Content)
	unindexForSearch(b, t)
	if t.Event.IsState() {
		tuple := planb.StateTuple{Type: t.Event.Type, StateKey: *t.Event.StateKey}
		if c := room.current[tuple]; c != nil && c.Index == idx {
			room.current[tuple] = t
		}
	}
	raw, err := encodeEntry(t)
	if err != nil {
		return err
	}
	room.redactions++
	b.Set(entryKey(room.ID, idx), raw, nil)
	return m.unindexRelation(b, room, t) // its m.relates_to is gone
}

// tailSize is how many of a room's newest entries its tail cache keeps at
// least (between tailSize and 2×tailSize).
const tailSize = 64

// cached returns entry idx from the tail cache, or nil.
func (r *Room) cached(idx int) *Entry {
	if idx < r.tailStart || idx >= r.tailStart+len(r.tail) {
		return nil
	}
	return r.tail[idx-r.tailStart]
}

// appendTail adds the room's newest entry e to the tail cache.
func (r *Room) appendTail(e *Entry) {
	if r.tailStart+len(r.tail) != e.Index {
		r.tail, r.tailStart = nil, e.Index // not contiguous: start again
	}
	r.tail = append(r.tail, e)
	if len(r.tail) > 2*tailSize {
		drop := len(r.tail) - tailSize
		r.tail, r.tailStart = append([]*Entry(nil), r.tail[drop:]...), r.tailStart+drop
	}
}

func newRoom(id string, p int) *Room {
	return &Room{ID: id, Partition: p, State: planb.StateMap{}, current: map[planb.StateTuple]*Entry{},
		members: map[string][]memberChange{}, receipts: map[string]map[receiptSlot]Receipt{}, typing: map[string]time.Time{}}
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

// applyAt writes, as one batch, what fill adds together with the position
// posKey moving to pos, and keeps pos in *at; it does nothing for a
// position at or before *at (a replay). It reports whether it wrote.
// Caller holds mu for writing.
func (m *Model) applyAt(at *uint64, posKey []byte, pos uint64, fill func(*pebble.Batch)) (bool, error) {
	if err := m.roomToWrite(); err != nil {
		return false, err
	}
	if pos <= *at {
		return false, nil
	}
	b := m.db.NewBatch()
	defer b.Close()
	if fill != nil {
		fill(b)
	}
	b.Set(posKey, num(pos), nil)
	if err := m.commit(b); err != nil {
		return false, err
	}
	*at = pos
	return true, nil
}

// LastMembershipEvent returns the ID of user's latest member event in roomID.
func (m *Model) LastMembershipEvent(roomID, user string) string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return ""
	}
	if h := r.members[user]; len(h) > 0 {
		return h[len(h)-1].eventID
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
		AccountData: m.dataPos, Typing: m.typingPos, ToDevice: m.tdPos, DeviceKeys: m.keysPos,
		OneTimeKeys: m.otkPos, FallbackKeys: m.fbPos, Accounts: m.accountsPos, Directory: m.directoryPos, Presence: m.presencePos}
}

// WaitFor blocks until the model has applied at least the positions of t
// (typing and to-device are not waited for), or ctx ends.
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
	// Not the to-device position: a device's received messages are purged,
	// so a node that reads the stream afresh may never see the sequence a
	// token names (and needs not: it answers from the stream itself).
	return m.receiptPos >= t.Receipts && m.dataPos >= t.AccountData &&
		m.keysPos >= t.DeviceKeys && m.otkPos >= t.OneTimeKeys && m.fbPos >= t.FallbackKeys &&
		m.accountsPos >= t.Accounts && m.directoryPos >= t.Directory &&
		m.presencePos >= t.Presence
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
	return Stats{Rooms: len(m.rooms), Events: m.events, Users: len(m.users)}
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
