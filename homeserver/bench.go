package homeserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
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
// ceiling planb's own send rate is compared against (see
// jetstream.Engine.Bench). It returns M_INVALID_PARAM for a request out of
// bounds, M_LIMIT_EXCEEDED when a benchmark is already running in the
// cluster, and a 503 when the engine cannot run it.
func (s *Service) BenchEngine(ctx context.Context, req EngineBenchRequest) (*EngineBenchReport, error) {
	if err := req.Validate(); err != nil {
		return nil, planb.InvalidParam("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	ctx, cancel := context.WithTimeout(ctx, benchDeadline)
	defer cancel()
	res, err := s.engine.Bench(ctx, jetstream.BenchSpec{Messages: req.Messages, Size: req.Size,
		Concurrency: req.Concurrency, Window: req.Window, MaxBytes: BenchMaxBytes, Deadline: benchDeadline})
	switch {
	case errors.Is(err, jetstream.ErrBenchRunning):
		e := planb.LimitExceeded(5 * time.Second)
		e.Message = err.Error()
		return nil, e
	case err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		return nil, s.unavailable(err)
	}
	return &EngineBenchReport{Node: s.engine.NodeName(), DataCenter: s.cfg.DataCenter, Stream: res.Stream,
		Leader: res.Leader, Replicas: s.engine.Replicas(), Size: req.Size, AsyncWin: req.Window,
		SyncConc: req.Concurrency, Sync: EngineBenchMode(res.Sync), Async: EngineBenchMode(res.Async)}, nil
}
