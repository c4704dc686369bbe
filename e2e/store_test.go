package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// clockBound matches what moves with the clock rather than with the log:
// event ages, how long ago a user was active and the typing part of sync
// tokens (fourth from the end).
var clockBound = regexp.MustCompile(`"age":[0-9]+|"last_active_ago":[0-9]+|"currently_active":(true|false)|(s[0-9_]+_[0-9]+_[0-9]+)_[0-9]+(_[0-9]+_[0-9]+_[0-9]+")`)

// readBack is everything alice and bob can read about room, as the JSON
// the server answers.
func readBack(t *testing.T, srv *server, alice, bob *mautrix.Client, room id.RoomID, eventID id.EventID) string {
	t.Helper()
	r := url.PathEscape(string(room))
	var b strings.Builder
	for _, c := range []*mautrix.Client{alice, bob} {
		for _, path := range []string{
			"/_matrix/client/v3/rooms/" + r + "/messages?dir=b&limit=1000",
			"/_matrix/client/v3/rooms/" + r + "/messages?dir=f&limit=7",
			"/_matrix/client/v3/rooms/" + r + "/state",
			"/_matrix/client/v3/rooms/" + r + "/members",
			"/_matrix/client/v3/rooms/" + r + "/joined_members",
			"/_matrix/client/v3/rooms/" + r + "/context/" + url.PathEscape(string(eventID)) + "?limit=6",
			"/_matrix/client/v3/rooms/" + r + "/event/" + url.PathEscape(string(eventID)),
			"/_matrix/client/v3/joined_rooms",
			// set_presence=offline: reading back changes nobody's presence.
			"/_matrix/client/v3/sync?set_presence=offline",
		} {
			resp := srv.raw(t, "GET", path, c.AccessToken, nil)
			if resp.status != 200 {
				t.Fatalf("GET %s as %s: %v", path, c.UserID, resp)
			}
			fmt.Fprintf(&b, "%s %s\n%s\n", c.UserID, path, clockBound.ReplaceAll(resp.body, []byte("$2~$3")))
		}
	}
	return b.String()
}

// sameReadBack fails at the first answer that differs.
func sameReadBack(t *testing.T, what, before, after string) {
	t.Helper()
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	line := func(l []string, i int) string {
		if i >= 0 && i < len(l) {
			return l[i]
		}
		return "(none)"
	}
	for i := range max(len(a), len(b)) {
		if x, y := line(b, i), line(a, i); x != y {
			at := 0
			for at < min(len(x), len(y)) && x[at] == y[at] {
				at++
			}
			from := max(0, at-300)
			t.Fatalf("%s: the answer after %q differs at byte %d:\nbefore: …%.900s\nafter:  …%.900s", what, line(b, i-1), at, x[from:], y[from:])
		}
	}
}

// TestReadModelStoreIsOnlyDerived checks that each node's on-disk read
// models hold nothing the log does not: a restarted node resumes from its
// store and answers exactly as before; a node whose store was deleted, or
// that was killed mid-write, rebuilds and answers exactly as before too.
func TestReadModelStoreIsOnlyDerived(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice, bob, room := twoInRoom(t, srv)
	var first id.EventID
	for i := range 40 {
		resp, err := alice.SendMessageEvent(ctx, room, event.EventMessage, text(fmt.Sprintf("history %d", i)),
			mautrix.ReqSendEvent{TransactionID: fmt.Sprintf("history-%d", i)})
		must(t, "send history", err)
		if i == 0 {
			first = resp.EventID
		}
	}
	secret, err := bob.SendText(ctx, room, "to be redacted")
	must(t, "send the secret", err)
	_, err = bob.RedactEvent(ctx, room, secret.EventID)
	must(t, "redact", err)
	_, err = alice.SendStateEvent(ctx, room, event.StateTopic, "", map[string]any{"topic": "kept across restarts"})
	must(t, "set the topic", err)
	must(t, "bob's receipt", bob.SendReceipt(ctx, room, first, event.ReceiptTypeRead, nil))
	must(t, "alice's account data", alice.SetAccountData(ctx, "org.planb.test", map[string]any{"n": 1}))
	// The receipt and the account data reach the model after their writes
	// are acknowledged: wait until alice's sync shows both, so that what is
	// compared is complete.
	deadline := time.Now().Add(waitTimeout)
	for {
		resp := srv.raw(t, "GET", "/_matrix/client/v3/sync", alice.AccessToken, nil)
		if resp.status == 200 && strings.Contains(string(resp.body), `"m.receipt"`) && strings.Contains(string(resp.body), "org.planb.test") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's sync never showed bob's receipt and her account data: %v", resp)
		}
		time.Sleep(100 * time.Millisecond)
	}
	before := readBack(t, srv, alice, bob, room, first)

	srv.restart(t)
	if !strings.Contains(srv.logs.tail(64<<10), "read models resume from their store") {
		t.Fatal("the restarted node did not say it resumed from its store")
	}
	sameReadBack(t, "after a restart", before, readBack(t, srv, alice, bob, room, first))
	again, err := alice.SendMessageEvent(ctx, room, event.EventMessage, text("history 0"), mautrix.ReqSendEvent{TransactionID: "history-0"})
	must(t, "retry a transaction after the restart", err)
	if again.EventID != first {
		t.Fatalf("a retried transaction after the restart made %s, want the original %s", again.EventID, first)
	}

	srv.stop(t)
	if err := os.RemoveAll(filepath.Join(srv.dataDir, "readmodel")); err != nil {
		t.Fatal(err)
	}
	srv.start(t)
	if !strings.Contains(srv.logs.tail(64<<10), "no store yet") {
		t.Fatal("the node whose store was deleted did not say it rebuilds")
	}
	sameReadBack(t, "after deleting the store", before, readBack(t, srv, alice, bob, room, first))

	// Killed while writing: whatever the store lost with its unsynced
	// tail, it lost with the positions, and it catches up from the log.
	for i := range 20 {
		_, err := alice.SendText(ctx, room, fmt.Sprintf("before the kill %d", i))
		must(t, "send before the kill", err)
	}
	_ = srv.proc.cmd.Process.Kill()
	<-srv.proc.done
	srv.proc = nil
	sharedTransport.CloseIdleConnections()
	srv.start(t)
	all, err := allMessages(ctx, bob, room, 100)
	must(t, "read after the kill", err)
	n := 0
	for _, ev := range all {
		if strings.HasPrefix(body(ev), "before the kill ") {
			n++
		}
	}
	if n != 20 {
		t.Fatalf("after SIGKILL and restart bob reads %d of the 20 messages sent before the kill", n)
	}
	var state []json.RawMessage
	resp := srv.raw(t, "GET", "/_matrix/client/v3/rooms/"+url.PathEscape(string(room))+"/state", bob.AccessToken, nil)
	if resp.status != 200 || json.Unmarshal(resp.body, &state) != nil || !strings.Contains(string(resp.body), "kept across restarts") {
		t.Fatalf("state after the kill: %v", resp)
	}
}
