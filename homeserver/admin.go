package homeserver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
)

// NodeHeartbeat is the admin API's wire type (see package adminapi).
type NodeHeartbeat = adminapi.NodeHeartbeat

// StreamStatus is the admin API's wire type (see package adminapi).
type StreamStatus = adminapi.StreamStatus

// ReplicaStatus is the admin API's wire type (see package adminapi).
type ReplicaStatus = adminapi.ReplicaStatus

// ClusterStatus is the admin API's wire type (see package adminapi).
type ClusterStatus = adminapi.ClusterStatus

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

// DrainReport is the admin API's wire type (see package adminapi).
type DrainReport = adminapi.DrainReport

// Drain prepares this node to stop without failing client requests: it
// reports not-ready (so load balancers and planb's clients move away) and
// hands every stream leadership it holds to another data center. The node
// keeps serving until it is stopped; stopping it then (SIGTERM) hands over
// the engine's meta leadership too.
func (s *Service) Drain(ctx context.Context) (*DrainReport, error) {
	s.draining.Store(true)
	s.log.Info("draining: handing over leaderships and reporting not-ready")
	if err := s.syncDrainMarker(ctx); err != nil {
		s.log.Warn("rebalancing elsewhere may hand leaderships back to this node", "err", err)
	}
	rep := &DrainReport{Node: s.engine.NodeName(), DataCenter: s.cfg.DataCenter}
	if s.engine.Replicas() == 1 {
		rep.Message = "single-replica node: there is no other data center to hand leadership to; it reports not-ready and can be stopped"
		return rep, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep.SteppedDown, rep.StillLeader = s.handOverLeaderships(dctx)
	if len(rep.StillLeader) == 0 {
		rep.Message = fmt.Sprintf("node %s leads no stream; it reports not-ready and can be stopped now", rep.Node)
		return rep, nil
	}
	if err := ctx.Err(); err != nil {
		return rep, err
	}
	rep.Message = "some leaderships could not be handed over (is a quorum of other data centers up?)"
	return rep, nil
}

// HandOver prepares a node that is stopping (SIGTERM): like Drain, it
// reports not-ready, stops serving forwarded sends and hands every stream
// leadership to another data center, so that a rolling restart interrupts
// no partition for longer than a leader change; but it marks nothing in
// the cluster. It returns when the node leads nothing or ctx ends; a node
// cut off from the others returns at once (nobody could take over).
func (s *Service) HandOver(ctx context.Context) {
	s.draining.Store(true)
	if s.engine.Replicas() == 1 || s.isCutOff() {
		return
	}
	start := time.Now()
	moved, still := s.handOverLeaderships(ctx)
	s.log.Info("stopping: handed over stream leaderships", "moved", len(moved), "still_leader", still,
		"took", time.Since(start).Round(time.Millisecond))
}

// handOverLeaderships steps down from every stream this node leads until
// it leads none or ctx ends, and returns what it stepped down from and
// what it still leads.
func (s *Service) handOverLeaderships(ctx context.Context) (moved, still []string) {
	for {
		still = nil
		for _, name := range s.engine.StreamNames() {
			if !s.leadsStream(ctx, name) {
				continue
			}
			if err := s.engine.StepDown(ctx, name); err != nil {
				s.log.Warn("leader step-down failed", "stream", name, "err", err)
			} else if !contains(moved, name) {
				moved = append(moved, name)
			}
			still = append(still, name)
		}
		if len(still) == 0 {
			return moved, nil
		}
		if s.isCutOff() {
			return moved, still // nobody to hand over to
		}
		select {
		case <-ctx.Done():
			return moved, still
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// leadsStream reports whether this node leads stream: from the embedded
// server's own Raft state where it has one, else by asking.
func (s *Service) leadsStream(ctx context.Context, name string) bool {
	if l, known := s.engine.IsStreamLeader(name); known {
		return l
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	ci, err := s.engine.StreamCluster(cctx, name)
	return err == nil && ci.Leader == s.engine.NodeName()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Undrain makes a drained node ready again and lets it lead streams again.
func (s *Service) Undrain(ctx context.Context) {
	s.draining.Store(false)
	if err := s.syncDrainMarker(ctx); err != nil {
		s.log.Warn("undrain: the node gets leaderships again only once its drain mark is cleared (retried)", "err", err)
	}
}
