// Package homeserver is planb's Matrix logic: accounts, rooms, sync, media
// and the rest of the client-server API, on the jetstream engine and the
// projection read models. The HTTP edge (package httpapi) only decodes
// requests and encodes responses.
package homeserver

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	json "github.com/segmentio/encoding/json"
	"golang.org/x/sync/errgroup"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// Service is one homeserver node.
type Service struct {
	cfg    Config
	log    *slog.Logger
	engine *jetstream.Engine
	model  *projection.Model
	caught atomic.Bool // read models caught up with the log at start
	// catchUpTarget is the log's end at start, once known.
	catchUpTarget atomic.Pointer[projection.Token]
	w             writers // per-room write queues (group commit)
	h             health
	fwd           forwarder // sends forwarded to partition leaders
	// sessions remembers looked-up access tokens (see sessions.go).
	sessions *sessionCache
	m        *serviceMetrics
	// draining is set through SetDraining: the node reports not-ready.
	draining atomic.Bool
	tdAcks   toDeviceAcks
	push     *pushDelivery
}

// New returns a service over a started engine and the read model opened
// for it (projection.Open, with engine.Partitions() and engine.Partition),
// registering its metrics on reg (which may be nil). cfg starts from
// DefaultConfig. Call Run to follow the log.
func New(cfg Config, engine *jetstream.Engine, model *projection.Model, log *slog.Logger, reg prometheus.Registerer) *Service {
	s := &Service{cfg: cfg, log: log, engine: engine,
		model:    model,
		w:        writers{queues: map[string]*roomQueue{}},
		sessions: newSessionCache(),
		m:        newServiceMetrics(reg)}
	s.push = newPushDelivery(s)
	return s
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Model returns the read model (for metrics and benchmarks).
func (s *Service) Model() *projection.Model { return s.model }

type typingMsg struct {
	RoomID  string `json:"room_id"`
	UserID  string `json:"user_id"`
	Typing  bool   `json:"typing"`
	UntilMS int64  `json:"until_ms"`
}

// Run follows the log and buckets into the read models until ctx ends. It
// first replays everything (a rebuild), then follows live.
func (s *Service) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for p := 0; p < s.engine.Partitions(); p++ {
		g.Go(func() error { return s.followPartition(ctx, p) })
	}
	g.Go(func() error { return s.followReceipts(ctx) })
	g.Go(func() error { return s.followAccountData(ctx) })
	g.Go(func() error { return s.followToDevice(ctx) })
	g.Go(func() error { return s.followDeviceKeys(ctx) })
	g.Go(func() error { return s.followOneTimeKeys(ctx) })
	g.Go(func() error { return s.followFallbackKeys(ctx) })
	g.Go(func() error { return s.followAccounts(ctx) })
	g.Go(func() error { return s.followDirectory(ctx) })
	g.Go(func() error { return s.followPresence(ctx) })
	g.Go(func() error { return s.runPresence(ctx) })
	g.Go(func() error { return s.push.run(ctx) })
	sub, err := s.engine.Subscribe(jetstream.TypingSubject, func(data []byte) {
		var t typingMsg
		if json.Unmarshal(data, &t) == nil {
			s.model.SetTyping(t.RoomID, t.UserID, t.Typing, time.UnixMilli(t.UntilMS))
		}
	})
	if err != nil {
		return err
	}
	g.Go(func() error {
		defer sub.Stop()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case now := <-tick.C:
				s.model.ExpireTyping(now)
			}
		}
	})
	g.Go(func() error { return s.catchUp(ctx) })
	g.Go(func() error { return s.monitor(ctx) })
	g.Go(func() error { return s.runForwarding(ctx) })
	g.Go(func() error { return s.followTokens(ctx) })
	err = g.Wait()
	s.w.wg.Wait() // committers end within the write timeout
	return err
}

// catchUp marks the node caught up once the read models reach the log's end
// as it was at start, logging progress on the way.
func (s *Service) catchUp(ctx context.Context) error {
	start := time.Now()
	from := s.model.Position()
	var target projection.Token
	for {
		t, err := s.logEnd(ctx)
		if err == nil {
			target = t
			break
		}
		s.log.Warn("reading log end", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	s.catchUpTarget.Store(&target)
	s.log.Info("catching up with the log", "records", records(target)-records(from), "stored_in_read_models", records(from))
	for {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.model.WaitFor(wctx, target)
		cancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		done, total := s.catchUpProgress()
		s.log.Info("catching up with the log", "records_applied", done, "of", total,
			"per_second", int(float64(done-min(done, records(from)))/time.Since(start).Seconds()))
	}
	st := s.model.Stats()
	s.log.Info("read models caught up with the log", "records", records(target)-records(from), "events", st.Events,
		"rooms", st.Rooms, "users", st.Users, "took", time.Since(start).Round(time.Millisecond))
	s.caught.Store(true)
	return nil
}

// records is the number of log records up to t.
func records(t projection.Token) uint64 {
	n := t.Receipts + t.AccountData + t.DeviceKeys + t.OneTimeKeys + t.FallbackKeys + t.Accounts + t.Directory + t.Presence
	for _, p := range t.Parts {
		n += p
	}
	return n
}

// catchUpProgress returns how many records of the log as it was at start
// the read models hold, and how many there are (0, 0 before it is known).
func (s *Service) catchUpProgress() (done, total uint64) {
	t := s.catchUpTarget.Load()
	if t == nil {
		return 0, 0
	}
	return min(records(s.model.Position()), records(*t)), records(*t)
}

// logEnd returns the last sequence of every followed stream.
func (s *Service) logEnd(ctx context.Context) (projection.Token, error) {
	t := projection.Token{Parts: make([]uint64, s.engine.Partitions())}
	for p := range t.Parts {
		seq, err := s.engine.StreamLastSeq(ctx, jetstream.EventStream(p))
		if err != nil {
			return t, err
		}
		t.Parts[p] = seq
	}
	var err error
	if t.Receipts, err = s.engine.StreamLastSeq(ctx, jetstream.BucketStream(jetstream.BucketReceipts)); err != nil {
		return t, err
	}
	for _, f := range []struct {
		stream string
		at     *uint64
	}{
		{jetstream.BucketStream(jetstream.BucketAccountData), &t.AccountData},
		{jetstream.BucketStream(jetstream.BucketDeviceKeys), &t.DeviceKeys},
		{jetstream.BucketStream(jetstream.BucketOneTimeKeys), &t.OneTimeKeys},
		{jetstream.BucketStream(jetstream.BucketFallbackKeys), &t.FallbackKeys},
		{jetstream.BucketStream(jetstream.BucketAccounts), &t.Accounts},
		{jetstream.BucketStream(jetstream.BucketRoomDirectory), &t.Directory},
		{jetstream.BucketStream(jetstream.BucketPresence), &t.Presence},
	} {
		if *f.at, err = s.engine.StreamLastSeq(ctx, f.stream); err != nil {
			return t, err
		}
	}
	return t, nil
}

// CaughtUp reports whether the read models have replayed the log.
func (s *Service) CaughtUp() bool { return s.caught.Load() }

// applyRetrying applies one log message to the read models until that
// succeeds or ctx ends. A store that cannot be written (a full disk) makes
// the model report a fault, and with it the node not ready (see Status);
// the node goes on by itself once the store takes writes again.
func (s *Service) applyRetrying(ctx context.Context, what string, apply func() error) error {
	wait := 100 * time.Millisecond
	for failures := 0; ; failures++ {
		err := apply()
		if err == nil {
			if failures > 0 {
				s.log.Info("read models take writes again", "after_failures", failures)
			}
			return nil
		}
		if failures == 0 || failures%20 == 0 {
			s.log.Error("cannot apply to the read models; retrying (this node is not ready meanwhile)", "what", what, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

func (s *Service) followPartition(ctx context.Context, p int) error {
	stream := jetstream.EventStream(p)
	return s.engine.Follow(ctx, stream, s.model.Position().Parts[p]+1, func(m jetstream.RawMsg) error {
		var rec planb.Record
		if err := json.Unmarshal(m.Data, &rec); err != nil {
			s.log.Error("undecodable record skipped", "stream", stream, "seq", m.Seq, "err", err)
			rec = planb.Record{}
		}
		return s.applyRetrying(ctx, stream, func() error { return s.model.ApplyRecord(p, m.Seq, &rec) })
	})
}

func (s *Service) followReceipts(ctx context.Context) error {
	b := jetstream.BucketReceipts
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().Receipts+1, func(m jetstream.RawMsg) error {
		var r struct {
			EventID string `json:"event_id"`
			TS      int64  `json:"ts"`
		}
		// The key says the thread: a receipt stored before threaded
		// receipts had keys of their own may carry a thread_id under an
		// unthreaded key, and is unthreaded, as it was then.
		room, user, rtype, thread, ok := parseReceiptKey(jetstream.BucketKey(b, m.Subject))
		if !ok || json.Unmarshal(m.Data, &r) != nil {
			return s.applyRetrying(ctx, "receipts", func() error { return s.model.SkipReceiptPos(m.Seq) })
		}
		rc := projection.Receipt{EventID: r.EventID, TS: r.TS, ThreadID: thread}
		return s.applyRetrying(ctx, "receipts", func() error { return s.model.ApplyReceipt(m.Seq, room, user, rtype, rc) })
	})
}

func (s *Service) followAccountData(ctx context.Context) error {
	b := jetstream.BucketAccountData
	return s.engine.Follow(ctx, jetstream.BucketStream(b), s.model.Position().AccountData+1, func(m jetstream.RawMsg) error {
		parts := strings.Split(jetstream.BucketKey(b, m.Subject), ".")
		if len(parts) != 3 {
			return nil
		}
		user, room, dtype := jetstream.DecodeKeyPart(parts[0]), "", jetstream.DecodeKeyPart(parts[2])
		if parts[1] != "_" {
			room = jetstream.DecodeKeyPart(parts[1])
		}
		content := json.RawMessage(m.Data)
		if isDeletion(m) {
			content = nil
		}
		return s.applyRetrying(ctx, "account data", func() error { return s.model.ApplyAccountData(m.Seq, user, room, dtype, content) })
	})
}

// unavailable turns an engine failure into the honest 503 clients see.
func (s *Service) unavailable(err error) error {
	answer, turned := planb.NoQuorum(err)
	if turned {
		s.log.Warn("write not committed", "err", err)
	}
	return answer
}
