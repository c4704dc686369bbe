//go:build goolm

package e2e

import (
	"context"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto/backup"
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
	e2ee.CheckClean(t, alice, bob)
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

// TestCrossSigningAndKeyBackup: with a stock client library, both users
// set up cross-signing (keys in secret storage, own device signed), alice
// signs bob's master key, and then bob's device is cross-signed verified
// in alice's eyes; replacing a master key needs the password. Bob backs up
// his room keys; a new device of his restores them from the backup and
// decrypts the old messages.
func TestCrossSigningAndKeyBackup(t *testing.T) {
	srv := startServer(t)
	ctx := ctxTimeout(t, 2*time.Minute)
	alice, bob := cryptoPeer(t, srv, "xs-alice"), cryptoPeer(t, srv, "xs-bob")
	room := encryptedRoom(t, ctx, alice.Client, bob.Client)
	sctx, stop := context.WithCancel(ctx)
	alice.Start(sctx)
	bob.Start(sctx)
	defer func() { stop(); alice.Stop(); bob.Stop() }()
	must(t, "alice sends", alice.Send(ctx, room, "from before the backup"))
	must(t, "bob decrypts", bob.WaitFor(ctx, room, "from before the backup"))
	// From here on each machine is used by the test alone: mautrix's
	// in-memory crypto store does not guard its cross-signing maps against
	// a sync loop writing them at the same time (a data race under -race).
	stop()
	alice.Stop()
	bob.Stop()

	for _, p := range []*e2ee.Peer{alice, bob} {
		pw := password(p.Client.UserID.Localpart())
		_, _, err := p.Mach.GenerateAndUploadCrossSigningKeysWithPassword(ctx, pw, "")
		must(t, "cross-signing keys of "+string(p.Client.UserID), err)
		must(t, "sign own device", p.Mach.SignOwnDevice(ctx, p.Mach.OwnIdentity()))
		must(t, "sign own master key", p.Mach.SignOwnMasterKey(ctx))
	}
	_, err := alice.Mach.FetchKeys(ctx, []id.UserID{bob.Client.UserID}, true)
	must(t, "alice fetches bob's keys", err)
	bobKeys, err := alice.Mach.GetCrossSigningPublicKeys(ctx, bob.Client.UserID)
	if err != nil || bobKeys == nil {
		t.Fatalf("bob's cross-signing keys as alice sees them: %v, %v", bobKeys, err)
	}
	must(t, "alice signs bob", alice.Mach.SignUser(ctx, bob.Client.UserID, bobKeys.MasterKey))
	_, err = alice.Mach.FetchKeys(ctx, []id.UserID{bob.Client.UserID}, true)
	must(t, "alice fetches bob's keys again", err)
	dev, err := alice.Mach.GetOrFetchDevice(ctx, bob.Client.UserID, bob.Client.DeviceID)
	must(t, "bob's device", err)
	if trust := alice.Mach.ResolveTrust(dev); trust != id.TrustStateCrossSignedVerified {
		t.Errorf("alice's trust in bob's device = %s, want %s", trust, id.TrustStateCrossSignedVerified)
	}
	if _, _, err := alice.Mach.GenerateAndUploadCrossSigningKeysWithPassword(ctx, "not her password", ""); err == nil {
		t.Error("a new master key was accepted with a wrong password")
	}

	// Key backup: bob backs up, a new device of his restores.
	key, err := backup.NewMegolmBackupKey()
	must(t, "backup key", err)
	version, err := bob.CreateBackup(ctx, key)
	must(t, "bob backs up his room keys", err)
	info, err := bob.Client.GetKeyBackupLatestVersion(ctx)
	must(t, "latest backup version", err)
	if info.Version != version || info.Count != 1 || info.ETag == "" {
		t.Errorf("backup version %+v, want version %s with 1 key and an etag", info, version)
	}
	newDevice, err := login(t, srv, "xs-bob", password("xs-bob"))
	must(t, "bob logs in on a new device", err)
	restored, err := e2ee.NewPeer(ctx, newDevice)
	must(t, "the new device's olm machine", err)
	_, err = restored.Mach.DownloadAndStoreLatestKeyBackup(ctx, key)
	must(t, "restore from the backup", err)
	history, err := restored.History(ctx, room)
	must(t, "the new device decrypts the history", err)
	if !slices.Contains(history, "from before the backup") {
		t.Errorf("the new device decrypted %v, want the message from before the backup", history)
	}

	// The spec's errors.
	tok := bob.Client.AccessToken
	r := srv.raw(t, "PUT", "/_matrix/client/v3/room_keys/keys/"+string(room)+"/s1?version=999", tok,
		[]byte(`{"first_message_index":0,"forwarded_count":0,"is_verified":false,"session_data":{}}`))
	checkRaw(t, "keys for a version that is not the current one", r, want{403, "M_WRONG_ROOM_KEYS_VERSION"})
	if r.json["current_version"] != string(version) {
		t.Errorf("current_version = %v, want %s", r.json["current_version"], version)
	}
	checkRaw(t, "an unknown backup version", srv.raw(t, "GET", "/_matrix/client/v3/room_keys/version/999", tok, nil), want{404, "M_NOT_FOUND"})
	checkRaw(t, "a key not in the backup", srv.raw(t, "GET", "/_matrix/client/v3/room_keys/keys/"+string(room)+"/nosuch?version="+string(version), tok, nil), want{404, "M_NOT_FOUND"})
	checkRaw(t, "changing a version's algorithm", srv.raw(t, "PUT", "/_matrix/client/v3/room_keys/version/"+string(version), tok,
		[]byte(`{"algorithm":"org.example.other","auth_data":{}}`)), want{400, "M_INVALID_PARAM"})
	must(t, "delete the backup version", bob.Client.DeleteKeyBackupVersion(ctx, version))
	checkRaw(t, "no current version after deletion", srv.raw(t, "GET", "/_matrix/client/v3/room_keys/version", tok, nil), want{404, "M_NOT_FOUND"})
}
