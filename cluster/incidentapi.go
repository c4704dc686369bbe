package cluster

import (
	"context"
	"errors"
	"sort"
	"sync"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/compensation"
	"github.com/planb-chat/planb/incident"
	"github.com/planb-chat/planb/statuspage"
)

// What the incident ledger answers through the APIs: the public status
// page, a user's own incidents and damage reports, and the operator's
// lists, exports and compensation tables.

// statusCacheFor is how long a node reuses the status page it built: the
// page is public and may be asked for often while something is down.
const statusCacheFor = 2 * time.Second

// statusCache is the last status page a node built (derived; kept so
// that a node that cannot read the ledger for a moment still answers with
// what it knew, saying when).
type statusCache struct {
	mu    sync.Mutex
	page  statuspage.Page
	built time.Time
}

// NoteServerError records that a request of user was answered with a
// server error at t (see detector.noteServerError).
func (o *Ops) NoteServerError(user string, t time.Time) { o.incidents.noteServerError(user, t) }

// StatusPage returns the public status page: every data center's health
// now, from its nodes' heartbeats, and the incidents of the last 90 days.
// When the ledger cannot be read it returns the last page built, if any.
func (o *Ops) StatusPage(ctx context.Context) (statuspage.Page, error) {
	c := &o.status
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.built.IsZero() && now.Sub(c.built) < statusCacheFor {
		return c.page, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	page, err := o.buildStatusPage(ctx, now)
	if err != nil {
		if !c.built.IsZero() {
			return c.page, nil
		}
		return statuspage.Page{}, o.unavailable(err)
	}
	c.page, c.built = page, now
	return page, nil
}

func (o *Ops) buildStatusPage(ctx context.Context, now time.Time) (statuspage.Page, error) {
	ps, err := o.incidents.probes(ctx)
	if err != nil {
		return statuspage.Page{}, err
	}
	hb := heartbeats(ps)
	ins, err := o.incidents.ledger.List(ctx)
	if err != nil {
		return statuspage.Page{}, err
	}
	names := make([]string, 0, len(hb))
	for dc := range hb {
		names = append(names, dc)
	}
	sort.Strings(names)
	dcs := make([]statuspage.DataCenter, 0, len(names))
	for _, dc := range names {
		dcs = append(dcs, statuspage.DataCenter{Name: dc, LastCommit: hb[dc], Ready: now.Sub(hb[dc]) <= o.policy.IncidentAfter.Std()})
	}
	for i := range ins {
		ins[i].OpenedBy, ins[i].Reason = "", "" // node names and internals are not public
	}
	return statuspage.Build(now, o.hs.Config().ServerName, dcs, ins), nil
}

// MyIncident is an incident that affected the asking user, with what it
// did to them, what the rule pays them and the reports they filed.
type MyIncident struct {
	Incident     incident.Incident   `json:"incident"`
	Affected     incident.Affected   `json:"affected"`
	Compensation compensation.Result `json:"compensation"`
	Reports      []incident.Report   `json:"reports"`
}

// myIncidentsWithin is how far back a user's own incidents are listed.
const myIncidentsWithin = 90 * 24 * time.Hour

// MyIncidents returns the incidents of the last 90 days that affected
// user, open ones first, then newest first. It reads only the incidents
// the ledger's per-user index names, not the whole ledger.
func (o *Ops) MyIncidents(ctx context.Context, user string) ([]MyIncident, error) {
	l := o.incidents.ledger
	ids, err := l.AffectedBy(ctx, user)
	if err != nil {
		return nil, o.unavailable(err)
	}
	now := time.Now()
	out := []MyIncident{}
	for _, id := range ids {
		in, _, err := l.Get(ctx, id)
		if errors.Is(err, planb.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, o.unavailable(err)
		}
		if !in.Open() && now.Sub(*in.EndedAt) > myIncidentsWithin {
			continue
		}
		a, err := l.Affected(ctx, in.ID, user)
		if errors.Is(err, planb.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, o.unavailable(err)
		}
		reps, err := l.Reports(ctx, incident.ReportFilter{Incident: in.ID, User: user})
		if err != nil {
			return nil, o.unavailable(err)
		}
		if reps == nil {
			reps = []incident.Report{}
		}
		in.OpenedBy, in.Reason = "", ""
		out = append(out, MyIncident{Incident: in, Affected: a, Compensation: o.policy.Compensation.Evaluate(in, a, now), Reports: reps})
	}
	sort.SliceStable(out, func(i, j int) bool { return incident.Before(out[i].Incident, out[j].Incident) })
	return out, nil
}

// CompensationPolicy returns the published compensation rule.
func (o *Ops) CompensationPolicy() compensation.Policy { return o.policy.Compensation }

// FileReport files user's damage report about incident id, which must
// have affected them (M_FORBIDDEN otherwise); the same txnID returns the
// report filed the first time.
func (o *Ops) FileReport(ctx context.Context, user, id, txnID string, in incident.ReportInput) (incident.Report, error) {
	if !incident.ValidID(id) {
		return incident.Report{}, planb.NotFound("no incident %s", id)
	}
	l := o.incidents.ledger
	if _, _, err := l.Get(ctx, id); err != nil {
		return incident.Report{}, o.incidentError(err, id)
	}
	if _, err := l.Affected(ctx, id, user); errors.Is(err, planb.ErrNotFound) {
		return incident.Report{}, planb.Forbidden("incident %s did not affect you, so you cannot report damage for it", id)
	} else if err != nil {
		return incident.Report{}, o.unavailable(err)
	}
	r, _, err := l.FileReport(ctx, id, user, txnID, in, time.Now())
	if err != nil {
		return incident.Report{}, o.incidentError(err, id)
	}
	return r, nil
}

// Incidents returns every incident in the ledger, open first, then newest
// first.
func (o *Ops) Incidents(ctx context.Context) ([]incident.Incident, error) {
	ins, err := o.incidents.ledger.List(ctx)
	if err != nil {
		return nil, o.unavailable(err)
	}
	return ins, nil
}

// IncidentDetail is one incident with every user it affected.
type IncidentDetail struct {
	Incident incident.Incident   `json:"incident"`
	Affected []incident.Affected `json:"affected"`
}

// Incident returns incident id with its affected users.
func (o *Ops) Incident(ctx context.Context, id string) (IncidentDetail, error) {
	if !incident.ValidID(id) {
		return IncidentDetail{}, planb.NotFound("no incident %s", id)
	}
	in, _, err := o.incidents.ledger.Get(ctx, id)
	if err != nil {
		return IncidentDetail{}, o.incidentError(err, id)
	}
	aff, err := o.incidents.ledger.ListAffected(ctx, id)
	if err != nil {
		return IncidentDetail{}, o.unavailable(err)
	}
	if aff == nil {
		aff = []incident.Affected{}
	}
	return IncidentDetail{Incident: in, Affected: aff}, nil
}

// Reports returns the damage reports f selects.
func (o *Ops) Reports(ctx context.Context, f incident.ReportFilter) ([]incident.Report, error) {
	if f.Incident != "" && !incident.ValidID(f.Incident) {
		return nil, planb.InvalidParam("no such incident ID %q", f.Incident)
	}
	rs, err := o.incidents.ledger.Reports(ctx, f)
	if err != nil {
		return nil, o.unavailable(err)
	}
	if rs == nil {
		rs = []incident.Report{}
	}
	return rs, nil
}

// SetReportStatus sets a damage report's status.
func (o *Ops) SetReportStatus(ctx context.Context, reportID, status string) (incident.Report, error) {
	r, err := o.incidents.ledger.SetReportStatus(ctx, reportID, status, time.Now())
	if err != nil {
		if _, ok := planb.AsError(err); ok {
			return incident.Report{}, err
		}
		return incident.Report{}, o.unavailable(err)
	}
	return r, nil
}

// Compensation evaluates the compensation rule for every user incident
// id affected.
func (o *Ops) Compensation(ctx context.Context, id string) ([]compensation.Result, error) {
	d, err := o.Incident(ctx, id)
	if err != nil {
		return nil, err
	}
	rs := o.policy.Compensation.Table(d.Incident, d.Affected, time.Now())
	if rs == nil {
		rs = []compensation.Result{}
	}
	return rs, nil
}
