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

// aliasServer checks the form "#local:server" and returns the server.
func aliasServer(alias string) (string, error) {
	sigil, local, server, err := planb.SplitID(alias)
	if err != nil || sigil != '#' || local == "" || strings.ContainsAny(local, " \t") {
		return "", planb.InvalidParam("invalid room alias %q", alias)
	}
	return server, nil
}

// validAlias checks "#local:server" for this server.
func (s *Service) validAlias(alias string) error {
	server, err := aliasServer(alias)
	if err != nil {
		return err
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
	if err := s.unpublishCanonical(ctx, sess, a.RoomID, alias); err != nil {
		s.log.Warn("removing a deleted alias from m.room.canonical_alias", "room", a.RoomID, "alias", alias, "err", err)
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

// checkCanonicalAlias validates the content of an m.room.canonical_alias
// event before it is sent: every alias must be well formed (M_INVALID_PARAM)
// and, when it is on this server, exist and point at roomID (M_BAD_ALIAS).
// Aliases of other servers cannot be checked here and are taken as given.
func (s *Service) checkCanonicalAlias(ctx context.Context, roomID string, content json.RawMessage) error {
	var c struct {
		Alias      *string  `json:"alias"`
		AltAliases []string `json:"alt_aliases"`
	}
	if err := json.Unmarshal(content, &c); err != nil {
		return planb.BadJSON("m.room.canonical_alias: alias must be a string and alt_aliases a list of strings")
	}
	aliases := c.AltAliases
	if c.Alias != nil && *c.Alias != "" {
		aliases = append([]string{*c.Alias}, aliases...)
	}
	for _, alias := range aliases {
		server, err := aliasServer(alias)
		if err != nil {
			return err
		}
		if server != s.cfg.ServerName {
			continue
		}
		target, err := s.ResolveAlias(ctx, alias)
		if errors.Is(err, planb.MNotFound) {
			return planb.Errorf(planb.CodeBadAlias, 400, "room alias %s does not exist", alias)
		}
		if err != nil {
			return err
		}
		if target != roomID {
			return planb.Errorf(planb.CodeBadAlias, 400, "room alias %s points at another room", alias)
		}
	}
	return nil
}

// unpublishCanonical removes a deleted alias from the room's
// m.room.canonical_alias (as Synapse does), sent by the user who deleted
// the alias. A user without power to send it leaves the event as it is: the
// alias itself is gone either way, and clients resolve it to nothing.
func (s *Service) unpublishCanonical(ctx context.Context, sess Session, roomID, alias string) error {
	cur := s.model.StateGet(roomID, planb.TypeCanonicalAlias, "")
	if cur == nil {
		return nil
	}
	var c map[string]any
	if err := json.Unmarshal(cur.Content, &c); err != nil {
		return nil
	}
	changed := false
	if a, _ := c["alias"].(string); a == alias {
		delete(c, "alias")
		changed = true
	}
	if alt, ok := c["alt_aliases"].([]any); ok {
		kept := []any{}
		for _, a := range alt {
			if a != alias {
				kept = append(kept, a)
			}
		}
		if len(kept) != len(alt) {
			changed = true
			if len(kept) == 0 {
				delete(c, "alt_aliases")
			} else {
				c["alt_aliases"] = kept
			}
		}
	}
	if !changed {
		return nil
	}
	b, _ := json.Marshal(c)
	_, err := s.SetState(ctx, sess, roomID, planb.TypeCanonicalAlias, "", b)
	if errors.Is(err, planb.MForbidden) {
		s.log.Info("deleted alias stays in m.room.canonical_alias: the deleting user may not change it", "room", roomID, "alias", alias)
		return nil
	}
	return err
}
