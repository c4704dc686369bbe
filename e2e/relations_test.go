package e2e

import (
	"fmt"
	"net/url"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// relatesTo is message content relating to parent with relType.
func relatesTo(relType string, parent id.EventID, body string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": body,
		"m.relates_to": map[string]any{"rel_type": relType, "event_id": parent}}
}

// sendContent sends an event of type typ with content and returns its ID.
func sendContent(t *testing.T, cli *mautrix.Client, room id.RoomID, typ string, content map[string]any) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), room, event.Type{Type: typ, Class: event.MessageEventType}, content)
	must(t, fmt.Sprintf("%s sends %s", cli.UserID, typ), err)
	return resp.EventID
}

// relationIDs pages through /relations with req to its end and returns the
// event IDs of every page.
func relationIDs(t *testing.T, cli *mautrix.Client, room id.RoomID, parent id.EventID, req mautrix.ReqGetRelations) [][]id.EventID {
	t.Helper()
	var pages [][]id.EventID
	for n := 0; ; n++ {
		if n > 50 {
			t.Fatal("/relations pagination does not end")
		}
		resp, err := cli.GetRelations(t.Context(), room, parent, &req)
		must(t, "GET /relations", err)
		if req.From != "" && resp.PrevBatch != req.From {
			t.Errorf("prev_batch %q, want the from token %q", resp.PrevBatch, req.From)
		}
		pages = append(pages, ids(resp.Chunk))
		if resp.NextBatch == "" {
			return pages
		}
		req.From = resp.NextBatch
	}
}

func equalEventIDs(t *testing.T, what string, got, want []id.EventID) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s:\n got %v\nwant %v", what, got, want)
	}
}

// threadOf returns the m.thread aggregation in unsigned of a raw event.
func threadOf(ev map[string]any) map[string]any {
	u, _ := ev["unsigned"].(map[string]any)
	rel, _ := u["m.relations"].(map[string]any)
	th, _ := rel["m.thread"].(map[string]any)
	return th
}

func latestOf(th map[string]any) string {
	l, _ := th["latest_event"].(map[string]any)
	s, _ := l["event_id"].(string)
	return s
}

// TestRelations covers GET /relations and /threads (relations.yaml,
// threads_list.yaml) as Complement's TestRelations, TestRelationsPagination,
// TestRelationsPaginationSync and TestThreadsEndpoint use them, and the
// bundled m.thread aggregation, visibility and redaction.
func TestRelations(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create room", err)
	room := created.RoomID
	path := func(parts ...string) string {
		p := "/_matrix/client/v1/rooms/" + url.PathEscape(room.String())
		for _, s := range parts {
			p += "/" + url.PathEscape(s)
		}
		return p
	}

	t.Run("filters by relation type and event type", func(t *testing.T) {
		root := sendText(t, alice, room, "root")
		thread := sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root, "reply"))
		dummy := sendContent(t, alice, room, "m.dummy", map[string]any{"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}})
		edit := sendContent(t, alice, room, "m.room.message", map[string]any{"msgtype": "m.text", "body": "* edited root",
			"m.new_content": map[string]any{"msgtype": "m.text", "body": "edited root"},
			"m.relates_to":  map[string]any{"rel_type": "m.replace", "event_id": root}})
		sendText(t, alice, room, "unrelated")
		testutil.WaitFor(t, waitTimeout, "the edit is readable", func() error {
			_, err := alice.GetEvent(ctx, room, edit)
			return err
		})
		all := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{})
		equalEventIDs(t, "all children, newest first", slices.Concat(all...), []id.EventID{edit, dummy, thread})
		threads := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{RelationType: event.RelThread})
		equalEventIDs(t, "m.thread children", slices.Concat(threads...), []id.EventID{dummy, thread})
		msgs := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{RelationType: event.RelThread, EventType: event.EventMessage})
		equalEventIDs(t, "m.thread children of type m.room.message", slices.Concat(msgs...), []id.EventID{thread})
		fwd := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{Dir: mautrix.DirectionForward})
		equalEventIDs(t, "all children, oldest first", slices.Concat(fwd...), []id.EventID{thread, dummy, edit})
		r := srv.raw(t, "GET", path("relations", root.String())+"?recurse=true", alice.AccessToken, nil)
		if r.status != 200 || r.json["recursion_depth"] != float64(3) {
			t.Errorf("recurse=true: %s, want recursion_depth 3", r)
		}
		if r := srv.raw(t, "GET", path("relations", root.String()), alice.AccessToken, nil); r.json["recursion_depth"] != nil {
			t.Errorf("recursion_depth without recurse: %s", r)
		}
	})

	t.Run("paginates both ways and from a sync token", func(t *testing.T) {
		root := sendText(t, alice, room, "root")
		var before []id.EventID
		for i := range 5 {
			before = append(before, sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root, fmt.Sprintf("reply %d before sync", i))))
		}
		var tok string
		testutil.WaitFor(t, waitTimeout, "sync shows the replies", func() error {
			resp, err := alice.SyncRequest(ctx, 0, "", `{"room":{"timeline":{"limit":1}}}`, false, "")
			if err != nil {
				return err
			}
			if tl := resp.Rooms.Join[room]; tl == nil || !slices.Contains(ids(tl.Timeline.Events), before[4]) {
				return fmt.Errorf("sync timeline lacks %s", before[4])
			}
			tok = resp.NextBatch
			return nil
		})
		var after []id.EventID
		for i := range 5 {
			after = append(after, sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root, fmt.Sprintf("reply %d after sync", i))))
		}
		all := slices.Concat(before, after)
		testutil.WaitFor(t, waitTimeout, "the last reply is readable", func() error {
			_, err := alice.GetEvent(ctx, room, after[4])
			return err
		})
		back := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{Limit: 3})
		if len(back) != 4 {
			t.Errorf("10 children by 3: %d pages %v", len(back), back)
		}
		equalEventIDs(t, "backwards by 3", slices.Concat(back...), reversed(all))
		equalEventIDs(t, "the first page", back[0], reversed(all)[:3])
		fwd := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{Limit: 3, Dir: mautrix.DirectionForward})
		equalEventIDs(t, "forwards by 3", slices.Concat(fwd...), all)
		fromSync := relationIDs(t, alice, room, root, mautrix.ReqGetRelations{Limit: 3, Dir: mautrix.DirectionForward, From: tok})
		if len(fromSync) != 2 {
			t.Errorf("5 children after the sync token by 3: %v", fromSync)
		}
		equalEventIDs(t, "forwards from the sync token", slices.Concat(fromSync...), after)
		checkRaw(t, "a bad from token", srv.raw(t, "GET", path("relations", root.String())+"?from=nonsense", alice.AccessToken, nil),
			want{400, "M_INVALID_PARAM"})
		checkRaw(t, "a bad dir", srv.raw(t, "GET", path("relations", root.String())+"?dir=x", alice.AccessToken, nil),
			want{400, "M_INVALID_PARAM"})
	})

	t.Run("lists threads by latest activity with their aggregation", func(t *testing.T) {
		own, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "create room", err)
		room := own.RoomID
		threadsPath := "/_matrix/client/v1/rooms/" + url.PathEscape(room.String()) + "/threads"
		root1 := sendText(t, alice, room, "Thread 1 Root")
		root2 := sendText(t, alice, room, "Thread 2 Root")
		reply1 := sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root1, "Thread 1 Reply"))
		reply2 := sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root2, "Thread 2 Reply"))
		list := func(query string, token string) (roots, latest []string, next string) {
			t.Helper()
			r := srv.raw(t, "GET", threadsPath+query, token, nil)
			if r.status != 200 {
				t.Fatalf("GET /threads%s: %s", query, r)
			}
			chunk, _ := r.json["chunk"].([]any)
			for _, c := range chunk {
				ev, _ := c.(map[string]any)
				id, _ := ev["event_id"].(string)
				roots, latest = append(roots, id), append(latest, latestOf(threadOf(ev)))
			}
			next, _ = r.json["next_batch"].(string)
			return roots, latest, next
		}
		testutil.WaitFor(t, waitTimeout, "both threads are listed", func() error {
			roots, latest, _ := list("", alice.AccessToken)
			if !slices.Equal(roots, []string{root2.String(), root1.String()}) || !slices.Equal(latest, []string{reply2.String(), reply1.String()}) {
				return fmt.Errorf("threads %v with latest %v", roots, latest)
			}
			return nil
		})
		reply3 := sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root1, "Thread 1 Reply 2"))
		testutil.WaitFor(t, waitTimeout, "thread 1 comes first", func() error {
			roots, latest, _ := list("", alice.AccessToken)
			if !slices.Equal(roots, []string{root1.String(), root2.String()}) || !slices.Equal(latest, []string{reply3.String(), reply2.String()}) {
				return fmt.Errorf("threads %v with latest %v", roots, latest)
			}
			return nil
		})
		roots, _, next := list("?limit=1", alice.AccessToken)
		if len(roots) != 1 || next == "" {
			t.Fatalf("a page of one: %v, next %q", roots, next)
		}
		if roots2, _, next2 := list("?limit=1&from="+url.QueryEscape(next), alice.AccessToken); !slices.Equal(roots2, []string{root2.String()}) || next2 != "" {
			t.Errorf("the second page of one: %v, next %q", roots2, next2)
		}

		// Bob joins and replies in thread 2 only.
		_, err = bob.JoinRoomByID(ctx, room)
		must(t, "bob joins", err)
		bobReply := sendContent(t, bob, room, "m.room.message", relatesTo("m.thread", root2, "bob was here"))
		if roots, latest, _ := list("?include=participated", bob.AccessToken); !slices.Equal(roots, []string{root2.String()}) || latest[0] != bobReply.String() {
			t.Errorf("bob's threads: %v with latest %v", roots, latest)
		}
		if roots, _, _ := list("?include=all", bob.AccessToken); len(roots) != 2 {
			t.Errorf("all threads for bob: %v", roots)
		}
		checkRaw(t, "include=nonsense", srv.raw(t, "GET", threadsPath+"?include=nonsense", bob.AccessToken, nil), want{400, "M_INVALID_PARAM"})
		checkRaw(t, "limit=0", srv.raw(t, "GET", threadsPath+"?limit=0", bob.AccessToken, nil), want{400, "M_INVALID_PARAM"})

		// The aggregation is bundled with the root in /event, /messages and /sync.
		r := srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/event/"+url.PathEscape(root2.String()), bob.AccessToken, nil)
		th := threadOf(r.json)
		if latestOf(th) != bobReply.String() || th["count"] != float64(2) || th["current_user_participated"] != true {
			t.Errorf("/event of thread 2's root for bob: %s", r)
		}
		r = srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/messages?dir=b&limit=20", alice.AccessToken, nil)
		found := false
		for _, c := range r.json["chunk"].([]any) {
			ev := c.(map[string]any)
			if ev["event_id"] == root1.String() {
				found = true
				if th := threadOf(ev); latestOf(th) != reply3.String() || th["count"] != float64(2) {
					t.Errorf("/messages bundles %v with thread 1's root", th)
				}
			}
		}
		if !found {
			t.Errorf("/messages lacks thread 1's root: %s", r)
		}
		resp := srv.raw(t, "GET", "/_matrix/client/v3/sync", alice.AccessToken, nil)
		rooms, _ := resp.json["rooms"].(map[string]any)
		join, _ := rooms["join"].(map[string]any)
		jr, _ := join[room.String()].(map[string]any)
		tl, _ := jr["timeline"].(map[string]any)
		evs, _ := tl["events"].([]any)
		for _, c := range evs {
			if ev := c.(map[string]any); ev["event_id"] == root2.String() && latestOf(threadOf(ev)) != bobReply.String() {
				t.Errorf("/sync bundles %v with thread 2's root", threadOf(ev))
			}
		}

		// Threads do not nest.
		_, err = alice.SendMessageEvent(ctx, room, event.EventMessage, relatesTo("m.thread", reply3, "nested"))
		checkErr(t, "a thread off a thread reply", err, want{400, "M_UNKNOWN"})

		// A redacted reply drops out of /relations and of the aggregation.
		_, err = alice.RedactEvent(ctx, room, reply3)
		must(t, "redact thread 1's newest reply", err)
		testutil.WaitFor(t, waitTimeout, "the redacted reply drops out", func() error {
			got := relationIDs(t, alice, room, root1, mautrix.ReqGetRelations{RelationType: event.RelThread})
			if c := slices.Concat(got...); !slices.Equal(c, []id.EventID{reply1}) {
				return fmt.Errorf("thread 1's replies %v", c)
			}
			roots, latest, _ := list("", alice.AccessToken)
			if !slices.Equal(roots, []string{root2.String(), root1.String()}) || latest[1] != reply1.String() {
				return fmt.Errorf("threads %v with latest %v", roots, latest)
			}
			return nil
		})
	})

	t.Run("the parent and children must be visible", func(t *testing.T) {
		priv, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat",
			InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
		must(t, "create a private room", err)
		room := priv.RoomID
		early := sendText(t, alice, room, "before bob")
		sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", early, "also before bob"))
		relPath := "/_matrix/client/v1/rooms/" + url.PathEscape(room.String()) + "/relations/" + url.PathEscape(early.String())
		checkRaw(t, "an outsider's /relations", srv.raw(t, "GET", relPath, bob.AccessToken, nil), notFound)
		checkRaw(t, "an outsider's /threads", srv.raw(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(room.String())+"/threads", bob.AccessToken, nil), forbidden)
		checkRaw(t, "an unknown parent", srv.raw(t, "GET", "/_matrix/client/v1/rooms/"+url.PathEscape(room.String())+"/relations/%24nope", alice.AccessToken, nil), notFound)

		_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID})
		must(t, "invite bob", err)
		_, err = bob.JoinRoomByID(ctx, room)
		must(t, "bob joins", err)
		root := sendText(t, alice, room, "while bob is here")
		seen := sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root, "bob sees this"))
		sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", early, "a late reply to the early root"))
		checkRaw(t, "a parent from before bob joined", srv.raw(t, "GET", relPath, bob.AccessToken, nil), notFound)
		_, err = bob.LeaveRoom(ctx, room)
		must(t, "bob leaves", err)
		sendContent(t, alice, room, "m.room.message", relatesTo("m.thread", root, "after bob left"))
		got := relationIDs(t, bob, room, root, mautrix.ReqGetRelations{})
		equalEventIDs(t, "what bob sees of root's children after leaving", slices.Concat(got...), []id.EventID{seen})
		if all := slices.Concat(relationIDs(t, alice, room, root, mautrix.ReqGetRelations{})...); len(all) != 2 {
			t.Errorf("alice sees %v of root's children, want 2", all)
		}
	})
}
