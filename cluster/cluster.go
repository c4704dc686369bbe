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
	"github.com/planb-chat/planb/compensation"
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
	// IncidentAfter is how long a data center must be silent, or a
	// partition without a leader, before the cluster opens an incident.
	IncidentAfter planb.Duration `json:"incident_after"`
	// NoticeAfter is how long an incident must have affected a user before
	// they get a server notice about it (Korean law: two hours).
	NoticeAfter planb.Duration `json:"notice_after"`
	// NoticeDrills sends notices for incidents a drill caused too.
	NoticeDrills bool `json:"notice_drills"`
	// NoticeLanguage is the language ("ko" or "en") of the notices of
	// users whose client did not say which one they read.
	NoticeLanguage string `json:"notice_language"`
	// Compensation is the published rule by which affected users are
	// compensated.
	Compensation compensation.Policy `json:"compensation"`
}

// DefaultPolicy returns the default policy.
func DefaultPolicy() Policy {
	return Policy{RebalanceEvery: planb.Duration(15 * time.Second), IncidentAfter: planb.Duration(5 * time.Second),
		NoticeAfter: planb.Duration(2 * time.Hour), NoticeLanguage: "ko", Compensation: compensation.DefaultPolicy()}
}

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
	// incidents detects and records incidents (see incidents.go); status
	// is the last status page built (incidentapi.go).
	incidents *detector
	status    statusCache
}

// New returns the cluster operations of the node running hs on engine,
// registering their metrics on reg (which may be nil). Call Run for the
// background work.
func New(policy Policy, engine *jetstream.Engine, hs *homeserver.Service, log *slog.Logger, reg prometheus.Registerer) *Ops {
	o := &Ops{policy: policy, log: log, engine: engine, hs: hs, m: newMetrics(reg), leaders: map[string]string{}}
	o.incidents = newDetector(o)
	return o
}

// Run rebalances leaderships by itself, observes the log streams and
// detects incidents until ctx ends.
func (o *Ops) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { o.observe(ctx) })
	wg.Go(func() { o.incidents.run(ctx) })
	err := o.autoRebalance(ctx)
	wg.Wait()
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
	notices       *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "planb_stream_replica_lag",
			Help: "Largest replica lag (operations) of a log stream, as its leader reports it."}, []string{"stream"}),
		leaderChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_stream_leader_changes_total",
			Help: "Leader changes of a log stream seen by this node."}, []string{"stream"}),
		autoMoves: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_auto_rebalance_moves_total",
			Help: "Stream leaderships this node moved by itself to spread them evenly, by result (ok, error)."}, []string{"result"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_incident_notices_total",
			Help: "Server notices about incidents this node sent, by kind (notice, followup)."}, []string{"kind"}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.leaderChanges, m.autoMoves, m.notices)
	}
	return m
}
