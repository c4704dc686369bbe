package jetstream

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

// benchStreamPrefix names the engine benchmark's temporary streams; nothing
// else uses it.
const benchStreamPrefix = "PLANB_BENCH_"

// BenchSpec is one engine benchmark: Messages messages of Size bytes,
// published first one at a time by Concurrency publishers, then pipelined
// with at most Window unacknowledged publishes. MaxBytes bounds the
// temporary stream; Deadline is how long a run may take at most (a
// temporary stream older than that was abandoned by a node that died).
type BenchSpec struct {
	Messages, Size, Concurrency, Window int
	MaxBytes                            int64
	Deadline                            time.Duration
}

// BenchMode is the result of one way of publishing.
type BenchMode struct {
	Messages   int
	Seconds    float64
	PerSecond  float64
	Errors     int
	FirstError string
}

// BenchResult is the result of an engine benchmark.
type BenchResult struct {
	Stream, Leader string
	Sync, Async    BenchMode
}

// ErrBenchRunning is returned by Bench while another benchmark's temporary
// stream exists in the cluster.
var ErrBenchRunning = errors.New("another engine benchmark is running in this cluster")

// Bench measures the engine's publish rate on this cluster. It creates a
// temporary stream configured like a room-event partition (same replicas,
// file storage, and the server-wide SyncAlways) under its own name and
// subjects, publishes, and deletes the stream again, also when ctx ends.
// One benchmark runs in the whole cluster at a time (ErrBenchRunning).
func (e *Engine) Bench(ctx context.Context, spec BenchSpec) (*BenchResult, error) {
	js, err := natsjs.New(e.nc, natsjs.WithPublishAsyncMaxPending(spec.Window))
	if err != nil {
		return nil, fmt.Errorf("bench: jetstream context: %w", err)
	}
	if err := e.benchExclusive(ctx, js, spec.Deadline); err != nil {
		return nil, err
	}
	id := strings.ToUpper(planb.RandomLetters(10))
	name := benchStreamPrefix + id
	subject := "planb.bench." + id
	cfg := e.eventStreamConfig(0)
	cfg.Name, cfg.Description = name, "planb bench: temporary, deleted after the run"
	cfg.Subjects, cfg.MaxBytes = []string{subject + ".*"}, 2*spec.MaxBytes
	cfg.DenyDelete, cfg.DenyPurge = false, false
	cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = js.CreateStream(cctx, cfg)
	ccancel()
	if err != nil {
		return nil, fmt.Errorf("bench: create stream %s: %w", name, err)
	}
	defer func() {
		dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer dcancel()
		if err := js.DeleteStream(dctx, name); err != nil {
			e.log.Warn("bench: delete temporary stream", "stream", name, "err", err)
		}
	}()
	res := &BenchResult{Stream: name}
	if ci, err := e.StreamCluster(ctx, name); err == nil {
		res.Leader = ci.Leader
	}
	payload := make([]byte, spec.Size)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}
	e.log.Info("bench: engine benchmark", "stream", name, "leader", res.Leader, "messages", spec.Messages,
		"size", spec.Size, "concurrency", spec.Concurrency, "window", spec.Window)
	res.Sync = benchSync(ctx, js, subject+".s", payload, spec.Messages, spec.Concurrency)
	res.Async = benchAsync(ctx, js, subject+".a", payload, spec.Messages)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return res, nil
}

func (m *BenchMode) fail(err error) {
	m.Errors++
	if m.FirstError == "" {
		m.FirstError = err.Error()
	}
}

// benchSync publishes n messages with conc publishers, each waiting for its
// acknowledgement before the next publish.
func benchSync(ctx context.Context, js natsjs.JetStream, subject string, payload []byte, n, conc int) BenchMode {
	var (
		next  atomic.Int64
		mu    sync.Mutex // guards out
		out   BenchMode
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
					out.fail(err)
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
func benchAsync(ctx context.Context, js natsjs.JetStream, subject string, payload []byte, n int) BenchMode {
	var out BenchMode
	futures := make([]natsjs.PubAckFuture, 0, n)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		f, err := js.PublishAsync(subject, payload, natsjs.WithStallWait(30*time.Second))
		if err != nil {
			out.fail(err)
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
			out.fail(err)
		default:
			out.fail(errors.New("no acknowledgement before the deadline"))
		}
	}
	out.Seconds = elapsed.Seconds()
	out.PerSecond = float64(out.Messages) / out.Seconds
	return out
}

// benchExclusive lets one engine benchmark run in the whole cluster at a
// time. A temporary stream older than deadline was left behind by a node
// that died mid-run; it is deleted.
func (e *Engine) benchExclusive(ctx context.Context, js natsjs.JetStream, deadline time.Duration) error {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l := js.ListStreams(lctx)
	var running []string
	for info := range l.Info() {
		if !strings.HasPrefix(info.Config.Name, benchStreamPrefix) {
			continue
		}
		if time.Since(info.Created) > deadline+time.Minute {
			if err := js.DeleteStream(lctx, info.Config.Name); err != nil {
				e.log.Warn("bench: delete abandoned temporary stream", "stream", info.Config.Name, "err", err)
			}
			continue
		}
		running = append(running, info.Config.Name)
	}
	if err := l.Err(); err != nil {
		return fmt.Errorf("bench: list streams: %w", err)
	}
	if len(running) > 0 {
		return fmt.Errorf("%w (%s)", ErrBenchRunning, strings.Join(running, ", "))
	}
	return nil
}
