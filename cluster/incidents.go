package cluster

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/incident"
	"github.com/planb-chat/planb/jetstream"
)

// Incident detection. Every node looks, every second, at what the
// replicated meta bucket and the engine say about the others: a data center
// none of whose nodes committed its heartbeat for IncidentAfter is lost; a
// partition of the room log without a leader for IncidentAfter is stalled;
// a node that commits heartbeats saying it is not ready (a full disk, a
// long rebuild) for IncidentAfter is an incident too.
// The first node to see it opens the incident in the ledger, the others
// join it (the ledger's open key is created once), and the first to see it
// healed closes it. Only a node that can commit, and has been able to for a
// while, looks at all: a node cut off from the others would see everyone
// else as lost, and one that just came back sees stale heartbeats.
//
// Who was affected, the notices and their follow-ups are the work of one
// node at a time, the leader of the incidents bucket's stream (see
// incidentLead in notices.go); server errors are recorded by the node that
// answered them.

const (
	// incidentTick is how often a node looks.
	incidentTick = time.Second
	// incidentSettle is how long a node must have been able to commit, and
	// its own heartbeat be fresh, before it judges the others.
	incidentSettle = 5 * time.Second
	// healedAge is how fresh a lost data center's heartbeat must be again
	// for its incident to close.
	healedAge = 3 * time.Second
	// errorGap joins a user's server errors less than this apart into one
	// interval of unavailability.
	errorGap = 5 * time.Second
	// maxErrorUsers bounds the users whose server errors a node keeps
	// before it writes them to the ledger.
	maxErrorUsers = 100_000
	// errorKeep is how long unwritten server errors wait for an incident to
	// be opened (it opens IncidentAfter after the fault).
	errorKeep = time.Minute
)

// detector is one node's incident detection (derived, in memory: a node
// that restarts simply looks again).
type detector struct {
	o      *Ops
	ledger *incident.Ledger
	// canSince is since when this node has been able to commit (zero: it
	// cannot now).
	canSince time.Time
	// stalledSince is since when each partition has had no leader;
	// notReadySince since when each node has said it is not ready.
	stalledSince  map[int]time.Time
	notReadySince map[string]time.Time
	lead          *incidentLead

	// Lock rule: errMu guards errs.
	errMu sync.Mutex
	errs  map[string][]incident.Interval
}

func newDetector(o *Ops) *detector {
	d := &detector{o: o, ledger: incident.NewLedger(o.engine), stalledSince: map[int]time.Time{}, notReadySince: map[string]time.Time{}, errs: map[string][]incident.Interval{}}
	d.lead = newIncidentLead(o, d.ledger)
	return d
}

// run looks every incidentTick until ctx ends.
func (d *detector) run(ctx context.Context) {
	tick := time.NewTicker(incidentTick)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			d.tick(ctx, now)
		}
	}
}

// tick is one look at now.
func (d *detector) tick(ctx context.Context, now time.Time) {
	st := d.o.hs.Status()
	if !st.CanCommit {
		d.canSince = time.Time{}
		return
	}
	if d.canSince.IsZero() {
		d.canSince = now
	}
	if now.Sub(d.canSince) < incidentSettle {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	open, err := d.openIncidents(ctx)
	if err != nil {
		d.o.log.Debug("incidents: cannot read the open incidents", "err", err)
		return
	}
	d.dataCenters(ctx, now, open)
	d.partitions(ctx, now, open)
	d.flushErrors(ctx, now, open)
	if leader, known := d.o.engine.IsStreamLeader(jetstream.BucketStream(jetstream.BucketIncidents)); leader || !known {
		d.lead.tick(ctx, now, open)
	} else {
		d.lead.drop()
	}
}

// openIncident is an open incident and the subject its open key names.
type openIncident struct {
	incident.Incident
	subject string
}

// openIncidents returns the open incidents by kind and subject.
func (d *detector) openIncidents(ctx context.Context) (map[string]openIncident, error) {
	keys, err := d.o.engine.Keys(ctx, jetstream.BucketIncidents, "open.>")
	if err != nil {
		return nil, err
	}
	out := map[string]openIncident{}
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) != 3 {
			continue
		}
		kind, subject := incident.Kind(parts[1]), jetstream.DecodeKeyPart(parts[2])
		in, ok, err := d.ledger.OpenAbout(ctx, kind, subject)
		if err != nil {
			return nil, err
		}
		if ok {
			if in.Kind == "" { // record not written yet: finish opening it
				continue
			}
			out[string(kind)+"/"+subject] = openIncident{in, subject}
		}
	}
	return out, nil
}

// nodeProbe is one node's last heartbeat.
type nodeProbe struct {
	dc, node string
	jetstream.Probe
}

// probes returns every node's last heartbeat, read through the meta
// bucket's leader.
func (d *detector) probes(ctx context.Context) ([]nodeProbe, error) {
	keys, err := d.o.engine.Keys(ctx, jetstream.BucketMeta, jetstream.MetaProbePrefix+"*")
	if err != nil {
		return nil, err
	}
	var out []nodeProbe
	for _, k := range keys {
		e, err := d.o.engine.GetLeader(ctx, jetstream.BucketMeta, k)
		if err != nil {
			if errors.Is(err, planb.ErrNotFound) {
				continue
			}
			return nil, err
		}
		dc, node := jetstream.ParseProbeKey(k)
		p, err := jetstream.ParseProbe(e.Value)
		if err != nil {
			continue
		}
		out = append(out, nodeProbe{dc: dc, node: node, Probe: p})
	}
	return out, nil
}

// heartbeats returns the newest heartbeat of each data center.
func heartbeats(ps []nodeProbe) map[string]time.Time {
	out := map[string]time.Time{}
	for _, p := range ps {
		if p.At.After(out[p.dc]) {
			out[p.dc] = p.At
		}
	}
	return out
}

// drill returns the drill holding the drill lock now, if any.
func (d *detector) drill(ctx context.Context, now time.Time) (string, bool) {
	l, _, err := d.o.drillLock(ctx)
	if err != nil || now.After(l.Expires) {
		return "", false
	}
	return l.ID, true
}

// dataCenters opens an incident for each data center silent for longer
// than IncidentAfter and closes those whose data center is back.
func (d *detector) dataCenters(ctx context.Context, now time.Time, open map[string]openIncident) {
	ps, err := d.probes(ctx)
	if err != nil {
		d.o.log.Debug("incidents: cannot read heartbeats", "err", err)
		return
	}
	hb := heartbeats(ps)
	self := d.o.hs.Config().DataCenter
	if now.Sub(hb[self]) > healedAge {
		return // this node's own heartbeat is not fresh: it cannot judge
	}
	after := d.o.policy.IncidentAfter.Std()
	for dc, last := range hb {
		age := now.Sub(last)
		cur, isOpen := open[string(incident.DataCenterLost)+"/"+dc]
		switch {
		case !isOpen && age > after:
			drillID, drill := d.drill(ctx, now)
			in, opened, err := d.ledger.Open(ctx, incident.Incident{Kind: incident.DataCenterLost, StartedAt: last.UTC(),
				DataCenters: []string{dc}, Drill: drill, DrillID: drillID, OpenedBy: d.o.engine.NodeName()}, dc)
			if err != nil {
				d.o.log.Warn("incidents: cannot open an incident", "datacenter", dc, "err", err)
				continue
			}
			if opened {
				d.o.log.Warn("incident opened: data center lost", "incident", in.ID, "datacenter", dc,
					"silent_for", age.Round(time.Millisecond), "drill", drill)
			}
		case isOpen && age < healedAge:
			if _, err := d.ledger.Close(ctx, cur.ID, cur.subject, now); err != nil {
				d.o.log.Warn("incidents: cannot close an incident", "incident", cur.ID, "err", err)
				continue
			}
			d.o.log.Info("incident closed: data center back", "incident", cur.ID, "datacenter", dc,
				"lasted", now.Sub(cur.StartedAt).Round(time.Millisecond))
		}
	}
	d.notReady(ctx, now, ps, open)
}

// notReady opens an incident for each node that answers heartbeats but has
// said it is not ready for longer than IncidentAfter (a full disk, a long
// rebuild), and closes those ready again or gone (a lost data center is
// its own incident).
func (d *detector) notReady(ctx context.Context, now time.Time, ps []nodeProbe, open map[string]openIncident) {
	after := d.o.policy.IncidentAfter.Std()
	seen := map[string]bool{}
	for _, p := range ps {
		seen[p.node] = true
		cur, isOpen := open[string(incident.NodeNotReady)+"/"+p.node]
		fresh := now.Sub(p.At) < healedAge
		if p.NotReady == "" || !fresh {
			delete(d.notReadySince, p.node)
			if isOpen && (p.NotReady == "" && fresh || now.Sub(p.At) > after) {
				if _, err := d.ledger.Close(ctx, cur.ID, cur.subject, now); err != nil {
					d.o.log.Warn("incidents: cannot close an incident", "incident", cur.ID, "err", err)
				} else {
					d.o.log.Info("incident closed: node ready again", "incident", cur.ID, "node", p.node)
				}
			}
			continue
		}
		since, ok := d.notReadySince[p.node]
		if !ok {
			d.notReadySince[p.node] = now
			continue
		}
		if isOpen || now.Sub(since) <= after {
			continue
		}
		drillID, drill := d.drill(ctx, now)
		in, opened, err := d.ledger.Open(ctx, incident.Incident{Kind: incident.NodeNotReady, StartedAt: since.UTC(),
			DataCenters: []string{p.dc}, Reason: p.NotReady, Drill: drill, DrillID: drillID, OpenedBy: d.o.engine.NodeName()}, p.node)
		if err != nil {
			d.o.log.Warn("incidents: cannot open an incident", "node", p.node, "err", err)
			continue
		}
		if opened {
			d.o.log.Warn("incident opened: node not ready", "incident", in.ID, "node", p.node, "reason", p.NotReady)
		}
	}
	for node := range d.notReadySince {
		if !seen[node] {
			delete(d.notReadySince, node)
		}
	}
}

// partitions opens an incident for each partition without a leader for
// longer than IncidentAfter and closes those that have one again.
func (d *detector) partitions(ctx context.Context, now time.Time, open map[string]openIncident) {
	after := d.o.policy.IncidentAfter.Std()
	// Asked at once: a partition without a leader answers only when the
	// request times out (2 s), which must not hold up the others.
	n := d.o.engine.Partitions()
	infos, errs := make([]*jetstream.ClusterInfo, n), make([]error, n)
	var wg sync.WaitGroup
	for p := range n {
		wg.Go(func() { infos[p], errs[p] = d.o.streamCluster(ctx, jetstream.EventStream(p)) })
	}
	wg.Wait()
	for p := range n {
		ci, err := infos[p], errs[p]
		leaderless := err != nil || ci.Leader == ""
		subject := "p" + strconv.Itoa(p)
		cur, isOpen := open[string(incident.PartitionStalled)+"/"+subject]
		if !leaderless {
			delete(d.stalledSince, p)
			if isOpen {
				if _, err := d.ledger.Close(ctx, cur.ID, cur.subject, now); err != nil {
					d.o.log.Warn("incidents: cannot close an incident", "incident", cur.ID, "err", err)
				} else {
					d.o.log.Info("incident closed: partition has a leader again", "incident", cur.ID, "partition", p)
				}
			}
			continue
		}
		since, ok := d.stalledSince[p]
		if !ok {
			d.stalledSince[p] = now
			continue
		}
		if isOpen || now.Sub(since) <= after {
			continue
		}
		rooms, _ := d.o.hs.Model().PartitionMembers(p)
		drillID, drill := d.drill(ctx, now)
		var dcs []string
		if ci != nil {
			dcs = offlineDataCenters(ci)
		}
		in, opened, err := d.ledger.Open(ctx, incident.Incident{Kind: incident.PartitionStalled, StartedAt: since.UTC(),
			DataCenters: dcs, Partitions: []int{p}, Rooms: rooms, Drill: drill, DrillID: drillID, OpenedBy: d.o.engine.NodeName()}, subject)
		if err != nil {
			d.o.log.Warn("incidents: cannot open an incident", "partition", p, "err", err)
			continue
		}
		if opened {
			d.o.log.Warn("incident opened: partition cannot take writes", "incident", in.ID, "partition", p, "rooms", rooms)
		}
	}
}

// offlineDataCenters names the replicas a stream reports offline (node
// names stand for data centers where nothing better is known).
func offlineDataCenters(ci *jetstream.ClusterInfo) []string {
	var out []string
	for _, r := range ci.Replicas {
		if r.Offline {
			out = append(out, r.Name)
		}
	}
	return out
}

// noteServerError records that a request of user failed with a server
// error at t. It is cheap and never blocks on the engine: the errors are
// written to the ledger at the next tick, if an incident covers them.
func (d *detector) noteServerError(user string, t time.Time) {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	ivs, ok := d.errs[user]
	if !ok && len(d.errs) >= maxErrorUsers {
		return
	}
	if n := len(ivs); n > 0 && t.Sub(ivs[n-1].To) < errorGap {
		if t.After(ivs[n-1].To) {
			ivs[n-1].To = t
		}
	} else {
		ivs = append(ivs, incident.Interval{From: t, To: t.Add(time.Second)})
	}
	d.errs[user] = ivs
}

// flushErrors writes the server errors that fall inside an open incident
// to it, and forgets those no incident covered for errorKeep.
func (d *detector) flushErrors(ctx context.Context, now time.Time, open map[string]openIncident) {
	d.errMu.Lock()
	pending := d.errs
	d.errs = map[string][]incident.Interval{}
	d.errMu.Unlock()
	keep := map[string][]incident.Interval{}
	for user, ivs := range pending {
		for _, iv := range ivs {
			written := false
			for _, in := range open {
				if iv.To.Before(in.StartedAt) {
					continue
				}
				if _, err := d.ledger.AddAffected(ctx, in.ID, user, "", incident.ReasonServerErrors, iv); err != nil {
					d.o.log.Debug("incidents: server errors not recorded", "user", user, "err", err)
					continue
				}
				written = true
			}
			if !written && now.Sub(iv.To) < errorKeep {
				keep[user] = append(keep[user], iv)
			}
		}
	}
	if len(keep) == 0 {
		return
	}
	d.errMu.Lock()
	for user, ivs := range keep {
		d.errs[user] = incident.Merge(append(ivs, d.errs[user]...))
	}
	d.errMu.Unlock()
}
