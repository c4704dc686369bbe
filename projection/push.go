package projection

import (
	"bytes"
	"encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/pushrules"
	"github.com/planb-chat/planb/roomauth"
)

// Push rule evaluation: what a user's push rules say of an event, used for
// the unread counts of /sync, for GET /notifications and by the pushers.
// Rules are evaluated against the room as the model has it when the event
// is first counted (its current members and power levels), as a
// homeserver evaluating at send time would.

// rulesCacheSize bounds the compiled rulesets kept (one per user who read
// counts lately); a user whose ruleset was dropped is compiled again.
const rulesCacheSize = 8192

// compiledRules is one user's compiled ruleset and the stored rules it was
// compiled from.
type compiledRules struct {
	src      []byte
	compiled *pushrules.Compiled
}

// pushRules returns user's compiled push rules. Caller holds mu.
func (m *Model) pushRules(user string) *pushrules.Compiled {
	var src []byte
	if u := m.users[user]; u != nil {
		src = u.global[pushrules.EventType].content
	}
	if c, ok := m.rules.Get(user); ok && bytes.Equal(c.src, src) {
		return c.compiled
	}
	stored, err := pushrules.Parse(src)
	if err != nil {
		stored = &pushrules.Stored{} // unreadable content counts as no changes, as /sync shows it
	}
	c := compiledRules{src: bytes.Clone(src), compiled: pushrules.Compile(stored.Effective(user))}
	m.rules.Add(user, c)
	return c.compiled
}

// PushEvaluator evaluates one user's push rules in one room.
type PushEvaluator struct {
	rules *pushrules.Compiled
	ctx   pushrules.Context
	room  *roomPush
}

// roomPush is what evaluating any member's rules in a room needs of the
// room: its joined members and power levels, as of a timeline length.
type roomPush struct {
	count   int // r.Count it was computed at
	members int
	power   roomauth.PowerLevels
}

// roomPushInfo returns r's roomPush, computed again when the timeline grew.
// Caller holds mu (for reading at least).
func (m *Model) roomPushInfo(r *Room) *roomPush {
	r.pushMu.Lock()
	defer r.pushMu.Unlock()
	if r.push != nil && r.push.count == r.Count {
		return r.push
	}
	rp := &roomPush{count: r.Count, power: roomauth.ParsePowerLevels(r.State)}
	for uid := range r.members {
		if r.membership(uid) == planb.MembershipJoin {
			rp.members++
		}
	}
	r.push = rp
	return rp
}

// pushEvaluator gathers what evaluating user's rules in r needs. Caller
// holds mu.
func (m *Model) pushEvaluator(r *Room, user string) *PushEvaluator {
	return m.pushEvaluatorWith(r, user, m.pushRules(user))
}

func (m *Model) pushEvaluatorWith(r *Room, user string, rules *pushrules.Compiled) *PushEvaluator {
	rp := m.roomPushInfo(r)
	ctx := pushrules.Context{UserID: user, MemberCount: rp.members}
	var c struct {
		DisplayName string `json:"displayname"`
	}
	if json.Unmarshal(m.stateContent(r, planb.TypeMember, user), &c) == nil {
		ctx.DisplayName = c.DisplayName
	}
	ctx.NotificationPower = func(key string) int64 {
		if key == "room" {
			return rp.power.NotificationsRoom
		}
		return 50 // the schema's default for a notification key it does not name
	}
	return &PushEvaluator{rules: rules, ctx: ctx, room: rp}
}

// evaluate returns what the rules say of e: nothing for the user's own
// events and for redacted ones.
func (pe *PushEvaluator) evaluate(e *Entry) pushrules.Result {
	if e.Event.Sender == pe.ctx.UserID || e.RedactedBy != nil {
		return pushrules.Result{}
	}
	ctx := pe.ctx
	ctx.SenderPower = pe.room.power.UserLevel(e.Event.Sender)
	return pe.rules.Evaluate(e.flattened(), ctx)
}

// flattened returns the event flattened for push rules, computed once per
// decoded entry (entries are shared by concurrent readers).
func (e *Entry) flattened() pushrules.Flat {
	if f := e.flat.Load(); f != nil {
		return *f
	}
	ev := e.Event
	f := pushrules.FlattenEvent(ev.EventID, ev.RoomID, ev.Sender, ev.Type, ev.StateKey, ev.Content)
	e.flat.Store(&f)
	return f
}

// PushNotice is what the pushers of the users a committed event notifies
// need to know of it.
type PushNotice struct {
	Event *planb.Event
	// SenderName is the sender's display name in the room, RoomName the
	// room's name ("" when none).
	SenderName, RoomName string
	Targets              []PushTarget
}

// PushTarget is one user the event notifies.
type PushTarget struct {
	UserID string
	Result pushrules.Result
	// Unread is the user's notification count over all their rooms, this
	// event included.
	Unread int
	// IsTarget is set when the event is a membership event about the user.
	IsTarget bool
}

// PushNotice evaluates the push rules of the room's joined members (and of
// the invitee of an invite) for the committed event eventID, for the users
// wanted says yes to (those with pushers), and returns those whom it
// notifies. ok is false when the event is not in the model (yet).
func (m *Model) PushNotice(roomID, eventID string, wanted func(user string) bool) (n PushNotice, ok bool, err error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return PushNotice{}, false, nil
	}
	er, idx, found, err := m.locateInRoom(r, eventID)
	if err != nil || !found || er != r {
		return PushNotice{}, false, err
	}
	e, err := m.entryAt(m.db, r, idx)
	if err != nil {
		return PushNotice{}, false, err
	}
	n.Event = e.Event
	var users []string
	for uid := range r.members {
		if r.membership(uid) == planb.MembershipJoin && wanted(uid) {
			users = append(users, uid)
		}
	}
	invitee := ""
	if e.Event.Type == planb.TypeMember && e.Event.StateKey != nil {
		invitee = *e.Event.StateKey
		if r.membership(invitee) == planb.MembershipInvite && wanted(invitee) {
			users = append(users, invitee)
		}
	}
	for _, uid := range users {
		res := m.pushEvaluator(r, uid).evaluate(e)
		if !res.Notify {
			continue
		}
		unread, err := m.totalUnread(uid)
		if err != nil {
			return PushNotice{}, false, err
		}
		n.Targets = append(n.Targets, PushTarget{UserID: uid, Result: res, Unread: unread, IsTarget: uid == invitee})
	}
	if len(n.Targets) == 0 {
		return n, true, nil
	}
	var name struct {
		Name        string `json:"name"`
		DisplayName string `json:"displayname"`
	}
	if json.Unmarshal(m.stateContent(r, planb.TypeName, ""), &name) == nil {
		n.RoomName = name.Name
	}
	if json.Unmarshal(m.stateContent(r, planb.TypeMember, e.Event.Sender), &name) == nil {
		n.SenderName = name.DisplayName
	}
	return n, true, nil
}

// totalUnread is user's notification count over their joined rooms.
// Caller holds mu.
func (m *Model) totalUnread(user string) (int, error) {
	u := m.users[user]
	if u == nil {
		return 0, nil
	}
	total := 0
	for _, r := range u.rooms {
		if r.membership(user) != planb.MembershipJoin {
			continue
		}
		c, err := m.unread(r, user)
		if err != nil {
			return 0, err
		}
		total += c.Notifications
	}
	return total, nil
}
