//go:build goolm

package e2e

import (
	"context"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/e2ee"
)

// TestEncryptedChat: two stock-library clients (mautrix-go's OlmMachine,
// pure-Go Olm) upload keys, verify each other's devices, and exchange
// Megolm-encrypted messages both ways through planb: device keys, key
// claims, Olm to-device room keys and encrypted room events all work.
func TestEncryptedChat(t *testing.T) {
	srv := startServer(t)
	ctx := ctxTimeout(t, 2*time.Minute)
	alice, bob := cryptoPeer(t, srv, "e2ee-alice"), cryptoPeer(t, srv, "e2ee-bob")
	room := encryptedRoom(t, ctx, alice.Client, bob.Client)
	sctx, stop := context.WithCancel(ctx)
	alice.Start(sctx)
	bob.Start(sctx)
	defer func() { stop(); alice.Stop(); bob.Stop() }()
	must(t, "alice verifies bob", alice.Trust(ctx, bob))
	must(t, "bob verifies alice", bob.Trust(ctx, alice))

	must(t, "alice sends", alice.Send(ctx, room, "hello bob, this is secret"))
	must(t, "bob decrypts", bob.WaitFor(ctx, room, "hello bob, this is secret"))
	must(t, "bob replies", bob.Send(ctx, room, "hi alice, secret too"))
	must(t, "alice decrypts", alice.WaitFor(ctx, room, "hi alice, secret too"))
	must(t, "alice sends again", alice.Send(ctx, room, "second message, same session"))
	must(t, "bob decrypts again", bob.WaitFor(ctx, room, "second message, same session"))
	// Each side got the other's room key as an Olm-encrypted to-device
	// message: the one session each sent with.
	if n := bob.ToDeviceReceived(alice.Client.UserID, event.ToDeviceEncrypted); n != 1 {
		t.Errorf("bob got %d encrypted to-device messages from alice, want 1 (her one Megolm session)", n)
	}
	if n := alice.ToDeviceReceived(bob.Client.UserID, event.ToDeviceEncrypted); n != 1 {
		t.Errorf("alice got %d encrypted to-device messages from bob, want 1", n)
	}
	for _, p := range []*e2ee.Peer{alice, bob} {
		if f := p.Failures(); len(f) > 0 {
			t.Errorf("%s could not decrypt: %v", p.Client.UserID, f)
		}
		if d := p.Duplicates(); len(d) > 0 {
			t.Errorf("%s got to-device messages twice: %v", p.Client.UserID, d)
		}
	}
}

// cryptoPeer registers localpart and sets up its Olm machine.
func cryptoPeer(t *testing.T, srv *server, localpart string) *e2ee.Peer {
	t.Helper()
	cli := newUser(t, srv, localpart)
	cli.Client.Timeout = 0 // long-polling syncs
	p, err := e2ee.NewPeer(t.Context(), cli)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// encryptedRoom has a create a private encrypted room and b join it.
func encryptedRoom(t *testing.T, ctx context.Context, a, b *mautrix.Client) id.RoomID {
	t.Helper()
	resp, err := a.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{b.UserID},
		InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatalf("create the encrypted room: %v", err)
	}
	if _, err := b.JoinRoomByID(ctx, resp.RoomID); err != nil {
		t.Fatalf("join the encrypted room: %v", err)
	}
	return resp.RoomID
}
