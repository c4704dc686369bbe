package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/roomauth"
)

type aliasRecord struct {
	RoomID  string `json:"room_id"`
	Creator string `json:"creator"`
}

// validAlias checks "#local:server" for this server.
func (s *Service) validAlias(alias string) error {
	sigil, local, server, err := planb.SplitID(alias)
	if err != nil || sigil != '#' || local == "" || strings.ContainsAny(local, " \t") {
		return planb.InvalidParam("invalid room alias %q", alias)
	}
	if server != s.cfg.ServerName {
		return planb.InvalidParam("room alias %q is not on this server", alias)
	}
	return nil
}

// createAlias reserves alias for roomID; M_ROOM_IN_USE when taken.
func (s *Service) createAlias(ctx context.Context, creator, alias, roomID string) error {
	if err := s.validAlias(alias); err != nil {
		return err
	}
	b, _ := json.Marshal(aliasRecord{RoomID: roomID, Creator: creator})
	if _, err := s.engine.Create(ctx, jetstream.BucketAliases, jetstream.KeyPart(alias), b); err != nil {
		if errors.Is(err, planb.ErrExists) {
			return planb.Errorf(planb.CodeRoomInUse, 400, "room alias %s is already in use", alias)
		}
		return s.unavailable(err)
	}
	return nil
}

// PutAlias creates an alias for a room the user is joined to (PUT
// /directory/room/{roomAlias}); 409 when the alias exists.
func (s *Service) PutAlias(ctx context.Context, sess Session, alias, roomID string) error {
	if err := s.validAlias(alias); err != nil {
		return err
	}
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return planb.Forbidden("you must be in room %s to give it an alias", roomID)
	}
	err := s.createAlias(ctx, sess.UserID, alias, roomID)
	if errors.Is(err, planb.MRoomInUse) {
		return planb.Errorf(planb.CodeUnknown, 409, "room alias %s already exists", alias)
	}
	return err
}

// ResolveAlias returns the room of an alias, or M_NOT_FOUND.
func (s *Service) ResolveAlias(ctx context.Context, alias string) (string, error) {
	if err := s.validAlias(alias); err != nil {
		return "", err
	}
	e, err := s.engine.Get(ctx, jetstream.BucketAliases, jetstream.KeyPart(alias))
	if errors.Is(err, planb.ErrNotFound) {
		return "", planb.NotFound("room alias %s not found", alias)
	}
	if err != nil {
		return "", s.unavailable(err)
	}
	var a aliasRecord
	if err := json.Unmarshal(e.Value, &a); err != nil {
		return "", planb.NotFound("room alias %s not found", alias)
	}
	return a.RoomID, nil
}

// DeleteAlias removes an alias; allowed for its creator and for members
// with power to set m.room.canonical_alias.
func (s *Service) DeleteAlias(ctx context.Context, sess Session, alias string) error {
	if err := s.validAlias(alias); err != nil {
		return err
	}
	e, err := s.engine.Get(ctx, jetstream.BucketAliases, jetstream.KeyPart(alias))
	if errors.Is(err, planb.ErrNotFound) {
		return planb.NotFound("room alias %s not found", alias)
	}
	if err != nil {
		return s.unavailable(err)
	}
	var a aliasRecord
	_ = json.Unmarshal(e.Value, &a)
	if a.Creator != sess.UserID {
		pl := roomauth.ParsePowerLevels(projection.RoomState{M: s.model, RoomID: a.RoomID})
		if s.model.Membership(a.RoomID, sess.UserID) != planb.MembershipJoin ||
			pl.UserLevel(sess.UserID) < pl.EventLevel(planb.TypeCanonicalAlias, true) {
			return planb.Forbidden("you may not delete room alias %s", alias)
		}
	}
	if err := s.engine.Delete(ctx, jetstream.BucketAliases, jetstream.KeyPart(alias)); err != nil {
		return s.unavailable(err)
	}
	return nil
}

// RoomAliases lists the aliases of a room (GET /rooms/{roomId}/aliases).
func (s *Service) RoomAliases(ctx context.Context, sess Session, roomID string) ([]string, error) {
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return nil, planb.Forbidden("you are not in room %s", roomID)
	}
	keys, err := s.engine.Keys(ctx, jetstream.BucketAliases, ">")
	if err != nil {
		return nil, s.unavailable(err)
	}
	out := []string{}
	for _, k := range keys {
		e, err := s.engine.Get(ctx, jetstream.BucketAliases, k)
		if err != nil {
			continue
		}
		var a aliasRecord
		if json.Unmarshal(e.Value, &a) == nil && a.RoomID == roomID {
			out = append(out, jetstream.DecodeKeyPart(k))
		}
	}
	return out, nil
}

// putAccountData stores account data and waits until this node has it, so
// the client reads its own write.
func (s *Service) putAccountData(ctx context.Context, userID, roomID, dtype string, content json.RawMessage) error {
	rk := "_"
	if roomID != "" {
		rk = jetstream.KeyPart(roomID)
	}
	rev, err := s.engine.Put(ctx, jetstream.BucketAccountData, jetstream.KeyPart(userID)+"."+rk+"."+jetstream.KeyPart(dtype), content)
	if err != nil {
		return s.unavailable(err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std())
	defer cancel()
	_ = s.model.WaitFor(wctx, projection.Token{AccountData: rev})
	return nil
}

// SetAccountData answers PUT /user/{userId}[/rooms/{roomId}]/account_data/{type}.
func (s *Service) SetAccountData(ctx context.Context, sess Session, userID, roomID, dtype string, content json.RawMessage) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only set your own account data")
	}
	if dtype == "m.fully_read" || dtype == "m.push_rules" || dtype == forgottenType {
		return planb.Errorf(planb.CodeBadJSON, 405, "account data of type %s cannot be set here", dtype)
	}
	if len(content) > planb.MaxEventBytes {
		return planb.Errorf(planb.CodeTooLarge, 413, "account data is larger than %d bytes", planb.MaxEventBytes)
	}
	if roomID != "" && !strings.HasPrefix(roomID, "!") {
		return planb.InvalidParam("invalid room ID %q", roomID)
	}
	return s.putAccountData(ctx, userID, roomID, dtype, content)
}

// AccountData answers GET /user/{userId}[/rooms/{roomId}]/account_data/{type}.
func (s *Service) AccountData(sess Session, userID, roomID, dtype string) (json.RawMessage, error) {
	if userID != sess.UserID {
		return nil, planb.Forbidden("you can only read your own account data")
	}
	if err := s.readable(readHistory, "account_data"); err != nil {
		return nil, err
	}
	c, err := s.model.AccountData(userID, roomID, dtype)
	if err != nil || dtype == forgottenType {
		return nil, planb.NotFound("no account data of type %s", dtype)
	}
	return c, nil
}

// SendReceipt records a receipt (POST /rooms/{roomId}/receipt/{type}/{eventId}).
func (s *Service) SendReceipt(ctx context.Context, sess Session, roomID, rtype, eventID, threadID string) error {
	switch rtype {
	case "m.read", "m.read.private":
	case "m.fully_read":
		c, _ := json.Marshal(map[string]string{"event_id": eventID})
		return s.putAccountData(ctx, sess.UserID, roomID, "m.fully_read", c)
	default:
		return planb.InvalidParam("unknown receipt type %q", rtype)
	}
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return planb.Forbidden("you are not in room %s", roomID)
	}
	if _, err := s.model.Event(sess.UserID, sess.DeviceID, roomID, eventID); err != nil {
		return planb.NotFound("event %s not found in room %s", eventID, roomID)
	}
	if rc, ok := s.model.Receipt(roomID, sess.UserID, rtype); ok && rc.EventID == eventID && rc.ThreadID == threadID {
		return nil // unchanged
	}
	b, _ := json.Marshal(map[string]any{"event_id": eventID, "ts": time.Now().UnixMilli(), "thread_id": threadID})
	rev, err := s.engine.Put(ctx, jetstream.BucketReceipts, jetstream.KeyPart(roomID)+"."+jetstream.KeyPart(sess.UserID)+"."+jetstream.KeyPart(rtype), b)
	if err != nil {
		return s.unavailable(err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std())
	defer cancel()
	_ = s.model.WaitFor(wctx, projection.Token{Receipts: rev})
	return nil
}

// SetReadMarkers answers POST /rooms/{roomId}/read_markers.
func (s *Service) SetReadMarkers(ctx context.Context, sess Session, roomID, fullyRead, read, readPrivate string) error {
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return planb.Forbidden("you are not in room %s", roomID)
	}
	if fullyRead != "" {
		if err := s.SendReceipt(ctx, sess, roomID, "m.fully_read", fullyRead, ""); err != nil {
			return err
		}
	}
	if read != "" {
		if err := s.SendReceipt(ctx, sess, roomID, "m.read", read, ""); err != nil {
			return err
		}
	}
	if readPrivate != "" {
		return s.SendReceipt(ctx, sess, roomID, "m.read.private", readPrivate, "")
	}
	return nil
}

// SetTyping answers PUT /rooms/{roomId}/typing/{userId}. Typing travels to
// every node over core NATS.
func (s *Service) SetTyping(sess Session, roomID, userID string, typing bool, timeout time.Duration) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only set your own typing state")
	}
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return planb.Forbidden("you are not in room %s", roomID)
	}
	if timeout <= 0 || timeout > 2*time.Minute {
		timeout = 30 * time.Second
	}
	b, _ := json.Marshal(typingMsg{RoomID: roomID, UserID: userID, Typing: typing, UntilMS: time.Now().Add(timeout).UnixMilli()})
	if err := s.engine.Publish(jetstream.TypingSubject, b); err != nil {
		return s.unavailable(err)
	}
	// Apply locally at once, so this node's syncs see it without a round trip.
	s.model.SetTyping(roomID, userID, typing, time.Now().Add(timeout))
	return nil
}

// CreateFilter stores a filter and returns its ID.
func (s *Service) CreateFilter(ctx context.Context, sess Session, userID string, body json.RawMessage) (string, error) {
	if userID != sess.UserID {
		return "", planb.Forbidden("you can only create filters for yourself")
	}
	if _, err := projection.ParseFilter(body); err != nil {
		return "", err
	}
	for range 5 {
		id := planb.RandomString(6)
		_, err := s.engine.Create(ctx, jetstream.BucketFilters, jetstream.KeyPart(userID)+"."+id, body)
		if errors.Is(err, planb.ErrExists) {
			continue
		}
		if err != nil {
			return "", s.unavailable(err)
		}
		return id, nil
	}
	return "", s.unavailable(errors.New("could not allocate a filter ID"))
}

// Filter returns a stored filter's JSON.
func (s *Service) Filter(ctx context.Context, sess Session, userID, id string) (json.RawMessage, error) {
	if userID != sess.UserID {
		return nil, planb.Forbidden("you can only read your own filters")
	}
	if id == "" || strings.ContainsAny(id, ".*> ") {
		return nil, planb.NotFound("no filter %q", id)
	}
	e, err := s.engine.Get(ctx, jetstream.BucketFilters, jetstream.KeyPart(userID)+"."+id)
	if errors.Is(err, planb.ErrNotFound) {
		return nil, planb.NotFound("no filter %q", id)
	}
	if err != nil {
		return nil, s.unavailable(err)
	}
	return e.Value, nil
}
