package projection

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/planb-chat/planb"
)

// search runs a search of the body key (keys nil: all) for user and
// returns the results.
func search(t *testing.T, w *world, q SearchRequest) *SearchResults {
	t.Helper()
	if q.Device == "" {
		q.Device = "DEV"
	}
	res, err := w.m.Search(q)
	if err != nil {
		t.Fatalf("search %q for %s: %v", q.Term, q.User, err)
	}
	return res
}

// found returns the event IDs of the results.
func found(res *SearchResults) []string {
	out := []string{}
	for _, r := range res.Results {
		out = append(out, r.Result.EventID)
	}
	return out
}

// inRooms is a filter on rooms (and a limit, when positive).
func inRooms(limit int, rooms ...string) *RoomEventFilter {
	f := &RoomEventFilter{Rooms: &rooms}
	if limit > 0 {
		f.Limit = &limit
	}
	return f
}

func TestTokens(t *testing.T) {
	for text, want := range map[string][]string{
		"Hello, World! It's 4 o'clock":  {"hello", "world", "it", "s", "4", "o", "clock"},
		"안녕하세요 서울에서 만나요.":               {"안녕하세요", "서울에서", "만나요"},
		"東京タワーへ":                        {"東", "京", "タ", "ワ", "ー", "へ"},
		"ÉCOLE naïve café":              {"école", "naïve", "café"},
		"e-mail:foo@example.org":        {"e", "mail", "foo", "example", "org"},
		"   ":                           nil,
		strings.Repeat("x", 100) + " y": {strings.Repeat("x", maxWordBytes), "y"},
	} {
		if got := tokens(text); !slices.Equal(got, want) {
			t.Errorf("tokens(%q) = %q, want %q", text, got, want)
		}
	}
}

func TestSearchMatching(t *testing.T) {
	w := newWorld(t, 2)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	hello := r.say(alice, "Hello, World")
	msgs := r.say(alice, "Messages are here")
	four := r.say(alice, "Message number 4")
	forty := r.say(alice, "Message number 40")
	korean := r.say(alice, "내일 서울에서 만나요")
	japanese := r.say(alice, "東京タワーへ行く")
	r.send(alice, obj{"msgtype": "m.text"}) // no body: nothing to index
	q := func(term string) []string {
		return found(search(t, w, SearchRequest{User: alice, Term: term, Keys: []string{"content.body"}, OrderBy: "recent"}))
	}
	for term, want := range map[string][]string{
		"hello":         {hello.EventID},
		"HELLO world":   {hello.EventID},
		"hel":           {hello.EventID},                             // a prefix
		"world hello!!": {hello.EventID},                             // words in any order
		"hello moon":    {},                                          // every word must match
		"message":       {forty.EventID, four.EventID, msgs.EventID}, // a prefix of "messages"
		"Message 4":     {four.EventID},                              // one character matches only itself
		"message 40":    {forty.EventID},
		"서울":            {korean.EventID}, // a Korean word with its particle, found by its stem
		"서울에서 만나":       {korean.EventID},
		"부산":            {},
		"東京":            {japanese.EventID}, // Han characters one by one
		"京":             {japanese.EventID},
		"":              {},
		"!!!":           {},
	} {
		if got := q(term); !slices.Equal(got, want) {
			t.Errorf("search %q found %v, want %v", term, got, want)
		}
	}
	res := search(t, w, SearchRequest{User: alice, Term: "mess", Keys: []string{"content.body"}})
	if !slices.Equal(res.Highlights, []string{"message", "messages"}) {
		t.Errorf("highlights of %q = %v, want the words matched", "mess", res.Highlights)
	}
}

func TestSearchKeys(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared") // named "Room !r:hs"
	topic := r.state(alice, planb.TypeTopic, "", obj{"topic": "planets and moons",
		"m.topic": obj{"m.text": []obj{{"body": "<b>planets</b>", "mimetype": "text/html"}, {"body": "comets"}}}})
	r.commit(topic)
	msg := r.say(alice, "room for planets")
	name := r.state(alice, planb.TypeName, "", obj{"name": "Planets room"})
	r.commit(name)
	for _, c := range []struct {
		term string
		keys []string
		want []string
	}{
		{"planets", nil, []string{name.EventID, msg.EventID, topic.EventID}},
		{"planets", []string{"content.body"}, []string{msg.EventID}},
		{"planets", []string{"content.name"}, []string{name.EventID}},
		{"planets", []string{"content.topic", "content.name"}, []string{name.EventID, topic.EventID}},
		{"comets", []string{"content.topic"}, []string{topic.EventID}}, // the plain text m.topic
	} {
		got := found(search(t, w, SearchRequest{User: alice, Term: c.term, Keys: c.keys, OrderBy: "recent"}))
		if !slices.Equal(got, c.want) {
			t.Errorf("search %q in %v found %v, want %v", c.term, c.keys, got, c.want)
		}
	}
	// A replaced name is still an event of the room's history.
	if got := found(search(t, w, SearchRequest{User: alice, Term: "room", Keys: []string{"content.name"}, OrderBy: "recent"})); len(got) != 2 || got[0] != name.EventID {
		t.Errorf("search room in names found %v, want the new name, then the first", got)
	}
	_, err := w.m.Search(SearchRequest{User: alice, Term: "x", Keys: []string{"content.url"}})
	wantCode(t, "an unknown key", err, planb.CodeInvalidParam, http.StatusBadRequest)
}

func TestSearchVisibility(t *testing.T) {
	w := newWorld(t, 2)
	// A joined-visibility room: bob joins late and leaves early.
	r := w.createRoom("!joined:hs", 0, alice, "joined")
	before := r.say(alice, "secret before bob")
	r.join(bob)
	during := r.say(alice, "secret while bob is here")
	r.leave(bob)
	after := r.say(alice, "secret after bob left")
	// A shared room bob joins late: its history is his.
	sh := w.createRoom("!shared:hs", 1, alice, "shared")
	early := sh.say(alice, "secret early")
	sh.join(bob)
	// A room bob never joined, and one he is only invited to.
	never := w.createRoom("!never:hs", 0, alice, "shared")
	never.say(alice, "secret elsewhere")
	inv := w.createRoom("!invited:hs", 1, alice, "invited")
	inv.member(alice, bob, planb.MembershipInvite)
	inv.say(alice, "secret invite")
	// A world-readable room bob never joined is not his to search either.
	wr := w.createRoom("!world:hs", 0, alice, "world_readable")
	wr.say(alice, "secret for the world")

	res := search(t, w, SearchRequest{User: bob, Term: "secret", OrderBy: "recent"})
	got := found(res)
	if want := []string{early.EventID, during.EventID}; !slices.Equal(got, want) || res.Count != 2 {
		t.Errorf("bob finds %v (count %d), want only %v (not %s from before his join, %s from after his leave, nor other rooms)",
			got, res.Count, want, before.EventID, after.EventID)
	}
	if got := found(search(t, w, SearchRequest{User: eve, Term: "secret"})); len(got) != 0 {
		t.Errorf("eve, in no room, finds %v", got)
	}
	// A filter naming a room bob may not read finds nothing there.
	if got := found(search(t, w, SearchRequest{User: bob, Term: "secret", Filter: inRooms(0, never.id, r.id)})); !slices.Equal(got, []string{during.EventID}) {
		t.Errorf("bob's search in %s and %s finds %v, want only %s", never.id, r.id, got, during.EventID)
	}
	// Once bob forgets the room he left, it is not searched.
	if err := w.m.ApplyAccountData(1, bob, r.id, ForgottenType, []byte(`{"event_id":"`+w.m.LastMembershipEvent(r.id, bob)+`"}`)); err != nil {
		t.Fatal(err)
	}
	if got := found(search(t, w, SearchRequest{User: bob, Term: "secret"})); !slices.Equal(got, []string{early.EventID}) {
		t.Errorf("after forgetting %s bob finds %v, want only %s", r.id, got, early.EventID)
	}
}

func TestSearchFiltersAndOrder(t *testing.T) {
	w := newWorld(t, 2)
	a := w.createRoom("!a:hs", 0, alice, "shared")
	b := w.createRoom("!b:hs", 1, alice, "shared")
	a.join(bob)
	b.join(bob)
	a1 := a.say(alice, "apple")
	b1 := b.say(bob, "apple pie with apple sauce and more")
	a2 := a.say(bob, "apple apple")
	b2 := b.send(alice, obj{"msgtype": "m.image", "body": "apple.png", "url": "mxc://hs/apple"})
	q := func(f *RoomEventFilter, order string) []string {
		return found(search(t, w, SearchRequest{User: bob, Term: "apple", Filter: f, OrderBy: order}))
	}
	senders := []string{bob}
	types := []string{"m.room.*"}
	noMessages := []string{planb.TypeMessage}
	url := true
	for _, c := range []struct {
		what  string
		f     *RoomEventFilter
		order string
		want  []string
	}{
		{"recent", nil, "recent", []string{b2.EventID, a2.EventID, b1.EventID, a1.EventID}},
		// By rank: the share of the words that match, newest first among equals.
		{"rank", nil, "", []string{a2.EventID, a1.EventID, b2.EventID, b1.EventID}},
		{"rooms", inRooms(0, a.id), "recent", []string{a2.EventID, a1.EventID}},
		{"not_rooms", &RoomEventFilter{NotRooms: []string{a.id}}, "recent", []string{b2.EventID, b1.EventID}},
		{"senders", &RoomEventFilter{EventFilter: EventFilter{Senders: &senders}}, "recent", []string{a2.EventID, b1.EventID}},
		{"not_senders", &RoomEventFilter{EventFilter: EventFilter{NotSenders: senders}}, "recent", []string{b2.EventID, a1.EventID}},
		{"types", &RoomEventFilter{EventFilter: EventFilter{Types: &types}}, "recent", []string{b2.EventID, a2.EventID, b1.EventID, a1.EventID}},
		{"not_types", &RoomEventFilter{EventFilter: EventFilter{NotTypes: noMessages}}, "recent", []string{}},
		{"contains_url", &RoomEventFilter{ContainsURL: &url}, "recent", []string{b2.EventID}},
		{"limit", inRooms(1, a.id, b.id), "recent", []string{b2.EventID}},
	} {
		if got := q(c.f, c.order); !slices.Equal(got, c.want) {
			t.Errorf("%s: found %v, want %v", c.what, got, c.want)
		}
	}
	res := search(t, w, SearchRequest{User: bob, Term: "apple"})
	if res.Results[0].Rank <= res.Results[3].Rank || res.Results[0].Rank > 1 {
		t.Errorf("ranks %v: want the best first, at most 1", res.Results)
	}

	// An ignored user's messages are not found.
	if err := w.m.ApplyAccountData(1, bob, "", "m.ignored_user_list", []byte(`{"ignored_users":{"`+alice+`":{}}}`)); err != nil {
		t.Fatal(err)
	}
	if got := q(nil, "recent"); !slices.Equal(got, []string{a2.EventID, b1.EventID}) {
		t.Errorf("bob, ignoring alice, finds %v", got)
	}

	minusOne := -1
	for what, q := range map[string]SearchRequest{
		"order_by":     {OrderBy: "oldest"},
		"groupings":    {GroupBy: []string{"type"}},
		"before_limit": {Context: &SearchContext{Before: &minusOne}},
	} {
		q.User, q.Term = bob, "apple"
		_, err := w.m.Search(q)
		wantCode(t, what, err, planb.CodeInvalidParam, http.StatusBadRequest)
	}
	_, err := w.m.Search(SearchRequest{User: bob, Term: "apple", Filter: inRooms(0, "general")})
	wantCode(t, "a filter naming no room ID", err, planb.CodeBadJSON, http.StatusBadRequest)
	_, err = w.m.search(SearchRequest{User: bob, Term: "apple"}, 3)
	wantCode(t, "a term with more postings than the budget", err, planb.CodeInvalidParam, http.StatusBadRequest)
}

func TestSearchPagination(t *testing.T) {
	for _, order := range []string{"recent", "rank"} {
		t.Run(order, func(t *testing.T) {
			w := newWorld(t, 2)
			a := w.createRoom("!a:hs", 0, alice, "shared")
			b := w.createRoom("!b:hs", 1, alice, "shared")
			var all []string
			for i := range 25 {
				r := a
				if i%3 == 0 {
					r = b
				}
				all = append(all, r.say(alice, "Message number "+strings.Repeat("x ", i%4)).EventID)
			}
			q := SearchRequest{User: alice, Term: "message", OrderBy: order, Filter: inRooms(10, a.id, b.id)}
			var got []string
			pages := 0
			for {
				res := search(t, w, q)
				pages++
				if want := min(pages, 2) + 24; order == "recent" && res.Count != want {
					t.Fatalf("page %d: count %d, want %d", pages, res.Count, want)
				} else if order == "rank" && res.Count != 25 {
					t.Fatalf("page %d: count %d, want 25", pages, res.Count)
				}
				got = append(got, found(res)...)
				if res.NextBatch == "" {
					if len(res.Results) == 10 {
						t.Fatalf("page %d is full but has no next_batch", pages)
					}
					break
				}
				q.NextBatch = res.NextBatch
				// A newer match sent meanwhile counts, but comes before
				// the pages already read: the next pages go on where the
				// last one ended.
				if pages == 1 && order == "recent" {
					a.say(alice, "a later message")
				}
			}
			if pages != 3 || len(got) != 25 {
				t.Fatalf("%d pages of %d results, want 3 pages of 25", pages, len(got))
			}
			slices.Sort(got)
			slices.Sort(all)
			if !slices.Equal(got, all) {
				t.Errorf("the pages found %v, want each of %v once", got, all)
			}
			_, err := w.m.Search(SearchRequest{User: alice, Term: "message", NextBatch: "nonsense"})
			wantCode(t, "a made-up next_batch", err, planb.CodeInvalidParam, http.StatusBadRequest)
		})
	}
	// A page that exactly fills the limit has a next_batch, whose page is empty.
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.say(alice, "one thing")
	r.say(alice, "another thing")
	q := SearchRequest{User: alice, Term: "thing", Filter: inRooms(2, r.id), OrderBy: "recent"}
	res := search(t, w, q)
	if len(res.Results) != 2 || res.NextBatch == "" {
		t.Fatalf("first page: %d results, next_batch %q", len(res.Results), res.NextBatch)
	}
	q.NextBatch = res.NextBatch
	if res = search(t, w, q); len(res.Results) != 0 || res.NextBatch != "" || res.Count != 2 {
		t.Errorf("second page: %d results, next_batch %q, count %d; want none, none, 2", len(res.Results), res.NextBatch, res.Count)
	}
	q.OrderBy = "rank"
	_, err := w.m.Search(q)
	wantCode(t, "a next_batch of another order", err, planb.CodeInvalidParam, http.StatusBadRequest)
}

func TestSearchRedaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	w, _ := openWorld(t, 1, StoreOptions{Dir: dir})
	r := w.createRoom("!r:hs", 0, alice, "shared")
	gone := r.say(alice, "This message is going to be redacted")
	kept := r.say(alice, "This message is not going to be redacted")
	r.commit(r.redaction(alice, gone.EventID))
	// Sent and redacted in one record.
	brief := r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "redacted at once"})
	r.commit(brief, r.redaction(alice, brief.EventID))
	// A redacted name is not found by its old words.
	name := r.state(alice, planb.TypeName, "", obj{"name": "redacted name"})
	r.commit(name)
	r.commit(r.redaction(alice, name.EventID))
	check := func(when string) {
		t.Helper()
		for _, order := range []string{"rank", "recent"} {
			res := search(t, w, SearchRequest{User: alice, Term: "redacted", OrderBy: order})
			if got := found(res); !slices.Equal(got, []string{kept.EventID}) || res.Count != 1 {
				t.Errorf("%s, by %s: found %v (count %d), want only %s", when, order, got, res.Count, kept.EventID)
			}
		}
	}
	check("after the redactions")
	w.reopen(t, StoreOptions{Dir: dir})
	check("after a restart")
}

func TestSearchContextStateAndGroups(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "joined")
	var msgs []*planb.Event
	for i := 1; i <= 3; i++ {
		msgs = append(msgs, r.say(alice, "Message number "+string(rune('0'+i))))
	}
	r.commit(r.state(bob, planb.TypeMember, bob, obj{"membership": "join", "displayname": "Bob the First"}))
	for i := 4; i <= 7; i++ {
		sender := alice
		if i == 5 {
			sender = bob
		}
		msgs = append(msgs, r.send(sender, obj{"msgtype": "m.text", "body": "Message number " + string(rune('0'+i))}))
	}
	r.commit(r.state(bob, planb.TypeMember, bob, obj{"membership": "join", "displayname": "Bob the Second"}))
	two, four := 2, 4
	body := func(evs []ClientEvent) []string {
		out := []string{}
		for _, e := range evs {
			var c struct{ Body string }
			_ = json.Unmarshal(e.Content, &c)
			if e.Type == planb.TypeMember {
				c.Body = "member"
			}
			out = append(out, c.Body)
		}
		return out
	}
	res := search(t, w, SearchRequest{User: alice, Term: "Message 4", OrderBy: "recent", Filter: inRooms(1, r.id),
		Context: &SearchContext{Before: &two, After: &two, IncludeProfile: true}, IncludeState: true, GroupBy: []string{"room_id", "sender"}})
	if res.Count != 1 || len(res.Results) != 1 || res.NextBatch == "" {
		t.Fatalf("count %d, %d results, next_batch %q; want 1, 1 and a next_batch (the page is full)", res.Count, len(res.Results), res.NextBatch)
	}
	c := res.Results[0].Context
	if got := body(c.EventsBefore); !slices.Equal(got, []string{"member", "Message number 3"}) {
		t.Errorf("events_before = %v", got)
	}
	if got := body(c.EventsAfter); !slices.Equal(got, []string{"Message number 5", "Message number 6"}) {
		t.Errorf("events_after = %v", got)
	}
	if c.Start == "" || c.End == "" {
		t.Errorf("context tokens %q, %q", c.Start, c.End)
	}
	// Profiles as they were at the last event of the context.
	if p := c.ProfileInfo[bob]; p.DisplayName != "Bob the First" {
		t.Errorf("profile_info = %+v, want bob's first display name", c.ProfileInfo)
	}
	if p := c.ProfileInfo[alice]; p.DisplayName != "Creator" {
		t.Errorf("profile_info = %+v, want alice's display name", c.ProfileInfo)
	}
	st := res.State[r.id]
	if len(st) == 0 {
		t.Fatalf("state = %v, want the room's", res.State)
	}
	for _, e := range st {
		if e.Type == planb.TypeMember && *e.StateKey == bob && !strings.Contains(string(e.Content), "Second") {
			t.Errorf("state has bob's member event %s, want the current one", e.Content)
		}
	}
	if g := res.Groups["room_id"][r.id]; g == nil || g.Order != 1 || !slices.Equal(g.Results, []string{msgs[3].EventID}) {
		t.Errorf("groups = %+v", res.Groups)
	}
	if g := res.Groups["sender"][alice]; g == nil || !slices.Equal(g.Results, []string{msgs[3].EventID}) {
		t.Errorf("groups = %+v", res.Groups)
	}

	// Defaults: five on each side; bob, who joined late, sees no message
	// from before his join (the room's first events were sent before its
	// history visibility was set, so they are shared).
	res = search(t, w, SearchRequest{User: bob, Term: "message 5", Context: &SearchContext{After: &four}})
	if len(res.Results) != 1 {
		t.Fatalf("bob finds %d results", len(res.Results))
	}
	c = res.Results[0].Context
	got := body(c.EventsBefore)
	if len(got) != 5 || !slices.Equal(got[:2], []string{"Message number 4", "member"}) || slices.Contains(got, "Message number 3") {
		t.Errorf("bob's events_before = %v, want five with no message from before his join", got)
	}
	if got := body(c.EventsAfter); !slices.Equal(got, []string{"Message number 6", "Message number 7", "member"}) {
		t.Errorf("bob's events_after = %v", got)
	}
	if c.ProfileInfo != nil || res.State != nil || res.Groups != nil {
		t.Errorf("profile_info, state or groups without being asked: %+v %v %v", c.ProfileInfo, res.State, res.Groups)
	}
}
