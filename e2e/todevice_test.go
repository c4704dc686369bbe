package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"sort"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/planb-chat/planb/internal/testutil"
)

// syncState is the device part of a /sync answer.
type syncState struct {
	NextBatch string `json:"next_batch"`
	ToDevice  struct {
		Events []struct {
			Sender  string          `json:"sender"`
			Type    string          `json:"type"`
			Content json.RawMessage `json:"content"`
		} `json:"events"`
	} `json:"to_device"`
	DeviceLists struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	} `json:"device_lists"`
	OneTimeKeys    map[string]int `json:"device_one_time_keys_count"`
	UnusedFallback []string       `json:"device_unused_fallback_key_types"`
}

// rawSync runs GET /sync for token since (none: initial) and decodes it.
func rawSync(t *testing.T, srv *server, token, since string, timeout time.Duration) syncState {
	t.Helper()
	q := url.Values{"timeout": {fmt.Sprint(timeout.Milliseconds())}}
	if since != "" {
		q.Set("since", since)
	}
	r := srv.raw(t, "GET", "/_matrix/client/v3/sync?"+q.Encode(), token, nil)
	if r.status != 200 {
		t.Fatalf("sync: %s", r)
	}
	var s syncState
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("sync answer: %v", err)
	}
	if s.OneTimeKeys == nil || s.UnusedFallback == nil {
		t.Fatalf("sync without device_one_time_keys_count or device_unused_fallback_key_types: %s", r.body)
	}
	return s
}

// bodies returns the "n" fields of the to-device contents.
func (s syncState) bodies() []string {
	var out []string
	for _, e := range s.ToDevice.Events {
		var c struct {
			N string `json:"n"`
		}
		_ = json.Unmarshal(e.Content, &c)
		out = append(out, e.Type+":"+c.N)
	}
	return out
}

// TestToDevice sends to-device messages: they arrive in order and once,
// a retried transaction sends nothing again, "*" reaches every device, a
// sync whose token shows they were received purges them (an older token
// does not bring them back), and a deleted device's queue is gone.
func TestToDevice(t *testing.T) {
	srv := startServer(t)
	alice, bob := newUser(t, srv, "alice"), newUser(t, srv, "bob")
	bob2, err := login(t, srv, "bob", password("bob"))
	must(t, "bob logs in on a second device", err)
	send := func(typ, txn string, msgs map[string]map[string]any) rawResponse {
		b, _ := json.Marshal(map[string]any{"messages": msgs})
		return srv.raw(t, "PUT", "/_matrix/client/v3/sendToDevice/"+typ+"/"+txn, alice.AccessToken, b)
	}
	bobID, bobDev, bob2Dev := string(bob.UserID), string(bob.DeviceID), string(bob2.DeviceID)
	first := rawSync(t, srv, bob.AccessToken, "", 0)
	if len(first.ToDevice.Events) != 0 {
		t.Fatalf("to-device messages before any was sent: %v", first.bodies())
	}
	for i, txn := range []string{"t1", "t2", "t2", "t3"} { // t2 twice: a retry
		r := send("org.example.ping", txn, map[string]map[string]any{bobID: {bobDev: map[string]any{"n": txn}}})
		if r.status != 200 {
			t.Fatalf("send %d: %s", i, r)
		}
	}
	r := send("org.example.all", "t4", map[string]map[string]any{bobID: {"*": map[string]any{"n": "all"}},
		"@nobody:other.example": {"X": map[string]any{"n": "remote"}}})
	if r.status != 200 {
		t.Fatalf("send to every device: %s", r)
	}
	// The messages come in order, once.
	got := rawSync(t, srv, bob.AccessToken, first.NextBatch, 10*time.Second)
	sent := []string{"org.example.ping:t1", "org.example.ping:t2", "org.example.ping:t3", "org.example.all:all"}
	if !slices.Equal(got.bodies(), sent) {
		t.Fatalf("bob's device got %v, want %v", got.bodies(), sent)
	}
	if got.ToDevice.Events[0].Sender != string(alice.UserID) {
		t.Errorf("sender = %q", got.ToDevice.Events[0].Sender)
	}
	if b2 := rawSync(t, srv, bob2.AccessToken, "", 0); !slices.Equal(b2.bodies(), []string{"org.example.all:all"}) {
		t.Errorf("bob's second device got %v, want only the message for every device", b2.bodies())
	}
	// The same token again (the answer was lost): the same messages.
	if again := rawSync(t, srv, bob.AccessToken, first.NextBatch, 0); !slices.Equal(again.bodies(), sent) {
		t.Fatalf("the same since again gave %v, want %v", again.bodies(), sent)
	}
	// The next token acknowledges them: gone, also for the older token.
	next := rawSync(t, srv, bob.AccessToken, got.NextBatch, 0)
	if len(next.ToDevice.Events) != 0 {
		t.Fatalf("messages again after they were received: %v", next.bodies())
	}
	testutil.WaitFor(t, 10*time.Second, "received messages purged", func() error {
		if old := rawSync(t, srv, bob.AccessToken, first.NextBatch, 0); len(old.ToDevice.Events) != 0 {
			return fmt.Errorf("an old token still brings %v", old.bodies())
		}
		return nil
	})
	// A retry of t1 long after: still nothing new.
	send("org.example.ping", "t1", map[string]map[string]any{bobID: {bobDev: map[string]any{"n": "t1"}}})
	if s := rawSync(t, srv, bob.AccessToken, next.NextBatch, 0); len(s.ToDevice.Events) != 0 {
		t.Fatalf("a retried transaction delivered %v", s.bodies())
	}

	// Bad input.
	checkRaw(t, "messages missing", srv.raw(t, "PUT", "/_matrix/client/v3/sendToDevice/x/t9", alice.AccessToken, []byte(`{}`)), want{400, "M_MISSING_PARAM"})
	checkRaw(t, "content not an object", srv.raw(t, "PUT", "/_matrix/client/v3/sendToDevice/x/t9", alice.AccessToken,
		[]byte(`{"messages":{"`+bobID+`":{"`+bobDev+`":5}}}`)), want{400, "M_BAD_JSON"})
	checkRaw(t, "not a user ID", srv.raw(t, "PUT", "/_matrix/client/v3/sendToDevice/x/t9", alice.AccessToken,
		[]byte(`{"messages":{"bob":{"D":{}}}}`)), want{400, "M_INVALID_PARAM"})

	// A message left for the second device goes with it.
	send("org.example.ping", "t5", map[string]map[string]any{bobID: {bob2Dev: map[string]any{"n": "left behind"}}})
	del, _ := json.Marshal(map[string]any{"auth": map[string]string{"type": "m.login.password", "user": "bob", "password": password("bob")}})
	if r := srv.raw(t, "DELETE", "/_matrix/client/v3/devices/"+bob2Dev, bob.AccessToken, del); r.status != 200 {
		t.Fatalf("delete the second device: %s", r)
	}
	relogin := srv.client(t, "", "")
	resp, err := relogin.Login(t.Context(), &mautrix.ReqLogin{Type: mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: "bob"}, Password: password("bob"), DeviceID: bob2.DeviceID})
	must(t, "log in again with the deleted device's ID", err)
	if s := rawSync(t, srv, resp.AccessToken, "", 0); len(s.ToDevice.Events) != 0 {
		t.Fatalf("a new login with a deleted device's ID got its old messages: %v", s.bodies())
	}
}

// TestSyncKeyState: /sync counts the device's one-time keys and unused
// fallback keys, and device_lists and /keys/changes name the users whose
// keys changed or who came to share a room (or stopped to).
func TestSyncKeyState(t *testing.T) {
	srv := startServer(t)
	alice, bob, carol := newUser(t, srv, "alice"), newUser(t, srv, "bob"), newUser(t, srv, "carol")
	aID, aDev := string(alice.UserID), string(alice.DeviceID)
	room, err := alice.CreateRoom(t.Context(), &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create a room", err)
	_, err = bob.JoinRoomByID(t.Context(), room.RoomID)
	must(t, "bob joins", err)
	s0 := rawSync(t, srv, alice.AccessToken, "", 0)
	if s0.OneTimeKeys["signed_curve25519"] != 0 || len(s0.UnusedFallback) != 0 {
		t.Fatalf("before any upload: %v %v", s0.OneTimeKeys, s0.UnusedFallback)
	}
	if r := srv.raw(t, "POST", "/_matrix/client/v3/keys/upload", alice.AccessToken, deviceKeysBody(aID, aDev, 5, true)); r.status != 200 {
		t.Fatalf("upload: %s", r)
	}
	claimOnce(t, srv, bob.AccessToken, aID, aDev)
	testutil.WaitFor(t, 10*time.Second, "counts in sync", func() error {
		s := rawSync(t, srv, alice.AccessToken, "", 0)
		if s.OneTimeKeys["signed_curve25519"] != 4 || !slices.Equal(s.UnusedFallback, []string{"signed_curve25519"}) {
			return fmt.Errorf("counts %v, fallback %v; want 4 and [signed_curve25519]", s.OneTimeKeys, s.UnusedFallback)
		}
		return nil
	})
	bs := rawSync(t, srv, bob.AccessToken, "", 0)
	// Bob uploads keys: alice (who shares the room) hears of it, carol (who
	// does not) does not.
	cs := rawSync(t, srv, carol.AccessToken, "", 0)
	bID, bDev := string(bob.UserID), string(bob.DeviceID)
	if r := srv.raw(t, "POST", "/_matrix/client/v3/keys/upload", bob.AccessToken, deviceKeysBody(bID, bDev, 1, false)); r.status != 200 {
		t.Fatalf("bob uploads: %s", r)
	}
	s1 := rawSync(t, srv, alice.AccessToken, s0.NextBatch, 10*time.Second)
	if !slices.Contains(s1.DeviceLists.Changed, bID) {
		t.Fatalf("alice's device_lists after bob's upload: %+v", s1.DeviceLists)
	}
	if c := rawSync(t, srv, carol.AccessToken, cs.NextBatch, 0); slices.Contains(c.DeviceLists.Changed, bID) {
		t.Errorf("carol, who shares no room with bob, was told of his keys: %+v", c.DeviceLists)
	}
	// Carol joins and bob leaves: alice must fetch carol's devices and may
	// forget bob's.
	_, err = carol.JoinRoomByID(t.Context(), room.RoomID)
	must(t, "carol joins", err)
	_, err = bob.LeaveRoom(t.Context(), room.RoomID)
	must(t, "bob leaves", err)
	var s2 syncState
	testutil.WaitFor(t, 10*time.Second, "membership in device_lists", func() error {
		s2 = rawSync(t, srv, alice.AccessToken, s1.NextBatch, 0)
		if !slices.Contains(s2.DeviceLists.Changed, string(carol.UserID)) || !slices.Equal(s2.DeviceLists.Left, []string{bID}) {
			return fmt.Errorf("device_lists %+v, want carol changed and bob left", s2.DeviceLists)
		}
		return nil
	})
	if c := rawSync(t, srv, bob.AccessToken, bs.NextBatch, 0); !slices.Contains(c.DeviceLists.Left, aID) {
		t.Errorf("bob, who left alice's only room, was not told she left his device lists: %+v", c.DeviceLists)
	}
	q := url.Values{"from": {s0.NextBatch}, "to": {s2.NextBatch}}
	r := srv.raw(t, "GET", "/_matrix/client/v3/keys/changes?"+q.Encode(), alice.AccessToken, nil)
	var ch struct {
		Changed []string `json:"changed"`
		Left    []string `json:"left"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &ch) != nil {
		t.Fatalf("keys/changes: %s", r)
	}
	sort.Strings(ch.Changed)
	if !slices.Contains(ch.Changed, string(carol.UserID)) || !slices.Contains(ch.Changed, aID) || !slices.Equal(ch.Left, []string{bID}) {
		t.Errorf("keys/changes = %+v, want alice and carol changed, bob left", ch)
	}
	// Alice deletes a device: carol, who shares the room, hears of it.
	cs2 := rawSync(t, srv, carol.AccessToken, "", 0)
	second, err := login(t, srv, "alice", password("alice"))
	must(t, "alice logs in on a second device", err)
	if r := srv.raw(t, "POST", "/_matrix/client/v3/keys/upload", second.AccessToken, deviceKeysBody(aID, string(second.DeviceID), 0, false)); r.status != 200 {
		t.Fatalf("second device uploads: %s", r)
	}
	cs3 := rawSync(t, srv, carol.AccessToken, cs2.NextBatch, 10*time.Second)
	if !slices.Contains(cs3.DeviceLists.Changed, aID) {
		t.Fatalf("carol was not told of alice's new device: %+v", cs3.DeviceLists)
	}
	del, _ := json.Marshal(map[string]any{"auth": map[string]string{"type": "m.login.password", "user": "alice", "password": password("alice")}})
	if r := srv.raw(t, "DELETE", "/_matrix/client/v3/devices/"+string(second.DeviceID), alice.AccessToken, del); r.status != 200 {
		t.Fatalf("delete the second device: %s", r)
	}
	if cs4 := rawSync(t, srv, carol.AccessToken, cs3.NextBatch, 10*time.Second); !slices.Contains(cs4.DeviceLists.Changed, aID) {
		t.Errorf("carol was not told that alice deleted a device: %+v", cs4.DeviceLists)
	}
	checkRaw(t, "keys/changes without to", srv.raw(t, "GET", "/_matrix/client/v3/keys/changes?from="+url.QueryEscape(s0.NextBatch), alice.AccessToken, nil), want{400, "M_MISSING_PARAM"})
	checkRaw(t, "keys/changes with a bad token", srv.raw(t, "GET", "/_matrix/client/v3/keys/changes?from=x&to=y", alice.AccessToken, nil), want{400, "M_INVALID_PARAM"})
}
