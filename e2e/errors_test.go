package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// TestErrorCodes has one subtest per class of Matrix error; each sends the
// offending request and checks HTTP status and errcode (spec:
// client-server-api/_index.md, "Standard error response" and "Common error
// codes"). Raw requests use net/http so nothing corrects them on the way.
func TestErrorCodes(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	created, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	must(t, "create room", err)
	room := created.RoomID
	tok := alice.AccessToken
	sendPath := func(txn string) string {
		return "/_matrix/client/v3/rooms/" + url.PathEscape(room.String()) + "/send/m.room.message/" + txn
	}

	t.Run("M_NOT_JSON", func(t *testing.T) {
		r := srv.raw(t, "POST", "/_matrix/client/v3/createRoom", tok, []byte(`{"name": `))
		checkRaw(t, "createRoom with truncated JSON", r, want{400, "M_NOT_JSON"})
		r = srv.raw(t, "PUT", sendPath("notjson"), tok, []byte(`this is not json`))
		checkRaw(t, "send with non-JSON body", r, want{400, "M_NOT_JSON"})
		r = srv.raw(t, "POST", "/_matrix/client/v3/login", "", []byte(`{"type":`))
		checkRaw(t, "login with truncated JSON", r, want{400, "M_NOT_JSON"})
	})

	t.Run("M_BAD_JSON", func(t *testing.T) {
		r := srv.raw(t, "POST", "/_matrix/client/v3/createRoom", tok, []byte(`["not","an","object"]`))
		checkRaw(t, "createRoom with an array body", r, want{400, "M_BAD_JSON"})
		r = srv.raw(t, "PUT", sendPath("badjson"), tok, []byte(`"a string, not an object"`))
		checkRaw(t, "send with a string as content", r, want{400, "M_BAD_JSON"})
		// A key of the wrong type: M_BAD_JSON ("invalid values for keys")
		// or M_INVALID_PARAM (whose spec example is exactly this).
		r = srv.raw(t, "POST", "/_matrix/client/v3/createRoom", tok, []byte(`{"name": 5}`))
		checkRaw(t, "createRoom with a numeric name", r, want{400, "M_BAD_JSON"}, want{400, "M_INVALID_PARAM"})
		// A missing required key: M_BAD_JSON or M_MISSING_PARAM.
		r = srv.raw(t, "POST", "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/invite", tok, []byte(`{}`))
		checkRaw(t, "invite without user_id", r, want{400, "M_BAD_JSON"}, want{400, "M_MISSING_PARAM"})
	})

	t.Run("M_MISSING_TOKEN", func(t *testing.T) {
		for _, p := range []string{"/_matrix/client/v3/account/whoami", "/_matrix/client/v3/sync", "/_matrix/client/v3/joined_rooms"} {
			r := srv.raw(t, "GET", p, "", nil)
			checkRaw(t, "GET "+p+" without token", r, want{401, "M_MISSING_TOKEN"})
		}
		r := srv.raw(t, "PUT", sendPath("notoken"), "", []byte(`{"msgtype":"m.text","body":"x"}`))
		checkRaw(t, "send without token", r, want{401, "M_MISSING_TOKEN"})
	})

	t.Run("M_UNKNOWN_TOKEN", func(t *testing.T) {
		for _, p := range []string{"/_matrix/client/v3/account/whoami", "/_matrix/client/v3/sync"} {
			r := srv.raw(t, "GET", p, "syt_not_a_real_token", nil)
			checkRaw(t, "GET "+p+" with an unknown token", r, want{401, "M_UNKNOWN_TOKEN"})
		}
		r := srv.raw(t, "PUT", sendPath("badtoken"), tok+"x", []byte(`{"msgtype":"m.text","body":"x"}`))
		checkRaw(t, "send with a mangled token", r, want{401, "M_UNKNOWN_TOKEN"})
	})

	t.Run("M_TOO_LARGE", func(t *testing.T) {
		big, err := json.Marshal(text(strings.Repeat("x", 70_000)))
		must(t, "marshal", err)
		r := srv.raw(t, "PUT", sendPath("toolarge"), tok, big)
		checkRaw(t, "send of a 70 KB event", r, want{413, "M_TOO_LARGE"})
		r = srv.raw(t, "PUT", "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/state/com.example.big/", tok,
			[]byte(`{"data":"`+strings.Repeat("y", 70_000)+`"}`))
		checkRaw(t, "state event of 70 KB", r, want{413, "M_TOO_LARGE"})
		// Just under the limit is fine.
		ok, err := json.Marshal(text(strings.Repeat("z", 60_000)))
		must(t, "marshal", err)
		r = srv.raw(t, "PUT", sendPath("justfits"), tok, ok)
		if r.status != 200 {
			t.Errorf("send of a 60 KB event: %s, want 200", r)
		}
	})

	t.Run("M_UNRECOGNIZED", func(t *testing.T) {
		// Spec: 404 for an unknown endpoint, 405 for a known endpoint with
		// the wrong method.
		r := srv.raw(t, "GET", "/_matrix/client/v3/no/such/endpoint", tok, nil)
		checkRaw(t, "GET unknown endpoint", r, want{404, "M_UNRECOGNIZED"})
		r = srv.raw(t, "POST", "/_matrix/client/v3/definitely_not_here", tok, []byte(`{}`))
		checkRaw(t, "POST unknown endpoint", r, want{404, "M_UNRECOGNIZED"})
		r = srv.raw(t, "PUT", "/_matrix/client/v3/account/whoami", tok, []byte(`{}`))
		checkRaw(t, "PUT on GET-only /account/whoami", r, want{405, "M_UNRECOGNIZED"})
		r = srv.raw(t, "GET", "/_matrix/client/v3/createRoom", tok, nil)
		checkRaw(t, "GET on POST-only /createRoom", r, want{405, "M_UNRECOGNIZED"})
	})

	t.Run("M_FORBIDDEN", func(t *testing.T) {
		r := srv.raw(t, "PUT", sendPath("forbidden"), bob.AccessToken, []byte(`{"msgtype":"m.text","body":"x"}`))
		checkRaw(t, "non-member sends", r, forbidden)
		r = srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(room.String())+"/messages?dir=b", bob.AccessToken, nil)
		checkRaw(t, "non-member reads /messages", r, forbidden)
	})

	t.Run("M_UNSUPPORTED_ROOM_VERSION", func(t *testing.T) {
		_, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{RoomVersion: id.RoomVersion("9999")})
		checkErr(t, "createRoom with room_version 9999", err, want{400, "M_UNSUPPORTED_ROOM_VERSION"})
	})

	t.Run("M_USER_IN_USE", func(t *testing.T) {
		_, err := srv.client(t, "", "").RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "alice", Password: "another"})
		checkErr(t, "register a taken user name", err, want{400, "M_USER_IN_USE"})
		// The original account is untouched.
		_, err = login(t, srv, "alice", password("alice"))
		must(t, "login with the original password", err)
	})

	t.Run("M_INVALID_USERNAME", func(t *testing.T) {
		_, err := srv.client(t, "", "").RegisterDummy(ctx, &mautrix.ReqRegister[any]{Username: "Not:Valid", Password: "pw"})
		checkErr(t, "register user name with ':' and capitals", err, want{400, "M_INVALID_USERNAME"})
	})

	t.Run("wrong password is M_FORBIDDEN", func(t *testing.T) {
		_, err := login(t, srv, "alice", "wrong password")
		checkErr(t, "login with wrong password", err, forbidden)
		_, err = login(t, srv, "nobody", "whatever")
		checkErr(t, "login as unknown user", err, forbidden)
	})
}

// TestLoginRateLimit provokes the per-IP login limit and checks the 429
// body (client-server-api/_index.md "Rate limiting"; login.yaml 429).
func TestLoginRateLimit(t *testing.T) {
	srv := startServer(t, withLoginRateLimit(3))
	body := []byte(`{"type":"m.login.password","identifier":{"type":"m.id.user","user":"nobody"},"password":"x"}`)

	var limited rawResponse
	for i := range 40 {
		r := srv.raw(t, "POST", "/_matrix/client/v3/login", "", body)
		if r.status == http.StatusTooManyRequests {
			limited = r
			t.Logf("rate limited after %d attempts", i)
			break
		}
		if !checkRaw(t, fmt.Sprintf("login attempt %d", i), r, forbidden) {
			return
		}
	}
	if limited.status == 0 {
		t.Fatal("40 failed logins within moments were never rate-limited (--rate-limit-login 3)")
	}
	checkRaw(t, "rate-limited login", limited, want{429, "M_LIMIT_EXCEEDED"})
	if ms, ok := limited.json["retry_after_ms"].(float64); !ok || ms <= 0 {
		t.Errorf("429 body lacks a positive retry_after_ms: %s", limited)
	}
	if ra := limited.header.Get("Retry-After"); ra == "" {
		t.Errorf("429 lacks the Retry-After header the spec recommends")
	} else if n, err := strconv.Atoi(ra); err != nil || n < 1 {
		t.Errorf("Retry-After = %q, want whole seconds >= 1", ra)
	}

	// Registration shares the limit or has its own; either way completed
	// attempts end in 429. (Only the leg carrying auth is an attempt; the
	// first leg merely asks for the flows.)
	var regLimited bool
	for i := range 40 {
		user := fmt.Sprintf("rl%d", i)
		first := srv.raw(t, "POST", "/_matrix/client/v3/register", "", registerBody(user, nil))
		session, _ := first.json["session"].(string)
		r := srv.raw(t, "POST", "/_matrix/client/v3/register", "", registerBody(user,
			map[string]any{"type": "m.login.dummy", "session": session}))
		if first.status == http.StatusTooManyRequests {
			r = first
		}
		if r.status == http.StatusTooManyRequests {
			checkRaw(t, "rate-limited registration", r, want{429, "M_LIMIT_EXCEEDED"})
			regLimited = true
			break
		}
	}
	if !regLimited {
		t.Errorf("40 registration attempts within moments were never rate-limited (--rate-limit-login 3)")
	}

	// The limit is per client IP: another loopback address is unaffected.
	other, err := rawFrom(t.Context(), "127.0.0.2", "POST", srv.URL+"/_matrix/client/v3/login", body)
	if err != nil {
		t.Logf("cannot send from 127.0.0.2 on this system, skipping the per-IP check: %v", err)
		return
	}
	checkRaw(t, "login from another IP", other, forbidden)
}

// rawFrom sends a JSON request from the local address ip.
func rawFrom(ctx context.Context, ip, method, u string, body []byte) (rawResponse, error) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := &http.Client{Timeout: httpTimeout, Transport: &http.Transport{DialContext: d.DialContext}}
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(string(body)))
	if err != nil {
		return rawResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	return send(c, req)
}

// uiaFlows returns the stage lists of a 401 user-interactive auth body.
func uiaFlows(r rawResponse) [][]string {
	var body struct {
		Flows []struct {
			Stages []string `json:"stages"`
		} `json:"flows"`
	}
	_ = json.Unmarshal(r.body, &body)
	var out [][]string
	for _, f := range body.Flows {
		out = append(out, f.Stages)
	}
	return out
}

// registerBody is a /register request with an optional auth dict.
func registerBody(user string, auth map[string]any) []byte {
	b := map[string]any{"username": user, "password": password(user)}
	if auth != nil {
		b["auth"] = auth
	}
	out, _ := json.Marshal(b)
	return out
}

// TestRegistrationToken: without --open-registration but with tokens,
// /register offers only m.login.registration_token, rejects dummy auth and
// wrong tokens, and accepts each configured token (client-server-api
// "Token-authenticated registration", "User-interactive API").
func TestRegistrationToken(t *testing.T) {
	srv := startServer(t, withoutOpenRegistration(),
		withFlags("--registration-token", "tok-e2e-one", "--registration-token", "tok-e2e-two"))
	const path = "/_matrix/client/v3/register"

	r := srv.raw(t, "POST", path, "", registerBody("tina", nil))
	if r.status != http.StatusUnauthorized {
		t.Fatalf("register without auth: %s, want 401 with UIA flows", r)
	}
	flows := uiaFlows(r)
	hasToken := slices.ContainsFunc(flows, func(s []string) bool { return slices.Equal(s, []string{"m.login.registration_token"}) })
	dummyOnly := slices.ContainsFunc(flows, func(s []string) bool { return slices.Equal(s, []string{"m.login.dummy"}) })
	if !hasToken || dummyOnly {
		t.Errorf("register flows = %v, want [m.login.registration_token] and no dummy-only flow", flows)
	}
	session, _ := r.json["session"].(string)

	r = srv.raw(t, "POST", path, "", registerBody("tina", map[string]any{"type": "m.login.dummy", "session": session}))
	if r.status != http.StatusUnauthorized {
		t.Errorf("register with dummy auth only: %s, want 401 (a stage outside every flow)", r)
	}

	r = srv.raw(t, "POST", path, "", registerBody("tina", map[string]any{
		"type": "m.login.registration_token", "token": "wrong-token", "session": session}))
	if r.status != http.StatusUnauthorized || (r.errcode() != "M_FORBIDDEN" && r.errcode() != "M_UNAUTHORIZED") {
		t.Errorf("register with a wrong token: %s, want 401 with errcode M_FORBIDDEN (UIA failed stage)", r)
	}
	if len(uiaFlows(r)) == 0 {
		t.Errorf("failed UIA stage response lacks flows: %s", r)
	}

	for _, c := range []struct{ user, token string }{{"tina", "tok-e2e-one"}, {"tom", "tok-e2e-two"}} {
		// Each registration starts its own UIA session.
		first := srv.raw(t, "POST", path, "", registerBody(c.user, nil))
		sess, _ := first.json["session"].(string)
		r = srv.raw(t, "POST", path, "", registerBody(c.user, map[string]any{
			"type": "m.login.registration_token", "token": c.token, "session": sess}))
		if r.status != http.StatusOK {
			t.Errorf("register %s with token %s: %s, want 200", c.user, c.token, r)
			continue
		}
		tok, _ := r.json["access_token"].(string)
		who := srv.raw(t, "GET", "/_matrix/client/v3/account/whoami", tok, nil)
		if uid, _ := who.json["user_id"].(string); uid != "@"+c.user+":"+serverName {
			t.Errorf("whoami of %s after token registration: %s", c.user, who)
		}
	}

	// Without a token, dummy registration as newUser does it fails.
	_, err := srv.client(t, "", "").RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{Username: "nina", Password: "pw"})
	if err == nil {
		t.Errorf("m.login.dummy registration succeeded on a token-only server")
	}
}

// TestRegistrationClosed: with neither --open-registration nor tokens the
// server refuses registration with 403 M_FORBIDDEN (registration.yaml 403).
func TestRegistrationClosed(t *testing.T) {
	srv := startServer(t, withoutOpenRegistration())
	r := srv.raw(t, "POST", "/_matrix/client/v3/register", "", registerBody("olga", nil))
	checkRaw(t, "register on a closed server", r, forbidden)
	r = srv.raw(t, "POST", "/_matrix/client/v3/register", "", registerBody("olga", map[string]any{"type": "m.login.dummy"}))
	checkRaw(t, "register with dummy auth on a closed server", r, forbidden)
}
