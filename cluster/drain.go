package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
)

// Drain prepares this node to stop without failing client requests: it
// reports not-ready (so load balancers and planb's clients move away),
// marks itself in the cluster so that no node's rebalancing hands it
// leaderships back, and hands every stream leadership it holds to another
// data center. The node keeps serving until it is stopped; stopping it
// then (SIGTERM) hands over the engine's meta leadership too.
func (o *Ops) Drain(ctx context.Context) (*adminapi.DrainReport, error) {
	o.drained.Store(true)
	o.hs.SetDraining(true)
	o.log.Info("draining: handing over leaderships and reporting not-ready")
	if err := o.syncDrainMarker(ctx); err != nil {
		o.log.Warn("rebalancing elsewhere may hand leaderships back to this node", "err", err)
	}
	rep := &adminapi.DrainReport{Node: o.engine.NodeName(), DataCenter: o.hs.Config().DataCenter}
	if o.engine.Replicas() == 1 {
		rep.Message = "single-replica node: there is no other data center to hand leadership to; it reports not-ready and can be stopped"
		return rep, nil
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rep.SteppedDown, rep.StillLeader = o.handOverLeaderships(dctx)
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
func (o *Ops) HandOver(ctx context.Context) {
	o.hs.SetDraining(true)
	if o.engine.Replicas() == 1 || o.engine.CutOff() {
		return
	}
	start := time.Now()
	moved, still := o.handOverLeaderships(ctx)
	o.log.Info("stopping: handed over stream leaderships", "moved", len(moved), "still_leader", still,
		"took", time.Since(start).Round(time.Millisecond))
}

// Undrain makes a drained node ready again and lets it lead streams again.
func (o *Ops) Undrain(ctx context.Context) {
	o.drained.Store(false)
	o.hs.SetDraining(false)
	if err := o.syncDrainMarker(ctx); err != nil {
		o.log.Warn("undrain: the node gets leaderships again only once its drain mark is cleared (retried)", "err", err)
	}
}

// handOverLeaderships steps down from every stream this node leads until
// it leads none or ctx ends, and returns what it stepped down from and
// what it still leads.
func (o *Ops) handOverLeaderships(ctx context.Context) (moved, still []string) {
	for {
		still = nil
		for _, name := range o.engine.StreamNames() {
			if !o.leadsStream(ctx, name) {
				continue
			}
			if err := o.engine.StepDown(ctx, name); err != nil {
				o.log.Warn("leader step-down failed", "stream", name, "err", err)
			} else if !slices.Contains(moved, name) {
				moved = append(moved, name)
			}
			still = append(still, name)
		}
		if len(still) == 0 {
			return moved, nil
		}
		if o.engine.CutOff() {
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
func (o *Ops) leadsStream(ctx context.Context, name string) bool {
	if l, known := o.engine.IsStreamLeader(name); known {
		return l
	}
	ci, err := o.streamCluster(ctx, name)
	return err == nil && ci.Leader == o.engine.NodeName()
}

// drainingNodes returns the nodes marked as being drained.
func (o *Ops) drainingNodes(ctx context.Context) (map[string]bool, error) {
	keys, err := o.engine.Keys(ctx, jetstream.BucketMeta, jetstream.MetaDrainPrefix+"*")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, k := range keys {
		if n := jetstream.DecodeKeyPart(strings.TrimPrefix(k, jetstream.MetaDrainPrefix)); n != "" {
			out[n] = true
		}
	}
	return out, nil
}

// syncDrainMarker makes this node's drain marker match the operator's
// hand: set after Drain, gone otherwise (a drained node that was stopped
// and started again is no longer drained; a node handing over because it
// stops is not marked).
func (o *Ops) syncDrainMarker(ctx context.Context) error {
	k := jetstream.MetaDrainPrefix + jetstream.KeyPart(o.engine.NodeName())
	if o.drained.Load() {
		if _, err := o.engine.Put(ctx, jetstream.BucketMeta, k, []byte(time.Now().UTC().Format(time.RFC3339))); err != nil {
			return fmt.Errorf("mark this node as draining: %w", err)
		}
		return nil
	}
	if _, err := o.engine.Get(ctx, jetstream.BucketMeta, k); err != nil {
		return nil // no marker (or it cannot be read now: next time)
	}
	if err := o.engine.Delete(ctx, jetstream.BucketMeta, k); err != nil {
		return fmt.Errorf("clear this node's drain mark: %w", err)
	}
	return nil
}
