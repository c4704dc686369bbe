package dctest

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/drill"
	"github.com/planb-chat/planb/internal/testutil"
)

func urlParse(s string) (*url.URL, error) { return url.Parse(s) }

// ack is one acknowledged send.
type ack struct {
	room    id.RoomID
	tag     string
	eventID id.EventID
	at      time.Time
}

// load sends messages from many clients into many rooms and records every
// acknowledged send and every error the clients saw.
type load struct {
	mu   sync.Mutex // guards acks and errs
	acks []ack
	errs map[string]int
	wg   sync.WaitGroup
}

// world is a set of users joined to a set of rooms.
type world struct {
	users   []id.UserID
	tokens  []string
	clients []*mautrix.Client // failover clients, spread over the data centers
	rooms   []id.RoomID
}

// setup registers users (spread over data centers), creates rooms and joins
// everyone to every room.
func setup(t *testing.T, c *cluster, nUsers, nRooms int) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	w := &world{}
	names := c.names()
	for i := 0; i < nUsers; i++ {
		dc := names[i%len(names)]
		u, tok := c.register(fmt.Sprintf("user%d", i), dc)
		w.users, w.tokens = append(w.users, u), append(w.tokens, tok)
		w.clients = append(w.clients, c.client(u, tok, dc))
	}
	for r := 0; r < nRooms; r++ {
		resp, err := w.clients[r%nUsers].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("room %d", r)})
		if err != nil {
			t.Fatalf("create room %d: %v", r, err)
		}
		w.rooms = append(w.rooms, resp.RoomID)
		for i, cli := range w.clients {
			if i == r%nUsers {
				continue
			}
			if _, err := cli.JoinRoomByID(ctx, resp.RoomID); err != nil {
				t.Fatalf("user %d joins room %d: %v", i, r, err)
			}
		}
	}
	return w
}

// start runs the load until ctx ends: every client sends into every room,
// one message per interval and room, so each room has its own stream of
// writes from clients at every data center.
func (w *world) start(ctx context.Context, interval time.Duration) *load {
	l := &load{errs: map[string]int{}}
	// Tags are txnIds: they must be new for every load, or a second load
	// would only replay the first one's transactions (answered from the
	// log without writing anything).
	run := strconv.FormatInt(time.Now().UnixNano()%1e9, 36)
	for ci, cli := range w.clients {
		for ri, room := range w.rooms {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				tick := time.NewTicker(interval)
				defer tick.Stop()
				for n := 0; ctx.Err() == nil; n++ {
					tag := fmt.Sprintf("%s-c%d-r%d-m%d", run, ci, ri, n)
					sctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
					resp, err := cli.SendMessageEvent(sctx, room, event.EventMessage,
						map[string]any{"msgtype": "m.text", "body": "load " + tag, "tag": tag},
						mautrix.ReqSendEvent{TransactionID: tag})
					cancel()
					l.mu.Lock()
					if err != nil {
						l.errs[errKind(err)]++
					} else {
						l.acks = append(l.acks, ack{room: room, tag: tag, eventID: resp.EventID, at: time.Now()})
					}
					l.mu.Unlock()
					select {
					case <-ctx.Done():
					case <-tick.C:
					}
				}
			}()
		}
	}
	return l
}

func errKind(err error) string {
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		return fmt.Sprintf("%d %s", he.Response.StatusCode, he.RespError.ErrCode)
	}
	if errors.As(err, &he) && he.Response != nil {
		return fmt.Sprintf("%d", he.Response.StatusCode)
	}
	s := err.Error()
	if len(s) > 60 {
		s = s[:60]
	}
	return "transport: " + s
}

// wait stops counting: it waits for the senders to finish.
func (l *load) wait() { l.wg.Wait() }

func (l *load) snapshot() ([]ack, map[string]int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := map[string]int{}
	for k, v := range l.errs {
		errs[k] = v
	}
	return append([]ack(nil), l.acks...), errs
}

// roomTimeline reads every message of a room from one data center, oldest
// first, as (event ID, tag) pairs.
func roomTimeline(ctx context.Context, cli *mautrix.Client, room id.RoomID) ([]id.EventID, []string, error) {
	var ids []id.EventID
	var tags []string
	from := ""
	for {
		resp, err := cli.Messages(ctx, room, from, "", mautrix.DirectionBackward, nil, 1000)
		if err != nil {
			return nil, nil, err
		}
		for _, ev := range resp.Chunk {
			if ev.Type != event.EventMessage {
				continue
			}
			tag, _ := ev.Content.Raw["tag"].(string)
			ids = append(ids, ev.ID)
			tags = append(tags, tag)
		}
		if resp.End == "" || len(resp.Chunk) == 0 {
			break
		}
		from = resp.End
	}
	for i, j := 0, len(ids)-1; i < j; i, j = i+1, j-1 {
		ids[i], ids[j] = ids[j], ids[i]
		tags[i], tags[j] = tags[j], tags[i]
	}
	return ids, tags, nil
}

// verify checks the promises on the given data centers: every acknowledged
// event is there exactly once (RPO = 0, no duplicates), and each room's
// order is the same everywhere.
func verify(t *testing.T, c *cluster, w *world, acks []ack, dcs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	want := map[id.RoomID]map[id.EventID]string{}
	for _, a := range acks {
		if want[a.room] == nil {
			want[a.room] = map[id.EventID]string{}
		}
		want[a.room][a.eventID] = a.tag
	}
	for _, room := range w.rooms {
		var first []id.EventID
		for _, dc := range dcs {
			reader := c.pinned(w.users[0], w.tokens[0], dc)
			var ids []id.EventID
			var tags []string
			// The data center may still be catching up: wait until it has
			// every acknowledged event of the room.
			testutil.WaitFor(t, 2*time.Minute, fmt.Sprintf("%s has every acknowledged event of %s", dc, room), func() error {
				var err error
				ids, tags, err = roomTimeline(ctx, reader, room)
				if err != nil {
					return err
				}
				have := map[id.EventID]bool{}
				for _, e := range ids {
					have[e] = true
				}
				missing := 0
				for e := range want[room] {
					if !have[e] {
						missing++
					}
				}
				if missing > 0 {
					return fmt.Errorf("%d of %d acknowledged events missing", missing, len(want[room]))
				}
				return nil
			})
			seen := map[string]int{}
			for _, tag := range tags {
				seen[tag]++
			}
			for tag, n := range seen {
				if n > 1 {
					t.Errorf("%s: message %s stored %d times in %s (duplicate)", dc, tag, n, room)
				}
			}
			if first == nil {
				first = ids
			} else if strings.Join(idStrings(first), ",") != strings.Join(idStrings(ids), ",") {
				t.Errorf("room %s: order on %s differs from %s", room, dc, dcs[0])
			}
		}
	}
}

func idStrings(ids []id.EventID) []string {
	out := make([]string, len(ids))
	for i, e := range ids {
		out[i] = string(e)
	}
	return out
}

// gaps returns, for each room, the longest time between consecutive
// acknowledged writes within [from, to] (package drill measures it).
func gaps(acks []ack, rooms []id.RoomID, from, to time.Time) map[id.RoomID]time.Duration {
	da := make([]drill.Ack, len(acks))
	for i, a := range acks {
		da[i] = drill.Ack{Room: string(a.room), Tag: a.tag, EventID: string(a.eventID), At: a.at}
	}
	names := make([]string, len(rooms))
	for i, r := range rooms {
		names[i] = string(r)
	}
	rec := drill.Measure(da, names, func(r string) int { return partitionOf(id.RoomID(r)) }, from, to, time.Second)
	out := map[id.RoomID]time.Duration{}
	for _, g := range rec.Rooms {
		out[id.RoomID(g.Key)] = g.Longest
	}
	return out
}
