package projection

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// The read models of the two directories:
//
//   - the user directory: every local user's global profile (display name,
//     avatar, whether the account is deactivated), followed from the
//     accounts bucket (never the password hash), and the rooms whose joined
//     members everyone may find (join rule public or history world
//     readable), kept up to date as their state changes;
//   - the published room directory: the rooms published in the
//     room-directory bucket.
//
// Both are derived like everything else here: positions "\x00u" and
// "\x00d", keys 'P' and 'U' (see store.go).

// Profile is a user's global profile as the user directory shows it.
type Profile struct {
	DisplayName string `json:"d,omitempty"`
	AvatarURL   string `json:"a,omitempty"`
	Deactivated bool   `json:"x,omitempty"`
}

// ApplyProfile records user's profile at sequence pos of the accounts
// bucket; a nil p (the account's key was deleted) forgets it, and an empty
// user only moves the position.
func (m *Model) ApplyProfile(pos uint64, user string, p *Profile) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var raw []byte
	if p != nil {
		var err error
		if raw, err = json.Marshal(p); err != nil {
			return fmt.Errorf("encode profile of %s: %w", user, err)
		}
	}
	ok, err := m.applyAt(&m.accountsPos, keyAccounts, pos, func(b *pebble.Batch) {
		switch {
		case user == "":
		case p == nil:
			b.Delete(key(kProfile, user), nil)
		default:
			b.Set(key(kProfile, user), raw, nil)
		}
	})
	if !ok {
		return err
	}
	defer m.advance()
	switch {
	case user == "":
	case p == nil:
		delete(m.profiles, user)
	default:
		m.profiles[user] = *p
	}
	return nil
}

// ApplyDirectory records at sequence pos of the room-directory bucket
// whether room is published; an empty room only moves the position.
func (m *Model) ApplyDirectory(pos uint64, room string, public bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	ok, err := m.applyAt(&m.directoryPos, keyDirectory, pos, func(b *pebble.Batch) {
		switch {
		case room == "":
		case public:
			b.Set(key(kPublished, room), nil, nil)
		default:
			b.Delete(key(kPublished, room), nil)
		}
	})
	if !ok {
		return err
	}
	defer m.advance()
	switch {
	case room == "":
	case public:
		m.published[room] = true
	default:
		delete(m.published, room)
	}
	return nil
}

// loadDirectories loads the profiles and the published rooms from the
// store, and finds the open rooms among the loaded ones. Caller holds mu
// for writing.
func (m *Model) loadDirectories() error {
	m.profiles, m.published, m.openRooms = map[string]Profile{}, map[string]bool{}, map[string]*Room{}
	var err error
	if m.accountsPos, err = getUint(m.db, keyAccounts); err != nil {
		return err
	}
	if m.directoryPos, err = getUint(m.db, keyDirectory); err != nil {
		return err
	}
	if err := m.each(kProfile, func(k *keyReader, v []byte) error {
		user := k.str()
		var p Profile
		if err := json.Unmarshal(v, &p); err != nil || k.err {
			return fmt.Errorf("profile of %q: damaged (%v)", user, err)
		}
		m.profiles[user] = p
		return nil
	}); err != nil {
		return err
	}
	if err := m.each(kPublished, func(k *keyReader, _ []byte) error {
		room := k.str()
		if k.err {
			return fmt.Errorf("published room: damaged key")
		}
		m.published[room] = true
		return nil
	}); err != nil {
		return err
	}
	for _, r := range m.rooms {
		m.noteOpen(r)
	}
	return nil
}

// stateContent returns the content of the room's current state event
// (redacted if it was), or nil. Caller holds mu.
func (r *Room) stateContent(eventType string) json.RawMessage {
	if e := r.current[planb.StateTuple{Type: eventType}]; e != nil {
		return e.Content
	}
	return nil
}

// stateString returns field of the content of the room's current state
// event of eventType (state key ""), or "". Caller holds mu.
func (r *Room) stateString(eventType, field string) string {
	raw := r.stateContent(eventType)
	if raw == nil {
		return ""
	}
	var c map[string]json.RawMessage
	if json.Unmarshal(raw, &c) != nil {
		return ""
	}
	var s string
	_ = json.Unmarshal(c[field], &s) // not a string: ""
	return s
}

// noteOpen records whether everyone may find r's joined members in the
// user directory: its join rule is public or its history world readable
// (the spec's minimum besides sharing a room). Called when either changes.
// Caller holds mu for writing.
func (m *Model) noteOpen(r *Room) {
	if r.stateString(planb.TypeJoinRules, "join_rule") == "public" ||
		r.stateString(planb.TypeHistoryVisibility, "history_visibility") == "world_readable" {
		m.openRooms[r.ID] = r
	} else {
		delete(m.openRooms, r.ID)
	}
}

// UserResult is one user the directory search found.
type UserResult struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name,omitempty"`
	AvatarURL   string `json:"avatar_url,omitempty"`
}

// SearchUsers returns up to limit users searcher may find whose user ID
// or global display name holds every word of term (case-insensitively),
// best match first, and whether there were more.
//
// Searcher may find the users joined to a room they are joined to, and
// those joined to an open room (see noteOpen); never a deactivated
// account. A display name set only in one room (a member event's own
// displayname) is not searched: the directory shows the global profile
// alone, so a name given to one room's members is never revealed to
// anyone else.
//
// Cost: the members of searcher's rooms and of all open rooms are walked
// in memory on every search (no per-query store reads).
func (m *Model) SearchUsers(searcher, term string, limit int) ([]UserResult, bool) {
	words := strings.Fields(strings.ToLower(term))
	if len(words) == 0 {
		return []UserResult{}, false
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	type hit struct {
		UserResult
		rank int
	}
	var hits []hit
	seen := map[string]bool{}
	consider := func(r *Room, self bool) {
		for id, h := range r.members {
			if seen[id] || h[len(h)-1].membership != planb.MembershipJoin || id == searcher && !self {
				continue
			}
			seen[id] = true
			p := m.profiles[id]
			if p.Deactivated {
				continue
			}
			if rank, ok := matchUser(words, strings.ToLower(id), strings.ToLower(p.DisplayName)); ok {
				hits = append(hits, hit{UserResult{id, p.DisplayName, p.AvatarURL}, rank})
			}
		}
	}
	if u := m.users[searcher]; u != nil {
		for _, r := range u.rooms {
			if r.membership(searcher) == planb.MembershipJoin {
				consider(r, false) // sharing a room with oneself finds no one
			}
		}
	}
	for _, r := range m.openRooms {
		consider(r, true)
	}
	sort.Slice(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if a.rank != b.rank {
			return a.rank < b.rank
		}
		if (a.DisplayName != "") != (b.DisplayName != "") {
			return a.DisplayName != "" // the spec: then whether profile info is available
		}
		return a.UserID < b.UserID
	})
	out := make([]UserResult, 0, min(limit, len(hits)))
	for _, h := range hits[:min(limit, len(hits))] {
		out = append(out, h.UserResult)
	}
	return out, len(hits) > limit
}

// matchUser reports whether every word occurs in the lower-cased user ID
// or display name, and ranks the match: 0 when the display name or the
// localpart starts with the words as given, 1 when every word starts a
// word of either, 2 otherwise.
func matchUser(words []string, userID, name string) (rank int, ok bool) {
	for _, w := range words {
		if !strings.Contains(userID, w) && !strings.Contains(name, w) {
			return 0, false
		}
	}
	phrase := strings.Join(words, " ")
	if strings.HasPrefix(name, phrase) || strings.HasPrefix(userID, "@"+phrase) || strings.HasPrefix(userID, phrase) {
		return 0, true
	}
	starts := strings.FieldsFunc(name+" "+userID, func(r rune) bool {
		return r == ' ' || r == '@' || r == ':' || r == '.' || r == '-' || r == '_'
	})
	for _, w := range words {
		if !startsAny(starts, w) {
			return 2, true
		}
	}
	return 1, true
}

// startsAny reports whether one of words starts with prefix.
func startsAny(words []string, prefix string) bool {
	for _, w := range words {
		if strings.HasPrefix(w, prefix) {
			return true
		}
	}
	return false
}

// PublicRoom is one entry of the published room directory, from the
// room's current state.
type PublicRoom struct {
	RoomID           string `json:"room_id"`
	NumJoinedMembers int    `json:"num_joined_members"`
	WorldReadable    bool   `json:"world_readable"`
	GuestCanJoin     bool   `json:"guest_can_join"`
	Name             string `json:"name,omitempty"`
	Topic            string `json:"topic,omitempty"`
	CanonicalAlias   string `json:"canonical_alias,omitempty"`
	AvatarURL        string `json:"avatar_url,omitempty"`
	JoinRule         string `json:"join_rule,omitempty"`
	RoomType         string `json:"room_type,omitempty"`
}

// PublishedRooms returns every published room this node knows, the most
// joined members first, then by room ID. A room published before this
// node applied its creation is left out until it has.
//
// Cost: every published room's state and members are read in memory on
// every call.
func (m *Model) PublishedRooms() []PublicRoom {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]PublicRoom, 0, len(m.published))
	for id := range m.published {
		r := m.rooms[id]
		if r == nil {
			continue
		}
		pr := PublicRoom{RoomID: id,
			WorldReadable:  r.stateString(planb.TypeHistoryVisibility, "history_visibility") == "world_readable",
			GuestCanJoin:   r.stateString(planb.TypeGuestAccess, "guest_access") == "can_join",
			Name:           r.stateString(planb.TypeName, "name"),
			Topic:          r.stateString(planb.TypeTopic, "topic"),
			CanonicalAlias: r.stateString(planb.TypeCanonicalAlias, "alias"),
			AvatarURL:      r.stateString(planb.TypeAvatar, "url"),
			JoinRule:       r.stateString(planb.TypeJoinRules, "join_rule"),
			RoomType:       r.stateString(planb.TypeCreate, "type"),
		}
		for _, h := range r.members {
			if h[len(h)-1].membership == planb.MembershipJoin {
				pr.NumJoinedMembers++
			}
		}
		out = append(out, pr)
	}
	sort.Slice(out, func(i, j int) bool {
		return PublicRoomBefore(out[i].NumJoinedMembers, out[i].RoomID, out[j].NumJoinedMembers, out[j].RoomID)
	})
	return out
}

// PublicRoomBefore is the order of PublishedRooms: whether the room
// (members a, room ID x) comes before (b, y).
func PublicRoomBefore(a int, x string, b int, y string) bool {
	if a != b {
		return a > b
	}
	return x < y
}

// Published reports whether roomID is published in the room directory,
// and whether this node knows the room at all.
func (m *Model) Published(roomID string) (public, known bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.published[roomID], m.rooms[roomID] != nil
}
