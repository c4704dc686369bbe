// Package compensation computes what planb's operator owes each user for
// an outage, from a rule published in the operator's configuration and
// the incident ledger (package incident), and shows that rule and its
// inputs beside every amount, so that anyone can check it.
//
// The rule pays by affected time, in tiers (after Kakao's compensation of
// 2022), pays paying users more and caps what one user gets for one
// incident (after Korean telecom practice), and pays nothing below a
// threshold (by default the two hours after which Korean operators must
// notify users). A user's affected time is the total of their intervals
// in the ledger, overlapping ones counted once, in whole minutes rounded
// up: a started minute counts. Drills, outages caused on purpose, are
// never compensated.
//
// Amounts are integers in the minor unit of the policy's currency (cents
// for USD; KRW has none, so amounts in KRW are won).
package compensation

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/planb-chat/planb/incident"
)

// Policy is the compensation rule of the operator's configuration. Its
// JSON names are snake_case; it is meant to sit under its own key of the
// node's configuration (its names are too short to be flattened there).
type Policy struct {
	// Currency is an ISO 4217 code such as "KRW"; amounts are in its
	// minor unit.
	Currency string `json:"currency"`
	// Free is the rule for every user (for all users when Paying is nil).
	Free Rule `json:"free"`
	// Paying is the rule for paying users; nil: Free applies to them too.
	Paying *Rule `json:"paying,omitempty"`
	// PayingUsers are the Matrix user IDs of the paying users, exported
	// from billing by the operator.
	PayingUsers []string `json:"paying_users,omitempty"`
	// ThresholdMinutes: below this many affected minutes nothing is due,
	// whatever the tiers say.
	ThresholdMinutes int `json:"threshold_minutes"`
}

// Rule is what one class of users (free or paying) is paid.
type Rule struct {
	// Tiers are by affected minutes, from the shortest to the longest:
	// the tier with the highest MinMinutes at most the affected minutes
	// applies; below the first, nothing is due.
	Tiers []Tier `json:"tiers"`
	// PerMinute is added for each affected minute past the applying
	// tier's MinMinutes (optional).
	PerMinute int64 `json:"per_minute,omitempty"`
	// Cap is the most one user is paid for one incident; 0: no cap.
	Cap int64 `json:"cap,omitempty"`
}

// Tier pays Amount from MinMinutes affected minutes on.
type Tier struct {
	MinMinutes int   `json:"min_minutes"`
	Amount     int64 `json:"amount"`
}

// maxMinutes bounds the minutes a policy names (a century), so that
// arithmetic on them cannot overflow.
const maxMinutes = 100 * 365 * 24 * 60

// DefaultPolicy returns the published default: in KRW, nothing below two
// hours; from 120 affected minutes 5,000 won, from 360 10,000, from 720
// 20,000, at most 50,000; paying users twice that, at most 100,000.
func DefaultPolicy() Policy {
	return Policy{
		Currency: "KRW",
		Free: Rule{
			Tiers: []Tier{{120, 5_000}, {360, 10_000}, {720, 20_000}},
			Cap:   50_000,
		},
		Paying: &Rule{
			Tiers: []Tier{{120, 10_000}, {360, 20_000}, {720, 40_000}},
			Cap:   100_000,
		},
		ThresholdMinutes: 120,
	}
}

// Validate reports every problem of the policy at once (joined errors),
// each naming the field at fault by its JSON name; nil if it is sound.
// Besides the form of each field, it rejects a rule under which more
// affected time would pay less, and a paying rule that would pay a
// paying user less than the free rule pays a free user.
func (p Policy) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !validCurrency(p.Currency) {
		bad("currency %q: want an ISO 4217 code of three capital letters, such as KRW", p.Currency)
	}
	if p.ThresholdMinutes < 0 || p.ThresholdMinutes > maxMinutes {
		bad("threshold_minutes %d: want 0 to %d (a century)", p.ThresholdMinutes, maxMinutes)
	}
	freeOK := validateRule("free", p.Free, p.Currency, bad)
	if p.Paying != nil && validateRule("paying", *p.Paying, p.Currency, bad) && freeOK {
		if m, less := payingLess(*p.Paying, p.Free, p.ThresholdMinutes); less {
			pay, _, _ := p.Paying.apply(m)
			free, _, _ := p.Free.apply(m)
			bad("paying: pays %s at %d affected minutes, less than free (%s): paying users must never get less",
				FormatAmount(pay, p.Currency, "en"), m, FormatAmount(free, p.Currency, "en"))
		}
	}
	seen := make(map[string]int, len(p.PayingUsers))
	for i, u := range p.PayingUsers {
		if !validUserID(u) {
			bad("paying_users[%d] %q: want a Matrix user ID such as @alice:example.org", i, u)
		}
		if j, dup := seen[u]; dup {
			bad("paying_users[%d] %q: already listed at paying_users[%d]", i, u, j)
			continue
		}
		seen[u] = i
	}
	return errors.Join(errs...)
}

// validateRule reports the problems of r (named name) through bad and
// returns whether it had none.
func validateRule(name string, r Rule, currency string, bad func(string, ...any)) bool {
	n := 0
	report := func(format string, args ...any) { n++; bad(format, args...) }
	money := func(v int64) string { return FormatAmount(v, currency, "en") }
	if len(r.Tiers) == 0 {
		report("%s.tiers: want at least one tier, such as {\"min_minutes\": 120, \"amount\": 5000}", name)
	}
	for i, t := range r.Tiers {
		if t.MinMinutes < 0 || t.MinMinutes > maxMinutes {
			report("%s.tiers[%d].min_minutes %d: want 0 to %d (a century)", name, i, t.MinMinutes, maxMinutes)
		}
		if t.Amount < 0 {
			report("%s.tiers[%d].amount %d: want 0 or more", name, i, t.Amount)
		}
		if i > 0 && t.MinMinutes <= r.Tiers[i-1].MinMinutes {
			report("%s.tiers[%d].min_minutes %d: want more than tiers[%d] (%d): tiers go from the shortest affected time to the longest",
				name, i, t.MinMinutes, i-1, r.Tiers[i-1].MinMinutes)
		}
		if r.Cap > 0 && t.Amount > r.Cap {
			report("%s.cap %s: below tiers[%d].amount %s", name, money(r.Cap), i, money(t.Amount))
		}
	}
	if r.PerMinute < 0 {
		report("%s.per_minute %d: want 0 or more", name, r.PerMinute)
	}
	if r.Cap < 0 {
		report("%s.cap %d: want 0 (no cap) or more", name, r.Cap)
	}
	if n > 0 {
		return false
	}
	// More affected time must never pay less: the last minute of a tier
	// must not pay more than the next tier's first.
	for i := 1; i < len(r.Tiers); i++ {
		last := r.Tiers[i].MinMinutes - 1
		if before, _, _ := r.apply(last); before > r.Tiers[i].Amount {
			report("%s.tiers[%d]: pays %s from %d minutes, less than the %s due at %d minutes: more affected time must never pay less",
				name, i, money(r.Tiers[i].Amount), r.Tiers[i].MinMinutes, money(before), last)
		}
	}
	return n == 0
}

// payingLess reports whether the paying rule pays less than the free rule
// at some number of affected minutes from threshold on (within a
// century), and the first such minute. Both rules are valid. Between the
// points where a tier starts or a cap is reached, both amounts are linear
// in the minutes, so comparing them at those points and the minute before
// each, and their slopes past the last, is exact.
func payingLess(paying, free Rule, threshold int) (int, bool) {
	points := []int{threshold}
	for _, r := range []Rule{paying, free} {
		for _, t := range r.Tiers {
			points = append(points, t.MinMinutes-1, t.MinMinutes)
			if r.Cap > 0 && r.PerMinute > 0 {
				// k minutes into the tier the amount is at most the
				// cap, from k+1 on it is the cap
				if k := (r.Cap - t.Amount) / r.PerMinute; k < maxMinutes {
					points = append(points, t.MinMinutes+int(k), t.MinMinutes+int(k)+1)
				}
			}
		}
	}
	slices.Sort(points)
	diff := func(m int) int64 {
		pay, _, _ := paying.apply(m)
		fr, _, _ := free.apply(m)
		return pay - fr
	}
	prev, checked := threshold, false
	for _, m := range slices.Compact(points) {
		if m < threshold {
			continue
		}
		if diff(m) >= 0 {
			prev, checked = m, true
			continue
		}
		if !checked {
			return m, true
		}
		// Linear from prev (paying no less) to m (less): bisect.
		lo, hi := prev, m
		for hi-lo > 1 {
			if mid := lo + (hi-lo)/2; diff(mid) < 0 {
				hi = mid
			} else {
				lo = mid
			}
		}
		return hi, true
	}
	// Past the last point each amount is the cap, or grows by PerMinute
	// without end.
	slope := func(r Rule) int64 {
		if r.Cap > 0 {
			return 0
		}
		return r.PerMinute
	}
	sp, sf := slope(paying), slope(free)
	if sf <= sp {
		return 0, false
	}
	k := diff(prev)/(sf-sp) + 1
	if k > maxMinutes {
		return 0, false
	}
	return prev + int(k), true
}

// apply returns what r pays for minutes affected minutes (the threshold
// aside), whether the cap reduced it, and the tier that applies (nil if
// none does: the amount is then 0). It assumes nothing of the tiers'
// order.
func (r Rule) apply(minutes int) (amount int64, capped bool, tier *Tier) {
	for i := range r.Tiers {
		t := r.Tiers[i]
		if t.MinMinutes <= minutes && (tier == nil || t.MinMinutes > tier.MinMinutes) {
			tier = &t
		}
	}
	if tier == nil {
		return 0, false, nil
	}
	amount = addSat(tier.Amount, mulSat(r.PerMinute, int64(minutes-tier.MinMinutes)))
	if r.Cap > 0 && amount > r.Cap {
		return r.Cap, true, tier
	}
	return amount, false, tier
}

// mulSat and addSat are a*b and a+b for non-negative operands, stopping
// at math.MaxInt64 (the cap then applies) instead of wrapping.
func mulSat(a, b int64) int64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

func addSat(a, b int64) int64 {
	if b > math.MaxInt64-a {
		return math.MaxInt64
	}
	return a + b
}

func validCurrency(c string) bool {
	if len(c) != 3 {
		return false
	}
	for _, r := range c {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// validUserID checks the form of a Matrix user ID: @localpart:server, at
// most 255 bytes, no spaces or control characters.
func validUserID(u string) bool {
	local, server, ok := strings.Cut(strings.TrimPrefix(u, "@"), ":")
	return strings.HasPrefix(u, "@") && ok && local != "" && server != "" && len(u) <= 255 &&
		!strings.ContainsFunc(u, func(r rune) bool { return r <= ' ' || r == 0x7f })
}

// Result is what one user is due for one incident, with the rule applied
// and how the amount follows from the ledger, in words.
type Result struct {
	Incident string `json:"incident"`
	User     string `json:"user"`
	// AffectedMinutes is the user's affected time in whole minutes,
	// rounded up (a started minute counts).
	AffectedMinutes int  `json:"affected_minutes"`
	Paying          bool `json:"paying"`
	// Drill is set for an incident caused on purpose: Amount is then 0.
	Drill bool `json:"drill"`
	// Open is set when the incident had not ended: the affected time is
	// counted up to CountedTo and the amount may still grow.
	Open      bool      `json:"open"`
	CountedTo time.Time `json:"counted_to"`
	// Tier is the tier that applied, nil if none did.
	Tier     *Tier  `json:"tier,omitempty"`
	Amount   int64  `json:"amount"`
	Currency string `json:"currency"`
	// Capped is set when the cap reduced the amount.
	Capped bool `json:"capped"`
	// Rule is the rule applied to this user, in English.
	Rule string `json:"rule"`
	// Explanation is how Amount follows from the inputs, in English;
	// ExplanationKo the same in Korean.
	Explanation   string `json:"explanation"`
	ExplanationKo string `json:"explanation_ko"`
}

// Evaluate returns what user a.User is due for incident in, counting the
// intervals still open up to now (or up to the incident's end, if it
// ended before now). An entry of another incident is due nothing, and
// the explanation says so.
func (p Policy) Evaluate(in incident.Incident, a incident.Affected, now time.Time) Result {
	return p.evaluate(in, a, now, slices.Contains(p.PayingUsers, a.User))
}

// Table returns the results of every entry of affected for incident in,
// sorted by user (entries of one user keep their order).
func (p Policy) Table(in incident.Incident, affected []incident.Affected, now time.Time) []Result {
	paying := make(map[string]bool, len(p.PayingUsers))
	for _, u := range p.PayingUsers {
		paying[u] = true
	}
	out := make([]Result, 0, len(affected))
	for _, a := range affected {
		out = append(out, p.evaluate(in, a, now, paying[a.User]))
	}
	slices.SortStableFunc(out, func(x, y Result) int { return strings.Compare(x.User, y.User) })
	return out
}

func (p Policy) evaluate(in incident.Incident, a incident.Affected, now time.Time, paying bool) Result {
	at := now
	if in.EndedAt != nil && in.EndedAt.Before(now) {
		at = *in.EndedAt
	}
	d := a.Duration(at)
	minutes := ceilMinutes(d)
	rule, class := p.ruleFor(paying)
	r := Result{
		Incident:        in.ID,
		User:            a.User,
		AffectedMinutes: minutes,
		Paying:          paying,
		Drill:           in.Drill,
		Open:            in.Open(),
		CountedTo:       at.UTC(),
		Currency:        p.Currency,
		Rule:            p.ruleText(rule, class),
	}
	money := func(v int64) string { return FormatAmount(v, p.Currency, "en") }
	won := func(v int64) string { return FormatAmount(v, p.Currency, "ko") }
	var b, k strings.Builder // English, Korean
	fmt.Fprintf(&b, "%s, affected %s, counted as %d minutes", userText(paying, p.Paying != nil), d, minutes)
	fmt.Fprintf(&k, "%s, 영향 시간 %s, %d분으로 계산", userTextKo(paying, p.Paying != nil), durationKo(d), minutes)
	switch {
	case a.Incident != "" && a.Incident != in.ID:
		fmt.Fprintf(&b, ": the ledger entry is of incident %q, not %q: nothing computed", a.Incident, in.ID)
		fmt.Fprintf(&k, ": 장애 %q의 기록이 아니라(%q의 기록) 계산하지 않음", in.ID, a.Incident)
	case in.Drill:
		b.WriteString(": a drill (caused on purpose")
		k.WriteString(": 장애 대응 훈련(일부러 일으킨 장애")
		if in.DrillID != "" {
			fmt.Fprintf(&b, " by drill %s", in.DrillID)
			fmt.Fprintf(&k, ", 훈련 %s", in.DrillID)
		}
		b.WriteString("): drills are never compensated")
		k.WriteString(")이라 보상하지 않음")
	case minutes < p.ThresholdMinutes:
		fmt.Fprintf(&b, ", below the threshold of %d minutes: nothing is due", p.ThresholdMinutes)
		fmt.Fprintf(&k, ", 기준 %d분 미만이라 보상 없음", p.ThresholdMinutes)
	default:
		amount, capped, tier := rule.apply(minutes)
		if tier == nil {
			fmt.Fprintf(&b, ", below the first tier: nothing is due")
			fmt.Fprintf(&k, ", 첫 구간 미만이라 보상 없음")
			break
		}
		r.Tier, r.Amount, r.Capped = tier, amount, capped
		fmt.Fprintf(&b, "; tier from %d min: %s", tier.MinMinutes, money(tier.Amount))
		fmt.Fprintf(&k, "; %d분 이상 구간: %s", tier.MinMinutes, won(tier.Amount))
		if extra := minutes - tier.MinMinutes; rule.PerMinute > 0 {
			total := addSat(tier.Amount, mulSat(rule.PerMinute, int64(extra)))
			fmt.Fprintf(&b, " + %d min × %s = %s", extra, money(rule.PerMinute), money(total))
			fmt.Fprintf(&k, " + %d분 × %s = %s", extra, won(rule.PerMinute), won(total))
		}
		if capped {
			fmt.Fprintf(&b, ", capped at %s", money(rule.Cap))
			fmt.Fprintf(&k, ", 최대 %s로 제한", won(rule.Cap))
		}
	}
	if r.Open {
		fmt.Fprintf(&b, " (the incident is still open: counted up to %s, the amount may grow)", r.CountedTo.Format(time.RFC3339))
		fmt.Fprintf(&k, " (장애가 아직 끝나지 않아 %s까지 계산했으며 보상액이 늘어날 수 있음)",
			r.CountedTo.In(time.FixedZone("KST", 9*3600)).Format("2006-01-02 15:04:05 KST"))
	}
	r.Explanation, r.ExplanationKo = b.String(), k.String()
	return r
}

// userTextKo is userText in Korean.
func userTextKo(paying, payingRule bool) string {
	switch {
	case paying && !payingRule:
		return "유료 이용자(유료 기준이 없어 전체 기준 적용)"
	case paying:
		return "유료 이용자"
	default:
		return "무료 이용자"
	}
}

// durationKo writes d in hours, minutes and seconds ("2시간 3분 4초").
func durationKo(d time.Duration) string {
	d = d.Round(time.Second)
	h, m, sec := int(d/time.Hour), int(d%time.Hour/time.Minute), int(d%time.Minute/time.Second)
	var parts []string
	if h > 0 {
		parts = append(parts, fmt.Sprintf("%d시간", h))
	}
	if m > 0 {
		parts = append(parts, fmt.Sprintf("%d분", m))
	}
	if sec > 0 || len(parts) == 0 {
		parts = append(parts, fmt.Sprintf("%d초", sec))
	}
	return strings.Join(parts, " ")
}

// ruleFor returns the rule of a paying or free user and the words for its
// class of users.
func (p Policy) ruleFor(paying bool) (Rule, string) {
	switch {
	case p.Paying == nil:
		return p.Free, "all users"
	case paying:
		return *p.Paying, "paying users"
	default:
		return p.Free, "free users"
	}
}

func userText(paying, payingRule bool) string {
	switch {
	case paying && !payingRule:
		return "paying user (no paying rule: the rule for all users applies)"
	case paying:
		return "paying user"
	default:
		return "free user"
	}
}

// ceilMinutes is d in whole minutes, a started minute counting as one.
func ceilMinutes(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	m := d / time.Minute
	if d%time.Minute != 0 {
		m++
	}
	return int(m)
}
