package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// twoInRoom registers alice and bob and puts both into a private room
// created by alice. It returns the clients, the room and bob's syncer,
// which has seen the invite.
func twoInRoom(t *testing.T, srv *server) (alice, bob *mautrix.Client, room id.RoomID) {
	t.Helper()
	ctx := t.Context()
	alice = newUser(t, srv, "alice")
	bob = newUser(t, srv, "bob")
	resp, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "two",
		Invite: []id.UserID{bob.UserID}})
	must(t, "create room with invite", err)
	_, err = bob.JoinRoomByID(ctx, resp.RoomID)
	must(t, "bob joins", err)
	return alice, bob, resp.RoomID
}

// TestReadReceipts: a read receipt reaches the other member through the
// ephemeral section of /sync, and the reader's unread notification count
// falls to zero once it has read the latest event.
func TestReadReceipts(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)
	aliceSync, bobSync := newSyncer(alice), newSyncer(bob)
	must(t, "alice initial sync", aliceSync.once(ctx))
	must(t, "bob initial sync", bobSync.once(ctx))

	var last id.EventID
	for i := range 3 {
		last = sendText(t, alice, room, fmt.Sprintf("unread-%d", i))
	}
	// The default push rules notify for every message in a one-to-one room.
	bobSync.until(t, waitTimeout, func() error {
		v := bobSync.rooms[room]
		if v == nil || len(filterMessages(v.timeline, "unread-")) < 3 {
			return fmt.Errorf("bob has not synced the 3 messages yet")
		}
		if v.unread == nil || v.unread.NotificationCount != 3 {
			return fmt.Errorf("bob's unread_notifications = %+v, want notification_count 3", v.unread)
		}
		return nil
	})

	must(t, "bob sends m.read receipt", bob.SendReceipt(ctx, room, last, event.ReceiptTypeRead, nil))

	aliceSync.until(t, waitTimeout, func() error {
		return hasReceipt(aliceSync.rooms[room], last, bob.UserID)
	})
	bobSync.until(t, waitTimeout, func() error {
		v := bobSync.rooms[room]
		if v.unread == nil || v.unread.NotificationCount != 0 {
			return fmt.Errorf("bob's unread_notifications = %+v after his receipt, want notification_count 0", v.unread)
		}
		return nil
	})

	// A new message counts again; alice's own messages never count for her.
	sendText(t, alice, room, "unread-again")
	bobSync.until(t, waitTimeout, func() error {
		v := bobSync.rooms[room]
		if v.unread == nil || v.unread.NotificationCount != 1 {
			return fmt.Errorf("bob's unread_notifications = %+v, want notification_count 1", v.unread)
		}
		return nil
	})
	aliceSync.until(t, waitTimeout, func() error {
		v := aliceSync.rooms[room]
		if len(filterMessages(v.timeline, "unread-again")) == 0 {
			return fmt.Errorf("alice has not synced her own message")
		}
		if v.unread != nil && v.unread.NotificationCount != 0 {
			return fmt.Errorf("alice's unread_notifications = %+v, want 0 for her own messages", v.unread)
		}
		return nil
	})
}

// hasReceipt returns nil when v's ephemeral events hold an m.read receipt
// by user for evID.
func hasReceipt(v *roomView, evID id.EventID, user id.UserID) error {
	if v == nil {
		return fmt.Errorf("room not synced")
	}
	for _, ev := range v.ephemeral {
		if ev.Type != event.EphemeralEventReceipt {
			continue
		}
		byType, _ := ev.Content.Raw[evID.String()].(map[string]any)
		readers, _ := byType["m.read"].(map[string]any)
		if r, ok := readers[user.String()].(map[string]any); ok {
			if ts, _ := r["ts"].(float64); ts <= 0 {
				return fmt.Errorf("receipt of %s for %s has no ts: %v", user, evID, r)
			}
			return nil
		}
	}
	return fmt.Errorf("no m.read receipt of %s for %s among %d ephemeral events", user, evID, len(v.ephemeral))
}

// TestTyping: a typing notification reaches the other member through the
// ephemeral section of /sync, and so does its end.
func TestTyping(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)
	aliceSync := newSyncer(alice)
	must(t, "alice initial sync", aliceSync.once(ctx))

	_, err := bob.UserTyping(ctx, room, true, 30*time.Second)
	must(t, "bob starts typing", err)
	aliceSync.until(t, waitTimeout, func() error {
		if users, ok := lastTyping(aliceSync.rooms[room]); !ok || !slices.Contains(users, bob.UserID) {
			return fmt.Errorf("alice's last m.typing = %v, want bob", users)
		}
		return nil
	})

	_, err = bob.UserTyping(ctx, room, false, 0)
	must(t, "bob stops typing", err)
	aliceSync.until(t, waitTimeout, func() error {
		if users, ok := lastTyping(aliceSync.rooms[room]); !ok || slices.Contains(users, bob.UserID) {
			return fmt.Errorf("alice's last m.typing = %v, want bob gone", users)
		}
		return nil
	})

	// One may only set one's own typing state.
	u := alice.BuildClientURL("v3", "rooms", room, "typing", alice.UserID)
	_, err = bob.MakeRequest(ctx, "PUT", u, map[string]any{"typing": true, "timeout": 1000}, nil)
	checkErr(t, "bob sets alice's typing state", err, forbidden)
}

// lastTyping returns the user_ids of the latest m.typing event in v.
func lastTyping(v *roomView) ([]id.UserID, bool) {
	if v == nil {
		return nil, false
	}
	for _, ev := range slices.Backward(v.ephemeral) {
		if ev.Type != event.EphemeralEventTyping {
			continue
		}
		raw, _ := ev.Content.Raw["user_ids"].([]any)
		users := []id.UserID{}
		for _, u := range raw {
			s, _ := u.(string)
			users = append(users, id.UserID(s))
		}
		return users, true
	}
	return nil, false
}
