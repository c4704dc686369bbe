package homeserver

import "github.com/prometheus/client_golang/prometheus"

// serviceMetrics are the homeserver's Prometheus metrics.
type serviceMetrics struct {
	commit       prometheus.Histogram
	commitErrors *prometheus.CounterVec
	batchSize    prometheus.Histogram
	probe        prometheus.Histogram
	ready        prometheus.Gauge
	events       prometheus.Gauge
	cutOff       prometheus.Counter
	reads        *prometheus.CounterVec
	forwarded    *prometheus.CounterVec
	pushes       *prometheus.CounterVec
	pushLatency  prometheus.Histogram
}

func newServiceMetrics(reg prometheus.Registerer) *serviceMetrics {
	m := &serviceMetrics{
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "planb_commit_seconds",
			Help: "Time to commit one log record to a quorum.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		commitErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_commit_errors_total",
			Help: "Failed log appends by kind (conflict, unavailable)."}, []string{"kind"}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "planb_commit_batch_events",
			Help: "Events per committed record (group commit).", Buckets: prometheus.ExponentialBuckets(1, 2, 10)}),
		probe: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "planb_quorum_probe_seconds",
			Help: "Latency of the quorum write probe.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "planb_can_commit",
			Help: "1 when this node can commit writes to a quorum."}),
		events: prometheus.NewGauge(prometheus.GaugeOpts{Name: "planb_readmodel_events",
			Help: "Events in this node's read models."}),
		cutOff: prometheus.NewCounter(prometheus.CounterOpts{Name: "planb_cut_off_refusals_total",
			Help: "Writes and syncs answered 503 at once because this node had no route to a quorum."}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_reads_total",
			Help: "Reads of the read model by read and outcome (ok, served_cut_off, refused_cut_off); see homeserver/read.go."}, []string{"read", "outcome"}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_forwarded_sends_total",
			Help: "Sends forwarded to the node leading the room's partition, by result (ok, error, fallback: committed here)."}, []string{"result"}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "planb_pushes_total",
			Help: "Push notification attempts by result (ok, retry, failed, refused, rejected: a pushkey removed, dropped)."}, []string{"result"}),
		pushLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "planb_push_seconds",
			Help: "Time from an event's origin_server_ts to its push gateway's answer.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
	}
	if reg != nil {
		reg.MustRegister(m.commit, m.commitErrors, m.batchSize, m.probe, m.ready, m.events, m.cutOff, m.reads, m.forwarded,
			m.pushes, m.pushLatency)
	}
	return m
}
