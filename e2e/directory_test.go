package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// The user directory and the published room directory (users.yaml,
// list_public_rooms.yaml), as Complement's TestRoomSpecificUsername* and
// TestPublicRooms exercise them, and more: who finds whom, pagination,
// permissions, and that both answer the same after a restart and after the
// read models were rebuilt from the log.

// dirJSON encodes v as a request body.
func dirJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// userHit is one result of a user directory search.
type userHit struct {
	UserID      string `json:"user_id"`
	DisplayName string `json:"display_name"`
	AvatarURL   string `json:"avatar_url"`
}

// searchUsers runs a user directory search as cli and decodes the answer.
func searchUsers(t testing.TB, srv *server, cli *mautrix.Client, term string, limit int) (hits []userHit, limited bool) {
	t.Helper()
	body := map[string]any{"search_term": term}
	if limit > 0 {
		body["limit"] = limit
	}
	resp := srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", cli.AccessToken, dirJSON(t, body))
	if resp.status != 200 {
		t.Fatalf("%s searches %q: %v", cli.UserID, term, resp)
	}
	var out struct {
		Results []userHit `json:"results"`
		Limited *bool     `json:"limited"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.Results == nil || out.Limited == nil {
		t.Fatalf("%s searches %q: want results and limited: %v (%v)", cli.UserID, term, resp, err)
	}
	return out.Results, *out.Limited
}

// hitIDs returns the user IDs of hits.
func hitIDs(hits []userHit) []string {
	out := []string{}
	for _, h := range hits {
		out = append(out, h.UserID)
	}
	return out
}

// TestUserDirectory: a user finds those who share a room with them and
// those in public rooms, by user ID and global display name, and never by
// a display name given in a room they are not in (Complement's
// TestRoomSpecificUsernameChange and TestRoomSpecificUsernameAtJoin).
func TestUserDirectory(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	// Complement's localparts: "user-N-suffix"; the mxid up to the first
	// '-' matches all of them.
	alice := newUser(t, srv, "dir-1-alice")
	bob := newUser(t, srv, "dir-2-bob")
	eve := newUser(t, srv, "dir-3-eve")
	dan := newUser(t, srv, "dir-4-dan")
	must(t, "alice sets her display name", alice.SetDisplayName(ctx, "Alice Cooper"))
	_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public"})
	must(t, "alice creates a public room", err)

	// Bob's private room, where alice shows bob another name.
	priv, err := bob.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "private", Invite: []id.UserID{alice.UserID, dan.UserID}})
	must(t, "bob creates a private room", err)
	for _, c := range []*mautrix.Client{alice, dan} {
		_, err := c.JoinRoomByID(ctx, priv.RoomID)
		must(t, string(c.UserID)+" joins bob's room", err)
	}
	_, err = alice.SendStateEvent(ctx, priv.RoomID, event.StateMember, alice.UserID.String(),
		map[string]any{"membership": "join", "displayname": "Freddy"})
	must(t, "alice's room-specific name", err)

	justAlice := func(who *mautrix.Client, term string) {
		t.Helper()
		// The public room and the joins are applied before their writes
		// are acknowledged; poll anyway, as Complement does, for a loaded
		// machine where applying lags the acknowledgement.
		testutil.WaitFor(t, waitTimeout, string(who.UserID)+" finds alice by "+term, func() error {
			hits, limited := searchUsers(t, srv, who, term, 0)
			if len(hits) != 1 || hits[0].UserID != alice.UserID.String() || hits[0].DisplayName != "Alice Cooper" || limited {
				return fmt.Errorf("results %+v limited %v, want alice as Alice Cooper alone", hits, limited)
			}
			return nil
		})
	}
	nobody := func(who *mautrix.Client, term string) {
		t.Helper()
		if hits, _ := searchUsers(t, srv, who, term, 0); len(hits) != 0 {
			t.Errorf("%s searches %q: %+v, want nobody", who.UserID, term, hits)
		}
	}
	mxidPrefix := strings.Split(alice.UserID.String(), "-")[0] // "@dir"
	justAlice(eve, "Alice Cooper")
	justAlice(eve, mxidPrefix) // bob and dan share no room with eve and are in no public room
	justAlice(eve, "alice cooper")
	nobody(eve, "Freddy")
	justAlice(bob, "Alice Cooper")
	nobody(bob, "Freddy") // only the global profile is searched, also by those who share the room
	nobody(eve, "dan")

	// Bob shares a room with alice and dan; the searcher never finds
	// himself through a room he shares.
	hits, _ := searchUsers(t, srv, bob, mxidPrefix, 0)
	if got := hitIDs(hits); !slices.Equal(got, []string{alice.UserID.String(), dan.UserID.String()}) {
		t.Errorf("bob searches %q: %v, want alice (by her name first) then dan", mxidPrefix, got)
	}
	hits, limited := searchUsers(t, srv, bob, mxidPrefix, 1)
	if len(hits) != 1 || !limited {
		t.Errorf("bob searches with limit 1: %+v limited %v, want one result and limited", hits, limited)
	}

	// A new profile name is found at once at this node; the old one is not.
	must(t, "alice renames herself", alice.SetDisplayName(ctx, "Alice Smith"))
	hits, _ = searchUsers(t, srv, eve, "smith", 0)
	if len(hits) != 1 || hits[0].DisplayName != "Alice Smith" {
		t.Errorf("eve searches smith right after the rename: %+v", hits)
	}
	nobody(eve, "cooper")

	// Dan leaves bob's room: bob no longer finds him.
	_, err = dan.LeaveRoom(ctx, priv.RoomID)
	must(t, "dan leaves", err)
	testutil.WaitFor(t, waitTimeout, "bob stops finding dan", func() error {
		if hits, _ := searchUsers(t, srv, bob, "dan", 0); len(hits) != 0 {
			return fmt.Errorf("bob still finds %+v", hits)
		}
		return nil
	})

	// Errors: no token, no search term, a negative limit.
	r := srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", "", dirJSON(t, map[string]any{"search_term": "a"}))
	checkRaw(t, "search without a token", r, want{401, "M_MISSING_TOKEN"})
	r = srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, []byte(`{"limit":3}`))
	checkRaw(t, "search without a term", r, want{400, "M_MISSING_PARAM"})
	r = srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, []byte(`{"search_term":"a","limit":-1}`))
	checkRaw(t, "search with a negative limit", r, want{400, "M_INVALID_PARAM"})
	r = srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", eve.AccessToken, []byte(`{"search_term":7}`))
	checkRaw(t, "search with a number for a term", r, want{400, "M_BAD_JSON"})
}

// publicRoomsPage is an answer of /publicRooms.
type publicRoomsPage struct {
	Chunk     []map[string]any `json:"chunk"`
	NextBatch string           `json:"next_batch"`
	PrevBatch string           `json:"prev_batch"`
	Total     *int             `json:"total_room_count_estimate"`
}

// roomIDs returns the room IDs of the page's chunk.
func (p publicRoomsPage) roomIDs() []string {
	out := []string{}
	for _, r := range p.Chunk {
		s, _ := r["room_id"].(string)
		out = append(out, s)
	}
	return out
}

// find returns the chunk entry of roomID, or nil.
func (p publicRoomsPage) find(roomID id.RoomID) map[string]any {
	for _, r := range p.Chunk {
		if r["room_id"] == roomID.String() {
			return r
		}
	}
	return nil
}

// publicRooms asks for the directory: with GET and the query when body is
// nil (and no token), with POST and body otherwise.
func publicRooms(t testing.TB, srv *server, token, query string, body any) publicRoomsPage {
	t.Helper()
	var resp rawResponse
	if body == nil {
		resp = srv.raw(t, "GET", "/_matrix/client/v3/publicRooms"+query, token, nil)
	} else {
		resp = srv.raw(t, "POST", "/_matrix/client/v3/publicRooms", token, dirJSON(t, body))
	}
	if resp.status != 200 {
		t.Fatalf("publicRooms %s %v: %v", query, body, resp)
	}
	var p publicRoomsPage
	if err := json.Unmarshal(resp.body, &p); err != nil || p.Chunk == nil || p.Total == nil {
		t.Fatalf("publicRooms %s %v: want a chunk and a total estimate: %v (%v)", query, body, resp, err)
	}
	return p
}

// listPath is the directory listing endpoint of room.
func listPath(room id.RoomID) string {
	return "/_matrix/client/v3/directory/list/room/" + url.PathEscape(room.String())
}

// TestPublicRoomDirectory: createRoom with visibility public lists the
// room with its current state (Complement's TestPublicRooms); only a
// member with the power to set the canonical alias can change the
// listing; filters and pagination; the directory is the same after a
// restart and after a rebuild of the read models from the log.
func TestPublicRoomDirectory(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	name, topic := "un nom français", "un topic à la française, Wombles"
	pub, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", RoomAliasName: "wombles",
		Name: name, Topic: topic})
	must(t, "create a public room", err)
	priv, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "private", Name: "Wombles' secret"})
	must(t, "create a private room", err)

	var entry map[string]any
	testutil.WaitFor(t, waitTimeout, "the public room is listed", func() error {
		p := publicRooms(t, srv, "", "", nil) // no access token needed
		if entry = p.find(pub.RoomID); entry == nil {
			return fmt.Errorf("not in %v", p.roomIDs())
		}
		return nil
	})
	wantEntry := map[string]any{"room_id": pub.RoomID.String(), "num_joined_members": 1.0, "world_readable": false,
		"guest_can_join": false, "name": name, "topic": topic, "canonical_alias": "#wombles:" + serverName, "join_rule": "public"}
	for k, v := range wantEntry {
		if entry[k] != v {
			t.Errorf("entry %s = %#v, want %#v (entry %v)", k, entry[k], v, entry)
		}
	}
	for k := range entry {
		if _, ok := wantEntry[k]; !ok {
			t.Errorf("entry has %s = %v, which the room does not have", k, entry[k])
		}
	}
	search := publicRooms(t, srv, bob.AccessToken, "", map[string]any{"filter": map[string]any{"generic_search_term": "wombles"}})
	if got := search.roomIDs(); !slices.Equal(got, []string{pub.RoomID.String()}) {
		t.Errorf("search for wombles: %v, want the public room alone", got)
	}
	for room, want := range map[id.RoomID]string{pub.RoomID: "public", priv.RoomID: "private"} {
		r := srv.raw(t, "GET", listPath(room), "", nil)
		if r.status != 200 || r.json["visibility"] != want {
			t.Errorf("GET visibility of %s: %v, want %s", room, r, want)
		}
	}

	// Permissions: an outsider, then a member with power 0, may not
	// change the listing; the creator may.
	private := dirJSON(t, map[string]any{"visibility": "private"})
	checkRaw(t, "an outsider unpublishes", srv.raw(t, "PUT", listPath(pub.RoomID), bob.AccessToken, private), forbidden)
	_, err = bob.JoinRoomByID(ctx, pub.RoomID)
	must(t, "bob joins the public room", err)
	checkRaw(t, "a member with power 0 unpublishes", srv.raw(t, "PUT", listPath(pub.RoomID), bob.AccessToken, private), forbidden)
	checkRaw(t, "publish without a token", srv.raw(t, "PUT", listPath(priv.RoomID), "", []byte(`{}`)), want{401, "M_MISSING_TOKEN"})
	checkRaw(t, "an unknown visibility", srv.raw(t, "PUT", listPath(priv.RoomID), alice.AccessToken, []byte(`{"visibility":"secret"}`)),
		want{400, "M_INVALID_PARAM"})
	unknown := id.RoomID("!nosuchroom:" + serverName)
	checkRaw(t, "publish an unknown room", srv.raw(t, "PUT", listPath(unknown), alice.AccessToken, []byte(`{}`)), notFound)
	checkRaw(t, "visibility of an unknown room", srv.raw(t, "GET", listPath(unknown), "", nil), notFound)
	// Publishing with an empty body means public (the spec's default).
	r := srv.raw(t, "PUT", listPath(priv.RoomID), alice.AccessToken, []byte(`{}`))
	if r.status != 200 {
		t.Fatalf("alice publishes her private room: %v", r)
	}
	r = srv.raw(t, "PUT", listPath(pub.RoomID), alice.AccessToken, private)
	if r.status != 200 {
		t.Fatalf("alice unpublishes the public room: %v", r)
	}
	// The writer reads her write at once.
	p := publicRooms(t, srv, "", "", nil)
	if p.find(pub.RoomID) != nil || p.find(priv.RoomID) == nil {
		t.Errorf("after swapping the listings: %v, want %s and not %s", p.roomIDs(), priv.RoomID, pub.RoomID)
	}
	if r := srv.raw(t, "GET", listPath(pub.RoomID), "", nil); r.json["visibility"] != "private" {
		t.Errorf("visibility after unpublishing: %v", r)
	}
	// createRoom with another visibility is refused.
	r = srv.raw(t, "POST", "/_matrix/client/v3/createRoom", alice.AccessToken, []byte(`{"visibility":"everyone"}`))
	checkRaw(t, "createRoom with visibility everyone", r, want{400, "M_INVALID_PARAM"})

	t.Run("pagination", func(t *testing.T) {
		// Rooms with 1 to 3 members, so the order (most members first, then
		// room ID) is known; bob is in pub already (unpublished).
		carol := newUser(t, srv, "carol")
		var rooms []id.RoomID
		for i := range 6 {
			c, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Preset: "public_chat",
				Name: fmt.Sprintf("paged %d", i)})
			must(t, "create a paged room", err)
			rooms = append(rooms, c.RoomID)
			for _, u := range []*mautrix.Client{bob, carol}[:i%3] {
				_, err := u.JoinRoomByID(ctx, c.RoomID)
				must(t, "join a paged room", err)
			}
		}
		all := publicRooms(t, srv, "", "", nil)
		if *all.Total != 7 || len(all.Chunk) != 7 || all.NextBatch != "" || all.PrevBatch != "" {
			t.Fatalf("the whole directory: %v total %d next %q prev %q, want 7 rooms and no tokens",
				all.roomIDs(), *all.Total, all.NextBatch, all.PrevBatch)
		}
		for i := 1; i < len(all.Chunk); i++ {
			a, b := all.Chunk[i-1], all.Chunk[i]
			if a["num_joined_members"].(float64) < b["num_joined_members"].(float64) {
				t.Errorf("rooms out of order: %v before %v", a, b)
			}
		}
		var (
			paged []string
			pages []publicRoomsPage
			since string
		)
		for len(pages) < 10 {
			q := "?limit=3"
			if since != "" {
				q += "&since=" + url.QueryEscape(since)
			}
			pg := publicRooms(t, srv, "", q, nil)
			if len(pg.Chunk) == 0 || len(pg.Chunk) > 3 || *pg.Total != 7 {
				t.Fatalf("page %d: %v total %d", len(pages), pg.roomIDs(), *pg.Total)
			}
			if (len(pages) == 0) != (pg.PrevBatch == "") {
				t.Errorf("page %d: prev_batch %q", len(pages), pg.PrevBatch)
			}
			pages = append(pages, pg)
			paged = append(paged, pg.roomIDs()...)
			if since = pg.NextBatch; since == "" {
				break
			}
		}
		if !slices.Equal(paged, all.roomIDs()) || len(pages) != 3 {
			t.Fatalf("paging by 3 gave %v in %d pages, want %v in 3", paged, len(pages), all.roomIDs())
		}
		// Back from the second page: the first page again; POST pages alike.
		back := publicRooms(t, srv, alice.AccessToken, "", map[string]any{"limit": 3, "since": pages[1].PrevBatch})
		if !slices.Equal(back.roomIDs(), pages[0].roomIDs()) || back.PrevBatch != "" || back.NextBatch == "" {
			t.Errorf("back from page 2: %v prev %q next %q, want page 1 %v", back.roomIDs(), back.PrevBatch, back.NextBatch, pages[0].roomIDs())
		}
		next := publicRooms(t, srv, alice.AccessToken, "", map[string]any{"limit": 3, "since": back.NextBatch})
		if !slices.Equal(next.roomIDs(), pages[1].roomIDs()) {
			t.Errorf("forward again: %v, want page 2 %v", next.roomIDs(), pages[1].roomIDs())
		}
		checkRaw(t, "a made-up since token", srv.raw(t, "GET", "/_matrix/client/v3/publicRooms?since=xyz", "", nil), want{400, "M_INVALID_PARAM"})
		checkRaw(t, "a limit that is no number", srv.raw(t, "GET", "/_matrix/client/v3/publicRooms?limit=ten", "", nil), want{400, "M_INVALID_PARAM"})
		checkRaw(t, "another server's directory", srv.raw(t, "GET", "/_matrix/client/v3/publicRooms?server=elsewhere.example", "", nil),
			want{400, "M_INVALID_PARAM"})
		checkRaw(t, "POST without a token", srv.raw(t, "POST", "/_matrix/client/v3/publicRooms", "", []byte(`{}`)), want{401, "M_MISSING_TOKEN"})
		if p := publicRooms(t, srv, "", "?server="+serverName+"&limit=2", nil); len(p.Chunk) != 2 {
			t.Errorf("this server named explicitly: %v", p.roomIDs())
		}
		if p := publicRooms(t, srv, bob.AccessToken, "", map[string]any{"third_party_instance_id": "irc"}); len(p.Chunk) != 0 {
			t.Errorf("a third-party network planb does not have: %v", p.roomIDs())
		}
	})

	t.Run("room types", func(t *testing.T) {
		space, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Visibility: "public", Name: "a space",
			CreationContent: map[string]any{"type": "m.space"}})
		must(t, "create a space", err)
		spaces := publicRooms(t, srv, bob.AccessToken, "", map[string]any{"filter": map[string]any{"room_types": []any{"m.space"}}})
		if got := spaces.roomIDs(); !slices.Equal(got, []string{space.RoomID.String()}) {
			t.Errorf("spaces: %v, want %s", got, space.RoomID)
		} else if spaces.Chunk[0]["room_type"] != "m.space" {
			t.Errorf("the space's entry lacks room_type: %v", spaces.Chunk[0])
		}
		plain := publicRooms(t, srv, bob.AccessToken, "", map[string]any{"filter": map[string]any{"room_types": []any{nil}}})
		if plain.find(space.RoomID) != nil || len(plain.Chunk) != 7 {
			t.Errorf("rooms without a type: %v", plain.roomIDs())
		}
	})

	// Both directories answer the same from a restarted node's store and
	// from read models rebuilt from the log.
	readBoth := func() string {
		var b strings.Builder
		for _, path := range []string{"/_matrix/client/v3/publicRooms", listPath(pub.RoomID), listPath(priv.RoomID)} {
			fmt.Fprintf(&b, "%s\n%s\n", path, srv.raw(t, "GET", path, "", nil).body)
		}
		for _, term := range []string{"alice", "bob", "carol"} {
			r := srv.raw(t, "POST", "/_matrix/client/v3/user_directory/search", bob.AccessToken, dirJSON(t, map[string]any{"search_term": term}))
			fmt.Fprintf(&b, "search %s\n%s\n", term, r.body)
		}
		return b.String()
	}
	before := readBoth()
	if !strings.Contains(before, `"user_id":"@carol:`) {
		t.Fatalf("bob does not find carol, who shares rooms with him: %s", before)
	}
	srv.restart(t)
	if after := readBoth(); after != before {
		t.Errorf("after a restart:\n%s\nbefore:\n%s", after, before)
	}
	srv.stop(t)
	if err := os.RemoveAll(filepath.Join(srv.dataDir, "readmodel")); err != nil {
		t.Fatal(err)
	}
	srv.start(t)
	if after := readBoth(); after != before {
		t.Errorf("after rebuilding the read models:\n%s\nbefore:\n%s", after, before)
	}
}
