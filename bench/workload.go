package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// workload is the bench's users and rooms: Users senders spread over the
// data centers, Rooms rooms with Members sending members each, and
// Receivers extra users who are in every room and follow /sync. It only
// touches the users and rooms it created.
type workload struct {
	cfg       Config
	dcs       []DataCenter
	run       string
	hc        *http.Client // every load request; keeps one connection per sender and receiver
	users     []*user
	receivers []*user
	rooms     []id.RoomID
	members   [][]int // room → indices into users

	mu      sync.Mutex // guards sends
	sends   map[string]*sendRec
	limited atomic.Int64
}

// sendRec is one send and what became of it.
type sendRec struct {
	phase   *phaseRun
	start   time.Time
	acked   bool
	arrived []time.Duration // one per receiver that saw it, from start
	pushes  []time.Duration // one per notification the bench's push gateway got, from start
}

func newWorkload(cfg Config, dcs []DataCenter, run string) *workload {
	conns := cfg.Senders + cfg.Receivers + 8
	return &workload{cfg: cfg, dcs: dcs, run: run, sends: map[string]*sendRec{},
		hc: &http.Client{Transport: newTransport(conns, nil)}}
}

// setup registers the users and creates the rooms through the Matrix API.
func (w *workload) setup(ctx context.Context, say func(string, ...any)) error {
	reg := newRegistrar(w.run, w.dcs)
	defer reg.close()
	total := w.cfg.Users + w.cfg.Receivers
	all, err := reg.registerAll(ctx, total, w.hc, func(i int) (string, int) {
		if i >= w.cfg.Users {
			return "r", i - w.cfg.Users
		}
		return "u", i
	}, func(done int64) { say("set-up: registered %d of %d users", done, total) })
	if err != nil {
		return fmt.Errorf("register users: %w", err)
	}
	w.users, w.receivers = all[:w.cfg.Users], all[w.cfg.Users:]

	w.rooms = make([]id.RoomID, w.cfg.Rooms)
	w.members = make([][]int, w.cfg.Rooms)
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for r := range w.cfg.Rooms {
		for j := range w.cfg.Members {
			w.members[r] = append(w.members[r], (r*w.cfg.Members+j)%w.cfg.Users)
		}
		g.Go(func() error {
			owner := w.users[w.members[r][0]]
			resp, err := owner.cli.CreateRoom(gctx, &mautrix.ReqCreateRoom{Preset: "public_chat",
				Name: fmt.Sprintf("bench %s room %d", w.run, r)})
			if err != nil {
				return fmt.Errorf("create room %d: %w", r, err)
			}
			w.rooms[r] = resp.RoomID
			joiners := w.receivers
			for _, m := range w.members[r][1:] {
				joiners = append(joiners, w.users[m])
			}
			for _, u := range joiners {
				if _, err := u.cli.JoinRoomByID(gctx, resp.RoomID); err != nil {
					return fmt.Errorf("%s joins room %d: %w", u.id, r, err)
				}
			}
			say("set-up: created %d of %d rooms", done.Add(1), w.cfg.Rooms)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("create rooms: %w", err)
	}
	return nil
}

// phaseRun is one load phase in progress.
type phaseRun struct {
	name  string
	start time.Time
	end   time.Time

	mu      sync.Mutex // guards the fields below
	acked   int
	sendLat []time.Duration
	errs    map[string]int
}

func (p *phaseRun) ackedNow() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

// sendLoop runs the senders until the phase's deadline. With rate > 0 they
// take their turns from a pacer that offers rate sends per second in
// total; otherwise each sends again as soon as its last send was
// acknowledged.
func (w *workload) sendLoop(ctx context.Context, p *phaseRun, rate float64) {
	ctx, cancel := context.WithDeadline(ctx, p.end)
	defer cancel()
	var turns chan struct{}
	if rate > 0 {
		turns = make(chan struct{}, w.cfg.Senders)
		go func() {
			interval := time.Duration(float64(time.Second) / rate)
			next := time.Now()
			for ctx.Err() == nil {
				next = next.Add(interval)
				if d := time.Until(next); d > 0 {
					time.Sleep(d)
				}
				select {
				case turns <- struct{}{}:
				case <-ctx.Done():
				}
			}
		}()
	}
	body := strings.Repeat("x", w.cfg.MessageSize)
	var seq atomic.Int64
	var wg sync.WaitGroup
	for k := range w.cfg.Senders {
		r := k % len(w.rooms)
		u := w.users[w.members[r][(k/len(w.rooms))%len(w.members[r])]]
		base := w.dcs[u.dc].URL + "/_matrix/client/v3/rooms/" + url.PathEscape(string(w.rooms[r])) + "/send/m.room.message/"
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if turns != nil {
					select {
					case <-turns:
					case <-ctx.Done():
						return
					}
				}
				tag := fmt.Sprintf("%s-%s-%d", w.run, p.name[:1], seq.Add(1))
				content := fmt.Appendf(nil, `{"msgtype":"m.text","body":%q,"org.planb.bench":%q}`, body, tag)
				rec := &sendRec{phase: p, start: time.Now()}
				w.mu.Lock()
				w.sends[tag] = rec
				w.mu.Unlock()
				// A send that outlives the phase still counts: cut it
				// off only at the overall context.
				sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
				err := call(sctx, w.hc, http.MethodPut, base+url.PathEscape(tag), u.token, content, nil)
				scancel()
				now := time.Now()
				p.mu.Lock()
				if err != nil {
					p.errs[errKind(err)]++
				} else {
					p.acked++
					p.sendLat = append(p.sendLat, now.Sub(rec.start))
				}
				p.mu.Unlock()
				if err == nil {
					w.mu.Lock()
					rec.acked = true
					w.mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
}

// syncBody is the part of a /sync answer the receivers read.
type syncBody struct {
	NextBatch string `json:"next_batch"`
	Rooms     struct {
		Join map[string]struct {
			Timeline struct {
				Limited bool `json:"limited"`
				Events  []struct {
					Content struct {
						Tag string `json:"org.planb.bench"`
					} `json:"content"`
				} `json:"events"`
			} `json:"timeline"`
		} `json:"join"`
	} `json:"rooms"`
}

// receiverFilter keeps the receivers' /sync answers to new timeline events.
const receiverFilter = `{"room":{"timeline":{"limit":1000},"state":{"lazy_load_members":true}},"presence":{"types":[]},"account_data":{"types":[]}}`

// startReceivers makes every receiver follow /sync at its data center from
// now on, recording when each bench message arrives, until ctx ends. It
// returns once every receiver has its starting position.
func (w *workload) startReceivers(ctx context.Context, wg *sync.WaitGroup) error {
	for _, u := range w.receivers {
		base := w.dcs[u.dc].URL + "/_matrix/client/v3/sync?filter=" + url.QueryEscape(receiverFilter)
		var first syncBody
		if err := call(ctx, w.hc, http.MethodGet, base+"&timeout=0", u.token, nil, &first); err != nil {
			return fmt.Errorf("initial sync of receiver %s: %w", u.id, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			since := first.NextBatch
			for ctx.Err() == nil {
				var resp syncBody
				err := call(ctx, w.hc, http.MethodGet, base+"&timeout=30000&since="+url.QueryEscape(since), u.token, nil, &resp)
				now := time.Now()
				if err != nil {
					if ctx.Err() == nil {
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				since = resp.NextBatch
				w.mu.Lock()
				for _, jr := range resp.Rooms.Join {
					if jr.Timeline.Limited {
						w.limited.Add(1)
					}
					for _, ev := range jr.Timeline.Events {
						if rec := w.sends[ev.Content.Tag]; rec != nil {
							rec.arrived = append(rec.arrived, now.Sub(rec.start))
						}
					}
				}
				w.mu.Unlock()
			}
		}()
	}
	return nil
}

// delivered counts the acknowledged sends of p and those every receiver
// has seen (and, with pushers, been pushed).
func (w *workload) delivered(p *phaseRun) (acked, complete int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, rec := range w.sends {
		if rec.phase == p && rec.acked {
			acked++
			if len(rec.arrived) >= len(w.receivers) && (!w.cfg.Pushers || len(rec.pushes) >= len(w.receivers)) {
				complete++
			}
		}
	}
	return acked, complete
}

// result summarises phase p.
func (w *workload) result(p *phaseRun) *Phase {
	p.mu.Lock()
	out := &Phase{Name: p.name, Seconds: p.end.Sub(p.start).Seconds(), Acked: p.acked,
		SendLatency: summarize(p.sendLat), Errors: map[string]int{}}
	for k, v := range p.errs {
		out.Errors[k] = v
	}
	p.mu.Unlock()
	out.SendsPerSec = float64(out.Acked) / out.Seconds
	var deliv, pushes []time.Duration
	w.mu.Lock()
	for _, rec := range w.sends {
		if rec.phase != p {
			continue
		}
		deliv = append(deliv, rec.arrived...)
		pushes = append(pushes, rec.pushes...)
		if rec.acked {
			out.Undelivered += max(0, len(w.receivers)-len(rec.arrived))
			if w.cfg.Pushers {
				out.Unpushed += max(0, len(w.receivers)-len(rec.pushes))
				out.DuplicatePushes += max(0, len(rec.pushes)-len(w.receivers))
			}
		}
	}
	w.mu.Unlock()
	out.Delivery = summarize(deliv)
	if w.cfg.Pushers {
		pl := summarize(pushes)
		out.Push = &pl
	}
	return out
}
