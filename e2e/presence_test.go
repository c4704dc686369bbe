package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// presenceSync is the presence part of a /sync answer.
type presenceSync struct {
	NextBatch string `json:"next_batch"`
	Presence  *struct {
		Events []presenceEvent `json:"events"`
	} `json:"presence"`
}

// presenceEvent is an m.presence event as /sync returns it.
type presenceEvent struct {
	Type    string `json:"type"`
	Sender  string `json:"sender"`
	Content struct {
		Presence        string  `json:"presence"`
		StatusMsg       *string `json:"status_msg"`
		LastActiveAgo   *int64  `json:"last_active_ago"`
		CurrentlyActive *bool   `json:"currently_active"`
	} `json:"content"`
}

// syncPresence runs GET /sync as token since since ("": initial), waiting
// up to timeout, with set_presence set ("": not sent), and checks the
// shape of its presence section: present, every event an m.presence with
// a sender and a presence, no sender twice. It returns the answer and its
// presence events by sender.
func syncPresence(t *testing.T, srv *server, token, since, set string, timeout time.Duration) (presenceSync, map[string]presenceEvent) {
	t.Helper()
	s, by, err := fetchPresence(srv, token, since, set, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return s, by
}

// fetchPresence is syncPresence for goroutines: it returns an error
// instead of failing the test.
func fetchPresence(srv *server, token, since, set string, timeout time.Duration) (presenceSync, map[string]presenceEvent, error) {
	q := url.Values{"timeout": {fmt.Sprint(timeout.Milliseconds())}}
	if since != "" {
		q.Set("since", since)
	}
	if set != "" {
		q.Set("set_presence", set)
	}
	req, err := http.NewRequest("GET", srv.URL+"/_matrix/client/v3/sync?"+q.Encode(), nil)
	if err != nil {
		return presenceSync{}, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: httpTimeout, Transport: sharedTransport}).Do(req)
	if err != nil {
		return presenceSync{}, nil, fmt.Errorf("sync: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return presenceSync{}, nil, fmt.Errorf("sync: read the answer: %w", err)
	}
	if resp.StatusCode != 200 {
		return presenceSync{}, nil, fmt.Errorf("sync: HTTP %d %s", resp.StatusCode, body)
	}
	var s presenceSync
	if err := json.Unmarshal(body, &s); err != nil {
		return presenceSync{}, nil, fmt.Errorf("sync answer: %w", err)
	}
	if s.Presence == nil || s.Presence.Events == nil {
		return presenceSync{}, nil, fmt.Errorf("sync answer without presence.events: %s", body)
	}
	by := map[string]presenceEvent{}
	for _, e := range s.Presence.Events {
		if e.Type != "m.presence" || e.Sender == "" || e.Content.Presence == "" {
			return presenceSync{}, nil, fmt.Errorf("malformed presence event %+v in %s", e, body)
		}
		if _, dup := by[e.Sender]; dup {
			return presenceSync{}, nil, fmt.Errorf("presence of %s twice in one sync: %s", e.Sender, body)
		}
		by[e.Sender] = e
	}
	return s, by, nil
}

// putPresence sets the user's presence with a raw PUT and checks it
// answers 200 {}.
func putPresence(t *testing.T, srv *server, c *mautrix.Client, body string) {
	t.Helper()
	r := srv.raw(t, "PUT", "/_matrix/client/v3/presence/"+url.PathEscape(c.UserID.String())+"/status", c.AccessToken, []byte(body))
	if r.status != 200 || string(r.body) != "{}\n" {
		t.Fatalf("PUT presence %s as %s: %s", body, c.UserID, r)
	}
}

// TestPresenceAPI covers PUT and GET /presence/{userId}/status and their
// errors.
func TestPresenceAPI(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	path := func(user id.UserID) string {
		return "/_matrix/client/v3/presence/" + url.PathEscape(user.String()) + "/status"
	}

	// Before anything is set, a user is offline.
	p, err := alice.GetOwnPresence(ctx)
	must(t, "GET own initial presence", err)
	if p.Presence != event.PresenceOffline {
		t.Errorf("initial presence %q, want offline", p.Presence)
	}

	must(t, "PUT presence", alice.SetPresence(ctx, mautrix.ReqPresence{Presence: event.PresenceOnline, StatusMsg: "testing"}))
	r := srv.raw(t, "GET", path(alice.UserID), alice.AccessToken, nil)
	if r.status != 200 || r.json["presence"] != "online" || r.json["status_msg"] != "testing" ||
		r.json["currently_active"] != true {
		t.Fatalf("GET after PUT online: %s", r)
	}
	if ago, ok := r.json["last_active_ago"].(float64); !ok || ago < 0 || ago > 60_000 {
		t.Errorf("last_active_ago after PUT: %v", r.json["last_active_ago"])
	}
	// The same under the r0 prefix older clients use.
	if r := srv.raw(t, "GET", "/_matrix/client/r0/presence/"+url.PathEscape(alice.UserID.String())+"/status", alice.AccessToken, nil); r.status != 200 || r.json["presence"] != "online" {
		t.Errorf("GET under r0: %s", r)
	}

	// A PUT without status_msg clears it.
	putPresence(t, srv, alice, `{"presence":"unavailable"}`)
	if r := srv.raw(t, "GET", path(alice.UserID), alice.AccessToken, nil); r.status != 200 || r.json["presence"] != "unavailable" ||
		r.json["status_msg"] != nil || r.json["currently_active"] != false {
		t.Errorf("GET after PUT unavailable: %s", r)
	}

	// Errors.
	checkRaw(t, "PUT someone else's presence", srv.raw(t, "PUT", path(bob.UserID), alice.AccessToken, []byte(`{"presence":"online"}`)), forbidden)
	badParam := want{http.StatusBadRequest, "M_INVALID_PARAM"}
	checkRaw(t, "PUT presence busy", srv.raw(t, "PUT", path(alice.UserID), alice.AccessToken, []byte(`{"presence":"busy"}`)), badParam)
	checkRaw(t, "PUT presence without presence", srv.raw(t, "PUT", path(alice.UserID), alice.AccessToken, []byte(`{"status_msg":"x"}`)),
		want{http.StatusBadRequest, "M_MISSING_PARAM"})
	checkRaw(t, "PUT presence with a numeric status_msg", srv.raw(t, "PUT", path(alice.UserID), alice.AccessToken, []byte(`{"presence":"online","status_msg":5}`)),
		want{http.StatusBadRequest, "M_BAD_JSON"})
	checkRaw(t, "PUT presence that is not JSON", srv.raw(t, "PUT", path(alice.UserID), alice.AccessToken, []byte(`presence`)),
		want{http.StatusBadRequest, "M_NOT_JSON"})
	long := make([]byte, 5000)
	for i := range long {
		long[i] = 'x'
	}
	checkRaw(t, "PUT presence with a 5000-byte status_msg", srv.raw(t, "PUT", path(alice.UserID), alice.AccessToken,
		[]byte(`{"presence":"online","status_msg":"`+string(long)+`"}`)), badParam)
	if r := srv.raw(t, "PUT", path(alice.UserID), "", []byte(`{"presence":"online"}`)); r.status != http.StatusUnauthorized || r.errcode() != "M_MISSING_TOKEN" {
		t.Errorf("PUT presence without a token: %s", r)
	}
	// None of the failed PUTs changed anything.
	if r := srv.raw(t, "GET", path(alice.UserID), alice.AccessToken, nil); r.json["presence"] != "unavailable" {
		t.Errorf("presence after the failed PUTs: %s", r)
	}

	for _, u := range []string{"@nobody:" + serverName, "@alice:elsewhere.example", "nobody", "!room:" + serverName} {
		checkRaw(t, "GET presence of "+u, srv.raw(t, "GET", "/_matrix/client/v3/presence/"+url.PathEscape(u)+"/status", alice.AccessToken, nil), notFound)
	}
	// Another user's presence is shown only to those who share a room.
	_, err = bob.GetPresence(ctx, alice.UserID)
	checkErr(t, "bob GETs alice's presence sharing no room", err, forbidden)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create room", err)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	must(t, "bob joins", err)
	p, err = bob.GetPresence(ctx, alice.UserID)
	must(t, "bob GETs alice's presence in a shared room", err)
	if p.Presence != event.PresenceUnavailable {
		t.Errorf("bob sees alice %q, want unavailable", p.Presence)
	}
	_, err = bob.LeaveRoom(ctx, room.RoomID)
	must(t, "bob leaves", err)
	_, err = bob.GetPresence(ctx, alice.UserID)
	checkErr(t, "bob GETs alice's presence after leaving", err, forbidden)
}

// TestPresenceInSync: presence changes reach those who share a room with
// the user, in incremental syncs, once, waking a long poll; an initial
// sync shows the current presence of room peers; set_presence sets it;
// nobody who shares no room hears of it.
func TestPresenceInSync(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, _ := twoInRoom(t, srv)
	carol := newUser(t, srv, "carol") // shares no room with alice or bob
	_, err := carol.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	must(t, "carol creates her own room", err)

	// bob's own sync makes him online; set_presence=offline leaves alice as she is.
	first, by := syncPresence(t, srv, bob.AccessToken, "", "", 0)
	if by[bob.UserID.String()].Content.Presence != "online" {
		t.Errorf("bob's first sync does not show him online: %+v", by)
	}
	carolFirst, _ := syncPresence(t, srv, carol.AccessToken, "", "offline", 0)
	_, by = syncPresence(t, srv, alice.AccessToken, "", "offline", 0)
	if _, ok := by[alice.UserID.String()]; ok {
		t.Errorf("alice synced with set_presence=offline, yet she is shown: %+v", by)
	}
	if by[bob.UserID.String()].Content.Presence != "online" {
		t.Errorf("alice's initial sync does not show bob online: %+v", by)
	}

	// A change wakes bob's long poll.
	type result struct {
		s    presenceSync
		by   map[string]presenceEvent
		err  error
		took time.Duration
	}
	done := make(chan result, 1)
	go func() {
		start := time.Now()
		s, by, err := fetchPresence(srv, bob.AccessToken, first.NextBatch, "", 25*time.Second)
		done <- result{s, by, err, time.Since(start)}
	}()
	time.Sleep(300 * time.Millisecond) // most likely waiting now; if not, it returns at once, also right
	putPresence(t, srv, alice, `{"presence":"unavailable","status_msg":"lunch"}`)
	putPresence(t, srv, carol, `{"presence":"online","status_msg":"carol's"}`)
	var res result
	select {
	case res = <-done:
	case <-time.After(40 * time.Second):
		t.Fatal("bob's long poll did not return within 40s")
	}
	must(t, "bob's long poll", res.err)
	if res.took > 15*time.Second {
		t.Errorf("bob's long poll returned after %s, want soon after alice's change", res.took)
	}
	// The poll may have returned before alice's change was applied, so go on
	// syncing until it shows.
	since, by := res.s.NextBatch, res.by
	seen := map[string]bool{}
	testutil.WaitFor(t, waitTimeout, "bob sees alice unavailable with her status", func() error {
		for id := range by {
			seen[id] = true
		}
		e, ok := by[alice.UserID.String()]
		if ok && e.Content.Presence == "unavailable" && e.Content.StatusMsg != nil && *e.Content.StatusMsg == "lunch" {
			return nil
		}
		var s presenceSync
		s, by = syncPresence(t, srv, bob.AccessToken, since, "", 2*time.Second)
		since = s.NextBatch
		return fmt.Errorf("bob's last sync shows %+v", by)
	})
	// Not again, and never carol.
	s, by := syncPresence(t, srv, bob.AccessToken, since, "", 0)
	if len(by) != 0 {
		t.Errorf("bob's next sync shows presence again: %+v", by)
	}
	if seen[carol.UserID.String()] {
		t.Errorf("bob saw the presence of carol, with whom he shares no room")
	}

	// set_presence=unavailable on a sync sets it; bob sees it.
	syncPresence(t, srv, alice.AccessToken, "", "online", 0)
	syncPresence(t, srv, alice.AccessToken, "", "unavailable", 0)
	since = s.NextBatch
	testutil.WaitFor(t, waitTimeout, "bob sees alice's sync-set presence", func() error {
		s, by := syncPresence(t, srv, bob.AccessToken, since, "", 2*time.Second)
		since = s.NextBatch
		if e, ok := by[alice.UserID.String()]; ok && e.Content.Presence == "unavailable" {
			// The status message set by PUT survives presence set by sync.
			if e.Content.StatusMsg == nil || *e.Content.StatusMsg != "lunch" {
				return fmt.Errorf("alice's status message is gone: %+v", e)
			}
			return nil
		}
		return fmt.Errorf("bob's last sync shows %+v", by)
	})
	p, err := alice.GetOwnPresence(ctx)
	must(t, "alice GETs her presence", err)
	if p.Presence != event.PresenceUnavailable {
		t.Errorf("after a sync with set_presence=unavailable alice is %q", p.Presence)
	}
	// carol heard nothing of alice or bob throughout.
	_, by = syncPresence(t, srv, carol.AccessToken, carolFirst.NextBatch, "offline", 0)
	if len(by) != 1 || by[carol.UserID.String()].Content.Presence != "online" {
		t.Errorf("carol's sync shows %+v, want only her own presence", by)
	}
}

// TestPresenceOfNewRoomMembers: when someone joins a room, the members'
// next incremental syncs show the joiner's presence, and the joiner's
// shows theirs — even though nobody's presence changed — once (Complement's
// TestSync "Newly joined room includes presence in incremental sync" and
// "Get presence for newly joined members in incremental sync", and
// TestMembersLocal).
func TestPresenceOfNewRoomMembers(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat"})
	must(t, "create room", err)
	putPresence(t, srv, bob, `{"presence":"online"}`)
	aliceTok, _ := syncPresence(t, srv, alice.AccessToken, "", "", 0)
	bobTok, _ := syncPresence(t, srv, bob.AccessToken, "", "", 0)
	_, err = bob.JoinRoomByID(ctx, room.RoomID)
	must(t, "bob joins", err)

	for _, c := range []struct {
		who, other *mautrix.Client
		since      string
	}{{alice, bob, aliceTok.NextBatch}, {bob, alice, bobTok.NextBatch}} {
		since := c.since
		testutil.WaitFor(t, waitTimeout, fmt.Sprintf("%s sees %s's presence", c.who.UserID, c.other.UserID), func() error {
			s, by := syncPresence(t, srv, c.who.AccessToken, since, "", 2*time.Second)
			since = s.NextBatch
			if e, ok := by[c.other.UserID.String()]; ok {
				if e.Content.Presence != "online" {
					return fmt.Errorf("%s shows as %q", c.other.UserID, e.Content.Presence)
				}
				return nil
			}
			return fmt.Errorf("%s's sync shows %+v", c.who.UserID, by)
		})
		if _, by := syncPresence(t, srv, c.who.AccessToken, since, "", 0); len(by) != 0 {
			t.Errorf("%s's next sync shows presence again: %+v", c.who.UserID, by)
		}
	}
	// An initial sync shows the new member's presence too.
	_, by := syncPresence(t, srv, alice.AccessToken, "", "", 0)
	if !slices.Contains(keys(by), bob.UserID.String()) {
		t.Errorf("alice's initial sync lacks bob's presence: %+v", by)
	}
}

// keys returns a map's keys, for messages.
func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestPresenceTimeout: a user who stops syncing goes offline after the
// presence timeout, and the members of their rooms see it; a user who
// keeps syncing, or waits in a long poll, stays online.
func TestPresenceTimeout(t *testing.T) {
	srv := startServer(t, withFlags("--presence-timeout", "8s"))
	alice, bob, _ := twoInRoom(t, srv)
	putPresence(t, srv, alice, `{"presence":"online","status_msg":"away soon"}`)
	first, _ := syncPresence(t, srv, bob.AccessToken, "", "", 0)

	// bob keeps syncing (each sync at most 1 s); alice does nothing.
	start := time.Now()
	since := first.NextBatch
	testutil.WaitFor(t, 60*time.Second, "bob sees alice go offline", func() error {
		s, by := syncPresence(t, srv, bob.AccessToken, since, "", time.Second)
		since = s.NextBatch
		if e, ok := by[alice.UserID.String()]; ok && e.Content.Presence == "offline" {
			if e.Content.StatusMsg == nil || *e.Content.StatusMsg != "away soon" {
				return fmt.Errorf("the status message did not survive the timeout: %+v", e)
			}
			return nil
		}
		return fmt.Errorf("bob's last sync shows %+v", by)
	})
	if took := time.Since(start); took < 4*time.Second {
		t.Errorf("alice went offline after %s, before the 8s timeout could pass", took)
	}
	p, err := bob.GetOwnPresence(t.Context())
	must(t, "bob GETs his presence", err)
	if p.Presence != event.PresenceOnline {
		t.Errorf("bob kept syncing but is %q", p.Presence)
	}

	// A long poll of 15 s, longer than the timeout, with nothing to wake
	// it, keeps bob online.
	syncPresence(t, srv, bob.AccessToken, since, "", 15*time.Second)
	p, err = bob.GetOwnPresence(t.Context())
	must(t, "bob GETs his presence after a long poll", err)
	if p.Presence != event.PresenceOnline {
		t.Errorf("after a 15 s long poll bob is %q, want online", p.Presence)
	}
	pa, err := bob.GetPresence(t.Context(), alice.UserID)
	must(t, "bob GETs alice's presence", err)
	if pa.Presence != event.PresenceOffline {
		t.Errorf("alice is %q, want offline", pa.Presence)
	}
}

// TestPresenceAcrossRestart: presence lives in the replicated bucket; a
// restarted node, which reads it afresh, shows the same presence and
// repeats no change to a token from before the restart.
func TestPresenceAcrossRestart(t *testing.T) {
	srv := startServer(t)
	alice, bob, _ := twoInRoom(t, srv)
	putPresence(t, srv, alice, `{"presence":"unavailable","status_msg":"kept"}`)
	tok, by := syncPresence(t, srv, bob.AccessToken, "", "", 0)
	if e := by[alice.UserID.String()]; e.Content.Presence != "unavailable" {
		t.Fatalf("bob's initial sync shows alice as %+v", e)
	}

	srv.restart(t)
	p, err := bob.GetPresence(t.Context(), alice.UserID)
	must(t, "GET alice's presence after the restart", err)
	if p.Presence != event.PresenceUnavailable || p.StatusMsg != "kept" {
		t.Errorf("after the restart alice's presence is %+v", p)
	}
	if _, by := syncPresence(t, srv, bob.AccessToken, tok.NextBatch, "", 0); len(by) != 0 {
		t.Errorf("after the restart bob's sync since a token from before shows %+v again", by)
	}
	_, by = syncPresence(t, srv, bob.AccessToken, "", "", 0)
	if e := by[alice.UserID.String()]; e.Content.Presence != "unavailable" || e.Content.StatusMsg == nil || *e.Content.StatusMsg != "kept" {
		t.Errorf("bob's initial sync after the restart shows alice as %+v", e)
	}
}
