package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/testutil"
)

// syncFilter asks for long timelines so that a test reading many events
// rarely sees a limited (gapped) timeline. Passed inline as the spec allows
// ("a filter JSON object encoded as a string").
const syncFilter = `{"room":{"timeline":{"limit":500}}}`

// syncer follows one client's /sync stream and accumulates what it saw, the
// way a client keeps its timeline: when the server sends a limited timeline
// it fills the gap from /messages, starting at prev_batch, back to the last
// event it already had.
//
// A syncer is not safe for concurrent use; each goroutine owns its own.
type syncer struct {
	cli    *mautrix.Client
	since  string
	rooms  map[id.RoomID]*roomView
	invite map[id.RoomID]bool // rooms currently in rooms.invite
	leave  map[id.RoomID]bool // rooms last seen in rooms.leave
	// accountData holds the latest global account data content by type.
	accountData map[string]map[string]any
	// gapsFilled counts limited timelines that were back-filled from /messages.
	gapsFilled int
}

// roomView is everything a syncer saw of one room.
type roomView struct {
	timeline  []*event.Event
	count     map[id.EventID]int // how often each event arrived
	ephemeral []*event.Event     // all ephemeral events, in arrival order
	unread    *mautrix.UnreadNotificationCounts
}

func newSyncer(cli *mautrix.Client) *syncer {
	return &syncer{
		cli:         cli,
		rooms:       map[id.RoomID]*roomView{},
		invite:      map[id.RoomID]bool{},
		leave:       map[id.RoomID]bool{},
		accountData: map[string]map[string]any{},
	}
}

func (s *syncer) room(r id.RoomID) *roomView {
	v, ok := s.rooms[r]
	if !ok {
		v = &roomView{count: map[id.EventID]int{}}
		s.rooms[r] = v
	}
	return v
}

// once makes one /sync request, long-polling up to a second for news.
func (s *syncer) once(ctx context.Context) error {
	resp, err := s.cli.SyncRequest(ctx, 1000, s.since, syncFilter, false, "")
	if err != nil {
		return fmt.Errorf("%s: sync since %q: %w", s.cli.UserID, s.since, err)
	}
	if resp.NextBatch == "" {
		return fmt.Errorf("%s: sync response without next_batch", s.cli.UserID)
	}
	for roomID, jr := range resp.Rooms.Join {
		delete(s.invite, roomID)
		delete(s.leave, roomID)
		v := s.room(roomID)
		if err := s.addTimeline(ctx, roomID, v, jr.Timeline); err != nil {
			return err
		}
		v.ephemeral = append(v.ephemeral, jr.Ephemeral.Events...)
		if jr.UnreadNotifications != nil {
			c := *jr.UnreadNotifications
			v.unread = &c
		}
	}
	for roomID := range resp.Rooms.Invite {
		s.invite[roomID] = true
		delete(s.leave, roomID)
	}
	for roomID, lr := range resp.Rooms.Leave {
		delete(s.invite, roomID)
		s.leave[roomID] = true
		if err := s.addTimeline(ctx, roomID, s.room(roomID), lr.Timeline); err != nil {
			return err
		}
	}
	for _, ev := range resp.AccountData.Events {
		s.accountData[ev.Type.Type] = ev.Content.Raw
	}
	s.since = resp.NextBatch
	return nil
}

// addTimeline appends a sync timeline to v, filling a gap first when the
// timeline is limited.
func (s *syncer) addTimeline(ctx context.Context, roomID id.RoomID, v *roomView, tl mautrix.SyncTimeline) error {
	if tl.Limited && tl.PrevBatch != "" {
		missing, err := s.backfill(ctx, roomID, v, tl.PrevBatch)
		if err != nil {
			return err
		}
		s.gapsFilled++
		v.add(missing)
	}
	v.add(tl.Events)
	return nil
}

// backfill pages /messages backwards from token until it meets an event v
// already holds or the start of the room, and returns the events found in
// chronological order.
func (s *syncer) backfill(ctx context.Context, roomID id.RoomID, v *roomView, token string) ([]*event.Event, error) {
	var back []*event.Event
	for range 1000 {
		resp, err := s.cli.Messages(ctx, roomID, token, "", mautrix.DirectionBackward, nil, 100)
		if err != nil {
			return nil, fmt.Errorf("%s: back-fill %s from %q: %w", s.cli.UserID, roomID, token, err)
		}
		for _, ev := range resp.Chunk {
			if v.count[ev.ID] > 0 {
				return reversed(back), nil
			}
			back = append(back, ev)
		}
		if len(resp.Chunk) == 0 || resp.End == "" {
			return reversed(back), nil
		}
		token = resp.End
	}
	return nil, fmt.Errorf("%s: back-fill %s did not end after 1000 pages", s.cli.UserID, roomID)
}

func (v *roomView) add(evs []*event.Event) {
	for _, ev := range evs {
		v.timeline = append(v.timeline, ev)
		v.count[ev.ID]++
	}
}

// until syncs until cond holds; cond is checked before the first request too.
func (s *syncer) until(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	testutil.WaitFor(t, timeout, "sync condition", func() error {
		if cond() == nil {
			return nil
		}
		if err := s.once(t.Context()); err != nil {
			return err
		}
		return cond()
	})
}

// untilCtx is until for goroutines: it returns an error instead of failing.
func (s *syncer) untilCtx(ctx context.Context, cond func() error) error {
	for {
		if err := cond(); err == nil {
			return nil
		}
		if err := s.once(ctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("%w (last condition: %v)", err, cond())
			}
			return err
		}
	}
}

// messages returns the m.room.message events in a room's timeline whose
// body starts with prefix, in timeline order (duplicates included).
func (s *syncer) messages(roomID id.RoomID, prefix string) []*event.Event {
	v, ok := s.rooms[roomID]
	if !ok {
		return nil
	}
	return filterMessages(v.timeline, prefix)
}

// duplicates lists events that arrived more than once in any room.
func (s *syncer) duplicates() []string {
	var d []string
	for roomID, v := range s.rooms {
		for evID, n := range v.count {
			if n > 1 {
				d = append(d, fmt.Sprintf("%s in %s x%d", evID, roomID, n))
			}
		}
	}
	return d
}

// filterMessages keeps m.room.message events whose body starts with prefix.
func filterMessages(evs []*event.Event, prefix string) []*event.Event {
	var out []*event.Event
	for _, ev := range evs {
		if ev.Type == event.EventMessage && strings.HasPrefix(body(ev), prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// ids returns the event IDs of evs.
func ids(evs []*event.Event) []id.EventID {
	out := make([]id.EventID, len(evs))
	for i, ev := range evs {
		out[i] = ev.ID
	}
	return out
}

// body returns content.body of an event, or "".
func body(ev *event.Event) string {
	s, _ := ev.Content.Raw["body"].(string)
	return s
}

// membership returns content.membership of an event, or "".
func membership(ev *event.Event) string {
	s, _ := ev.Content.Raw["membership"].(string)
	return s
}

func reversed[T any](s []T) []T {
	out := make([]T, len(s))
	for i, x := range s {
		out[len(s)-1-i] = x
	}
	return out
}

// text is the content of a plain m.text message.
func text(b string) map[string]any {
	return map[string]any{"msgtype": "m.text", "body": b}
}

// sendText sends an m.text message with the given body.
func sendText(t testing.TB, cli *mautrix.Client, roomID id.RoomID, b string) id.EventID {
	t.Helper()
	resp, err := cli.SendMessageEvent(t.Context(), roomID, event.EventMessage, text(b))
	if err != nil {
		t.Fatalf("%s sends %q: %v", cli.UserID, b, err)
	}
	if !strings.HasPrefix(resp.EventID.String(), "$") {
		t.Fatalf("%s sends %q: event_id %q does not start with $", cli.UserID, b, resp.EventID)
	}
	return resp.EventID
}

// allMessages pages /messages backwards from the end of the room and
// returns every event in chronological order.
func allMessages(ctx context.Context, cli *mautrix.Client, roomID id.RoomID, limit int) ([]*event.Event, error) {
	var back []*event.Event
	token := ""
	for range 10000 {
		resp, err := cli.Messages(ctx, roomID, token, "", mautrix.DirectionBackward, nil, limit)
		if err != nil {
			return nil, fmt.Errorf("%s: /messages %s from %q: %w", cli.UserID, roomID, token, err)
		}
		if len(resp.Chunk) > limit {
			return nil, fmt.Errorf("%s: /messages returned %d events, limit %d", cli.UserID, len(resp.Chunk), limit)
		}
		back = append(back, resp.Chunk...)
		if len(resp.Chunk) == 0 || resp.End == "" {
			return reversed(back), nil
		}
		if resp.End == token {
			return nil, fmt.Errorf("%s: /messages end token did not advance from %q", cli.UserID, token)
		}
		token = resp.End
	}
	return nil, fmt.Errorf("%s: /messages %s did not end", cli.UserID, roomID)
}

// jsonString is json.Marshal for test messages.
func jsonString(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("<%v>", err)
	}
	return string(b)
}
