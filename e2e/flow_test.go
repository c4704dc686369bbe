package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestLoginAndWhoami registers a user, logs in again with m.login.password
// (by localpart and by full user ID) and checks /whoami for every device.
func TestLoginAndWhoami(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")

	who, err := alice.Whoami(ctx)
	must(t, "whoami with registration token", err)
	if who.UserID != alice.UserID || who.DeviceID != alice.DeviceID {
		t.Errorf("whoami = %s/%s, want %s/%s", who.UserID, who.DeviceID, alice.UserID, alice.DeviceID)
	}

	for _, user := range []string{"alice", "@alice:" + serverName} {
		cli, err := login(t, srv, user, password("alice"))
		must(t, "login as "+user, err)
		if cli.UserID != alice.UserID {
			t.Errorf("login as %s: user_id %s, want %s", user, cli.UserID, alice.UserID)
		}
		if cli.AccessToken == "" || cli.DeviceID == "" {
			t.Fatalf("login as %s: missing access_token/device_id", user)
		}
		if cli.DeviceID == alice.DeviceID || cli.AccessToken == alice.AccessToken {
			t.Errorf("login as %s reused device %s or the registration token; want a new device", user, cli.DeviceID)
		}
		who, err := cli.Whoami(ctx)
		must(t, "whoami after login", err)
		if who.UserID != alice.UserID || who.DeviceID != cli.DeviceID {
			t.Errorf("whoami = %s/%s, want %s/%s", who.UserID, who.DeviceID, alice.UserID, cli.DeviceID)
		}
	}

	// Logging out kills exactly that token.
	other, err := login(t, srv, "alice", password("alice"))
	must(t, "login", err)
	_, err = other.Logout(ctx)
	must(t, "logout", err)
	_, err = other.Whoami(ctx)
	checkErr(t, "whoami after logout", err, want{401, "M_UNKNOWN_TOKEN"})
	_, err = alice.Whoami(ctx)
	must(t, "whoami of another device after logout", err)
}

// TestRoomFlow walks through the life of a room with the client-server API:
// create, state, invite, join, send, sync, pagination, context, aliases,
// kick, ban, unban, leave and forget.
func TestRoomFlow(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	carol := newUser(t, srv, "carol")

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name:          "Flow room",
		Topic:         "how rooms flow",
		Preset:        "private_chat",
		RoomAliasName: "flow",
	})
	must(t, "create room", err)
	room := created.RoomID
	if len(room) < 2 || room[0] != '!' {
		t.Fatalf("room_id %q does not start with !", room)
	}

	t.Run("initial state", func(t *testing.T) {
		var name struct{ Name string }
		must(t, "get m.room.name", alice.StateEvent(ctx, room, event.StateRoomName, "", &name))
		if name.Name != "Flow room" {
			t.Errorf("m.room.name = %q", name.Name)
		}
		var topic struct{ Topic string }
		must(t, "get m.room.topic", alice.StateEvent(ctx, room, event.StateTopic, "", &topic))
		if topic.Topic != "how rooms flow" {
			t.Errorf("m.room.topic = %q", topic.Topic)
		}
		var jr struct {
			JoinRule string `json:"join_rule"`
		}
		must(t, "get m.room.join_rules", alice.StateEvent(ctx, room, event.StateJoinRules, "", &jr))
		if jr.JoinRule != "invite" {
			t.Errorf("private_chat join_rule = %q, want invite", jr.JoinRule)
		}
		state, err := alice.StateAsArray(ctx, room)
		must(t, "get state", err)
		have := map[string]bool{}
		for _, ev := range state {
			have[ev.Type.Type+"|"+ev.GetStateKey()] = true
		}
		for _, k := range []string{"m.room.create|", "m.room.power_levels|", "m.room.join_rules|",
			"m.room.history_visibility|", "m.room.name|", "m.room.topic|", "m.room.member|" + alice.UserID.String()} {
			if !have[k] {
				t.Errorf("room state lacks %s", k)
			}
		}
		var missing map[string]any
		err = alice.StateEvent(ctx, room, event.Type{Type: "com.example.absent", Class: event.StateEventType}, "", &missing)
		checkErr(t, "get absent state", err, notFound)
	})

	t.Run("alias from createRoom", func(t *testing.T) {
		res, err := alice.ResolveAlias(ctx, id.RoomAlias("#flow:"+serverName))
		must(t, "resolve #flow", err)
		if res.RoomID != room {
			t.Errorf("#flow resolves to %s, want %s", res.RoomID, room)
		}
	})

	// Invite bob; he sees the invite in /sync and joins.
	_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: bob.UserID})
	must(t, "invite bob", err)
	bobSync := newSyncer(bob)
	bobSync.until(t, waitTimeout, func() error {
		if !bobSync.invite[room] {
			return fmt.Errorf("bob has no invite to %s in /sync", room)
		}
		return nil
	})
	_, err = bob.JoinRoomByID(ctx, room)
	must(t, "bob joins", err)

	t.Run("members", func(t *testing.T) {
		jm, err := alice.JoinedMembers(ctx, room)
		must(t, "joined_members", err)
		if len(jm.Joined) != 2 {
			t.Errorf("joined_members = %v, want alice and bob", jm.Joined)
		}
		for _, u := range []id.UserID{alice.UserID, bob.UserID} {
			if _, ok := jm.Joined[u]; !ok {
				t.Errorf("joined_members lacks %s", u)
			}
		}
		members, err := bob.Members(ctx, room)
		must(t, "members", err)
		got := map[string]string{}
		for _, ev := range members.Chunk {
			got[ev.GetStateKey()] = membership(ev)
		}
		if got[alice.UserID.String()] != "join" || got[bob.UserID.String()] != "join" {
			t.Errorf("members = %v, want alice and bob joined", got)
		}
		jr, err := bob.JoinedRooms(ctx)
		must(t, "joined_rooms", err)
		if !slices.Contains(jr.JoinedRooms, room) {
			t.Errorf("bob's joined_rooms %v lacks %s", jr.JoinedRooms, room)
		}
	})

	// Ten messages, received by bob through /sync in order.
	var sent []id.EventID
	for i := range 10 {
		sent = append(sent, sendText(t, alice, room, fmt.Sprintf("msg-%d", i)))
	}
	bobSync.until(t, waitTimeout, func() error {
		if got := bobSync.messages(room, "msg-"); len(got) < len(sent) {
			return fmt.Errorf("bob synced %d of %d messages", len(got), len(sent))
		}
		return nil
	})
	if got := ids(bobSync.messages(room, "msg-")); !slices.Equal(got, sent) {
		t.Errorf("bob's /sync timeline = %v, want %v", got, sent)
	}
	if d := bobSync.duplicates(); len(d) > 0 {
		t.Errorf("bob's /sync delivered events twice: %v", d)
	}
	for _, ev := range bobSync.messages(room, "msg-") {
		if ev.Sender != alice.UserID {
			t.Errorf("event %s sender %s, want %s", ev.ID, ev.Sender, alice.UserID)
		}
	}

	t.Run("messages backwards", func(t *testing.T) {
		var got []id.EventID
		token := ""
		for page := 0; ; page++ {
			resp, err := bob.Messages(ctx, room, token, "", mautrix.DirectionBackward, nil, 4)
			must(t, "messages dir=b", err)
			if len(resp.Chunk) > 4 {
				t.Fatalf("page %d: %d events, limit 4", page, len(resp.Chunk))
			}
			if page == 0 && (len(resp.Chunk) != 4 || resp.Chunk[0].ID != sent[9] || resp.Chunk[3].ID != sent[6]) {
				t.Errorf("first backward page = %v, want msg-9..msg-6", ids(resp.Chunk))
			}
			for _, ev := range filterMessages(resp.Chunk, "msg-") {
				got = append(got, ev.ID)
			}
			if len(resp.Chunk) == 0 || resp.End == "" {
				break
			}
			if page > 50 {
				t.Fatal("backward pagination does not end")
			}
			token = resp.End
		}
		if got = reversed(got); !slices.Equal(got, sent) {
			t.Errorf("backward pagination = %v, want %v", got, sent)
		}
	})

	t.Run("messages forwards", func(t *testing.T) {
		var got []id.EventID
		token := ""
		for page := 0; ; page++ {
			resp, err := bob.Messages(ctx, room, token, "", mautrix.DirectionForward, nil, 4)
			must(t, "messages dir=f", err)
			if len(resp.Chunk) > 4 {
				t.Fatalf("page %d: %d events, limit 4", page, len(resp.Chunk))
			}
			if page == 0 && len(resp.Chunk) > 0 && resp.Chunk[0].Type != event.StateCreate {
				t.Errorf("forward pagination starts with %s, want m.room.create", resp.Chunk[0].Type.Type)
			}
			for _, ev := range filterMessages(resp.Chunk, "msg-") {
				got = append(got, ev.ID)
			}
			if len(resp.Chunk) == 0 || resp.End == "" {
				break
			}
			if page > 50 {
				t.Fatal("forward pagination does not end")
			}
			token = resp.End
		}
		if !slices.Equal(got, sent) {
			t.Errorf("forward pagination = %v, want %v", got, sent)
		}
	})

	t.Run("context", func(t *testing.T) {
		resp, err := bob.Context(ctx, room, sent[5], nil, 6)
		must(t, "context", err)
		if resp.Event == nil || resp.Event.ID != sent[5] || body(resp.Event) != "msg-5" {
			t.Fatalf("context event = %+v, want msg-5", resp.Event)
		}
		if n := len(resp.EventsBefore) + len(resp.EventsAfter); n > 6 {
			t.Errorf("context returned %d surrounding events, limit 6", n)
		}
		if len(resp.EventsBefore) == 0 || resp.EventsBefore[0].ID != sent[4] {
			t.Errorf("events_before = %v, want msg-4 first (reverse-chronological)", ids(resp.EventsBefore))
		}
		if len(resp.EventsAfter) == 0 || resp.EventsAfter[0].ID != sent[6] {
			t.Errorf("events_after = %v, want msg-6 first", ids(resp.EventsAfter))
		}
		if resp.Start == "" || resp.End == "" {
			t.Errorf("context lacks start/end tokens: %q %q", resp.Start, resp.End)
		}
	})

	t.Run("event by id", func(t *testing.T) {
		ev, err := bob.GetEvent(ctx, room, sent[3])
		must(t, "get event", err)
		if ev.ID != sent[3] || ev.Sender != alice.UserID || ev.RoomID != room ||
			ev.Type != event.EventMessage || body(ev) != "msg-3" || ev.Timestamp == 0 {
			t.Errorf("event = %s", jsonString(ev))
		}
		_, err = bob.GetEvent(ctx, room, id.EventID("$doesnotexist"))
		checkErr(t, "get unknown event", err, notFound)
	})

	t.Run("custom state", func(t *testing.T) {
		typ := event.Type{Type: "com.example.flow", Class: event.StateEventType}
		put, err := alice.SendStateEvent(ctx, room, typ, "k1", map[string]any{"v": 1})
		must(t, "put state", err)
		var got map[string]any
		must(t, "get state", bob.StateEvent(ctx, room, typ, "k1", &got))
		if got["v"] != float64(1) {
			t.Errorf("state content = %v, want v=1", got)
		}
		_, err = alice.SendStateEvent(ctx, room, typ, "k1", map[string]any{"v": 2})
		must(t, "overwrite state", err)
		must(t, "get state", bob.StateEvent(ctx, room, typ, "k1", &got))
		if got["v"] != float64(2) {
			t.Errorf("state content after overwrite = %v, want v=2", got)
		}
		ev, err := bob.GetEvent(ctx, room, put.EventID)
		must(t, "get state event by id", err)
		if ev.GetStateKey() != "k1" || ev.Type.Type != typ.Type {
			t.Errorf("state event = %s", jsonString(ev))
		}
		var topic struct{ Topic string }
		_, err = alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "new topic"})
		must(t, "set topic", err)
		must(t, "get topic", bob.StateEvent(ctx, room, event.StateTopic, "", &topic))
		if topic.Topic != "new topic" {
			t.Errorf("topic = %q, want new topic", topic.Topic)
		}
	})

	t.Run("aliases", func(t *testing.T) {
		alias := id.RoomAlias("#flow-extra:" + serverName)
		_, err := alice.CreateAlias(ctx, alias, room)
		must(t, "put alias", err)
		res, err := bob.ResolveAlias(ctx, alias)
		must(t, "get alias", err)
		if res.RoomID != room {
			t.Errorf("alias resolves to %s, want %s", res.RoomID, room)
		}
		_, err = alice.CreateAlias(ctx, alias, room)
		if err == nil {
			t.Errorf("put existing alias succeeded, want 409")
		} else {
			var he mautrix.HTTPError
			if errors.As(err, &he) && he.Response != nil && he.Response.StatusCode != 409 {
				t.Errorf("put existing alias: %v, want HTTP 409 (directory.yaml)", err)
			}
		}
		list, err := bob.GetAliases(ctx, room)
		must(t, "get room aliases", err)
		for _, a := range []id.RoomAlias{alias, id.RoomAlias("#flow:" + serverName)} {
			if !slices.Contains(list.Aliases, a) {
				t.Errorf("room aliases %v lack %s", list.Aliases, a)
			}
		}
		_, err = alice.DeleteAlias(ctx, alias)
		must(t, "delete alias", err)
		_, err = bob.ResolveAlias(ctx, alias)
		checkErr(t, "get deleted alias", err, notFound)
		_, err = alice.DeleteAlias(ctx, alias)
		checkErr(t, "delete deleted alias", err, notFound)
		_, err = alice.JoinRoom(ctx, "#flow:"+serverName, nil)
		must(t, "join own room by alias", err)
	})

	t.Run("kick", func(t *testing.T) {
		_, err := alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID})
		must(t, "invite carol", err)
		_, err = carol.JoinRoomByID(ctx, room)
		must(t, "carol joins", err)
		_, err = alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID, Reason: "test kick"})
		must(t, "kick carol", err)
		var m map[string]any
		must(t, "get carol's member event", alice.StateEvent(ctx, room, event.StateMember, carol.UserID.String(), &m))
		if m["membership"] != "leave" || m["reason"] != "test kick" {
			t.Errorf("carol's membership after kick = %v, want leave with reason", m)
		}
		jm, err := alice.JoinedMembers(ctx, room)
		must(t, "joined_members", err)
		if _, ok := jm.Joined[carol.UserID]; ok {
			t.Errorf("kicked carol still in joined_members")
		}
		_, err = carol.SendMessageEvent(ctx, room, event.EventMessage, text("after kick"))
		checkErr(t, "kicked user sends", err, forbidden)
		_, err = carol.JoinRoomByID(ctx, room)
		checkErr(t, "kicked user rejoins invite-only room", err, forbidden)
	})

	t.Run("ban and unban", func(t *testing.T) {
		_, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "test ban"})
		must(t, "ban carol", err)
		var m map[string]any
		must(t, "get carol's member event", alice.StateEvent(ctx, room, event.StateMember, carol.UserID.String(), &m))
		if m["membership"] != "ban" {
			t.Errorf("carol's membership after ban = %v, want ban", m)
		}
		_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID})
		checkErr(t, "invite banned user", err, forbidden)
		_, err = carol.JoinRoomByID(ctx, room)
		checkErr(t, "banned user joins", err, forbidden)
		_, err = alice.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carol.UserID})
		must(t, "unban carol", err)
		must(t, "get carol's member event", alice.StateEvent(ctx, room, event.StateMember, carol.UserID.String(), &m))
		if m["membership"] != "leave" {
			t.Errorf("carol's membership after unban = %v, want leave", m)
		}
		_, err = alice.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: carol.UserID})
		must(t, "invite unbanned carol", err)
		_, err = carol.JoinRoomByID(ctx, room)
		must(t, "unbanned carol joins", err)
	})

	t.Run("leave and forget", func(t *testing.T) {
		_, err := bob.ForgetRoom(ctx, room)
		checkErr(t, "forget a joined room", err, want{400, "*"}) // leaving.yaml: 400, example M_UNKNOWN
		_, err = bob.LeaveRoom(ctx, room)
		must(t, "bob leaves", err)
		jr, err := bob.JoinedRooms(ctx)
		must(t, "joined_rooms", err)
		if slices.Contains(jr.JoinedRooms, room) {
			t.Errorf("bob's joined_rooms still has %s after leave", room)
		}
		bobSync.until(t, waitTimeout, func() error {
			if !bobSync.leave[room] {
				return fmt.Errorf("room %s not in bob's rooms.leave", room)
			}
			return nil
		})
		_, err = bob.SendMessageEvent(ctx, room, event.EventMessage, text("after leave"))
		checkErr(t, "send after leave", err, forbidden)
		_, err = bob.ForgetRoom(ctx, room)
		must(t, "forget", err)
		// A fresh sync of a user who forgot the room does not list it.
		fresh := newSyncer(bob)
		must(t, "initial sync after forget", fresh.once(ctx))
		if _, ok := fresh.rooms[room]; ok || fresh.leave[room] || fresh.invite[room] {
			t.Errorf("forgotten room %s still in bob's initial sync", room)
		}
	})
}
