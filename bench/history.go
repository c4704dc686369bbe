package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"maunium.net/go/mautrix"
)

// HistoryReport describes the history the --dev cluster held before the
// load phases: how many messages, how it was made, and /messages from the
// middle of its biggest room.
type HistoryReport struct {
	// Messages is how many messages the fill sent into the history (every
	// room also holds its creation and membership events).
	Messages      int     `json:"messages"`
	Rooms         int     `json:"rooms"`
	BigRoomEvents int     `json:"big_room_messages"`
	FillSeconds   float64 `json:"fill_seconds"`
	FillPerSecond float64 `json:"fill_messages_per_second"`
	Reused        bool    `json:"reused"`
	Dir           string  `json:"dir"`
	ReadySeconds  float64 `json:"ready_seconds"` // the cluster's start on the history, until every /ready
	// Messages50 is GET /messages of 50 events from the middle of the big
	// room, through the client API (a page before or after a sampled
	// event, from the token /context gave for it).
	Messages50 Latency `json:"messages_middle_latency"`
	// MessagesErrors counts pages that failed or held fewer than 50 events.
	MessagesErrors int `json:"messages_errors"`
}

// historyMarker is the file in a history directory that says what it
// holds; a fill writes it every few seconds, so an interrupted fill goes
// on where it stopped.
const historyMarker = "bench-history.json"

// historyState is the content of historyMarker.
type historyState struct {
	Target   int `json:"target_messages"`
	BigRoom  int `json:"big_room_target"`
	BasePort int `json:"base_port"`
	// Users are the fill's users (tokens stay valid: sessions are
	// replicated data of the cluster).
	Users []histUser `json:"users"`
	Rooms []string   `json:"rooms"` // Rooms[0] is the big room
	// Sent counts acknowledged messages per room (a lower bound after an
	// interruption: sends in flight may have landed too).
	Sent []int `json:"sent"`
	// Middle are event IDs sampled from the middle of the big room.
	Middle      []string `json:"middle_event_ids"`
	FillSeconds float64  `json:"fill_seconds"`
	Complete    bool     `json:"complete"`
}

type histUser struct {
	ID    string `json:"user_id"`
	Token string `json:"access_token"`
	DC    int    `json:"dc"`
}

func (h *historyState) messages() int {
	n := 0
	for _, s := range h.Sent {
		n += s
	}
	return n
}

// Shape of the history: 200 rooms of 8 members among 64 users; the big
// room holds a tenth of it (at most 1,000,000 messages, the issue's
// /messages goal), 1,024 concurrent senders so that group commit writes
// large records, as it does under heavy real load.
const (
	histRooms    = 200
	histUsers    = 64
	histMembers  = 8
	histSenders  = 1024
	histBigShare = 10
	histBigMax   = 1_000_000
	histSamples  = 100
)

// readHistory returns the history state kept in dir, or nil when there is
// none (dir empty or missing). A directory that holds something else is an
// error: the bench never writes over what it did not make.
func readHistory(dir string) (*historyState, error) {
	b, err := os.ReadFile(filepath.Join(dir, historyMarker))
	if errors.Is(err, os.ErrNotExist) {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			return nil, fmt.Errorf("history dir %s is not empty and holds no %s from an earlier run; give an empty or new directory", dir, historyMarker)
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", historyMarker, err)
	}
	var h historyState
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("history dir %s: %s is not readable (%v); give an empty or new directory", dir, historyMarker, err)
	}
	return &h, nil
}

func (h *historyState) save(dir string) error {
	b, err := json.MarshalIndent(h, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", historyMarker, err)
	}
	tmp := filepath.Join(dir, historyMarker+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", historyMarker, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, historyMarker)); err != nil {
		return fmt.Errorf("write %s: %w", historyMarker, err)
	}
	return nil
}

// fillHistory sends messages through the client API of the running cluster
// until h holds its target, saving its state as it goes. It picks up an
// interrupted fill where it stopped.
func fillHistory(ctx context.Context, h *historyState, dir string, dcs []DataCenter, say func(string, ...any)) error {
	hc := &http.Client{Transport: newTransport(histSenders+8, nil)}
	defer hc.CloseIdleConnections()
	if len(h.Users) < histUsers {
		if err := historySetup(ctx, h, dcs, hc, say); err != nil {
			return err
		}
		if err := h.save(dir); err != nil {
			return err
		}
	}
	var mu sync.Mutex // guards h.Sent, h.Middle
	var sentNow atomic.Int64
	start := time.Now()
	budget := make([]atomic.Int64, len(h.Rooms))
	others := len(h.Rooms) - 1
	perRoom, extra := (h.Target-h.BigRoom)/others, (h.Target-h.BigRoom)%others
	for r := range h.Rooms {
		want := perRoom
		if r == 0 {
			want = h.BigRoom
		} else if r <= extra {
			want++
		}
		budget[r].Store(int64(want - h.Sent[r]))
	}
	// The big room gets its share of the senders; the rest go round the
	// other rooms.
	bigSenders := max(1, histSenders*h.BigRoom/max(h.Target, 1))
	sampleEvery := max(1, h.BigRoom/10/histSamples)
	midLo, midHi := h.BigRoom*45/100, h.BigRoom*55/100
	body := strings.Repeat("lorem ipsum dolor sit amet ", 8)
	g, gctx := errgroup.WithContext(ctx)
	for k := range histSenders {
		g.Go(func() error {
			r := 0
			if k >= bigSenders {
				r = 1 + k%(len(h.Rooms)-1)
			}
			for n := 0; ; n++ {
				left := budget[r].Add(-1)
				if left < 0 {
					if r == 0 { // the big room is full: help the others
						r = 1 + k%(len(h.Rooms)-1)
						continue
					}
					return nil
				}
				room := h.Rooms[r]
				u := h.Users[(r+(k%histMembers)*7)%len(h.Users)] // a member of room r
				txn := fmt.Sprintf("hist-%d-%d-%d", time.Now().UnixNano(), k, n)
				u2 := dcs[u.DC].URL + "/_matrix/client/v3/rooms/" + url.PathEscape(room) + "/send/m.room.message/" + txn
				content := fmt.Appendf(nil, `{"msgtype":"m.text","body":"%s%d"}`, body, n)
				var resp struct {
					EventID string `json:"event_id"`
				}
				// Retried with the same transaction ID: the send is
				// idempotent, so a retry after a timeout adds no event.
				var err error
				for try := 0; try < 10; try++ {
					sctx, cancel := context.WithTimeout(gctx, 60*time.Second)
					err = call(sctx, hc, http.MethodPut, u2, u.Token, content, &resp)
					cancel()
					if err == nil || gctx.Err() != nil {
						break
					}
					time.Sleep(time.Second)
				}
				if err != nil {
					return fmt.Errorf("send into history room %d: %w", r, err)
				}
				sentNow.Add(1)
				mu.Lock()
				h.Sent[r]++
				if at := h.Sent[r]; r == 0 && at >= midLo && at < midHi && at%sampleEvery == 0 && len(h.Middle) < histSamples {
					h.Middle = append(h.Middle, resp.EventID)
				}
				mu.Unlock()
			}
		})
	}
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastSave := time.Now()
	saveNow := func() error {
		mu.Lock()
		defer mu.Unlock()
		h.FillSeconds += time.Since(lastSave).Seconds()
		lastSave = time.Now()
		return h.save(dir)
	}
	for {
		select {
		case err := <-done:
			if serr := saveNow(); err == nil {
				err = serr
			}
			return err
		case <-tick.C:
			mu.Lock()
			have := h.messages()
			mu.Unlock()
			rate := float64(sentNow.Load()) / time.Since(start).Seconds()
			eta := time.Duration(float64(h.Target-have)/max(rate, 1)) * time.Second
			say("history: filling: %d of %d messages (%.0f/s, about %s left; interrupt and run again to go on)",
				have, h.Target, rate, eta.Round(time.Minute))
			if time.Since(lastSave) >= 10*time.Second {
				if err := saveNow(); err != nil {
					return err
				}
			}
		}
	}
}

// historySetup registers the fill's users and creates its rooms.
func historySetup(ctx context.Context, h *historyState, dcs []DataCenter, hc *http.Client, say func(string, ...any)) error {
	reg := newRegistrar("hist", dcs)
	defer reg.close()
	users, err := reg.registerAll(ctx, histUsers, hc, func(i int) (string, int) { return "u", i },
		func(done int64) { say("history: registered %d of %d users", done, histUsers) })
	if err != nil {
		return fmt.Errorf("register history users: %w", err)
	}
	var done atomic.Int64
	rooms := make([]string, histRooms)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for r := range rooms {
		g.Go(func() error {
			owner := users[r%histUsers]
			resp, err := owner.cli.CreateRoom(gctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: fmt.Sprintf("history room %d", r)})
			if err != nil {
				return fmt.Errorf("create history room %d: %w", r, err)
			}
			for j := 1; j < histMembers; j++ {
				if _, err := users[(r+j*7)%histUsers].cli.JoinRoomByID(gctx, resp.RoomID); err != nil {
					return fmt.Errorf("join history room %d: %w", r, err)
				}
			}
			rooms[r] = string(resp.RoomID)
			say("history: created %d of %d rooms", done.Add(1), histRooms)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create history rooms: %w", err)
	}
	h.Users = h.Users[:0]
	for _, u := range users {
		h.Users = append(h.Users, histUser{ID: string(u.id), Token: u.token, DC: u.dc})
	}
	h.Rooms, h.Sent = rooms, make([]int, len(rooms))
	return nil
}

// messagesFromTheMiddle times GET /messages of 50 events around the
// sampled middle events of the big room: for each, /context gives the
// tokens around it, then one page backwards from its start and one
// forwards from its end (only the /messages requests are timed).
func messagesFromTheMiddle(ctx context.Context, h *historyState, dcs []DataCenter) (Latency, int) {
	hc := &http.Client{Timeout: 30 * time.Second, Transport: newTransport(4, nil)}
	defer hc.CloseIdleConnections()
	reader := h.Users[0] // the big room's creator
	base := dcs[reader.DC].URL + "/_matrix/client/v3/rooms/" + url.PathEscape(h.Rooms[0])
	var lat []time.Duration
	bad := 0
	for _, ev := range h.Middle {
		var c struct {
			Start string `json:"start"`
			End   string `json:"end"`
		}
		if err := call(ctx, hc, http.MethodGet, base+"/context/"+url.PathEscape(ev)+"?limit=0", reader.Token, nil, &c); err != nil {
			bad += 2
			continue
		}
		for _, page := range []struct{ dir, from string }{{"b", c.Start}, {"f", c.End}} {
			var m struct {
				Chunk []json.RawMessage `json:"chunk"`
			}
			t0 := time.Now()
			err := call(ctx, hc, http.MethodGet, base+"/messages?limit=50&dir="+page.dir+"&from="+url.QueryEscape(page.from), reader.Token, nil, &m)
			d := time.Since(t0)
			if err != nil || len(m.Chunk) != 50 {
				bad++
				continue
			}
			lat = append(lat, d)
		}
	}
	return summarize(lat), bad
}
