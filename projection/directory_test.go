package projection

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/planb-chat/planb"
)

// searchIDs returns the user IDs searcher finds for term.
func searchIDs(w *world, searcher, term string, limit int) ([]string, bool) {
	res, limited := w.m.SearchUsers(searcher, term, limit)
	out := []string{}
	for _, r := range res {
		out = append(out, r.UserID)
	}
	return out, limited
}

// TestUserDirectoryVisibility checks who finds whom: users sharing a
// joined room, and everyone joined to a room with a public join rule or
// world-readable history; matching on the user ID and the global display
// name, never on a name given in one room.
func TestUserDirectoryVisibility(t *testing.T) {
	w := newWorld(t, 2)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.m.ApplyProfile(1, alice, &Profile{DisplayName: "Alice Cooper", AvatarURL: "mxc://hs/a"}))
	must(w.m.ApplyProfile(2, bob, &Profile{DisplayName: "Bob"}))
	must(w.m.ApplyProfile(3, carol, &Profile{DisplayName: "Carol", Deactivated: true}))

	// A private room of bob's where alice calls herself Freddy.
	priv := w.createRoom("!priv:hs", 0, bob, "shared")
	priv.commit(priv.state(bob, planb.TypeJoinRules, "", obj{"join_rule": "invite"}))
	priv.commit(priv.member(bob, alice, planb.MembershipInvite))
	priv.commit(priv.join(alice))
	priv.commit(priv.state(alice, planb.TypeMember, alice, obj{"membership": "join", "displayname": "Freddy"}))

	for _, c := range []struct {
		searcher, term string
		want           []string
	}{
		{eve, "alice", []string{}}, // alice is in no open room yet
		{bob, "alice", []string{alice}},
		{bob, "COOPER", []string{alice}},
		{bob, "cooper alice", []string{alice}},
		{bob, "freddy", []string{}}, // the room-specific name is never searched
		{alice, "bob", []string{bob}},
		{alice, "alice", []string{}}, // sharing a room with oneself finds no one
		{bob, "@", []string{alice}},
	} {
		got, _ := searchIDs(w, c.searcher, c.term, 10)
		equalIDs(t, c.searcher+" searches "+c.term+" (private room only)", got, c.want)
	}

	// Alice opens a public room: everyone finds her (and she herself),
	// by profile name and user ID but not by the private name.
	pub := w.createRoom("!pub:hs", 1, alice, "shared")
	for _, c := range []struct {
		searcher, term string
		want           []string
	}{
		{eve, "alice cooper", []string{alice}},
		{eve, "@alice", []string{alice}},
		{eve, "freddy", []string{}},
		{eve, "bob", []string{}},
		{alice, "alice", []string{alice}},
	} {
		got, _ := searchIDs(w, c.searcher, c.term, 10)
		equalIDs(t, c.searcher+" searches "+c.term+" (with a public room)", got, c.want)
	}

	// A deactivated account is never found; carol joins the public room.
	pub.commit(pub.join(carol))
	if got, _ := searchIDs(w, eve, "carol", 10); len(got) != 0 {
		t.Errorf("eve finds the deactivated carol: %v", got)
	}

	// The room turns invite-only: eve finds no one; making its history
	// world readable opens it again.
	pub.commit(pub.state(alice, planb.TypeJoinRules, "", obj{"join_rule": "invite"}))
	if got, _ := searchIDs(w, eve, "alice", 10); len(got) != 0 {
		t.Errorf("eve finds %v in a room that is no longer public", got)
	}
	pub.commit(pub.state(alice, planb.TypeHistoryVisibility, "", obj{"history_visibility": "world_readable"}))
	if got, _ := searchIDs(w, eve, "alice", 10); len(got) != 1 {
		t.Errorf("eve finds %v in a world-readable room, want alice", got)
	}

	// Limit and ranking: a name or localpart that starts with the term
	// first, then one with a word that does, then the rest.
	must(w.m.ApplyProfile(4, "@zed:hs", &Profile{DisplayName: "Alfred"}))
	must(w.m.ApplyProfile(5, "@al:hs", &Profile{DisplayName: "Someone"}))
	must(w.m.ApplyProfile(6, "@q:hs", &Profile{DisplayName: "Big Al"}))
	must(w.m.ApplyProfile(7, "@xyz:hs", &Profile{DisplayName: "Hal"}))
	for _, u := range []string{"@zed:hs", "@al:hs", "@q:hs", "@xyz:hs"} {
		pub.commit(pub.join(u))
	}
	got, limited := searchIDs(w, eve, "al", 2)
	if !limited || len(got) != 2 {
		t.Fatalf("eve searches al with limit 2: %v limited %v, want 2 and limited", got, limited)
	}
	got, limited = searchIDs(w, eve, "al", 10)
	equalIDs(t, "ranking of al", got, []string{"@al:hs", alice, "@zed:hs", "@q:hs", "@xyz:hs"})
	if limited {
		t.Errorf("all five results say limited")
	}
	// A profile deleted (its account key removed) leaves only the user ID.
	must(w.m.ApplyProfile(8, alice, nil))
	if got, _ := searchIDs(w, eve, "cooper", 10); len(got) != 0 {
		t.Errorf("a deleted profile is still found by its name: %v", got)
	}
}

// TestPublishedRoomsFromState checks the directory entries: built from
// current state (redacted where redacted), ordered by joined members, and
// kept across a reopened store.
func TestPublishedRoomsFromState(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir})
	a := w.createRoom("!a:hs", 0, alice, "world_readable")
	a.commit(
		a.state(alice, planb.TypeTopic, "", obj{"topic": "un topic à la française"}),
		a.state(alice, planb.TypeCanonicalAlias, "", obj{"alias": "#a:hs"}),
		a.state(alice, planb.TypeAvatar, "", obj{"url": "mxc://hs/x"}),
		a.state(alice, planb.TypeGuestAccess, "", obj{"guest_access": "can_join"}),
	)
	b := w.createRoom("!b:hs", 1, bob, "shared")
	b.commit(b.join(carol))
	w.createRoom("!c:hs", 1, carol, "shared") // never published
	for i, id := range []string{"!a:hs", "!b:hs", "!nowhere:hs"} {
		if err := w.m.ApplyDirectory(uint64(i+1), id, true); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		got := w.m.PublishedRooms()
		raw, _ := json.Marshal(got)
		if len(got) != 2 || got[0].RoomID != "!b:hs" || got[1].RoomID != "!a:hs" {
			t.Fatalf("%s: %s, want !b:hs (2 members) then !a:hs", what, raw)
		}
		want := PublicRoom{RoomID: "!a:hs", NumJoinedMembers: 1, WorldReadable: true, GuestCanJoin: true,
			Name: "Room !a:hs", Topic: "un topic à la française", CanonicalAlias: "#a:hs", AvatarURL: "mxc://hs/x", JoinRule: "public"}
		if got[1] != want {
			t.Errorf("%s: %+v, want %+v", what, got[1], want)
		}
		if public, known := w.m.Published("!c:hs"); public || !known {
			t.Errorf("%s: !c:hs published %v known %v", what, public, known)
		}
	}
	check("before reopening")
	w.reopen(t, StoreOptions{Dir: dir})
	check("after reopening")
	if err := w.m.ApplyDirectory(4, "!b:hs", false); err != nil {
		t.Fatal(err)
	}
	if got := w.m.PublishedRooms(); len(got) != 1 || got[0].RoomID != "!a:hs" {
		t.Errorf("after unpublishing !b:hs: %+v", got)
	}
	if p := w.m.Position(); p.Directory != 4 {
		t.Errorf("directory position %d, want 4", p.Directory)
	}
	// A replayed message changes nothing.
	if err := w.m.ApplyDirectory(2, "!b:hs", true); err != nil {
		t.Fatal(err)
	}
	if got := w.m.PublishedRooms(); len(got) != 1 {
		t.Errorf("a replay published !b:hs again: %+v", got)
	}
}
