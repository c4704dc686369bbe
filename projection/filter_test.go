package projection

import (
	"encoding/json"
	"testing"

	"github.com/planb-chat/planb"
)

func TestMatchPattern(t *testing.T) {
	for _, c := range []struct {
		pattern, s string
		want       bool
	}{
		{"m.room.message", "m.room.message", true},
		{"m.room.message", "m.room.messages", false},
		{"m.room.message", "m.room.messag", false},
		{"m.room.message", "", false},
		{"", "", true},
		{"", "x", false},
		{"*", "", true},
		{"*", "anything", true},
		{"**", "anything", true},
		{"m.*", "m.room.message", true},
		{"m.*", "m.", true},
		{"m.*", "m", false},
		{"m.*", "org.m.x", false},
		{"*.message", "m.room.message", true},
		{"*.message", "m.room.messages", false},
		{"m.*.message", "m.room.message", true},
		{"m.*.message", "m..message", true},
		{"m.*.message", "m.message", false}, // prefix and suffix may not overlap
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "axxbyyc", true},
		{"a*b*c", "abcbc", true},
		{"*b*", "abc", true},
		{"*b*", "ac", false},
		{"@*:hs", "@alice:hs", true},
		{"@*:hs", "@alice:hs2", false},
	} {
		if got := matchPattern(c.pattern, c.s); got != c.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", c.pattern, c.s, got, c.want)
		}
	}
}

func list(s ...string) *[]string { return &s }

func TestEventFilterAllows(t *testing.T) {
	for _, c := range []struct {
		name        string
		f           *EventFilter
		typ, sender string
		want        bool
	}{
		{"nil filter", nil, "m.room.message", alice, true},
		{"empty filter", &EventFilter{}, "m.room.message", alice, true},
		{"types match", &EventFilter{Types: list("m.room.message")}, "m.room.message", alice, true},
		{"types miss", &EventFilter{Types: list("m.room.message")}, "m.room.name", alice, false},
		{"types wildcard", &EventFilter{Types: list("m.room.*")}, "m.room.name", alice, true},
		{"empty types allow nothing", &EventFilter{Types: list()}, "m.room.message", alice, false},
		{"not_types", &EventFilter{NotTypes: []string{"m.room.message"}}, "m.room.message", alice, false},
		{"not_types other", &EventFilter{NotTypes: []string{"m.room.message"}}, "m.room.name", alice, true},
		{"not_types wildcard", &EventFilter{NotTypes: []string{"m.*"}}, "m.room.name", alice, false},
		{"not_types beats types", &EventFilter{Types: list("m.*"), NotTypes: []string{"m.room.message"}}, "m.room.message", alice, false},
		{"senders match", &EventFilter{Senders: list(alice)}, "m.room.message", alice, true},
		{"senders miss", &EventFilter{Senders: list(alice)}, "m.room.message", bob, false},
		{"empty senders allow nothing", &EventFilter{Senders: list()}, "m.room.message", alice, false},
		{"not_senders", &EventFilter{NotSenders: []string{bob}}, "m.room.message", bob, false},
		{"not_senders other", &EventFilter{NotSenders: []string{bob}}, "m.room.message", alice, true},
		{"not_senders beats senders", &EventFilter{Senders: list(bob), NotSenders: []string{bob}}, "m.room.message", bob, false},
		{"types and senders both needed", &EventFilter{Types: list("m.room.message"), Senders: list(alice)}, "m.room.message", bob, false},
	} {
		if got := c.f.Allows(c.typ, c.sender); got != c.want {
			t.Errorf("%s: Allows(%q, %q) = %v, want %v", c.name, c.typ, c.sender, got, c.want)
		}
	}
}

func TestRoomEventFilterAllowsEvent(t *testing.T) {
	yes, no := true, false
	msg := &planb.Event{RoomID: "!a:hs", Sender: alice, Type: planb.TypeMessage}
	withURL := json.RawMessage(`{"msgtype":"m.image","url":"mxc://hs/x"}`)
	noURL := json.RawMessage(`{"msgtype":"m.text","body":"hi"}`)
	for _, c := range []struct {
		name    string
		f       *RoomEventFilter
		content json.RawMessage
		want    bool
	}{
		{"nil filter", nil, noURL, true},
		{"empty filter", &RoomEventFilter{}, noURL, true},
		{"rooms match", &RoomEventFilter{Rooms: list("!a:hs")}, noURL, true},
		{"rooms miss", &RoomEventFilter{Rooms: list("!b:hs")}, noURL, false},
		{"empty rooms allow nothing", &RoomEventFilter{Rooms: list()}, noURL, false},
		{"not_rooms", &RoomEventFilter{NotRooms: []string{"!a:hs"}}, noURL, false},
		{"not_rooms other", &RoomEventFilter{NotRooms: []string{"!b:hs"}}, noURL, true},
		{"not_rooms beats rooms", &RoomEventFilter{Rooms: list("!a:hs"), NotRooms: []string{"!a:hs"}}, noURL, false},
		{"contains_url true with url", &RoomEventFilter{ContainsURL: &yes}, withURL, true},
		{"contains_url true without url", &RoomEventFilter{ContainsURL: &yes}, noURL, false},
		{"contains_url false with url", &RoomEventFilter{ContainsURL: &no}, withURL, false},
		{"contains_url false without url", &RoomEventFilter{ContainsURL: &no}, noURL, true},
		{"contains_url on bad content", &RoomEventFilter{ContainsURL: &yes}, json.RawMessage(`[1]`), false},
		{"event filter applies", &RoomEventFilter{EventFilter: EventFilter{NotSenders: []string{alice}}}, noURL, false},
		{"event filter types", &RoomEventFilter{EventFilter: EventFilter{Types: list("m.room.*")}}, noURL, true},
	} {
		if got := c.f.AllowsEvent(msg, c.content); got != c.want {
			t.Errorf("%s: AllowsEvent = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestNilFiltersAllowAll(t *testing.T) {
	var ef *EventFilter
	var rf *RoomEventFilter
	var rmf *RoomFilter
	ev := &planb.Event{RoomID: "!a:hs", Sender: alice, Type: "x.y"}
	if !ef.Allows("x.y", alice) {
		t.Error("nil EventFilter rejected an event")
	}
	if !rf.AllowsEvent(ev, json.RawMessage(`{}`)) || !rf.AllowsType("m.typing") || !rf.AllowsRoom("!a:hs") {
		t.Error("nil RoomEventFilter rejected something")
	}
	if !rmf.allowsRoom("!a:hs") {
		t.Error("nil RoomFilter rejected a room")
	}
	if got := rf.limit(10, 1000); got != 10 {
		t.Errorf("nil filter limit = %d, want the default 10", got)
	}
}

func TestRoomFilterRoomsAndLimit(t *testing.T) {
	f := &RoomFilter{Rooms: list("!a:hs", "!b:hs"), NotRooms: []string{"!b:hs"}}
	for room, want := range map[string]bool{"!a:hs": true, "!b:hs": false, "!c:hs": false} {
		if got := f.allowsRoom(room); got != want {
			t.Errorf("allowsRoom(%s) = %v, want %v", room, got, want)
		}
	}
	if got := (&RoomEventFilter{}).limit(10, 1000); got != 10 {
		t.Errorf("no limit gave %d, want the default 10", got)
	}
	for _, c := range []struct{ limit, want int }{{0, 0}, {-5, 10}, {3, 3}, {5000, 1000}} {
		f := &RoomEventFilter{EventFilter: EventFilter{Limit: &c.limit}}
		if got := f.limit(10, 1000); got != c.want {
			t.Errorf("limit %d gave %d, want %d", c.limit, got, c.want)
		}
	}
}

func TestParseFilter(t *testing.T) {
	f, err := ParseFilter([]byte(`{"event_format":"client","room":{"rooms":["!a:hs"],"include_leave":true,
		"timeline":{"limit":5,"types":["m.room.message"],"not_senders":["@x:hs"],"contains_url":true},
		"state":{"lazy_load_members":true}},"account_data":{"not_types":["*"]}}`))
	if err != nil {
		t.Fatalf("ParseFilter: %v", err)
	}
	if f.Room == nil || !f.Room.IncludeLeave || f.Room.Rooms == nil || (*f.Room.Rooms)[0] != "!a:hs" {
		t.Fatalf("room filter = %+v", f.Room)
	}
	tl := f.Room.Timeline
	if tl == nil || tl.Limit == nil || *tl.Limit != 5 || tl.ContainsURL == nil || !*tl.ContainsURL || tl.Types == nil || len(tl.NotSenders) != 1 {
		t.Fatalf("timeline filter = %+v", tl)
	}
	if !f.Room.State.LazyLoadMembers {
		t.Fatal("lazy_load_members lost")
	}
	if f.AccountData.Allows("m.push_rules", "") {
		t.Fatal("account_data not_types * let m.push_rules through")
	}
	for _, b := range []string{
		``, `{`, `[]`, `"x"`, `1`, `{"room":[]}`, `{"room":{"timeline":{"limit":"5"}}}`,
		`{"event_format":"matrix"}`, `{"room":{"rooms":"!a:hs"}}`, `{"room":{"timeline":{"limit":1e40}}}`,
	} {
		_, err := ParseFilter([]byte(b))
		if err == nil {
			t.Errorf("ParseFilter(%q) accepted it", b)
			continue
		}
		wantCode(t, "ParseFilter("+b+")", err, planb.CodeBadJSON, 400)
	}
}

// FuzzParseFilter checks that ParseFilter never panics, reports every
// failure as M_BAD_JSON, and that what it accepts can be used and encoded
// back to a filter it accepts again.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"event_format":"federation"}`, `{"event_format":"x"}`,
		`{"room":{"rooms":["!a:hs"],"not_rooms":["!b:hs"],"include_leave":true}}`,
		`{"room":{"timeline":{"limit":5,"types":["m.*"],"not_types":["*.name"],"senders":["@a:hs"],"contains_url":false,"lazy_load_members":true}}}`,
		`{"account_data":{"types":[]},"presence":{"not_senders":["*"]},"event_fields":["content.body"]}`,
		`{"room":{"state":{"limit":-1},"ephemeral":{"types":["m.typing"]},"account_data":{"rooms":[]}}}`,
		`{"room":{"timeline":{"limit":99999999999999999999}}}`, `{"room":null}`, `[`, ``, `"`,
	} {
		f.Add([]byte(s))
	}
	ev := &planb.Event{RoomID: "!a:hs", Sender: "@a:hs", Type: planb.TypeMessage}
	content := json.RawMessage(`{"msgtype":"m.image","url":"mxc://hs/x"}`)
	f.Fuzz(func(t *testing.T, b []byte) {
		flt, err := ParseFilter(b)
		if err != nil {
			e, ok := planb.AsError(err)
			if !ok || e.Code != planb.CodeBadJSON || e.Status != 400 {
				t.Fatalf("ParseFilter(%q) error %v (%T) is not a 400 M_BAD_JSON *planb.Error", b, err, err)
			}
			if flt != nil {
				t.Fatalf("ParseFilter(%q) returned a filter with an error", b)
			}
			return
		}
		if flt == nil {
			t.Fatalf("ParseFilter(%q) returned neither filter nor error", b)
		}
		// Using the filter never panics.
		flt.AccountData.Allows("m.push_rules", "")
		flt.Presence.Allows("m.presence", "@a:hs")
		if rf := flt.Room; rf != nil {
			rf.allowsRoom(ev.RoomID)
			for _, ef := range []*RoomEventFilter{rf.Timeline, rf.State, rf.Ephemeral, rf.AccountData} {
				ef.AllowsEvent(ev, content)
				ef.AllowsType("m.typing")
				ef.limit(10, 1000)
			}
		}
		enc, err := json.Marshal(flt)
		if err != nil {
			t.Fatalf("marshal accepted filter %q: %v", b, err)
		}
		again, err := ParseFilter(enc)
		if err != nil {
			t.Fatalf("filter %q was accepted but its encoding %s is not: %v", b, enc, err)
		}
		enc2, err := json.Marshal(again)
		if err != nil || string(enc2) != string(enc) {
			t.Fatalf("encoding not stable: %s then %s (%v)", enc, enc2, err)
		}
	})
}
