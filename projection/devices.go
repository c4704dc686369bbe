package projection

import (
	"encoding/binary"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/planb-chat/planb"
)

// The read models of devices: what /sync tells a device about encryption
// keys and to-device messages. The keys and messages themselves live in
// replicated buckets and a stream (see package jetstream); the model keeps
// only what every sync needs without asking the engine:
//
//   - per device, the sequence of its newest to-device message, so that a
//     sync knows whether the device has messages waiting (the messages are
//     read from the stream only then);
//   - per device, how many one-time keys it has left per algorithm, and
//     which algorithms have an unused fallback key;
//   - the users whose device keys changed, by position in the device-keys
//     bucket, for device_lists and /keys/changes.

// deviceState is what the model holds of one device.
type deviceState struct {
	toDevice uint64         // sequence of the newest to-device message
	otk      map[string]int // algorithm → one-time keys left
	fallback map[string]bool
}

// device returns u's state of device id, made on first use. Caller holds
// mu for writing.
func (u *User) device(id string) *deviceState {
	d := u.devices[id]
	if d == nil {
		d = &deviceState{otk: map[string]int{}, fallback: map[string]bool{}}
		u.devices[id] = d
	}
	return d
}

// ApplyToDevice records that to-device stream message pos is for user's
// device, and wakes the user's syncs.
func (m *Model) ApplyToDevice(pos uint64, user, device string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.tdPos, keyToDevice, pos, func(b *pebble.Batch) {
		b.Set(key(kToDevice, user, device), num(pos), nil)
	})
	if !ok {
		return err
	}
	m.user(user).device(device).toDevice = pos
	m.wakeUser(user)
	m.advance()
	return nil
}

// SkipToDevicePos moves the to-device position past a message that is for
// no device (one with a subject not made by jetstream.ToDeviceSubject).
func (m *Model) SkipToDevicePos(pos uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.tdPos, keyToDevice, pos, nil)
	if ok {
		m.advance()
	}
	return err
}

// ApplyDeviceKeys records that user's device keys changed at sequence pos
// of the device-keys bucket (an upload, or a device's deletion), and wakes
// the syncs of everyone who shares a room with the user.
func (m *Model) ApplyDeviceKeys(pos uint64, user string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.keysPos, keyDeviceKeys, pos, func(b *pebble.Batch) {
		if user != "" {
			b.Set(withNum([]byte{kKeyChange}, pos), []byte(user), nil)
		}
	})
	if !ok {
		return err
	}
	defer m.advance()
	if user == "" {
		return nil
	}
	for id := range m.roomPeers(user) {
		m.wakeUser(id)
	}
	return nil
}

// ApplyOneTimeKey records at sequence pos of the one-time-keys bucket that
// user's device gained (added) or lost a one-time key of algorithm alg.
func (m *Model) ApplyOneTimeKey(pos uint64, user, device, alg string, added bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if user == "" {
		ok, err := m.applyAt(&m.otkPos, keyOneTimeKeys, pos, nil)
		if ok {
			m.advance()
		}
		return err
	}
	d := m.user(user).device(device)
	n := d.otk[alg]
	if added {
		n++
	} else {
		// A key deleted twice (a claim racing the device's deletion) leaves
		// two markers; a count never goes below zero.
		n = max(n-1, 0)
	}
	ok, err := m.applyAt(&m.otkPos, keyOneTimeKeys, pos, func(b *pebble.Batch) {
		if n == 0 {
			b.Delete(key(kOneTimeKeys, user, device, alg), nil)
		} else {
			b.Set(key(kOneTimeKeys, user, device, alg), num(uint64(n)), nil)
		}
	})
	if !ok {
		return err
	}
	if n == 0 {
		delete(d.otk, alg)
	} else {
		d.otk[alg] = n
	}
	m.advance()
	return nil
}

// ApplyFallbackKey records at sequence pos of the fallback-keys bucket
// whether user's device has an unused fallback key of algorithm alg.
func (m *Model) ApplyFallbackKey(pos uint64, user, device, alg string, unused bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.fbPos, keyFallbackKeys, pos, func(b *pebble.Batch) {
		if user == "" {
			return
		}
		if unused {
			b.Set(key(kFallback, user, device, alg), nil, nil)
		} else {
			b.Delete(key(kFallback, user, device, alg), nil)
		}
	})
	if !ok {
		return err
	}
	defer m.advance()
	if user == "" {
		return nil
	}
	if d := m.user(user).device(device); unused {
		d.fallback[alg] = true
	} else {
		delete(d.fallback, alg)
	}
	return nil
}

// loadDevices loads the device states from the store. Caller holds mu for
// writing.
func (m *Model) loadDevices() error {
	for _, p := range []struct {
		at  *uint64
		key []byte
	}{{&m.tdPos, keyToDevice}, {&m.keysPos, keyDeviceKeys}, {&m.otkPos, keyOneTimeKeys}, {&m.fbPos, keyFallbackKeys}} {
		v, err := getUint(m.db, p.key)
		if err != nil {
			return err
		}
		*p.at = v
	}
	if err := m.each(kToDevice, func(k *keyReader, v []byte) error {
		user, device := k.str(), k.str()
		if k.err || len(v) != 8 {
			return fmt.Errorf("to-device position of %s: damaged", user)
		}
		m.user(user).device(device).toDevice = binary.BigEndian.Uint64(v)
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kOneTimeKeys, func(k *keyReader, v []byte) error {
		user, device, alg := k.str(), k.str(), k.str()
		if k.err || len(v) != 8 {
			return fmt.Errorf("one-time key count of %s: damaged", user)
		}
		m.user(user).device(device).otk[alg] = int(binary.BigEndian.Uint64(v))
		return nil
	}); err != nil {
		return err
	}
	return m.each(kFallback, func(k *keyReader, _ []byte) error {
		user, device, alg := k.str(), k.str(), k.str()
		if k.err {
			return fmt.Errorf("fallback key of %s: damaged", user)
		}
		m.user(user).device(device).fallback[alg] = true
		return nil
	})
}

// DeviceSync is what a sync tells one device besides its rooms.
type DeviceSync struct {
	// ToDeviceNewest is the sequence of the device's newest to-device
	// message (0: none).
	ToDeviceNewest uint64
	OneTimeKeys    map[string]int
	UnusedFallback []string
	Changed, Left  []string
}

// deviceSync computes the device part of a sync of req. Caller holds mu
// for reading. sh is who came to share a room with the user since the
// token, or stopped to (nil for an initial sync).
func (m *Model) deviceSync(u *User, req SyncRequest, upto Token, sh *sharing) (DeviceSync, error) {
	out := DeviceSync{OneTimeKeys: map[string]int{"signed_curve25519": 0}, UnusedFallback: []string{}}
	if d := u.devices[req.Device]; d != nil {
		out.ToDeviceNewest = d.toDevice
		for alg, n := range d.otk {
			out.OneTimeKeys[alg] = n
		}
		for alg := range d.fallback {
			out.UnusedFallback = append(out.UnusedFallback, alg)
		}
		sort.Strings(out.UnusedFallback)
	}
	if req.Since == nil {
		return out, nil
	}
	var err error
	out.Changed, out.Left, err = m.deviceListChanges(req.User, *req.Since, upto, sh)
	return out, err
}

// DeviceListChanges returns the users whose devices user should fetch
// again (their keys changed, or they came to share a room with user) and
// those user no longer shares any room with, between two tokens: the
// answer of GET /keys/changes.
func (m *Model) DeviceListChanges(user string, from, to Token) (changed, left []string, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.deviceListChanges(user, from, to, nil)
}

// deviceListChanges computes DeviceListChanges; sh, when not nil, is who
// came to share a room with user since from, or stopped to. Caller holds
// mu for reading.
func (m *Model) deviceListChanges(user string, from, to Token, sh *sharing) (changed, left []string, err error) {
	u := m.users[user]
	if u == nil {
		return nil, nil, nil
	}
	var peerSet map[string]bool // computed only when needed: most syncs have no changes
	peers := func(id string) bool {
		if peerSet == nil {
			peerSet = m.roomPeers(user)
		}
		return peerSet[id]
	}
	ch, gone := map[string]bool{}, map[string]bool{}
	if to.DeviceKeys > from.DeviceKeys {
		lo := withNum([]byte{kKeyChange}, from.DeviceKeys+1)
		hi := withNum([]byte{kKeyChange}, to.DeviceKeys+1)
		it, err := m.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return nil, nil, fmt.Errorf("read device key changes: %w", err)
		}
		for it.First(); it.Valid(); it.Next() {
			if id := string(it.Value()); id == user || peers(id) {
				ch[id] = true
			}
		}
		if err := it.Close(); err != nil {
			return nil, nil, fmt.Errorf("read device key changes: %w", err)
		}
	}
	if sh == nil {
		s, err := m.sharingSince(u, user, from, nil)
		if err != nil {
			return nil, nil, err
		}
		sh = &s
	}
	for id := range sh.came {
		ch[id] = true
	}
	for id := range sh.parted {
		if !sh.came[id] && !peers(id) {
			gone[id] = true
		}
	}
	return sortedKeys(ch), sortedKeys(gone), nil
}

// sharing is how the users sharing a joined room with one user changed
// between a token and now, room by room: came holds who is joined to a
// room together with the user now and was not at the token (the user or
// they joined it since); parted holds who was joined to a room together
// with the user at the token and is not now (they may share another).
type sharing struct {
	came, parted map[string]bool
}

// sharingSince computes the sharing changes of user (whose model is u)
// since from; known holds the positions of from in rooms already
// computed. Caller holds mu for reading.
func (m *Model) sharingSince(u *User, user string, from Token, known map[*Room]int) (sharing, error) {
	sh := sharing{came: map[string]bool{}, parted: map[string]bool{}}
	for _, r := range u.rooms {
		if len(from.Parts) <= r.Partition {
			continue
		}
		sincePos, ok := known[r]
		if !ok {
			var err error
			if sincePos, err = m.positionAtSeq(r, from.Parts[r.Partition]); err != nil {
				return sharing{}, err
			}
		}
		if r.memberChangedAt < sincePos {
			continue
		}
		meNow := r.membership(user) == planb.MembershipJoin
		meThen := r.membershipAt(user, sincePos-1) == planb.MembershipJoin
		for id := range r.members {
			if id == user {
				continue
			}
			now, then := meNow && r.membership(id) == planb.MembershipJoin, meThen && r.membershipAt(id, sincePos-1) == planb.MembershipJoin
			switch {
			case now && !then:
				sh.came[id] = true
			case then && !now:
				sh.parted[id] = true
			}
		}
	}
	return sh, nil
}

// roomPeers returns the users who share a joined room with user. Caller
// holds mu.
func (m *Model) roomPeers(user string) map[string]bool {
	out := map[string]bool{}
	u := m.users[user]
	if u == nil {
		return out
	}
	for _, r := range u.rooms {
		if r.membership(user) != "join" {
			continue
		}
		for id := range r.members {
			if id != user && r.membership(id) == planb.MembershipJoin {
				out[id] = true
			}
		}
	}
	return out
}
