package projection

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/planb-chat/planb"
)

const (
	alice = "@alice:hs" // creates every test room
	bob   = "@bob:hs"
	carol = "@carol:hs"
	eve   = "@eve:hs" // never a member of anything
)

// obj is JSON object content, written inline in the tests.
type obj = map[string]any

// world is a read model fed by hand-built records, the way the engine feeds
// it: each record lands at the next sequence of its room's partition.
type world struct {
	t     testing.TB
	m     *Model
	next  []uint64       // last sequence used per partition
	parts map[string]int // room → partition
	ts    int64          // origin_server_ts of the next event
}

// newWorld returns an empty model of n partitions.
func newWorld(t testing.TB, n int) *world {
	w := &world{t: t, next: make([]uint64, n), parts: map[string]int{},
		ts: time.Now().Add(-time.Hour).UnixMilli()}
	w.m = New(n, func(roomID string) int { return w.parts[roomID] })
	return w
}

// room builds the events of one room, chaining prev_events and depth.
type room struct {
	w     *world
	id    string
	part  int
	last  string // ID of the newest event, the next one's prev_event
	depth int64
}

// createRoom commits, as one record (as createRoom does), m.room.create,
// the creator's join, power levels, public join rules, the given history
// visibility and a name.
func (w *world) createRoom(id string, part int, creator, visibility string) *room {
	w.t.Helper()
	w.parts[id] = part
	r := &room{w: w, id: id, part: part}
	r.commit(
		r.state(creator, planb.TypeCreate, "", obj{"creator": creator, "room_version": "10"}),
		r.state(creator, planb.TypeMember, creator, obj{"membership": "join", "displayname": "Creator"}),
		r.state(creator, planb.TypePowerLevels, "", obj{"users": obj{creator: 100}}),
		r.state(creator, planb.TypeJoinRules, "", obj{"join_rule": "public"}),
		r.state(creator, planb.TypeHistoryVisibility, "", obj{"history_visibility": visibility}),
		r.state(creator, planb.TypeName, "", obj{"name": "Room " + id}),
	)
	return r
}

// event returns a new event following the newest one built; it is not
// committed yet.
func (r *room) event(sender, typ string, stateKey *string, content any) *planb.Event {
	r.w.t.Helper()
	b, err := json.Marshal(content)
	if err != nil {
		r.w.t.Fatalf("marshal content: %v", err)
	}
	r.w.ts++
	ev := &planb.Event{RoomID: r.id, Sender: sender, Type: typ, StateKey: stateKey, Content: b,
		OriginServerTS: r.w.ts, Depth: r.depth + 1, PrevEvents: []string{}}
	if r.last != "" {
		ev.PrevEvents = []string{r.last}
	}
	ev.ComputeID()
	r.last, r.depth = ev.EventID, ev.Depth
	return ev
}

// state returns a state event.
func (r *room) state(sender, typ, key string, content any) *planb.Event {
	return r.event(sender, typ, planb.StrPtr(key), content)
}

// commitTxns applies the events as one record made by the client
// transactions txns at the next sequence of the room's partition and returns
// that sequence.
func (r *room) commitTxns(txns []planb.Txn, evs ...*planb.Event) uint64 {
	r.w.t.Helper()
	r.w.next[r.part]++
	seq := r.w.next[r.part]
	if err := r.w.m.ApplyRecord(r.part, seq, &planb.Record{Events: evs, Txns: txns}); err != nil {
		r.w.t.Fatalf("apply record %d/%d: %v", r.part, seq, err)
	}
	return seq
}

// commit applies the events as one record.
func (r *room) commit(evs ...*planb.Event) uint64 {
	r.w.t.Helper()
	return r.commitTxns(nil, evs...)
}

// member commits a membership change of target made by sender.
func (r *room) member(sender, target, membership string) *planb.Event {
	r.w.t.Helper()
	ev := r.state(sender, planb.TypeMember, target, obj{"membership": membership})
	r.commit(ev)
	return ev
}

func (r *room) join(user string) *planb.Event  { return r.member(user, user, planb.MembershipJoin) }
func (r *room) leave(user string) *planb.Event { return r.member(user, user, planb.MembershipLeave) }

// send commits a message event with the given content.
func (r *room) send(sender string, content obj) *planb.Event {
	r.w.t.Helper()
	ev := r.event(sender, planb.TypeMessage, nil, content)
	r.commit(ev)
	return ev
}

// say commits an m.text message.
func (r *room) say(sender, body string) *planb.Event {
	return r.send(sender, obj{"msgtype": "m.text", "body": body})
}

// sayN commits n messages and returns their IDs.
func (r *room) sayN(sender string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = r.say(sender, "msg").EventID
	}
	return ids
}

// timelineIDs returns the IDs of all events of the room in timeline order.
func (r *room) timelineIDs() []string {
	r.w.m.mu.RLock()
	defer r.w.m.mu.RUnlock()
	var out []string
	err := r.w.m.scan(r.w.m.rooms[r.id], 0, false, func(e *Entry) (bool, error) {
		out = append(out, e.Event.EventID)
		return true, nil
	})
	if err != nil {
		r.w.t.Fatal(err)
	}
	return out
}

// sync runs a sync for user since tok (nil: initial) and returns the
// response and its next_batch parsed.
func (w *world) sync(user string, since *Token, f *Filter) (*SyncResponse, bool, Token) {
	w.t.Helper()
	resp, has, _, err := w.m.Sync(SyncRequest{User: user, Device: "DEV", Since: since, Filter: f})
	if err != nil {
		w.t.Fatal(err)
	}
	next, err := ParseToken(resp.NextBatch, len(w.next))
	if err != nil {
		w.t.Fatalf("next_batch %q: %v", resp.NextBatch, err)
	}
	return resp, has, next
}

// includeLeave is a filter that asks for left rooms.
func includeLeave() *Filter { return &Filter{Room: &RoomFilter{IncludeLeave: true}} }

// timelineLimit is a filter with a timeline limit.
func timelineLimit(n int) *Filter {
	return &Filter{Room: &RoomFilter{Timeline: &RoomEventFilter{EventFilter: EventFilter{Limit: &n}}}}
}

// ids returns the event IDs of client events.
func ids(evs []ClientEvent) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

// stateTypes indexes sync state events (held as any) by "type|state_key".
func stateTypes(t testing.TB, l EventList) map[string]ClientEvent {
	t.Helper()
	out := map[string]ClientEvent{}
	for _, e := range l.Events {
		ce, ok := e.(ClientEvent)
		if !ok {
			t.Fatalf("state entry %T is not a ClientEvent", e)
		}
		key := ""
		if ce.StateKey != nil {
			key = *ce.StateKey
		}
		out[ce.Type+"|"+key] = ce
	}
	return out
}

// equalIDs fails the test unless got and want hold the same IDs in order.
func equalIDs(t testing.TB, what string, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %v, want %d %v", what, len(got), got, len(want), want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: event %d is %s, want %s\n got %v\nwant %v", what, i, got[i], want[i], got, want)
		}
	}
}

// contains reports whether id is in list.
func contains(list []string, id string) bool {
	for _, x := range list {
		if x == id {
			return true
		}
	}
	return false
}

// wantCode fails the test unless err is a *planb.Error with code and status.
func wantCode(t testing.TB, what string, err error, code planb.ErrCode, status int) {
	t.Helper()
	e, ok := planb.AsError(err)
	if !ok {
		t.Fatalf("%s: got error %v (%T), want %s", what, err, err, code)
	}
	if e.Code != code || e.Status != status {
		t.Fatalf("%s: got %s/%d (%s), want %s/%d", what, e.Code, e.Status, e.Message, code, status)
	}
}

// closed reports whether ch is closed without blocking.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
