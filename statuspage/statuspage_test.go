package statuspage

import (
	"bytes"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/planb-chat/planb/incident"
)

// now is a Tuesday noon, UTC: today is half over.
var now = time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t
}

func ended(id string, kind incident.Kind, from, to string) incident.Incident {
	end := at(to)
	return incident.Incident{ID: id, Kind: kind, StartedAt: at(from), EndedAt: &end}
}

func open(id string, kind incident.Kind, from string) incident.Incident {
	return incident.Incident{ID: id, Kind: kind, StartedAt: at(from)}
}

func drill(in incident.Incident) incident.Incident {
	in.Drill = true
	in.DrillID = "drill-" + in.ID
	return in
}

func ids(ins []incident.Incident) []string {
	var out []string
	for _, in := range ins {
		out = append(out, in.ID)
	}
	return out
}

func TestBuildOrdersAndFiltersIncidents(t *testing.T) {
	// The window starts 89 days before today: 2025-12-11 00:00 UTC.
	in := []incident.Incident{
		ended("old", incident.DataCenterLost, "2025-11-01 10:00", "2025-11-01 11:00"),
		ended("to-window-start", incident.DataCenterLost, "2025-12-10 23:00", "2025-12-11 00:00"),
		ended("into-window", incident.DataCenterLost, "2025-12-10 23:00", "2025-12-11 00:01"),
		ended("mid", incident.PartitionStalled, "2026-02-01 08:00", "2026-02-01 08:05"),
		open("open-old", incident.PartitionStalled, "2025-10-01 00:00"),
		ended("recent", incident.DataCenterLost, "2026-03-09 08:00", "2026-03-09 09:00"),
		open("open-new", incident.DataCenterLost, "2026-03-10 11:00"),
		ended("instant", incident.PartitionStalled, "2025-12-11 00:00", "2025-12-11 00:00"),
	}
	before := slices.Clone(in)
	p := Build(now, "hs", nil, in)

	want := []string{"open-new", "open-old", "recent", "mid", "instant", "into-window"}
	if got := ids(p.Incidents); !slices.Equal(got, want) {
		t.Errorf("incidents = %v, want %v", got, want)
	}
	if !slices.EqualFunc(in, before, func(a, b incident.Incident) bool { return a.ID == b.ID }) {
		t.Errorf("Build reordered its input: %v", ids(in))
	}
	*p.Incidents[2].EndedAt = time.Time{}
	if in[5].EndedAt.IsZero() {
		t.Error("the page aliases the caller's EndedAt")
	}
	if len(p.Days) != HistoryDays {
		t.Fatalf("%d days, want %d", len(p.Days), HistoryDays)
	}
	if p.Days[0].Date != "2025-12-11" || p.Days[HistoryDays-1].Date != "2026-03-10" {
		t.Errorf("days run from %s to %s", p.Days[0].Date, p.Days[HistoryDays-1].Date)
	}
	if p.DataCenters == nil || p.Incidents == nil {
		t.Error("empty lists are nil (they would encode as null)")
	}
}

func TestBuildUptime(t *testing.T) {
	type want struct {
		uptime    float64
		incidents int
	}
	kstStart := at("2026-03-05 22:00").In(time.FixedZone("KST", 9*3600))
	kstEnd := at("2026-03-06 02:00").In(time.FixedZone("KST", 9*3600))
	for _, tc := range []struct {
		name      string
		now       time.Time
		incidents []incident.Incident
		want      map[string]want // days not listed: 100%, no incident
	}{
		{
			name:      "spanning midnight",
			incidents: []incident.Incident{ended("a", incident.DataCenterLost, "2026-03-05 22:00", "2026-03-06 02:00")},
			want:      map[string]want{"2026-03-05": {100 * 22.0 / 24, 1}, "2026-03-06": {100 * 22.0 / 24, 1}},
		},
		{
			name:      "times in another zone count on UTC days",
			incidents: []incident.Incident{{ID: "a", Kind: incident.DataCenterLost, StartedAt: kstStart, EndedAt: &kstEnd}},
			want:      map[string]want{"2026-03-05": {100 * 22.0 / 24, 1}, "2026-03-06": {100 * 22.0 / 24, 1}},
		},
		{
			name: "overlapping incidents count once",
			incidents: []incident.Incident{
				ended("a", incident.DataCenterLost, "2026-03-05 10:00", "2026-03-05 12:00"),
				ended("b", incident.PartitionStalled, "2026-03-05 11:00", "2026-03-05 14:00"),
				ended("c", incident.PartitionStalled, "2026-03-05 11:30", "2026-03-05 11:45"),
			},
			want: map[string]want{"2026-03-05": {100 * 20.0 / 24, 3}},
		},
		{
			name: "drills do not count against uptime",
			incidents: []incident.Incident{
				drill(ended("a", incident.DataCenterLost, "2026-03-05 10:00", "2026-03-05 12:00")),
				drill(ended("b", incident.PartitionStalled, "2026-03-07 10:00", "2026-03-07 12:00")),
				ended("c", incident.PartitionStalled, "2026-03-07 11:00", "2026-03-07 13:00"),
			},
			want: map[string]want{"2026-03-05": {100, 1}, "2026-03-07": {100 * 22.0 / 24, 2}},
		},
		{
			name:      "an open incident counts up to now",
			incidents: []incident.Incident{open("a", incident.DataCenterLost, "2026-03-09 18:00")},
			want:      map[string]want{"2026-03-09": {75, 1}, "2026-03-10": {0, 1}},
		},
		{
			name:      "today is counted up to now",
			incidents: []incident.Incident{ended("a", incident.DataCenterLost, "2026-03-10 09:00", "2026-03-10 10:00")},
			want:      map[string]want{"2026-03-10": {100 * 11.0 / 12, 1}},
		},
		{
			name:      "an incident older than the window counts where it overlaps",
			incidents: []incident.Incident{ended("a", incident.DataCenterLost, "2025-12-10 12:00", "2025-12-11 06:00")},
			want:      map[string]want{"2025-12-11": {75, 1}},
		},
		{
			name:      "an incident ended after now (a clock ahead) counts up to now",
			incidents: []incident.Incident{ended("a", incident.DataCenterLost, "2026-03-10 06:00", "2026-03-10 18:00")},
			want:      map[string]want{"2026-03-10": {50, 1}},
		},
		{
			name:      "at midnight today has no length yet",
			now:       at("2026-03-10 00:00"),
			incidents: []incident.Incident{open("a", incident.DataCenterLost, "2026-03-09 12:00")},
			want:      map[string]want{"2026-03-09": {50, 1}, "2026-03-10": {100, 1}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := now
			if !tc.now.IsZero() {
				n = tc.now
			}
			p := Build(n, "hs", nil, tc.incidents)
			seen := 0
			for _, d := range p.Days {
				w, ok := tc.want[d.Date]
				if !ok {
					w = want{100, 0}
				} else {
					seen++
				}
				if math.Abs(d.UptimePercent-w.uptime) > 1e-9 || d.Incidents != w.incidents {
					t.Errorf("%s: uptime %.6f%%, %d incidents; want %.6f%%, %d", d.Date, d.UptimePercent, d.Incidents, w.uptime, w.incidents)
				}
			}
			if seen != len(tc.want) {
				t.Errorf("only %d of the %d expected days are on the page", seen, len(tc.want))
			}
		})
	}
}

func TestFormatDuration(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		ko, en string
	}{
		{0, "0초", "0s"},
		{-time.Second, "0초", "0s"},
		{59*time.Second + 900*time.Millisecond, "59초", "59s"},
		{3*time.Minute + 12*time.Second, "3분 12초", "3m 12s"},
		{time.Hour, "1시간", "1h"},
		{time.Hour + 30*time.Second, "1시간", "1h"},
		{3*time.Hour + 5*time.Minute + 9*time.Second, "3시간 5분", "3h 5m"},
		{27 * time.Hour, "1일 3시간", "1d 3h"},
	} {
		if got := formatDuration(tc.d, texts["ko"]); got != tc.ko {
			t.Errorf("ko %v = %q, want %q", tc.d, got, tc.ko)
		}
		if got := formatDuration(tc.d, texts["en"]); got != tc.en {
			t.Errorf("en %v = %q, want %q", tc.d, got, tc.en)
		}
	}
}

// samplePage has one data center down, an open incident of 3m 12s, an
// ended partition stall and an ended drill.
func samplePage() Page {
	return Build(now, "matrix.example", []DataCenter{
		{Name: "seoul", Ready: true, LastCommit: now.Add(-2 * time.Second)},
		{Name: "busan", Ready: false, LastCommit: now.Add(-192 * time.Second)},
		{Name: "daejeon", Ready: true},
	}, []incident.Incident{
		func() incident.Incident {
			in := open("inc-open", incident.DataCenterLost, "2026-03-10 11:56")
			in.StartedAt = in.StartedAt.Add(48 * time.Second)
			in.DataCenters = []string{"busan"}
			in.AffectedUsers = 1234
			return in
		}(),
		ended("inc-stall", incident.PartitionStalled, "2026-03-09 22:00", "2026-03-09 23:00"),
		drill(ended("inc-drill", incident.DataCenterLost, "2026-02-01 10:00", "2026-02-01 10:30")),
	})
}

func render(t *testing.T, p Page, lang string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := p.WriteHTML(&buf, lang); err != nil {
		t.Fatalf("WriteHTML(%s): %v", lang, err)
	}
	return buf.String()
}

func TestWriteHTMLLanguages(t *testing.T) {
	for _, tc := range []struct {
		lang          string
		want, notWant []string
	}{
		{"ko", []string{
			`<html lang="ko">`, `href="?lang=en"`, "서비스 상태", "장애 발생 중", "진행 중인 장애",
			"데이터센터 중단", "파티션 쓰기 중단", "훈련", "3분 12초째 진행 중", "1,234명", "1시간",
			"마지막 하트비트: 3분 12초 전", "기록 없음", "2026-03-10 11:56 UTC (KST 20:56)",
			"2026-03-09 22:00 UTC (KST 03-10 07:00)", texts["ko"].Rule, "비정상",
		}, []string{"Outage", "모든 데이터센터 정상"}},
		{"en", []string{
			`<html lang="en">`, `href="?lang=ko"`, "Service status", "Outage in progress", "Open incidents",
			"Data center lost", "Partition writes stalled", "Drill", "3m 12s so far", "1,234", "1h",
			"Last heartbeat: 3m 12s ago", "never", "2026-03-10 11:56 UTC", texts["en"].Rule, "Not ready",
		}, []string{"KST", "장애", "All data centers operational"}},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			out := render(t, samplePage(), tc.lang)
			for _, s := range append(tc.want,
				`<meta name="viewport" content="width=device-width, initial-scale=1">`,
				`<meta http-equiv="refresh" content="30">`, "inc-open", "inc-stall", "inc-drill", "busan") {
				if !strings.Contains(out, s) {
					t.Errorf("page lacks %q", s)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(out, s) {
					t.Errorf("page has %q", s)
				}
			}
			if n := strings.Count(out, `<span class="up" title=`); n != HistoryDays-2 {
				t.Errorf("%d days at 100%% in the strip, want %d", n, HistoryDays-2)
			}
		})
	}
}

func TestWriteHTMLHeadline(t *testing.T) {
	dcs := []DataCenter{{Name: "seoul", Ready: true, LastCommit: now}, {Name: "busan", Ready: true, LastCommit: now}}
	for _, tc := range []struct {
		name   string
		dcs    []DataCenter
		in     []incident.Incident
		ko, en string
	}{
		{"all well", dcs, []incident.Incident{ended("a", incident.DataCenterLost, "2026-03-09 08:00", "2026-03-09 09:00")},
			"모든 데이터센터 정상", "All data centers operational"},
		{"data center not ready", []DataCenter{dcs[0], {Name: "busan"}}, nil,
			"일부 데이터센터 비정상", "Some data centers are not ready"},
		{"open drill", dcs, []incident.Incident{drill(open("a", incident.DataCenterLost, "2026-03-10 11:00"))},
			texts["ko"].DrillsOnly, texts["en"].DrillsOnly},
		{"open incident", dcs, []incident.Incident{open("a", incident.PartitionStalled, "2026-03-10 11:00")},
			"장애 발생 중", "Outage in progress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Build(now, "hs", tc.dcs, tc.in)
			if got := p.AllWell(); got != (tc.name == "all well") {
				t.Errorf("AllWell = %v", got)
			}
			if out := render(t, p, "ko"); !strings.Contains(out, tc.ko) {
				t.Errorf("Korean page lacks %q", tc.ko)
			}
			if out := render(t, p, "en"); !strings.Contains(out, tc.en) {
				t.Errorf("English page lacks %q", tc.en)
			}
		})
	}
}

func TestWriteHTMLUnsupportedLanguage(t *testing.T) {
	var buf bytes.Buffer
	if err := samplePage().WriteHTML(&buf, "fr"); err == nil {
		t.Fatal("WriteHTML(fr) succeeded")
	}
}

func TestWriteHTMLEscapesEverything(t *testing.T) {
	const hostile = `<script>alert("x")</script>'"&<img src=x>`
	end := now.Add(-time.Hour)
	p := Build(now, hostile, []DataCenter{{Name: hostile, Ready: false, LastCommit: now}}, []incident.Incident{
		{ID: hostile, Kind: incident.Kind(hostile), StartedAt: now.Add(-time.Minute), DataCenters: []string{hostile}},
		{ID: hostile, Kind: incident.DataCenterLost, StartedAt: now.Add(-2 * time.Hour), EndedAt: &end, DataCenters: []string{hostile}},
	})
	for _, lang := range []string{"ko", "en"} {
		out := render(t, p, lang)
		if strings.Contains(out, "<script") || strings.Contains(out, "<img") {
			t.Errorf("%s: hostile markup is in the page unescaped", lang)
		}
		doc, err := html.Parse(strings.NewReader(out))
		if err != nil {
			t.Fatalf("%s: parse: %v", lang, err)
		}
		var texts, styles []string
		var walk func(n *html.Node)
		walk = func(n *html.Node) {
			if n.Type == html.ElementNode {
				switch n.Data {
				case "script", "img", "link", "iframe", "object", "embed", "form", "input":
					t.Errorf("%s: page has a <%s> element", lang, n.Data)
				case "style":
					styles = append(styles, n.FirstChild.Data)
				}
				for _, a := range n.Attr {
					if a.Key == "src" || strings.HasPrefix(a.Key, "on") || a.Key == "style" {
						t.Errorf("%s: <%s> has attribute %s", lang, n.Data, a.Key)
					}
					if a.Key == "href" && !strings.HasPrefix(a.Val, "?lang=") && a.Val != "status.json" {
						t.Errorf("%s: link to %q", lang, a.Val)
					}
				}
			}
			if n.Type == html.TextNode {
				texts = append(texts, n.Data)
			}
			for c := n.FirstChild; c != nil; c = c.NextSibling {
				walk(c)
			}
		}
		walk(doc)
		// The server name (title, nav), the data center, the open
		// incident's kind, and both incidents' IDs and data centers.
		n := 0
		for _, s := range texts {
			n += strings.Count(s, hostile)
		}
		if n != 8 {
			t.Errorf("%s: the hostile string reads back %d times from the text, want 8", lang, n)
		}
		for _, s := range styles {
			if strings.Contains(s, "url(") || strings.Contains(s, "@import") || strings.Contains(s, "@font-face") {
				t.Errorf("%s: the style sheet loads something", lang)
			}
		}
	}
}

func TestWriteHTMLCapsHistory(t *testing.T) {
	var in []incident.Incident
	for i := range maxHistory + 5 {
		start := now.Add(-time.Duration(i+1) * time.Hour)
		end := start.Add(time.Minute)
		in = append(in, incident.Incident{ID: "inc", Kind: incident.PartitionStalled, StartedAt: start, EndedAt: &end})
	}
	p := Build(now, "hs", nil, in)
	if len(p.Incidents) != maxHistory+5 {
		t.Fatalf("%d incidents on the page, want all %d", len(p.Incidents), maxHistory+5)
	}
	out := render(t, p, "en")
	if n := strings.Count(out, "<article>"); n != maxHistory {
		t.Errorf("%d incidents listed, want %d", n, maxHistory)
	}
	if !strings.Contains(out, "5 earlier incidents are in status.json.") {
		t.Error("the page does not say where the rest are")
	}
}

func TestWriteJSONFieldNames(t *testing.T) {
	var buf bytes.Buffer
	if err := samplePage().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatalf("decode: %v", err)
	}
	hasKeys := func(what string, v any, keys ...string) map[string]any {
		t.Helper()
		obj, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, not an object", what, v)
		}
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s lacks %q (has %v)", what, k, obj)
			}
		}
		return obj
	}
	list := func(what string, v any, n int) []any {
		t.Helper()
		l, ok := v.([]any)
		if !ok || len(l) != n {
			t.Fatalf("%s = %v, want a list of %d", what, v, n)
		}
		return l
	}
	hasKeys("page", m, "server_name", "generated_at", "datacenters", "incidents", "days")
	if m["server_name"] != "matrix.example" || m["generated_at"] != "2026-03-10T12:00:00Z" {
		t.Errorf("server_name, generated_at = %v, %v", m["server_name"], m["generated_at"])
	}
	for _, dc := range list("datacenters", m["datacenters"], 3) {
		hasKeys("datacenter", dc, "name", "ready", "last_commit")
	}
	if dc := m["datacenters"].([]any)[1].(map[string]any); dc["name"] != "busan" || dc["ready"] != false ||
		dc["last_commit"] != "2026-03-10T11:56:48Z" {
		t.Errorf("datacenters[1] = %v", dc)
	}
	incs := list("incidents", m["incidents"], 3)
	for _, in := range incs {
		hasKeys("incident", in, "id", "kind", "started_at", "ended_at", "datacenters", "affected_users", "drill")
	}
	first := incs[0].(map[string]any)
	if first["id"] != "inc-open" || first["kind"] != "datacenter_lost" || first["ended_at"] != nil ||
		first["affected_users"] != 1234.0 || first["drill"] != false {
		t.Errorf("incidents[0] = %v", first)
	}
	if dcs, ok := incs[1].(map[string]any)["datacenters"].([]any); !ok || len(dcs) != 0 {
		t.Errorf("incidents[1].datacenters = %v, want []", incs[1].(map[string]any)["datacenters"])
	}
	days := list("days", m["days"], HistoryDays)
	for _, d := range days {
		hasKeys("day", d, "date", "uptime_percent", "incidents")
	}
	if last := days[HistoryDays-1].(map[string]any); last["date"] != "2026-03-10" || last["incidents"] != 1.0 {
		t.Errorf("days[-1] = %v", last)
	}
}

func TestLang(t *testing.T) {
	for _, tc := range []struct {
		query, accept, want string
	}{
		{"", "", "ko"},
		{"lang=en", "ko-KR", "en"},
		{"lang=EN", "", "en"},
		{"lang=ko", "en-US,en;q=0.9", "ko"},
		{"lang=fr", "en-US,en;q=0.9", "en"},
		{"lang=fr", "", "ko"},
		{"", "en-US,en;q=0.9,ko;q=0.8", "en"},
		{"", "fr-FR,fr;q=0.9,ko;q=0.8,en;q=0.7", "ko"},
		{"", "ko;q=0.5, en;q=0.8", "en"},
		{"", "en;q=0, ko;q=0.1", "ko"},
		{"", "de, *;q=0.5", "ko"},
		{"", "ja, EN-gb", "en"},
		{"", "en;q=bogus, ko", "ko"},
	} {
		r := httptest.NewRequest(http.MethodGet, "/status?"+tc.query, nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Language", tc.accept)
		}
		if got := Lang(r); got != tc.want {
			t.Errorf("Lang(?%s, Accept-Language %q) = %q, want %q", tc.query, tc.accept, got, tc.want)
		}
	}
}

func TestServeHTML(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/status?lang=en", nil)
	r.Header.Set("Accept-Language", "ko")
	w := httptest.NewRecorder()
	ServeHTML(w, r, samplePage())
	res := w.Result()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d", res.StatusCode)
	}
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, d := range []string{"default-src 'none'", "style-src 'unsafe-inline'"} {
		if !slices.Contains(strings.Split(csp, "; "), d) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, d)
		}
	}
	if body := w.Body.String(); !strings.Contains(body, `<html lang="en">`) {
		t.Error("?lang=en did not win over Accept-Language")
	}
}

func TestServeJSON(t *testing.T) {
	w := httptest.NewRecorder()
	ServeJSON(w, httptest.NewRequest(http.MethodGet, "/status.json", nil), samplePage())
	res := w.Result()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" ||
		res.Header.Get("Cache-Control") != "no-store" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("status %d, headers %v", res.StatusCode, res.Header)
	}
	var p Page
	if err := json.NewDecoder(w.Body).Decode(&p); err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(p.Days) != HistoryDays || len(p.Incidents) != 3 || !p.GeneratedAt.Equal(now) {
		t.Errorf("decoded %d days, %d incidents, generated %v", len(p.Days), len(p.Incidents), p.GeneratedAt)
	}
}
