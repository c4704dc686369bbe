package cluster

import (
	"context"
	"sort"
	"time"

	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
)

// heartbeatHealthy is how recent a node's last committed probe must be.
const heartbeatHealthy = 10 * time.Second

// Status reports every node's heartbeat (the write probe each node
// commits every second, see homeserver) and every stream's leader.
func (o *Ops) Status(ctx context.Context) (*adminapi.ClusterStatus, error) {
	out := &adminapi.ClusterStatus{This: o.hs.Status(), Draining: o.hs.Draining()}
	keys, err := o.engine.Keys(ctx, jetstream.BucketMeta, jetstream.MetaProbePrefix+"*")
	if err != nil {
		return nil, o.unavailable(err)
	}
	dcOf := map[string]string{}
	for _, k := range keys {
		e, err := o.engine.Get(ctx, jetstream.BucketMeta, k)
		if err != nil {
			continue
		}
		dc, node := jetstream.ParseProbeKey(k)
		pr, _ := jetstream.ParseProbe(e.Value)
		t := pr.At
		age := time.Since(t)
		out.DataCenters = append(out.DataCenters, adminapi.NodeHeartbeat{DataCenter: dc, Node: node, LastCommit: t,
			AgeSeconds: age.Round(time.Millisecond).Seconds(), Healthy: age < heartbeatHealthy})
		dcOf[node] = dc
	}
	sort.Slice(out.DataCenters, func(i, j int) bool { return out.DataCenters[i].DataCenter < out.DataCenters[j].DataCenter })
	for _, name := range o.engine.StreamNames() {
		st := adminapi.StreamStatus{Name: name}
		ci, err := o.streamCluster(ctx, name)
		if err != nil {
			st.Error = err.Error()
		} else {
			st.Reachable, st.Leader, st.LeaderDC = true, ci.Leader, dcOf[ci.Leader]
			for _, r := range ci.Replicas {
				st.Replicas = append(st.Replicas, adminapi.ReplicaStatus{Node: r.Name, Current: r.Current, Lag: r.Lag, Offline: r.Offline})
			}
		}
		out.Streams = append(out.Streams, st)
	}
	return out, nil
}
