package homeserver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/planb-chat/planb/jetstream"
)

// NodeHeartbeat is one node's last successful quorum probe, read from the
// replicated meta bucket — so every node can report on every data center.
type NodeHeartbeat struct {
	DataCenter string    `json:"datacenter"`
	Node       string    `json:"node"`
	LastCommit time.Time `json:"last_commit"`
	AgeSeconds float64   `json:"age_seconds"`
	Healthy    bool      `json:"healthy"`
}

// StreamStatus is the placement and health of one replicated stream.
type StreamStatus struct {
	Name      string          `json:"name"`
	Leader    string          `json:"leader"`
	LeaderDC  string          `json:"leader_datacenter,omitempty"`
	Replicas  []ReplicaStatus `json:"replicas"`
	Reachable bool            `json:"reachable"`
	Error     string          `json:"error,omitempty"`
}

// ReplicaStatus is one follower of a stream.
type ReplicaStatus struct {
	Node    string `json:"node"`
	Current bool   `json:"current"`
	Lag     uint64 `json:"lag"`
	Offline bool   `json:"offline"`
}

// ClusterStatus is the admin view of the whole cluster from this node.
type ClusterStatus struct {
	This        Status          `json:"this_node"`
	Draining    bool            `json:"draining"`
	DataCenters []NodeHeartbeat `json:"datacenters"`
	Streams     []StreamStatus  `json:"streams"`
}

// heartbeatHealthy is how recent a node's last committed probe must be.
const heartbeatHealthy = 10 * time.Second

// ClusterStatus reports every node's heartbeat and every stream's leader.
func (s *Service) ClusterStatus(ctx context.Context) (*ClusterStatus, error) {
	out := &ClusterStatus{This: s.Status(), Draining: s.draining.Load()}
	keys, err := s.engine.Keys(ctx, jetstream.BucketMeta, "probe.*")
	if err != nil {
		return nil, s.unavailable(err)
	}
	dcOf := map[string]string{}
	for _, k := range keys {
		e, err := s.engine.Get(ctx, jetstream.BucketMeta, k)
		if err != nil {
			continue
		}
		dc, node, _ := strings.Cut(decodeKey(strings.TrimPrefix(k, "probe.")), "/")
		ms, _ := strconv.ParseInt(string(e.Value), 10, 64)
		t := time.UnixMilli(ms)
		age := time.Since(t)
		out.DataCenters = append(out.DataCenters, NodeHeartbeat{DataCenter: dc, Node: node, LastCommit: t,
			AgeSeconds: age.Round(time.Millisecond).Seconds(), Healthy: age < heartbeatHealthy})
		dcOf[node] = dc
	}
	sort.Slice(out.DataCenters, func(i, j int) bool { return out.DataCenters[i].DataCenter < out.DataCenters[j].DataCenter })
	for _, name := range s.engine.StreamNames() {
		st := StreamStatus{Name: name}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ci, err := s.engine.StreamCluster(cctx, name)
		cancel()
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Reachable, st.Leader, st.LeaderDC = true, ci.Leader, dcOf[ci.Leader]
			for _, r := range ci.Replicas {
				st.Replicas = append(st.Replicas, ReplicaStatus{Node: r.Name, Current: r.Current, Lag: r.Lag, Offline: r.Offline})
			}
		}
		out.Streams = append(out.Streams, st)
	}
	return out, nil
}

// DrainReport says what a drain did.
type DrainReport struct {
	Node        string   `json:"node"`
	DataCenter  string   `json:"datacenter"`
	SteppedDown []string `json:"stepped_down"`
	StillLeader []string `json:"still_leader,omitempty"`
	Message     string   `json:"message"`
}

// Drain prepares this node to stop without failing client requests: it
// reports not-ready (so load balancers and planb's clients move away) and
// hands every stream leadership it holds to another data center. The node
// keeps serving until it is stopped; stopping it then (SIGTERM) hands over
// the engine's meta leadership too.
func (s *Service) Drain(ctx context.Context) (*DrainReport, error) {
	s.draining.Store(true)
	s.log.Info("draining: handing over leaderships and reporting not-ready")
	rep := &DrainReport{Node: s.engine.NodeName(), DataCenter: s.cfg.DataCenter}
	me := s.engine.NodeName()
	if s.engine.Replicas() == 1 {
		rep.Message = "single-replica node: there is no other data center to hand leadership to; it reports not-ready and can be stopped"
		return rep, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		rep.StillLeader = nil
		for _, name := range s.engine.StreamNames() {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			ci, err := s.engine.StreamCluster(cctx, name)
			cancel()
			if err != nil || ci.Leader != me {
				continue
			}
			if err := s.engine.StepDown(ctx, name); err != nil {
				s.log.Warn("leader step-down failed", "stream", name, "err", err)
			} else if !contains(rep.SteppedDown, name) {
				rep.SteppedDown = append(rep.SteppedDown, name)
			}
			rep.StillLeader = append(rep.StillLeader, name)
		}
		if len(rep.StillLeader) == 0 {
			rep.Message = fmt.Sprintf("node %s leads no stream; it reports not-ready and can be stopped now", me)
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	rep.Message = "some leaderships could not be handed over (is a quorum of other data centers up?)"
	return rep, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Undrain makes a drained node ready again.
func (s *Service) Undrain() { s.draining.Store(false) }

// Move is one leadership handed from one node to another.
type Move struct {
	Stream string `json:"stream"`
	From   string `json:"from"`
	To     string `json:"to"`
	Error  string `json:"error,omitempty"`
}

// RebalanceReport says which leaderships Rebalance moved.
type RebalanceReport struct {
	LeadersBefore map[string]int `json:"leaders_before"`
	LeadersAfter  map[string]int `json:"leaders_after"`
	// EventLeadersBefore/After count only the room-event partitions,
	// which decide how many rooms one data-center loss interrupts.
	EventLeadersBefore map[string]int `json:"event_leaders_before"`
	EventLeadersAfter  map[string]int `json:"event_leaders_after"`
	Moves              []Move         `json:"moves"`
}

// Rebalance spreads stream leaderships evenly over the nodes, the
// room-event partitions and the other streams each on their own. After a
// data center comes back from a loss it leads nothing, so the next loss of
// a data center that leads many partitions would stall many rooms at once;
// rebalancing restores the blast radius of one loss to about 1/N of the
// rooms.
func (s *Service) Rebalance(ctx context.Context) (*RebalanceReport, error) {
	type streamInfo struct {
		name, leader, class string
		peers               []string // current followers
	}
	var streams []streamInfo
	count := map[string]map[string]int{"events": {}, "other": {}}
	nodes := map[string]bool{}
	for _, name := range s.engine.StreamNames() {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		ci, err := s.engine.StreamCluster(cctx, name)
		cancel()
		if err != nil || ci.Leader == "" {
			continue
		}
		si := streamInfo{name: name, leader: ci.Leader, class: "other"}
		if strings.HasPrefix(name, "EVENTS_") {
			si.class = "events"
		}
		nodes[ci.Leader] = true
		for _, r := range ci.Replicas {
			nodes[r.Name] = true
			if r.Current && !r.Offline {
				si.peers = append(si.peers, r.Name)
			}
		}
		count[si.class][ci.Leader]++
		streams = append(streams, si)
	}
	for _, c := range count {
		for n := range nodes {
			c[n] += 0
		}
	}
	total := func() map[string]int {
		out := map[string]int{}
		for _, c := range count {
			for n, v := range c {
				out[n] += v
			}
		}
		return out
	}
	rep := &RebalanceReport{LeadersBefore: total(), EventLeadersBefore: copyCounts(count["events"])}
	if len(nodes) >= 2 {
		perClass := map[string]int{}
		for _, st := range streams {
			perClass[st.class]++
		}
		for _, st := range streams {
			c := count[st.class]
			fair := (perClass[st.class] + len(nodes) - 1) / len(nodes)
			if c[st.leader] <= fair {
				continue
			}
			to := ""
			for _, p := range st.peers {
				if c[p] < fair && (to == "" || c[p] < c[to]) {
					to = p
				}
			}
			if to == "" {
				continue
			}
			m := Move{Stream: st.name, From: st.leader, To: to}
			if err := s.engine.StepDownTo(ctx, st.name, to); err != nil {
				m.Error = err.Error()
			} else {
				c[st.leader]--
				c[to]++
			}
			rep.Moves = append(rep.Moves, m)
		}
	}
	rep.LeadersAfter, rep.EventLeadersAfter = total(), copyCounts(count["events"])
	s.log.Info("rebalanced stream leaders", "moves", len(rep.Moves), "event_leaders", rep.EventLeadersAfter)
	return rep, nil
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
