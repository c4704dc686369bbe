package e2e

import (
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestAuthorisation checks that room access follows membership and power
// levels: an outsider can neither read nor write a private room, a member
// with power 0 cannot change power levels, state or membership of others,
// and a banned user cannot come back.
func TestAuthorisation(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")   // creator, power 100
	bob := newUser(t, srv, "bob")       // member, power 0
	carol := newUser(t, srv, "carol")   // member who gets banned
	eve := newUser(t, srv, "eve")       // outsider
	mallory := newUser(t, srv, "mallo") // never invited

	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "secret",
		Invite: []id.UserID{bob.UserID, carol.UserID}})
	must(t, "create room", err)
	room := created.RoomID
	for _, u := range []*mautrix.Client{bob, carol} {
		_, err := u.JoinRoomByID(ctx, room)
		must(t, u.UserID.String()+" joins", err)
	}
	secret := sendText(t, alice, room, "secret message")

	t.Run("outsider", func(t *testing.T) {
		// Spec: message_pagination.yaml, rooms.yaml (state, members,
		// joined_members: 403; event: 404 allowed to hide existence),
		// room_send.yaml, room_state.yaml, inviting.yaml, joining.yaml.
		_, err := eve.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 10)
		checkErr(t, "outsider GET /messages", err, forbidden)
		_, err = eve.StateAsArray(ctx, room)
		checkErr(t, "outsider GET /state", err, forbidden)
		var name map[string]any
		err = eve.StateEvent(ctx, room, event.StateRoomName, "", &name)
		checkErr(t, "outsider GET /state/m.room.name", err, forbidden)
		_, err = eve.GetEvent(ctx, room, secret)
		checkErr(t, "outsider GET /event (404: events cannot be probed)", err, notFound)
		_, err = eve.Context(ctx, room, secret, nil, 5)
		checkErr(t, "outsider GET /context", err, forbidden, notFound)
		_, err = eve.Members(ctx, room)
		checkErr(t, "outsider GET /members", err, forbidden)
		_, err = eve.JoinedMembers(ctx, room)
		checkErr(t, "outsider GET /joined_members", err, forbidden)
		_, err = eve.SendMessageEvent(ctx, room, event.EventMessage, text("let me in"))
		checkErr(t, "outsider sends", err, forbidden)
		_, err = eve.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "pwned"})
		checkErr(t, "outsider sets state", err, forbidden)
		_, err = eve.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: mallory.UserID})
		checkErr(t, "outsider invites", err, forbidden)
		_, err = eve.JoinRoomByID(ctx, room)
		checkErr(t, "outsider joins invite-only room", err, forbidden)
		_, err = eve.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID})
		checkErr(t, "outsider kicks", err, forbidden)
		// Nothing of that reached the room.
		var topic map[string]any
		if err := alice.StateEvent(ctx, room, event.StateTopic, "", &topic); err == nil && topic["topic"] == "pwned" {
			t.Errorf("outsider changed the topic")
		}
		jm, err := alice.JoinedMembers(ctx, room)
		must(t, "joined_members", err)
		if _, ok := jm.Joined[eve.UserID]; ok {
			t.Errorf("outsider is joined")
		}
		members, err := alice.Members(ctx, room)
		must(t, "members", err)
		for _, ev := range members.Chunk {
			if ev.GetStateKey() == mallory.UserID.String() {
				t.Errorf("outsider's invite of %s landed: %s", mallory.UserID, membership(ev))
			}
		}
	})

	t.Run("power 0 member", func(t *testing.T) {
		var pl map[string]any
		must(t, "get power levels", bob.StateEvent(ctx, room, event.StatePowerLevels, "", &pl))
		users, _ := pl["users"].(map[string]any)
		if users == nil {
			users = map[string]any{}
			pl["users"] = users
		}
		users[bob.UserID.String()] = 100
		_, err := bob.SendStateEvent(ctx, room, event.StatePowerLevels, "", pl)
		checkErr(t, "power-0 member sets m.room.power_levels", err, forbidden)
		_, err = bob.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carol.UserID})
		checkErr(t, "power-0 member kicks", err, forbidden)
		_, err = bob.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID})
		checkErr(t, "power-0 member bans", err, forbidden)
		_, err = bob.SendStateEvent(ctx, room, event.StateRoomName, "", map[string]any{"name": "bob's room"})
		checkErr(t, "power-0 member sets m.room.name (state_default 50)", err, forbidden)
		// Power 0 is enough for messages.
		sendText(t, bob, room, "bob may talk")

		must(t, "get power levels", alice.StateEvent(ctx, room, event.StatePowerLevels, "", &pl))
		if u, _ := pl["users"].(map[string]any); u[bob.UserID.String()] != nil {
			t.Errorf("bob's power level changed: %v", u)
		}
		jm, err := alice.JoinedMembers(ctx, room)
		must(t, "joined_members", err)
		if _, ok := jm.Joined[carol.UserID]; !ok {
			t.Errorf("carol was removed by a power-0 kick")
		}
	})

	t.Run("banned user", func(t *testing.T) {
		_, err := alice.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carol.UserID, Reason: "test"})
		must(t, "ban carol", err)
		_, err = carol.JoinRoomByID(ctx, room)
		checkErr(t, "banned user rejoins", err, forbidden)
		_, err = carol.SendMessageEvent(ctx, room, event.EventMessage, text("still here?"))
		checkErr(t, "banned user sends", err, forbidden)
		// Even in a public room a ban keeps one out.
		pub, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		must(t, "create public room", err)
		_, err = alice.BanUser(ctx, pub.RoomID, &mautrix.ReqBanUser{UserID: carol.UserID})
		must(t, "ban carol from the public room", err)
		_, err = carol.JoinRoomByID(ctx, pub.RoomID)
		checkErr(t, "banned user joins public room", err, forbidden)
		_, err = eve.JoinRoomByID(ctx, pub.RoomID)
		must(t, "anyone else joins the public room", err)
	})

	t.Run("kicked member cannot read new events", func(t *testing.T) {
		_, err := alice.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: bob.UserID})
		must(t, "kick bob", err)
		later := sendText(t, alice, room, "after bob left")
		_, err = bob.GetEvent(ctx, room, later)
		checkErr(t, "kicked member reads an event sent after the kick", err, forbidden, notFound)
		_, err = bob.SendMessageEvent(ctx, room, event.EventMessage, text("kicked"))
		checkErr(t, "kicked member sends", err, forbidden)
	})
}
