package compensation

import (
	"fmt"
	"strconv"
	"strings"
)

// ruleText is rule, applied to class ("paying users"), in English words:
// the text shown with every result.
func (p Policy) ruleText(rule Rule, class string) string {
	money := func(v int64) string { return FormatAmount(v, p.Currency, "en") }
	parts := []string{}
	if p.ThresholdMinutes > 0 {
		parts = append(parts, fmt.Sprintf("nothing below %d affected minutes", p.ThresholdMinutes))
	}
	tiers := make([]string, len(rule.Tiers))
	for i, t := range rule.Tiers {
		tiers[i] = fmt.Sprintf("from %d min %s", t.MinMinutes, money(t.Amount))
	}
	parts = append(parts, strings.Join(tiers, ", "))
	if rule.PerMinute > 0 {
		parts = append(parts, fmt.Sprintf("plus %s per minute past the tier's start", money(rule.PerMinute)))
	}
	parts = append(parts, "affected time in whole minutes, a started minute counts")
	if rule.Cap > 0 {
		parts = append(parts, fmt.Sprintf("cap %s per user and incident", money(rule.Cap)))
	} else {
		parts = append(parts, "no cap")
	}
	parts = append(parts, "drills are not compensated")
	return class + ": " + strings.Join(parts, "; ")
}

// Describe returns the whole policy in words, in Korean when lang is "ko"
// (or a Korean locale such as "ko-KR"), in English otherwise: one line of
// title, then a section per class of users and one for everyone, each
// line of a section starting with "- ". It is what users are shown (the
// follow-up notice of an incident, the web client).
func (p Policy) Describe(lang string) string {
	ko := korean(lang)
	money := func(v int64) string { return FormatAmount(v, p.Currency, lang) }
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	rule := func(title string, r Rule) {
		line("%s", title)
		for i, t := range r.Tiers {
			last := i == len(r.Tiers)-1
			switch {
			case ko && last:
				line("- 장애로 영향을 받은 시간 %d분 이상: %s", t.MinMinutes, money(t.Amount))
			case ko:
				line("- 장애로 영향을 받은 시간 %d분 이상 %d분 미만: %s", t.MinMinutes, r.Tiers[i+1].MinMinutes, money(t.Amount))
			case last:
				line("- affected %d minutes or more: %s", t.MinMinutes, money(t.Amount))
			default:
				line("- affected %d to %d minutes: %s", t.MinMinutes, r.Tiers[i+1].MinMinutes-1, money(t.Amount))
			}
		}
		if r.PerMinute > 0 {
			if ko {
				line("- 각 구간의 시작 시간을 넘은 1분마다 %s 추가", money(r.PerMinute))
			} else {
				line("- plus %s for each minute past the start of the tier", money(r.PerMinute))
			}
		}
		if r.Cap > 0 {
			if ko {
				line("- 최대 %s", money(r.Cap))
			} else {
				line("- at most %s", money(r.Cap))
			}
		}
	}
	if ko {
		line("장애 보상 기준 (이용자 1인, 장애 1건당)")
		if p.Paying == nil {
			rule("모든 이용자 (유료 이용자 포함):", p.Free)
		} else {
			rule("무료 이용자:", p.Free)
			rule("유료 이용자:", *p.Paying)
		}
		line("공통:")
		if p.ThresholdMinutes > 0 {
			line("- 영향을 받은 시간이 %d분 미만이면 보상하지 않습니다.", p.ThresholdMinutes)
		}
		line("- 영향을 받은 시간은 분 단위로 올림하여 계산합니다 (시작된 1분도 1분으로 셉니다).")
		line("- 장애 대응 훈련으로 일부러 일으킨 장애는 보상하지 않습니다.")
		return b.String()
	}
	line("Compensation for outages (per user and incident)")
	if p.Paying == nil {
		rule("All users (paying users included):", p.Free)
	} else {
		rule("Free users:", p.Free)
		rule("Paying users:", *p.Paying)
	}
	line("For everyone:")
	if p.ThresholdMinutes > 0 {
		line("- nothing is due below %d affected minutes", p.ThresholdMinutes)
	}
	line("- affected time is counted in whole minutes, rounded up: a started minute counts")
	line("- drills (outages caused on purpose to test the service) are not compensated")
	return b.String()
}

// korean reports whether lang is Korean: "ko", "ko-KR", "ko_KR"...
func korean(lang string) bool {
	l := strings.ToLower(lang)
	return l == "ko" || strings.HasPrefix(l, "ko-") || strings.HasPrefix(l, "ko_")
}

// FormatAmount spells amount, in the minor unit of currency, for a reader
// of lang: "5,000원" for KRW in Korean ("ko", "ko-KR"), otherwise the code
// first, "KRW 5,000", "USD 12.50", "BHD 1.250" (the minor digits by ISO
// 4217; a code it does not know gets two). Thousands are separated by
// commas.
func FormatAmount(amount int64, currency, lang string) string {
	u := uint64(amount)
	if amount < 0 {
		u = -u // two's complement: right for math.MinInt64 too
	}
	digits := minorDigits(currency)
	s := strconv.FormatUint(u, 10)
	frac := ""
	if digits > 0 {
		if len(s) <= digits {
			s = strings.Repeat("0", digits-len(s)+1) + s
		}
		s, frac = s[:len(s)-digits], "."+s[len(s)-digits:]
	}
	var b strings.Builder
	if amount < 0 {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	b.WriteString(frac)
	if currency == "KRW" && korean(lang) {
		return b.String() + "원"
	}
	return currency + " " + b.String()
}

// minorDigits is the number of digits of currency's minor unit (ISO 4217).
func minorDigits(currency string) int {
	switch currency {
	case "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND", "VUV", "XAF", "XOF", "XPF":
		return 0
	case "BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND":
		return 3
	case "CLF", "UYW":
		return 4
	default:
		return 2
	}
}
