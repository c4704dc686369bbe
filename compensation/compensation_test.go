package compensation

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb/incident"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// ended is an incident id that started at t0 and lasted d.
func ended(id string, d time.Duration) incident.Incident {
	end := t0.Add(d)
	return incident.Incident{ID: id, Kind: incident.DataCenterLost, StartedAt: t0, EndedAt: &end, DataCenters: []string{"dc2"}}
}

// hit is user's ledger entry for incident id: affected from t0 for d.
func hit(id, user string, d time.Duration) incident.Affected {
	a := incident.Affected{Incident: id, User: user}
	a.Add(incident.ReasonStranded, incident.Interval{From: t0, To: t0.Add(d)})
	return a
}

func TestTierBoundaries(t *testing.T) {
	p := DefaultPolicy()
	in := ended("inc1", 48*time.Hour)
	for _, c := range []struct {
		d       time.Duration
		minutes int
		amount  int64
		tier    int // MinMinutes of the tier, -1 for none
	}{
		{0, 0, 0, -1},
		{time.Nanosecond, 1, 0, -1},
		{119 * time.Minute, 119, 0, -1},
		{119*time.Minute + time.Second, 120, 5_000, 120}, // a started minute counts
		{120 * time.Minute, 120, 5_000, 120},
		{121 * time.Minute, 121, 5_000, 120},
		{359*time.Minute + 59*time.Second, 360, 10_000, 360},
		{360 * time.Minute, 360, 10_000, 360},
		{719 * time.Minute, 719, 10_000, 360},
		{720 * time.Minute, 720, 20_000, 720},
		{47 * time.Hour, 47 * 60, 20_000, 720},
	} {
		r := p.Evaluate(in, hit("inc1", "@free:example.org", c.d), t0.Add(72*time.Hour))
		if r.AffectedMinutes != c.minutes || r.Amount != c.amount {
			t.Errorf("%s: %d minutes, %d due; want %d minutes, %d (%s)", c.d, r.AffectedMinutes, r.Amount, c.minutes, c.amount, r.Explanation)
		}
		switch {
		case c.tier < 0 && r.Tier != nil:
			t.Errorf("%s: tier %+v, want none", c.d, *r.Tier)
		case c.tier >= 0 && (r.Tier == nil || r.Tier.MinMinutes != c.tier):
			t.Errorf("%s: tier %+v, want from %d", c.d, r.Tier, c.tier)
		}
		if r.Paying || r.Capped || r.Drill || r.Open || r.Currency != "KRW" || r.Incident != "inc1" {
			t.Errorf("%s: %+v", c.d, r)
		}
	}
	r := p.Evaluate(in, hit("inc1", "@free:example.org", 143*time.Minute), t0)
	if want := "affected 2h23m0s, counted as 143 minutes; tier from 120 min: KRW 5,000"; !strings.Contains(r.Explanation, want) {
		t.Errorf("explanation %q, want it to contain %q", r.Explanation, want)
	}
	if want := "무료 이용자, 영향 시간 2시간 23분, 143분으로 계산; 120분 이상 구간: 5,000원"; !strings.Contains(r.ExplanationKo, want) {
		t.Errorf("Korean explanation %q, want it to contain %q", r.ExplanationKo, want)
	}
	if want := "free users: nothing below 120 affected minutes; from 120 min KRW 5,000, from 360 min KRW 10,000, from 720 min KRW 20,000; " +
		"affected time in whole minutes, a started minute counts; cap KRW 50,000 per user and incident; drills are not compensated"; r.Rule != want {
		t.Errorf("rule %q\nwant %q", r.Rule, want)
	}
}

func TestOverlappingIntervalsCountOnce(t *testing.T) {
	in := ended("inc1", 10*time.Hour)
	a := hit("inc1", "@u:example.org", 100*time.Minute)
	a.Add(incident.ReasonServerErrors, incident.Interval{From: t0.Add(90 * time.Minute), To: t0.Add(130 * time.Minute)})
	a.Add(incident.ReasonWritesStalled, incident.Interval{From: t0.Add(5 * time.Hour), To: t0.Add(5*time.Hour + 30*time.Second)})
	r := DefaultPolicy().Evaluate(in, a, t0.Add(24*time.Hour))
	if r.AffectedMinutes != 131 || r.Amount != 5_000 {
		t.Errorf("%d minutes, %d due; want 131 (130 min + 30 s), 5000", r.AffectedMinutes, r.Amount)
	}
}

func perMinutePolicy() Policy {
	return Policy{
		Currency:         "KRW",
		Free:             Rule{Tiers: []Tier{{120, 5_000}, {360, 30_000}}, PerMinute: 100, Cap: 40_000},
		ThresholdMinutes: 60,
	}
}

func TestPerMinuteAndCap(t *testing.T) {
	p := perMinutePolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	in := ended("inc1", 48*time.Hour)
	for _, c := range []struct {
		minutes int
		amount  int64
		capped  bool
	}{
		{0, 0, false},                      // not affected
		{30, 0, false},                     // below the threshold
		{60, 0, false},                     // at the threshold, below the first tier
		{119, 0, false},                    // below the first tier
		{120, 5_000, false},                // no minute past the tier's start
		{121, 5_000 + 100, false},          // one minute past
		{143, 5_000 + 23*100, false},       // 23 minutes past 120
		{359, 5_000 + 239*100, false},      // the tier's last minute: 28,900
		{360, 30_000, false},               // the next tier
		{361, 30_000 + 100, false},         // one minute past it
		{459, 30_000 + 99*100, false},      // just below the cap
		{460, 30_000 + 100*100, false},     // exactly the cap: not reduced
		{461, 40_000, true},                // one minute over
		{1440, 40_000, true},               // a day
		{math.MaxInt32 / 60, 40_000, true}, // no overflow
	} {
		r := p.Evaluate(in, hit("inc1", "@u:example.org", time.Duration(c.minutes)*time.Minute), t0.Add(time.Hour))
		if r.AffectedMinutes != c.minutes || r.Amount != c.amount || r.Capped != c.capped {
			t.Errorf("%d minutes: %d due, capped %v; want %d, capped %v (%s)", c.minutes, r.Amount, r.Capped, c.amount, c.capped, r.Explanation)
		}
	}
	r := p.Evaluate(in, hit("inc1", "@u:example.org", 143*time.Minute), t0)
	if want := "tier from 120 min: KRW 5,000 + 23 min × KRW 100 = KRW 7,300"; !strings.Contains(r.Explanation, want) {
		t.Errorf("explanation %q, want %q", r.Explanation, want)
	}
	r = p.Evaluate(in, hit("inc1", "@u:example.org", 500*time.Minute), t0)
	if want := "tier from 360 min: KRW 30,000 + 140 min × KRW 100 = KRW 44,000, capped at KRW 40,000"; !strings.Contains(r.Explanation, want) {
		t.Errorf("explanation %q, want %q", r.Explanation, want)
	}
	if !strings.Contains(r.Rule, "plus KRW 100 per minute past the tier's start") || !strings.Contains(r.Rule, "cap KRW 40,000") {
		t.Errorf("rule %q", r.Rule)
	}
	r = p.Evaluate(in, hit("inc1", "@u:example.org", 50*time.Minute), t0)
	if want := "below the threshold of 60 minutes: nothing is due"; !strings.Contains(r.Explanation, want) {
		t.Errorf("explanation %q, want %q", r.Explanation, want)
	}
}

func TestPayingUsers(t *testing.T) {
	p := DefaultPolicy()
	p.PayingUsers = []string{"@pays:example.org"}
	in := ended("inc1", 48*time.Hour)
	free := p.Evaluate(in, hit("inc1", "@free:example.org", 400*time.Minute), t0)
	pay := p.Evaluate(in, hit("inc1", "@pays:example.org", 400*time.Minute), t0)
	if free.Paying || free.Amount != 10_000 || !pay.Paying || pay.Amount != 20_000 {
		t.Errorf("free %v %d, paying %v %d; want false 10000, true 20000", free.Paying, free.Amount, pay.Paying, pay.Amount)
	}
	if !strings.HasPrefix(pay.Rule, "paying users: ") || !strings.Contains(pay.Rule, "cap KRW 100,000") {
		t.Errorf("paying rule %q", pay.Rule)
	}
	if !strings.HasPrefix(pay.Explanation, "paying user, ") {
		t.Errorf("paying explanation %q", pay.Explanation)
	}

	// Without a paying rule, paying users are paid by the rule for all.
	p.Paying = nil
	pay = p.Evaluate(in, hit("inc1", "@pays:example.org", 400*time.Minute), t0)
	if !pay.Paying || pay.Amount != 10_000 || !strings.HasPrefix(pay.Rule, "all users: ") ||
		!strings.Contains(pay.Explanation, "no paying rule") {
		t.Errorf("paying user without a paying rule: %+v", pay)
	}
}

func TestDrillIsNeverCompensated(t *testing.T) {
	in := ended("inc1", 48*time.Hour)
	in.Drill, in.DrillID = true, "drill-7"
	p := DefaultPolicy()
	p.PayingUsers = []string{"@pays:example.org"}
	r := p.Evaluate(in, hit("inc1", "@pays:example.org", 10*time.Hour), t0)
	if !r.Drill || r.Amount != 0 || r.Tier != nil || r.AffectedMinutes != 600 || !r.Paying {
		t.Errorf("drill: %+v", r)
	}
	if !strings.Contains(r.Explanation, "drill-7") || !strings.Contains(r.Explanation, "drills are never compensated") {
		t.Errorf("drill explanation %q", r.Explanation)
	}
}

func TestOpenIncident(t *testing.T) {
	in := incident.Incident{ID: "inc1", Kind: incident.PartitionStalled, StartedAt: t0}
	a := incident.Affected{Incident: "inc1", User: "@u:example.org"}
	a.Add(incident.ReasonWritesStalled, incident.Interval{From: t0.Add(time.Minute)})
	p := DefaultPolicy()
	now := t0.Add(150 * time.Minute)
	r := p.Evaluate(in, a, now)
	if !r.Open || r.AffectedMinutes != 149 || r.Amount != 5_000 || !r.CountedTo.Equal(now) {
		t.Errorf("open, at 150 min: %+v", r)
	}
	if !strings.Contains(r.Explanation, "still open") || !strings.Contains(r.Explanation, now.Format(time.RFC3339)) {
		t.Errorf("explanation %q", r.Explanation)
	}
	if r := p.Evaluate(in, a, t0.Add(7*time.Hour)); r.AffectedMinutes != 419 || r.Amount != 10_000 {
		t.Errorf("open, at 7 h: %d minutes, %d due", r.AffectedMinutes, r.Amount)
	}

	// Once the incident ended, an interval left open counts up to its end.
	end := t0.Add(200 * time.Minute)
	in.EndedAt = &end
	r = p.Evaluate(in, a, t0.Add(30*time.Hour))
	if r.Open || r.AffectedMinutes != 199 || r.Amount != 5_000 || !r.CountedTo.Equal(end) || strings.Contains(r.Explanation, "open") {
		t.Errorf("ended: %+v", r)
	}
}

func TestEntryOfAnotherIncident(t *testing.T) {
	r := DefaultPolicy().Evaluate(ended("inc1", 48*time.Hour), hit("inc2", "@u:example.org", 10*time.Hour), t0)
	if r.Amount != 0 || r.Incident != "inc1" || !strings.Contains(r.Explanation, `"inc2"`) {
		t.Errorf("%+v", r)
	}
}

func TestTable(t *testing.T) {
	p := DefaultPolicy()
	p.PayingUsers = []string{"@b:example.org"}
	in := ended("inc1", 48*time.Hour)
	rs := p.Table(in, []incident.Affected{
		hit("inc1", "@c:example.org", 130*time.Minute),
		hit("inc1", "@a:example.org", 30*time.Minute),
		hit("inc1", "@b:example.org", 800*time.Minute),
	}, t0)
	var got []string
	for _, r := range rs {
		got = append(got, r.User+" "+FormatAmount(r.Amount, r.Currency, "en"))
		if one := p.Evaluate(in, hit("inc1", r.User, time.Duration(r.AffectedMinutes)*time.Minute), t0); !reflect.DeepEqual(one, r) {
			t.Errorf("table row %+v\n differs from Evaluate %+v", r, one)
		}
	}
	want := []string{"@a:example.org KRW 0", "@b:example.org KRW 40,000", "@c:example.org KRW 5,000"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("table %q, want %q", got, want)
	}
	if rs := p.Table(in, nil, t0); len(rs) != 0 {
		t.Errorf("empty table: %v", rs)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultPolicy().Validate(); err != nil {
		t.Fatalf("default policy: %v", err)
	}
	for _, c := range []struct {
		name   string
		change func(*Policy)
		want   string
	}{
		{"lower-case currency", func(p *Policy) { p.Currency = "krw" }, `currency "krw"`},
		{"no currency", func(p *Policy) { p.Currency = "" }, `currency ""`},
		{"long currency", func(p *Policy) { p.Currency = "KRWX" }, `currency "KRWX"`},
		{"negative threshold", func(p *Policy) { p.ThresholdMinutes = -1 }, "threshold_minutes -1"},
		{"no tiers", func(p *Policy) { p.Free.Tiers = nil }, "free.tiers: want at least one tier"},
		{"same minutes", func(p *Policy) { p.Free.Tiers[1].MinMinutes = 120 }, "free.tiers[1].min_minutes 120: want more than tiers[0] (120)"},
		{"decreasing minutes", func(p *Policy) { p.Paying.Tiers[2].MinMinutes = 300 }, "paying.tiers[2].min_minutes 300: want more than tiers[1] (360)"},
		{"negative minutes", func(p *Policy) { p.Free.Tiers[0].MinMinutes = -5 }, "free.tiers[0].min_minutes -5"},
		{"negative amount", func(p *Policy) { p.Free.Tiers[0].Amount = -1 }, "free.tiers[0].amount -1"},
		{"negative per minute", func(p *Policy) { p.Free.PerMinute = -1 }, "free.per_minute -1"},
		{"negative cap", func(p *Policy) { p.Free.Cap = -1 }, "free.cap -1"},
		{"cap below a tier", func(p *Policy) { p.Paying.Cap = 30_000 }, "paying.cap KRW 30,000: below tiers[2].amount KRW 40,000"},
		{"less for longer", func(p *Policy) { p.Free.Tiers[2].Amount = 8_000 }, "free.tiers[2]: pays KRW 8,000 from 720 minutes, less than the KRW 10,000 due at 719 minutes"},
		{"per minute past the next tier", func(p *Policy) { p.Free.PerMinute = 100 }, "free.tiers[1]: pays KRW 10,000 from 360 minutes, less than the KRW 28,900 due at 359 minutes"},
		{"paying less than free", func(p *Policy) { p.Paying.Tiers[0].Amount = 4_000 }, "paying: pays KRW 4,000 at 120 affected minutes, less than free (KRW 5,000)"},
		{"paying tier later", func(p *Policy) { p.Paying.Tiers[0].MinMinutes = 180 }, "paying: pays KRW 0 at 120 affected minutes, less than free (KRW 5,000)"},
		{"paying capped below free", func(p *Policy) {
			p.Free = Rule{Tiers: []Tier{{120, 5_000}}, PerMinute: 100, Cap: 100_000}
			p.Paying = &Rule{Tiers: []Tier{{120, 10_000}}, PerMinute: 100, Cap: 50_000}
		}, "paying: pays KRW 50,000 at 571 affected minutes, less than free (KRW 50,100)"},
		{"free uncapped per minute", func(p *Policy) {
			p.Free = Rule{Tiers: []Tier{{120, 5_000}}, PerMinute: 100}
			p.Paying = &Rule{Tiers: []Tier{{120, 10_000}}, PerMinute: 50}
		}, "paying: pays KRW 15,050 at 221 affected minutes, less than free (KRW 15,100)"},
		{"bad paying user", func(p *Policy) { p.PayingUsers = []string{"@a:example.org", "bob"} }, `paying_users[1] "bob": want a Matrix user ID`},
		{"paying user with a space", func(p *Policy) { p.PayingUsers = []string{"@a b:example.org"} }, `paying_users[0] "@a b:example.org"`},
		{"duplicate paying user", func(p *Policy) { p.PayingUsers = []string{"@a:example.org", "@b:example.org", "@a:example.org"} },
			`paying_users[2] "@a:example.org": already listed at paying_users[0]`},
	} {
		p := DefaultPolicy()
		c.change(&p)
		err := p.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.want)
		}
	}

	// Sound variations pass.
	for name, change := range map[string]func(*Policy){
		"no paying rule":       func(p *Policy) { p.Paying = nil; p.PayingUsers = []string{"@a:example.org"} },
		"no threshold":         func(p *Policy) { p.ThresholdMinutes = 0 },
		"no caps":              func(p *Policy) { p.Free.Cap, p.Paying.Cap = 0, 0 },
		"per minute, capped":   func(p *Policy) { *p = perMinutePolicy() },
		"paying per minute":    func(p *Policy) { p.Paying.PerMinute = 10 },
		"USD":                  func(p *Policy) { p.Currency = "USD" },
		"paying equal to free": func(p *Policy) { r := p.Free; p.Paying = &r },
	} {
		p := DefaultPolicy()
		change(&p)
		if err := p.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}

	// Every problem is reported at once.
	p := DefaultPolicy()
	p.Currency, p.ThresholdMinutes, p.PayingUsers = "won", -1, []string{"x", "x"}
	err := p.Validate()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 5 {
		t.Errorf("want 5 problems (currency, threshold, two bad IDs, one duplicate), got %v", err)
	}
}

func TestPolicyJSON(t *testing.T) {
	const config = `{
		"currency": "KRW",
		"free": {"tiers": [{"min_minutes": 120, "amount": 5000}], "per_minute": 10, "cap": 9000},
		"paying": {"tiers": [{"min_minutes": 60, "amount": 10000}]},
		"paying_users": ["@a:example.org"],
		"threshold_minutes": 60
	}`
	dec := json.NewDecoder(strings.NewReader(config))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		t.Fatal(err)
	}
	want := Policy{
		Currency:         "KRW",
		Free:             Rule{Tiers: []Tier{{120, 5000}}, PerMinute: 10, Cap: 9000},
		Paying:           &Rule{Tiers: []Tier{{60, 10000}}},
		PayingUsers:      []string{"@a:example.org"},
		ThresholdMinutes: 60,
	}
	if !reflect.DeepEqual(p, want) {
		t.Errorf("decoded %+v, want %+v", p, want)
	}
	if err := p.Validate(); err != nil {
		t.Error(err)
	}
}

func TestWriteCSV(t *testing.T) {
	hostile := []string{
		"=HYPERLINK(\"http://evil.example\",\"x\")",
		"+1+cmd|' /C calc'!A0",
		"-2+3",
		"@SUM(1+1)*cmd|' /C calc'!A0",
		"\t=1",
		"\r=1",
		"＝1+1",
		"@alice:example.org",
		"plain\nwith \"quotes\", commas",
	}
	p := DefaultPolicy()
	in := ended("=inc1", 48*time.Hour)
	var affected []incident.Affected
	for _, u := range hostile {
		affected = append(affected, hit("=inc1", u, 400*time.Minute))
	}
	rs := p.Table(in, affected, t0)
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rs); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatalf("read back: %v\n%s", err, buf.String())
	}
	if len(rows) != len(rs)+1 || !reflect.DeepEqual(rows[0], csvHeader) {
		t.Fatalf("rows %d, header %q", len(rows), rows[0])
	}
	for i, row := range rows[1:] {
		r := rs[i]
		wantUser := r.User
		if !strings.HasPrefix(r.User, "plain") {
			wantUser = "'" + r.User
		}
		if row[1] != wantUser || row[0] != "'=inc1" {
			t.Errorf("row %d: incident %q, user %q; want '=inc1, %q", i, row[0], row[1], wantUser)
		}
		if row[9] != "10000" || row[7] != "360" || row[8] != "10000" || row[10] != "KRW" || row[12] != r.Rule || row[13] != r.Explanation {
			t.Errorf("row %d: %q", i, row)
		}
		for j, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("row %d cell %d %q starts a formula", i, j, cell)
			}
		}
	}
}

func TestWriteJSON(t *testing.T) {
	p := DefaultPolicy()
	p.PayingUsers = []string{"@b:example.org"}
	rs := p.Table(ended("inc1", 48*time.Hour), []incident.Affected{
		hit("inc1", "@a:example.org", 30*time.Minute),
		hit("inc1", "@b:example.org", 800*time.Minute),
	}, t0)
	var buf bytes.Buffer
	if err := WriteJSON(&buf, rs); err != nil {
		t.Fatal(err)
	}
	var back []Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rs) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", back, rs)
	}
	if !strings.Contains(buf.String(), `"affected_minutes": 800`) || !strings.Contains(buf.String(), `"tier": {`) {
		t.Errorf("json:\n%s", buf.String())
	}
	buf.Reset()
	if err := WriteJSON(&buf, nil); err != nil || strings.TrimSpace(buf.String()) != "[]" {
		t.Errorf("empty: %q %v", buf.String(), err)
	}
}

func TestDescribe(t *testing.T) {
	p := DefaultPolicy()
	ko := p.Describe("ko")
	for _, want := range []string{
		"무료 이용자:\n- 장애로 영향을 받은 시간 120분 이상 360분 미만: 5,000원\n- 장애로 영향을 받은 시간 360분 이상 720분 미만: 10,000원\n- 장애로 영향을 받은 시간 720분 이상: 20,000원\n- 최대 50,000원\n",
		"유료 이용자:\n- 장애로 영향을 받은 시간 120분 이상 360분 미만: 10,000원\n",
		"- 최대 100,000원\n",
		"- 영향을 받은 시간이 120분 미만이면 보상하지 않습니다.\n",
		"올림",
		"훈련",
	} {
		if !strings.Contains(ko, want) {
			t.Errorf("ko: want %q in\n%s", want, ko)
		}
	}
	if p.Describe("ko-KR") != ko {
		t.Error("ko-KR differs from ko")
	}
	en := p.Describe("en")
	for _, want := range []string{
		"Free users:\n- affected 120 to 359 minutes: KRW 5,000\n- affected 360 to 719 minutes: KRW 10,000\n- affected 720 minutes or more: KRW 20,000\n- at most KRW 50,000\n",
		"Paying users:\n- affected 120 to 359 minutes: KRW 10,000\n",
		"- nothing is due below 120 affected minutes\n",
		"a started minute counts",
		"drills",
	} {
		if !strings.Contains(en, want) {
			t.Errorf("en: want %q in\n%s", want, en)
		}
	}
	if p.Describe("fr") != en {
		t.Error("an unknown language is not English")
	}

	p = perMinutePolicy()
	p.ThresholdMinutes = 0
	ko, en = p.Describe("ko"), p.Describe("en")
	if !strings.Contains(ko, "모든 이용자 (유료 이용자 포함):") || !strings.Contains(ko, "1분마다 100원 추가") || strings.Contains(ko, "미만이면") {
		t.Errorf("ko, per minute, no threshold:\n%s", ko)
	}
	if !strings.Contains(en, "All users (paying users included):") || !strings.Contains(en, "plus KRW 100 for each minute") || strings.Contains(en, "nothing is due") {
		t.Errorf("en, per minute, no threshold:\n%s", en)
	}
}

func TestFormatAmount(t *testing.T) {
	for _, c := range []struct {
		amount         int64
		currency, lang string
		want           string
	}{
		{5_000, "KRW", "ko", "5,000원"},
		{5_000, "KRW", "en", "KRW 5,000"},
		{0, "KRW", "ko", "0원"},
		{999, "KRW", "ko", "999원"},
		{1_234_567, "KRW", "ko-KR", "1,234,567원"},
		{100_000, "KRW", "en", "KRW 100,000"},
		{1_250, "USD", "en", "USD 12.50"},
		{1_250, "USD", "ko", "USD 12.50"},
		{5, "USD", "en", "USD 0.05"},
		{0, "EUR", "en", "EUR 0.00"},
		{123_456_789, "EUR", "en", "EUR 1,234,567.89"},
		{500, "JPY", "en", "JPY 500"},
		{1_250, "BHD", "en", "BHD 1.250"},
		{-5_000, "KRW", "ko", "-5,000원"},
		{-1_250, "USD", "en", "USD -12.50"},
		{math.MinInt64, "KRW", "en", "KRW -9,223,372,036,854,775,808"},
		{math.MaxInt64, "USD", "en", "USD 92,233,720,368,547,758.07"},
	} {
		if got := FormatAmount(c.amount, c.currency, c.lang); got != c.want {
			t.Errorf("FormatAmount(%d, %s, %s) = %q, want %q", c.amount, c.currency, c.lang, got, c.want)
		}
	}
}

// TestValidateAgainstBruteForce checks, on random rules, what Validate
// promises by trying every minute: a valid policy never pays less for
// more affected time, nor a paying user less than a free one, and the
// minute Validate names is the first where paying users would get less.
func TestValidateAgainstBruteForce(t *testing.T) {
	const horizon = 20_000
	rng := rand.New(rand.NewPCG(1, 2))
	randomRule := func() Rule {
		var r Rule
		minutes, amount := rng.IntN(200), int64(rng.IntN(3_000))
		for range 1 + rng.IntN(3) {
			r.Tiers = append(r.Tiers, Tier{minutes, amount})
			minutes += 1 + rng.IntN(400)
			amount += int64(rng.IntN(6_000))
		}
		if rng.IntN(2) == 0 {
			r.PerMinute = int64(rng.IntN(30))
		}
		if rng.IntN(2) == 0 {
			r.Cap = r.Tiers[len(r.Tiers)-1].Amount + int64(rng.IntN(20_000))
		}
		return r
	}
	valid, payingErrors := 0, 0
	for i := range 400 {
		free, paying := randomRule(), randomRule()
		p := Policy{Currency: "KRW", Free: free, Paying: &paying, ThresholdMinutes: rng.IntN(300)}
		freeErr, payingErr := validateRule("free", free, "KRW", func(string, ...any) {}), validateRule("paying", paying, "KRW", func(string, ...any) {})
		err := p.Validate()
		for name, r := range map[string]Rule{"free": free, "paying": paying} {
			ok := name == "free" && freeErr || name == "paying" && payingErr
			last, _, _ := r.apply(0)
			decreases := false
			for m := 1; m < horizon && !decreases; m++ {
				a, _, _ := r.apply(m)
				decreases = a < last
				last = a
			}
			if ok && decreases {
				t.Errorf("case %d: %s rule %+v passes but pays less for longer", i, name, r)
			}
		}
		if !freeErr || !payingErr {
			continue
		}
		first := -1
		for m := p.ThresholdMinutes; m < horizon && first < 0; m++ {
			pay, _, _ := paying.apply(m)
			fr, _, _ := free.apply(m)
			if pay < fr {
				first = m
			}
		}
		m, less := payingLess(paying, free, p.ThresholdMinutes)
		switch {
		case first >= 0 && (!less || m != first):
			t.Errorf("case %d: paying %+v, free %+v, threshold %d: first less at %d, payingLess says %d %v", i, paying, free, p.ThresholdMinutes, first, m, less)
		case first < 0 && less && m < horizon:
			t.Errorf("case %d: payingLess says %d, but paying is never less before %d", i, m, horizon)
		case less && (err == nil || !strings.Contains(err.Error(), fmt.Sprintf("at %d affected minutes", m))):
			t.Errorf("case %d: Validate says %v, want paying less at %d", i, err, m)
		case !less && err != nil:
			t.Errorf("case %d: Validate says %v", i, err)
		}
		if less {
			payingErrors++
		} else {
			valid++
		}
	}
	t.Logf("%d valid, %d paying less", valid, payingErrors)
	if valid < 20 || payingErrors < 20 {
		t.Errorf("random rules: %d valid, %d paying less: too few of one kind to test", valid, payingErrors)
	}
}
