package e2e

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestLegacyR0Flow walks a whole conversation through the r0 paths (spec
// r0.6.1, advertised in /versions) as an older client or bot speaks them:
// register, log in, create a room, invite, join, send, sync, read back with
// /messages, upload and download media, log out. Every answer must be the
// v3 answer; nothing may fall through to M_UNRECOGNIZED.
func TestLegacyR0Flow(t *testing.T) {
	srv := startServer(t)
	const c = "/_matrix/client/r0"
	ok := func(what string, r rawResponse) rawResponse {
		t.Helper()
		if r.status != 200 {
			t.Fatalf("%s: %s", what, r)
		}
		return r
	}
	str := func(r rawResponse, k string) string {
		t.Helper()
		v, _ := r.json[k].(string)
		if v == "" {
			t.Fatalf("answer lacks %q: %s", k, r)
		}
		return v
	}

	versions := ok("versions", srv.raw(t, "GET", "/_matrix/client/versions", "", nil))
	if !strings.Contains(string(versions.body), `"r0.6.1"`) {
		t.Fatalf("/versions does not advertise r0.6.1: %s", versions)
	}

	reg := func(name string) (token, userID string) {
		body, _ := json.Marshal(map[string]any{"username": name, "password": password(name), "auth": map[string]string{"type": "m.login.dummy"}})
		r := ok("r0 register "+name, srv.raw(t, "POST", c+"/register", "", body))
		return str(r, "access_token"), str(r, "user_id")
	}
	aliceTok, aliceID := reg("legacy-alice")
	_, bobID := reg("legacy-bob")
	ok("r0 register/available", srv.raw(t, "GET", c+"/register/available?username=legacy-carol", "", nil))

	login, _ := json.Marshal(map[string]any{"type": "m.login.password", "identifier": map[string]string{"type": "m.id.user", "user": "legacy-bob"},
		"password": password("legacy-bob")})
	bobTok := str(ok("r0 login", srv.raw(t, "POST", c+"/login", "", login)), "access_token")
	if who := str(ok("r0 whoami", srv.raw(t, "GET", c+"/account/whoami", bobTok, nil)), "user_id"); who != bobID {
		t.Fatalf("r0 whoami: %s, want %s", who, bobID)
	}
	ok("r0 capabilities", srv.raw(t, "GET", c+"/capabilities", aliceTok, nil))

	room := str(ok("r0 createRoom", srv.raw(t, "POST", c+"/createRoom", aliceTok, []byte(`{"preset":"private_chat","name":"r0 room"}`))), "room_id")
	rp := c + "/rooms/" + url.PathEscape(room)
	invite, _ := json.Marshal(map[string]string{"user_id": bobID})
	ok("r0 invite", srv.raw(t, "POST", rp+"/invite", aliceTok, invite))
	ok("r0 join", srv.raw(t, "POST", c+"/join/"+url.PathEscape(room), bobTok, []byte(`{}`)))

	// Media through the r0 media paths.
	up := ok("r0 media upload", rawWithType(t, srv, "POST", "/_matrix/media/r0/upload?filename=a.txt", aliceTok, "text/plain", []byte("hello r0")))
	mxc := str(up, "content_uri")
	server, mediaID, _ := strings.Cut(strings.TrimPrefix(mxc, "mxc://"), "/")
	dl := srv.raw(t, "GET", "/_matrix/media/r0/download/"+server+"/"+mediaID, "", nil)
	if dl.status != 200 || string(dl.body) != "hello r0" {
		t.Fatalf("r0 media download: %s", dl)
	}

	first := ok("r0 sync", srv.raw(t, "GET", c+"/sync?timeout=0", bobTok, nil))
	since := str(first, "next_batch")
	sent := str(ok("r0 send", srv.raw(t, "PUT", rp+"/send/m.room.message/r0-txn-1", aliceTok,
		[]byte(`{"msgtype":"m.text","body":"hello over r0"}`))), "event_id")
	again := str(ok("r0 send retried", srv.raw(t, "PUT", rp+"/send/m.room.message/r0-txn-1", aliceTok,
		[]byte(`{"msgtype":"m.text","body":"hello over r0"}`))), "event_id")
	if again != sent {
		t.Fatalf("r0 send is not idempotent: %s then %s", sent, again)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ok("r0 incremental sync", srv.raw(t, "GET", c+"/sync?timeout=10000&since="+url.QueryEscape(since), bobTok, nil))
		since = str(r, "next_batch")
		if strings.Contains(string(r.body), sent) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob's r0 sync never showed %s", sent)
		}
	}
	msgs := ok("r0 messages", srv.raw(t, "GET", rp+"/messages?dir=b&limit=10", bobTok, nil))
	if !strings.Contains(string(msgs.body), "hello over r0") {
		t.Fatalf("r0 /messages lacks the message: %s", msgs)
	}
	ok("r0 receipt", srv.raw(t, "POST", rp+"/receipt/m.read/"+url.PathEscape(sent), bobTok, []byte(`{}`)))
	ok("r0 state", srv.raw(t, "GET", rp+"/state/m.room.name", bobTok, nil))
	members := ok("r0 joined_members", srv.raw(t, "GET", rp+"/joined_members", bobTok, nil))
	if !strings.Contains(string(members.body), aliceID) || !strings.Contains(string(members.body), bobID) {
		t.Fatalf("r0 joined_members: %s", members)
	}
	ok("r0 logout", srv.raw(t, "POST", c+"/logout", bobTok, []byte(`{}`)))
	if r := srv.raw(t, "GET", c+"/account/whoami", bobTok, nil); r.status != 401 || r.errcode() != "M_UNKNOWN_TOKEN" {
		t.Fatalf("r0 whoami after logout: %s", r)
	}
	// An r0 path that was never an endpoint is still unrecognized.
	checkRaw(t, "unknown r0 endpoint", srv.raw(t, "GET", c+"/no/such/endpoint", aliceTok, nil), want{404, "M_UNRECOGNIZED"})
}

// rawWithType is srv.raw with a body of the given content type (an upload).
func rawWithType(t *testing.T, srv *server, method, path, token, ctype string, body []byte) rawResponse {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("build request %s %s: %v", method, path, err)
	}
	req.Header.Set("Content-Type", ctype)
	return doRaw(t, &http.Client{Timeout: httpTimeout, Transport: sharedTransport}, req, token)
}
