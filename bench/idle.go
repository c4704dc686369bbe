package bench

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"maunium.net/go/mautrix"

	"github.com/planb-chat/planb/adminapi"
)

// IdleReport is the idle /sync long-poll measurement.
type IdleReport struct {
	DataCenter      string  `json:"datacenter"`
	Users           int     `json:"users"`
	Held            int     `json:"held"`
	RSSBeforeMiB    float64 `json:"rss_before_mib"`
	RSSHeldMiB      float64 `json:"rss_held_mib"`
	HeapBeforeMiB   float64 `json:"heap_before_mib"`
	HeapHeldMiB     float64 `json:"heap_held_mib"`
	RSSPerConnKiB   float64 `json:"rss_per_connection_kib"`
	HeapPerConnKiB  float64 `json:"heap_per_connection_kib"`
	StackPerConnKiB float64 `json:"stack_per_connection_kib"`
	// GCBefore says whether the node collected garbage and returned free
	// memory to the OS before each memory reading (through the admin API),
	// so that the figures count live memory only.
	GCBefore         bool    `json:"gc_before_measuring"`
	GoroutinesBefore int     `json:"goroutines_before"`
	GoroutinesHeld   int     `json:"goroutines_held"`
	OpenSeconds      float64 `json:"open_seconds"`
	SettleSeconds    float64 `json:"settle_seconds"`
	// ReturnedEarly counts long-polls that returned before the message was
	// sent (they did not really block).
	ReturnedEarly int `json:"returned_early"`
	// Note says what makes the figures less exact, if anything.
	Note string `json:"note,omitempty"`
	// Wake is from the start of the send until each long-poll returned
	// with the message.
	Wake   Latency `json:"wake_latency"`
	Woken  int     `json:"woken"`
	SendMS float64 `json:"send_ms"`
}

// idleFilter keeps the idle users' /sync answers small.
const idleFilter = `{"room":{"timeline":{"limit":5},"state":{"lazy_load_members":true}},"presence":{"types":[]},"account_data":{"types":[]}}`

// raiseFDLimit raises this process's soft limit of open files to at least
// need (up to the hard limit); it returns an error naming both when the hard
// limit is too low.
func raiseFDLimit(need uint64) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("read open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return nil
	}
	if lim.Max < need {
		return fmt.Errorf("open-file limit too low: need %d descriptors, the hard limit is %d (raise it: ulimit -Hn %d, or hold fewer idle syncs)", need, lim.Max, need)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("raise open-file limit to %d: %w", lim.Max, err)
	}
	return nil
}

// idleSyncs holds cfg.IdleSyncs /sync long-polls of cfg.IdleUsers users
// (all in one room) against data center dc, measures the node's memory
// before and with them held, then sends one message into the room and
// measures how long each long-poll takes to return it.
func idleSyncs(ctx context.Context, cfg Config, target Target, dcIndex int, run string, say func(string, ...any)) (*IdleReport, error) {
	dc := target.DataCenters[dcIndex]
	n := cfg.IdleSyncs
	rep := &IdleReport{DataCenter: dc.Name, Users: cfg.IdleUsers}
	mhc := &http.Client{Timeout: 10 * time.Second}
	s0, err := scrape(ctx, mhc, dc.URL)
	if err != nil {
		return nil, err
	}
	if s0.maxFDs > 0 && s0.maxFDs-s0.openFDs < float64(n+200) {
		return nil, fmt.Errorf("node %s may open only %.0f files and has %.0f open: too few for %d idle syncs (raise its ulimit -n)",
			dc.Name, s0.maxFDs, s0.openFDs, n)
	}
	u, err := url.Parse(dc.URL)
	if err != nil {
		return nil, fmt.Errorf("data center %s URL: %w", dc.Name, err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("idle syncs speak plain HTTP/1.1; %s is %s", dc.Name, u.Scheme)
	}
	hc := &http.Client{Timeout: 60 * time.Second, Transport: newTransport(16, nil)}

	// Users, one room, everyone joined, then everyone's starting position.
	reg := newRegistrar(run, []DataCenter{dc})
	users := make([]*user, cfg.IdleUsers)
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(6)
	for i := range users {
		g.Go(func() error {
			u, err := reg.register(gctx, "i", i, 0, hc)
			users[i] = u
			say("idle syncs: registered %d of %d users", done.Add(1), len(users))
			return err
		})
	}
	err = g.Wait()
	reg.close() // its connections would close at the node's idle timeout, while the long-polls are counted
	if err != nil {
		return nil, fmt.Errorf("register idle users: %w", err)
	}
	room, err := users[0].cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "bench " + run + " idle room"})
	if err != nil {
		return nil, fmt.Errorf("create idle room: %w", err)
	}
	done.Store(0)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, u := range users[1:] {
		g.Go(func() error {
			_, err := u.cli.JoinRoomByID(gctx, room.RoomID)
			say("idle syncs: %d of %d users joined the room", done.Add(1), len(users)-1)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("join idle room: %w", err)
	}
	since := make([]string, len(users))
	for i, u := range users {
		var first syncBody
		if err := call(ctx, hc, http.MethodGet, dc.URL+"/_matrix/client/v3/sync?timeout=0&filter="+url.QueryEscape(idleFilter),
			u.token, nil, &first); err != nil {
			return nil, fmt.Errorf("initial sync of %s: %w", u.id, err)
		}
		since[i] = first.NextBatch
	}

	if err := raiseFDLimit(uint64(n + 1024)); err != nil {
		return nil, err
	}
	say("idle syncs: measuring the node's memory before")
	rep.GCBefore = target.AdminToken != ""
	gc := func(what string) {
		if rep.GCBefore {
			path := ""
			if cfg.PprofDir != "" {
				path = filepath.Join(cfg.PprofDir, dc.Name+"-heap-idle-"+what+".pprof")
			}
			if err := nodeGC(ctx, dc, target.AdminToken, path); err != nil {
				rep.GCBefore = false
			}
		}
	}
	// The baseline, from a settled node: the connections of earlier phases
	// closed (goroutines unchanged) and the engine's caches of the load
	// released (the heap after garbage collection within 1 MiB of the
	// previous one), two checks in a row, up to a minute.
	var before nodeSample
	for settle := time.Now(); ; {
		gc("before")
		time.Sleep(2 * time.Second)
		s, err := scrape(ctx, mhc, dc.URL)
		if err != nil {
			return nil, err
		}
		steady := s.goroutines == before.goroutines && math.Abs(s.heapInuse-before.heapInuse) < 1<<20
		before = s
		if steady {
			break
		}
		if time.Since(settle) > time.Minute {
			rep.Note = "the node's heap did not settle within a minute before the long-polls: the memory per connection is less exact"
			break
		}
		say("idle syncs: waiting for the node to settle (goroutines %.0f, heap %.0f MiB)", s.goroutines, s.heapInuse/(1<<20))
	}
	rep.RSSBeforeMiB, rep.HeapBeforeMiB, rep.GoroutinesBefore = before.rss/(1<<20), before.heapInuse/(1<<20), int(before.goroutines)

	// Open the long-polls: raw HTTP/1.1, one goroutine and a small buffer
	// each, so that the load generator itself stays light.
	tag := "bench-" + run + "-wake"
	arrived := make([]time.Time, n)
	status := make([]atomic.Int32, n) // 0 pending, 1 has the message, 2 returned without it, 3 failed
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	var sent atomic.Bool
	var early atomic.Int64
	openStart := time.Now()
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(32)
	var opened atomic.Int64
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := range n {
		g.Go(func() error {
			ui := i % len(users)
			c, err := d.DialContext(gctx, "tcp", u.Host)
			if err != nil {
				return fmt.Errorf("open long-poll %d: %w", i, err)
			}
			conns[i] = c
			req := fmt.Sprintf("GET /_matrix/client/v3/sync?timeout=%d&since=%s&filter=%s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n",
				cfg.IdleTimeout.Milliseconds(), url.QueryEscape(since[ui]), url.QueryEscape(idleFilter), u.Host, users[ui].token)
			if _, err := io.WriteString(c, req); err != nil {
				return fmt.Errorf("send long-poll %d: %w", i, err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.ReadResponse(bufio.NewReaderSize(c, 1024), nil)
				if err != nil {
					status[i].Store(3)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				arrived[i] = time.Now()
				switch {
				case !sent.Load():
					early.Add(1)
					status[i].Store(2)
				case err == nil && resp.StatusCode == 200 && bytes.Contains(b, []byte(tag)):
					status[i].Store(1)
				default:
					status[i].Store(2)
				}
			}()
			if k := opened.Add(1); k%500 == 0 || int(k) == n {
				say("idle syncs: opened %d of %d long-polls", k, n)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	rep.OpenSeconds = time.Since(openStart).Seconds()

	// Wait until the node holds them all (one serving goroutine each, at
	// least) and its memory has settled.
	settleStart := time.Now()
	var held nodeSample
	last := -1.0
	for time.Since(settleStart) < 90*time.Second {
		time.Sleep(time.Second)
		s, err := scrape(ctx, mhc, dc.URL)
		if err != nil {
			return nil, err
		}
		say("idle syncs: node has %.0f goroutines (%d before), RSS %.0f MiB", s.goroutines, rep.GoroutinesBefore, s.rss/(1<<20))
		if s.goroutines >= before.goroutines+float64(n) && s.goroutines == last {
			held = s
			break
		}
		last = s.goroutines
	}
	if held.rss == 0 {
		return nil, fmt.Errorf("the node did not hold %d long-polls within 90 s (goroutines %.0f → %.0f)", n, before.goroutines, last)
	}
	gc("held")
	time.Sleep(2 * time.Second)
	if s, err := scrape(ctx, mhc, dc.URL); err == nil {
		held = s
	}
	rep.SettleSeconds = time.Since(settleStart).Seconds()
	rep.RSSHeldMiB, rep.HeapHeldMiB, rep.GoroutinesHeld = held.rss/(1<<20), held.heapInuse/(1<<20), int(held.goroutines)
	rep.ReturnedEarly = int(early.Load())
	rep.Held = n - rep.ReturnedEarly
	if rep.Held > 0 {
		rep.RSSPerConnKiB = (held.rss - before.rss) / 1024 / float64(rep.Held)
		rep.HeapPerConnKiB = (held.heapInuse - before.heapInuse) / 1024 / float64(rep.Held)
		rep.StackPerConnKiB = (held.stackInuse - before.stackInuse) / 1024 / float64(rep.Held)
	}

	// One message for all of them.
	say("idle syncs: waking %d long-polls", rep.Held)
	sent.Store(true)
	t0 := time.Now()
	content := fmt.Appendf(nil, `{"msgtype":"m.text","body":"wake up","org.planb.bench":%q}`, tag)
	if err := call(ctx, hc, http.MethodPut, dc.URL+"/_matrix/client/v3/rooms/"+url.PathEscape(string(room.RoomID))+"/send/m.room.message/"+tag,
		users[0].token, content, nil); err != nil {
		return nil, fmt.Errorf("send the wake-up message: %w", err)
	}
	rep.SendMS = float64(time.Since(t0).Microseconds()) / 1000
	waitDone := make(chan struct{})
	go func() { wg.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(60 * time.Second):
	case <-ctx.Done():
	}
	var lat []time.Duration
	for i := range n {
		if status[i].Load() == 1 {
			lat = append(lat, arrived[i].Sub(t0))
		}
	}
	rep.Woken = len(lat)
	rep.Wake = summarize(lat)
	return rep, nil
}

// nodeGC makes the node collect garbage and return free memory to the OS
// (POST /_planb/admin/v1/bench/gc) and, when path is set, saves its heap
// profile there.
func nodeGC(ctx context.Context, dc DataCenter, token, path string) error {
	hc := &http.Client{Timeout: time.Minute}
	if err := adminapi.New(token, dc.URL).WithTimeout(time.Minute).At(ctx, dc.URL, http.MethodPost, "/bench/gc", struct{}{}, nil); err != nil {
		return fmt.Errorf("gc %s: %w", dc.Name, err)
	}
	if path == "" {
		return nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, dc.URL+adminapi.Path+"/bench/pprof/heap", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("heap profile %s: %w", dc.Name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		return fmt.Errorf("heap profile %s: HTTP %d %v", dc.Name, resp.StatusCode, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
