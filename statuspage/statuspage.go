// Package statuspage renders planb's public status page: the health of
// every data center now, the open incidents, and 90 days of history with
// the uptime of each day. Every data center serves it (GET /status as HTML
// in Korean or English, GET /status.json), so while one is down the others
// still tell its story. The page is self-contained: inline CSS, no script,
// nothing loaded from anywhere.
package statuspage

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/planb-chat/planb/incident"
)

// HistoryDays is how many days the page covers, today included.
const HistoryDays = 90

const day = 24 * time.Hour

// DataCenter is one data center's health now.
type DataCenter struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
	// LastCommit is the last heartbeat any of its nodes committed (zero:
	// never).
	LastCommit time.Time `json:"last_commit"`
}

// Day is one UTC day of the history.
type Day struct {
	// Date is YYYY-MM-DD, UTC.
	Date string `json:"date"`
	// UptimePercent is the share of the day (up to now for today) not
	// inside a non-drill incident, 0-100.
	UptimePercent float64 `json:"uptime_percent"`
	// Incidents is how many incidents overlap the day, drills included.
	Incidents int `json:"incidents"`
}

// Page is everything the status page shows, as of GeneratedAt.
type Page struct {
	ServerName  string       `json:"server_name"`
	GeneratedAt time.Time    `json:"generated_at"`
	DataCenters []DataCenter `json:"datacenters"`
	// Incidents are open ones first, then newest first; only those
	// overlapping the last HistoryDays days.
	Incidents []incident.Incident `json:"incidents"`
	// Days are HistoryDays entries, oldest first, ending today.
	Days []Day `json:"days"`
}

// Build returns the page as of now for the data centers dcs (kept in the
// order given) and the incidents of the ledger. Times are converted to
// UTC; the inputs are copied, not retained.
//
// Uptime counts every non-drill incident against the service (all its
// kinds impair it: a data center lost, a partition unable to take
// writes); overlapping incidents count once, and open ones count up to
// now. An incident whose start lies after now (a clock ahead of ours)
// counts from now.
func Build(now time.Time, serverName string, dcs []DataCenter, incidents []incident.Incident) Page {
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	from := today.AddDate(0, 0, -(HistoryDays - 1))

	p := Page{
		ServerName:  serverName,
		GeneratedAt: now,
		DataCenters: make([]DataCenter, 0, len(dcs)),
		Incidents:   []incident.Incident{},
		Days:        make([]Day, 0, HistoryDays),
	}
	for _, dc := range dcs {
		dc.LastCommit = dc.LastCommit.UTC()
		p.DataCenters = append(p.DataCenters, dc)
	}
	for _, in := range incidents {
		start, end := span(in, now)
		// An incident that starts inside the window overlaps it even when
		// it lasted no time at all.
		if !end.After(from) && start.Before(from) {
			continue
		}
		p.Incidents = append(p.Incidents, normalize(in))
	}
	slices.SortStableFunc(p.Incidents, func(a, b incident.Incident) int {
		if a.Open() != b.Open() {
			if a.Open() {
				return -1
			}
			return 1
		}
		if c := b.StartedAt.Compare(a.StartedAt); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})

	down := downtime(p.Incidents, from, now)
	for i := range HistoryDays {
		start := from.AddDate(0, 0, i)
		next := start.Add(day)
		end := earliest(next, now)
		d := Day{Date: start.Format(time.DateOnly), UptimePercent: 100}
		if length := end.Sub(start); length > 0 {
			var lost time.Duration
			for _, iv := range down {
				lost += max(earliest(iv.To, end).Sub(latest(iv.From, start)), 0)
			}
			d.UptimePercent = 100 * float64(length-lost) / float64(length)
		}
		for _, in := range p.Incidents {
			s, e := span(in, now)
			// An open incident goes on into today even at midnight.
			if s.Before(next) && (e.After(start) || !s.Before(start) || in.Open()) {
				d.Incidents++
			}
		}
		p.Days = append(p.Days, d)
	}
	return p
}

// span is when in started and ended (now while it is open); the end is
// never before the start.
func span(in incident.Incident, now time.Time) (start, end time.Time) {
	end = now
	if in.EndedAt != nil {
		end = *in.EndedAt
	}
	return in.StartedAt, latest(end, in.StartedAt)
}

// normalize copies in with its times in UTC and its slices its own, so the
// page neither aliases the caller's incidents nor encodes a missing list
// of data centers as null.
func normalize(in incident.Incident) incident.Incident {
	in.StartedAt = in.StartedAt.UTC()
	if in.EndedAt != nil {
		end := in.EndedAt.UTC()
		in.EndedAt = &end
	}
	in.DataCenters = append([]string{}, in.DataCenters...)
	in.Partitions = slices.Clone(in.Partitions)
	return in
}

// downtime is the time inside non-drill incidents between from and now,
// as sorted, disjoint intervals.
func downtime(incidents []incident.Incident, from, now time.Time) []incident.Interval {
	var ivs []incident.Interval
	for _, in := range incidents {
		if in.Drill {
			continue
		}
		start, end := span(in, now)
		start, end = latest(start, from), earliest(end, now)
		if end.After(start) {
			ivs = append(ivs, incident.Interval{From: start, To: end})
		}
	}
	return incident.Merge(ivs)
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// AllWell reports whether every data center is ready and no incident is
// open.
func (p Page) AllWell() bool {
	for _, dc := range p.DataCenters {
		if !dc.Ready {
			return false
		}
	}
	for _, in := range p.Incidents {
		if in.Open() {
			return false
		}
	}
	return true
}

// WriteJSON writes the page as JSON; it returns the writer's error.
func (p Page) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("write status json: %w", err)
	}
	return nil
}
