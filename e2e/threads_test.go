package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// unreadCounts is one room's unread counts in a raw /sync answer.
type unreadCounts struct {
	Main    counts            `json:"unread_notifications"`
	Threads map[string]counts `json:"unread_thread_notifications"`
}

type counts struct {
	N int `json:"notification_count"`
	H int `json:"highlight_count"`
}

func (u unreadCounts) String() string {
	b, _ := json.Marshal(u)
	return string(b)
}

// threadSyncFilter is Complement's filter for per-thread counts.
const threadSyncFilter = `{"room":{"timeline":{"unread_thread_notifications":true}}}`

// syncCounts returns room's unread counts from an initial /sync of c, with
// filter when it is not "".
func syncCounts(t *testing.T, srv *server, c *mautrix.Client, room id.RoomID, filter string) (unreadCounts, error) {
	t.Helper()
	path := "/_matrix/client/v3/sync?set_presence=offline"
	if filter != "" {
		path += "&filter=" + url.QueryEscape(filter)
	}
	resp := srv.raw(t, "GET", path, c.AccessToken, nil)
	if resp.status != 200 {
		return unreadCounts{}, fmt.Errorf("sync: %v", resp)
	}
	var body struct {
		Rooms struct {
			Join map[id.RoomID]json.RawMessage `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return unreadCounts{}, err
	}
	raw, ok := body.Rooms.Join[room]
	if !ok {
		return unreadCounts{}, fmt.Errorf("room %s not in rooms.join", room)
	}
	var u unreadCounts
	if err := json.Unmarshal(raw, &u); err != nil {
		return unreadCounts{}, err
	}
	if !strings.Contains(string(raw), `"unread_notifications"`) {
		return unreadCounts{}, fmt.Errorf("room %s has no unread_notifications: %s", room, raw)
	}
	return u, nil
}

// waitCounts waits until bob's counts in room are all without the filter
// (and no per-thread counts), and main and threads with it.
func waitCounts(t *testing.T, srv *server, bob *mautrix.Client, room id.RoomID, what string, all, main counts, threads map[string]counts) {
	t.Helper()
	want := func(got unreadCounts, m counts, th map[string]counts) bool {
		if got.Main != m || len(got.Threads) != len(th) {
			return false
		}
		for k, v := range th {
			if got.Threads[k] != v {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		plain, err1 := syncCounts(t, srv, bob, room, "")
		filtered, err2 := syncCounts(t, srv, bob, room, threadSyncFilter)
		if err1 == nil && err2 == nil && want(plain, all, nil) && want(filtered, main, threads) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: bob's counts without the filter %v (%v), with it %v (%v); want %+v, and main %+v, threads %+v",
				what, plain, err1, filtered, err2, all, main, threads)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// postReceipt posts bob's receipt of rtype on ev with body and returns the answer.
func postReceipt(t *testing.T, srv *server, c *mautrix.Client, room id.RoomID, rtype string, ev id.EventID, body string) rawResponse {
	t.Helper()
	path := "/_matrix/client/v3/rooms/" + url.PathEscape(string(room)) + "/receipt/" + rtype + "/" + url.PathEscape(string(ev))
	return srv.raw(t, "POST", path, c.AccessToken, []byte(body))
}

// mustOK fails the test unless r is a 200.
func mustOK(t *testing.T, what string, r rawResponse) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s: %v", what, r)
	}
}

// TestThreadedReceiptsAndCounts: alice posts in the main timeline and in
// two threads (a mention of bob in one); bob's /sync with
// unread_thread_notifications gives the main timeline's counts and each
// thread's apart, without it the room's; a threaded receipt clears only
// its thread (or the main timeline), an unthreaded one everything before
// it; bad thread IDs are 400 M_INVALID_PARAM; alice sees the thread_id of
// bob's receipts; a node whose read model is deleted rebuilds the same
// counts from the log.
func TestThreadedReceiptsAndCounts(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)
	say := func(body string, extra map[string]any) id.EventID {
		t.Helper()
		c := map[string]any{"msgtype": "m.text", "body": body}
		for k, v := range extra {
			c[k] = v
		}
		resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage, c)
		must(t, "alice sends "+body, err)
		return resp.EventID
	}
	inThread := func(root id.EventID) map[string]any {
		return map[string]any{"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": root}}
	}
	m1 := say("main one", nil)
	r1 := say("root one", nil)
	r2 := say("root two", nil)
	say("thread one, first", inThread(r1))
	t1b := say("thread one, mentioning bob", map[string]any{
		"m.relates_to": map[string]any{"rel_type": "m.thread", "event_id": r1},
		"m.mentions":   map[string]any{"user_ids": []id.UserID{bob.UserID}}})
	t2a := say("thread two, first", inThread(r2))
	m2 := say("main two", nil)

	R1, R2 := string(r1), string(r2)
	waitCounts(t, srv, bob, room, "before any receipt", counts{7, 1}, counts{4, 0},
		map[string]counts{R1: {2, 1}, R2: {1, 0}})

	// Bad thread IDs.
	for _, c := range []struct {
		what, rtype string
		ev          id.EventID
		body        string
	}{
		{"a thread reply for the main timeline", "m.read", t2a, `{"thread_id":"main"}`},
		{"a reply of thread two for thread one", "m.read", t2a, `{"thread_id":"` + R1 + `"}`},
		{"a main event for a thread", "m.read", m2, `{"thread_id":"` + R1 + `"}`},
		{"a thread ID that is no thread root", "m.read", m1, `{"thread_id":"` + string(m1) + `"}`},
		{"a thread_id that is no string", "m.read", m2, `{"thread_id":5}`},
		{"an empty thread_id", "m.read", m2, `{"thread_id":""}`},
		{"m.fully_read with a thread_id", "m.fully_read", m2, `{"thread_id":"main"}`},
	} {
		checkRaw(t, c.what, postReceipt(t, srv, bob, room, c.rtype, c.ev, c.body), want{400, "M_INVALID_PARAM"})
	}
	waitCounts(t, srv, bob, room, "after the refused receipts", counts{7, 1}, counts{4, 0},
		map[string]counts{R1: {2, 1}, R2: {1, 0}})

	// A threaded receipt clears its thread only.
	mustOK(t, "bob reads thread one", postReceipt(t, srv, bob, room, "m.read", t1b, `{"thread_id":"`+R1+`"}`))
	waitCounts(t, srv, bob, room, "after reading thread one", counts{5, 0}, counts{4, 0},
		map[string]counts{R2: {1, 0}})
	mustOK(t, "bob reads the main timeline to root two", postReceipt(t, srv, bob, room, "m.read", r2, `{"thread_id":"main"}`))
	waitCounts(t, srv, bob, room, "after reading main to root two", counts{2, 0}, counts{1, 0},
		map[string]counts{R2: {1, 0}})

	// Alice sees bob's receipts with their threads.
	deadline := time.Now().Add(waitTimeout)
	for {
		err := threadedReceiptsShown(t, srv, alice, room, bob.UserID, map[id.EventID]string{t1b: R1, r2: "main"})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The counts are derived from the log and the receipts bucket: a
	// rebuilt read model gives the same.
	srv.stop(t)
	if err := os.RemoveAll(filepath.Join(srv.dataDir, "readmodel")); err != nil {
		t.Fatal(err)
	}
	srv.start(t)
	waitCounts(t, srv, bob, room, "after rebuilding the read model", counts{2, 0}, counts{1, 0},
		map[string]counts{R2: {1, 0}})

	// An unthreaded receipt clears everything before it.
	mustOK(t, "bob reads everything", postReceipt(t, srv, bob, room, "m.read", m2, `{}`))
	waitCounts(t, srv, bob, room, "after the unthreaded receipt", counts{0, 0}, counts{0, 0}, nil)
}

// threadedReceiptsShown checks that c's initial sync shows user's m.read
// receipts of the given events with the given thread_id.
func threadedReceiptsShown(t *testing.T, srv *server, c *mautrix.Client, room id.RoomID, user id.UserID, threads map[id.EventID]string) error {
	t.Helper()
	resp := srv.raw(t, "GET", "/_matrix/client/v3/sync?set_presence=offline", c.AccessToken, nil)
	if resp.status != 200 {
		return fmt.Errorf("sync: %v", resp)
	}
	var body struct {
		Rooms struct {
			Join map[id.RoomID]struct {
				Ephemeral struct {
					Events []struct {
						Type    string                                                 `json:"type"`
						Content map[id.EventID]map[string]map[id.UserID]map[string]any `json:"content"`
					} `json:"events"`
				} `json:"ephemeral"`
			} `json:"join"`
		} `json:"rooms"`
	}
	if err := json.Unmarshal(resp.body, &body); err != nil {
		return err
	}
	for ev, thread := range threads {
		found := false
		for _, e := range body.Rooms.Join[room].Ephemeral.Events {
			if r, ok := e.Content[ev]["m.read"][user]; e.Type == "m.receipt" && ok {
				if r["thread_id"] != thread {
					return fmt.Errorf("%s's receipt of %s has thread_id %v, want %s", user, ev, r["thread_id"], thread)
				}
				found = true
			}
		}
		if !found {
			return fmt.Errorf("no m.read receipt of %s for %s in %s", user, ev, resp.body)
		}
	}
	return nil
}
