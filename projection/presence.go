package projection

import (
	"sort"
	"time"

	"github.com/planb-chat/planb"
)

// The read model of presence. Each user's presence is one record of the
// replicated presence bucket (see package jetstream): the state they set,
// by PUT /presence or by syncing, their status message and when they were
// last active. Every node follows the bucket and keeps every record in
// memory, nothing in the store: the bucket keeps no history, so reading it
// again at every start costs one message per user, and presence is not
// worth a store format.
//
// A sync shows a user's presence when its state or status message changed
// after the sync's token, or when the user came to share a room with the
// syncing user since. A record that only moves the last-active time on (a
// keep-alive, see PresenceRecord.ChangedRev) shows nothing new and wakes
// nobody.

// Presence states.
const (
	PresenceOnline      = "online"
	PresenceOffline     = "offline"
	PresenceUnavailable = "unavailable"
)

// PresenceRecord is a user's presence as the presence bucket stores it.
type PresenceRecord struct {
	Presence  string `json:"presence"`
	StatusMsg string `json:"status_msg,omitempty"`
	// LastActiveMS is when the user was last active (Unix milliseconds).
	LastActiveMS int64 `json:"last_active_ts"`
	// ChangedRev is the bucket revision of the record that last changed
	// Presence or StatusMsg; 0 when this record changed them. A keep-alive
	// carries it over from the record it replaces, so that a node that
	// reads the bucket afresh (holding only the newest record of each
	// user) still knows since when the state is what it is.
	ChangedRev uint64 `json:"changed_rev,omitempty"`
	// DataCenter is where the user was last active: the incident ledger
	// uses it to tell whose sessions a lost data center stranded. A move
	// to another data center is written at once (it is not a change of
	// state: nobody is woken for it).
	DataCenter string `json:"dc,omitempty"`
	// MovedFrom and MovedAtMS say from which data center the user last
	// moved to DataCenter, and when: a session a lost data center forced
	// to move is affected by the incident until then.
	MovedFrom string `json:"moved_from,omitempty"`
	MovedAtMS int64  `json:"moved_at_ts,omitempty"`
}

// At returns r as written by a request of the user at data center dc at
// now: active now, there, and when dc is another data center than the
// last one, moved from it now.
func (r PresenceRecord) At(dc string, now time.Time) PresenceRecord {
	if r.DataCenter != "" && r.DataCenter != dc {
		r.MovedFrom, r.MovedAtMS = r.DataCenter, now.UnixMilli()
	}
	r.DataCenter, r.LastActiveMS = dc, now.UnixMilli()
	return r
}

// SameState reports whether r and o show the same state and status
// message.
func (r PresenceRecord) SameState(o PresenceRecord) bool {
	return r.Presence == o.Presence && r.StatusMsg == o.StatusMsg
}

// presenceState is what the model holds of one user's presence.
type presenceState struct {
	rec     PresenceRecord
	rev     uint64 // the record's revision in the bucket
	changed uint64 // the revision at which its state last changed
}

// presenceChange is one entry of Model.presenceLog.
type presenceChange struct {
	pos  uint64
	user string
}

// ApplyPresence records user's presence record, stored at sequence pos of
// the presence bucket (rec nil: the key was deleted, or the message is not
// a record; user "": not a user's key), and wakes the syncs of the user
// and of everyone who shares a room with them when the state changed.
func (m *Model) ApplyPresence(pos uint64, user string, rec *PresenceRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if pos <= m.presencePos {
		return
	}
	m.presencePos = pos
	defer m.advance()
	if user == "" {
		return
	}
	changed := pos
	if rec == nil {
		delete(m.presence, user)
	} else {
		if rec.ChangedRev != 0 && rec.ChangedRev < pos {
			changed = rec.ChangedRev
		}
		m.presence[user] = &presenceState{rec: *rec, rev: pos, changed: changed}
	}
	if changed != pos {
		return // a keep-alive: nothing a sync shows
	}
	m.presenceLog = append(m.presenceLog, presenceChange{pos, user})
	if len(m.presenceLog) > 2*len(m.presence)+1024 {
		m.compactPresenceLog()
	}
	m.wakeUser(user)
	for id := range m.roomPeers(user) {
		m.wakeUser(id)
	}
}

// compactPresenceLog keeps one entry per user, their latest change.
// Caller holds mu for writing.
func (m *Model) compactPresenceLog() {
	log := make([]presenceChange, 0, len(m.presence))
	for id, st := range m.presence {
		log = append(log, presenceChange{st.changed, id})
	}
	sort.Slice(log, func(i, j int) bool { return log[i].pos < log[j].pos })
	m.presenceLog = log
}

// Presence returns user's presence record and its revision in the bucket;
// ok is false when the user has none.
func (m *Model) Presence(user string) (rec PresenceRecord, rev uint64, ok bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	st := m.presence[user]
	if st == nil {
		return PresenceRecord{}, 0, false
	}
	return st.rec, st.rev, true
}

// ActiveAt returns the users last active at data center dc since since
// (offline ones included: the sweep may have set them offline because the
// data center stopped answering them).
func (m *Model) ActiveAt(dc string, since time.Time) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms := since.UnixMilli()
	var out []string
	for user, st := range m.presence {
		if st.rec.DataCenter == dc && st.rec.LastActiveMS >= ms {
			out = append(out, user)
		}
	}
	return out
}

// MovedFrom returns the users who moved away from data center dc since
// since, with when they moved.
func (m *Model) MovedFrom(dc string, since time.Time) map[string]time.Time {
	m.mu.RLock()
	defer m.mu.RUnlock()
	ms := since.UnixMilli()
	out := map[string]time.Time{}
	for user, st := range m.presence {
		if st.rec.MovedFrom == dc && st.rec.MovedAtMS >= ms {
			out[user] = time.UnixMilli(st.rec.MovedAtMS)
		}
	}
	return out
}

// StalePresence returns the users whose presence is not offline and who
// were last active before cutoff.
func (m *Model) StalePresence(cutoff time.Time) []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []string
	for id, st := range m.presence {
		if st.rec.Presence != PresenceOffline && st.rec.LastActiveMS < cutoff.UnixMilli() {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

// SharesRoom reports whether users a and b are both joined to a room.
func (m *Model) SharesRoom(a, b string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.sharesRoom(a, b)
}

// sharesRoom is SharesRoom. Caller holds mu.
func (m *Model) sharesRoom(a, b string) bool {
	ua, ub := m.users[a], m.users[b]
	if ua == nil || ub == nil {
		return false
	}
	if len(ub.rooms) < len(ua.rooms) {
		ua = ub
	}
	for _, r := range ua.rooms {
		if r.membership(a) == planb.MembershipJoin && r.membership(b) == planb.MembershipJoin {
			return true
		}
	}
	return false
}

// PresenceContent is the content of an m.presence event, and the answer
// of GET /presence/{userId}/status.
type PresenceContent struct {
	Presence        string  `json:"presence"`
	LastActiveAgo   *int64  `json:"last_active_ago,omitempty"`
	CurrentlyActive *bool   `json:"currently_active,omitempty"`
	StatusMsg       *string `json:"status_msg,omitempty"`
}

// NewPresenceContent returns what clients see of a user's presence record
// at now (ok false: the user has none, and is offline). currently_active
// holds while the user is online and was last active within activeWithin.
func NewPresenceContent(rec PresenceRecord, ok bool, now time.Time, activeWithin time.Duration) PresenceContent {
	if !ok || rec.Presence == "" {
		return PresenceContent{Presence: PresenceOffline}
	}
	c := PresenceContent{Presence: rec.Presence}
	if rec.LastActiveMS > 0 {
		ago := max(now.UnixMilli()-rec.LastActiveMS, 0)
		c.LastActiveAgo = &ago
		active := rec.Presence == PresenceOnline && time.Duration(ago)*time.Millisecond < activeWithin
		c.CurrentlyActive = &active
	}
	if rec.StatusMsg != "" {
		msg := rec.StatusMsg
		c.StatusMsg = &msg
	}
	return c
}

// presenceEvent is an m.presence event of /sync.
type presenceEvent struct {
	Type    string          `json:"type"`
	Sender  string          `json:"sender"`
	Content PresenceContent `json:"content"`
}

// presenceSync computes the presence section of a sync of req by user
// (whose model is u): on an initial sync the presence of everyone who
// shares a room with the user, and the user's own, unless offline; on an
// incremental one the presence of those whose state changed since the
// token, and of everyone who came to share a room with the user since
// (sh), whatever it is. Caller holds mu for reading.
func (m *Model) presenceSync(req SyncRequest, sh *sharing, now time.Time) *EventList {
	out := &EventList{Events: []any{}}
	var pf *EventFilter
	if req.Filter != nil {
		pf = req.Filter.Presence
	}
	if pf != nil && !(&EventFilter{Types: pf.Types, NotTypes: pf.NotTypes}).Allows("m.presence", "") {
		return out
	}
	pick := map[string]bool{}
	if req.Since == nil {
		peers := m.roomPeers(req.User)
		peers[req.User] = true
		for id := range peers {
			if st := m.presence[id]; st != nil && st.rec.Presence != PresenceOffline {
				pick[id] = true
			}
		}
	} else {
		since := req.Since.Presence
		log := m.presenceLog
		changes := log[sort.Search(len(log), func(i int) bool { return log[i].pos > since }):]
		// With many changes, who shares a room with the user is worked out
		// once; with few, for each changed user.
		var peers map[string]bool
		if len(changes) > 32 {
			peers = m.roomPeers(req.User)
		}
		for _, c := range changes {
			if c.user == req.User || (peers != nil && peers[c.user]) || (peers == nil && m.sharesRoom(req.User, c.user)) {
				pick[c.user] = true
			}
		}
		for id := range sh.came {
			pick[id] = true
		}
	}
	for _, id := range sortedKeys(pick) {
		if !pf.Allows("m.presence", id) {
			continue
		}
		if pf != nil && pf.Limit != nil && *pf.Limit >= 0 && len(out.Events) == *pf.Limit {
			break
		}
		var rec PresenceRecord
		st := m.presence[id]
		if st != nil {
			rec = st.rec
		}
		out.Events = append(out.Events, presenceEvent{Type: "m.presence", Sender: id,
			Content: NewPresenceContent(rec, st != nil, now, req.PresenceActive)})
	}
	return out
}
