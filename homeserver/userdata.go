package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/pushrules"
)

// putAccountData stores account data and waits until this node has it, so
// the client reads its own write.
func (s *Service) putAccountData(ctx context.Context, userID, roomID, dtype string, content json.RawMessage) error {
	rev, err := s.engine.Put(ctx, jetstream.BucketAccountData, accountDataKey(userID, roomID, dtype), content)
	if err != nil {
		return s.unavailable(err)
	}
	s.waitAccountData(ctx, rev)
	return nil
}

// updateAccountData changes userID's account data of type dtype (roomID
// "" for global data) by fn, which gets the current content (nil when there
// is none), with compare-and-set, and waits until this node's model has
// the result. The first read may come from a replica that lags; a
// conflict reads again from the bucket's leader.
func (s *Service) updateAccountData(ctx context.Context, userID, roomID, dtype string, fn func(cur json.RawMessage) (json.RawMessage, error)) error {
	key := accountDataKey(userID, roomID, dtype)
	b := jetstream.BucketAccountData
	get := s.engine.Get
	for range 10 {
		e, err := get(ctx, b, key)
		exists := err == nil
		if err != nil && !errors.Is(err, planb.ErrNotFound) {
			return s.unavailable(err)
		}
		value, err := fn(e.Value)
		if err != nil {
			return err
		}
		var rev uint64
		if exists {
			rev, err = s.engine.Update(ctx, b, key, value, e.Revision)
		} else {
			rev, err = s.engine.Create(ctx, b, key, value)
		}
		if errors.Is(err, planb.ErrConflict) || errors.Is(err, planb.ErrExists) {
			get = s.engine.GetLeader
			continue
		}
		if err != nil {
			return s.unavailable(err)
		}
		s.waitAccountData(ctx, rev)
		return nil
	}
	return s.unavailable(fmt.Errorf("account data %s of %s kept changing", dtype, userID))
}

// waitAccountData waits (up to the write timeout) until this node's model
// has the account-data bucket up to rev, so the client reads its own write.
func (s *Service) waitAccountData(ctx context.Context, rev uint64) {
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std())
	defer cancel()
	_ = s.model.WaitFor(wctx, projection.Token{AccountData: rev})
}

// accountDataKey is the account-data bucket's key of userID's data of
// type dtype (roomID "" for global data).
func accountDataKey(userID, roomID, dtype string) string {
	rk := "_"
	if roomID != "" {
		rk = jetstream.KeyPart(roomID)
	}
	return jetstream.KeyPart(userID) + "." + rk + "." + jetstream.KeyPart(dtype)
}

// SetAccountData answers PUT /user/{userId}[/rooms/{roomId}]/account_data/{type}.
func (s *Service) SetAccountData(ctx context.Context, sess Session, userID, roomID, dtype string, content json.RawMessage) error {
	if userID != sess.UserID {
		return planb.Forbidden("you can only set your own account data")
	}
	if dtype == "m.fully_read" || dtype == pushrules.EventType || dtype == forgottenType {
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
	if dtype == pushrules.EventType && roomID == "" {
		// The stored rules are the user's changes; clients see the ruleset.
		return pushrules.Content(userID, c), nil
	}
	if err != nil || dtype == forgottenType {
		return nil, planb.NotFound("no account data of type %s", dtype)
	}
	return c, nil
}

// SendReceipt records a receipt (POST /rooms/{roomId}/receipt/{type}/{eventId}):
// unthreaded when threadID is "", else for the main timeline ("main") or
// the thread of that root. A threaded receipt must point at an event of
// its thread (projection.Model.CheckReceiptThread).
func (s *Service) SendReceipt(ctx context.Context, sess Session, roomID, rtype, eventID, threadID string) error {
	switch rtype {
	case "m.read", "m.read.private":
	case "m.fully_read":
		if threadID != "" {
			return planb.InvalidParam("thread_id is not compatible with m.fully_read receipts")
		}
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
	if threadID != "" {
		if err := s.model.CheckReceiptThread(roomID, eventID, threadID); err != nil {
			return err
		}
	}
	if rc, ok := s.model.Receipt(roomID, sess.UserID, rtype, threadID); ok && rc.EventID == eventID {
		return nil // unchanged
	}
	b, _ := json.Marshal(map[string]any{"event_id": eventID, "ts": time.Now().UnixMilli(), "thread_id": threadID})
	rev, err := s.engine.Put(ctx, jetstream.BucketReceipts, receiptKey(roomID, sess.UserID, rtype, threadID), b)
	if err != nil {
		return s.unavailable(err)
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.WriteTimeout.Std())
	defer cancel()
	_ = s.model.WaitFor(wctx, projection.Token{Receipts: rev})
	return nil
}

// receiptKey is the receipts bucket's key of a receipt: room.user.type for
// an unthreaded one, room.user.type.thread for a threaded one, each part
// encoded. Each key holds one receipt, as the spec keeps one per user,
// type and thread.
func receiptKey(roomID, userID, rtype, thread string) string {
	k := jetstream.KeyPart(roomID) + "." + jetstream.KeyPart(userID) + "." + jetstream.KeyPart(rtype)
	if thread != "" {
		k += "." + jetstream.KeyPart(thread)
	}
	return k
}

// parseReceiptKey takes a receiptKey apart; false for a key of no receipt.
func parseReceiptKey(k string) (roomID, userID, rtype, thread string, ok bool) {
	parts := strings.Split(k, ".")
	if len(parts) != 3 && len(parts) != 4 {
		return "", "", "", "", false
	}
	dec := make([]string, 4)
	for i, p := range parts {
		if dec[i] = jetstream.DecodeKeyPart(p); dec[i] == "" {
			return "", "", "", "", false
		}
	}
	return dec[0], dec[1], dec[2], dec[3], true
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
