package cluster

import (
	"fmt"
	"strings"
	"time"

	"github.com/planb-chat/planb/compensation"
	"github.com/planb-chat/planb/incident"
)

// The words of incident notices, in Korean and English.

// kst is Korea Standard Time (UTC+9, no daylight saving).
var kst = time.FixedZone("KST", 9*3600)

// noticeTime formats t for a notice in lang.
func noticeTime(lang string, t time.Time) string {
	if lang == "ko" {
		return t.In(kst).Format("2006년 1월 2일 15:04 KST")
	}
	return t.UTC().Format("2 Jan 2006 15:04 UTC")
}

// noticeDuration formats d in whole minutes, or seconds under a minute.
func noticeDuration(lang string, d time.Duration) string {
	if d < time.Minute {
		sec := max(int(d/time.Second), 1)
		if lang == "ko" {
			return fmt.Sprintf("%d초", sec)
		}
		return fmt.Sprintf("%d s", sec)
	}
	m := int(d.Round(time.Minute) / time.Minute)
	h, m := m/60, m%60
	if lang == "ko" {
		switch {
		case h == 0:
			return fmt.Sprintf("%d분", m)
		case m == 0:
			return fmt.Sprintf("%d시간", h)
		}
		return fmt.Sprintf("%d시간 %d분", h, m)
	}
	switch {
	case h == 0:
		return fmt.Sprintf("%d min", m)
	case m == 0:
		return fmt.Sprintf("%d h", h)
	}
	return fmt.Sprintf("%d h %d min", h, m)
}

// what says what happened, in lang.
func what(lang string, in incident.Incident) string {
	where := strings.Join(in.DataCenters, ", ")
	switch {
	case lang == "ko" && in.Kind == incident.DataCenterLost:
		return "데이터센터 " + where + " 장애"
	case lang == "ko" && in.Kind == incident.NodeNotReady:
		return "데이터센터 " + where + "의 서비스 중단"
	case lang == "ko":
		return "메시지 저장소 일부(파티션 " + partitions(in.Partitions) + ")의 쓰기 중단"
	case in.Kind == incident.DataCenterLost:
		return "an outage of data center " + where
	case in.Kind == incident.NodeNotReady:
		return "a stop of service at data center " + where
	}
	return "a stop of writes to part of the message store (partition " + partitions(in.Partitions) + ")"
}

func partitions(ps []int) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = fmt.Sprint(p)
	}
	return strings.Join(s, ", ")
}

// noticeText is the notice a user gets once an incident has affected them
// for longer than the notice threshold.
func noticeText(lang string, in incident.Incident, a incident.Affected, now time.Time, statusURL string) string {
	d := noticeDuration(lang, a.Duration(now))
	if lang == "ko" {
		return fmt.Sprintf("[장애 안내] %s부터 %s 서비스 이용에 영향을 받고 계십니다(지금까지 %s). "+
			"복구 중이며, 끝나면 다시 알려 드리겠습니다. 불편을 드려 죄송합니다.\n"+
			"피해가 있으셨다면 웹 클라이언트의 '장애 피해 신고'로 알려 주세요(장애 번호 %s).\n"+
			"서비스 상태: %s", noticeTime(lang, in.StartedAt), josa(what(lang, in), "으로", "로"), d, in.ID, statusURL)
	}
	return fmt.Sprintf("[Outage notice] Since %s, %s has affected your use of the service (%s so far). "+
		"We are recovering and will tell you when it is over. We are sorry for the trouble.\n"+
		"If it caused you damage, report it under \"Report damage\" in the web client (incident %s).\n"+
		"Service status: %s", noticeTime(lang, in.StartedAt), what(lang, in), d, in.ID, statusURL)
}

// followUpText is the notice a notified user gets when the incident is
// over: how long it affected them and what the published rule pays them.
func followUpText(lang string, in incident.Incident, a incident.Affected, res compensation.Result, p compensation.Policy, statusURL string) string {
	end := in.StartedAt
	if in.EndedAt != nil {
		end = *in.EndedAt
	}
	d := noticeDuration(lang, a.Duration(end))
	amount := compensation.FormatAmount(res.Amount, res.Currency, lang)
	if lang == "ko" {
		return fmt.Sprintf("[장애 종료] %s부터 이어진 %s %s에 끝났습니다. 영향을 받으신 시간: %s.\n"+
			"보상 기준에 따른 보상액: %s (영향 %d분 기준)\n보상 기준: %s\n"+
			"피해가 있으셨다면 웹 클라이언트의 '장애 피해 신고'로 알려 주세요(장애 번호 %s).\n서비스 상태: %s",
			noticeTime(lang, in.StartedAt), josa(what(lang, in), "이", "가"), noticeTime(lang, end), d, amount, res.AffectedMinutes, p.Describe(lang), in.ID, statusURL)
	}
	return fmt.Sprintf("[Outage over] %s, which began %s, ended %s. You were affected for %s.\n"+
		"Compensation by the published rule: %s (%s)\nThe rule: %s\n"+
		"If it caused you damage, report it under \"Report damage\" in the web client (incident %s).\nService status: %s",
		capitalize(what(lang, in)), noticeTime(lang, in.StartedAt), noticeTime(lang, end), d, amount, res.Explanation, p.Describe(lang), in.ID, statusURL)
}

// josa appends the Korean particle that fits word's last syllable:
// withFinal after a final consonant (중단 → 중단으로), else without (장애 →
// 장애로). A final ㄹ takes 로, not 으로.
func josa(word, withFinal, without string) string {
	r := []rune(word)
	if len(r) == 0 {
		return word + without
	}
	last := r[len(r)-1]
	if last < 0xAC00 || last > 0xD7A3 {
		return word + without
	}
	final := (last - 0xAC00) % 28
	if final == 0 || (final == 8 && withFinal == "으로") {
		return word + without
	}
	return word + withFinal
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
