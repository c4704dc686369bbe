package e2e

import (
	"encoding/json"
	"net/url"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestClientAPIDetails checks details of the client-server API that stock
// clients and Complement rely on, each on one server: canonical aliases
// that must exist, rich topics, join content, case-folded user IDs,
// filters naming real IDs, UTF-8 bodies, joined_members' keys and /event's
// 404 for outsiders.
func TestClientAPIDetails(t *testing.T) {
	srv := startServer(t)
	ctx := ctxTimeout(t, waitTimeout)
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	t.Run("m.room.canonical_alias names existing aliases of the room", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "create room", err)
		other, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		must(t, "create other room", err)
		_, err = alice.CreateAlias(ctx, "#canon:"+serverName, room.RoomID)
		must(t, "create alias", err)
		_, err = alice.CreateAlias(ctx, "#elsewhere:"+serverName, other.RoomID)
		must(t, "create alias of the other room", err)
		put := func(content map[string]any) error {
			_, err := alice.SendStateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", content)
			return err
		}
		badAlias := want{400, "M_BAD_ALIAS"}
		checkErr(t, "an alias that does not exist", put(map[string]any{"alias": "#missing:" + serverName}), badAlias)
		checkErr(t, "an alias of another room", put(map[string]any{"alias": "#elsewhere:" + serverName}), badAlias)
		checkErr(t, "an alt alias of another room", put(map[string]any{"alias": "#canon:" + serverName,
			"alt_aliases": []string{"#elsewhere:" + serverName}}), badAlias)
		checkErr(t, "a malformed alias", put(map[string]any{"alias": "%canon:" + serverName}), want{400, "M_INVALID_PARAM"})
		checkErr(t, "a malformed alt alias", put(map[string]any{"alias": "#canon:" + serverName,
			"alt_aliases": []string{"canon"}}), want{400, "M_INVALID_PARAM"})
		must(t, "an alias of the room, also as alt alias", put(map[string]any{"alias": "#canon:" + serverName,
			"alt_aliases": []string{"#canon:" + serverName, "#remote:other.example"}}))

		// Deleting the alias takes it out of the event.
		_, err = alice.DeleteAlias(ctx, "#canon:"+serverName)
		must(t, "delete alias", err)
		var content map[string]any
		must(t, "read m.room.canonical_alias", alice.StateEvent(ctx, room.RoomID, event.StateCanonicalAlias, "", &content))
		if _, ok := content["alias"]; ok || len(content["alt_aliases"].([]any)) != 1 {
			t.Errorf("m.room.canonical_alias after deleting its alias: %v, want only the remote alt alias", content)
		}
		checkErr(t, "the deleted alias", put(map[string]any{"alias": "#canon:" + serverName}), badAlias)
	})

	t.Run("createRoom writes the topic in plain and rich form", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Topic: "오늘의 주제"})
		must(t, "create room", err)
		var content struct {
			Topic string `json:"topic"`
			Rich  struct {
				Text []struct {
					Body     string `json:"body"`
					MimeType string `json:"mimetype"`
				} `json:"m.text"`
			} `json:"m.topic"`
		}
		must(t, "read topic", alice.StateEvent(ctx, room.RoomID, event.StateTopic, "", &content))
		if content.Topic != "오늘의 주제" || len(content.Rich.Text) != 1 || content.Rich.Text[0].Body != "오늘의 주제" ||
			content.Rich.Text[0].MimeType != "text/plain" {
			t.Errorf("topic content %+v, want the topic also as one text/plain m.text", content)
		}
	})

	t.Run("join content from the request body", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "create room", err)
		r := srv.raw(t, "POST", "/_matrix/client/v3/join/"+url.PathEscape(string(room.RoomID)), bob.AccessToken,
			[]byte(`{"reason":"hello","foo":"bar","membership":"leave"}`))
		if r.status != 200 {
			t.Fatalf("join with content: %s", r)
		}
		var content map[string]any
		must(t, "read bob's member event", alice.StateEvent(ctx, room.RoomID, event.StateMember, string(bob.UserID), &content))
		if content["membership"] != "join" || content["foo"] != "bar" || content["reason"] != "hello" {
			t.Errorf("bob's member event %v, want membership join with foo and reason from the request", content)
		}
		checkRaw(t, "join with a body that is not an object",
			srv.raw(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/join", bob.AccessToken, []byte(`[1]`)),
			want{400, "M_BAD_JSON"})
	})

	t.Run("user IDs are folded to lower case", func(t *testing.T) {
		cli := srv.client(t, "", "")
		resp, err := cli.RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "Carol-UPPER", Password: password("carol")})
		must(t, "register with capitals", err)
		if resp.UserID != id.UserID("@carol-upper:"+serverName) {
			t.Errorf("registered %s, want @carol-upper:%s", resp.UserID, serverName)
		}
		for _, user := range []string{"@CAROL-upper:" + serverName, "CAROL-UPPER"} {
			c, err := login(t, srv, user, password("carol"))
			must(t, "login as "+user, err)
			if c.UserID != resp.UserID {
				t.Errorf("login as %s gave %s, want %s", user, c.UserID, resp.UserID)
			}
		}
	})

	t.Run("filters must name room and user IDs", func(t *testing.T) {
		path := "/_matrix/client/v3/user/" + url.PathEscape(string(alice.UserID)) + "/filter"
		for _, f := range []string{
			`{"room":{"timeline":{"rooms":["not_a_room_id"]}}}`,
			`{"room":{"timeline":{"senders":["not_a_sender_id"]}}}`,
			`{"room":{"not_rooms":["general"]}}`,
			`{"presence":{"not_senders":["@nobody"]}}`,
		} {
			checkRaw(t, "filter "+f, srv.raw(t, "POST", path, alice.AccessToken, []byte(f)), want{400, "M_BAD_JSON"})
		}
		if r := srv.raw(t, "POST", path, alice.AccessToken,
			[]byte(`{"room":{"rooms":["!a:`+serverName+`"],"timeline":{"senders":["@bob:`+serverName+`"]}}}`)); r.status != 200 {
			t.Errorf("a filter naming real IDs: %s", r)
		}
	})

	t.Run("a body that is not UTF-8 is not JSON", func(t *testing.T) {
		r := srv.raw(t, "POST", "/_matrix/client/v3/register", "", []byte("{\"username\":\"\xff\xfe\"}"))
		checkRaw(t, "register with invalid UTF-8", r, want{400, "M_NOT_JSON"})
	})

	t.Run("joined_members and /event", func(t *testing.T) {
		room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{})
		must(t, "create room", err)
		ev := sendText(t, alice, room.RoomID, "not for bob")
		r := srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/joined_members", alice.AccessToken, nil)
		var jm struct {
			Joined map[string]map[string]json.RawMessage `json:"joined"`
		}
		_ = json.Unmarshal(r.body, &jm)
		me, ok := jm.Joined[string(alice.UserID)]
		if _, dn := me["display_name"]; !ok || !dn {
			t.Errorf("joined_members %s, want alice with a display_name key", r)
		}
		if _, av := me["avatar_url"]; !av {
			t.Errorf("joined_members %s, want alice with an avatar_url key (null when unset)", r)
		}
		_, err = bob.GetEvent(ctx, room.RoomID, ev)
		checkErr(t, "an outsider's GET /event", err, notFound)
		// /messages without dir pages backwards, as it did before the spec
		// made dir required.
		r = srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/messages", alice.AccessToken, nil)
		var page struct {
			Chunk []struct {
				EventID string `json:"event_id"`
			} `json:"chunk"`
		}
		_ = json.Unmarshal(r.body, &page)
		if r.status != 200 || len(page.Chunk) == 0 || page.Chunk[0].EventID != string(ev) {
			t.Errorf("/messages without dir: %s, want the newest event first", r)
		}
	})
}

// TestDeactivateAccount closes an account: user-interactive auth with the
// password, then no login, no reuse of the name, no devices, and the
// account's rooms left.
func TestDeactivateAccount(t *testing.T) {
	srv := startServer(t)
	ctx := ctxTimeout(t, waitTimeout)
	alice := newUser(t, srv, "alice")
	dave := newUser(t, srv, "dave")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Invite: []id.UserID{dave.UserID}})
	must(t, "create room", err)
	_, err = dave.JoinRoomByID(ctx, room.RoomID)
	must(t, "dave joins", err)
	invited, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Invite: []id.UserID{dave.UserID}})
	must(t, "create a room dave is invited to", err)
	second, err := login(t, srv, "dave", password("dave"))
	must(t, "dave's second device", err)

	r := srv.raw(t, "POST", "/_matrix/client/v3/account/deactivate", dave.AccessToken, []byte(`{}`))
	if r.status != 401 || len(uiaFlows(r)) == 0 || uiaFlows(r)[0][0] != "m.login.password" {
		t.Fatalf("deactivate without auth: %s, want 401 with the password stage", r)
	}
	session, _ := r.json["session"].(string)
	auth := func(pw string) []byte {
		return []byte(`{"auth":{"type":"m.login.password","session":"` + session +
			`","identifier":{"type":"m.id.user","user":"` + string(dave.UserID) + `"},"password":"` + pw + `"}}`)
	}
	checkRaw(t, "deactivate with the wrong password", srv.raw(t, "POST", "/_matrix/client/v3/account/deactivate",
		dave.AccessToken, auth("wrong")), want{401, "M_FORBIDDEN"})
	if _, err := dave.Whoami(ctx); err != nil {
		t.Fatalf("dave after a failed deactivation: %v", err)
	}
	r = srv.raw(t, "POST", "/_matrix/client/v3/account/deactivate", dave.AccessToken, auth(password("dave")))
	if r.status != 200 || r.json["id_server_unbind_result"] != "no-support" {
		t.Fatalf("deactivate: %s, want 200 with id_server_unbind_result", r)
	}

	for _, c := range []*mautrix.Client{dave, second} {
		_, err := c.Whoami(ctx)
		checkErr(t, "a deactivated account's token", err, want{401, "M_UNKNOWN_TOKEN"})
	}
	_, err = login(t, srv, "dave", password("dave"))
	checkErr(t, "login to a deactivated account", err, want{403, "M_USER_DEACTIVATED"})
	_, err = srv.client(t, "", "").RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "dave", Password: "another password"})
	checkErr(t, "register a deactivated name", err, want{400, "M_USER_IN_USE"})
	for _, rid := range []id.RoomID{room.RoomID, invited.RoomID} {
		var m struct {
			Membership string `json:"membership"`
		}
		must(t, "read dave's membership", alice.StateEvent(ctx, rid, event.StateMember, string(dave.UserID), &m))
		if m.Membership != "leave" {
			t.Errorf("dave's membership of %s after deactivation: %q, want leave", rid, m.Membership)
		}
	}
}
