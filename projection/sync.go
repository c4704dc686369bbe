package projection

import (
	"sort"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/pushrules"
)

// SyncRequest is one /sync computation.
type SyncRequest struct {
	User, Device string
	Since        *Token // nil: initial sync
	FullState    bool
	Filter       *Filter
	// PresenceActive is how recently an online user must have been active
	// to show as currently_active.
	PresenceActive time.Duration

	ignored map[string]bool // the user's m.ignored_user_list, set by Sync
}

// SyncResponse is the /sync response body.
type SyncResponse struct {
	NextBatch   string       `json:"next_batch"`
	Rooms       *SyncRooms   `json:"rooms,omitempty"`
	Presence    *EventList   `json:"presence,omitempty"`
	AccountData *EventList   `json:"account_data,omitempty"`
	ToDevice    *EventList   `json:"to_device,omitempty"`
	DeviceLists *DeviceLists `json:"device_lists,omitempty"`
	// Always present: clients upload keys when the count runs low.
	OneTimeKeysCount       map[string]int `json:"device_one_time_keys_count"`
	UnusedFallbackKeyTypes []string       `json:"device_unused_fallback_key_types"`

	// Next is NextBatch as a token. ToDeviceNewest is the sequence of the
	// device's newest to-device message (0: none known). When it is above
	// Next.ToDevice, the device has messages waiting: the caller reads them
	// from the stream, puts them in ToDevice, moves Next.ToDevice to the
	// last one and encodes NextBatch again.
	Next           Token  `json:"-"`
	ToDeviceNewest uint64 `json:"-"`
}

// DeviceLists is the device_lists section of a sync.
type DeviceLists struct {
	Changed []string `json:"changed"`
	Left    []string `json:"left"`
}

// SyncRooms holds the per-membership room sections.
type SyncRooms struct {
	Join   map[string]*JoinedRoom  `json:"join"`
	Invite map[string]*InvitedRoom `json:"invite"`
	Leave  map[string]*LeftRoom    `json:"leave"`
}

// EventList is {"events": [...]}.
type EventList struct {
	Events []any `json:"events"`
}

// Timeline is a room's timeline section.
type Timeline struct {
	Events    []ClientEvent `json:"events"`
	Limited   bool          `json:"limited"`
	PrevBatch string        `json:"prev_batch,omitempty"`
}

// Summary is a joined room's summary.
type Summary struct {
	Heroes  []string `json:"m.heroes,omitempty"`
	Joined  int      `json:"m.joined_member_count"`
	Invited int      `json:"m.invited_member_count"`
}

// Unread holds a room's notification counts.
type Unread struct {
	Notifications int `json:"notification_count"`
	Highlights    int `json:"highlight_count"`
}

// add counts one more notification.
func (u *Unread) add(highlight bool) {
	u.Notifications++
	if highlight {
		u.Highlights++
	}
}

// JoinedRoom is a room in rooms.join.
type JoinedRoom struct {
	Summary             *Summary  `json:"summary,omitempty"`
	State               EventList `json:"state"`
	Timeline            Timeline  `json:"timeline"`
	Ephemeral           EventList `json:"ephemeral"`
	AccountData         EventList `json:"account_data"`
	UnreadNotifications Unread    `json:"unread_notifications"`
	// UnreadThreadNotifications is there only when the filter asks for it
	// (then UnreadNotifications counts the main timeline only), and only
	// with the threads that have notifications.
	UnreadThreadNotifications map[string]Unread `json:"unread_thread_notifications,omitempty"`
}

// InvitedRoom is a room in rooms.invite.
type InvitedRoom struct {
	InviteState struct {
		Events []StrippedEvent `json:"events"`
	} `json:"invite_state"`
}

// LeftRoom is a room in rooms.leave.
type LeftRoom struct {
	State       EventList `json:"state"`
	Timeline    Timeline  `json:"timeline"`
	AccountData EventList `json:"account_data"`
}

type typedContent struct {
	Type    string          `json:"type"`
	Content json.RawMessage `json:"content"`
}

// Sync computes the response for req from one consistent snapshot. It
// reports whether there is anything new and returns a channel that is
// closed when something for the user changes after the snapshot (for the
// long-poll). It fails only when the store cannot be read.
func (m *Model) Sync(req SyncRequest) (*SyncResponse, bool, <-chan struct{}, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	now := time.Now()
	next := m.positionLocked()
	if req.Since != nil {
		next = next.Max(*req.Since)
	}
	resp := &SyncResponse{NextBatch: next.String(), Next: next,
		Rooms:            &SyncRooms{Join: map[string]*JoinedRoom{}, Invite: map[string]*InvitedRoom{}, Leave: map[string]*LeftRoom{}},
		OneTimeKeysCount: map[string]int{"signed_curve25519": 0}, UnusedFallbackKeyTypes: []string{}}
	f := req.Filter
	if f == nil {
		f = &Filter{}
	}
	u := m.users[req.User]
	if u == nil {
		// Nothing yet; the wake channel of a user model created later is
		// unknown here, so wake on any progress.
		if req.Since == nil && f.AccountData.Allows(pushrules.EventType, "") {
			resp.AccountData = &EventList{Events: []any{typedContent{pushrules.EventType, pushrules.Content(req.User, nil)}}}
		}
		return resp, false, m.progress, nil
	}
	req.ignored = u.ignoredUsers()
	rf := f.Room
	if rf == nil {
		rf = &RoomFilter{}
	}
	has := false
	known := map[*Room]int{}
	for _, roomID := range sortedKeys(u.rooms) {
		r := u.rooms[roomID]
		if !rf.allowsRoom(roomID) {
			continue
		}
		sincePos := 0
		if req.Since != nil {
			var err error
			if sincePos, err = m.positionAtSeq(r, req.Since.Parts[r.Partition]); err != nil {
				return nil, false, nil, err
			}
			known[r] = sincePos
		}
		changed := req.Since == nil || r.lastMembershipIndex(req.User) >= sincePos
		switch r.membership(req.User) {
		case planb.MembershipJoin:
			full := req.Since == nil || req.FullState || r.membershipAt(req.User, sincePos-1) != planb.MembershipJoin
			jr, err := m.joinedRoom(r, req, sincePos, full, rf, now)
			if err != nil {
				return nil, false, nil, err
			}
			if jr != nil {
				resp.Rooms.Join[roomID] = jr
				has = true
			}
		case planb.MembershipInvite:
			if inv := r.State.Get(planb.TypeMember, req.User); inv != nil && req.ignored[inv.Sender] {
				continue // spec "Ignoring Users": no invites from them
			}
			if changed || req.FullState {
				resp.Rooms.Invite[roomID] = m.invitedRoom(r, req.User)
				has = true
			}
		case planb.MembershipLeave, planb.MembershipBan:
			// A forgotten room is left out, except from an incremental sync
			// that has not yet seen the leave: the user's other devices must
			// learn that the room was left (as Synapse does; the spec's
			// wording would hide it from them).
			if f, ok := u.forgotten[roomID]; ok && f == r.lastMembershipEvent(req.User) && !(req.Since != nil && changed) {
				continue
			}
			if (req.Since != nil && changed) || (rf.IncludeLeave && (req.Since == nil || req.FullState)) {
				lr, err := m.leftRoom(r, req, sincePos, req.Since == nil || req.FullState, rf, now)
				if err != nil {
					return nil, false, nil, err
				}
				resp.Rooms.Leave[roomID] = lr
				has = true
			}
		}
	}
	var since uint64
	if req.Since != nil {
		since = req.Since.AccountData
	}
	ad := &EventList{Events: []any{}}
	for _, t := range sortedKeys(u.global) {
		e := u.global[t]
		if e.pos > since && f.AccountData.Allows(t, "") {
			c := e.content
			if t == pushrules.EventType {
				// Stored are the user's changes; clients get the ruleset.
				c = pushrules.Content(req.User, c)
			}
			ad.Events = append(ad.Events, typedContent{t, c})
		}
	}
	if _, ok := u.global[pushrules.EventType]; !ok && req.Since == nil && f.AccountData.Allows(pushrules.EventType, "") {
		// A user who never changed their push rules has the defaults.
		ad.Events = append(ad.Events, typedContent{pushrules.EventType, pushrules.Content(req.User, nil)})
	}
	if len(ad.Events) > 0 {
		has = true
	}
	resp.AccountData = ad
	var sh *sharing
	if req.Since != nil {
		s, err := m.sharingSince(u, req.User, *req.Since, known)
		if err != nil {
			return nil, false, nil, err
		}
		sh = &s
	}
	resp.Presence = m.presenceSync(req, sh, now)
	if len(resp.Presence.Events) > 0 {
		has = true
	}
	ds, err := m.deviceSync(u, req, next, sh)
	if err != nil {
		return nil, false, nil, err
	}
	resp.OneTimeKeysCount, resp.UnusedFallbackKeyTypes = ds.OneTimeKeys, ds.UnusedFallback
	if len(ds.Changed)+len(ds.Left) > 0 {
		resp.DeviceLists = &DeviceLists{Changed: ds.Changed, Left: ds.Left}
		has = true
	}
	resp.ToDeviceNewest = ds.ToDeviceNewest
	if since := req.Since.ToDeviceOr0(); ds.ToDeviceNewest > since {
		// Not past the device's messages: the caller delivers them first.
		resp.Next.ToDevice = since
		resp.NextBatch = resp.Next.String()
	}
	return resp, has, u.wake, nil
}

// timelineWindow picks the newest visible, filter-allowed events in
// [low, end), at most limit. It returns them oldest first and the position
// where the window starts.
// Messages of ignored senders are left out (their state events stay: the
// room's state must add up).
func (m *Model) timelineWindow(r *Room, user string, ignored map[string]bool, low, end, limit int, tf *RoomEventFilter) ([]*Entry, int, error) {
	var picked []*Entry
	i := end
	if i > low && limit > 0 {
		err := m.scan(r, end, true, func(e *Entry) (bool, error) {
			i--
			if canSee(user, e) && tf.AllowsEvent(e.Event, e.Content) && (e.Event.StateKey != nil || !ignored[e.Event.Sender]) {
				picked = append(picked, e)
			}
			return i > low && len(picked) < limit, nil
		})
		if err != nil {
			return nil, 0, err
		}
	}
	for a, b := 0, len(picked)-1; a < b; a, b = a+1, b-1 {
		picked[a], picked[b] = picked[b], picked[a]
	}
	return picked, i, nil
}

// roomTimelineAndState builds the timeline and state sections of a joined or
// left room for the window [low, end).
func (m *Model) roomTimelineAndState(r *Room, req SyncRequest, sincePos, end int, full bool, rf *RoomFilter, now time.Time) (Timeline, EventList, error) {
	low := sincePos
	if full {
		low = 0
	}
	picked, start, err := m.timelineWindow(r, req.User, req.ignored, low, end, rf.Timeline.limit(10, 1000), rf.Timeline)
	if err != nil {
		return Timeline{}, EventList{}, err
	}
	tl := Timeline{Events: make([]ClientEvent, 0, len(picked)), Limited: start > low, PrevBatch: topoToken(start)}
	senders := map[string]bool{req.User: true}
	for _, e := range picked {
		tl.Events = append(tl.Events, clientEvent(e, req.User, req.Device, false, now))
		senders[e.Event.Sender] = true
	}
	if err := m.bundle(r, req.User, req.Device, false, now, tl.Events); err != nil {
		return Timeline{}, EventList{}, err
	}
	var st map[planb.StateTuple]*Entry
	switch {
	case full:
		st, err = m.stateAt(r, start)
	case tl.Limited:
		st, err = m.stateBetween(r, sincePos, start)
	}
	if err != nil {
		return Timeline{}, EventList{}, err
	}
	state := EventList{Events: []any{}}
	lazy := rf.State != nil && rf.State.LazyLoadMembers
	for _, e := range sortedState(st) {
		if !rf.State.AllowsEvent(e.Event, e.Content) {
			continue
		}
		if lazy && e.Event.Type == planb.TypeMember && !senders[*e.Event.StateKey] {
			continue
		}
		state.Events = append(state.Events, clientEvent(e, req.User, req.Device, false, now))
	}
	return tl, state, nil
}

func (m *Model) joinedRoom(r *Room, req SyncRequest, sincePos int, full bool, rf *RoomFilter, now time.Time) (*JoinedRoom, error) {
	tl, state, err := m.roomTimelineAndState(r, req, sincePos, r.Count, full, rf, now)
	if err != nil {
		return nil, err
	}
	jr := &JoinedRoom{Timeline: tl, State: state, Ephemeral: EventList{Events: []any{}}, AccountData: EventList{Events: []any{}}}
	var since Token
	if req.Since != nil && !full {
		since = *req.Since
	}
	if (full || r.typingPos > since.Typing) && rf.Ephemeral.AllowsRoom(r.ID) && rf.Ephemeral.AllowsType("m.typing") {
		ids := []string{}
		for uid, until := range r.typing {
			if now.Before(until) {
				ids = append(ids, uid)
			}
		}
		sort.Strings(ids)
		if full && len(ids) == 0 {
			// nothing to say on a first sync
		} else {
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, map[string]any{"type": "m.typing", "content": map[string]any{"user_ids": ids}})
		}
	}
	if rf.Ephemeral.AllowsType("m.receipt") {
		if rc := receiptContent(r, req.User, since.Receipts); rc != nil {
			jr.Ephemeral.Events = append(jr.Ephemeral.Events, map[string]any{"type": "m.receipt", "content": rc})
		}
	}
	if u := m.users[req.User]; u != nil {
		data := u.roomData[r.ID]
		for _, t := range sortedKeys(data) {
			if data[t].pos > since.AccountData && rf.AccountData.AllowsType(t) {
				jr.AccountData.Events = append(jr.AccountData.Events, typedContent{t, data[t].content})
			}
		}
	}
	if !full && len(tl.Events) == 0 && len(state.Events) == 0 && len(jr.Ephemeral.Events) == 0 && len(jr.AccountData.Events) == 0 {
		return nil, nil
	}
	if rf.Timeline != nil && rf.Timeline.UnreadThreadNotifs {
		tu, err := m.unreadByThread(r, req.User)
		if err != nil {
			return nil, err
		}
		jr.UnreadNotifications, jr.UnreadThreadNotifications = tu.Main, tu.Threads
	} else if jr.UnreadNotifications, err = m.unread(r, req.User); err != nil {
		return nil, err
	}
	jr.Summary = summary(r, req.User)
	return jr, nil
}

// receiptContent builds m.receipt content with receipts newer than since.
// A user's receipts of one type for one event can be one only: the
// unthreaded one wins over threaded ones (MSC4102), whether or not it is
// newer than since, so that a client never sees the threaded one replace
// it; of threaded ones, "main" wins, then the lowest thread ID.
func receiptContent(r *Room, viewer string, since uint64) map[string]map[string]map[string]any {
	out := map[string]map[string]map[string]any{}
	for uid, bySlot := range r.receipts {
		type shown struct {
			rtype, eventID string
		}
		best := map[shown]receiptSlot{}
		for slot, rc := range bySlot {
			if slot.rtype == "m.read.private" && uid != viewer {
				continue
			}
			k := shown{slot.rtype, rc.EventID}
			if cur, ok := best[k]; !ok || threadBefore(slot.thread, cur.thread) {
				best[k] = slot
			}
		}
		for k, slot := range best {
			rc := bySlot[slot]
			if rc.Pos <= since {
				continue
			}
			if out[rc.EventID] == nil {
				out[rc.EventID] = map[string]map[string]any{}
			}
			if out[rc.EventID][k.rtype] == nil {
				out[rc.EventID][k.rtype] = map[string]any{}
			}
			v := map[string]any{"ts": rc.TS}
			if slot.thread != "" {
				v["thread_id"] = slot.thread
			}
			out[rc.EventID][k.rtype][uid] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// threadBefore orders the threads of receipts for the same event: the
// unthreaded one first, then the main timeline, then by ID.
func threadBefore(a, b string) bool {
	rank := func(t string) int {
		switch t {
		case "":
			return 0
		case ThreadMain:
			return 1
		}
		return 2
	}
	if rank(a) != rank(b) {
		return rank(a) < rank(b)
	}
	return a < b
}

// unread counts the events after the user's read receipts that their
// push rules say notify (and highlight), over all threads. The count is
// cached per user and room and continued from where it stopped: counting
// the whole timeline since the user joined on every /sync was half of a
// node's CPU under load (see docs/benchmarks.md). Each event is so
// evaluated once, against the room as it was when first counted; a change
// of the user's rules or display name, a new receipt or a redaction counts
// again.
func (m *Model) unread(r *Room, user string) (Unread, error) {
	c, err := m.countUnread(r, user, false)
	return c.total, err
}

// unreadByThread is unread with the main timeline and each thread apart.
func (m *Model) unreadByThread(r *Room, user string) (ThreadUnread, error) {
	c, err := m.countUnread(r, user, true)
	return ThreadUnread{Main: c.main, Threads: c.threads}, err
}

// countUnread brings user's cached count in r up to date and returns a
// copy of it, with the per-thread map only when threads. Caller holds mu.
func (m *Model) countUnread(r *Room, user string, threads bool) (unreadCount, error) {
	// What the count depends on, compared cheaply: the join, the
	// receipts, the rules, the user's member event (display name) and the
	// room's redactions.
	joined := joinedAt(r, user)
	receipts := receiptStampOf(r, user)
	rules := m.pushRules(user)
	me := r.current[planb.StateTuple{Type: planb.TypeMember, StateKey: user}]
	r.unreadMu.Lock()
	defer r.unreadMu.Unlock()
	c := r.unread[user]
	if c == nil || c.joined != joined || c.receipts != receipts || c.rules != rules || c.me != me || c.redactions != r.redactions {
		marks, err := m.readMarksOf(r, user)
		if err != nil {
			return unreadCount{}, err
		}
		if r.unread == nil {
			r.unread = map[string]*unreadCount{}
		}
		// Before the unthreaded receipt everything is read; after it, each
		// event is read when its thread's receipt is past it.
		c = &unreadCount{joined: joined, receipts: receipts, rules: rules, me: me, redactions: r.redactions,
			upto: max(joined, marks.upto) + 1, marks: marks}
		r.unread[user] = c
	}
	if c.upto < r.Count {
		pe := m.pushEvaluatorWith(r, user, rules)
		err := m.scan(r, c.upto, false, func(e *Entry) (bool, error) {
			res := pe.evaluate(e)
			if !res.Notify {
				return true, nil
			}
			thread, err := m.threadOf(r, e)
			if err != nil {
				return false, err
			}
			if c.marks.read(e.Index, thread) {
				return true, nil
			}
			c.total.add(res.Highlight)
			if thread == "" {
				c.main.add(res.Highlight)
				return true, nil
			}
			if c.threads == nil {
				c.threads = map[string]Unread{}
			}
			t := c.threads[thread]
			t.add(res.Highlight)
			c.threads[thread] = t
			return true, nil
		})
		if err != nil {
			delete(r.unread, user) // counted in part: count again next time
			return unreadCount{}, err
		}
		c.upto = max(c.upto, r.Count)
	}
	out := *c
	out.threads = nil
	if threads && len(c.threads) > 0 {
		out.threads = make(map[string]Unread, len(c.threads))
		for k, v := range c.threads {
			out.threads[k] = v
		}
	}
	return out, nil
}

// unreadCount is a user's unread count in one room, valid while what it
// depends on stays the same; events from upto on are not counted yet.
type unreadCount struct {
	joined     int
	receipts   receiptStamp
	rules      *pushrules.Compiled
	me         *Entry
	redactions int
	marks      readMarks
	upto       int
	// total is over the whole room, main over the main timeline (thread
	// roots included), threads per thread root.
	total, main Unread
	threads     map[string]Unread
}

// summary returns the room summary for user.
func summary(r *Room, user string) *Summary {
	s := &Summary{}
	var others []string
	for uid := range r.members {
		switch r.membership(uid) {
		case planb.MembershipJoin:
			s.Joined++
		case planb.MembershipInvite:
			s.Invited++
		default:
			continue
		}
		if uid != user {
			others = append(others, uid)
		}
	}
	sort.Strings(others)
	if len(others) > 5 {
		others = others[:5]
	}
	s.Heroes = others
	return s
}

// strippedTypes are the state events shown to invitees.
var strippedTypes = []string{planb.TypeCreate, planb.TypeJoinRules, planb.TypeName, planb.TypeAvatar,
	planb.TypeCanonicalAlias, planb.TypeEncryption, planb.TypeTopic}

func (m *Model) invitedRoom(r *Room, user string) *InvitedRoom {
	ir := &InvitedRoom{}
	ir.InviteState.Events = []StrippedEvent{}
	add := func(ev *planb.Event) {
		if ev == nil {
			return
		}
		ir.InviteState.Events = append(ir.InviteState.Events, StrippedEvent{
			Content: m.stateContent(r, ev.Type, ev.StateKeyOr()), // redacted content when redacted
			Sender:  ev.Sender, StateKey: ev.StateKeyOr(), Type: ev.Type})
	}
	for _, t := range strippedTypes {
		add(r.State.Get(t, ""))
	}
	add(r.State.Get(planb.TypeMember, user))
	return ir
}

func (m *Model) leftRoom(r *Room, req SyncRequest, sincePos int, full bool, rf *RoomFilter, now time.Time) (*LeftRoom, error) {
	end := r.lastMembershipIndex(req.User) + 1
	tl, state, err := m.roomTimelineAndState(r, req, min(sincePos, end), end, full, rf, now)
	if err != nil {
		return nil, err
	}
	return &LeftRoom{Timeline: tl, State: state, AccountData: EventList{Events: []any{}}}, nil
}

// ignoredUsers returns the users in u's m.ignored_user_list account data.
func (u *User) ignoredUsers() map[string]bool {
	e, ok := u.global["m.ignored_user_list"]
	if !ok {
		return nil
	}
	var c struct {
		Ignored map[string]json.RawMessage `json:"ignored_users"`
	}
	if json.Unmarshal(e.content, &c) != nil || len(c.Ignored) == 0 {
		return nil
	}
	out := make(map[string]bool, len(c.Ignored))
	for id := range c.Ignored {
		out[id] = true
	}
	return out
}
