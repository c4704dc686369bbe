package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// deviceKeysBody is a /keys/upload body with signed device keys of the
// device and one-time keys otk0..otk{n-1} (signed_curve25519), plus a
// fallback key when fallback is set. The server checks only shapes, so the
// keys are stand-ins.
func deviceKeysBody(userID, deviceID string, n int, fallback bool) []byte {
	body := map[string]any{
		"device_keys": map[string]any{
			"user_id": userID, "device_id": deviceID,
			"algorithms": []string{"m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"},
			"keys":       map[string]string{"curve25519:" + deviceID: "curve-" + deviceID, "ed25519:" + deviceID: "ed-" + deviceID},
			"signatures": map[string]any{userID: map[string]string{"ed25519:" + deviceID: "sig-" + deviceID}},
		},
	}
	otks := map[string]any{}
	for i := range n {
		otks[fmt.Sprintf("signed_curve25519:otk%d", i)] = map[string]any{"key": fmt.Sprintf("key%d", i),
			"signatures": map[string]any{userID: map[string]string{"ed25519:" + deviceID: fmt.Sprintf("sig%d", i)}}}
	}
	body["one_time_keys"] = otks
	if fallback {
		body["fallback_keys"] = map[string]any{"signed_curve25519:fb1": map[string]any{"key": "fallback", "fallback": true,
			"signatures": map[string]any{userID: map[string]string{"ed25519:" + deviceID: "sigfb"}}}}
	}
	b, _ := json.Marshal(body)
	return b
}

// claimOnce claims one signed_curve25519 key of (userID, deviceID) and
// returns its key ID ("" when none came back).
func claimOnce(t *testing.T, srv *server, token, userID, deviceID string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"one_time_keys": map[string]any{userID: map[string]string{deviceID: "signed_curve25519"}}})
	r := srv.raw(t, "POST", "/_matrix/client/v3/keys/claim", token, body)
	if r.status != 200 {
		t.Fatalf("claim: %s", r)
	}
	var resp struct {
		OneTimeKeys map[string]map[string]map[string]json.RawMessage `json:"one_time_keys"`
	}
	if err := json.Unmarshal(r.body, &resp); err != nil {
		t.Fatalf("claim answer: %v: %s", err, r.body)
	}
	for id := range resp.OneTimeKeys[userID][deviceID] {
		return id
	}
	return ""
}

// TestDeviceKeys uploads, queries and claims end-to-end encryption keys:
// each one-time key is handed out once, then the fallback key; bad uploads
// get the spec's errors; a deleted device's keys are gone.
func TestDeviceKeys(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	aID, aDev := string(alice.UserID), string(alice.DeviceID)
	up := func(token string, body []byte) rawResponse {
		return srv.raw(t, "POST", "/_matrix/client/v3/keys/upload", token, body)
	}
	count := func(r rawResponse) float64 {
		t.Helper()
		c, ok := r.json["one_time_key_counts"].(map[string]any)
		if !ok {
			t.Fatalf("no one_time_key_counts: %s", r)
		}
		n, _ := c["signed_curve25519"].(float64)
		return n
	}
	r := up(alice.AccessToken, deviceKeysBody(aID, aDev, 3, true))
	if r.status != 200 || count(r) != 3 {
		t.Fatalf("upload: %s, want 200 with 3 signed_curve25519 keys", r)
	}
	// The same upload again (a retry) changes nothing.
	if r := up(alice.AccessToken, deviceKeysBody(aID, aDev, 3, true)); r.status != 200 || count(r) != 3 {
		t.Fatalf("upload again: %s", r)
	}
	checkRaw(t, "a one-time key uploaded again with another value",
		up(alice.AccessToken, []byte(`{"one_time_keys":{"signed_curve25519:otk0":{"key":"other"}}}`)), want{400, "M_INVALID_PARAM"})
	checkRaw(t, "device keys of another user", up(bob.AccessToken, deviceKeysBody(aID, aDev, 0, false)), want{400, "M_INVALID_PARAM"})
	checkRaw(t, "a one-time key without an algorithm", up(alice.AccessToken, []byte(`{"one_time_keys":{"otk":"x"}}`)), want{400, "M_INVALID_PARAM"})
	checkRaw(t, "a one-time key that is a number", up(alice.AccessToken, []byte(`{"one_time_keys":{"signed_curve25519:n":5}}`)), want{400, "M_INVALID_PARAM"})
	checkRaw(t, "device keys without algorithms, keys and signatures",
		up(alice.AccessToken, []byte(`{"device_keys":{"user_id":"`+aID+`","device_id":"`+aDev+`"}}`)), want{400, "M_BAD_JSON"})
	// Signatures are for clients to verify: an empty signatures object is
	// taken (as Synapse takes it; Complement's device-list tests upload so).
	unsigned := `{"device_keys":{"user_id":"` + aID + `","device_id":"` + aDev + `","algorithms":["m.olm.v1.curve25519-aes-sha2"],` +
		`"keys":{"ed25519:` + aDev + `":"edkey","curve25519:` + aDev + `":"cvkey"},"signatures":{}}}`
	if r := up(alice.AccessToken, []byte(unsigned)); r.status != 200 {
		t.Errorf("device keys with an empty signatures object: %s, want 200", r)
	}
	if r := up(alice.AccessToken, deviceKeysBody(aID, aDev, 0, false)); r.status != 200 {
		t.Fatalf("device keys uploaded again, signed: %s", r)
	}
	checkRaw(t, "device keys that are not an object", up(alice.AccessToken, []byte(`{"device_keys":"x"}`)), want{400, "M_BAD_JSON"})

	// Bob sees alice's device keys, with the device's display name.
	q := srv.raw(t, "POST", "/_matrix/client/v3/keys/query", bob.AccessToken,
		[]byte(`{"device_keys":{"`+aID+`":[],"@nobody:localhost":[],"@someone:other.example":[]}}`))
	if q.status != 200 {
		t.Fatalf("query: %s", q)
	}
	var qr struct {
		DeviceKeys map[string]map[string]struct {
			UserID   string            `json:"user_id"`
			Keys     map[string]string `json:"keys"`
			Unsigned struct {
				Name string `json:"device_display_name"`
			} `json:"unsigned"`
		} `json:"device_keys"`
	}
	if err := json.Unmarshal(q.body, &qr); err != nil {
		t.Fatal(err)
	}
	got := qr.DeviceKeys[aID][aDev]
	if got.UserID != aID || got.Keys["ed25519:"+aDev] != "ed-"+aDev || got.Unsigned.Name != "e2e alice" {
		t.Fatalf("query answer: %s", q.body)
	}
	if len(qr.DeviceKeys["@nobody:localhost"]) != 0 || len(qr.DeviceKeys["@someone:other.example"]) != 0 {
		t.Fatalf("keys of unknown users: %s", q.body)
	}
	checkRaw(t, "query without device_keys", srv.raw(t, "POST", "/_matrix/client/v3/keys/query", bob.AccessToken, []byte(`{}`)),
		want{400, "M_MISSING_PARAM"})

	// Three one-time keys, each once; then the fallback key, again and again.
	seen := map[string]bool{}
	for range 3 {
		id := claimOnce(t, srv, bob.AccessToken, aID, aDev)
		if !strings.HasPrefix(id, "signed_curve25519:otk") || seen[id] {
			t.Fatalf("claim handed out %q (seen %v)", id, seen)
		}
		seen[id] = true
	}
	for range 2 {
		if id := claimOnce(t, srv, bob.AccessToken, aID, aDev); id != "signed_curve25519:fb1" {
			t.Fatalf("claim after the one-time keys ran out: %q, want the fallback key", id)
		}
	}
	if r := up(alice.AccessToken, []byte(`{}`)); count(r) != 0 {
		t.Fatalf("one-time keys left after three claims: %s", r)
	}
	// The first upload retried late, after its keys were claimed, must not
	// offer them again.
	if r := up(alice.AccessToken, deviceKeysBody(aID, aDev, 3, false)); r.status != 200 || count(r) != 0 {
		t.Fatalf("a retried upload after the claims: %s, want 200 and no keys offered again", r)
	}
	if id := claimOnce(t, srv, bob.AccessToken, aID, aDev); id != "signed_curve25519:fb1" {
		t.Fatalf("claim after a retried upload: %q, want the fallback key", id)
	}
	if id := claimOnce(t, srv, bob.AccessToken, aID, "NOSUCHDEVICE"); id != "" {
		t.Fatalf("a key of a device that does not exist: %q", id)
	}

	// Keys go out in the order they were uploaded (MSC4225), not by ID.
	for _, k := range []string{"zz-first", "aa-second"} {
		if r := up(alice.AccessToken, []byte(`{"one_time_keys":{"signed_curve25519:`+k+`":{"key":"`+k+`"}}}`)); r.status != 200 {
			t.Fatalf("upload %s: %s", k, r)
		}
	}
	for _, want := range []string{"signed_curve25519:zz-first", "signed_curve25519:aa-second"} {
		if id := claimOnce(t, srv, bob.AccessToken, aID, aDev); id != want {
			t.Errorf("claimed %q, want %q: keys in upload order", id, want)
		}
	}

	// Deleting the device removes its keys.
	other, err := login(t, srv, "alice", password("alice"))
	must(t, "alice logs in on a second device", err)
	must(t, "alice uploads keys for a second device", func() error {
		if r := up(other.AccessToken, deviceKeysBody(aID, string(other.DeviceID), 2, false)); r.status != 200 {
			return fmt.Errorf("%s", r)
		}
		return nil
	}())
	del, _ := json.Marshal(map[string]any{"auth": map[string]string{"type": "m.login.password", "user": "alice", "password": password("alice")}})
	if r := srv.raw(t, "DELETE", "/_matrix/client/v3/devices/"+string(other.DeviceID), alice.AccessToken, del); r.status != 200 {
		t.Fatalf("delete the second device: %s", r)
	}
	q = srv.raw(t, "POST", "/_matrix/client/v3/keys/query", bob.AccessToken, []byte(`{"device_keys":{"`+aID+`":[]}}`))
	if strings.Contains(string(q.body), string(other.DeviceID)) {
		t.Fatalf("the deleted device's keys are still served: %s", q.body)
	}
	if id := claimOnce(t, srv, bob.AccessToken, aID, string(other.DeviceID)); id != "" {
		t.Fatalf("a one-time key of the deleted device was handed out: %q", id)
	}
}

// TestOneTimeKeyClaimRace claims the keys of one device from many clients
// at once: every key is handed out at most once, and the claims beyond
// the keys get the fallback key.
func TestOneTimeKeyClaimRace(t *testing.T) {
	srv := startServer(t)
	alice := newUser(t, srv, "alice")
	aID, aDev := string(alice.UserID), string(alice.DeviceID)
	const keys, claimers = 20, 8
	if r := srv.raw(t, "POST", "/_matrix/client/v3/keys/upload", alice.AccessToken, deviceKeysBody(aID, aDev, keys, true)); r.status != 200 {
		t.Fatalf("upload: %s", r)
	}
	tokens := make([]string, claimers)
	for i := range tokens {
		tokens[i] = newUser(t, srv, fmt.Sprintf("claimer%d", i)).AccessToken
	}
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for i := range claimers {
		wg.Go(func() {
			for range keys/claimers + 2 {
				id := claimOnce(t, srv, tokens[i], aID, aDev)
				mu.Lock()
				got[id]++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	otks := 0
	for id, n := range got {
		switch {
		case id == "signed_curve25519:fb1":
		case strings.HasPrefix(id, "signed_curve25519:otk") && n == 1:
			otks++
		default:
			t.Errorf("key %q handed out %d times", id, n)
		}
	}
	if otks != keys {
		t.Errorf("%d distinct one-time keys handed out, want all %d: %v", otks, keys, got)
	}
}
