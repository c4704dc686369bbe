package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// searchEvent is an event in a /search answer.
type searchEvent struct {
	EventID string         `json:"event_id"`
	RoomID  string         `json:"room_id"`
	Type    string         `json:"type"`
	Content map[string]any `json:"content"`
}

// searchAnswer is the room_events category of a /search answer.
type searchAnswer struct {
	Count      *int     `json:"count"`
	Highlights []string `json:"highlights"`
	Results    []struct {
		Rank    float64     `json:"rank"`
		Result  searchEvent `json:"result"`
		Context *struct {
			Start        string                     `json:"start"`
			End          string                     `json:"end"`
			EventsBefore []searchEvent              `json:"events_before"`
			EventsAfter  []searchEvent              `json:"events_after"`
			ProfileInfo  map[string]json.RawMessage `json:"profile_info"`
		} `json:"context"`
	} `json:"results"`
	NextBatch *string                             `json:"next_batch"`
	State     map[string][]searchEvent            `json:"state"`
	Groups    map[string]map[string]searchGroupIn `json:"groups"`
}

type searchGroupIn struct {
	Order   int      `json:"order"`
	Results []string `json:"results"`
}

// ids returns the event IDs of the results.
func (a searchAnswer) ids() []string {
	out := []string{}
	for _, r := range a.Results {
		out = append(out, r.Result.EventID)
	}
	return out
}

// searchReq is the body of a room_events search.
func searchReq(term string, criteria map[string]any) []byte {
	re := map[string]any{"search_term": term}
	for k, v := range criteria {
		re[k] = v
	}
	b, _ := json.Marshal(map[string]any{"search_categories": map[string]any{"room_events": re}})
	return b
}

// searchRaw posts a search as cli (with next_batch when given).
func searchRaw(t *testing.T, srv *server, cli *mautrix.Client, body []byte, nextBatch string) rawResponse {
	t.Helper()
	path := "/_matrix/client/v3/search"
	if nextBatch != "" {
		path += "?next_batch=" + url.QueryEscape(nextBatch)
	}
	return srv.raw(t, "POST", path, cli.AccessToken, body)
}

// doSearch posts a search that must succeed and returns its answer.
func doSearch(t *testing.T, srv *server, cli *mautrix.Client, body []byte, nextBatch string) searchAnswer {
	t.Helper()
	resp := searchRaw(t, srv, cli, body, nextBatch)
	if resp.status != 200 {
		t.Fatalf("search as %s: %v", cli.UserID, resp)
	}
	var out struct {
		Categories struct {
			RoomEvents *searchAnswer `json:"room_events"`
		} `json:"search_categories"`
	}
	if err := json.Unmarshal(resp.body, &out); err != nil || out.Categories.RoomEvents == nil {
		t.Fatalf("search as %s: %v (%v)", cli.UserID, resp, err)
	}
	a := *out.Categories.RoomEvents
	if a.Count == nil || a.Results == nil || a.Highlights == nil {
		t.Fatalf("search as %s: count, results or highlights missing: %v", cli.UserID, resp)
	}
	return a
}

// searchFinds waits until the search finds exactly want (in order): the
// model applies a write a moment after it is acknowledged.
func searchFinds(t *testing.T, srv *server, cli *mautrix.Client, body []byte, want []string) searchAnswer {
	t.Helper()
	var a searchAnswer
	testutil.WaitFor(t, waitTimeout, fmt.Sprintf("search %s to find %v", body, want), func() error {
		a = doSearch(t, srv, cli, body, "")
		if got := a.ids(); !slices.Equal(got, want) {
			return fmt.Errorf("found %v", got)
		}
		return nil
	})
	return a
}

func inRoom(room id.RoomID, limit int) map[string]any {
	f := map[string]any{"rooms": []string{string(room)}}
	if limit > 0 {
		f["limit"] = limit
	}
	return f
}

// TestSearch checks POST /search as Complement's TestSearch does (body
// search, context, back-pagination, redactions under both orderings) and
// what it leaves out: keys, filters, history visibility, errors and a
// rebuild of the index from the log.
func TestSearch(t *testing.T) {
	srv := startServer(t)
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")
	newRoom := func(t *testing.T, req *mautrix.ReqCreateRoom) id.RoomID {
		t.Helper()
		if req == nil {
			req = &mautrix.ReqCreateRoom{Preset: "private_chat"}
		}
		resp, err := alice.CreateRoom(ctx, req)
		must(t, "create room", err)
		return resp.RoomID
	}

	t.Run("an event is found by its body", func(t *testing.T) {
		room := newRoom(t, nil)
		ev := sendText(t, alice, room, "hello, world")
		a := searchFinds(t, srv, alice, searchReq("HELLO", map[string]any{"keys": []string{"content.body"}, "filter": inRoom(room, 0)}),
			[]string{string(ev)})
		r := a.Results[0].Result
		if *a.Count != 1 || r.RoomID != string(room) || r.Type != "m.room.message" || r.Content["body"] != "hello, world" {
			t.Errorf("count %d, result %+v", *a.Count, r)
		}
		if !slices.Equal(a.Highlights, []string{"hello"}) || a.NextBatch != nil {
			t.Errorf("highlights %v, next_batch %v; want [hello] and none", a.Highlights, a.NextBatch)
		}
		// The r0 path serves the same.
		if resp := srv.raw(t, "POST", "/_matrix/client/r0/search", alice.AccessToken, searchReq("hello", nil)); resp.status != 200 {
			t.Errorf("r0 search: %v", resp)
		}
	})

	t.Run("context around results", func(t *testing.T) {
		room := newRoom(t, nil)
		var four string
		for i := 1; i <= 7; i++ {
			ev := sendText(t, alice, room, fmt.Sprintf("Message number %d", i))
			if i == 4 {
				four = string(ev)
			}
		}
		body := searchReq("Message 4", map[string]any{"keys": []string{"content.body"}, "order_by": "recent",
			"filter": inRoom(room, 1), "event_context": map[string]any{"before_limit": 2, "after_limit": 2, "include_profile": true}})
		a := searchFinds(t, srv, alice, body, []string{four})
		c := a.Results[0].Context
		if *a.Count != 1 || a.NextBatch == nil || c == nil {
			t.Fatalf("count %d, next_batch %v, context %v: want 1, a next_batch (the page is full) and a context", *a.Count, a.NextBatch, c)
		}
		bodies := func(evs []searchEvent) []any {
			out := []any{}
			for _, e := range evs {
				out = append(out, e.Content["body"])
			}
			return out
		}
		if got := bodies(c.EventsBefore); !slices.Equal(got, []any{"Message number 3", "Message number 2"}) {
			t.Errorf("events_before %v", got)
		}
		if got := bodies(c.EventsAfter); !slices.Equal(got, []any{"Message number 5", "Message number 6"}) {
			t.Errorf("events_after %v", got)
		}
		if _, ok := c.ProfileInfo[string(alice.UserID)]; !ok || c.Start == "" || c.End == "" {
			t.Errorf("profile_info %v, start %q, end %q", c.ProfileInfo, c.Start, c.End)
		}
	})

	t.Run("back-pagination", func(t *testing.T) {
		room := newRoom(t, nil)
		var evs []string
		for i := range 20 {
			evs = append(evs, string(sendText(t, alice, room, fmt.Sprintf("Message number %d", i))))
		}
		body := searchReq("Message", map[string]any{"keys": []string{"content.body"}, "order_by": "recent", "filter": inRoom(room, 10)})
		ids := slices.Clone(evs[10:])
		slices.Reverse(ids)
		a := searchFinds(t, srv, alice, body, ids)
		for page, from := range []int{9, -1} {
			if *a.Count != 20 || a.NextBatch == nil {
				t.Fatalf("page %d: count %d, next_batch %v; want 20 and a next_batch", page+1, *a.Count, a.NextBatch)
			}
			a = doSearch(t, srv, alice, body, *a.NextBatch)
			ids = []string{}
			for i := from; i >= 0 && i > from-10; i-- {
				ids = append(ids, evs[i])
			}
			if got := a.ids(); !slices.Equal(got, ids) {
				t.Fatalf("page %d: %v, want %v", page+2, got, ids)
			}
		}
		if *a.Count != 20 || a.NextBatch != nil {
			t.Errorf("last page: count %d, next_batch %v; want 20 and none", *a.Count, a.NextBatch)
		}
		checkRaw(t, "a next_batch of another ordering", searchRaw(t, srv, alice, searchReq("Message", map[string]any{"filter": inRoom(room, 10)}), *doSearch(t, srv, alice, body, "").NextBatch),
			want{400, "M_INVALID_PARAM"})
		checkRaw(t, "a made-up next_batch", searchRaw(t, srv, alice, body, "garbage"), want{400, "M_INVALID_PARAM"})
	})

	for _, order := range []string{"rank", "recent"} {
		t.Run("redacted events are not found by "+order, func(t *testing.T) {
			room := newRoom(t, nil)
			gone := sendText(t, alice, room, "This message is going to be redacted")
			kept := sendText(t, alice, room, "This message is not going to be redacted")
			_, err := alice.RedactEvent(ctx, room, gone)
			must(t, "redact", err)
			a := searchFinds(t, srv, alice, searchReq("redacted", map[string]any{"order_by": order, "filter": inRoom(room, 0)}), []string{string(kept)})
			if *a.Count != 1 {
				t.Errorf("count %d, want 1", *a.Count)
			}
		})
	}

	t.Run("keys, filters and groups", func(t *testing.T) {
		room := newRoom(t, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Comet watchers", Topic: "comets and moons",
			Invite: []id.UserID{bob.UserID}})
		_, err := bob.JoinRoomByID(ctx, room)
		must(t, "bob joins", err)
		fromAlice := sendText(t, alice, room, "a comet tonight")
		fromBob := sendText(t, bob, room, "Comet? Where")
		searchFinds(t, srv, bob, searchReq("comet", map[string]any{"keys": []string{"content.body"}, "order_by": "recent",
			"filter": inRoom(room, 0)}), []string{string(fromBob), string(fromAlice)})
		// Without keys the name and the topic are searched too.
		a := doSearch(t, srv, bob, searchReq("comet", map[string]any{"filter": inRoom(room, 0), "include_state": true}), "")
		types := map[string]int{}
		for _, r := range a.Results {
			types[r.Result.Type]++
		}
		if types["m.room.name"] != 1 || types["m.room.topic"] != 1 || types["m.room.message"] != 2 || *a.Count != 4 {
			t.Errorf("comet in every key found %v (count %d), want the name, the topic and both messages", types, *a.Count)
		}
		if len(a.State[string(room)]) == 0 {
			t.Errorf("include_state gave no state for the room: %v", a.State)
		}
		a = doSearch(t, srv, bob, searchReq("watch", map[string]any{"keys": []string{"content.name", "content.topic"}, "filter": inRoom(room, 0)}), "")
		if len(a.Results) != 1 || a.Results[0].Result.Type != "m.room.name" {
			t.Errorf("watch in names and topics found %+v, want the name", a.Results)
		}
		f := inRoom(room, 0)
		f["senders"] = []string{string(alice.UserID)}
		f["types"] = []string{"m.room.message"}
		a = doSearch(t, srv, bob, searchReq("comet", map[string]any{"filter": f, "groupings": map[string]any{
			"group_by": []map[string]string{{"key": "room_id"}, {"key": "sender"}}}}), "")
		if got := a.ids(); !slices.Equal(got, []string{string(fromAlice)}) {
			t.Errorf("comet in alice's messages found %v, want %s", got, fromAlice)
		}
		if g := a.Groups["sender"][string(alice.UserID)]; g.Order != 1 || !slices.Equal(g.Results, []string{string(fromAlice)}) {
			t.Errorf("groups %+v", a.Groups)
		}
		if g := a.Groups["room_id"][string(room)]; !slices.Equal(g.Results, []string{string(fromAlice)}) {
			t.Errorf("groups %+v", a.Groups)
		}
		f["not_rooms"] = []string{string(room)}
		if a = doSearch(t, srv, bob, searchReq("comet", map[string]any{"filter": f}), ""); len(a.Results) != 0 {
			t.Errorf("a search leaving the room out found %v", a.ids())
		}
	})

	t.Run("only what the user may see", func(t *testing.T) {
		room := newRoom(t, &mautrix.ReqCreateRoom{Preset: "public_chat",
			InitialState: []*event.Event{{Type: event.StateHistoryVisibility, Content: event.Content{Raw: map[string]any{"history_visibility": "joined"}}}}})
		before := sendText(t, alice, room, "zebra before bob")
		_, err := bob.JoinRoomByID(ctx, room)
		must(t, "bob joins", err)
		during := sendText(t, alice, room, "zebra while bob is here")
		_, err = bob.LeaveRoom(ctx, room)
		must(t, "bob leaves", err)
		after := sendText(t, alice, room, "zebra after bob left")
		never := newRoom(t, &mautrix.ReqCreateRoom{Preset: "public_chat"})
		elsewhere := sendText(t, alice, never, "zebra where bob never was")

		recent := searchReq("zebra", map[string]any{"order_by": "recent"})
		searchFinds(t, srv, alice, recent, []string{string(elsewhere), string(after), string(during), string(before)})
		a := doSearch(t, srv, bob, recent, "")
		if got := a.ids(); !slices.Equal(got, []string{string(during)}) || *a.Count != 1 {
			t.Errorf("bob finds %v (count %d), want only %s: not what was sent before he joined, after he left or where he never was",
				got, *a.Count, during)
		}
		f := map[string]any{"rooms": []string{string(never), string(room)}}
		if got := doSearch(t, srv, bob, searchReq("zebra", map[string]any{"filter": f}), "").ids(); !slices.Equal(got, []string{string(during)}) {
			t.Errorf("bob, naming both rooms, finds %v", got)
		}
		// Context stops where bob's view does.
		a = doSearch(t, srv, bob, searchReq("zebra", map[string]any{"event_context": map[string]any{"before_limit": 10, "after_limit": 10}}), "")
		if len(a.Results) == 1 {
			for _, e := range append(a.Results[0].Context.EventsBefore, a.Results[0].Context.EventsAfter...) {
				if e.EventID == string(before) || e.EventID == string(after) {
					t.Errorf("bob's context holds %s, which he may not see", e.EventID)
				}
			}
		}
	})

	t.Run("bad requests", func(t *testing.T) {
		for what, body := range map[string]string{
			"no search_categories": `{}`,
			"no search_term":       `{"search_categories":{"room_events":{"keys":["content.body"]}}}`,
			"a search_term number": `{"search_categories":{"room_events":{"search_term":4}}}`,
			"a room that is no ID": `{"search_categories":{"room_events":{"search_term":"x","filter":{"rooms":["general"]}}}}`,
		} {
			checkRaw(t, what, searchRaw(t, srv, alice, []byte(body), ""), want{400, "M_BAD_JSON"})
		}
		for what, body := range map[string]string{
			"an unknown key":          `{"search_categories":{"room_events":{"search_term":"x","keys":["content.url"]}}}`,
			"an unknown order":        `{"search_categories":{"room_events":{"search_term":"x","order_by":"oldest"}}}`,
			"an unknown grouping":     `{"search_categories":{"room_events":{"search_term":"x","groupings":{"group_by":[{"key":"type"}]}}}}`,
			"a negative before_limit": `{"search_categories":{"room_events":{"search_term":"x","event_context":{"before_limit":-1}}}}`,
		} {
			checkRaw(t, what, searchRaw(t, srv, alice, []byte(body), ""), want{400, "M_INVALID_PARAM"})
		}
		checkRaw(t, "no access token", srv.raw(t, "POST", "/_matrix/client/v3/search", "", searchReq("x", nil)), want{401, "M_MISSING_TOKEN"})
		if resp := searchRaw(t, srv, alice, []byte(`{"search_categories":{}}`), ""); resp.status != 200 || string(resp.body) != "{\"search_categories\":{}}\n" {
			t.Errorf("a search of no category: %v", resp)
		}
	})

	t.Run("the index is rebuilt from the log", func(t *testing.T) {
		bodies := [][]byte{
			searchReq("message", map[string]any{"order_by": "recent", "filter": map[string]any{"limit": 100}}),
			searchReq("zebra", map[string]any{"event_context": map[string]any{"include_profile": true}, "include_state": true}),
			searchReq("redacted comet", nil),
			searchReq("comet", map[string]any{"keys": []string{"content.name", "content.topic"}}),
		}
		answers := func() string {
			var out string
			for _, b := range bodies {
				for _, c := range []*mautrix.Client{alice, bob} {
					out += fmt.Sprintf("%s %s\n%s\n", c.UserID, b, clockBound.ReplaceAll(searchRaw(t, srv, c, b, "").body, nil))
				}
			}
			return out
		}
		before := answers()
		srv.stop(t)
		if err := os.RemoveAll(filepath.Join(srv.dataDir, "readmodel")); err != nil {
			t.Fatal(err)
		}
		srv.start(t)
		sameReadBack(t, "search after rebuilding the read models", before, answers())
	})
}
