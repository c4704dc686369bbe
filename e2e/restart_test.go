package e2e

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// sendTxn sends an m.text message with an explicit transaction ID.
func sendTxn(t testing.TB, cli *mautrix.Client, room id.RoomID, txn, b string) (id.EventID, error) {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), room, event.EventMessage, text(b), mautrix.ReqSendEvent{TransactionID: txn})
	if err != nil {
		return "", err
	}
	return resp.EventID, nil
}

// countBodies returns how many m.room.message events in room have exactly body b.
func countBodies(t testing.TB, cli *mautrix.Client, room id.RoomID, b string) int {
	t.Helper()
	all, err := allMessages(t.Context(), cli, room, 100)
	must(t, "read room", err)
	n := 0
	for _, ev := range all {
		if ev.Type == event.EventMessage && body(ev) == b {
			n++
		}
	}
	return n
}

// TestTransactionIDs checks idempotent sends within one run: a retransmission
// (same device, same path) returns the original event_id and creates
// nothing, while another device, user or room makes a new event.
// Spec: client-server-api/_index.md, "Transaction identifiers".
func TestTransactionIDs(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)

	first, err := sendTxn(t, alice, room, "txn-1", "txn-once")
	must(t, "send with txn-1", err)
	again, err := sendTxn(t, alice, room, "txn-1", "txn-once")
	must(t, "resend txn-1", err)
	if again != first {
		t.Errorf("retransmission of txn-1 returned %s, want %s", again, first)
	}

	// Many retransmissions at once still make one event.
	var wg sync.WaitGroup
	got := make([]id.EventID, 6)
	errs := make([]error, 6)
	for i := range got {
		wg.Go(func() { got[i], errs[i] = sendTxn(t, alice, room, "txn-race", "txn-race") })
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil {
			t.Errorf("concurrent retransmission %d: %v", i, errs[i])
		} else if got[i] != got[0] {
			t.Errorf("concurrent retransmissions returned different event IDs: %v", got)
			break
		}
	}

	// Same txn ID, different scope: a new event each time.
	other, err := login(t, srv, "alice", password("alice"))
	must(t, "alice logs in on a second device", err)
	byOtherDevice, err := sendTxn(t, other, room, "txn-1", "txn-once")
	must(t, "send txn-1 from alice's second device", err)
	byBob, err := sendTxn(t, bob, room, "txn-1", "txn-once")
	must(t, "send txn-1 as bob", err)
	room2, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	must(t, "create second room", err)
	inRoom2, err := sendTxn(t, alice, room2.RoomID, "txn-1", "txn-once")
	must(t, "send txn-1 into another room", err)
	all := []id.EventID{first, byOtherDevice, byBob, inRoom2}
	for i, a := range all {
		if slices.Index(all, a) != i {
			t.Errorf("distinct transactions share event IDs: first=%s otherDevice=%s bob=%s otherRoom=%s",
				first, byOtherDevice, byBob, inRoom2)
			break
		}
	}

	if n := countBodies(t, alice, room, "txn-once"); n != 3 {
		t.Errorf("room has %d txn-once events, want 3 (alice, alice's second device, bob)", n)
	}
	if n := countBodies(t, alice, room, "txn-race"); n != 1 {
		t.Errorf("room has %d txn-race events after concurrent retransmissions, want 1", n)
	}
}

// TestRestartKeepsData stops the server with SIGTERM, starts it on the same
// data directory and checks that rooms, messages, access tokens, account
// data, media, aliases, sync tokens and transaction IDs survived.
func TestRestartKeepsData(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)

	var sent []id.EventID
	for i := range 5 {
		sent = append(sent, sendText(t, alice, room, fmt.Sprintf("before-%d", i)))
	}
	txnEvent, err := sendTxn(t, alice, room, "restart-txn", "txn-across-restart")
	must(t, "send with txn", err)
	must(t, "set account data", alice.SetAccountData(ctx, "com.example.e2e", map[string]any{"n": 42}))
	must(t, "set room account data", alice.SetRoomAccountData(ctx, room, "com.example.room", map[string]any{"m": "x"}))
	blob := []byte("bytes that must survive a restart")
	up, err := alice.UploadBytes(ctx, blob, "text/plain")
	must(t, "upload", err)
	alias := id.RoomAlias("#restart:" + serverName)
	_, err = alice.CreateAlias(ctx, alias, room)
	must(t, "create alias", err)

	bobSync := newSyncer(bob)
	bobSync.until(t, waitTimeout, func() error {
		if n := len(bobSync.messages(room, "")); n < 6 {
			return fmt.Errorf("bob synced %d of 6 messages", n)
		}
		return nil
	})

	srv.restart(t)

	for _, c := range []*mautrix.Client{alice, bob} {
		who, err := c.Whoami(ctx)
		must(t, "whoami with a pre-restart token", err)
		if who.UserID != c.UserID || who.DeviceID != c.DeviceID {
			t.Errorf("whoami = %s/%s, want %s/%s", who.UserID, who.DeviceID, c.UserID, c.DeviceID)
		}
	}

	jr, err := bob.JoinedRooms(ctx)
	must(t, "joined_rooms", err)
	if !slices.Contains(jr.JoinedRooms, room) {
		t.Errorf("bob's joined_rooms %v lacks %s after restart", jr.JoinedRooms, room)
	}
	var name struct{ Name string }
	must(t, "get room name", bob.StateEvent(ctx, room, event.StateRoomName, "", &name))
	if name.Name != "two" {
		t.Errorf("room name after restart = %q, want two", name.Name)
	}

	all, err := allMessages(ctx, bob, room, 50)
	must(t, "read room after restart", err)
	if got := ids(filterMessages(all, "before-")); !slices.Equal(got, sent) {
		t.Errorf("messages after restart = %v, want %v", got, sent)
	}
	ev, err := bob.GetEvent(ctx, room, txnEvent)
	must(t, "get event by id after restart", err)
	if body(ev) != "txn-across-restart" {
		t.Errorf("event %s body %q after restart", txnEvent, body(ev))
	}

	again, err := sendTxn(t, alice, room, "restart-txn", "txn-across-restart")
	must(t, "resend txn after restart", err)
	if again != txnEvent {
		t.Errorf("retransmission after restart returned %s, want %s", again, txnEvent)
	}
	if n := countBodies(t, bob, room, "txn-across-restart"); n != 1 {
		t.Errorf("room has %d txn-across-restart events, want 1", n)
	}

	var ad map[string]any
	must(t, "get account data", alice.GetAccountData(ctx, "com.example.e2e", &ad))
	if ad["n"] != float64(42) {
		t.Errorf("account data after restart = %v, want n=42", ad)
	}
	var rad map[string]any
	must(t, "get room account data", alice.GetRoomAccountData(ctx, room, "com.example.room", &rad))
	if rad["m"] != "x" {
		t.Errorf("room account data after restart = %v, want m=x", rad)
	}

	got, err := bob.DownloadBytes(ctx, up.ContentURI)
	must(t, "download after restart", err)
	if string(got) != string(blob) {
		t.Errorf("media after restart = %q, want %q", got, blob)
	}
	res, err := bob.ResolveAlias(ctx, alias)
	must(t, "resolve alias after restart", err)
	if res.RoomID != room {
		t.Errorf("alias after restart resolves to %s, want %s", res.RoomID, room)
	}

	// The pre-restart sync token goes on from where it was: new events
	// arrive, old ones are not delivered again.
	after := sendText(t, alice, room, "after-restart")
	bobSync.until(t, waitTimeout, func() error {
		if len(bobSync.messages(room, "after-restart")) == 0 {
			return fmt.Errorf("bob's incremental sync from a pre-restart token has not delivered %s", after)
		}
		return nil
	})
	if d := bobSync.duplicates(); len(d) > 0 {
		t.Errorf("sync from a pre-restart token delivered events again: %v", d)
	}

	// Passwords, registration and room creation still work, and new IDs do
	// not collide with old ones.
	_, err = login(t, srv, "alice", password("alice"))
	must(t, "password login after restart", err)
	carol := newUser(t, srv, "carol")
	r2, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create room after restart", err)
	if r2.RoomID == room {
		t.Errorf("new room reuses room ID %s", room)
	}
	_, err = alice.JoinRoomByID(ctx, r2.RoomID)
	must(t, "join new room", err)
	evs := []id.EventID{sendText(t, carol, r2.RoomID, "new-room"), after}
	evs = append(evs, sent...)
	seen := map[id.EventID]bool{}
	for _, e := range evs {
		if seen[e] {
			t.Errorf("event ID %s used twice", e)
		}
		seen[e] = true
	}
}
