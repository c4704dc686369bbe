package roomauth

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
)

const (
	alice  = "@alice:x" // creates every test room and has level 100
	bob    = "@bob:x"
	carol  = "@carol:x"
	dave   = "@dave:x"
	roomID = "!room:x"
)

// obj is JSON object content, written inline in the tables.
type obj = map[string]any

// room builds a test room event by event. Every event goes through
// Validate and Check before it enters the state, so setups cannot build a
// room the rules would not allow.
type room struct {
	t     testing.TB
	state planb.StateMap
	last  string // event ID of the newest event, the next one's prev_event
	depth int64
}

// bareRoom returns a room holding only alice's m.room.create and her join.
func bareRoom(t testing.TB) *room {
	r := &room{t: t, state: planb.StateMap{}}
	r.must(r.state1(alice, planb.TypeCreate, "", obj{"creator": alice, "room_version": "10"}))
	r.must(r.member(alice, alice, planb.MembershipJoin))
	return r
}

// newRoom returns a room as createRoom leaves it: create, alice's join,
// power levels giving alice 100 and the given join rule.
func newRoom(t testing.TB, joinRule string) *room {
	r := bareRoom(t)
	r.levels(obj{"users": obj{alice: 100}})
	r.must(r.state1(alice, planb.TypeJoinRules, "", obj{"join_rule": joinRule}))
	return r
}

// event returns a new event of the room following the newest one.
func (r *room) event(sender, typ string, stateKey *string, content any) *planb.Event {
	r.t.Helper()
	b, err := json.Marshal(content)
	if err != nil {
		r.t.Fatalf("marshal content: %v", err)
	}
	ev := &planb.Event{RoomID: roomID, Sender: sender, Type: typ, StateKey: stateKey, Content: b,
		OriginServerTS: 1_700_000_000_000 + r.depth, Depth: r.depth + 1}
	if r.last != "" {
		ev.PrevEvents = []string{r.last}
	}
	ev.ComputeID()
	return ev
}

// state1 returns a state event.
func (r *room) state1(sender, typ, key string, content any) *planb.Event {
	return r.event(sender, typ, planb.StrPtr(key), content)
}

// msg returns an m.room.message event.
func (r *room) msg(sender string) *planb.Event {
	return r.event(sender, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "hi"})
}

// member returns an m.room.member event; extra keys are added to content.
func (r *room) member(sender, target, membership string, extra ...obj) *planb.Event {
	c := obj{"membership": membership}
	for _, e := range extra {
		for k, v := range e {
			c[k] = v
		}
	}
	return r.state1(sender, planb.TypeMember, target, c)
}

// pl returns an m.room.power_levels event.
func (r *room) pl(sender string, content obj) *planb.Event {
	return r.state1(sender, planb.TypePowerLevels, "", content)
}

// must validates, checks and applies ev, failing the test if it is denied.
func (r *room) must(ev *planb.Event) *room {
	r.t.Helper()
	if err := Validate(ev); err != nil {
		r.t.Fatalf("setup: validate %s from %s: %v", ev.Type, ev.Sender, err)
	}
	if err := Check(ev, r.state); err != nil {
		r.t.Fatalf("setup: %s %s from %s denied: %v", ev.Type, ev.Content, ev.Sender, err)
	}
	r.state.Apply(ev)
	r.last, r.depth = ev.EventID, ev.Depth
	return r
}

// join makes each user join, invited by alice unless the room is public.
func (r *room) join(users ...string) *room {
	for _, u := range users {
		if joinRule(r.state) != JoinRulePublic {
			r.must(r.member(alice, u, planb.MembershipInvite))
		}
		r.must(r.member(u, u, planb.MembershipJoin, obj{"join_authorised_via_users_server": alice}))
	}
	return r
}

// levels has alice replace the power levels.
func (r *room) levels(content obj) *room { return r.must(r.pl(alice, content)) }

// ban has alice ban user.
func (r *room) ban(user string) *room { return r.must(r.member(alice, user, planb.MembershipBan)) }

// mods is a public room where bob and carol are moderators (50) and dave
// is a user (0), all joined.
func mods(r *room) {
	r.join(bob, carol, dave)
	r.levels(obj{"users": obj{alice: 100, bob: 50, carol: 50}})
}

type authCase struct {
	name  string
	rule  string // join rule of the room; "" for public
	bare  bool   // room with only create and alice's join
	setup func(r *room)
	ev    func(r *room) *planb.Event
	deny  string // "" when allowed, else a part of the M_FORBIDDEN message
	// malformed marks events that Validate rejects; Check must reject them too.
	malformed bool
}

func runAuthCases(t *testing.T, cases []authCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var r *room
			switch {
			case tc.bare:
				r = bareRoom(t)
			case tc.rule == "":
				r = newRoom(t, JoinRulePublic)
			default:
				r = newRoom(t, tc.rule)
			}
			if tc.setup != nil {
				tc.setup(r)
			}
			ev := tc.ev(r)
			if err := Validate(ev); (err != nil) != tc.malformed {
				t.Fatalf("Validate = %v, want malformed %v", err, tc.malformed)
			}
			wantDenied(t, Check(ev, r.state), tc.deny)
			// The same decision through a state that remembers its parsed
			// power levels, on the first check and on a remembered one.
			m := &memoState{StateMap: r.state}
			wantDenied(t, Check(ev, m), tc.deny)
			wantDenied(t, Check(ev, m), tc.deny)
		})
	}
}

// memoState is a StateMap with a PowerLevelsMemo, counting its parses.
type memoState struct {
	planb.StateMap
	ev      *planb.Event
	pl      PowerLevels
	set     bool
	parses  int
	lookups int
}

func (m *memoState) MemoPowerLevels(ev *planb.Event) (PowerLevels, bool) {
	m.lookups++
	return m.pl, m.set && m.ev == ev
}

func (m *memoState) RememberPowerLevels(ev *planb.Event, pl PowerLevels) {
	m.ev, m.pl, m.set = ev, pl, true
	m.parses++
}

func TestPowerLevelsMemo(t *testing.T) {
	r := newRoom(t, JoinRulePublic)
	mods(r)
	m := &memoState{StateMap: r.state}
	for range 10 {
		wantDenied(t, Check(r.msg(dave), m), "")
	}
	if m.parses != 1 || m.lookups != 10 {
		t.Errorf("10 checks against one state: %d parses, %d lookups; want 1 and 10", m.parses, m.lookups)
	}
	// New power levels (a new event) are parsed again: dave may no longer
	// send messages.
	next := r.pl(alice, obj{"users": obj{alice: 100}, "events_default": 10})
	m.StateMap = stateWith(r.state, next)
	wantDenied(t, Check(r.msg(dave), m), "send m.room.message")
	if m.parses != 2 {
		t.Errorf("after new power levels: %d parses, want 2", m.parses)
	}
}

// wantDenied checks err is nil when deny is "", else an M_FORBIDDEN
// *planb.Error whose message contains deny.
func wantDenied(t *testing.T, err error, deny string) {
	t.Helper()
	if deny == "" {
		if err != nil {
			t.Fatalf("denied, want allowed: %v", err)
		}
		return
	}
	pe, ok := planb.AsError(err)
	if !ok {
		t.Fatalf("got %v, want M_FORBIDDEN containing %q", err, deny)
	}
	if pe.Code != planb.CodeForbidden || pe.Status != http.StatusForbidden || !strings.Contains(pe.Message, deny) {
		t.Fatalf("got %s (%d) %q, want M_FORBIDDEN containing %q", pe.Code, pe.Status, pe.Message, deny)
	}
}

func TestCheckCreate(t *testing.T) {
	create := func(content obj) *planb.Event {
		return (&room{t: t}).state1(alice, planb.TypeCreate, "", content)
	}
	v10 := obj{"creator": alice, "room_version": "10"}
	// A room holding only its create event, for the creator's first join.
	created := &room{t: t, state: planb.StateMap{}}
	created.must(created.state1(alice, planb.TypeCreate, "", v10))
	joinAfter := func(user string, prev ...string) *planb.Event {
		e := created.member(user, user, planb.MembershipJoin)
		if prev != nil {
			e.PrevEvents = prev
		}
		return e
	}
	for _, tc := range []struct {
		name  string
		ev    *planb.Event
		state planb.StateMap
		deny  string
	}{
		{"first event", create(v10), nil, ""},
		{"has prev_events", func() *planb.Event { e := create(v10); e.PrevEvents = []string{"$x"}; return e }(), nil, "must be the first event"},
		{"room already created", create(v10), bareRoom(t).state, "must be the first event"},
		{"no room_version means v1", create(obj{"creator": alice}), nil, `unsupported room version 1`},
		{"room_version 9", create(obj{"creator": alice, "room_version": "9"}), nil, `unsupported room version "9"`},
		{"room_version not a string", create(obj{"creator": alice, "room_version": 10}), nil, "unsupported room version 10"},
		{"no creator", create(obj{"room_version": "10"}), nil, "must have a creator"},
		{"creator not a user ID", create(obj{"creator": "alice", "room_version": "10"}), nil, "must have a creator"},
		{"message event", (&room{t: t}).event(alice, planb.TypeCreate, nil, v10), nil, "state event with an empty state key"},
		{"non-empty state key", (&room{t: t}).state1(alice, planb.TypeCreate, "x", v10), nil, "state event with an empty state key"},
		{"creator joins right after create", joinAfter(alice), created.state, ""},
		{"creator's join must follow only the create event", joinAfter(alice, "$other"), created.state, "invite-only"},
		{"creator's join must follow the create event", joinAfter(alice, created.last, "$other"), created.state, "invite-only"},
		{"others cannot join right after create", joinAfter(bob), created.state, "@bob:x cannot join: the room is invite-only"},
		{"creator cannot be joined by someone else", created.member(bob, alice, planb.MembershipJoin), created.state, "cannot join on behalf"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantDenied(t, Check(tc.ev, tc.state), tc.deny)
		})
	}
}

func TestCheckRoomBasics(t *testing.T) {
	runAuthCases(t, []authCase{
		{name: "no create event", setup: func(r *room) { delete(r.state, planb.StateTuple{Type: planb.TypeCreate}) },
			ev: func(r *room) *planb.Event { return r.msg(alice) }, deny: "has no m.room.create event"},
		{name: "event of another room", ev: func(r *room) *planb.Event {
			e := r.msg(alice)
			e.RoomID = "!other:x"
			return e
		}, deny: "event is for room !other:x"},
		{name: "member event without membership", ev: func(r *room) *planb.Event {
			return r.state1(alice, planb.TypeMember, alice, obj{"displayname": "A"})
		}, deny: "must have a membership", malformed: true},
	})
}

func TestCheckJoin(t *testing.T) {
	via := func(u string) obj { return obj{"join_authorised_via_users_server": u} }
	runAuthCases(t, []authCase{
		// public
		{name: "public: anyone joins", ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		{name: "public: joined member updates profile", ev: func(r *room) *planb.Event {
			return r.member(alice, alice, "join", obj{"displayname": "Alice"})
		}},
		{name: "public: cannot join for someone else", ev: func(r *room) *planb.Event { return r.member(bob, carol, "join") },
			deny: "@bob:x cannot join on behalf of @carol:x"},
		{name: "public: banned user cannot join", setup: func(r *room) { r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "@bob:x is banned"},
		{name: "public: rejoin after unban", setup: func(r *room) {
			r.ban(bob)
			r.must(r.member(alice, bob, "leave"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		{name: "public: rejoin after leave", setup: func(r *room) {
			r.join(bob)
			r.must(r.member(bob, bob, "leave"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		// invite
		{name: "invite: uninvited user cannot join", rule: JoinRuleInvite,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "invite-only"},
		{name: "invite: invited user joins", rule: JoinRuleInvite, setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		{name: "invite: user who rejected the invite cannot join", rule: JoinRuleInvite, setup: func(r *room) {
			r.must(r.member(alice, bob, "invite"))
			r.must(r.member(bob, bob, "leave"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "invite-only"},
		{name: "invite: no join rules event means invite-only", setup: func(r *room) {
			delete(r.state, planb.StateTuple{Type: planb.TypeJoinRules})
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "invite-only"},
		{name: "private: nobody joins", rule: JoinRulePrivate,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: `join rule "private" does not allow joining`},
		// knock
		{name: "knock: uninvited knocker cannot join", rule: JoinRuleKnock, setup: func(r *room) { r.must(r.member(bob, bob, "knock")) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "invite-only"},
		{name: "knock: knocker invited then joins", rule: JoinRuleKnock, setup: func(r *room) {
			r.must(r.member(bob, bob, "knock"))
			r.must(r.member(alice, bob, "invite"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		// restricted
		{name: "restricted: join authorised by a joined member who can invite", rule: JoinRuleRestricted,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join", via(alice)) }},
		{name: "restricted: join without authorising user", rule: JoinRuleRestricted,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "no member authorised the join"},
		{name: "restricted: authorising user not in the room", rule: JoinRuleRestricted,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join", via(carol)) }, deny: "authorising user @carol:x is not in the room"},
		{name: "restricted: authorising user below invite level", rule: JoinRuleRestricted, setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "invite": 50})
		}, ev: func(r *room) *planb.Event { return r.member(carol, carol, "join", via(bob)) },
			deny: "authorising user @bob:x cannot invite: need 50, have 0"},
		{name: "restricted: invited user joins without authorising user", rule: JoinRuleRestricted,
			setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev:    func(r *room) *planb.Event { return r.member(bob, bob, "join") }},
		{name: "restricted: banned user cannot join even when authorised", rule: JoinRuleRestricted, setup: func(r *room) { r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join", via(alice)) }, deny: "banned"},
		{name: "knock_restricted: join authorised", rule: JoinRuleKnockRestricted,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join", via(alice)) }},
		{name: "knock_restricted: join unauthorised", rule: JoinRuleKnockRestricted,
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "join") }, deny: "no member authorised"},
	})
}

func TestCheckKnock(t *testing.T) {
	runAuthCases(t, []authCase{
		{name: "knock room", rule: JoinRuleKnock, ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }},
		{name: "knock_restricted room", rule: JoinRuleKnockRestricted, ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }},
		{name: "public room", ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }, deny: `join rule is "public"`},
		{name: "invite room", rule: JoinRuleInvite, ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }, deny: "cannot knock"},
		{name: "on behalf of someone", rule: JoinRuleKnock, ev: func(r *room) *planb.Event { return r.member(bob, carol, "knock") },
			deny: "cannot knock on behalf of @carol:x"},
		{name: "banned", rule: JoinRuleKnock, setup: func(r *room) { r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }, deny: "banned"},
		{name: "already invited", rule: JoinRuleKnock, setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }, deny: "already invited"},
		{name: "already joined", rule: JoinRuleKnock, ev: func(r *room) *planb.Event { return r.member(alice, alice, "knock") },
			deny: "already in the room"},
		{name: "knocker withdraws", rule: JoinRuleKnock, setup: func(r *room) { r.must(r.member(bob, bob, "knock")) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "leave") }},
		{name: "knock again after withdrawing", rule: JoinRuleKnock, setup: func(r *room) {
			r.must(r.member(bob, bob, "knock"))
			r.must(r.member(bob, bob, "leave"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "knock") }},
	})
}

func TestCheckInvite(t *testing.T) {
	runAuthCases(t, []authCase{
		{name: "member invites", rule: JoinRuleInvite, ev: func(r *room) *planb.Event { return r.member(alice, bob, "invite") }},
		{name: "user level 0 invites at default invite level", setup: func(r *room) { r.join(bob) },
			ev: func(r *room) *planb.Event { return r.member(bob, carol, "invite") }},
		{name: "non-member cannot invite", ev: func(r *room) *planb.Event { return r.member(bob, carol, "invite") },
			deny: "@bob:x is not in the room"},
		{name: "invited user cannot invite", rule: JoinRuleInvite, setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.member(bob, carol, "invite") }, deny: "@bob:x is not in the room"},
		{name: "below invite level", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "invite": 50})
		}, ev: func(r *room) *planb.Event { return r.member(bob, carol, "invite") },
			deny: "insufficient power level to invite: need 50, have 0"},
		{name: "target already joined", setup: func(r *room) { r.join(bob) },
			ev: func(r *room) *planb.Event { return r.member(alice, bob, "invite") }, deny: "already in the room"},
		{name: "target banned", setup: func(r *room) { r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.member(alice, bob, "invite") }, deny: "banned"},
		{name: "re-invite an invited user", setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.member(alice, bob, "invite") }},
		{name: "third-party invite", ev: func(r *room) *planb.Event {
			return r.member(alice, bob, "invite", obj{"third_party_invite": obj{"display_name": "b", "signed": obj{}}})
		}, deny: "third-party invites are not supported"},
		{name: "m.room.third_party_invite event", ev: func(r *room) *planb.Event {
			return r.state1(alice, planb.TypeThirdPartyInvite, "token", obj{"display_name": "b"})
		}, deny: "third-party invites are not supported"},
	})
}

func TestCheckKickBanLeave(t *testing.T) {
	runAuthCases(t, []authCase{
		// kick
		{name: "admin kicks user", setup: mods, ev: func(r *room) *planb.Event { return r.member(alice, dave, "leave") }},
		{name: "moderator kicks user", setup: mods, ev: func(r *room) *planb.Event { return r.member(bob, dave, "leave") }},
		{name: "user cannot kick", setup: mods, ev: func(r *room) *planb.Event { return r.member(dave, bob, "leave") },
			deny: "insufficient power level to kick: need 50, have 0"},
		{name: "moderator cannot kick equal moderator", setup: mods, ev: func(r *room) *planb.Event { return r.member(bob, carol, "leave") },
			deny: "cannot kick @carol:x: their power level (50) is not below yours (50)"},
		{name: "moderator cannot kick admin", setup: mods, ev: func(r *room) *planb.Event { return r.member(bob, alice, "leave") },
			deny: "not below yours"},
		{name: "non-member cannot kick", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100, carol: 100}})
		}, ev: func(r *room) *planb.Event { return r.member(carol, bob, "leave") }, deny: "@carol:x is not in the room"},
		{name: "raised kick level", setup: func(r *room) {
			mods(r)
			r.levels(obj{"users": obj{alice: 100, bob: 50}, "kick": 75})
		}, ev: func(r *room) *planb.Event { return r.member(bob, dave, "leave") }, deny: "need 75, have 50"},
		// ban
		{name: "admin bans member", setup: mods, ev: func(r *room) *planb.Event { return r.member(alice, bob, "ban") }},
		{name: "moderator bans non-member", setup: mods, ev: func(r *room) *planb.Event { return r.member(bob, "@eve:x", "ban") }},
		{name: "user cannot ban", setup: mods, ev: func(r *room) *planb.Event { return r.member(dave, "@eve:x", "ban") },
			deny: "insufficient power level to ban: need 50, have 0"},
		{name: "moderator cannot ban equal moderator", setup: mods, ev: func(r *room) *planb.Event { return r.member(bob, carol, "ban") },
			deny: "cannot ban @carol:x"},
		{name: "cannot ban self", setup: mods, ev: func(r *room) *planb.Event { return r.member(alice, alice, "ban") },
			deny: "not below yours"},
		{name: "non-member cannot ban", ev: func(r *room) *planb.Event { return r.member(bob, carol, "ban") }, deny: "@bob:x is not in the room"},
		// unban
		{name: "moderator unbans", setup: func(r *room) { mods(r); r.ban("@eve:x") },
			ev: func(r *room) *planb.Event { return r.member(bob, "@eve:x", "leave") }},
		{name: "unban needs the ban level", setup: func(r *room) {
			mods(r)
			r.ban("@eve:x")
			r.levels(obj{"users": obj{alice: 100, bob: 60}, "ban": 75})
		}, ev: func(r *room) *planb.Event { return r.member(bob, "@eve:x", "leave") },
			deny: "insufficient power level to unban: need 75, have 60"},
		{name: "unban needs the kick level too", setup: func(r *room) {
			mods(r)
			r.ban("@eve:x")
			r.levels(obj{"users": obj{alice: 100, bob: 60}, "ban": 50, "kick": 75})
		}, ev: func(r *room) *planb.Event { return r.member(bob, "@eve:x", "leave") },
			deny: "insufficient power level to kick: need 75, have 60"},
		// leave
		{name: "member leaves", setup: mods, ev: func(r *room) *planb.Event { return r.member(dave, dave, "leave") }},
		{name: "invitee rejects invite", setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "leave") }},
		{name: "stranger cannot leave", ev: func(r *room) *planb.Event { return r.member(bob, bob, "leave") },
			deny: "@bob:x is not in the room"},
		{name: "left user cannot leave again", setup: func(r *room) {
			r.join(bob)
			r.must(r.member(bob, bob, "leave"))
		}, ev: func(r *room) *planb.Event { return r.member(bob, bob, "leave") }, deny: "not in the room"},
		{name: "banned user cannot leave", setup: func(r *room) { r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.member(bob, bob, "leave") }, deny: "banned from the room and cannot leave"},
		{name: "unknown membership", ev: func(r *room) *planb.Event {
			e := r.member(alice, alice, "join")
			e.Content = json.RawMessage(`{"membership":"wander"}`)
			return e
		}, deny: `unknown membership "wander"`, malformed: true},
	})
}

func TestCheckSend(t *testing.T) {
	runAuthCases(t, []authCase{
		// events_default
		{name: "member sends message", setup: mods, ev: func(r *room) *planb.Event { return r.msg(dave) }},
		{name: "non-member sends message", ev: func(r *room) *planb.Event { return r.msg(bob) }, deny: "@bob:x is not in the room"},
		{name: "invited user sends message", setup: func(r *room) { r.must(r.member(alice, bob, "invite")) },
			ev: func(r *room) *planb.Event { return r.msg(bob) }, deny: "@bob:x is not in the room"},
		{name: "banned user sends message", setup: func(r *room) { r.join(bob); r.ban(bob) },
			ev: func(r *room) *planb.Event { return r.msg(bob) }, deny: "@bob:x is not in the room"},
		{name: "below events_default", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "events_default": 10})
		}, ev: func(r *room) *planb.Event { return r.msg(bob) },
			deny: "insufficient power level to send m.room.message: need 10, have 0"},
		{name: "events entry overrides events_default", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "events_default": 10, "events": obj{planb.TypeMessage: 0}})
		}, ev: func(r *room) *planb.Event { return r.msg(bob) }},
		{name: "users_default raises everyone", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "events_default": 10, "users_default": 10})
		}, ev: func(r *room) *planb.Event { return r.msg(bob) }},
		// state_default
		{name: "user cannot set name at state_default 50", setup: mods,
			ev:   func(r *room) *planb.Event { return r.state1(dave, planb.TypeName, "", obj{"name": "n"}) },
			deny: "insufficient power level to send m.room.name: need 50, have 0"},
		{name: "moderator sets name", setup: mods, ev: func(r *room) *planb.Event { return r.state1(bob, planb.TypeName, "", obj{"name": "n"}) }},
		{name: "events entry lowers a state event", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "events": obj{planb.TypeTopic: 0}})
		}, ev: func(r *room) *planb.Event { return r.state1(bob, planb.TypeTopic, "", obj{"topic": "t"}) }},
		{name: "events entry raises a state event", setup: func(r *room) {
			mods(r)
			r.levels(obj{"users": obj{alice: 100, bob: 50}, "events": obj{planb.TypeTopic: 60}})
		}, ev: func(r *room) *planb.Event { return r.state1(bob, planb.TypeTopic, "", obj{"topic": "t"}) }, deny: "need 60, have 50"},
		{name: "no power levels: creator sets state", bare: true,
			ev: func(r *room) *planb.Event { return r.state1(alice, planb.TypeName, "", obj{"name": "n"}) }},
		// state keys starting with @
		{name: "own @ state key", setup: func(r *room) { r.join(bob); r.levels(obj{"users": obj{alice: 100}, "state_default": 0}) },
			ev: func(r *room) *planb.Event { return r.state1(bob, "org.example.status", bob, obj{}) }},
		{name: "another user's @ state key", setup: func(r *room) {
			r.join(bob)
			r.levels(obj{"users": obj{alice: 100}, "state_default": 0})
		}, ev: func(r *room) *planb.Event { return r.state1(bob, "org.example.status", alice, obj{}) },
			deny: `state key "@alice:x" names another user`},
		{name: "admin cannot set another user's @ state key either", ev: func(r *room) *planb.Event {
			return r.state1(alice, "org.example.status", bob, obj{})
		}, deny: "names another user"},
		// redactions
		{name: "member sends redaction", setup: mods, ev: func(r *room) *planb.Event {
			e := r.event(dave, planb.TypeRedaction, nil, obj{})
			e.Redacts = "$target"
			return e
		}},
		{name: "redaction event level", setup: func(r *room) {
			mods(r)
			r.levels(obj{"users": obj{alice: 100, bob: 50}, "events": obj{planb.TypeRedaction: 50}})
		}, ev: func(r *room) *planb.Event {
			e := r.event(dave, planb.TypeRedaction, nil, obj{})
			e.Redacts = "$target"
			return e
		}, deny: "insufficient power level to send m.room.redaction: need 50, have 0"},
	})
}

func TestCheckPowerLevels(t *testing.T) {
	// In these cases alice is 100, bob and carol 50, dave 0.
	base := func(extra obj) obj {
		c := obj{"users": obj{alice: 100, bob: 50, carol: 50}}
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	runAuthCases(t, []authCase{
		{name: "first power levels may say anything", bare: true,
			ev: func(r *room) *planb.Event { return r.pl(alice, obj{"users": obj{alice: 1000}, "ban": 1000}) }},
		{name: "first power levels must still be integers", bare: true,
			ev: func(r *room) *planb.Event { return r.pl(alice, obj{"ban": "50"}) }, deny: `ban must be an integer, got "50"`},
		{name: "user cannot send power levels", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(dave, base(nil)) },
			deny: "insufficient power level to send m.room.power_levels: need 50, have 0"},
		{name: "admin promotes user to moderator", setup: mods,
			ev: func(r *room) *planb.Event {
				return r.pl(alice, obj{"users": obj{alice: 100, bob: 50, carol: 50, dave: 50}})
			}},
		{name: "admin cannot raise above own level", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(alice, obj{"users": obj{alice: 100, bob: 101, carol: 50}}) },
			deny: "cannot set the level of @bob:x to 101: above your power level 100"},
		{name: "moderator promotes user to own level", setup: mods,
			ev: func(r *room) *planb.Event {
				return r.pl(bob, obj{"users": obj{alice: 100, bob: 50, carol: 50, dave: 50}})
			}},
		{name: "moderator cannot promote above own level", setup: mods,
			ev: func(r *room) *planb.Event {
				return r.pl(bob, obj{"users": obj{alice: 100, bob: 50, carol: 50, dave: 51}})
			},
			deny: "above your power level 50"},
		{name: "moderator cannot promote self", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(bob, obj{"users": obj{alice: 100, bob: 60, carol: 50}}) },
			deny: "cannot set the level of @bob:x to 60"},
		{name: "moderator demotes self", setup: mods,
			ev: func(r *room) *planb.Event { return r.pl(bob, obj{"users": obj{alice: 100, carol: 50}}) }},
		{name: "moderator cannot demote equal moderator", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(bob, obj{"users": obj{alice: 100, bob: 50, carol: 0}}) },
			deny: "cannot change the power level of @carol:x: theirs (50) is not below yours (50)"},
		{name: "moderator cannot remove admin", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(bob, obj{"users": obj{bob: 50, carol: 50}}) },
			deny: "cannot change the power level of @alice:x"},
		{name: "unchanged admin entry is fine", setup: mods,
			ev: func(r *room) *planb.Event { return r.pl(bob, base(obj{"ban": 40})) }},
		{name: "moderator lowers ban level", setup: mods, ev: func(r *room) *planb.Event { return r.pl(bob, base(obj{"ban": 10})) }},
		{name: "moderator cannot raise ban level above own", setup: mods,
			ev: func(r *room) *planb.Event { return r.pl(bob, base(obj{"ban": 51})) }, deny: "cannot set ban to 51"},
		{name: "moderator cannot change a level above own", setup: func(r *room) { mods(r); r.levels(base(obj{"kick": 75})) },
			ev:   func(r *room) *planb.Event { return r.pl(bob, base(obj{"kick": 50})) },
			deny: "cannot change kick: its current value 75 is above your power level 50"},
		{name: "moderator cannot remove a level above own", setup: func(r *room) { mods(r); r.levels(base(obj{"redact": 75})) },
			ev: func(r *room) *planb.Event { return r.pl(bob, base(nil)) }, deny: "cannot change redact: its current value 75"},
		{name: "moderator adds an events entry at own level", setup: mods,
			ev: func(r *room) *planb.Event { return r.pl(bob, base(obj{"events": obj{planb.TypeTopic: 50}})) }},
		{name: "moderator cannot add an events entry above own", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(bob, base(obj{"events": obj{planb.TypeTopic: 60}})) },
			deny: `cannot set events["m.room.topic"] to 60`},
		{name: "moderator cannot remove an events entry above own", setup: func(r *room) {
			mods(r)
			r.levels(base(obj{"events": obj{"m.room.tombstone": 100, planb.TypePowerLevels: 50}}))
		}, ev: func(r *room) *planb.Event { return r.pl(bob, base(obj{"events": obj{planb.TypePowerLevels: 50}})) },
			deny: `cannot change events["m.room.tombstone"]`},
		{name: "moderator cannot raise @room notifications above own", setup: mods,
			ev:   func(r *room) *planb.Event { return r.pl(bob, base(obj{"notifications": obj{"room": 100}})) },
			deny: `cannot set notifications["room"] to 100`},
		// room version 10: integers only
		{name: "string level", setup: mods, ev: func(r *room) *planb.Event { return r.pl(alice, base(obj{"kick": "50"})) },
			deny: "kick must be an integer"},
		{name: "float level", setup: mods, ev: func(r *room) *planb.Event { return r.pl(alice, base(obj{"redact": 1.5})) },
			deny: "redact must be an integer, got 1.5"},
		{name: "null level", setup: mods, ev: func(r *room) *planb.Event { return r.pl(alice, base(obj{"invite": nil})) },
			deny: "invite must be an integer"},
		{name: "level beyond 2^53", setup: mods, ev: func(r *room) *planb.Event {
			return r.pl(alice, base(obj{"users_default": json.RawMessage("9007199254740992")}))
		}, deny: "users_default must be an integer"},
		{name: "string in events", setup: mods, ev: func(r *room) *planb.Event {
			return r.pl(alice, base(obj{"events": obj{planb.TypeName: "50"}}))
		}, deny: `events["m.room.name"] must be an integer`},
		{name: "events not an object", setup: mods, ev: func(r *room) *planb.Event { return r.pl(alice, base(obj{"events": []int{1}})) },
			deny: "events must be an object of integers"},
		{name: "notifications not an object", setup: mods, ev: func(r *room) *planb.Event { return r.pl(alice, base(obj{"notifications": 50})) },
			deny: "notifications must be an object of integers"},
		{name: "users key not a user ID", setup: mods, ev: func(r *room) *planb.Event {
			return r.pl(alice, obj{"users": obj{alice: 100, "bob": 50}})
		}, deny: `users key "bob" is not a valid user ID`},
		{name: "users value not an integer", setup: mods, ev: func(r *room) *planb.Event {
			return r.pl(alice, obj{"users": obj{alice: 100, bob: "50"}})
		}, deny: `users["@bob:x"] must be an integer`},
		{name: "content not an object", setup: mods, ev: func(r *room) *planb.Event {
			e := r.pl(alice, nil)
			e.Content = json.RawMessage(`[]`)
			return e
		}, deny: "content must be a JSON object", malformed: true},
	})
}

func TestCheckRedaction(t *testing.T) {
	r := newRoom(t, JoinRulePublic)
	mods(r)
	fromAlice, fromDave := r.msg(alice), r.msg(dave)
	redaction := func(sender string) *planb.Event {
		e := r.event(sender, planb.TypeRedaction, nil, obj{})
		e.Redacts = "$x"
		return e
	}
	elsewhere := *fromDave
	elsewhere.RoomID = "!other:x"
	for _, tc := range []struct {
		name          string
		sender        string
		target        *planb.Event
		state         planb.StateReader
		deny          string
		wantAuthCheck bool
	}{
		{"user redacts own event", dave, fromDave, r.state, "", true},
		{"user cannot redact another's event", dave, fromAlice, r.state, "insufficient power level to redact another user's event: need 50, have 0", true},
		{"moderator redacts another's event", bob, fromDave, r.state, "", true},
		{"moderator redacts an unknown event", bob, nil, r.state, "", true},
		{"user cannot redact an unknown event", dave, nil, r.state, "need 50, have 0", true},
		{"event of another room", bob, &elsewhere, r.state, "is not in room", true},
		{"redact level 0 lets users redact anyone", dave, fromAlice,
			stateWith(r.state, r.pl(alice, obj{"users": obj{alice: 100}, "redact": 0})), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			red := redaction(tc.sender)
			if tc.wantAuthCheck {
				wantDenied(t, Check(red, tc.state), "")
			}
			wantDenied(t, CheckRedaction(red, tc.target, tc.state), tc.deny)
		})
	}
	wantDenied(t, CheckRedaction(r.msg(bob), fromDave, r.state), "not an m.room.redaction event")
}

// stateWith returns a copy of state with ev applied.
func stateWith(state planb.StateMap, ev *planb.Event) planb.StateMap {
	out := planb.StateMap{}
	for k, v := range state {
		out[k] = v
	}
	out.Apply(ev)
	return out
}
