package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/roomauth"
)

// DefaultRoomVersion is the room version of new rooms; the only one planb
// supports.
const DefaultRoomVersion = "10"

// StateEventInput is one entry of createRoom's initial_state.
type StateEventInput struct {
	Type     string          `json:"type"`
	StateKey string          `json:"state_key"`
	Content  json.RawMessage `json:"content"`
}

// CreateRoomRequest is the body of POST /createRoom.
type CreateRoomRequest struct {
	Visibility                string            `json:"visibility"`
	RoomAliasName             string            `json:"room_alias_name"`
	Name                      *string           `json:"name"`
	Topic                     *string           `json:"topic"`
	Invite                    []string          `json:"invite"`
	RoomVersion               string            `json:"room_version"`
	CreationContent           map[string]any    `json:"creation_content"`
	InitialState              []StateEventInput `json:"initial_state"`
	Preset                    string            `json:"preset"`
	IsDirect                  bool              `json:"is_direct"`
	PowerLevelContentOverride map[string]any    `json:"power_level_content_override"`
}

// memberContent returns join content with the user's profile.
func (s *Service) memberContent(ctx context.Context, userID, membership string) map[string]any {
	c := map[string]any{"membership": membership}
	if membership == planb.MembershipJoin {
		if dn, av, err := s.Profile(ctx, userID); err == nil {
			if dn != "" {
				c["displayname"] = dn
			}
			if av != "" {
				c["avatar_url"] = av
			}
		}
	}
	return c
}

// CreateRoom creates a room with all its initial events in one record, so
// that a room never exists half-made.
func (s *Service) CreateRoom(ctx context.Context, sess Session, req CreateRoomRequest) (string, error) {
	if req.RoomVersion != "" && req.RoomVersion != DefaultRoomVersion {
		return "", planb.Errorf(planb.CodeUnsupportedRoomVer, 400, "room version %q is not supported; use %q", req.RoomVersion, DefaultRoomVersion)
	}
	switch req.Visibility {
	case "", visibilityPublic, visibilityPrivate:
	default:
		return "", planb.InvalidParam("visibility must be %q or %q", visibilityPublic, visibilityPrivate)
	}
	preset := req.Preset
	if preset == "" {
		preset = "private_chat"
		if req.Visibility == "public" {
			preset = "public_chat"
		}
	}
	switch preset {
	case "private_chat", "public_chat", "trusted_private_chat":
	default:
		return "", planb.BadJSON("unknown preset %q", preset)
	}
	for _, inv := range req.Invite {
		if !planb.ValidUserID(inv) {
			return "", planb.InvalidParam("invalid user ID %q in invite", inv)
		}
	}
	roomID := "!" + planb.RandomString(18) + ":" + s.cfg.ServerName
	alias := ""
	if req.RoomAliasName != "" {
		alias = "#" + req.RoomAliasName + ":" + s.cfg.ServerName
		if err := s.createAlias(ctx, sess.UserID, alias, roomID); err != nil {
			return "", err
		}
	}
	b := newBuilder(nil, roomID)
	add := func(typ string, stateKey string, content any) error {
		_, err := b.add(sess.UserID, typ, planb.StrPtr(stateKey), content, "")
		return err
	}
	create := map[string]any{}
	for k, v := range req.CreationContent {
		create[k] = v
	}
	create["creator"] = sess.UserID
	create["room_version"] = DefaultRoomVersion
	pl := map[string]any{
		"users":          map[string]any{sess.UserID: 100},
		"users_default":  0,
		"events_default": 0,
		"state_default":  50,
		"ban":            50,
		"kick":           50,
		"redact":         50,
		"invite":         0,
		"events": map[string]any{
			planb.TypeName: 50, planb.TypePowerLevels: 100, planb.TypeHistoryVisibility: 100,
			planb.TypeCanonicalAlias: 50, planb.TypeAvatar: 50, "m.room.tombstone": 100,
			planb.TypeServerACL: 100, planb.TypeEncryption: 100,
		},
		"notifications": map[string]any{"room": 50},
	}
	if preset == "trusted_private_chat" {
		users := pl["users"].(map[string]any)
		for _, inv := range req.Invite {
			users[inv] = 100
		}
	}
	for k, v := range req.PowerLevelContentOverride {
		pl[k] = v
	}
	joinRule, guest := "invite", "can_join"
	if preset == "public_chat" {
		joinRule, guest = "public", "forbidden"
	}
	steps := []func() error{
		func() error { return add(planb.TypeCreate, "", create) },
		func() error {
			return add(planb.TypeMember, sess.UserID, s.memberContent(ctx, sess.UserID, planb.MembershipJoin))
		},
		func() error { return add(planb.TypePowerLevels, "", pl) },
	}
	if alias != "" {
		steps = append(steps, func() error { return add(planb.TypeCanonicalAlias, "", map[string]any{"alias": alias}) })
	}
	steps = append(steps,
		func() error { return add(planb.TypeJoinRules, "", map[string]any{"join_rule": joinRule}) },
		func() error {
			return add(planb.TypeHistoryVisibility, "", map[string]any{"history_visibility": "shared"})
		},
		func() error { return add(planb.TypeGuestAccess, "", map[string]any{"guest_access": guest}) },
	)
	for _, st := range req.InitialState {
		st := st
		steps = append(steps, func() error {
			if st.Type == "" {
				return planb.BadJSON("initial_state entries need a type")
			}
			if len(st.Content) == 0 {
				st.Content = json.RawMessage(`{}`)
			}
			return add(st.Type, st.StateKey, st.Content)
		})
	}
	if req.Name != nil {
		steps = append(steps, func() error { return add(planb.TypeName, "", map[string]any{"name": *req.Name}) })
	}
	if req.Topic != nil {
		steps = append(steps, func() error {
			// The plain-text topic, and its rich form (spec v1.15: createRoom duplicates it into m.topic).
			return add(planb.TypeTopic, "", map[string]any{"topic": *req.Topic,
				"m.topic": map[string]any{"m.text": []any{map[string]any{"body": *req.Topic, "mimetype": "text/plain"}}}})
		})
	}
	for _, inv := range req.Invite {
		inv := inv
		steps = append(steps, func() error {
			if err := s.userExists(ctx, inv); err != nil {
				return err
			}
			c := map[string]any{"membership": planb.MembershipInvite}
			if req.IsDirect {
				c["is_direct"] = true
			}
			return add(planb.TypeMember, inv, c)
		})
	}
	for _, step := range steps {
		if err := step(); err != nil {
			s.dropAlias(alias)
			return "", err
		}
	}
	data, err := json.Marshal(planb.Record{Events: b.events})
	if err != nil {
		return "", fmt.Errorf("encode record: %w", err)
	}
	if err := s.cutOff(); err != nil {
		s.dropAlias(alias)
		return "", err
	}
	wctx, cancel := context.WithTimeout(ctx, s.writeTimeout())
	defer cancel()
	ack, err := s.engine.AppendRoom(wctx, roomID, data, 0, "")
	if err != nil {
		s.dropAlias(alias)
		return "", s.unavailable(err)
	}
	if err := s.model.WaitPartition(wctx, ack.Partition, ack.Seq); err != nil {
		s.log.Warn("read model lags behind own write", "room", roomID)
	}
	if req.Visibility == visibilityPublic {
		// The room exists now; if publishing fails the client hears so
		// (and may publish it with PUT /directory/list/room).
		if err := s.publish(ctx, sess.UserID, roomID, visibilityPublic); err != nil {
			return "", err
		}
	}
	return roomID, nil
}

// dropAlias removes an alias that was reserved for a room that failed.
func (s *Service) dropAlias(alias string) {
	if alias == "" {
		return
	}
	if err := s.engine.Delete(context.Background(), jetstream.BucketAliases, jetstream.KeyPart(alias)); err != nil {
		s.log.Warn("could not release alias", "alias", alias, "err", err)
	}
}

// userExists returns M_NOT_FOUND when userID is not a user of this server.
func (s *Service) userExists(ctx context.Context, userID string) error {
	local, err := s.localpartOf(userID)
	if err != nil {
		return planb.NotFound("unknown user %s", userID)
	}
	if _, _, err := s.getAccount(ctx, local); err != nil {
		if errors.Is(err, planb.ErrNotFound) {
			return planb.NotFound("unknown user %s", userID)
		}
		return s.unavailable(err)
	}
	return nil
}

// Join joins a room by ID or alias (POST /join/{roomIdOrAlias} and
// /rooms/{roomId}/join).
//
// extra is the request body: its fields go into the member event's content
// (a reason, or a client's own keys), except those the server decides.
func (s *Service) Join(ctx context.Context, sess Session, roomIDOrAlias string, extra map[string]any) (string, error) {
	roomID := roomIDOrAlias
	if strings.HasPrefix(roomIDOrAlias, "#") {
		id, err := s.ResolveAlias(ctx, roomIDOrAlias)
		if err != nil {
			return "", err
		}
		roomID = id
	} else if !strings.HasPrefix(roomID, "!") {
		return "", planb.InvalidParam("%q is neither a room ID nor an alias", roomIDOrAlias)
	}
	content := s.memberContent(ctx, sess.UserID, planb.MembershipJoin)
	for k, v := range extra {
		switch k {
		case "membership", "join_authorised_via_users_server", "third_party_signed":
		default:
			content[k] = v
		}
	}
	via := s.restrictedJoinVia(roomID, sess.UserID)
	_, err := s.commit(ctx, roomID, nil, func(b *builder) error {
		prior := b.membership(sess.UserID)
		if prior == planb.MembershipJoin {
			return nil // already joined
		}
		c := content
		if via != "" && prior != planb.MembershipInvite {
			c = copyMap(content)
			c["join_authorised_via_users_server"] = via
		}
		_, err := b.add(sess.UserID, planb.TypeMember, planb.StrPtr(sess.UserID), c, "")
		if err != nil && prior == "" {
			// Do not reveal more about rooms the user may not join.
			if errors.Is(err, planb.MForbidden) {
				return planb.Forbidden("you are not invited to this room")
			}
		}
		return err
	})
	if err != nil && !errors.Is(err, errSkip) {
		return "", err
	}
	return roomID, nil
}

func copyMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// restrictedJoinVia implements restricted join rules on one server: when the
// room's join rule is restricted and the user is joined to a room of its
// allow list, it returns a joined member of the room with power to invite,
// to be named in join_authorised_via_users_server (room version 8+).
// It reads through the model's lock and must not run under it.
func (s *Service) restrictedJoinVia(roomID, user string) string {
	jr := s.model.StateGet(roomID, planb.TypeJoinRules, "")
	if jr == nil {
		return ""
	}
	var c struct {
		JoinRule string `json:"join_rule"`
		Allow    []struct {
			Type   string `json:"type"`
			RoomID string `json:"room_id"`
		} `json:"allow"`
	}
	if json.Unmarshal(jr.Content, &c) != nil || (c.JoinRule != "restricted" && c.JoinRule != "knock_restricted") {
		return ""
	}
	allowed := false
	for _, a := range c.Allow {
		if a.Type == "m.room_membership" && s.model.Membership(a.RoomID, user) == planb.MembershipJoin {
			allowed = true
		}
	}
	if !allowed {
		return ""
	}
	pl := roomauth.ParsePowerLevels(projection.RoomState{M: s.model, RoomID: roomID})
	for _, m := range s.model.RoomMembers(roomID, planb.MembershipJoin) {
		if pl.UserLevel(m) >= pl.Invite {
			return m
		}
	}
	return ""
}

// membership builds a membership change of target by the session's user.
func (s *Service) membership(ctx context.Context, sess Session, roomID, target, membership, reason string) error {
	if !planb.ValidUserID(target) {
		return planb.InvalidParam("invalid user ID %q", target)
	}
	if membership == planb.MembershipInvite {
		if err := s.userExists(ctx, target); err != nil {
			return err
		}
	}
	_, err := s.commit(ctx, roomID, nil, func(b *builder) error {
		if b.membership(sess.UserID) == "" && sess.UserID != target {
			return planb.Forbidden("%s is not in room %s", sess.UserID, roomID)
		}
		c := map[string]any{"membership": membership}
		if reason != "" {
			c["reason"] = reason
		}
		_, err := b.add(sess.UserID, planb.TypeMember, planb.StrPtr(target), c, "")
		return err
	})
	return s.notFoundAsForbidden(err, roomID)
}

// notFoundAsForbidden hides whether a room exists from users who are not in
// it, as the spec's membership endpoints answer 403.
func (s *Service) notFoundAsForbidden(err error, roomID string) error {
	if errors.Is(err, planb.MNotFound) {
		return planb.Forbidden("you are not in room %s", roomID)
	}
	return err
}

// Invite invites target (POST /rooms/{roomId}/invite).
func (s *Service) Invite(ctx context.Context, sess Session, roomID, target, reason string) error {
	return s.membership(ctx, sess, roomID, target, planb.MembershipInvite, reason)
}

// Leave leaves the room or rejects an invite (POST /rooms/{roomId}/leave).
func (s *Service) Leave(ctx context.Context, sess Session, roomID, reason string) error {
	return s.membership(ctx, sess, roomID, sess.UserID, planb.MembershipLeave, reason)
}

// Kick removes target (POST /rooms/{roomId}/kick).
func (s *Service) Kick(ctx context.Context, sess Session, roomID, target, reason string) error {
	if s.model.Membership(roomID, target) != planb.MembershipJoin && s.model.Membership(roomID, target) != planb.MembershipInvite {
		if s.model.Membership(roomID, sess.UserID) == planb.MembershipJoin {
			return planb.Forbidden("%s is not in the room", target)
		}
	}
	return s.membership(ctx, sess, roomID, target, planb.MembershipLeave, reason)
}

// Ban bans target (POST /rooms/{roomId}/ban).
func (s *Service) Ban(ctx context.Context, sess Session, roomID, target, reason string) error {
	return s.membership(ctx, sess, roomID, target, planb.MembershipBan, reason)
}

// Unban lifts a ban (POST /rooms/{roomId}/unban).
func (s *Service) Unban(ctx context.Context, sess Session, roomID, target, reason string) error {
	if s.model.Membership(roomID, target) != planb.MembershipBan {
		if s.model.Membership(roomID, sess.UserID) == planb.MembershipJoin {
			return planb.Forbidden("%s is not banned", target)
		}
	}
	return s.membership(ctx, sess, roomID, target, planb.MembershipLeave, reason)
}

// Forget forgets a room the user has left (POST /rooms/{roomId}/forget). It
// is stored as account data naming the membership event it applies to, so it
// survives rebuilds in any order and lapses when the user comes back.
func (s *Service) Forget(ctx context.Context, sess Session, roomID string) error {
	mem := s.model.Membership(roomID, sess.UserID)
	switch mem {
	case planb.MembershipJoin:
		return planb.Errorf(planb.CodeUnknown, 400, "leave the room before forgetting it")
	case "":
		return planb.Forbidden("you are not in room %s", roomID)
	}
	last := s.model.LastMembershipEvent(roomID, sess.UserID)
	content, _ := json.Marshal(map[string]string{"event_id": last})
	return s.putAccountData(ctx, sess.UserID, roomID, forgottenType, content)
}

// forgottenType is the internal account-data type that records a forget.
const forgottenType = projection.ForgottenType

// SendEvent sends a message event idempotently (PUT
// /rooms/{roomId}/send/{eventType}/{txnId}).
func (s *Service) SendEvent(ctx context.Context, sess Session, roomID, eventType, txnID string, content json.RawMessage) (string, error) {
	if eventType == planb.TypeRedaction {
		var c struct {
			Redacts string `json:"redacts"`
		}
		_ = json.Unmarshal(content, &c)
		return s.redact(ctx, sess, roomID, c.Redacts, txnID, content, "send/"+roomID+"/"+eventType)
	}
	if err := s.checkThread(roomID, content); err != nil {
		return "", err
	}
	if id, handled, err := s.forwardSend(ctx, sess, roomID, eventType, txnID, content); handled {
		return id, err
	}
	return s.sendLocal(ctx, sess, roomID, eventType, txnID, content)
}

// sendLocal commits a message event through this node's write queue.
func (s *Service) sendLocal(ctx context.Context, sess Session, roomID, eventType, txnID string, content json.RawMessage) (string, error) {
	txn := &planb.Txn{Key: planb.TxnKey(sess.UserID, sess.DeviceID, "send/"+roomID+"/"+eventType, txnID),
		DeviceID: sess.DeviceID, TxnID: txnID}
	evs, err := s.commit(ctx, roomID, txn, func(b *builder) error {
		_, err := b.add(sess.UserID, eventType, nil, content, "")
		return err
	})
	if err != nil {
		return "", s.notFoundAsForbidden(err, roomID)
	}
	return evs[0].EventID, nil
}

// SetState sets a state event (PUT /rooms/{roomId}/state/{type}/{key}). When
// the content equals the current state, it returns the current event.
func (s *Service) SetState(ctx context.Context, sess Session, roomID, eventType, stateKey string, content json.RawMessage) (string, error) {
	if eventType == planb.TypeCanonicalAlias && stateKey == "" {
		if err := s.checkCanonicalAlias(ctx, roomID, content); err != nil {
			return "", err
		}
	}
	var existing string
	evs, err := s.commit(ctx, roomID, nil, func(b *builder) error {
		if b.membership(sess.UserID) != planb.MembershipJoin && eventType != planb.TypeMember {
			return planb.Forbidden("%s is not in room %s", sess.UserID, roomID)
		}
		if cur := b.state.Get(eventType, stateKey); cur != nil && cur.Sender == sess.UserID && jsonEqual(cur.Content, content) {
			existing = cur.EventID
			return nil
		}
		_, err := b.add(sess.UserID, eventType, planb.StrPtr(stateKey), content, "")
		return err
	})
	if errors.Is(err, errSkip) {
		return existing, nil
	}
	if err != nil {
		return "", s.notFoundAsForbidden(err, roomID)
	}
	return evs[0].EventID, nil
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ab, _ := json.Marshal(x)
	bb, _ := json.Marshal(y)
	return string(ab) == string(bb)
}

// Redact redacts an event idempotently (PUT
// /rooms/{roomId}/redact/{eventId}/{txnId}).
func (s *Service) Redact(ctx context.Context, sess Session, roomID, eventID, txnID string, content json.RawMessage) (string, error) {
	return s.redact(ctx, sess, roomID, eventID, txnID, content, "redact/"+roomID+"/"+eventID)
}

func (s *Service) redact(ctx context.Context, sess Session, roomID, eventID, txnID string, content json.RawMessage, scope string) (string, error) {
	if eventID == "" {
		return "", planb.MissingParam("redacts is required")
	}
	txn := &planb.Txn{Key: planb.TxnKey(sess.UserID, sess.DeviceID, scope, txnID), DeviceID: sess.DeviceID, TxnID: txnID}
	evs, err := s.commit(ctx, roomID, txn, func(b *builder) error {
		target := b.event(eventID)
		if target == nil {
			if b.membership(sess.UserID) != planb.MembershipJoin {
				return planb.Forbidden("%s is not in room %s", sess.UserID, roomID)
			}
			return planb.NotFound("event %s not found in room %s", eventID, roomID)
		}
		ev, err := b.add(sess.UserID, planb.TypeRedaction, nil, content, eventID)
		if err != nil {
			return err
		}
		return roomauth.CheckRedaction(ev, target, b.state)
	})
	if err != nil {
		return "", s.notFoundAsForbidden(err, roomID)
	}
	return evs[0].EventID, nil
}
