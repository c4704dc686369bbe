package projection

import (
	"encoding/binary"
	"fmt"
	"maps"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// load replaces the in-memory part of the model by what the store holds.
// Caller holds mu for writing.
func (m *Model) load() error {
	m.rooms, m.users, m.events = map[string]*Room{}, map[string]*User{}, 0
	m.earlyReceipts = map[string]map[string]map[receiptSlot]Receipt{}
	for p := range m.parts {
		seq, err := getUint(m.db, keyPart(p))
		if err != nil {
			return err
		}
		m.parts[p] = seq
	}
	var err error
	if m.receiptPos, err = getUint(m.db, keyReceipts); err != nil {
		return err
	}
	if m.dataPos, err = getUint(m.db, keyData); err != nil {
		return err
	}
	if err := m.each(kRoom, func(k *keyReader, v []byte) error {
		id := k.str()
		var meta roomMeta
		if err := json.Unmarshal(v, &meta); err != nil || k.err {
			return fmt.Errorf("room %q: damaged (%v)", id, err)
		}
		r := newRoom(id, meta.Partition)
		r.Version, r.Creator, r.Count, r.LastSeq, r.lastEvent, r.redactions =
			meta.Version, meta.Creator, meta.Count, meta.LastSeq, meta.LastEvent, meta.Redactions
		r.tailStart = r.Count // the tail cache fills as the room goes on
		m.rooms[id] = r
		m.events += r.Count
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kState, func(k *keyReader, v []byte) error {
		r, err := m.loadedRoom(k.str())
		if err != nil || len(v) != 8 {
			return fmt.Errorf("current state: %v", err)
		}
		e, err := m.entryAt(m.db, r, int(binary.BigEndian.Uint64(v)))
		if err != nil {
			return err
		}
		r.State.Apply(e.Event)
		r.current[planb.StateTuple{Type: e.Event.Type, StateKey: e.Event.StateKeyOr()}] = e
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kMember, func(k *keyReader, v []byte) error {
		r, err := m.loadedRoom(k.str())
		user, idx := k.str(), k.num()
		if err != nil || k.err {
			return fmt.Errorf("membership: %v", err)
		}
		vr := keyReader{b: v}
		mem, eventID := vr.str(), vr.str()
		if vr.err {
			return fmt.Errorf("membership of %s in %s: damaged", user, r.ID)
		}
		r.members[user] = append(r.members[user], memberChange{int(idx), mem, eventID})
		r.memberChangedAt = max(r.memberChangedAt, int(idx))
		m.user(user).rooms[r.ID] = r
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kVis, func(k *keyReader, v []byte) error {
		r, err := m.loadedRoom(k.str())
		idx := k.num()
		if err != nil || k.err {
			return fmt.Errorf("history visibility: %v", err)
		}
		r.vis = append(r.vis, visChange{int(idx), string(v)})
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kReceipt, func(k *keyReader, v []byte) error {
		roomID, user, rtype := k.str(), k.str(), k.str()
		thread := ""
		if len(k.b) > 0 {
			thread = k.str() // a threaded receipt
		}
		var rc Receipt
		if err := json.Unmarshal(v, &rc); err != nil || k.err {
			return fmt.Errorf("receipt of %s in %s: damaged (%v)", user, roomID, err)
		}
		// The key says the thread, as the bucket's subject does (a receipt
		// stored before threads counted may carry a thread_id of its own).
		rc.ThreadID = thread
		m.setReceipt(roomID, user, rtype, rc)
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kData, func(k *keyReader, v []byte) error {
		user, roomID, dtype := k.str(), k.str(), k.str()
		if k.err || len(v) < 8 {
			return fmt.Errorf("account data of %s: damaged", user)
		}
		content := append(json.RawMessage(nil), v[8:]...) // v is valid only until the next key
		m.setAccountData(m.user(user), roomID, dtype, adEntry{content, binary.BigEndian.Uint64(v)})
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kForgot, func(k *keyReader, v []byte) error {
		user, roomID := k.str(), k.str()
		if k.err {
			return fmt.Errorf("forgotten rooms of %s: damaged", user)
		}
		m.user(user).forgotten[roomID] = string(v)
		return nil
	}); err != nil {
		return err
	}
	if err := m.loadDevices(); err != nil {
		return err
	}
	return m.loadDirectories()
}

// loadedRoom returns a room loaded already.
func (m *Model) loadedRoom(id string) (*Room, error) {
	r := m.rooms[id]
	if r == nil {
		return nil, fmt.Errorf("room %q is not in the store", id)
	}
	return r, nil
}

// each calls fn for every key of kind in order, with a reader positioned
// after the kind byte. The key and value are valid only during the call.
// Caller holds mu.
func (m *Model) each(kind byte, fn func(k *keyReader, v []byte) error) error {
	lo := []byte{kind}
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: upperBound(lo)})
	if err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("read model store: %w", err)
		}
		if err := fn(&keyReader{b: it.Key()[1:]}, v); err != nil {
			return fmt.Errorf("read model store: %w", err)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	return nil
}

// entryAt reads entry idx of room r from g (the store or a batch).
func (m *Model) entryAt(g getter, r *Room, idx int) (*Entry, error) {
	if e := r.cached(idx); e != nil {
		return e, nil
	}
	v, ok, err := getCopy(g, entryKey(r.ID, idx))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("read model store: entry %d of %s is missing", idx, r.ID)
	}
	return decodeEntry(v, r, idx)
}

// locate finds event id: its room and timeline index.
func (m *Model) locate(g getter, id string) (*Room, int, bool, error) {
	v, ok, err := getCopy(g, key(kID, id))
	if err != nil || !ok {
		return nil, 0, false, err
	}
	k := keyReader{b: v}
	roomID, idx := k.str(), k.num()
	r := m.rooms[roomID]
	if k.err || r == nil {
		return nil, 0, false, fmt.Errorf("read model store: the index of event %s is damaged", id)
	}
	return r, int(idx), true, nil
}

// locateInRoom is locate for an event expected in room r: it looks in r's
// tail cache first (receipts mostly point at recent events), then in the
// store. Caller holds mu.
func (m *Model) locateInRoom(r *Room, id string) (*Room, int, bool, error) {
	for i := len(r.tail) - 1; i >= 0; i-- {
		if r.tail[i].Event.EventID == id {
			return r, r.tail[i].Index, true, nil
		}
	}
	return m.locate(m.db, id)
}

// event returns the entry of event id, or nil when the model has none.
// Caller holds mu.
func (m *Model) event(id string) (*Entry, error) {
	r, idx, ok, err := m.locate(m.db, id)
	if err != nil || !ok {
		return nil, err
	}
	return m.entryAt(m.db, r, idx)
}

// scan calls fn for the entries of r from index from on, towards higher
// indexes or (backwards) lower ones, until fn returns false or the
// timeline ends. Going backwards, the first entry is from-1. The room's
// newest entries come from its tail cache, older ones from the store.
// Caller holds mu.
func (m *Model) scan(r *Room, from int, backwards bool, fn func(*Entry) (bool, error)) error {
	if backwards {
		i := min(from, r.Count) - 1
		for ; i >= 0 && r.cached(i) != nil; i-- {
			if more, err := fn(r.cached(i)); err != nil || !more {
				return err
			}
		}
		if i < 0 {
			return nil
		}
		return m.scanStore(r, i+1, true, fn)
	}
	stopped := false
	if from < r.tailStart {
		err := m.scanStore(r, from, false, func(e *Entry) (bool, error) {
			if e.Index >= r.tailStart {
				return false, nil // the tail takes over
			}
			more, err := fn(e)
			stopped = !more
			return more, err
		})
		if err != nil || stopped {
			return err
		}
		from = r.tailStart
	}
	for i := from; i < r.Count; i++ {
		if more, err := fn(r.cached(i)); err != nil || !more {
			return err
		}
	}
	return nil
}

// scanStore is scan reading every entry from the store. Caller holds mu.
func (m *Model) scanStore(r *Room, from int, backwards bool, fn func(*Entry) (bool, error)) error {
	lo := key(kEntry, r.ID)
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: upperBound(lo)})
	if err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	var ok bool
	if backwards {
		ok = it.SeekLT(entryKey(r.ID, from))
	} else {
		ok = it.SeekGE(entryKey(r.ID, from))
	}
	for ; ok; ok = step(it, backwards) {
		k := keyReader{b: it.Key()[len(lo):]}
		idx := int(k.num())
		v, err := it.ValueAndErr()
		if err != nil || k.err {
			return fmt.Errorf("read model store: entry %d of %s: %v", idx, r.ID, err)
		}
		e, err := decodeEntry(v, r, idx)
		if err != nil {
			return err
		}
		more, err := fn(e)
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	return nil
}

func step(it *pebble.Iterator, backwards bool) bool {
	if backwards {
		return it.Prev()
	}
	return it.Next()
}

// positionAtSeq returns the number of r's events at or below seq. Caller
// holds mu.
func (m *Model) positionAtSeq(r *Room, seq uint64) (int, error) {
	if seq >= r.LastSeq {
		return r.Count, nil
	}
	if len(r.tail) > 0 && r.tail[0].Seq <= seq {
		// Within the tail cache (a recent token, as most syncs have).
		return r.tailStart + sort.Search(len(r.tail), func(i int) bool { return r.tail[i].Seq > seq }), nil
	}
	lo := key(kSeq, r.ID)
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: upperBound(lo)})
	if err != nil {
		return 0, fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	if !it.SeekGE(withNum(append([]byte(nil), lo...), seq+1)) {
		return r.Count, it.Error()
	}
	v, err := it.ValueAndErr()
	if err != nil || len(v) != 8 {
		return 0, fmt.Errorf("read model store: sequence index of %s: %v", r.ID, err)
	}
	return int(binary.BigEndian.Uint64(v)), nil
}

// stateAt returns the room state right before timeline position pos (after
// the events with index < pos). Caller holds mu.
func (m *Model) stateAt(r *Room, pos int) (map[planb.StateTuple]*Entry, error) {
	return m.stateBetween(r, 0, pos)
}

// stateBetween returns the last state event of each key among r's events
// with index in [from, to). Caller holds mu.
func (m *Model) stateBetween(r *Room, from, to int) (map[planb.StateTuple]*Entry, error) {
	st := map[planb.StateTuple]*Entry{}
	lo := key(kStateLog, r.ID)
	it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: withNum(append([]byte(nil), lo...), uint64(from)),
		UpperBound: withNum(append([]byte(nil), lo...), uint64(to))})
	if err != nil {
		return nil, fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := keyReader{b: it.Key()[len(lo):]}
		idx := int(k.num())
		if k.err {
			return nil, fmt.Errorf("read model store: state log of %s is damaged", r.ID)
		}
		e, err := m.entryAt(m.db, r, idx)
		if err != nil {
			return nil, err
		}
		st[planb.StateTuple{Type: e.Event.Type, StateKey: e.Event.StateKeyOr()}] = e
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read model store: %w", err)
	}
	return st, nil
}

// currentState returns the room's current state entries. Caller holds mu.
func (m *Model) currentState(r *Room) map[planb.StateTuple]*Entry {
	return maps.Clone(r.current)
}

// stateContent returns the content of r's current state event (type,
// stateKey) as clients see it (redacted when redacted), or nil. Caller
// holds mu.
func (m *Model) stateContent(r *Room, eventType, stateKey string) json.RawMessage {
	if e := r.current[planb.StateTuple{Type: eventType, StateKey: stateKey}]; e != nil {
		return e.Content
	}
	return nil
}
