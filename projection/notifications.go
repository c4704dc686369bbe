package projection

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/planb-chat/planb"
)

// GET /notifications: the events the user's push rules say notify, newest
// first, over the rooms the user is joined to. They are evaluated when
// asked (as the unread counts are), against each room's newest
// notificationScan events: older notifications are not listed.

// notificationScan bounds how far back one request looks into each room.
const notificationScan = 2000

// Notification is one entry of GET /notifications.
type Notification struct {
	Actions json.RawMessage `json:"actions"`
	Event   ClientEvent     `json:"event"`
	Read    bool            `json:"read"`
	RoomID  string          `json:"room_id"`
	TS      int64           `json:"ts"`
}

// NotificationsPage is the answer of GET /notifications.
type NotificationsPage struct {
	NextToken     string         `json:"next_token,omitempty"`
	Notifications []Notification `json:"notifications"`
}

// notifKey orders notifications: newest first, then by room and place.
type notifKey struct {
	ts    int64
	index int
	room  string
}

func (k notifKey) before(o notifKey) bool { // k comes after o in the listing
	if k.ts != o.ts {
		return k.ts < o.ts
	}
	if k.room != o.room {
		return k.room < o.room
	}
	return k.index < o.index
}

func (k notifKey) token() string { return fmt.Sprintf("%d_%d_%s", k.ts, k.index, k.room) }

func parseNotifToken(s string) (notifKey, error) {
	parts := strings.SplitN(s, "_", 3)
	if len(parts) != 3 {
		return notifKey{}, planb.InvalidParam("from is not a token of this list")
	}
	ts, err1 := strconv.ParseInt(parts[0], 10, 64)
	idx, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || parts[2] == "" {
		return notifKey{}, planb.InvalidParam("from is not a token of this list")
	}
	return notifKey{ts: ts, index: idx, room: parts[2]}, nil
}

// Notifications lists up to limit of user's notifications after the token
// from ("" for the newest), only highlights when onlyHighlight.
func (m *Model) Notifications(user, device, from string, limit int, onlyHighlight bool) (*NotificationsPage, error) {
	var after *notifKey
	if from != "" {
		k, err := parseNotifToken(from)
		if err != nil {
			return nil, err
		}
		after = &k
	}
	limit = min(max(limit, 1), maxPage)
	m.mu.RLock()
	defer m.mu.RUnlock()
	type found struct {
		key   notifKey
		entry *Entry
		res   json.RawMessage
		read  bool
	}
	var all []found
	if u := m.users[user]; u != nil {
		for _, r := range u.rooms {
			if r.membership(user) != planb.MembershipJoin {
				continue
			}
			pe := m.pushEvaluator(r, user)
			marks, err := m.readMarksOf(r, user)
			if err != nil {
				return nil, err
			}
			joined := joinedAt(r, user)
			n, scanned := 0, 0
			err = m.scan(r, r.Count, true, func(e *Entry) (bool, error) {
				scanned++
				if e.Index <= joined {
					return false, nil // what came before the user joined was never theirs to be told
				}
				k := notifKey{ts: e.Event.OriginServerTS, index: e.Index, room: r.ID}
				if after != nil && !k.before(*after) {
					return scanned < notificationScan, nil
				}
				if res := pe.evaluate(e); res.Notify && (!onlyHighlight || res.Highlight) && canSee(user, e) {
					read := e.Index <= marks.upto
					if !read && len(marks.threads) > 0 {
						thread, err := m.threadOf(r, e)
						if err != nil {
							return false, err
						}
						read = marks.read(e.Index, thread)
					}
					all = append(all, found{key: k, entry: e, res: res.Actions, read: read})
					n++
				}
				return n <= limit && scanned < notificationScan, nil // one more tells whether a next page exists
			})
			if err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[j].key.before(all[i].key) })
	page := &NotificationsPage{Notifications: []Notification{}}
	now := time.Now()
	for i, f := range all {
		if i == limit {
			page.NextToken = all[i-1].key.token()
			break
		}
		page.Notifications = append(page.Notifications, Notification{Actions: f.res, Event: clientEvent(f.entry, user, device, true, now),
			Read: f.read, RoomID: f.key.room, TS: f.key.ts})
	}
	return page, nil
}

// joinedAt returns the index of user's latest join to r, or -1. Caller
// holds mu.
func joinedAt(r *Room, user string) int {
	at := -1
	for _, c := range r.members[user] {
		if c.membership == planb.MembershipJoin {
			at = c.index
		}
	}
	return at
}
