package projection

import (
	"time"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"
)

// Receipts, account data and typing: the per-user data that comes from the
// receipts and account-data buckets and from the typing subject rather than
// from the room log.

// ApplyReceipt records a receipt stored at sequence pos of the receipts
// bucket. It replaces the user's receipt of the same type and thread
// (r.ThreadID: "" unthreaded, "main" or a thread root's ID).
func (m *Model) ApplyReceipt(pos uint64, roomID, userID, rtype string, r Receipt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r.Pos = pos
	raw, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ok, err := m.applyAt(&m.receiptPos, keyReceipts, pos, func(b *pebble.Batch) {
		b.Set(receiptKey(roomID, userID, rtype, r.ThreadID), raw, nil)
	})
	if !ok {
		return err
	}
	defer m.advance()
	room := m.setReceipt(roomID, userID, rtype, r)
	if room == nil {
		return nil
	}
	for uid := range m.joinedOrInvited(room) {
		m.wakeUser(uid)
	}
	return nil
}

// setReceipt keeps a receipt in its room, or aside until the room is
// applied: the receipts bucket and the room's partition are followed each
// on their own, so a receipt may come first (always so while rebuilding).
// It returns the room, or nil. Caller holds mu for writing.
func (m *Model) setReceipt(roomID, userID, rtype string, r Receipt) *Room {
	receipts := m.earlyReceipts[roomID]
	room := m.rooms[roomID]
	if room != nil {
		receipts = room.receipts
	} else if receipts == nil {
		receipts = map[string]map[receiptSlot]Receipt{}
		m.earlyReceipts[roomID] = receipts
	}
	if receipts[userID] == nil {
		receipts[userID] = map[receiptSlot]Receipt{}
	}
	receipts[userID][receiptSlot{rtype, r.ThreadID}] = r
	return room
}

// receiptKey is the store key of a receipt: an unthreaded one's key has
// no thread part, so stores written before threaded receipts read the same.
func receiptKey(roomID, userID, rtype, thread string) []byte {
	k := key(kReceipt, roomID, userID, rtype)
	if thread != "" {
		k = appendStr(k, thread)
	}
	return k
}

// SkipReceiptPos moves the receipts position past a record that carried no
// receipt (a deletion, say).
func (m *Model) SkipReceiptPos(pos uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.receiptPos, keyReceipts, pos, nil)
	if ok {
		m.advance()
	}
	return err
}

// ApplyAccountData records account data of userID (roomID "" for global)
// stored at sequence pos of the account-data bucket. A nil content deletes.
func (m *Model) ApplyAccountData(pos uint64, userID, roomID, dtype string, content json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	forgot := dtype == ForgottenType && roomID != ""
	var forgotAt string
	if forgot {
		var c struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(content, &c)
		forgotAt = c.EventID
	} else if content == nil {
		content = json.RawMessage(`{}`)
	}
	ok, err := m.applyAt(&m.dataPos, keyData, pos, func(b *pebble.Batch) {
		if forgot {
			b.Set(key(kForgot, userID, roomID), []byte(forgotAt), nil)
		} else {
			b.Set(key(kData, userID, roomID, dtype), append(num(pos), content...), nil)
		}
	})
	if !ok {
		return err
	}
	defer m.advance()
	u := m.user(userID)
	if forgot {
		u.forgotten[roomID] = forgotAt
		return nil
	}
	m.setAccountData(u, roomID, dtype, adEntry{content, pos})
	m.wakeUser(userID)
	return nil
}

// setAccountData keeps e in u. Caller holds mu for writing.
func (m *Model) setAccountData(u *User, roomID, dtype string, e adEntry) {
	if roomID == "" {
		u.global[dtype] = e
		return
	}
	if u.roomData[roomID] == nil {
		u.roomData[roomID] = map[string]adEntry{}
	}
	u.roomData[roomID][dtype] = e
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
