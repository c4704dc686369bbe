package homeserver

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

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
