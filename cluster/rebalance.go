package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/planb-chat/planb/adminapi"
)

// streamLeader is one stream's leader and the followers that could take
// over from it.
type streamLeader struct {
	name, leader, class string
	peers               []string // current, online followers
}

// leaderLayout is who leads which stream, as seen from this node.
type leaderLayout struct {
	streams []streamLeader
	nodes   map[string]bool // every replica's node, offline ones too
	// unsettled says why the cluster is not in a steady state: a stream
	// without a leader, a replica offline or behind.
	unsettled []string
}

// layout asks every stream's leader for its replicas.
func (o *Ops) layout(ctx context.Context) leaderLayout {
	l := leaderLayout{nodes: map[string]bool{}}
	for _, name := range o.engine.StreamNames() {
		ci, err := o.streamCluster(ctx, name)
		if err != nil || ci.Leader == "" {
			l.unsettled = append(l.unsettled, name+" has no leader")
			continue
		}
		st := streamLeader{name: name, leader: ci.Leader, class: "other"}
		if strings.HasPrefix(name, "EVENTS_") {
			st.class = "events"
		}
		l.nodes[ci.Leader] = true
		for _, r := range ci.Replicas {
			l.nodes[r.Name] = true
			if r.Current && !r.Offline {
				st.peers = append(st.peers, r.Name)
			} else {
				l.unsettled = append(l.unsettled, fmt.Sprintf("%s: replica %s is offline or behind", name, r.Name))
			}
		}
		l.streams = append(l.streams, st)
	}
	return l
}

// counts returns, per class, how many streams each node leads (every node
// listed, with 0 where it leads none).
func (l leaderLayout) counts() map[string]map[string]int {
	count := map[string]map[string]int{"events": {}, "other": {}}
	for _, c := range count {
		for n := range l.nodes {
			c[n] = 0
		}
	}
	for _, st := range l.streams {
		count[st.class][st.leader]++
	}
	return count
}

// Rebalance spreads stream leaderships evenly over the nodes, the
// room-event partitions and the other streams each on their own. After a
// data center comes back from a loss it leads nothing, so the next loss of
// a data center that leads many partitions would stall many rooms at once;
// rebalancing restores the blast radius of one loss to about 1/N of the
// rooms. Nodes being drained get no leadership and lose what they hold.
//
// Every node also runs it by itself (see autoRebalance); this is the
// operator's way to do it now.
func (o *Ops) Rebalance(ctx context.Context) (*adminapi.RebalanceReport, error) {
	draining, err := o.drainingNodes(ctx)
	if err != nil {
		return nil, o.unavailable(err)
	}
	rep := rebalance(o.layout(ctx), draining, func(stream, to string) error {
		return o.engine.StepDownTo(ctx, stream, to)
	})
	o.log.Info("rebalanced stream leaders", "moves", len(rep.Moves), "event_leaders", rep.EventLeadersAfter)
	return rep, nil
}

// rebalance moves leaderships of l from nodes that lead more than their
// share (or are draining) to current followers that lead less, calling
// move for each; a failed move is reported and leaves the counts as they
// were.
func rebalance(l leaderLayout, draining map[string]bool, move func(stream, to string) error) *adminapi.RebalanceReport {
	count := l.counts()
	total := func() map[string]int {
		out := map[string]int{}
		for _, c := range count {
			for n, v := range c {
				out[n] += v
			}
		}
		return out
	}
	rep := &adminapi.RebalanceReport{LeadersBefore: total(), EventLeadersBefore: maps.Clone(count["events"]),
		Draining: slices.Sorted(maps.Keys(draining))}
	eligible := 0
	for n := range l.nodes {
		if !draining[n] {
			eligible++
		}
	}
	if eligible >= 1 && len(l.nodes) >= 2 {
		perClass := map[string]int{}
		for _, st := range l.streams {
			perClass[st.class]++
		}
		for _, st := range l.streams {
			c := count[st.class]
			fair := (perClass[st.class] + eligible - 1) / eligible
			if c[st.leader] <= fair && !draining[st.leader] {
				continue
			}
			to := ""
			for _, p := range st.peers {
				if p == st.leader || draining[p] {
					continue
				}
				if (c[p] < fair || draining[st.leader]) && (to == "" || c[p] < c[to]) {
					to = p
				}
			}
			if to == "" {
				continue
			}
			m := adminapi.Move{Stream: st.name, From: st.leader, To: to}
			if err := move(st.name, to); err != nil {
				m.Error = err.Error()
			} else {
				c[st.leader]--
				c[to]++
			}
			rep.Moves = append(rep.Moves, m)
		}
	}
	rep.LeadersAfter, rep.EventLeadersAfter = total(), maps.Clone(count["events"])
	return rep
}

// autoRebalance keeps stream leaderships spread without an operator. Every
// node runs it; only the node that leads the engine's meta group acts (an
// elected role, so no data center is special). It acts only when the
// cluster has been settled — every stream led, every replica online and
// current — at two checks in a row, so it never moves leaders during a
// failure or while a returning data center catches up. It waits while a
// node is being drained (an operator's Rebalance still works then and
// hands nothing to the draining node).
func (o *Ops) autoRebalance(ctx context.Context) error {
	every := o.policy.RebalanceEvery.Std()
	if every <= 0 {
		return nil
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	settled := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		if err := o.syncDrainMarker(ctx); err != nil {
			o.log.Warn("drain mark", "err", err)
		}
		leader, known := o.engine.IsMetaLeader()
		quorum, _ := o.engine.QuorumConnected()
		if !known || !leader || !quorum {
			settled = 0
			continue
		}
		l := o.layout(ctx)
		if len(l.unsettled) > 0 {
			if settled > 0 {
				o.log.Debug("not rebalancing: the cluster is not settled", "why", l.unsettled)
			}
			settled = 0
			continue
		}
		if settled++; settled < 2 {
			continue
		}
		draining, err := o.drainingNodes(ctx)
		if err != nil || anyIn(draining, l.nodes) {
			// While a node is being drained an operator is at work, and
			// the drained node will return or be removed: moving leaders
			// among the others now would only interrupt their partitions
			// once more (a move stalls its partition for a moment). The
			// mark of a node that holds no replica any more (removed from
			// the cluster) does not count.
			continue
		}
		rep := rebalance(l, draining, func(stream, to string) error { return o.engine.StepDownTo(ctx, stream, to) })
		if len(rep.Moves) == 0 {
			continue
		}
		for _, m := range rep.Moves {
			result := "ok"
			if m.Error != "" {
				result = "error"
			}
			o.m.autoMoves.WithLabelValues(result).Inc()
		}
		o.log.Info("leaderships were uneven; moved some", "moves", rep.Moves,
			"event_leaders_before", rep.EventLeadersBefore, "event_leaders_after", rep.EventLeadersAfter)
		settled = 0 // let the moves settle before looking again
	}
}

// anyIn reports whether a key of set is in nodes.
func anyIn(set, nodes map[string]bool) bool {
	for n := range set {
		if nodes[n] {
			return true
		}
	}
	return false
}
