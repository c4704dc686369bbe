package drill

import (
	"testing"
	"time"
)

func TestDeliveryPhases(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	fault, healed := t0.Add(10*time.Second), t0.Add(30*time.Second)
	r := &receivers{}
	add := func(sentAt, took time.Duration) {
		r.samples = append(r.samples, delivery{sent: t0.Add(sentAt), took: took})
	}
	for i := 0; i < 100; i++ { // before: 10 ms each, one slow 900 ms
		took := 10 * time.Millisecond
		if i == 99 {
			took = 900 * time.Millisecond
		}
		add(time.Duration(i)*50*time.Millisecond, took)
	}
	add(10*time.Second, 7*time.Second) // sent at the fault: counts as during
	add(20*time.Second, 3*time.Second)
	add(30*time.Second, 20*time.Millisecond) // sent at healing: after
	got := r.phases(fault, healed)
	if b := got["before"]; b.Count != 100 || b.P50 != 10 || b.P99 != 900 || b.Max != 900 {
		t.Errorf("before = %+v", b)
	}
	if d := got["during"]; d.Count != 2 || d.P50 != 7000 || d.Max != 7000 {
		t.Errorf("during = %+v (p50 of two samples is the upper one)", d)
	}
	if a := got["after"]; a.Count != 1 || a.P99 != 20 {
		t.Errorf("after = %+v", a)
	}
	if l := summarize(nil); l.Count != 0 {
		t.Errorf("empty = %+v", l)
	}
}
