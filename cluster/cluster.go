// Package cluster holds planb's cluster operations, served by every node
// through the admin API: the cluster's status, draining a node and handing
// its stream leaderships over, spreading leaderships evenly (by an
// operator's request and by itself), the drill lock and the drill history,
// and the engine benchmark. It sits above package homeserver, which holds
// the Matrix logic and obeys the one piece of state these operations set
// on it: whether the node is being drained.
package cluster

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/jetstream"
)

// Policy is what a node's cluster operations do by themselves. Its JSON
// names are those of the node's configuration file (package node embeds
// it).
type Policy struct {
	// RebalanceEvery is how often the node checks whether stream
	// leaderships are spread evenly (only the engine's meta leader acts);
	// 0 turns automatic rebalancing off.
	RebalanceEvery planb.Duration `json:"rebalance_every"`
}

// DefaultPolicy returns the default policy.
func DefaultPolicy() Policy { return Policy{RebalanceEvery: planb.Duration(15 * time.Second)} }

// observeEvery is how often a node records the log streams' replica lag
// and leader changes.
const observeEvery = 5 * time.Second

// Ops runs the cluster operations of one node.
type Ops struct {
	policy Policy
	log    *slog.Logger
	engine *jetstream.Engine
	hs     *homeserver.Service
	m      *metrics
	// drained is set by Drain and cleared by Undrain: an operator is
	// evacuating this node (see syncDrainMarker).
	drained atomic.Bool
	// leaders is the last leader seen of each log stream (observeStreams).
	// Lock rule: mu guards leaders.
	mu      sync.Mutex
	leaders map[string]string
}

// New returns the cluster operations of the node running hs on engine,
// registering their metrics on reg (which may be nil). Call Run for the
// background work.
func New(policy Policy, engine *jetstream.Engine, hs *homeserver.Service, log *slog.Logger, reg prometheus.Registerer) *Ops {
	return &Ops{policy: policy, log: log, engine: engine, hs: hs, m: newMetrics(reg), leaders: map[string]string{}}
}

// Run rebalances leaderships by itself and observes the log streams until
// ctx ends.
func (o *Ops) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		o.observe(ctx)
	}()
	err := o.autoRebalance(ctx)
	<-done
	return err
}

// observe records the log streams' lag and leader changes every
// observeEvery until ctx ends.
func (o *Ops) observe(ctx context.Context) {
	tick := time.NewTicker(observeEvery)
	defer tick.Stop()
	for {
		o.observeStreams(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// observeStreams records replica lag and leader changes of the log streams.
func (o *Ops) observeStreams(ctx context.Context) {
	for p := 0; p < o.engine.Partitions(); p++ {
		name := jetstream.EventStream(p)
		ci, err := o.streamCluster(ctx, name)
		if err != nil {
			continue
		}
		var lag uint64
		for _, r := range ci.Replicas {
			lag = max(lag, r.Lag)
		}
		o.m.lag.WithLabelValues(name).Set(float64(lag))
		o.mu.Lock()
		if prev, ok := o.leaders[name]; ok && prev != ci.Leader && ci.Leader != "" {
			o.m.leaderChanges.WithLabelValues(name).Inc()
			o.log.Info("stream leader changed", "stream", name, "from", prev, "to", ci.Leader)
		}
		if ci.Leader != "" {
			o.leaders[name] = ci.Leader
		}
		o.mu.Unlock()
	}
}

// streamCluster asks stream's leader for its replicas, for at most 2 s (a
// stream without a leader must not hold a whole status or rebalancing).
func (o *Ops) streamCluster(ctx context.Context, stream string) (*jetstream.ClusterInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return o.engine.StreamCluster(ctx, stream)
}

// unavailable turns an engine failure into the honest 503 an operator sees.
func (o *Ops) unavailable(err error) error {
	answer, turned := planb.NoQuorum(err)
	if turned {
		o.log.Warn("cluster operation failed", "err", err)
	}
	return answer
}

// metrics are the cluster operations' Prometheus metrics.
type metrics struct {
	lag           *prometheus.GaugeVec
	leaderChanges *prometheus.CounterVec
	autoMoves     *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "planb_stream_replica_lag",
			Help: "Largest replica lag (operations) of a log stream, as its leader reports it."}, []string{"stream"}),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_stream_leader_changes_total",
			Help: "Leader changes of a log stream seen by this node."}, []string{"stream"}),
		autoMoves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_auto_rebalance_moves_total",
			Help: "Stream leaderships this node moved by itself to spread them evenly, by result (ok, error)."}, []string{"result"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.leaderChanges, m.autoMoves)
	}
	return m
}
