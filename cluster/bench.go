package cluster

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
)

// benchDeadline bounds one engine benchmark run.
const benchDeadline = 10 * time.Minute

// BenchEngine measures the engine's publish rate on this cluster, as the
// ceiling planb's own send rate is compared against (see
// jetstream.Engine.Bench). It returns M_INVALID_PARAM for a request out of
// bounds, M_LIMIT_EXCEEDED when a benchmark is already running in the
// cluster, and a 503 when the engine cannot run it.
func (o *Ops) BenchEngine(ctx context.Context, req adminapi.EngineBenchRequest) (*adminapi.EngineBenchReport, error) {
	if err := req.Validate(); err != nil {
		return nil, planb.InvalidParam("%v", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	ctx, cancel := context.WithTimeout(ctx, benchDeadline)
	defer cancel()
	res, err := o.engine.Bench(ctx, jetstream.BenchSpec{Messages: req.Messages, Size: req.Size,
		Concurrency: req.Concurrency, Window: req.Window, MaxBytes: adminapi.BenchMaxBytes, Deadline: benchDeadline})
	switch {
	case errors.Is(err, jetstream.ErrBenchRunning):
		e := planb.LimitExceeded(5 * time.Second)
		e.Message = err.Error()
		return nil, e
	case err != nil && ctx.Err() != nil:
		return nil, err
	case err != nil:
		return nil, o.unavailable(err)
	}
	return &adminapi.EngineBenchReport{Node: o.engine.NodeName(), DataCenter: o.hs.Config().DataCenter, Stream: res.Stream,
		Leader: res.Leader, Replicas: o.engine.Replicas(), Size: req.Size, AsyncWin: req.Window,
		SyncConc: req.Concurrency, Sync: adminapi.EngineBenchMode(res.Sync), Async: adminapi.EngineBenchMode(res.Async)}, nil
}
