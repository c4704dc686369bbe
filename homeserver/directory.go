package homeserver

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/roomauth"
)

// The user directory and the published room directory. Both answer from
// the read models (projection/directory.go); the published rooms are
// stored in the replicated room-directory bucket, one key per room that
// was ever published, because whether a room is listed is the server's
// choice and not the room's state (the spec keeps it out of the room).

// directoryRecord is a room's entry in the room-directory bucket.
type directoryRecord struct {
	Visibility string `json:"visibility"` // "public" or "private"
	By         string `json:"by"`         // the user who set it
	TS         int64  `json:"ts"`
}

// Directory visibilities.
const (
	visibilityPublic  = "public"
	visibilityPrivate = "private"
)

// UserSearchDefaultLimit is the number of results of a user directory
// search that gives no limit (the spec's default).
const UserSearchDefaultLimit = 10

// userSearchMaxLimit bounds what one search returns.
const userSearchMaxLimit = 1000

// UserSearchResult is the answer of POST /user_directory/search.
type UserSearchResult struct {
	Results []projection.UserResult `json:"results"`
	Limited bool                    `json:"limited"`
}

// SearchUsers answers POST /user_directory/search (see
// projection.Model.SearchUsers for who finds whom). A history read: a
// cut-off node answers from what it has.
func (s *Service) SearchUsers(sess Session, term string, limit int) (*UserSearchResult, error) {
	if err := s.readable(readHistory, "user_directory"); err != nil {
		return nil, err
	}
	switch {
	case limit < 0:
		return nil, planb.InvalidParam("limit must not be negative")
	case limit == 0:
		limit = UserSearchDefaultLimit
	}
	res, limited := s.model.SearchUsers(sess.UserID, term, min(limit, userSearchMaxLimit))
	return &UserSearchResult{Results: res, Limited: limited}, nil
}

// PublicRoomsRequest is a query of the published room directory: the
// query of GET /publicRooms or the body of POST /publicRooms.
type PublicRoomsRequest struct {
	Limit  int    `json:"limit"`
	Since  string `json:"since"`
	Server string `json:"-"`
	Filter *struct {
		GenericSearchTerm string `json:"generic_search_term"`
		// RoomTypes lists the room types wanted; a null entry stands for
		// rooms without a type. Absent: every type.
		RoomTypes []*string `json:"room_types"`
	} `json:"filter"`
	IncludeAllNetworks   bool   `json:"include_all_networks"`
	ThirdPartyInstanceID string `json:"third_party_instance_id"`
}

// PublicRoomsResponse is the answer of /publicRooms.
type PublicRoomsResponse struct {
	Chunk                  []projection.PublicRoom `json:"chunk"`
	NextBatch              string                  `json:"next_batch,omitempty"`
	PrevBatch              string                  `json:"prev_batch,omitempty"`
	TotalRoomCountEstimate int                     `json:"total_room_count_estimate"`
}

// PublicRooms answers /publicRooms: the published rooms matching the
// filter, in the order of projection.PublishedRooms, a page of at most
// Limit (0: all). The batch tokens name the first or last room of a page
// by its place in that order, so pages stay in step while rooms are
// published or unpublished in between. A history read.
func (s *Service) PublicRooms(req PublicRoomsRequest) (*PublicRoomsResponse, error) {
	if err := s.readable(readHistory, "public_rooms"); err != nil {
		return nil, err
	}
	if req.Server != "" && req.Server != s.cfg.ServerName {
		return nil, planb.InvalidParam("planb does not federate: the room directory of server %s cannot be fetched", req.Server)
	}
	if req.Limit < 0 {
		return nil, planb.InvalidParam("limit must not be negative")
	}
	if req.IncludeAllNetworks && req.ThirdPartyInstanceID != "" {
		return nil, planb.InvalidParam("third_party_instance_id can only be used when include_all_networks is false")
	}
	var cursor *pageCursor
	if req.Since != "" {
		c, err := parsePageCursor(req.Since)
		if err != nil {
			return nil, err
		}
		cursor = &c
	}
	var rooms []projection.PublicRoom
	if req.ThirdPartyInstanceID == "" { // there are no third-party networks (no application services)
		for _, r := range s.model.PublishedRooms() {
			if req.Filter == nil || matchRoom(r, req.Filter.GenericSearchTerm, req.Filter.RoomTypes) {
				rooms = append(rooms, r)
			}
		}
	}
	start, end := 0, len(rooms)
	if cursor != nil {
		// The first room after the cursor's (a next batch), or the first
		// at or after it (where a previous batch ends).
		at := sort.Search(len(rooms), func(i int) bool {
			r := rooms[i]
			if cursor.next {
				return projection.PublicRoomBefore(cursor.members, cursor.roomID, r.NumJoinedMembers, r.RoomID)
			}
			return !projection.PublicRoomBefore(r.NumJoinedMembers, r.RoomID, cursor.members, cursor.roomID)
		})
		if cursor.next {
			start = at
		} else {
			end = at
		}
	}
	if req.Limit > 0 {
		if cursor != nil && !cursor.next {
			start = max(0, end-req.Limit)
		} else {
			end = min(end, start+req.Limit)
		}
	}
	out := &PublicRoomsResponse{Chunk: append([]projection.PublicRoom{}, rooms[start:end]...), TotalRoomCountEstimate: len(rooms)}
	if end < len(rooms) && end > start {
		out.NextBatch = pageCursor{next: true, members: rooms[end-1].NumJoinedMembers, roomID: rooms[end-1].RoomID}.String()
	}
	if start > 0 && start < len(rooms) {
		out.PrevBatch = pageCursor{members: rooms[start].NumJoinedMembers, roomID: rooms[start].RoomID}.String()
	}
	return out, nil
}

// matchRoom reports whether r holds term (case-insensitively) in its name,
// topic or canonical alias, and is of one of types (nil: any).
func matchRoom(r projection.PublicRoom, term string, types []*string) bool {
	if types != nil {
		ok := false
		for _, t := range types {
			if t == nil && r.RoomType == "" || t != nil && *t == r.RoomType {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	term = strings.ToLower(strings.TrimSpace(term))
	if term == "" {
		return true
	}
	for _, f := range []string{r.Name, r.Topic, r.CanonicalAlias} {
		if strings.Contains(strings.ToLower(f), term) {
			return true
		}
	}
	return false
}

// pageCursor is a batch token of /publicRooms: the room a page ends at (a
// next batch starts after it) or starts at (a previous batch ends before
// it), by its place in the directory's order.
type pageCursor struct {
	next    bool
	members int
	roomID  string
}

// String encodes the cursor as "n" or "p" and base64url("members,roomID").
func (c pageCursor) String() string {
	dir := "p"
	if c.next {
		dir = "n"
	}
	return dir + base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(c.members)+","+c.roomID))
}

// parsePageCursor decodes a batch token made by pageCursor.String.
func parsePageCursor(s string) (pageCursor, error) {
	bad := planb.InvalidParam("invalid since token %q", s)
	if len(s) < 2 || s[0] != 'n' && s[0] != 'p' {
		return pageCursor{}, bad
	}
	raw, err := base64.RawURLEncoding.DecodeString(s[1:])
	if err != nil {
		return pageCursor{}, bad
	}
	n, room, ok := strings.Cut(string(raw), ",")
	members, err := strconv.Atoi(n)
	if !ok || err != nil || members < 0 || !strings.HasPrefix(room, "!") {
		return pageCursor{}, bad
	}
	return pageCursor{next: s[0] == 'n', members: members, roomID: room}, nil
}

// RoomVisibility answers GET /directory/list/room/{roomId}: "public" or
// "private"; M_NOT_FOUND for a room this node does not know.
func (s *Service) RoomVisibility(roomID string) (string, error) {
	if err := s.readable(readHistory, "room_visibility"); err != nil {
		return "", err
	}
	public, known := s.model.Published(roomID)
	if !known {
		return "", planb.NotFound("room %s not found", roomID)
	}
	if public {
		return visibilityPublic, nil
	}
	return visibilityPrivate, nil
}

// SetRoomVisibility answers PUT /directory/list/room/{roomId}: it publishes
// the room in the directory or takes it out. Allowed to joined members with
// the power to set the room's canonical alias (Synapse's rule: the room's
// moderators and admins); M_NOT_FOUND for an unknown room.
func (s *Service) SetRoomVisibility(ctx context.Context, sess Session, roomID, visibility string) error {
	switch visibility {
	case "":
		visibility = visibilityPublic // the spec's default
	case visibilityPublic, visibilityPrivate:
	default:
		return planb.InvalidParam("visibility must be %q or %q", visibilityPublic, visibilityPrivate)
	}
	if !s.model.HasRoom(roomID) {
		return planb.NotFound("room %s not found", roomID)
	}
	if s.model.Membership(roomID, sess.UserID) != planb.MembershipJoin {
		return planb.Forbidden("you are not in room %s", roomID)
	}
	pl := roomauth.ParsePowerLevels(projection.RoomState{M: s.model, RoomID: roomID})
	if have, need := pl.UserLevel(sess.UserID), pl.EventLevel(planb.TypeCanonicalAlias, true); have < need {
		return planb.Forbidden("changing the directory listing of room %s needs power level %d, you have %d", roomID, need, have)
	}
	return s.publish(ctx, sess.UserID, roomID, visibility)
}

// publish stores the room's directory visibility and waits (a little) for
// this node's read models to apply it, so that the writer reads its write.
func (s *Service) publish(ctx context.Context, userID, roomID, visibility string) error {
	b, _ := json.Marshal(directoryRecord{Visibility: visibility, By: userID, TS: time.Now().UnixMilli()})
	rev, err := s.engine.Put(ctx, jetstream.BucketRoomDirectory, jetstream.KeyPart(roomID), b)
	if err != nil {
		return s.unavailable(err)
	}
	s.awaitModel(ctx, projection.Token{Directory: rev}, "room directory")
	return nil
}

// awaitModel waits up to readOwnWriteWait for the read models to reach t;
// a model that lags only makes the write visible here a little later.
func (s *Service) awaitModel(ctx context.Context, t projection.Token, what string) {
	wctx, cancel := context.WithTimeout(ctx, readOwnWriteWait)
	defer cancel()
	if err := s.model.WaitFor(wctx, t); err != nil && ctx.Err() == nil {
		s.log.Warn("read model lags behind own write", "what", what)
	}
}

// followDirectory tells the read models which rooms are published.
func (s *Service) followDirectory(ctx context.Context) error {
	b := jetstream.BucketRoomDirectory
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().Directory+1, func(m jetstream.RawMsg) error {
		room := jetstream.DecodeKeyPart(jetstream.BucketKey(b, m.Subject))
		var rec directoryRecord
		public := !isDeletion(m) && json.Unmarshal(m.Data, &rec) == nil && rec.Visibility == visibilityPublic
		return s.applyRetrying(ctx, "room directory", func() error { return s.model.ApplyDirectory(m.Seq, room, public) })
	})
}

// followAccounts gives the read models every user's global profile for
// the user directory (never the password hash).
func (s *Service) followAccounts(ctx context.Context) error {
	b := jetstream.BucketAccounts
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().Accounts+1, func(m jetstream.RawMsg) error {
		user, p, err := s.profileOf(m)
		if err != nil {
			s.log.Error("undecodable account skipped by the user directory", "seq", m.Seq, "err", err)
			user = ""
		}
		return s.applyRetrying(ctx, "accounts", func() error { return s.model.ApplyProfile(m.Seq, user, p) })
	})
}

// profileOf decodes an accounts bucket message: the user and their
// profile, nil for a deleted account.
func (s *Service) profileOf(m jetstream.RawMsg) (string, *projection.Profile, error) {
	local := jetstream.DecodeKeyPart(jetstream.BucketKey(jetstream.BucketAccounts, m.Subject))
	if local == "" {
		return "", nil, errors.New("account key is not an encoded localpart")
	}
	user := planb.UserID(local, s.cfg.ServerName)
	if isDeletion(m) {
		return user, nil, nil
	}
	var a account
	if err := json.Unmarshal(m.Data, &a); err != nil {
		return "", nil, fmt.Errorf("decode account %s: %w", local, err)
	}
	if a.UserID != "" {
		user = a.UserID
	}
	return user, &projection.Profile{DisplayName: a.DisplayName, AvatarURL: a.AvatarURL, Deactivated: a.Deactivated}, nil
}
