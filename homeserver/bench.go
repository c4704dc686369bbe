package homeserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/planb-chat/planb"
)

// Bounds of one engine benchmark (POST /_planb/admin/v1/bench/engine): it
// runs inside a production node, so it must never be able to fill a disk or
// hold the engine for long.
const (
	BenchMaxMessages    = 1_000_000
	BenchMaxSize        = 64 * 1024
	BenchMaxBytes       = 1 << 30 // messages × size, per mode
	BenchMaxConcurrency = 1024
	BenchMaxWindow      = 4096
	benchDeadline       = 10 * time.Minute
	// benchStreamPrefix names the temporary streams; nothing else uses it.
	benchStreamPrefix = "PLANB_BENCH_"
)

// EngineBenchRequest asks for an engine benchmark: Messages messages of
// Size bytes, published to a temporary stream configured like a room-event
// partition (same replicas, file storage, and the server-wide SyncAlways),
// first one at a time by Concurrency publishers, then pipelined with at most
// Window unacknowledged publishes.
type EngineBenchRequest struct {
	Messages    int `json:"messages"`
	Size        int `json:"size"`
	Concurrency int `json:"concurrency"`
	Window      int `json:"window"`
}

// Validate reports every problem of the request at once.
func (r EngineBenchRequest) Validate() error {
	var errs []error
	if r.Messages < 1 || r.Messages > BenchMaxMessages {
		errs = append(errs, fmt.Errorf("messages %d: want 1..%d", r.Messages, BenchMaxMessages))
	}
	if r.Size < 1 || r.Size > BenchMaxSize {
		errs = append(errs, fmt.Errorf("size %d: want 1..%d", r.Size, BenchMaxSize))
	}
	if int64(r.Messages)*int64(r.Size) > BenchMaxBytes {
		errs = append(errs, fmt.Errorf("messages × size = %d bytes: want at most %d", int64(r.Messages)*int64(r.Size), int64(BenchMaxBytes)))
	}
	if r.Concurrency < 1 || r.Concurrency > BenchMaxConcurrency {
		errs = append(errs, fmt.Errorf("concurrency %d: want 1..%d", r.Concurrency, BenchMaxConcurrency))
	}
	if r.Window < 1 || r.Window > BenchMaxWindow {
		errs = append(errs, fmt.Errorf("window %d: want 1..%d", r.Window, BenchMaxWindow))
	}
	return errors.Join(errs...)
}

// EngineBenchMode is the result of one way of publishing.
type EngineBenchMode struct {
	Messages   int     `json:"messages"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
}

// EngineBenchReport is the result of an engine benchmark.
type EngineBenchReport struct {
	Node       string          `json:"node"`
	DataCenter string          `json:"datacenter"`
	Stream     string          `json:"stream"`
	Leader     string          `json:"leader,omitempty"`
	Replicas   int             `json:"replicas"`
	Size       int             `json:"size"`
	Sync       EngineBenchMode `json:"sync"`
	Async      EngineBenchMode `json:"async"`
	AsyncWin   int             `json:"async_window"`
	SyncConc   int             `json:"sync_concurrency"`
}

// BenchEngine measures the engine's publish rate on this cluster, as the
// ceiling planb's own send rate is compared against. It creates a temporary
// stream (its own name and subjects, never touching another stream),
// publishes, and deletes the stream again, also when ctx ends. It returns
// M_INVALID_PARAM for a request out of bounds, M_LIMIT_EXCEEDED when a
// benchmark is already running here, and a 503 when the engine cannot
// create the stream.
func (s *Service) BenchEngine(ctx context.Context, req EngineBenchRequest) (*EngineBenchReport, error) {
	if err := req.Validate(); err != nil {
		return nil, planb.InvalidParam("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	ctx, cancel := context.WithTimeout(ctx, benchDeadline)
	defer cancel()
	js, err := natsjs.New(s.engine.Conn(), natsjs.WithPublishAsyncMaxPending(req.Window))
	if err != nil {
		return nil, fmt.Errorf("bench: jetstream context: %w", err)
	}
	if err := s.benchExclusive(ctx, js); err != nil {
		return nil, err
	}
	id := strings.ToUpper(planb.RandomLetters(10))
	name := benchStreamPrefix + id
	subject := "planb.bench." + id
	// The settings of a room-event partition (jetstream/schema.go); fsync
	// before ack (SyncAlways) is server-wide and applies here too.
	cfg := natsjs.StreamConfig{
		Name:        name,
		Description: "planb bench: temporary, deleted after the run",
		Subjects:    []string{subject + ".*"},
		Storage:     natsjs.FileStorage,
		Replicas:    s.engine.Replicas(),
		Retention:   natsjs.LimitsPolicy,
		Discard:     natsjs.DiscardNew,
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  4 * 1024 * 1024,
		MaxBytes:    2 * BenchMaxBytes,
		AllowDirect: true,
	}
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = js.CreateStream(cctx, cfg)
	ccancel()
	if err != nil {
		return nil, s.unavailable(fmt.Errorf("bench: create stream %s: %w", name, err))
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := js.DeleteStream(dctx, name); err != nil {
			s.log.Warn("bench: delete temporary stream", "stream", name, "err", err)
		}
	}()
	rep := &EngineBenchReport{Node: s.engine.NodeName(), DataCenter: s.cfg.DataCenter, Stream: name,
		Replicas: s.engine.Replicas(), Size: req.Size, AsyncWin: req.Window, SyncConc: req.Concurrency}
	if ci, err := s.engine.StreamCluster(ctx, name); err == nil {
		rep.Leader = ci.Leader
	}
	payload := make([]byte, req.Size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	s.log.Info("bench: engine benchmark", "stream", name, "leader", rep.Leader, "messages", req.Messages,
		"size", req.Size, "concurrency", req.Concurrency, "window", req.Window)
	rep.Sync = benchSync(ctx, js, subject+".s", payload, req.Messages, req.Concurrency)
	rep.Async = benchAsync(ctx, js, subject+".a", payload, req.Messages)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return rep, nil
}

// benchSync publishes n messages with conc publishers, each waiting for its
// acknowledgement before the next publish.
func benchSync(ctx context.Context, js natsjs.JetStream, subject string, payload []byte, n, conc int) EngineBenchMode {
	var (
		next  atomic.Int64
		mu    sync.Mutex // guards out
		out   EngineBenchMode
		wg    sync.WaitGroup
		start = time.Now()
	)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) && ctx.Err() == nil {
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := js.Publish(pctx, subject, payload)
				cancel()
				mu.Lock()
				if err != nil {
					out.Errors++
					if out.FirstError == "" {
						out.FirstError = err.Error()
					}
				} else {
					out.Messages++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	out.Seconds = time.Since(start).Seconds()
	out.PerSecond = float64(out.Messages) / out.Seconds
	return out
}

// benchAsync publishes n messages pipelined: PublishAsync blocks while the
// window of unacknowledged publishes is full.
func benchAsync(ctx context.Context, js natsjs.JetStream, subject string, payload []byte, n int) EngineBenchMode {
	var out EngineBenchMode
	futures := make([]natsjs.PubAckFuture, 0, n)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		f, err := js.PublishAsync(subject, payload, natsjs.WithStallWait(30*time.Second))
		if err != nil {
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = err.Error()
			}
			continue
		}
		futures = append(futures, f)
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-ctx.Done():
	}
	elapsed := time.Since(start)
	for _, f := range futures {
		select {
		case <-f.Ok():
			out.Messages++
		case err := <-f.Err():
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = err.Error()
			}
		default:
			out.Errors++
			if out.FirstError == "" {
				out.FirstError = "no acknowledgement before the deadline"
			}
		}
	}
	out.Seconds = elapsed.Seconds()
	out.PerSecond = float64(out.Messages) / out.Seconds
	return out
}

// benchExclusive lets one engine benchmark run in the whole cluster at a
// time: a temporary stream of a running benchmark answers M_LIMIT_EXCEEDED.
// A temporary stream older than the benchmark deadline was left behind by a
// node that died mid-run; it is deleted.
func (s *Service) benchExclusive(ctx context.Context, js natsjs.JetStream) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l := js.ListStreams(lctx)
	var running []string
	for info := range l.Info() {
		if !strings.HasPrefix(info.Config.Name, benchStreamPrefix) {
			continue
		}
		if time.Since(info.Created) > benchDeadline+time.Minute {
			if err := js.DeleteStream(lctx, info.Config.Name); err != nil {
				s.log.Warn("bench: delete abandoned temporary stream", "stream", info.Config.Name, "err", err)
			}
			continue
		}
		running = append(running, info.Config.Name)
	}
	if err := l.Err(); err != nil {
		return s.unavailable(fmt.Errorf("bench: list streams: %w", err))
	}
	if len(running) > 0 {
		e := planb.LimitExceeded(5 * time.Second)
		e.Message = "another engine benchmark is running in this cluster (" + strings.Join(running, ", ") + ")"
		return e
	}
	return nil
}
