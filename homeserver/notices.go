package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/planb-chat/planb"
)

// Server notices (the spec's server notices module). Each user who gets
// one has a server-notices room: created by the notices user on first use,
// with the user invited and the room tagged m.server_notice in their
// account data, so clients show it apart. The room of each user is kept
// in the replicated incident ledger (NoticeRooms), so every node sends
// into the same room.

// noticesDevice is the device of the notices user's sends: with the
// caller's transaction ID it makes a notice sent twice (a retry, a
// failover) one event.
const noticesDevice = "PLANB_NOTICES"

// NoticeRooms keeps each user's server-notices room (package incident's
// ledger implements it).
type NoticeRooms interface {
	NoticeRoom(ctx context.Context, user string) (string, error)
	SetNoticeRoom(ctx context.Context, user, room string) (string, error)
}

// NoticesUser returns the user ID that sends server notices.
func (s *Service) NoticesUser() string {
	return planb.UserID(s.cfg.ServerNoticesUser, s.cfg.ServerName)
}

// ServerNotice sends a m.server_notice message with body (and extra
// content fields) to user's server-notices room, creating the room first
// if needed. The same txnID sends nothing twice. It returns the event ID.
func (s *Service) ServerNotice(ctx context.Context, rooms NoticeRooms, user, txnID, body string, extra map[string]any) (string, error) {
	room, err := s.noticeRoom(ctx, rooms, user)
	if err != nil {
		return "", err
	}
	content := map[string]any{"msgtype": "m.server_notice", "body": body}
	for k, v := range extra {
		content[k] = v
	}
	raw, err := json.Marshal(content)
	if err != nil {
		return "", fmt.Errorf("encode server notice: %w", err)
	}
	sess := Session{UserID: s.NoticesUser(), DeviceID: noticesDevice}
	id, err := s.SendEvent(ctx, sess, room, "m.room.message", txnID, raw)
	if err != nil {
		return "", fmt.Errorf("send server notice to %s: %w", user, err)
	}
	return id, nil
}

// noticeRoom returns user's server-notices room, creating it when the
// ledger has none.
func (s *Service) noticeRoom(ctx context.Context, rooms NoticeRooms, user string) (string, error) {
	room, err := rooms.NoticeRoom(ctx, user)
	if err == nil {
		return room, nil
	}
	if !errors.Is(err, planb.ErrNotFound) {
		return "", fmt.Errorf("server-notices room of %s: %w", user, err)
	}
	name := "서버 알림 · Server notices"
	created, err := s.CreateRoom(ctx, Session{UserID: s.NoticesUser(), DeviceID: noticesDevice}, CreateRoomRequest{
		Preset: "private_chat", Name: &name, Invite: []string{user},
		PowerLevelContentOverride: map[string]any{"events_default": 100, "invite": 100},
	})
	if err != nil {
		return "", fmt.Errorf("create server-notices room of %s: %w", user, err)
	}
	// Two nodes creating it at once (a failover midway): the first one
	// recorded wins and the other room stays unused.
	room, err = rooms.SetNoticeRoom(ctx, user, created)
	if err != nil {
		return "", err
	}
	tags := json.RawMessage(`{"tags":{"m.server_notice":{}}}`)
	if err := s.putAccountData(ctx, user, room, "m.tag", tags); err != nil {
		return "", fmt.Errorf("tag server-notices room of %s: %w", user, err)
	}
	return room, nil
}
