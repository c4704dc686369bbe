package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/incident"
)

// incidentLead is the work the leader of the incidents bucket's stream
// does for the open and recently closed incidents: recording whose
// sessions a lost data center stranded and when they moved, recording the
// members of a stalled partition's rooms, sending each affected user one
// notice once they have been affected for NoticeAfter, and one follow-up
// when the incident has closed. A new leader (after a failover) reads the
// ledger again and goes on: notices are sent with a transaction ID made
// from the incident and the user, so one sent by the old leader just
// before it was lost is not sent twice, and the Notified / FollowedUp
// marks are set by compare-and-set after the notice was committed.
type incidentLead struct {
	o      *Ops
	ledger *incident.Ledger
	// known holds, per incident, the affected users as last read or
	// written; loaded holds when each was read from the ledger.
	known  map[string]map[string]incident.Affected
	loaded map[string]time.Time
	// closed are incidents that ended with follow-ups perhaps still due,
	// read from the ledger every closedEvery.
	closed     []incident.Incident
	closedRead time.Time
}

const (
	// reloadEvery is how often the leader reads an incident's affected
	// users again (other nodes add users who got server errors).
	reloadEvery = 15 * time.Second
	// closedEvery is how often it looks for closed incidents whose
	// follow-ups are not all sent.
	closedEvery = 5 * time.Second
	// followUpWithin is how long after its end an incident's follow-ups
	// are still sent.
	followUpWithin = 7 * 24 * time.Hour
	// strandedWindow: a user last active at a data center this long before
	// it was lost had a session there.
	strandedWindow = 5 * time.Minute
)

func newIncidentLead(o *Ops, l *incident.Ledger) *incidentLead {
	return &incidentLead{o: o, ledger: l, known: map[string]map[string]incident.Affected{}, loaded: map[string]time.Time{}}
}

// drop forgets what this node knew as leader (another node leads now).
func (l *incidentLead) drop() {
	if len(l.known) > 0 || len(l.closed) > 0 {
		*l = *newIncidentLead(l.o, l.ledger)
	}
}

func (l *incidentLead) tick(ctx context.Context, now time.Time, open map[string]openIncident) {
	for _, in := range open {
		users, err := l.users(ctx, in.ID, now)
		if err != nil {
			l.o.log.Debug("incidents: cannot read affected users", "incident", in.ID, "err", err)
			continue
		}
		switch in.Kind {
		case incident.DataCenterLost, incident.NodeNotReady:
			l.stranded(ctx, in.Incident, users)
		case incident.PartitionStalled:
			l.stalled(ctx, in.Incident, users)
		}
		l.notify(ctx, in.Incident, users, now)
	}
	if now.Sub(l.closedRead) < closedEvery {
		return
	}
	// Every closedEvery: the closed incidents with work left, each read
	// afresh (a writer may have raced the close).
	l.readClosed(ctx, now)
	for i := range l.closed {
		in := &l.closed[i]
		delete(l.loaded, in.ID)
		users, err := l.users(ctx, in.ID, now)
		if err != nil {
			continue
		}
		if l.followUps(ctx, *in, users, now) {
			if _, err := l.ledger.Update(ctx, in.ID, func(in *incident.Incident) bool { in.NoticesDone = true; return true }); err == nil {
				in.NoticesDone = true
				delete(l.known, in.ID)
				delete(l.loaded, in.ID)
			}
		}
	}
}

// users returns incident id's affected users, read from the ledger when
// not read for reloadEvery.
func (l *incidentLead) users(ctx context.Context, id string, now time.Time) (map[string]incident.Affected, error) {
	if m, ok := l.known[id]; ok && now.Sub(l.loaded[id]) < reloadEvery {
		return m, nil
	}
	list, err := l.ledger.ListAffected(ctx, id)
	if err != nil {
		return nil, err
	}
	m := make(map[string]incident.Affected, len(list))
	for _, a := range list {
		m[a.User] = a
	}
	l.known[id], l.loaded[id] = m, now
	return m, nil
}

// stranded records the users whose last activity was at the lost data
// center (affected from the incident's start on) and closes the time of
// those seen at another data center since.
func (l *incidentLead) stranded(ctx context.Context, in incident.Incident, users map[string]incident.Affected) {
	dc := in.DataCenters[0]
	model := l.o.hs.Model()
	since := in.StartedAt.Add(-strandedWindow)
	for _, u := range model.ActiveAt(dc, since) {
		if _, ok := users[u]; ok {
			continue
		}
		a, err := l.ledger.AddAffected(ctx, in.ID, u, dc, incident.ReasonStranded, incident.Interval{From: in.StartedAt})
		if err != nil {
			l.o.log.Debug("incidents: stranded user not recorded", "user", u, "err", err)
			continue
		}
		users[u] = a
	}
	for u, at := range model.MovedFrom(dc, since) {
		a, ok := users[u]
		if ok && !a.Ongoing() {
			continue // moved already recorded
		}
		if at.Before(in.StartedAt) {
			at = in.StartedAt // moved just before the incident was seen
		}
		var err error
		if ok {
			a, err = l.ledger.EndAffected(ctx, in.ID, u, at)
		} else {
			a, err = l.ledger.AddAffected(ctx, in.ID, u, dc, incident.ReasonStranded, incident.Interval{From: in.StartedAt, To: at})
		}
		if err != nil {
			l.o.log.Debug("incidents: move not recorded", "user", u, "err", err)
			continue
		}
		users[u] = a
	}
}

// stalled records the members of the stalled partition's rooms.
func (l *incidentLead) stalled(ctx context.Context, in incident.Incident, users map[string]incident.Affected) {
	for _, p := range in.Partitions {
		_, members := l.o.hs.Model().PartitionMembers(p)
		for _, u := range members {
			if _, ok := users[u]; ok {
				continue
			}
			a, err := l.ledger.AddAffected(ctx, in.ID, u, "", incident.ReasonWritesStalled, incident.Interval{From: in.StartedAt})
			if err != nil {
				l.o.log.Debug("incidents: user of a stalled room not recorded", "user", u, "err", err)
				return
			}
			users[u] = a
		}
	}
}

// noticesFor reports whether incident in sends notices at all.
func (l *incidentLead) noticesFor(in incident.Incident) bool {
	return !in.Drill || l.o.policy.NoticeDrills
}

// notify sends their notice to the users in has affected for longer than
// NoticeAfter.
func (l *incidentLead) notify(ctx context.Context, in incident.Incident, users map[string]incident.Affected, now time.Time) {
	if !l.noticesFor(in) {
		return
	}
	after := l.o.policy.NoticeAfter.Std()
	for u, a := range users {
		if a.Notified || a.Duration(now) <= after {
			continue
		}
		body := noticeText(l.language(u), in, a, now, l.statusURL())
		a, err := l.sendOnce(ctx, in, u, "notice", body, func(a *incident.Affected) *bool { return &a.Notified })
		if err != nil {
			l.o.log.Warn("incidents: notice not done", "incident", in.ID, "user", u, "err", err)
			return
		}
		users[u] = a
	}
}

// sendOnce sends user u the notice of kind ("notice" or "followup") about
// in, with a transaction ID made from both (so that a second send, after a
// failover, returns the first event), then sets the mark that says it was
// sent, by compare-and-set.
func (l *incidentLead) sendOnce(ctx context.Context, in incident.Incident, u, kind, body string, mark func(*incident.Affected) *bool) (incident.Affected, error) {
	if _, err := l.o.hs.ServerNotice(ctx, l.ledger, u, "incident-"+in.ID+"-"+kind, body, noticeFields(in, kind)); err != nil {
		return incident.Affected{}, fmt.Errorf("%s not sent: %w", kind, err)
	}
	a, err := l.ledger.UpdateAffected(ctx, in.ID, u, func(a *incident.Affected) bool {
		if *mark(a) {
			return false
		}
		*mark(a) = true
		return true
	})
	if err != nil {
		return incident.Affected{}, fmt.Errorf("%s sent but not marked: %w", kind, err)
	}
	l.o.m.notices.WithLabelValues(kind).Inc()
	return a, nil
}

// followUps ends the intervals still open of the closed incident in and
// sends the follow-up to every notified user; true when nothing is left
// to do.
func (l *incidentLead) followUps(ctx context.Context, in incident.Incident, users map[string]incident.Affected, now time.Time) bool {
	done := true
	for u, a := range users {
		// Intervals left open by a node that stopped while closing, or by
		// a writer that raced the close, end at the incident's end.
		if a.Ongoing() && in.EndedAt != nil {
			closed, err := l.ledger.EndAffected(ctx, in.ID, u, *in.EndedAt)
			if err != nil {
				done = false
				continue
			}
			users[u], a = closed, closed
		}
		if !a.Notified || a.FollowedUp || !l.noticesFor(in) {
			continue
		}
		body := followUpText(l.language(u), in, a, l.o.policy.Compensation.Evaluate(in, a, now), l.o.policy.Compensation, l.statusURL())
		a, err := l.sendOnce(ctx, in, u, "followup", body, func(a *incident.Affected) *bool { return &a.FollowedUp })
		if err != nil {
			l.o.log.Warn("incidents: follow-up not done", "incident", in.ID, "user", u, "err", err)
			return false
		}
		users[u] = a
	}
	return done
}

// readClosed reads the incidents closed within followUpWithin whose
// follow-ups are not all sent.
func (l *incidentLead) readClosed(ctx context.Context, now time.Time) {
	all, err := l.ledger.List(ctx)
	if err != nil {
		return
	}
	l.closedRead = now
	l.closed = l.closed[:0]
	for _, in := range all {
		if !in.Open() && !in.NoticesDone && now.Sub(*in.EndedAt) < followUpWithin {
			l.closed = append(l.closed, in)
		}
	}
}

// languageType is the account data a client sets to say which language
// the user reads ({"language": "ko"}); the web client's switch sets it.
const languageType = "org.planb.language"

// language returns the language of user's notices.
func (l *incidentLead) language(user string) string {
	raw, err := l.o.hs.Model().AccountData(user, "", languageType)
	if err == nil {
		var c struct {
			Language string `json:"language"`
		}
		if json.Unmarshal(raw, &c) == nil && (c.Language == "ko" || c.Language == "en") {
			return c.Language
		}
	}
	return l.o.policy.NoticeLanguage
}

// statusURL is the status page named in notices.
func (l *incidentLead) statusURL() string {
	cfg := l.o.hs.Config()
	if cfg.PublicBaseURL != "" {
		return cfg.PublicBaseURL + "/status"
	}
	for _, e := range cfg.Endpoints {
		if e.BaseURL != "" {
			return e.BaseURL + "/status"
		}
	}
	return "/status"
}

// noticeFields are the machine-readable fields of a notice.
func noticeFields(in incident.Incident, kind string) map[string]any {
	return map[string]any{"org.planb.incident": map[string]any{"id": in.ID, "kind": string(in.Kind), "notice": kind}}
}

// incidentError turns a ledger error into the answer of an API call.
func (o *Ops) incidentError(err error, id string) error {
	if errors.Is(err, planb.ErrNotFound) {
		return planb.NotFound("no incident %s", id)
	}
	if _, ok := planb.AsError(err); ok {
		return err
	}
	return o.unavailable(fmt.Errorf("incident %s: %w", id, err))
}
