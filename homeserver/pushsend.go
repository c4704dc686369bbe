package homeserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/pushgateway"
)

// Push delivery. The pushes of a room's events are sent by the node that
// leads the room's partition stream, so that every node sends some (no node
// is special) and each event is pushed by one node at a time. That node
// follows the partition from a durable cursor in the replicated
// push_cursors bucket (the last sequence whose pushes were all attempted),
// waits until its read model has applied each record, evaluates the push
// rules of the room's members who have pushers, and posts a notification
// per pusher to its gateway. The cursor advances, by compare-and-set, at
// most every pushCursorEvery to the highest sequence below which every
// first attempt has finished. When the leader changes (a data center is
// lost), the new leader resumes from the cursor: nothing committed is
// skipped, and the events between the cursor and what the old leader had
// finished are pushed again (a bounded number of duplicates; every
// notification carries the event ID so that gateways and clients can drop
// them).
//
// A gateway that fails is retried with backoff (pushBackoff, up to
// pushRetries times) from memory; a gateway that keeps failing is marked
// down for a while, and pushes to it wait for their retry without holding
// the window of first attempts, so a hung or slow gateway delays neither
// sends nor other users' pushes. Retries live only in the memory of the
// node that made the first attempt: if that node dies too, they are lost.

const (
	pushLeaderCheck    = 500 * time.Millisecond
	pushCursorEvery    = 250 * time.Millisecond
	pushAttemptTimeout = 10 * time.Second
	pushRetries        = 6 // after the first attempt: 1, 2, 4, 8, 16 and 32 s later
	pushBackoff        = time.Second
	pushHostInflight   = 128   // concurrent requests per gateway host (one gateway serves many apps' users)
	pushInflight       = 1024  // first attempts in flight per partition
	pushMaxRetrying    = 10000 // pushes waiting for a retry on this node
	// pushHostDownAfter consecutive failures mark a gateway down for the
	// backoff of its last failure.
	pushHostDownAfter = 3
)

// pushCursor is a partition's push position.
type pushCursor struct {
	Seq  uint64 `json:"seq"`
	Node string `json:"node"`
	TS   int64  `json:"ts"`
}

// pushDelivery sends push notifications from this node.
type pushDelivery struct {
	s      *Service
	client *pushgateway.Client
	idx    pusherIndex

	mu       sync.Mutex
	hosts    map[string]*gatewayHost
	retrying atomic.Int64
}

// gatewayHost limits and tracks the requests to one gateway host.
type gatewayHost struct {
	sem       chan struct{}
	mu        sync.Mutex
	failures  int
	downUntil time.Time
}

func newPushDelivery(s *Service) *pushDelivery {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = pushHostInflight // keep a connection per request in flight to a gateway
	tr.Proxy = nil                            // pushes go where the pusher says
	client := &pushgateway.Client{HTTP: &http.Client{Timeout: pushAttemptTimeout, Transport: tr,
		// A gateway's redirect is not followed: the pusher names the URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	return &pushDelivery{s: s, client: client, hosts: map[string]*gatewayHost{},
		idx: pusherIndex{by: map[string]map[string]indexedPusher{}, moved: make(chan struct{})}}
}

// pusherIndex is every user's pushers, followed from the pushers bucket
// (derived: rebuilt from the bucket at every start).
type pusherIndex struct {
	mu  sync.RWMutex
	by  map[string]map[string]indexedPusher // user → bucket key → pusher
	pos uint64                              // the bucket stream's sequence applied
	// moved is closed and replaced whenever pos moves.
	moved chan struct{}
}

// applied records that the index has applied the bucket up to seq.
func (x *pusherIndex) applied(seq uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.pos = max(x.pos, seq)
	close(x.moved)
	x.moved = make(chan struct{})
}

// waitFor blocks until the index has applied seq, or ctx ends.
func (x *pusherIndex) waitFor(ctx context.Context, seq uint64) error {
	for {
		x.mu.RLock()
		pos, moved := x.pos, x.moved
		x.mu.RUnlock()
		if pos >= seq {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("wait for the pushers index: %w", ctx.Err())
		}
	}
}

// indexedPusher is a pusher and, for an http pusher with a good URL, what
// sending to it needs (read once, when followed).
type indexedPusher struct {
	pusher
	prep *pushgateway.Prepared
}

func (x *pusherIndex) has(user string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.by[user]) > 0
}

func (x *pusherIndex) of(user string) []indexedPusher {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]indexedPusher, 0, len(x.by[user]))
	for _, p := range x.by[user] {
		out = append(out, p)
	}
	return out
}

func (x *pusherIndex) set(user, key string, p *pusher) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p == nil {
		delete(x.by[user], key)
		if len(x.by[user]) == 0 {
			delete(x.by, user)
		}
		return
	}
	if x.by[user] == nil {
		x.by[user] = map[string]indexedPusher{}
	}
	ip := indexedPusher{pusher: *p}
	if p.Kind == pusherKindHTTP {
		// A bad URL was refused when set; a record that has one anyway
		// is kept (it is listed) but never sent to.
		ip.prep, _ = pushgateway.Pusher{AppID: p.AppID, PushKey: p.PushKey, SetAt: time.UnixMilli(p.CreatedTS), Data: p.Data}.Prepare()
	}
	x.by[user][key] = ip
}

// followPushers keeps the index up to date with the pushers bucket.
func (d *pushDelivery) followPushers(ctx context.Context) error {
	b := jetstream.BucketPushers
	return d.s.engine.Follow(ctx, jetstream.BucketStream(b), 1, func(m jetstream.RawMsg) error {
		defer d.idx.applied(m.Seq)
		key := jetstream.BucketKey(b, m.Subject)
		parts := strings.Split(key, ".")
		if len(parts) != 3 {
			return nil
		}
		user := jetstream.DecodeKeyPart(parts[0])
		if isDeletion(m) {
			d.idx.set(user, key, nil)
			return nil
		}
		var p pusher
		if err := json.Unmarshal(m.Data, &p); err != nil {
			d.s.log.Error("undecodable pusher skipped", "seq", m.Seq, "err", err)
			return nil
		}
		d.idx.set(user, key, &p)
		return nil
	})
}

// run sends the pushes of the partitions this node leads until ctx ends.
func (d *pushDelivery) run(ctx context.Context) error {
	go func() {
		if err := d.followPushers(ctx); err != nil && ctx.Err() == nil {
			d.s.log.Error("following pushers stopped", "err", err)
		}
	}()
	type worker struct {
		cancel context.CancelFunc
		done   chan struct{}
	}
	workers := map[int]*worker{}
	defer func() {
		for _, w := range workers {
			w.cancel()
			<-w.done
		}
	}()
	tick := time.NewTicker(pushLeaderCheck)
	defer tick.Stop()
	for {
		for p := 0; p < d.s.engine.Partitions(); p++ {
			w := workers[p]
			if w != nil {
				select {
				case <-w.done:
					delete(workers, p) // stopped (an error, or another node took over): check again
					w = nil
				default:
				}
			}
			// A standalone node leads everything. With an external engine
			// leadership cannot be told and every node sends: the cursor's
			// compare-and-set keeps one at a time, with duplicates at the
			// hand-overs.
			// A node cut off from the quorum may still believe it leads
			// (until the engine notices the lost quorum), but it can save no
			// cursor and hears no new event: the majority's leader sends.
			leader, known := d.s.engine.IsStreamLeader(jetstream.EventStream(p))
			leader = (leader || !known) && !d.s.isCutOff()
			switch {
			case leader && w == nil && d.s.caught.Load():
				wctx, cancel := context.WithCancel(ctx)
				w = &worker{cancel: cancel, done: make(chan struct{})}
				workers[p] = w
				go func() {
					defer close(w.done)
					if err := d.partition(wctx, ctx, p); err != nil && wctx.Err() == nil {
						d.s.log.Warn("push delivery of a partition stopped; retrying", "partition", p, "err", err)
					}
				}()
			case !leader && w != nil:
				w.cancel()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// cursorKey is partition p's key in the push_cursors bucket.
func cursorKey(p int) string { return "p" + strconv.Itoa(p) }

// loadCursor reads partition p's cursor, creating it at the stream's start
// when there is none (a pusher is sent only events newer than itself, see
// jobs, so an old log does not push its history).
func (d *pushDelivery) loadCursor(ctx context.Context, p int) (pushCursor, uint64, error) {
	for {
		e, err := d.s.engine.GetLeader(ctx, jetstream.BucketPushCursors, cursorKey(p))
		if err == nil {
			var c pushCursor
			if err := json.Unmarshal(e.Value, &c); err != nil {
				return pushCursor{}, 0, fmt.Errorf("decode push cursor of partition %d: %w", p, err)
			}
			return c, e.Revision, nil
		}
		if !errors.Is(err, planb.ErrNotFound) {
			return pushCursor{}, 0, err
		}
		b, _ := json.Marshal(pushCursor{Node: d.s.engine.NodeName(), TS: time.Now().UnixMilli()})
		rev, err := d.s.engine.Create(ctx, jetstream.BucketPushCursors, cursorKey(p), b)
		if errors.Is(err, planb.ErrExists) {
			continue
		}
		return pushCursor{}, rev, err
	}
}

// partition sends the pushes of partition p from its cursor until ctx
// ends or another node moves the cursor. Retries outlive ctx: they run
// under life, the delivery's own context.
func (d *pushDelivery) partition(ctx, life context.Context, p int) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cur, rev, err := d.loadCursor(ctx, p)
	if err != nil {
		return err
	}
	// Every pusher set before now is known before any event is looked at:
	// a node that just started must not miss the pushers of early events.
	last, err := d.s.engine.StreamLastSeq(ctx, jetstream.BucketStream(jetstream.BucketPushers))
	if err != nil {
		return fmt.Errorf("pushers bucket: %w", err)
	}
	if err := d.idx.waitFor(ctx, last); err != nil {
		return err
	}
	d.s.log.Info("sending the pushes of a partition", "partition", p, "from_seq", cur.Seq+1)
	w := newPushWindow(cur.Seq)
	cs := &cursorSaver{d: d, p: p, rev: rev, stored: cur.Seq, w: w}
	var wg sync.WaitGroup
	saverDone := make(chan struct{})
	go func() {
		defer close(saverDone)
		tick := time.NewTicker(pushCursorEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if !cs.save(ctx) {
					cancel() // another node moved the cursor: it sends these pushes now
					return
				}
			}
		}
	}()
	err = d.s.engine.Follow(ctx, jetstream.EventStream(p), cur.Seq+1, func(m jetstream.RawMsg) error {
		if err := d.s.model.WaitPartition(ctx, p, m.Seq); err != nil {
			return err
		}
		var rec planb.Record
		if err := json.Unmarshal(m.Data, &rec); err != nil {
			w.start(m.Seq, 0)
			return nil // undecodable: the read model skipped it too
		}
		var jobs []pushJob
		for _, ev := range rec.Events {
			n, ok, err := d.s.model.PushNotice(ev.RoomID, ev.EventID, d.idx.has)
			if err != nil {
				return err
			}
			if ok {
				jobs = append(jobs, d.jobs(n)...)
			}
		}
		w.start(m.Seq, len(jobs))
		for _, j := range jobs {
			if err := w.acquire(ctx); err != nil {
				return err
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if d.deliver(ctx, life, j, 0) {
					w.finish(m.Seq)
				}
				w.release()
			}()
		}
		return nil
	})
	cancel()
	<-saverDone
	wg.Wait() // first attempts end, or give up at ctx's end, before the last save
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	cs.save(fctx)
	fcancel()
	return err
}

// cursorSaver moves a partition's push cursor forward by compare-and-set.
type cursorSaver struct {
	d      *pushDelivery
	p      int
	rev    uint64
	stored uint64
	w      *pushWindow
}

// save stores the window's completed sequence if it moved; false when
// another node moved the cursor since this one read it.
func (c *cursorSaver) save(ctx context.Context) bool {
	done := c.w.completed()
	if done <= c.stored {
		return true
	}
	b, _ := json.Marshal(pushCursor{Seq: done, Node: c.d.s.engine.NodeName(), TS: time.Now().UnixMilli()})
	r, err := c.d.s.engine.Update(ctx, jetstream.BucketPushCursors, cursorKey(c.p), b, c.rev)
	switch {
	case errors.Is(err, planb.ErrConflict):
		c.d.s.log.Info("another node sends this partition's pushes now", "partition", c.p)
		return false
	case err != nil:
		c.d.s.log.Warn("push cursor not saved; trying again", "partition", c.p, "err", err)
		return true
	}
	c.rev, c.stored = r, done
	return true
}

// pushJob is one notification for one pusher.
type pushJob struct {
	user   string
	pusher indexedPusher
	n      pushgateway.Notification
	sentAt time.Time // the event's origin_server_ts
}

// jobs returns a notice's notifications, one per pusher of each target,
// leaving out pushers set after the event.
func (d *pushDelivery) jobs(n projection.PushNotice) []pushJob {
	var out []pushJob
	sent := time.UnixMilli(n.Event.OriginServerTS)
	for _, t := range n.Targets {
		tweaks := map[string]any{}
		if t.Result.Sound != "" {
			tweaks["sound"] = t.Result.Sound
		}
		if t.Result.Highlight {
			tweaks["highlight"] = true
		}
		prio := "low"
		if n.Event.Type == "m.room.encrypted" || t.Result.Highlight || t.Result.Sound != "" {
			prio = "high"
		}
		for _, p := range d.idx.of(t.UserID) {
			if p.prep == nil || p.CreatedTS > n.Event.OriginServerTS {
				continue
			}
			note := pushgateway.Notification{EventID: n.Event.EventID, RoomID: n.Event.RoomID, Type: n.Event.Type,
				Sender: n.Event.Sender, SenderDisplayName: n.SenderName, RoomName: n.RoomName, UserIsTarget: t.IsTarget,
				Prio: prio, Content: n.Event.Content, Counts: pushgateway.Counts{Unread: t.Unread},
				Devices: []pushgateway.Device{p.prep.Device(tweaks)}}
			out = append(out, pushJob{user: t.UserID, pusher: p, sentAt: sent, n: pushgateway.Shape(note, p.prep.Format)})
		}
	}
	return out
}

// host returns the tracker of a gateway host.
func (d *pushDelivery) host(name string) *gatewayHost {
	d.mu.Lock()
	defer d.mu.Unlock()
	h := d.hosts[name]
	if h == nil {
		h = &gatewayHost{sem: make(chan struct{}, pushHostInflight)}
		d.hosts[name] = h
	}
	return h
}

func (h *gatewayHost) down(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return now.Before(h.downUntil)
}

func (h *gatewayHost) result(ok bool, backoff time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ok {
		h.failures, h.downUntil = 0, time.Time{}
		return
	}
	h.failures++
	if h.failures >= pushHostDownAfter {
		h.downUntil = time.Now().Add(backoff)
	}
}

// deliver makes attempt number attempt of job (0 the first) and reports
// whether the attempt finished: false when ctx ended first, so that the
// push stays for whichever node sends the partition's pushes next. A
// failure worth retrying schedules the next attempt under life.
func (d *pushDelivery) deliver(ctx, life context.Context, j pushJob, attempt int) bool {
	h := d.host(j.pusher.prep.Host)
	backoff := pushBackoff << attempt
	if h.down(time.Now()) {
		d.retry(life, j, attempt, "gateway down")
		return true
	}
	select {
	case h.sem <- struct{}{}:
	case <-ctx.Done():
		return false
	}
	actx, cancel := context.WithTimeout(ctx, pushAttemptTimeout)
	rejected, err := d.client.Notify(actx, j.pusher.prep.Gateway, j.n)
	cancel()
	<-h.sem
	if ctx.Err() != nil && err != nil {
		return false
	}
	log := d.s.log.With("user", j.user, "app_id", j.pusher.AppID, "gateway_host", j.pusher.prep.Host, "event_id", j.n.EventID)
	switch {
	case err == nil:
		h.result(true, 0)
		d.s.m.pushes.WithLabelValues("ok").Inc()
		d.s.m.pushLatency.Observe(time.Since(j.sentAt).Seconds())
		for _, key := range rejected {
			log.Info("the push gateway rejected a pushkey; removing its pusher")
			d.s.m.pushes.WithLabelValues("rejected").Inc()
			dctx, dcancel := context.WithTimeout(life, 10*time.Second)
			if err := d.s.engine.Delete(dctx, jetstream.BucketPushers, pusherKey(j.user, j.pusher.AppID, key)); err != nil {
				log.Warn("rejected pusher not removed", "err", err)
			}
			dcancel()
		}
	case errors.Is(err, pushgateway.ErrPermanent):
		d.s.m.pushes.WithLabelValues("refused").Inc()
		log.Warn("the push gateway refused a notification", "err", err)
	default:
		h.result(false, backoff)
		d.retry(life, j, attempt, err.Error())
	}
	return true
}

// retry schedules attempt+1 of job after its backoff, unless it has had
// its retries or too many pushes are waiting on this node.
func (d *pushDelivery) retry(life context.Context, j pushJob, attempt int, why string) {
	log := d.s.log.With("user", j.user, "app_id", j.pusher.AppID, "gateway_host", j.pusher.prep.Host, "event_id", j.n.EventID)
	if attempt >= pushRetries {
		d.s.m.pushes.WithLabelValues("failed").Inc()
		log.Warn("push given up after its retries", "attempts", attempt+1, "last_error", why)
		return
	}
	if d.retrying.Add(1) > pushMaxRetrying {
		d.retrying.Add(-1)
		d.s.m.pushes.WithLabelValues("dropped").Inc()
		log.Warn("push dropped: too many pushes wait for a retry on this node", "last_error", why)
		return
	}
	d.s.m.pushes.WithLabelValues("retry").Inc()
	log.Debug("push failed; retrying", "attempt", attempt+1, "err", why)
	go func() {
		defer d.retrying.Add(-1)
		select {
		case <-life.Done():
			return
		case <-time.After(pushBackoff << attempt):
		}
		d.deliver(life, life, j, attempt+1)
	}()
}

// pushWindow tracks which sequences of a partition have had every first
// attempt finish, and bounds the first attempts in flight.
type pushWindow struct {
	slots chan struct{}
	mu    sync.Mutex
	seen  uint64         // the highest sequence started
	open  []uint64       // started sequences with attempts in flight, ascending
	left  map[uint64]int // attempts in flight per open sequence
}

func newPushWindow(from uint64) *pushWindow {
	return &pushWindow{slots: make(chan struct{}, pushInflight), seen: from, left: map[uint64]int{}}
}

func (w *pushWindow) acquire(ctx context.Context) error {
	select {
	case w.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *pushWindow) release() { <-w.slots }

// start records sequence seq with n first attempts to make.
func (w *pushWindow) start(seq uint64, n int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seen = max(w.seen, seq)
	if n > 0 {
		w.open = append(w.open, seq)
		w.left[seq] += n
	}
}

func (w *pushWindow) finish(seq uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.left[seq]--
}

// completed returns the highest sequence up to which every first attempt
// has finished.
func (w *pushWindow) completed() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(w.open) > 0 && w.left[w.open[0]] <= 0 {
		delete(w.left, w.open[0])
		w.open = w.open[1:]
	}
	if len(w.open) > 0 {
		return w.open[0] - 1
	}
	return w.seen
}
