package cluster

import (
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb/compensation"
	"github.com/planb-chat/planb/incident"
)

func TestJosa(t *testing.T) {
	for _, c := range []struct{ word, a, b, want string }{
		{"장애", "으로", "로", "장애로"},
		{"중단", "으로", "로", "중단으로"},
		{"서울", "으로", "로", "서울로"}, // final ㄹ takes 로
		{"장애", "이", "가", "장애가"},
		{"중단", "이", "가", "중단이"},
		{"dc2", "이", "가", "dc2가"},
	} {
		if got := josa(c.word, c.a, c.b); got != c.want {
			t.Errorf("josa(%q, %q, %q) = %q, want %q", c.word, c.a, c.b, got, c.want)
		}
	}
}

func TestNoticeTexts(t *testing.T) {
	start := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	end := start.Add(150 * time.Minute)
	in := incident.Incident{ID: "20261204-180000-dc2-lost", Kind: incident.DataCenterLost, StartedAt: start, EndedAt: &end, DataCenters: []string{"dc2"}}
	a := incident.Affected{Incident: in.ID, User: "@sam:x", Intervals: []incident.Interval{{From: start, To: end}}}
	p := compensation.DefaultPolicy()
	res := p.Evaluate(in, a, end)
	still := incident.Affected{Incident: in.ID, User: "@sam:x", Intervals: []incident.Interval{{From: start}}}
	ko := noticeText("ko", in, still, start.Add(125*time.Minute), "https://x/status")
	for _, want := range []string{"2026년 12월 5일 03:00 KST", "데이터센터 dc2 장애로", "2시간 5분", in.ID, "https://x/status"} {
		if !strings.Contains(ko, want) {
			t.Errorf("Korean notice lacks %q:\n%s", want, ko)
		}
	}
	en := followUpText("en", in, a, res, p, "https://x/status")
	for _, want := range []string{"An outage of data center dc2", "4 Dec 2026 20:30 UTC", "2 h 30 min", "KRW 5,000", in.ID} {
		if !strings.Contains(en, want) {
			t.Errorf("English follow-up lacks %q:\n%s", want, en)
		}
	}
	if ko := followUpText("ko", in, a, res, p, ""); !strings.Contains(ko, "5,000원") || !strings.Contains(ko, "장애가") {
		t.Errorf("Korean follow-up:\n%s", ko)
	}
	if got := noticeDuration("ko", 20*time.Second); got != "20초" {
		t.Errorf("noticeDuration(20s) = %q", got)
	}
}
