package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/planb-chat/planb"
)

// threadFilter asks /sync for per-thread notification counts.
func threadFilter() *Filter {
	return &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{UnreadThreadNotifs: true}}}
}

// threadCounts returns user's unread counts in room: the room's without
// the filter, and the main timeline's and each thread's with it.
type threadCounts struct {
	all, main Unread
	threads   map[string]Unread
}

func (c threadCounts) String() string {
	return fmt.Sprintf("all %+v, main %+v, threads %+v", c.all, c.main, c.threads)
}

func countsOf(t *testing.T, w *world, user, roomID string) threadCounts {
	t.Helper()
	resp, _, _ := w.sync(user, nil, nil)
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		t.Fatalf("%s is not joined to %s", user, roomID)
	}
	if jr.UnreadThreadNotifications != nil {
		t.Errorf("unread_thread_notifications %v without the filter asking", jr.UnreadThreadNotifications)
	}
	c := threadCounts{all: jr.UnreadNotifications}
	resp, _, _ = w.sync(user, nil, threadFilter())
	jr = resp.Rooms.Join[roomID]
	c.main, c.threads = jr.UnreadNotifications, jr.UnreadThreadNotifications
	return c
}

func wantCounts(t *testing.T, what string, got threadCounts, all, main Unread, threads map[string]Unread) {
	t.Helper()
	ok := got.all == all && got.main == main && len(got.threads) == len(threads)
	for k, v := range threads {
		ok = ok && got.threads[k] == v
	}
	if !ok {
		t.Errorf("%s: %s; want all %+v, main %+v, threads %+v", what, got, all, main, threads)
	}
}

// mentionOf is message content that mentions user.
func mentionOf(user, body string, extra obj) obj {
	c := obj{"msgtype": "m.text", "body": body, "m.mentions": obj{"user_ids": []string{user}}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// twoThreads is the room of TestThreadedUnreadCounts: alice writes, bob
// reads.
//
//	A ← B ← C(mention) ← E   thread of A
//	D(mention)               main
//	F → A (m.reference)      main
//	G → F (m.annotation)     main, does not notify
//	X ← Y ← Z(mention)       thread of X (X in main)
type twoThreads struct {
	r                               *room
	a, b, c, d, e, f, g, x, y, z, n *planb.Event
}

func newTwoThreads(w *world) *twoThreads {
	r := w.createRoom("!threads:hs", 0, alice, "shared")
	r.join(bob)
	s := &twoThreads{r: r}
	s.a = r.say(alice, "A")
	s.b = r.reply(alice, s.a.EventID, "B")
	s.c = r.send(alice, relates(RelThread, s.a.EventID, mentionOf(bob, "C", nil)))
	s.d = r.send(alice, mentionOf(bob, "D", nil))
	s.e = r.reply(alice, s.a.EventID, "E")
	s.f = r.send(alice, relates("m.reference", s.a.EventID, obj{"msgtype": "m.text", "body": "F"}))
	s.g = s.react(alice, s.f.EventID)
	s.x = r.say(alice, "X")
	s.y = r.reply(alice, s.x.EventID, "Y")
	s.z = r.send(alice, relates(RelThread, s.x.EventID, mentionOf(bob, "Z", nil)))
	// A reaction to a thread reply is in the thread, and does not notify.
	s.n = s.react(alice, s.y.EventID)
	return s
}

// react commits an m.reaction to target.
func (s *twoThreads) react(sender, target string) *planb.Event {
	ev := s.r.event(sender, "m.reaction", nil, obj{"m.relates_to": obj{"rel_type": "m.annotation", "event_id": target, "key": "+"}})
	s.r.commit(ev)
	return ev
}

// TestThreadedUnreadCounts follows Complement's TestThreadedReceipts with a
// second thread: per-thread counts with the filter, threaded receipts
// clearing their thread only, an unthreaded one clearing everything
// before it.
func TestThreadedUnreadCounts(t *testing.T) {
	w := newWorld(t, 1)
	s := newTwoThreads(w)
	A, X := s.a.EventID, s.x.EventID
	wantCounts(t, "before any receipt", countsOf(t, w, bob, s.r.id),
		Unread{9, 3}, Unread{4, 1}, map[string]Unread{A: {3, 1}, X: {2, 1}})
	wantCounts(t, "alice's own", countsOf(t, w, alice, s.r.id), Unread{}, Unread{}, nil)

	pos := uint64(0)
	receipt := func(rtype string, ev *planb.Event, thread string) {
		t.Helper()
		pos++
		if err := w.m.ApplyReceipt(pos, s.r.id, bob, rtype, Receipt{EventID: ev.EventID, TS: int64(pos), ThreadID: thread}); err != nil {
			t.Fatal(err)
		}
	}
	receipt("m.read", s.a, ThreadMain)
	wantCounts(t, "main read to A", countsOf(t, w, bob, s.r.id),
		Unread{8, 3}, Unread{3, 1}, map[string]Unread{A: {3, 1}, X: {2, 1}})
	receipt("m.read", s.b, A)
	wantCounts(t, "A's thread read to B", countsOf(t, w, bob, s.r.id),
		Unread{7, 3}, Unread{3, 1}, map[string]Unread{A: {2, 1}, X: {2, 1}})
	// A private threaded receipt further on counts; one behind does not.
	receipt("m.read.private", s.c, A)
	receipt("m.read", s.a, A)
	wantCounts(t, "A's thread privately read to C", countsOf(t, w, bob, s.r.id),
		Unread{6, 2}, Unread{3, 1}, map[string]Unread{A: {1, 0}, X: {2, 1}})
	receipt("m.read", s.d, "")
	wantCounts(t, "unthreaded read to D", countsOf(t, w, bob, s.r.id),
		Unread{5, 1}, Unread{2, 0}, map[string]Unread{A: {1, 0}, X: {2, 1}})
	receipt("m.read", s.g, A) // an annotation of a reference to A
	wantCounts(t, "A's thread read to G", countsOf(t, w, bob, s.r.id),
		Unread{4, 1}, Unread{2, 0}, map[string]Unread{X: {2, 1}})
	receipt("m.read", s.n, X) // the reaction in X's thread: read to its end
	wantCounts(t, "X's thread read to its end", countsOf(t, w, bob, s.r.id),
		Unread{2, 0}, Unread{2, 0}, nil)

	// New events count after the receipts of their threads.
	s.r.reply(alice, A, "after")
	s.r.send(alice, relates(RelThread, X, mentionOf(bob, "after", nil)))
	wantCounts(t, "after new replies", countsOf(t, w, bob, s.r.id),
		Unread{4, 1}, Unread{2, 0}, map[string]Unread{A: {1, 0}, X: {1, 1}})
	// Redacting a counted reply takes it out.
	s.r.commit(s.r.redaction(alice, s.r.last))
	wantCounts(t, "after the redaction", countsOf(t, w, bob, s.r.id),
		Unread{3, 0}, Unread{2, 0}, map[string]Unread{A: {1, 0}})
	last := s.r.say(alice, "last")
	receipt("m.read", last, "")
	wantCounts(t, "unthreaded read to the end", countsOf(t, w, bob, s.r.id), Unread{}, Unread{}, nil)

	// GET /notifications marks what the threaded receipts read.
	page, err := w.m.Notifications(bob, "DEV", "", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range page.Notifications {
		if !n.Read {
			t.Errorf("notification %s not read after the last receipt", n.Event.EventID)
		}
	}
}

// TestNotificationsReadByThread: GET /notifications says read per thread.
func TestNotificationsReadByThread(t *testing.T) {
	w := newWorld(t, 1)
	s := newTwoThreads(w)
	if err := w.m.ApplyReceipt(1, s.r.id, bob, "m.read", Receipt{EventID: s.e.EventID, ThreadID: s.a.EventID}); err != nil {
		t.Fatal(err)
	}
	page, err := w.m.Notifications(bob, "DEV", "", 100, false)
	if err != nil {
		t.Fatal(err)
	}
	read := map[string]bool{}
	for _, n := range page.Notifications {
		read[n.Event.EventID] = n.Read
	}
	for ev, want := range map[*planb.Event]bool{s.a: false, s.b: true, s.c: true, s.d: false, s.e: true, s.f: false, s.y: false} {
		if got, ok := read[ev.EventID]; !ok || got != want {
			t.Errorf("notification of %s: listed %v, read %v; want read %v", ev.Content, ok, got, want)
		}
	}
}

func TestCheckReceiptThread(t *testing.T) {
	w := newWorld(t, 1)
	s := newTwoThreads(w)
	A, X := s.a.EventID, s.x.EventID
	for _, c := range []struct {
		what   string
		ev     *planb.Event
		thread string
		ok     bool
	}{
		{"a root in main", s.a, ThreadMain, true},
		{"a root in its thread", s.a, A, true},
		{"a reply in main", s.b, ThreadMain, false},
		{"a reply in its thread", s.b, A, true},
		{"a reply in another thread", s.b, X, false},
		{"a main event in a thread", s.d, A, false},
		{"a main event in main", s.d, ThreadMain, true},
		{"a reference to the root in main", s.f, ThreadMain, true},
		{"an annotation of a reference to the root, in its thread", s.g, A, true},
		{"an annotation of a reference to the root, in another thread", s.g, X, false},
		{"a reaction to a reply in its thread", s.n, X, true},
		{"a reaction to a reply in main", s.n, ThreadMain, false},
		{"a thread ID that is no root", s.d, s.d.EventID, false},
		{"a thread ID that is no event", s.b, "$nothing", false},
	} {
		err := w.m.CheckReceiptThread(s.r.id, c.ev.EventID, c.thread)
		switch {
		case c.ok && err != nil:
			t.Errorf("%s: %v", c.what, err)
		case !c.ok && err == nil:
			t.Errorf("%s: accepted", c.what)
		case !c.ok:
			wantCode(t, c.what, err, planb.CodeInvalidParam, http.StatusBadRequest)
		}
	}
	if err := w.m.CheckReceiptThread(s.r.id, "$nothing", ThreadMain); !errors.Is(err, planb.MNotFound) {
		t.Errorf("an unknown event: %v, want M_NOT_FOUND", err)
	}
}

// receiptsOf decodes the m.receipt content of user's sync since tok.
func receiptsOf(t *testing.T, w *world, user, roomID string, since *Token) map[string]map[string]map[string]map[string]any {
	t.Helper()
	resp, _, _ := w.sync(user, since, nil)
	jr := resp.Rooms.Join[roomID]
	if jr == nil {
		return nil
	}
	var rc map[string]map[string]map[string]map[string]any
	if raw := ephemeral(t, jr, "m.receipt"); raw != nil {
		if err := json.Unmarshal(raw, &rc); err != nil {
			t.Fatal(err)
		}
	}
	return rc
}

// TestThreadedReceiptsInSync: each user, type and thread keeps its own
// receipt, and m.receipt says the thread; for one event the unthreaded
// receipt wins (MSC4102), also over a newer threaded one.
func TestThreadedReceiptsInSync(t *testing.T) {
	w := newWorld(t, 1)
	s := newTwoThreads(w)
	A := s.a.EventID
	_, _, tok := w.sync(alice, nil, nil)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(w.m.ApplyReceipt(1, s.r.id, bob, "m.read", Receipt{EventID: s.d.EventID, TS: 1}))
	must(w.m.ApplyReceipt(2, s.r.id, bob, "m.read", Receipt{EventID: s.a.EventID, TS: 2, ThreadID: ThreadMain}))
	must(w.m.ApplyReceipt(3, s.r.id, bob, "m.read", Receipt{EventID: s.b.EventID, TS: 3, ThreadID: A}))
	rc := receiptsOf(t, w, alice, s.r.id, &tok)
	for ev, thread := range map[string]string{s.d.EventID: "", s.a.EventID: ThreadMain, s.b.EventID: A} {
		got, ok := rc[ev]["m.read"][bob]
		if !ok {
			t.Errorf("no receipt of bob for %s in %v", ev, rc)
			continue
		}
		if th, _ := got["thread_id"].(string); th != thread {
			t.Errorf("bob's receipt for %s: thread_id %q, want %q", ev, th, thread)
		}
	}
	for _, thread := range []string{"", ThreadMain, A} {
		if got, ok := w.m.Receipt(s.r.id, bob, "m.read", thread); !ok || got.ThreadID != thread {
			t.Errorf("Receipt(thread %q) = %+v, %v", thread, got, ok)
		}
	}

	// A threaded receipt on the event of the unthreaded one is not shown,
	// not even alone in a later sync.
	_, _, tok = w.sync(alice, nil, nil)
	must(w.m.ApplyReceipt(4, s.r.id, bob, "m.read", Receipt{EventID: s.d.EventID, TS: 4, ThreadID: ThreadMain}))
	if rc := receiptsOf(t, w, alice, s.r.id, &tok); rc[s.d.EventID] != nil {
		t.Errorf("the threaded receipt clashing with the unthreaded one came down: %v", rc)
	}
	rc = receiptsOf(t, w, alice, s.r.id, nil)
	if got := rc[s.d.EventID]["m.read"][bob]; got == nil || got["thread_id"] != nil || got["ts"] != float64(1) {
		t.Errorf("initial sync: bob's receipt for D is %v, want the unthreaded one", got)
	}
}

// threadAnswers is what bob's counts and alice's receipts read back.
func threadAnswers(t *testing.T, w *world, roomID string) string {
	t.Helper()
	var out []any
	for _, f := range []*Filter{nil, threadFilter()} {
		resp, _, _ := w.sync(bob, nil, f)
		jr := resp.Rooms.Join[roomID]
		out = append(out, jr.UnreadNotifications, jr.UnreadThreadNotifications)
	}
	out = append(out, receiptsOf(t, w, alice, roomID, nil))
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestThreadedCountsRebuildFromTheLog: a reopened store and a model
// rebuilt from the log (records and receipts applied again) count the
// same; a receipt stored before threaded receipts had keys of their own
// reads back as unthreaded, as the bucket's key says.
func TestThreadedCountsRebuildFromTheLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 1, StoreOptions{Dir: dir})
	s := newTwoThreads(w)
	receipts := []Receipt{
		{EventID: s.a.EventID, TS: 1, ThreadID: ThreadMain},
		{EventID: s.b.EventID, TS: 2, ThreadID: s.a.EventID},
		{EventID: s.y.EventID, TS: 3, ThreadID: s.x.EventID},
		{EventID: s.c.EventID, TS: 4},
	}
	for i, rc := range receipts {
		if err := w.m.ApplyReceipt(uint64(i+1), s.r.id, bob, "m.read", rc); err != nil {
			t.Fatal(err)
		}
	}
	before := threadAnswers(t, w, s.r.id)
	wantCounts(t, "the store's counts", countsOf(t, w, bob, s.r.id),
		Unread{5, 2}, Unread{3, 1}, map[string]Unread{s.a.EventID: {1, 0}, s.x.EventID: {1, 1}})

	if reset := w.reopen(t, StoreOptions{Dir: dir}); reset != "" {
		t.Fatalf("reopening reset the store: %s", reset)
	}
	sameAnswers(t, "the reopened store", before, threadAnswers(t, w, s.r.id))

	rebuilt := newWorld(t, 1)
	rebuilt.parts = w.parts
	replayLog(t, w.m, rebuilt.m)
	for i, rc := range receipts {
		if err := rebuilt.m.ApplyReceipt(uint64(i+1), s.r.id, bob, "m.read", rc); err != nil {
			t.Fatal(err)
		}
	}
	sameAnswers(t, "the rebuilt model", before, threadAnswers(t, rebuilt, s.r.id))

	// An old store's unthreaded key with a thread_id in its value.
	old, err := json.Marshal(Receipt{EventID: s.e.EventID, TS: 9, ThreadID: s.a.EventID, Pos: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.m.db.Set(receiptKey(s.r.id, alice, "m.read", ""), old, nil); err != nil {
		t.Fatal(err)
	}
	if reset := w.reopen(t, StoreOptions{Dir: dir}); reset != "" {
		t.Fatalf("reopening reset the store: %s", reset)
	}
	if got, ok := w.m.Receipt(s.r.id, alice, "m.read", ""); !ok || got.ThreadID != "" || got.EventID != s.e.EventID {
		t.Errorf("an old unthreaded key reads back as %+v, %v; want unthreaded at E", got, ok)
	}
}
