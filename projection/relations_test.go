package projection

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
)

// relates returns content relating to parent with relType.
func relates(relType, parent string, extra obj) obj {
	c := obj{"m.relates_to": obj{"rel_type": relType, "event_id": parent}}
	for k, v := range extra {
		c[k] = v
	}
	return c
}

// reply commits an m.thread reply to root.
func (r *room) reply(sender, root, body string) *planb.Event {
	r.w.t.Helper()
	return r.send(sender, relates(RelThread, root, obj{"msgtype": "m.text", "body": body}))
}

// relations pages through Relations with q until the end and returns the
// pages' event IDs, failing on an error.
func relations(t *testing.T, w *world, user string, q RelationsQuery) ([][]string, []*RelationsPage) {
	t.Helper()
	var out [][]string
	var pages []*RelationsPage
	for n := 0; ; n++ {
		if n > 50 {
			t.Fatal("relations pagination does not end")
		}
		page, err := w.m.Relations(user, "DEV", q)
		if err != nil {
			t.Fatalf("relations %+v for %s: %v", q, user, err)
		}
		if q.From != "" && page.PrevBatch != q.From {
			t.Errorf("prev_batch %q, want the from token %q", page.PrevBatch, q.From)
		}
		out = append(out, ids(page.Chunk))
		pages = append(pages, page)
		if page.NextBatch == "" {
			return out, pages
		}
		q.From = page.NextBatch
	}
}

func flat(pages [][]string) []string { return slices.Concat(pages...) }

func TestRelationsOfAnEvent(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	root := r.say(alice, "root")
	other := w.createRoom("!other:hs", 1, alice, "shared")
	// Relations the index ignores: to an event of another room, a rich
	// reply without rel_type, and one without event_id.
	other.send(alice, relates("m.reference", root.EventID, nil))
	r.send(alice, obj{"body": "reply", "m.relates_to": obj{"m.in_reply_to": obj{"event_id": root.EventID}}})
	r.send(alice, obj{"body": "x", "m.relates_to": obj{"rel_type": "m.reference"}})

	th1 := r.reply(bob, root.EventID, "in thread")
	dummy := r.event(alice, "m.dummy", nil, relates(RelThread, root.EventID, nil))
	edit := r.event(alice, planb.TypeMessage, nil, relates("m.replace", root.EventID, obj{"body": "* root!", "m.new_content": obj{"body": "root!"}}))
	r.commit(dummy, edit) // two of them in one record
	react := r.event(bob, "m.reaction", nil, obj{"m.relates_to": obj{"rel_type": "m.annotation", "event_id": root.EventID, "key": "👍"}})
	r.commit(react)
	r.say(alice, "unrelated")

	q := RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true, Limit: 100}
	all := []string{react.EventID, edit.EventID, dummy.EventID, th1.EventID}
	got, pages := relations(t, w, bob, q)
	equalIDs(t, "all relations, newest first", flat(got), all)
	if pages[0].PrevBatch != "" || pages[0].RecursionDepth != nil {
		t.Errorf("first page has prev_batch %q / recursion_depth %v, want neither", pages[0].PrevBatch, pages[0].RecursionDepth)
	}
	q.Backwards = false
	got, _ = relations(t, w, bob, q)
	equalIDs(t, "all relations, oldest first", flat(got), []string{th1.EventID, dummy.EventID, edit.EventID, react.EventID})

	q.Backwards, q.RelType = true, RelThread
	got, _ = relations(t, w, bob, q)
	equalIDs(t, "m.thread relations", flat(got), []string{dummy.EventID, th1.EventID})
	q.EventType = planb.TypeMessage
	got, _ = relations(t, w, bob, q)
	equalIDs(t, "m.thread relations of m.room.message", flat(got), []string{th1.EventID})
	q.RelType, q.EventType = "m.annotation", "m.reaction"
	got, _ = relations(t, w, bob, q)
	equalIDs(t, "m.annotation relations", flat(got), []string{react.EventID})
	q.RelType, q.EventType = "org.example.none", ""
	got, _ = relations(t, w, bob, q)
	equalIDs(t, "an unused rel_type", flat(got), nil)

	// An event nothing relates to has an empty chunk; unknown events and
	// events of another room are not found.
	got, _ = relations(t, w, bob, RelationsQuery{RoomID: r.id, EventID: th1.EventID, Backwards: true})
	equalIDs(t, "children of a leaf", flat(got), nil)
	for _, ev := range []string{"$nope", other.last} {
		_, err := w.m.Relations(bob, "DEV", RelationsQuery{RoomID: r.id, EventID: ev})
		wantCode(t, "relations of "+ev, err, planb.CodeNotFound, http.StatusNotFound)
	}
}

func TestRelationsPagination(t *testing.T) {
	w := newWorld(t, 2)
	w.createRoom("!noise:hs", 0, carol, "shared").sayN(carol, 3)
	r := w.createRoom("!r:hs", 1, alice, "shared")
	root := r.say(alice, "root")
	var replies []string
	for i := range 10 {
		replies = append(replies, r.reply(alice, root.EventID, "reply").EventID)
		if i%3 == 0 {
			r.say(alice, "in between")
		}
	}
	newest := slices.Clone(replies)
	slices.Reverse(newest)

	q := RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true, Limit: 3}
	got, _ := relations(t, w, alice, q)
	if len(got) != 4 || len(got[0]) != 3 || len(got[3]) != 1 {
		t.Fatalf("pages backwards by 3 of 10: %v", got)
	}
	equalIDs(t, "backwards by 3", flat(got), newest)
	q.Backwards = false
	got, _ = relations(t, w, alice, q)
	equalIDs(t, "forwards by 3", flat(got), replies)
	equalIDs(t, "the first forward page", got[0], replies[:3])

	// A page that ends exactly at the last child says so.
	q.Limit = 5
	got, pages := relations(t, w, alice, q)
	if len(got) != 2 || pages[1].NextBatch != "" {
		t.Errorf("10 children by 5: %v", got)
	}
	// The default limit is 5.
	page, err := w.m.Relations(alice, "DEV", RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true})
	if err != nil || len(page.Chunk) != relationsDefaultLimit || page.NextBatch == "" {
		t.Fatalf("default limit: %d events, next %q, %v", len(page.Chunk), page.NextBatch, err)
	}

	// from and to take /messages and /sync tokens: between a backward
	// page's next_batch and the start, forwards.
	first, err := w.m.Relations(alice, "DEV", RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true, Limit: 4})
	if err != nil {
		t.Fatal(err)
	}
	_, _, tok := w.sync(alice, nil, nil)
	later := []string{r.reply(alice, root.EventID, "after the sync").EventID, r.reply(alice, root.EventID, "and more").EventID}
	fwd, err := w.m.Relations(alice, "DEV", RelationsQuery{RoomID: r.id, EventID: root.EventID, From: first.NextBatch, To: tok.String(), Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := ids(first.Chunk)
	slices.Reverse(want)
	equalIDs(t, "forwards from next_batch to the sync token", ids(fwd.Chunk), want)
	got, _ = relations(t, w, alice, RelationsQuery{RoomID: r.id, EventID: root.EventID, From: tok.String(), Limit: 1})
	equalIDs(t, "forwards from a sync token", flat(got), later)
	got, _ = relations(t, w, alice, RelationsQuery{RoomID: r.id, EventID: root.EventID, From: tok.String(), Backwards: true, Limit: 100})
	equalIDs(t, "backwards from a sync token", flat(got), newest)

	for _, bad := range []string{"garbage", "s1_2"} {
		_, err := w.m.Relations(alice, "DEV", RelationsQuery{RoomID: r.id, EventID: root.EventID, From: bad})
		wantCode(t, "from "+bad, err, planb.CodeInvalidParam, http.StatusBadRequest)
	}
}

func TestRelationsVisibility(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "joined")
	early := r.say(alice, "before bob")
	beforeJoin := r.reply(alice, early.EventID, "also before bob")
	r.join(bob)
	root := r.say(alice, "root")
	seen := r.reply(alice, root.EventID, "while bob is here")
	r.reply(alice, early.EventID, "bob sees this reply to an old root")
	r.leave(bob)
	r.reply(alice, root.EventID, "after bob left")

	// A parent the user may not see is not found, as for /event; so is
	// everything to an outsider.
	_, err := w.m.Relations(bob, "DEV", RelationsQuery{RoomID: r.id, EventID: early.EventID})
	wantCode(t, "a parent from before bob joined", err, planb.CodeNotFound, http.StatusNotFound)
	_, err = w.m.Relations(eve, "DEV", RelationsQuery{RoomID: r.id, EventID: root.EventID})
	wantCode(t, "an outsider", err, planb.CodeNotFound, http.StatusNotFound)
	_, err = w.m.Relations(eve, "DEV", RelationsQuery{RoomID: "!nowhere:hs", EventID: root.EventID})
	wantCode(t, "an unknown room", err, planb.CodeNotFound, http.StatusNotFound)

	// Children bob may not see are left out: those after he left.
	got, _ := relations(t, w, bob, RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true, Limit: 1})
	equalIDs(t, "bob's children of root", flat(got), []string{seen.EventID})
	got, _ = relations(t, w, alice, RelationsQuery{RoomID: r.id, EventID: early.EventID, Backwards: true})
	if len(flat(got)) != 2 || !contains(flat(got), beforeJoin.EventID) {
		t.Errorf("alice's children of the early root: %v", got)
	}

	// /threads: an outsider is refused; bob sees the thread he may see,
	// with the last reply he may see.
	_, err = w.m.Threads(eve, "DEV", r.id, "", false, 0)
	wantCode(t, "threads for an outsider", err, planb.CodeForbidden, http.StatusForbidden)
	th, err := w.m.Threads(bob, "DEV", r.id, "", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "bob's threads", ids(th.Chunk), []string{root.EventID})
	if agg := th.Chunk[0].Unsigned.Relations.Thread; agg.LatestEvent.EventID != seen.EventID || agg.Count != 2 || agg.CurrentUserParticipated {
		t.Errorf("bob's aggregation of root: latest %s, count %d, participated %v; want %s, 2, false",
			agg.LatestEvent.EventID, agg.Count, agg.CurrentUserParticipated, seen.EventID)
	}
}

func TestThreads(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	root1 := r.say(alice, "thread 1")
	root2 := r.say(bob, "thread 2")
	root3 := r.say(alice, "thread 3")
	r1a := r.reply(alice, root1.EventID, "1a")
	r2a := r.reply(alice, root2.EventID, "2a")
	r3a := r.reply(bob, root3.EventID, "3a")

	list := func(user, from string, participated bool, limit int) *ThreadsPage {
		t.Helper()
		p, err := w.m.Threads(user, "DEV", r.id, from, participated, limit)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	type want struct {
		root, latest string
		count        int
		participated bool
	}
	check := func(what string, p *ThreadsPage, wants ...want) {
		t.Helper()
		if len(p.Chunk) != len(wants) {
			t.Fatalf("%s: %d threads %v, want %d", what, len(p.Chunk), ids(p.Chunk), len(wants))
		}
		for i, wt := range wants {
			ce := p.Chunk[i]
			if ce.EventID != wt.root || ce.Unsigned == nil || ce.Unsigned.Relations == nil || ce.Unsigned.Relations.Thread == nil {
				t.Fatalf("%s: thread %d is %s with %+v, want %s with an m.thread aggregation", what, i, ce.EventID, ce.Unsigned, wt.root)
			}
			agg := ce.Unsigned.Relations.Thread
			if agg.LatestEvent.EventID != wt.latest || agg.Count != wt.count || agg.CurrentUserParticipated != wt.participated {
				t.Errorf("%s: thread %s: latest %s count %d participated %v, want %s %d %v", what, ce.EventID,
					agg.LatestEvent.EventID, agg.Count, agg.CurrentUserParticipated, wt.latest, wt.count, wt.participated)
			}
		}
	}
	check("alice's threads", list(alice, "", false, 0),
		want{root3.EventID, r3a.EventID, 1, true}, want{root2.EventID, r2a.EventID, 1, true}, want{root1.EventID, r1a.EventID, 1, true})
	r1b := r.reply(bob, root1.EventID, "1b")
	check("after a reply in thread 1", list(bob, "", false, 0),
		want{root1.EventID, r1b.EventID, 2, true}, want{root3.EventID, r3a.EventID, 1, true}, want{root2.EventID, r2a.EventID, 1, true})

	// participated: bob started thread 2 and replied in 1 and 3; carol
	// joins and replies only in thread 2.
	r.join(carol)
	r2b := r.reply(carol, root2.EventID, "2b")
	check("carol's threads", list(carol, "", true, 0), want{root2.EventID, r2b.EventID, 2, true})
	check("all of carol's threads", list(carol, "", false, 0), want{root2.EventID, r2b.EventID, 2, true},
		want{root1.EventID, r1b.EventID, 2, false}, want{root3.EventID, r3a.EventID, 1, false})

	// Pages of one, newest activity first.
	var got []string
	from := ""
	for n := 0; ; n++ {
		if n > 10 {
			t.Fatal("threads pagination does not end")
		}
		p := list(carol, from, false, 1)
		if len(p.Chunk) != 1 {
			t.Fatalf("page %d: %v", n, ids(p.Chunk))
		}
		got = append(got, p.Chunk[0].EventID)
		if p.NextBatch == "" {
			break
		}
		from = p.NextBatch
	}
	equalIDs(t, "threads by pages of one", got, []string{root2.EventID, root1.EventID, root3.EventID})
	_, err := w.m.Threads(carol, "DEV", r.id, "bogus", false, 0)
	wantCode(t, "threads from a bad token", err, planb.CodeInvalidParam, http.StatusBadRequest)
}

func TestRedactedRelationsDropOut(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	root := r.say(alice, "root")
	other := r.say(alice, "other root")
	a := r.reply(bob, root.EventID, "a")
	otherReply := r.reply(alice, other.EventID, "x")
	b := r.reply(bob, root.EventID, "b")
	c := r.reply(alice, root.EventID, "c")

	threadOf := func(user string) *ThreadAggregation {
		t.Helper()
		ev, err := w.m.Event(user, "DEV", r.id, root.EventID)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Unsigned.Relations == nil {
			return nil
		}
		return ev.Unsigned.Relations.Thread
	}
	threadIDs := func() []string {
		t.Helper()
		p, err := w.m.Threads(alice, "DEV", r.id, "", false, 0)
		if err != nil {
			t.Fatal(err)
		}
		return ids(p.Chunk)
	}
	children := func() []string {
		t.Helper()
		got, _ := relations(t, w, alice, RelationsQuery{RoomID: r.id, EventID: root.EventID, Backwards: true})
		return flat(got)
	}

	// The newest reply is redacted: the thread's latest is the one before,
	// and it moves down the thread list.
	r.commit(r.redaction(alice, c.EventID))
	equalIDs(t, "children after redacting c", children(), []string{b.EventID, a.EventID})
	if agg := threadOf(alice); agg == nil || agg.LatestEvent.EventID != b.EventID || agg.Count != 2 {
		t.Fatalf("thread after redacting its newest reply: %+v", agg)
	}
	equalIDs(t, "threads after redacting c", threadIDs(), []string{root.EventID, other.EventID})
	// Redacting a reply twice changes nothing more.
	r.commit(r.redaction(bob, c.EventID))
	if agg := threadOf(alice); agg.Count != 2 {
		t.Fatalf("a second redaction counted again: %+v", agg)
	}

	// Bob's replies go (one with its redaction in the same record as a new
	// reply): bob no longer participates, and with no reply left the
	// thread is gone.
	if agg := threadOf(bob); !agg.CurrentUserParticipated {
		t.Error("bob replied but does not participate")
	}
	r.commit(r.redaction(bob, a.EventID))
	if agg := threadOf(bob); !agg.CurrentUserParticipated || agg.Count != 1 {
		t.Errorf("bob still has a reply: %+v", agg)
	}
	d := r.event(alice, planb.TypeMessage, nil, relates(RelThread, root.EventID, obj{"body": "d"}))
	r.commit(d, r.redaction(bob, b.EventID), r.redaction(alice, d.EventID))
	if agg := threadOf(bob); agg != nil {
		t.Errorf("a thread with every reply redacted still has %+v", agg)
	}
	equalIDs(t, "children with all redacted", children(), nil)
	equalIDs(t, "threads with root's thread empty", threadIDs(), []string{other.EventID})
	if p, _ := w.m.Threads(bob, "DEV", r.id, "", true, 0); len(p.Chunk) != 0 {
		t.Errorf("bob participates in %v after all his replies were redacted", ids(p.Chunk))
	}

	// Redacting a thread root keeps its thread.
	r.commit(r.redaction(alice, other.EventID))
	equalIDs(t, "threads with a redacted root", threadIDs(), []string{other.EventID})
	got, _ := relations(t, w, alice, RelationsQuery{RoomID: r.id, EventID: other.EventID, Backwards: true})
	equalIDs(t, "children of a redacted root", flat(got), []string{otherReply.EventID})
}

func TestBundledThreadAggregation(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	root := r.say(alice, "root")
	reply := r.reply(bob, root.EventID, "reply")
	plain := r.say(alice, "plain")

	aggOf := func(what string, evs []ClientEvent, id string) *ThreadAggregation {
		t.Helper()
		for _, ce := range evs {
			if ce.EventID == plain.EventID && ce.Unsigned.Relations != nil {
				t.Errorf("%s: an event without children has m.relations %+v", what, ce.Unsigned.Relations)
			}
			if ce.EventID == id {
				if ce.Unsigned.Relations == nil || ce.Unsigned.Relations.Thread == nil {
					t.Fatalf("%s: the root has no m.thread aggregation", what)
				}
				return ce.Unsigned.Relations.Thread
			}
		}
		t.Fatalf("%s: %s is not among %v", what, id, ids(evs))
		return nil
	}
	check := func(what string, agg *ThreadAggregation, withRoom bool) {
		t.Helper()
		if agg.LatestEvent.EventID != reply.EventID || agg.Count != 1 || !agg.CurrentUserParticipated ||
			(agg.LatestEvent.RoomID != "") != withRoom {
			t.Errorf("%s: aggregation %+v", what, agg)
		}
	}
	page, err := w.m.Messages(alice, "DEV", r.id, "", "", true, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("/messages", aggOf("/messages", page.Chunk, root.EventID), true)
	resp, _, _ := w.sync(alice, nil, nil)
	check("/sync", aggOf("/sync", resp.Rooms.Join[r.id].Timeline.Events, root.EventID), false)
	ctx, err := w.m.Context(alice, "DEV", r.id, root.EventID, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("/context", aggOf("/context", []ClientEvent{ctx.Event}, root.EventID), true)
	ctx, err = w.m.Context(alice, "DEV", r.id, reply.EventID, 4, nil)
	if err != nil {
		t.Fatal(err)
	}
	check("/context before", aggOf("/context before", ctx.EventsBefore, root.EventID), true)
	ev, err := w.m.Event(alice, "DEV", r.id, root.EventID)
	if err != nil {
		t.Fatal(err)
	}
	check("/event", aggOf("/event", []ClientEvent{*ev}, root.EventID), true)
	// The JSON has it where clients look.
	raw, _ := json.Marshal(ev)
	if !strings.Contains(string(raw), `"m.relations":{"m.thread":{"latest_event":{`) {
		t.Errorf("/event JSON: %s", raw)
	}
}

func TestRecursiveRelations(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	root := r.say(alice, "root")
	th := r.reply(alice, root.EventID, "reply")
	edit := r.send(alice, relates("m.replace", th.EventID, obj{"body": "* reply!"}))
	react := r.send(alice, obj{"m.relates_to": obj{"rel_type": "m.annotation", "event_id": edit.EventID, "key": "x"}})
	deep := r.send(alice, relates("m.reference", react.EventID, nil)) // a fourth level

	yes, no := true, false
	q := RelationsQuery{RoomID: r.id, EventID: root.EventID, Limit: 100, Recurse: &yes}
	page, err := w.m.Relations(alice, "DEV", q)
	if err != nil {
		t.Fatal(err)
	}
	equalIDs(t, "three levels, oldest first", ids(page.Chunk), []string{th.EventID, edit.EventID, react.EventID})
	if page.RecursionDepth == nil || *page.RecursionDepth != recursionDepth {
		t.Errorf("recursion_depth %v, want %d", page.RecursionDepth, recursionDepth)
	}
	if contains(ids(page.Chunk), deep.EventID) {
		t.Error("recursion went deeper than its depth")
	}
	q.Backwards, q.Limit = true, 2
	got, _ := relations(t, w, alice, q)
	equalIDs(t, "three levels by pages of 2, newest first", flat(got), []string{react.EventID, edit.EventID, th.EventID})
	// The filter applies at every level.
	q.RelType, q.Limit = "m.thread", 100
	got, _ = relations(t, w, alice, q)
	equalIDs(t, "recursive m.thread", flat(got), []string{th.EventID})
	q.Recurse, q.RelType = &no, ""
	page, err = w.m.Relations(alice, "DEV", q)
	if err != nil || page.RecursionDepth == nil || *page.RecursionDepth != 1 {
		t.Fatalf("recurse=false: %+v, %v", page, err)
	}
	equalIDs(t, "recurse=false", ids(page.Chunk), []string{th.EventID})
}

// relationAnswers is everything the relation index answers about r.
func relationAnswers(t *testing.T, w *world, r *room, users ...string) string {
	t.Helper()
	var b strings.Builder
	add := func(v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(v)
		b.Write(clock.ReplaceAll(raw, []byte(`~`)))
		b.WriteByte('\n')
	}
	ids := r.timelineIDs()
	for _, u := range users {
		for _, id := range ids {
			page, err := w.m.Relations(u, "DEV", RelationsQuery{RoomID: r.id, EventID: id, Backwards: true, Limit: 100})
			if e, ok := planb.AsError(err); ok && e.Code == planb.CodeNotFound {
				page, err = &RelationsPage{}, nil
			}
			add(page, err)
		}
		add(w.m.Threads(u, "DEV", r.id, "", false, 100))
		add(w.m.Threads(u, "DEV", r.id, "", true, 100))
		add(w.m.Messages(u, "DEV", r.id, "", "", true, 100, nil))
	}
	return b.String()
}

// threadedRoom fills a room with threads, edits, reactions and redactions.
func threadedRoom(t *testing.T, w *world) *room {
	t.Helper()
	r := w.createRoom("!threads:hs", 1, alice, "shared")
	r.join(bob)
	var roots []string
	for i := range 5 {
		roots = append(roots, r.say(alice, "root").EventID)
		r.reply(bob, roots[i], "first")
	}
	for i := range 20 {
		ev := r.reply([]string{alice, bob}[i%2], roots[i%5], "more")
		if i%4 == 0 {
			r.commit(r.redaction(alice, ev.EventID))
		}
		r.send(bob, obj{"m.relates_to": obj{"rel_type": "m.annotation", "event_id": ev.EventID, "key": "+"}})
	}
	r.send(alice, relates("m.replace", roots[0], obj{"body": "* edited"}))
	return r
}

func TestRelationIndexRebuildsFromTheLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir})
	r := threadedRoom(t, w)
	before := relationAnswers(t, w, r, alice, bob)

	// The store read back after a restart answers the same.
	if reset := w.reopen(t, StoreOptions{Dir: dir}); reset != "" {
		t.Fatalf("reopening reset the store: %s", reset)
	}
	sameAnswers(t, "the reopened store", before, relationAnswers(t, w, r, alice, bob))

	// A model rebuilt from the log (its records applied again, in order, to
	// an empty store) answers the same.
	rebuilt := newWorld(t, 2)
	rebuilt.parts = w.parts
	replayLog(t, w.m, rebuilt.m)
	rr := &room{w: rebuilt, id: r.id, part: r.part}
	sameAnswers(t, "the rebuilt model", before, relationAnswers(t, rebuilt, rr, alice, bob))
}

// replayLog applies the records from's store holds, rebuilt from its
// timelines, to the empty model to, in log order.
func replayLog(t *testing.T, from, to *Model) {
	t.Helper()
	type rec struct {
		part int
		seq  uint64
		evs  []*planb.Event
	}
	recs := map[[2]uint64]*rec{}
	from.mu.RLock()
	for _, room := range from.rooms {
		err := from.scan(room, 0, false, func(e *Entry) (bool, error) {
			k := [2]uint64{uint64(room.Partition), e.Seq}
			if recs[k] == nil {
				recs[k] = &rec{part: room.Partition, seq: e.Seq}
			}
			recs[k].evs = append(recs[k].evs, e.Event)
			return true, nil
		})
		if err != nil {
			from.mu.RUnlock()
			t.Fatal(err)
		}
	}
	from.mu.RUnlock()
	var order []*rec
	for _, rc := range recs {
		order = append(order, rc)
	}
	sort.Slice(order, func(i, j int) bool {
		return order[i].part < order[j].part || (order[i].part == order[j].part && order[i].seq < order[j].seq)
	})
	for _, rc := range order {
		if err := to.ApplyRecord(rc.part, rc.seq, &planb.Record{Events: rc.evs}); err != nil {
			t.Fatalf("replay record %d/%d: %v", rc.part, rc.seq, err)
		}
	}
}
