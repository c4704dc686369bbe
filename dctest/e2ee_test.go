//go:build goolm

package dctest

import (
	"context"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/e2ee"
)

// TestEncryptedChatThroughDataCenterLoss: alice at dc1 and bob at dc2 use
// a stock client library's end-to-end encryption (mautrix-go's
// OlmMachine, pure-Go Olm), verify each other's devices and chat
// encrypted both ways. Then, while bob is not syncing, alice starts a new
// Megolm session (its key goes to bob as an Olm to-device message) and
// bob's data center is SIGKILLed: bob's client fails over, receives the
// key exactly once and decrypts; his reply, with a new session of his own
// sent while dc2 is down, reaches alice and decrypts. No to-device message
// is lost or delivered twice.
func TestEncryptedChatThroughDataCenterLoss(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	alice := c.cryptoPeer(ctx, "crypto-alice", "dc1")
	bob := c.cryptoPeer(ctx, "crypto-bob", "dc2")
	resp, err := alice.Client.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Invite: []id.UserID{bob.Client.UserID},
		InitialState: []*event.Event{{Type: event.StateEncryption, StateKey: new(string),
			Content: event.Content{Parsed: &event.EncryptionEventContent{Algorithm: id.AlgorithmMegolmV1}}}}})
	if err != nil {
		t.Fatalf("create the encrypted room: %v", err)
	}
	room := resp.RoomID
	if _, err := bob.Client.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("join: %v", err)
	}
	actx, stopAlice := context.WithCancel(ctx)
	defer func() { stopAlice(); alice.Stop() }()
	alice.Start(actx)
	bctx, stopBob := context.WithCancel(ctx)
	bob.Start(bctx)
	check := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	check("alice verifies bob", alice.Trust(ctx, bob))
	check("bob verifies alice", bob.Trust(ctx, alice))
	check("alice sends", alice.Send(ctx, room, "before the fire"))
	check("bob decrypts", bob.WaitFor(ctx, room, "before the fire"))
	check("bob replies", bob.Send(ctx, room, "all fine here"))
	check("alice decrypts", alice.WaitFor(ctx, room, "all fine here"))

	// Bob's phone is in his pocket: no sync. Alice starts a new session;
	// its key waits for bob's device as a to-device message.
	stopBob()
	bob.Stop()
	check("alice drops her session", alice.Mach.CryptoStore.RemoveOutboundGroupSession(ctx, room))
	check("alice sends with a new session", alice.Send(ctx, room, "new session while bob is away"))
	c.signal("dc2", syscall.SIGKILL)
	killed := time.Now()
	t.Logf("SIGKILL dc2 with the room key pending for bob")

	bctx, stopBob = context.WithCancel(ctx)
	defer func() { stopBob(); bob.Stop() }()
	bob.Start(bctx)
	check("bob decrypts after his data center died", bob.WaitFor(ctx, room, "new session while bob is away"))
	t.Logf("bob decrypted %.2f s after the kill (his client failed over)", time.Since(killed).Seconds())
	check("bob drops his session", bob.Mach.CryptoStore.RemoveOutboundGroupSession(ctx, room))
	check("bob replies with a new session while dc2 is down", bob.Send(ctx, room, "still here, from another data center"))
	check("alice decrypts", alice.WaitFor(ctx, room, "still here, from another data center"))

	if n := bob.ToDeviceReceived(alice.Client.UserID, event.ToDeviceEncrypted); n != 2 {
		t.Errorf("bob got %d encrypted to-device messages from alice, want 2 (one per Megolm session)", n)
	}
	if n := alice.ToDeviceReceived(bob.Client.UserID, event.ToDeviceEncrypted); n != 2 {
		t.Errorf("alice got %d encrypted to-device messages from bob, want 2", n)
	}
	e2ee.CheckClean(t, alice, bob)
}

// cryptoPeer registers name at data center dc and returns an encrypting
// client that starts there and fails over to the others.
func (c *cluster) cryptoPeer(ctx context.Context, name, dc string) *e2ee.Peer {
	c.t.Helper()
	uid, tok := c.register(name, dc)
	cli := c.client(uid, tok, dc)
	who, err := cli.Whoami(ctx)
	if err != nil {
		c.t.Fatalf("whoami %s: %v", name, err)
	}
	cli.DeviceID = who.DeviceID
	p, err := e2ee.NewPeer(ctx, cli)
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}
