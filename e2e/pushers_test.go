package e2e

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"maunium.net/go/mautrix"
)

// pusherBody is a valid http pusher for POST /pushers/set.
func pusherBody(appID, pushkey string, extra map[string]any) []byte {
	p := map[string]any{
		"kind": "http", "app_id": appID, "pushkey": pushkey, "app_display_name": "e2e app",
		"device_display_name": "e2e device", "profile_tag": "tag", "lang": "en",
		"data": map[string]any{"url": "https://push.example.com/_matrix/push/v1/notify", "format": "event_id_only"},
	}
	for k, v := range extra {
		if v == nil {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	b, _ := json.Marshal(p)
	return b
}

// pushkeys lists the pushkeys of the user's pushers, as app_id/pushkey.
func pushkeys(t *testing.T, srv *server, tok string) []string {
	t.Helper()
	r := srv.raw(t, "GET", "/_matrix/client/v3/pushers", tok, nil)
	ps, ok := r.json["pushers"].([]any)
	if r.status != 200 || !ok {
		t.Fatalf("list pushers: %s", r)
	}
	var out []string
	for _, p := range ps {
		m := p.(map[string]any)
		out = append(out, m["app_id"].(string)+"/"+m["pushkey"].(string))
	}
	return out
}

// TestPushers sets, lists, replaces and removes pushers, checks the
// validation of what is set and that a pushkey moves between users unless
// appended.
func TestPushers(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	set := func(what, tok string, body []byte) {
		t.Helper()
		if r := srv.raw(t, "POST", "/_matrix/client/v3/pushers/set", tok, body); r.status != 200 {
			t.Fatalf("%s: %s", what, r)
		}
	}
	if got := pushkeys(t, srv, alice.AccessToken); len(got) != 0 {
		t.Fatalf("pushers before any: %v", got)
	}
	set("first pusher", alice.AccessToken, pusherBody("org.example.app", "key-1", map[string]any{"data": map[string]any{
		"url": "https://push.example.com/_matrix/push/v1/notify", "format": "event_id_only", "custom": "kept"}}))
	resp, err := alice.GetPushers(ctx)
	must(t, "list pushers with mautrix", err)
	if len(resp.Pushers) != 1 {
		t.Fatalf("pushers %+v, want 1", resp.Pushers)
	}
	p := resp.Pushers[0]
	if p.AppID != "org.example.app" || p.PushKey != "key-1" || p.Kind == nil || *p.Kind != "http" || p.Language != "en" ||
		p.ProfileTag != "tag" || p.AppDisplayName != "e2e app" || p.DeviceDisplayName != "e2e device" ||
		p.Data.URL() != "https://push.example.com/_matrix/push/v1/notify" || p.Data.Format() != "event_id_only" || p.Data["custom"] != "kept" {
		t.Errorf("pusher %+v", p)
	}
	raw := srv.raw(t, "GET", "/_matrix/client/v3/pushers", alice.AccessToken, nil)
	if strings.Contains(string(raw.body), string(alice.DeviceID)) || strings.Contains(string(raw.body), "created_ts") {
		t.Errorf("GET /pushers shows the internal fields: %s", raw)
	}

	// Same app ID and pushkey replaces; another pushkey adds.
	set("replace", alice.AccessToken, pusherBody("org.example.app", "key-1", map[string]any{"lang": "de"}))
	kind := mautrix.PusherKindHTTP
	must(t, "second pusher (mautrix)", alice.SetPusher(ctx, &mautrix.Pusher{Kind: &kind, AppID: "org.example.app", PushKey: "key-2",
		AppDisplayName: "e2e app", DeviceDisplayName: "e2e device", Language: "en",
		Data: mautrix.PusherData{"url": "http://push.example.com:8080/_matrix/push/v1/notify"}}))
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"org.example.app/key-1", "org.example.app/key-2"}) {
		t.Fatalf("pushers %v", got)
	}
	if resp, _ := alice.GetPushers(ctx); resp == nil || resp.Pushers[0].Language != "de" {
		t.Errorf("replaced pusher %+v", resp)
	}

	// A pushkey set by another user without append moves to them; with
	// append both keep it.
	set("bob takes key-1", bob.AccessToken, pusherBody("org.example.app", "key-1", nil))
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"org.example.app/key-2"}) {
		t.Errorf("alice's pushers after bob took key-1: %v", got)
	}
	set("bob appends key-2", bob.AccessToken, pusherBody("org.example.app", "key-2", map[string]any{"append": true}))
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"org.example.app/key-2"}) {
		t.Errorf("alice's pushers after bob appended key-2: %v", got)
	}
	if got := pushkeys(t, srv, bob.AccessToken); !slices.Equal(got, []string{"org.example.app/key-1", "org.example.app/key-2"}) {
		t.Errorf("bob's pushers %v", got)
	}

	// kind null removes (and removing what is not there is fine).
	set("remove key-2", alice.AccessToken, []byte(`{"kind":null,"app_id":"org.example.app","pushkey":"key-2"}`))
	set("remove it again", alice.AccessToken, []byte(`{"kind":null,"app_id":"org.example.app","pushkey":"key-2"}`))
	if got := pushkeys(t, srv, alice.AccessToken); len(got) != 0 {
		t.Errorf("alice's pushers after removal: %v", got)
	}
	if got := pushkeys(t, srv, bob.AccessToken); len(got) != 2 {
		t.Errorf("alice's removal touched bob's pushers: %v", got)
	}

	invalid, missing := want{400, "M_INVALID_PARAM"}, want{400, "M_MISSING_PARAM"}
	withURL := func(u string) map[string]any { return map[string]any{"data": map[string]any{"url": u}} }
	for _, c := range []struct {
		what string
		body []byte
		want want
	}{
		{"no url", pusherBody("a", "k", map[string]any{"data": map[string]any{"format": "event_id_only"}}), missing},
		{"ftp url", pusherBody("a", "k", withURL("ftp://push.example.com/_matrix/push/v1/notify")), invalid},
		{"relative url", pusherBody("a", "k", withURL("/_matrix/push/v1/notify")), invalid},
		{"not a url", pusherBody("a", "k", withURL("https://bad host/_matrix/push/v1/notify")), invalid},
		{"wrong path", pusherBody("a", "k", withURL("https://push.example.com/notify")), invalid},
		{"url not a string", pusherBody("a", "k", map[string]any{"data": map[string]any{"url": 5}}), invalid},
		{"no lang", pusherBody("a", "k", map[string]any{"lang": nil}), missing},
		{"no data", pusherBody("a", "k", map[string]any{"data": nil}), missing},
		{"no app_display_name", pusherBody("a", "k", map[string]any{"app_display_name": nil}), missing},
		{"no kind", pusherBody("a", "k", map[string]any{"kind": nil}), missing},
		{"no app_id", pusherBody("a", "k", map[string]any{"app_id": nil}), missing},
		{"no pushkey on removal", []byte(`{"kind":null,"app_id":"a"}`), missing},
		{"unknown kind", pusherBody("a", "k", map[string]any{"kind": "carrier-pigeon"}), invalid},
		{"email kind", pusherBody("a", "k", map[string]any{"kind": "email"}), invalid},
		{"long app_id", pusherBody(strings.Repeat("a", 65), "k", nil), invalid},
		{"long pushkey", pusherBody("a", strings.Repeat("k", 513), nil), invalid},
		{"app_id not a string", pusherBody("a", "k", map[string]any{"app_id": 7}), want{400, "M_BAD_JSON"}},
	} {
		checkRaw(t, c.what, srv.raw(t, "POST", "/_matrix/client/v3/pushers/set", alice.AccessToken, c.body), c.want)
	}
	if got := pushkeys(t, srv, alice.AccessToken); len(got) != 0 {
		t.Errorf("rejected pushers were stored: %v", got)
	}
}

// TestPushersGoWithTheirDevice: a password change deletes the pushers set
// by the user's other devices unless logout_devices is false
// (Complement's TestChangePasswordPushers), and a device's logout deletes
// its pushers.
func TestPushersGoWithTheirDevice(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	currentPassword := password("alice")
	other := func() *mautrix.Client {
		t.Helper()
		cli, err := login(t, srv, "alice", currentPassword)
		must(t, "log in again", err)
		return cli
	}
	changePassword := func(to string, logoutDevices *bool) {
		t.Helper()
		body := map[string]any{"new_password": to, "auth": map[string]any{"type": "m.login.password",
			"identifier": map[string]any{"type": "m.id.user", "user": alice.UserID}, "password": currentPassword}}
		if logoutDevices != nil {
			body["logout_devices"] = *logoutDevices
		}
		b, _ := json.Marshal(body)
		if r := srv.raw(t, "POST", "/_matrix/client/v3/account/password", alice.AccessToken, b); r.status != 200 {
			t.Fatalf("change password: %s", r)
		}
		currentPassword = to
	}
	setPusher := func(tok, pushkey string) {
		t.Helper()
		if r := srv.raw(t, "POST", "/_matrix/client/v3/pushers/set", tok, pusherBody("complement", pushkey, nil)); r.status != 200 {
			t.Fatalf("set pusher %s: %s", pushkey, r)
		}
	}

	// Set by another device: gone with the password change.
	phone := other()
	setPusher(phone.AccessToken, "a_push_key")
	changePassword("second-password", nil)
	if got := pushkeys(t, srv, alice.AccessToken); len(got) != 0 {
		t.Errorf("pushers of another device after the password change: %v", got)
	}
	// Set by the device that changes the password: kept.
	setPusher(alice.AccessToken, "a_push_key")
	changePassword("third-password", nil)
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"complement/a_push_key"}) {
		t.Errorf("own pusher after the password change: %v", got)
	}
	// logout_devices false keeps the other devices and their pushers.
	tablet := other()
	setPusher(tablet.AccessToken, "tablet_key")
	no := false
	changePassword("fourth-password", &no)
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"complement/a_push_key", "complement/tablet_key"}) {
		t.Errorf("pushers after a password change with logout_devices false: %v", got)
	}
	// A device that logs out takes its pushers along.
	_, err := tablet.Logout(ctx)
	must(t, "tablet logs out", err)
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"complement/a_push_key"}) {
		t.Errorf("pushers after the tablet logged out: %v", got)
	}
	// And they are in the replicated bucket: a restart keeps them.
	srv.restart(t)
	if got := pushkeys(t, srv, alice.AccessToken); !slices.Equal(got, []string{"complement/a_push_key"}) {
		t.Errorf("pushers after a restart: %v", got)
	}
}
