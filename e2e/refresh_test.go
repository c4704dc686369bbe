package e2e

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRefreshTokens logs in asking for a refresh token: the access token
// expires (soft logout), a refresh swaps both tokens, each refresh token
// works once (also when two refreshes race), and logout ends both.
func TestRefreshTokens(t *testing.T) {
	srv := startServer(t, withFlags("--refreshable-token-lifetime", "3s"))
	newUser(t, srv, "alice")
	type tokens struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		ExpiresInMs  int64  `json:"expires_in_ms"`
	}
	decodeTokens := func(r rawResponse) tokens {
		t.Helper()
		var tk tokens
		if r.status != 200 || json.Unmarshal(r.body, &tk) != nil || tk.AccessToken == "" || tk.RefreshToken == "" || tk.ExpiresInMs != 3000 {
			t.Fatalf("%s: want an access token, a refresh token and expires_in_ms 3000", r)
		}
		return tk
	}
	refresh := func(tok string) rawResponse {
		return srv.raw(t, "POST", "/_matrix/client/v3/refresh", "", []byte(`{"refresh_token":"`+tok+`"}`))
	}
	whoami := func(tok string) rawResponse { return srv.raw(t, "GET", "/_matrix/client/v3/account/whoami", tok, nil) }

	tk := decodeTokens(srv.raw(t, "POST", "/_matrix/client/v3/login", "", []byte(`{"type":"m.login.password",
		"identifier":{"type":"m.id.user","user":"alice"},"password":"`+password("alice")+`","refresh_token":true}`)))
	if r := whoami(tk.AccessToken); r.status != 200 {
		t.Fatalf("whoami with the new access token: %s", r)
	}
	checkRaw(t, "a refresh token used as an access token", whoami(tk.RefreshToken), want{401, "M_UNKNOWN_TOKEN"})

	next := decodeTokens(refresh(tk.RefreshToken))
	checkRaw(t, "the access token before the refresh", whoami(tk.AccessToken), want{401, "M_UNKNOWN_TOKEN"})
	checkRaw(t, "the used refresh token", refresh(tk.RefreshToken), want{401, "M_UNKNOWN_TOKEN"})
	checkRaw(t, "an access token used as a refresh token", refresh(next.AccessToken), want{401, "M_UNKNOWN_TOKEN"})
	checkRaw(t, "no refresh token", srv.raw(t, "POST", "/_matrix/client/v3/refresh", "", []byte(`{}`)), want{400, "M_MISSING_PARAM"})
	if r := whoami(next.AccessToken); r.status != 200 {
		t.Fatalf("whoami after the refresh: %s", r)
	}

	// Expiry is a soft logout: the client refreshes and carries on.
	deadline := time.Now().Add(waitTimeout)
	for {
		r := whoami(next.AccessToken)
		if r.status == 401 {
			if r.errcode() != "M_UNKNOWN_TOKEN" || r.json["soft_logout"] != true {
				t.Fatalf("an expired access token: %s, want M_UNKNOWN_TOKEN with soft_logout", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the access token did not expire: %s", r)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Two refreshes race with one token: exactly one wins.
	var wg sync.WaitGroup
	results := make([]rawResponse, 2)
	errs := make([]error, 2)
	for i := range results {
		wg.Add(1)
		go func() { // off the test goroutine: send, which fails no test
			defer wg.Done()
			req, err := http.NewRequestWithContext(t.Context(), "POST", srv.URL+"/_matrix/client/v3/refresh",
				strings.NewReader(`{"refresh_token":"`+next.RefreshToken+`"}`))
			if err == nil {
				results[i], err = send(&http.Client{Timeout: httpTimeout}, req)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		must(t, "a racing refresh", err)
	}
	var won []tokens
	for _, r := range results {
		if r.status == 200 {
			won = append(won, decodeTokens(r))
		} else if r.errcode() != "M_UNKNOWN_TOKEN" {
			t.Errorf("the losing refresh: %s, want 401 M_UNKNOWN_TOKEN", r)
		}
	}
	if len(won) != 1 {
		t.Fatalf("%d of two racing refreshes won, want exactly one", len(won))
	}
	last := won[0]
	if r := srv.raw(t, "POST", "/_matrix/client/v3/logout", last.AccessToken, []byte(`{}`)); r.status != 200 {
		t.Fatalf("logout: %s", r)
	}
	checkRaw(t, "the refresh token after logout", refresh(last.RefreshToken), want{401, "M_UNKNOWN_TOKEN"})
}
