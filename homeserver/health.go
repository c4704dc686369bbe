package homeserver

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// probeInterval is how often a node checks that it can commit writes.
const probeInterval = time.Second

// degradedWriteTimeout bounds writes while the last probe failed, so a node
// cut off from the quorum answers 503 quickly instead of holding clients.
const degradedWriteTimeout = 2 * time.Second

// cutOff answers 503 M_UNAVAILABLE at once while this node has no route to
// a quorum of the cluster. Such a node can commit nothing, and it does not
// hear of what the others commit, so its answers to /sync would be silently
// stale: clients are better off at another data center (planb's own clients
// switch on 503; load balancers already avoid it through /ready).
func (s *Service) cutOff() error {
	if s.isCutOff() {
		return s.refuseCutOff()
	}
	return nil
}

// refuseCutOff counts and returns the answer of a cut-off node.
func (s *Service) refuseCutOff() error {
	s.m.cutOff.Inc()
	if peer := s.brokenLink(); peer != "" {
		return planb.Unavailable(2*time.Second, "this data center cannot reach %s (the link between them is broken; the other data centers still reach both): it may not have the latest messages; retry at another data center", peer)
	}
	return planb.Unavailable(2*time.Second, "this data center is cut off from the other data centers: it cannot commit writes and may not have the latest messages; retry at another data center")
}

// isCutOff reports whether this node knows it has no routes to a quorum of
// the cluster (see jetstream.Engine.CutOff).
func (s *Service) isCutOff() bool { return s.engine.CutOff() }

// brokenLink returns the data center this node cannot reach although the
// others still reach both (jetstream.Engine.BrokenLink), or "". Such a
// node commits what it or the others lead, but what the far end leads
// reaches it only after healing, and its writes there find no route: it
// refuses live reads, is not ready, and bounds its writes by the degraded
// timeout, so its clients move to the data center that reaches both ends.
func (s *Service) brokenLink() string { return s.engine.BrokenLink() }

// health tracks whether this node can commit writes, from a real replicated
// write every probeInterval. Lock rule: mu guards every field below it.
type health struct {
	mu        sync.Mutex
	ok        bool
	lastErr   string
	since     time.Time // when ok last changed
	lastProbe time.Time
	lastOK    time.Time // last successful probe
	// lastEnd is the log end seen by the last probe, target the one seen
	// by the probe before it: a ready node has applied target.
	lastEnd, target *projection.Token
}

// Status returns this node's status: whether it is ready to serve, and
// why not.
func (s *Service) Status() adminapi.Status {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	st := s.model.Stats()
	out := adminapi.Status{DataCenter: s.cfg.DataCenter, CaughtUp: s.CaughtUp(), CanCommit: s.canCommitLocked(),
		Since: s.h.since, LastProbe: s.h.lastProbe, Events: st.Events, Rooms: st.Rooms, Users: st.Users}
	behind := s.h.target != nil && !s.model.Reached(*s.h.target)
	fault := s.model.Fault()
	broken, cut := s.brokenLink(), s.isCutOff()
	out.Ready = out.CaughtUp && out.CanCommit && !behind && !s.draining.Load() && fault == nil && broken == "" && !cut
	switch {
	case cut:
		out.Reason = "cut off from the other data centers: no route to a quorum, or too few of them heard"
	case broken != "":
		out.Reason = "cannot hear " + broken + " although the other data centers do: the rooms led there may be behind here until the link heals"
	case fault != nil:
		out.Reason = "this node's read models cannot be written (it retries by itself): " + fault.Error()
	case behind && out.CaughtUp && out.CanCommit:
		out.Reason = "catching up with the log"
	case s.draining.Load():
		out.Reason = "draining: this data center is being evacuated"
	case !out.CaughtUp:
		done, total := s.catchUpProgress()
		out.Reason = fmt.Sprintf("catching up with the log: %d of %d records in the read models", done, total)
	case !out.CanCommit:
		out.Reason = "cannot commit to a quorum of data centers: " + s.h.lastErr
	}
	return out
}

// SetDraining sets whether this node is being evacuated (see package
// cluster): a draining node reports not-ready and serves no forwarded
// sends.
func (s *Service) SetDraining(on bool) { s.draining.Store(on) }

// Draining reports whether SetDraining turned draining on.
func (s *Service) Draining() bool { return s.draining.Load() }

// electionGrace is how long a node that still has routes to a quorum of
// the cluster stays ready while its commit probe fails: leader elections
// after a data center is lost take 4–9 s, and the survivors must not all
// report not-ready meanwhile.
const electionGrace = 15 * time.Second

// canCommitLocked decides commit ability from the probe and, when the
// probe fails, from connectivity. Caller holds s.h.mu.
func (s *Service) canCommitLocked() bool {
	if s.h.ok {
		return true
	}
	quorum, known := s.engine.QuorumConnected()
	return known && quorum && time.Since(s.h.lastOK) < electionGrace
}

// writeTimeout is the deadline of a write: short while the node is cut off
// from the quorum, so clients hear 503 soon and retry at another data
// center; the full timeout otherwise (an election may be under way).
func (s *Service) writeTimeout() time.Duration {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	if s.brokenLink() != "" {
		return degradedWriteTimeout // a write to what the far end leads finds no route
	}
	if s.h.ok || s.h.lastProbe.IsZero() {
		return s.cfg.WriteTimeout.Std()
	}
	if quorum, known := s.engine.QuorumConnected(); known && quorum {
		return s.cfg.WriteTimeout.Std()
	}
	return degradedWriteTimeout
}

// probe checks commit ability by writing this node's heartbeat into the
// replicated meta bucket (a quorum commit, like any client write).
func (s *Service) probe(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, degradedWriteTimeout)
	defer cancel()
	start := time.Now()
	probe := jetstream.Probe{At: start}
	// The heartbeat says whether the node is ready, so the others can tell
	// a data center that answers but does not serve (a full disk, a long
	// rebuild). A drain is an operator's plan, not an outage.
	if st := s.Status(); !st.Ready && st.CanCommit && !s.draining.Load() {
		probe.NotReady = st.Reason
	}
	_, err := s.engine.Put(ctx, jetstream.BucketMeta, jetstream.ProbeKey(s.cfg.DataCenter, s.engine.NodeName()),
		probe.Encode())
	s.m.probe.Observe(time.Since(start).Seconds())
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	ok := err == nil
	if ok != s.h.ok || s.h.since.IsZero() {
		s.h.since = time.Now()
		if ok {
			s.log.Info("can commit to a quorum")
		} else {
			s.log.Warn("cannot commit to a quorum; answering writes with 503", "err", err)
		}
	}
	s.h.ok, s.h.lastProbe = ok, time.Now()
	if ok {
		s.h.lastOK = s.h.lastProbe
	}
	if err != nil {
		s.h.lastErr = err.Error()
	}
	if s.canCommitLocked() {
		s.m.ready.Set(1)
	} else {
		s.m.ready.Set(0)
	}
}

// canCommit reports the last probe's result.
func (s *Service) canCommit() bool {
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	return s.h.ok
}

// probeLogEnd records the log end for the catch-up part of readiness.
func (s *Service) probeLogEnd(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, degradedWriteTimeout)
	defer cancel()
	end, err := s.logEnd(ctx)
	if err != nil {
		return
	}
	s.h.mu.Lock()
	defer s.h.mu.Unlock()
	s.h.target, s.h.lastEnd = s.h.lastEnd, &end
}

// monitor runs the probe until ctx ends.
func (s *Service) monitor(ctx context.Context) error {
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for n := 0; ; n++ {
		s.probe(ctx)
		if s.canCommit() {
			s.probeLogEnd(ctx)
		}
		if n%5 == 0 {
			s.m.events.Set(float64(s.model.Stats().Events))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
