package statuspage

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/planb-chat/planb/incident"
)

// maxHistory is how many ended incidents the HTML lists; the JSON has
// them all. It keeps the page small when a partition flaps.
const maxHistory = 100

//go:embed page.html.tmpl
var pageSource string

// pageTemplate is parsed once; html/template escapes every value for its
// context, so names and IDs can hold anything.
var pageTemplate = template.Must(template.New("page").Parse(pageSource))

// kst is Korea Standard Time, UTC+9 with no daylight saving.
var kst = time.FixedZone("KST", 9*60*60)

// view is what the template renders: the page put into words of one
// language.
type view struct {
	T          *messages
	Other      *messages // the language the switch link offers
	ServerName string
	State      string // "ok", "down" or "degraded": the header's colour
	Headline   string
	Subline    string
	Generated  string
	DCs        []dcView
	Open       []incidentView
	Uptime90   string
	Bars       []barView
	History    []incidentView
	More       string
}

type dcView struct {
	Name      string
	Class     string
	State     string
	Heartbeat string
}

type barView struct {
	Class string
	Title string
}

type incidentView struct {
	T             *messages
	ID            string
	Open          bool
	Kind          string
	Drill         bool
	Started       string
	Ended         string
	Duration      string
	DataCenters   string
	AffectedUsers string
	Rooms         string
	Partitions    string
}

// WriteHTML writes the page as HTML in lang, "ko" or "en"; it returns an
// error for another language or when w fails.
func (p Page) WriteHTML(w io.Writer, lang string) error {
	t, ok := texts[lang]
	if !ok {
		return fmt.Errorf("write status page: unsupported language %q", lang)
	}
	if err := pageTemplate.Execute(w, p.view(t)); err != nil {
		return fmt.Errorf("write status page: %w", err)
	}
	return nil
}

func (p Page) view(t *messages) view {
	now := p.GeneratedAt
	v := view{T: t, Other: texts["en"], ServerName: p.ServerName, State: "ok", Headline: t.AllWell,
		Generated: formatTime(now, t, true)}
	if t.Lang == "en" {
		v.Other = texts["ko"]
	}

	for _, dc := range p.DataCenters {
		d := dcView{Name: dc.Name, Class: "ok", State: t.Ready, Heartbeat: t.Never}
		if !dc.Ready {
			d.Class, d.State = "down", t.NotReady
		}
		if !dc.LastCommit.IsZero() {
			d.Heartbeat = fmt.Sprintf(t.AgoFmt, formatDuration(now.Sub(dc.LastCommit), t))
		}
		v.DCs = append(v.DCs, d)
	}

	drillsOnly, more := true, 0
	for _, in := range p.Incidents {
		switch {
		case in.Open():
			v.Open = append(v.Open, incidentFor(in, now, t))
			drillsOnly = drillsOnly && in.Drill
		case len(v.History) == maxHistory:
			more++
		default:
			v.History = append(v.History, incidentFor(in, now, t))
		}
	}
	if more > 0 {
		v.More = fmt.Sprintf(t.MoreFmt, more)
	}
	switch {
	case p.AllWell():
	case len(v.Open) > 0:
		v.State, v.Headline = "down", t.Outage
		if drillsOnly {
			v.Subline = t.DrillsOnly
		}
	default:
		v.State, v.Headline = "degraded", t.Degraded
	}

	var up, total float64
	for _, d := range p.Days {
		length := dayLength(d.Date, now).Seconds()
		up += d.UptimePercent * length
		total += length
		v.Bars = append(v.Bars, barView{
			Class: uptimeClass(d.UptimePercent),
			Title: fmt.Sprintf(t.DayFmt, d.Date, formatPercent(d.UptimePercent), countIncidents(d.Incidents, t)),
		})
	}
	v.Uptime90 = "100"
	if total > 0 {
		v.Uptime90 = formatPercent(up / total)
	}
	v.Uptime90 += "%"
	return v
}

func incidentFor(in incident.Incident, now time.Time, t *messages) incidentView {
	v := incidentView{
		T:             t,
		ID:            in.ID,
		Open:          in.Open(),
		Kind:          t.Kinds[in.Kind],
		Drill:         in.Drill,
		Started:       formatTime(in.StartedAt, t, false),
		Duration:      formatDuration(in.Duration(now), t),
		AffectedUsers: fmt.Sprintf(t.UsersFmt, groupDigits(in.AffectedUsers)),
	}
	if v.Kind == "" {
		v.Kind = string(in.Kind)
	}
	if in.EndedAt != nil {
		v.Ended = formatTime(*in.EndedAt, t, false)
	} else {
		v.Duration = fmt.Sprintf(t.SoFarFmt, v.Duration)
	}
	if len(in.DataCenters) > 0 {
		v.DataCenters = strings.Join(in.DataCenters, ", ")
	}
	if in.Rooms > 0 {
		v.Rooms = fmt.Sprintf(t.RoomsFmt, groupDigits(in.Rooms))
	}
	if len(in.Partitions) > 0 {
		ps := make([]string, len(in.Partitions))
		for i, n := range in.Partitions {
			ps[i] = strconv.Itoa(n)
		}
		v.Partitions = strings.Join(ps, ", ")
	}
	return v
}

// countIncidents spells "n incidents" in t's language.
func countIncidents(n int, t *messages) string {
	if n < 2 {
		return t.Count[max(n, 0)]
	}
	return fmt.Sprintf(t.Count[2], n)
}

// groupDigits spells n with thousands separators: 12,345.
func groupDigits(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	if neg {
		s = "-" + s
	}
	return s
}

// dayLength is how much of the UTC day date had passed by now.
func dayLength(date string, now time.Time) time.Duration {
	start, err := time.Parse(time.DateOnly, date)
	if err != nil {
		return day
	}
	return max(min(now.Sub(start), day), 0)
}

// uptimeClass is the colour of a day in the strip.
func uptimeClass(pct float64) string {
	switch {
	case pct >= 100:
		return "up"
	case pct >= 99:
		return "minor"
	case pct >= 95:
		return "major"
	default:
		return "out"
	}
}

// formatPercent spells pct with two decimals, never rounding a day that
// lost any time up to "100.00".
func formatPercent(pct float64) string {
	if pct >= 100 {
		return "100"
	}
	s := strconv.FormatFloat(pct, 'f', 2, 64)
	if s == "100.00" {
		return "99.99"
	}
	return s
}

// formatTime spells t in UTC with the zone stated, and for Korean also in
// KST: "2026-03-01 20:05 UTC (KST 03-02 05:05)".
func formatTime(t time.Time, m *messages, seconds bool) string {
	clock := "15:04"
	if seconds {
		clock = "15:04:05"
	}
	u := t.UTC()
	s := u.Format(time.DateOnly+" "+clock) + " UTC"
	if m.Localtime {
		k := t.In(kst)
		if k.YearDay() == u.YearDay() {
			s += " (KST " + k.Format(clock) + ")"
		} else {
			s += " (KST " + k.Format("01-02 "+clock) + ")"
		}
	}
	return s
}

// formatDuration spells d with its two largest units, "3분 12초" or
// "3m 12s"; the second is left out when zero.
func formatDuration(d time.Duration, m *messages) string {
	s := int64(max(d, 0) / time.Second)
	parts := [4]int64{s / 86400, s % 86400 / 3600, s % 3600 / 60, s % 60}
	for i, n := range parts {
		if n == 0 && i < len(parts)-1 {
			continue
		}
		out := strconv.FormatInt(n, 10) + m.Units[i]
		if i+1 < len(parts) && parts[i+1] != 0 {
			out += " " + strconv.FormatInt(parts[i+1], 10) + m.Units[i+1]
		}
		return out
	}
	return ""
}
