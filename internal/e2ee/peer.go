//go:build goolm

package e2ee

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/crypto"
	"maunium.net/go/mautrix/crypto/backup"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// Peer is a client with its own Olm account, syncing in the background.
type Peer struct {
	Client *mautrix.Client
	Mach   *crypto.OlmMachine

	// storeMu is held while a sync response is processed and while Send
	// reads the room's members: mautrix's MemoryStateStore hands out its
	// member maps unlocked (GetRoomJoinedOrInvitedMembers ranges over the
	// map SetMember writes).
	storeMu sync.Mutex

	mu        sync.Mutex
	keyWaits  int                    // events waiting for their room keys (see decrypt)
	plain     map[id.RoomID][]string // decrypted message bodies, in the order decrypted
	sessions  map[id.RoomID]map[id.SessionID]bool
	failures  []error        // undecryptable events
	toDevice  map[string]int // to-device events seen, by sender and ciphertext
	dupes     []string
	changed   chan struct{}
	syncErr   error
	syncEnded chan struct{}
}

// NewPeer sets up end-to-end encryption for cli (logged in, with its
// device ID set): it creates the Olm account and uploads the device's keys.
func NewPeer(ctx context.Context, cli *mautrix.Client) (*Peer, error) {
	cli.StateStore = mautrix.NewMemoryStateStore()
	mach := crypto.NewOlmMachine(cli, nil, crypto.NewMemoryStore(nil), cli.StateStore.(crypto.StateStore))
	if err := mach.Load(ctx); err != nil {
		return nil, fmt.Errorf("load the olm machine of %s: %w", cli.UserID, err)
	}
	if err := mach.ShareKeys(ctx, -1); err != nil {
		return nil, fmt.Errorf("upload the keys of %s: %w", cli.UserID, err)
	}
	p := &Peer{Client: cli, Mach: mach, plain: map[id.RoomID][]string{}, toDevice: map[string]int{},
		sessions: map[id.RoomID]map[id.SessionID]bool{}, changed: make(chan struct{})}
	syncer, ok := cli.Syncer.(*mautrix.DefaultSyncer)
	if !ok {
		return nil, errors.New("the client's syncer is not mautrix's default syncer")
	}
	cli.Syncer = lockedSyncer{syncer, &p.storeMu}
	syncer.OnEvent(cli.StateStoreSyncHandler)
	syncer.OnSync(p.countToDevice)
	syncer.OnSync(mach.ProcessSyncResponse)
	syncer.OnEventType(event.StateMember, mach.HandleMemberEvent)
	syncer.OnEventType(event.EventEncrypted, p.decrypt)
	return p, nil
}

// countToDevice records each to-device event of a sync, so that a test can
// tell that none came twice.
func (p *Peer) countToDevice(_ context.Context, resp *mautrix.RespSync, _ string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range resp.ToDevice.Events {
		k := string(e.Sender) + " " + e.Type.Type + " " + string(e.Content.VeryRaw)
		p.toDevice[k]++
		if p.toDevice[k] == 2 {
			p.dupes = append(p.dupes, e.Type.Type+" from "+string(e.Sender))
		}
	}
	return true
}

// keyWait is how long a peer waits for the room key of a message it could
// not decrypt: as long as mautrix's CryptoHelper waits (3 s, then 22 s).
const keyWait = 25 * time.Second

// decrypt handles an encrypted room event. It runs inside the sync loop,
// so it must not wait there for the event's room key: the key is a
// to-device message, and a server may hand it out with a later sync than
// the event (planb does when its to-device stream could not be read, as
// during a leader election after a data center's loss). The next sync
// could not come while this handler blocks. Like mautrix's CryptoHelper
// (HandleEncrypted), a peer waits for a missing key off the sync loop and
// decrypts again when the key has come.
func (p *Peer) decrypt(ctx context.Context, evt *event.Event) {
	dec, err := p.Mach.DecryptMegolmEvent(ctx, evt)
	if !errors.Is(err, crypto.ErrNoSessionFound) {
		p.decrypted(evt, dec, err)
		return
	}
	// Not tied to the sync's context: a sync loop stopped and started
	// again still gets the key (a client keeps its undecrypted events).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), keyWait)
	p.mu.Lock()
	p.keyWaits++
	p.mu.Unlock()
	go func() {
		defer cancel()
		c := evt.Content.AsEncrypted()
		if p.Mach.WaitForSession(wctx, evt.RoomID, c.SenderKey, c.SessionID, keyWait) {
			dec, err = p.Mach.DecryptMegolmEvent(wctx, evt)
		}
		p.decrypted(evt, dec, err)
		p.mu.Lock()
		p.keyWaits--
		p.notify()
		p.mu.Unlock()
	}()
}

// settle waits until no event waits for its room key any more (at most
// keyWait after the last one came).
func (p *Peer) settle() {
	for {
		p.mu.Lock()
		n, ch := p.keyWaits, p.changed
		p.mu.Unlock()
		if n == 0 {
			return
		}
		<-ch
	}
}

// decrypted records the outcome of decrypting evt: dec, or the error.
func (p *Peer) decrypted(evt *event.Event, dec *event.Event, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	defer p.notify()
	if err != nil {
		p.failures = append(p.failures, fmt.Errorf("event %s from %s: %w", evt.ID, evt.Sender, err))
		return
	}
	if p.sessions[evt.RoomID] == nil {
		p.sessions[evt.RoomID] = map[id.SessionID]bool{}
	}
	p.sessions[evt.RoomID][evt.Content.AsEncrypted().SessionID] = true
	if dec.Type != event.EventMessage {
		return
	}
	_ = dec.Content.ParseRaw(dec.Type)
	if msg := dec.Content.AsMessage(); msg != nil {
		p.plain[evt.RoomID] = append(p.plain[evt.RoomID], msg.Body)
	}
}

// notify wakes WaitFor. Caller holds mu.
func (p *Peer) notify() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Start syncs in the background until ctx ends.
func (p *Peer) Start(ctx context.Context) {
	p.mu.Lock()
	p.syncEnded = make(chan struct{})
	ended := p.syncEnded
	p.mu.Unlock()
	go func() {
		defer close(ended)
		err := p.Client.SyncWithContext(ctx)
		p.mu.Lock()
		if ctx.Err() == nil {
			p.syncErr = err
		}
		p.notify()
		p.mu.Unlock()
	}()
}

// Stop waits for the sync loop started with a context that has ended.
func (p *Peer) Stop() {
	p.mu.Lock()
	ended := p.syncEnded
	p.mu.Unlock()
	if ended != nil {
		<-ended
	}
}

// Trust marks other's device as verified, after checking that the keys
// this peer fetched from the server for it are the ones other holds (the
// comparison two people make when they verify each other's devices).
func (p *Peer) Trust(ctx context.Context, other *Peer) error {
	dev, err := p.Mach.GetOrFetchDevice(ctx, other.Client.UserID, other.Client.DeviceID)
	if err != nil {
		return fmt.Errorf("fetch the device of %s: %w", other.Client.UserID, err)
	}
	own := other.Mach.OwnIdentity()
	if dev.SigningKey != own.SigningKey || dev.IdentityKey != own.IdentityKey {
		return fmt.Errorf("the server gave keys for %s/%s that are not its own", other.Client.UserID, other.Client.DeviceID)
	}
	dev.Trust = id.TrustStateVerified
	return p.Mach.CryptoStore.PutDevice(ctx, other.Client.UserID, dev)
}

// Send encrypts body for the room's members and sends it.
func (p *Peer) Send(ctx context.Context, room id.RoomID, body string) error {
	p.storeMu.Lock()
	members, err := p.Client.StateStore.GetRoomJoinedOrInvitedMembers(ctx, room)
	p.storeMu.Unlock()
	if err != nil {
		return err
	}
	if err := p.Mach.ShareGroupSession(ctx, room, members); err != nil {
		return fmt.Errorf("share the room key of %s: %w", room, err)
	}
	enc, err := p.Mach.EncryptMegolmEvent(ctx, room, event.EventMessage, &event.MessageEventContent{MsgType: event.MsgText, Body: body})
	if err != nil {
		return fmt.Errorf("encrypt: %w", err)
	}
	_, err = p.Client.SendMessageEvent(ctx, room, event.EventEncrypted, enc)
	return err
}

// WaitFor waits until the peer has decrypted the message body in room.
func (p *Peer) WaitFor(ctx context.Context, room id.RoomID, body string) error {
	for {
		p.mu.Lock()
		for _, b := range p.plain[room] {
			if b == body {
				p.mu.Unlock()
				return nil
			}
		}
		ch, fails, serr := p.changed, len(p.failures), p.syncErr
		var last error
		if fails > 0 {
			last = p.failures[fails-1]
		}
		p.mu.Unlock()
		if serr != nil {
			return fmt.Errorf("the sync of %s ended: %w", p.Client.UserID, serr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s did not decrypt %q (decrypted %v; last failure: %v): %w", p.Client.UserID, body, p.Plain(room), last, ctx.Err())
		}
	}
}

// Plain returns the bodies decrypted in room so far.
func (p *Peer) Plain(room id.RoomID) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.plain[room]...)
}

// Failures returns the events the peer could not decrypt.
func (p *Peer) Failures() []error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]error(nil), p.failures...)
}

// Duplicates returns the to-device events the peer received more than once.
func (p *Peer) Duplicates() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.dupes...)
}

// ToDeviceReceived returns how many distinct to-device events of type typ
// the peer received from sender.
func (p *Peer) ToDeviceReceived(sender id.UserID, typ event.Type) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	prefix := string(sender) + " " + typ.Type + " "
	for k := range p.toDevice {
		if len(k) > len(prefix) && k[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

// CreateBackup creates a server-side key backup version for key and backs
// up the room keys of every session the peer decrypted messages of.
func (p *Peer) CreateBackup(ctx context.Context, key *backup.MegolmBackupKey) (id.KeyBackupVersion, error) {
	pub := id.Ed25519(base64.RawStdEncoding.EncodeToString(key.PublicKey().Bytes()))
	v, err := p.Client.CreateKeyBackupVersion(ctx, &mautrix.ReqRoomKeysVersionCreate[backup.MegolmAuthData]{
		Algorithm: id.KeyBackupAlgorithmMegolmBackupV1, AuthData: backup.MegolmAuthData{PublicKey: pub}})
	if err != nil {
		return "", fmt.Errorf("create a backup version: %w", err)
	}
	p.mu.Lock()
	rooms := map[id.RoomID][]id.SessionID{}
	for room, ids := range p.sessions {
		for sid := range ids {
			rooms[room] = append(rooms[room], sid)
		}
	}
	p.mu.Unlock()
	req := &mautrix.ReqKeyBackup{Rooms: map[id.RoomID]mautrix.ReqRoomKeyBackup{}}
	for room, ids := range rooms {
		rk := mautrix.ReqRoomKeyBackup{Sessions: map[id.SessionID]mautrix.ReqKeyBackupData{}}
		for _, sid := range ids {
			igs, err := p.Mach.CryptoStore.GetGroupSession(ctx, room, sid)
			if err != nil || igs == nil {
				return "", fmt.Errorf("room key %s of %s: %v", sid, room, err)
			}
			first := igs.Internal.FirstKnownIndex()
			exported, err := igs.Internal.Export(first)
			if err != nil {
				return "", fmt.Errorf("export room key %s: %w", sid, err)
			}
			enc, err := backup.EncryptSessionData(key, backup.MegolmSessionData{Algorithm: id.AlgorithmMegolmV1,
				SenderKey: igs.SenderKey, SessionKey: string(exported),
				SenderClaimedKeys: backup.SenderClaimedKeys{Ed25519: igs.SigningKey}})
			if err != nil {
				return "", fmt.Errorf("encrypt room key %s for the backup: %w", sid, err)
			}
			raw, _ := json.Marshal(enc)
			rk.Sessions[sid] = mautrix.ReqKeyBackupData{FirstMessageIndex: int(first), SessionData: raw}
		}
		req.Rooms[room] = rk
	}
	if _, err := p.Client.PutKeysInBackup(ctx, v.Version, req); err != nil {
		return "", fmt.Errorf("back up room keys: %w", err)
	}
	return v.Version, nil
}

// History decrypts the room's messages, newest first as /messages pages
// them, and returns their bodies oldest first.
func (p *Peer) History(ctx context.Context, room id.RoomID) ([]string, error) {
	page, err := p.Client.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		return nil, err
	}
	var out []string
	for i := len(page.Chunk) - 1; i >= 0; i-- {
		evt := page.Chunk[i]
		if evt.Type != event.EventEncrypted {
			continue
		}
		evt.RoomID = room
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			return nil, err
		}
		dec, err := p.Mach.DecryptMegolmEvent(ctx, evt)
		if err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", evt.ID, err)
		}
		_ = dec.Content.ParseRaw(dec.Type)
		if msg := dec.Content.AsMessage(); msg != nil {
			out = append(out, msg.Body)
		}
	}
	return out, nil
}

// CheckClean fails t for every event a peer could not decrypt and every
// to-device message a peer received more than once. It first waits for
// the events still waiting for their room keys (at most keyWait).
func CheckClean(t testing.TB, peers ...*Peer) {
	t.Helper()
	for _, p := range peers {
		p.settle()
		if f := p.Failures(); len(f) > 0 {
			t.Errorf("%s could not decrypt: %v", p.Client.UserID, f)
		}
		if d := p.Duplicates(); len(d) > 0 {
			t.Errorf("%s got to-device messages twice: %v", p.Client.UserID, d)
		}
	}
}

// lockedSyncer processes each sync response under mu.
type lockedSyncer struct {
	*mautrix.DefaultSyncer
	mu *sync.Mutex
}

func (l lockedSyncer) ProcessResponse(ctx context.Context, resp *mautrix.RespSync, since string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.DefaultSyncer.ProcessResponse(ctx, resp, since)
}
