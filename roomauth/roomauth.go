// Package roomauth decides whether an event may enter a room: the
// authorization rules of Matrix room version 10, the structural checks done
// before them, power levels and the redaction algorithm.
//
// planb is a single homeserver without federation, so the rules about
// signatures and about the sender's server (rules 1.2, 2.1 to 2.3, 3 and 4.2
// of the spec) are left out: every event is built by this server for an
// authenticated sender. Third-party invites are not supported. Everything
// else follows the spec's numbered rules, which the code cites.
//
// Every rejection is a *planb.Error: M_FORBIDDEN (403) from Check and
// CheckRedaction, M_BAD_JSON (400) or M_TOO_LARGE (413) from Validate.
package roomauth

import (
	"encoding/json"
	"strings"

	"github.com/planb-chat/planb"
)

// RoomVersion is the only room version whose rules this package implements.
const RoomVersion = "10"

// Join rules of m.room.join_rules.
const (
	JoinRulePublic          = "public"
	JoinRuleInvite          = "invite"
	JoinRuleKnock           = "knock"
	JoinRuleRestricted      = "restricted"
	JoinRuleKnockRestricted = "knock_restricted"
	JoinRulePrivate         = "private"
)

// Check applies the room version 10 authorization rules to ev against
// state, the room state before ev (empty for the m.room.create event). It
// returns nil when ev is allowed and an M_FORBIDDEN *planb.Error saying why
// when it is not. Run Validate first: Check assumes a well-formed event but
// does not panic on a malformed one.
//
// Check reads ev.PrevEvents in two places, so the caller must set it to the
// event(s) ev follows in the room: it must be empty for m.room.create, and
// the creator's first join is recognised by following only the create event.
//
// m.room.redaction events are authorized like any other event (the sender
// must be joined and have the m.room.redaction level of "events" or
// events_default); as the spec says, the redact level is not an auth rule.
// Whether the redaction may then be applied to its target is decided by
// CheckRedaction, which the caller runs as well.
//
// For a join to a restricted or knock_restricted room, the caller checks the
// allow list and names the authorising user in
// content.join_authorised_via_users_server; Check verifies that this user is
// joined and may invite.
func Check(ev *planb.Event, state planb.StateReader) error {
	if ev == nil {
		return planb.Forbidden("no event")
	}
	if state == nil {
		state = planb.StateMap{}
	}
	if ev.Type == planb.TypeCreate {
		return checkCreate(ev, state) // rule 1
	}
	create := state.Get(planb.TypeCreate, "")
	if create == nil {
		return planb.Forbidden("room %s has no m.room.create event", ev.RoomID) // rule 2.4
	}
	if create.RoomID != ev.RoomID {
		return planb.Forbidden("event is for room %s but the state is of room %s", ev.RoomID, create.RoomID) // rule 2.5
	}
	pl := powerLevels(state)
	if ev.Type == planb.TypeMember {
		return checkMember(ev, state, pl, create) // rule 4
	}
	if membership(state, ev.Sender) != planb.MembershipJoin {
		return notInRoom(ev.Sender) // rule 5
	}
	if ev.Type == planb.TypeThirdPartyInvite {
		return errThirdParty() // rule 6, unsupported
	}
	have := pl.UserLevel(ev.Sender)
	if need := pl.EventLevel(ev.Type, ev.IsState()); need > have {
		return levelError("send "+ev.Type, need, have) // rule 7
	}
	if sk := ev.StateKeyOr(); strings.HasPrefix(sk, "@") && sk != ev.Sender {
		return planb.Forbidden("state key %q names another user: only %s may set it", sk, sk) // rule 8
	}
	if ev.Type == planb.TypePowerLevels {
		newPL, err := parsePLStrict(ev.Content) // rules 9.1 to 9.3
		if err != nil {
			return err
		}
		return checkPowerLevelsChange(ev, state, newPL, have) // rules 9.4 to 9.10
	}
	return nil // rule 10
}

// CheckRedaction decides whether the redaction event may be applied to
// target, the event it redacts, after Check has admitted the redaction
// ("Handling redactions" in the spec). It returns nil when the sender's
// power level reaches the room's redact level, or when target was sent by
// the redaction's own sender. target may be nil when the redacted event is
// unknown; then only the power level allows it. It returns an M_FORBIDDEN
// *planb.Error otherwise, or when target is in another room.
//
// The spec's second condition compares the senders' servers, which on a
// single homeserver always match; planb compares the users instead, as the
// client-server API describes (users redact their own events, moderators
// anyone's).
func CheckRedaction(redaction, target *planb.Event, state planb.StateReader) error {
	if redaction == nil || redaction.Type != planb.TypeRedaction {
		return planb.Forbidden("not an m.room.redaction event")
	}
	if target != nil && target.RoomID != redaction.RoomID {
		return planb.Forbidden("event %s is not in room %s", target.EventID, redaction.RoomID)
	}
	pl := powerLevels(state)
	have := pl.UserLevel(redaction.Sender)
	if have >= pl.Redact {
		return nil
	}
	if target != nil && target.Sender == redaction.Sender {
		return nil
	}
	return levelError("redact another user's event", pl.Redact, have)
}

// errThirdParty rejects third-party invites, which planb does not support.
// It is a function so that no caller shares a mutable *planb.Error.
func errThirdParty() error { return planb.Forbidden("third-party invites are not supported") }

// checkCreate applies rule 1. Beyond the spec it requires an empty state
// key, an empty room, room_version "10" and a creator that is a user ID.
func checkCreate(ev *planb.Event, state planb.StateReader) error {
	if ev.StateKey == nil || *ev.StateKey != "" {
		return planb.Forbidden("m.room.create must be a state event with an empty state key")
	}
	if len(ev.PrevEvents) > 0 || state.Get(planb.TypeCreate, "") != nil {
		return planb.Forbidden("m.room.create must be the first event of the room")
	}
	var c map[string]any
	if json.Unmarshal(ev.Content, &c) != nil || c == nil {
		return planb.Forbidden("m.room.create content must be a JSON object")
	}
	// An absent room_version means version 1, which planb does not implement.
	version, ok := c["room_version"].(string)
	if !ok || version != RoomVersion {
		v := "1"
		if raw, present := c["room_version"]; present {
			b, _ := json.Marshal(raw)
			v = string(b)
		}
		return planb.Forbidden("unsupported room version %s: planb supports only %q", v, RoomVersion)
	}
	creator, ok := c["creator"].(string)
	if !ok || !planb.ValidUserID(creator) {
		return planb.Forbidden("m.room.create content must have a creator that is a user ID")
	}
	return nil
}

// memberContent is the part of m.room.member content the rules read.
type memberContent struct {
	Membership       any             `json:"membership"`
	AuthorisedVia    any             `json:"join_authorised_via_users_server"`
	ThirdPartyInvite json.RawMessage `json:"third_party_invite"`
}

// checkMember applies rule 4 to an m.room.member event.
func checkMember(ev *planb.Event, state planb.StateReader, pl PowerLevels, create *planb.Event) error {
	if ev.StateKey == nil {
		return planb.Forbidden("m.room.member must have a state key") // rule 4.1
	}
	var c memberContent
	if json.Unmarshal(ev.Content, &c) != nil {
		return planb.Forbidden("m.room.member content must be a JSON object")
	}
	m, ok := c.Membership.(string)
	if !ok {
		return planb.Forbidden("m.room.member content must have a membership string") // rule 4.1
	}
	sender, target := ev.Sender, *ev.StateKey
	switch m {
	case planb.MembershipJoin:
		return checkJoin(ev, state, pl, create, c)
	case planb.MembershipInvite: // rule 4.4
		if len(c.ThirdPartyInvite) > 0 {
			return errThirdParty() // rule 4.4.1, unsupported
		}
		if membership(state, sender) != planb.MembershipJoin {
			return notInRoom(sender)
		}
		switch membership(state, target) {
		case planb.MembershipJoin:
			return planb.Forbidden("cannot invite %s: already in the room", target)
		case planb.MembershipBan:
			return planb.Forbidden("cannot invite %s: banned from the room", target)
		}
		if have := pl.UserLevel(sender); have < pl.Invite {
			return levelError("invite", pl.Invite, have)
		}
		return nil
	case planb.MembershipLeave: // rule 4.5
		if sender == target {
			switch membership(state, sender) {
			case planb.MembershipInvite, planb.MembershipJoin, planb.MembershipKnock:
				return nil
			case planb.MembershipBan:
				return planb.Forbidden("%s is banned from the room and cannot leave", sender)
			}
			return notInRoom(sender)
		}
		if membership(state, sender) != planb.MembershipJoin {
			return notInRoom(sender)
		}
		have := pl.UserLevel(sender)
		if membership(state, target) == planb.MembershipBan && have < pl.Ban {
			return levelError("unban", pl.Ban, have)
		}
		if have < pl.Kick {
			return levelError("kick", pl.Kick, have)
		}
		if theirs := pl.UserLevel(target); theirs >= have {
			return planb.Forbidden("cannot kick %s: their power level (%d) is not below yours (%d)", target, theirs, have)
		}
		return nil
	case planb.MembershipBan: // rule 4.6
		if membership(state, sender) != planb.MembershipJoin {
			return notInRoom(sender)
		}
		have := pl.UserLevel(sender)
		if have < pl.Ban {
			return levelError("ban", pl.Ban, have)
		}
		if theirs := pl.UserLevel(target); theirs >= have {
			return planb.Forbidden("cannot ban %s: their power level (%d) is not below yours (%d)", target, theirs, have)
		}
		return nil
	case planb.MembershipKnock: // rule 4.7
		if rule := joinRule(state); rule != JoinRuleKnock && rule != JoinRuleKnockRestricted {
			return planb.Forbidden("cannot knock: the room's join rule is %q", rule)
		}
		if sender != target {
			return planb.Forbidden("%s cannot knock on behalf of %s", sender, target)
		}
		switch membership(state, sender) {
		case planb.MembershipBan:
			return planb.Forbidden("%s is banned from the room", sender)
		case planb.MembershipInvite:
			return planb.Forbidden("cannot knock: %s is already invited", sender)
		case planb.MembershipJoin:
			return planb.Forbidden("cannot knock: %s is already in the room", sender)
		}
		return nil
	}
	return planb.Forbidden("unknown membership %q", m) // rule 4.8
}

// checkJoin applies rule 4.3 to a join.
func checkJoin(ev *planb.Event, state planb.StateReader, pl PowerLevels, create *planb.Event, c memberContent) error {
	sender, target := ev.Sender, *ev.StateKey
	// Rule 4.3.1: the creator's own join straight after m.room.create. The
	// spec does not compare sender here because the signature check covers
	// it; without signatures we require sender == state_key.
	if len(ev.PrevEvents) == 1 && create.EventID != "" && ev.PrevEvents[0] == create.EventID &&
		sender == target && target == roomCreator(state) {
		return nil
	}
	if sender != target {
		return planb.Forbidden("%s cannot join on behalf of %s", sender, target) // rule 4.3.2
	}
	current := membership(state, sender)
	if current == planb.MembershipBan {
		return planb.Forbidden("%s is banned from the room", sender) // rule 4.3.3
	}
	invitedOrJoined := current == planb.MembershipInvite || current == planb.MembershipJoin
	switch rule := joinRule(state); rule {
	case JoinRuleInvite, JoinRuleKnock: // rule 4.3.4
		if invitedOrJoined {
			return nil
		}
		return planb.Forbidden("%s cannot join: the room is invite-only (join rule %q)", sender, rule)
	case JoinRuleRestricted, JoinRuleKnockRestricted: // rule 4.3.5
		if invitedOrJoined {
			return nil
		}
		via, _ := c.AuthorisedVia.(string)
		if via == "" {
			return planb.Forbidden("%s cannot join: the room is restricted and no member authorised the join", sender)
		}
		if membership(state, via) != planb.MembershipJoin {
			return planb.Forbidden("%s cannot join: authorising user %s is not in the room", sender, via)
		}
		if lvl := pl.UserLevel(via); lvl < pl.Invite {
			return planb.Forbidden("%s cannot join: authorising user %s cannot invite: need %d, have %d", sender, via, pl.Invite, lvl)
		}
		return nil
	case JoinRulePublic: // rule 4.3.6
		return nil
	default: // rule 4.3.7
		return planb.Forbidden("%s cannot join: join rule %q does not allow joining", sender, rule)
	}
}

// membership returns userID's current membership in state, or "" when the
// user has no m.room.member event.
func membership(state planb.StateReader, userID string) string {
	if ev := state.Get(planb.TypeMember, userID); ev != nil {
		return ev.Membership()
	}
	return ""
}

// joinRule returns the room's join rule. A room without m.room.join_rules
// is treated as invite-only, as Synapse and Dendrite do; the spec's rules
// leave this case undefined.
func joinRule(state planb.StateReader) string {
	ev := state.Get(planb.TypeJoinRules, "")
	if ev == nil {
		return JoinRuleInvite
	}
	var c struct {
		JoinRule any `json:"join_rule"`
	}
	_ = json.Unmarshal(ev.Content, &c) // malformed content yields "", which admits nobody
	s, _ := c.JoinRule.(string)
	return s
}

// notInRoom is the error for a sender who must be joined but is not.
func notInRoom(userID string) error {
	return planb.Forbidden("%s is not in the room", userID)
}
