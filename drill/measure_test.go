package drill

import (
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func part(room string) int {
	if room == "a" || room == "b" {
		return 0
	}
	return 1
}

// Hand-made timeline: the fault hits at 10 s. Room a keeps going every
// 0.5 s; room b (same partition) stalls 4 s; room c (partition 1) stalls
// 7.5 s; room d never writes again.
func timeline() []Ack {
	var acks []Ack
	for s := 8.0; s <= 22; s += 0.5 {
		acks = append(acks, Ack{Room: "a", At: at(s)})
		if s < 10 || s >= 14 {
			acks = append(acks, Ack{Room: "b", At: at(s)})
		}
		if s < 10 || s >= 17.5 {
			acks = append(acks, Ack{Room: "c", At: at(s)})
		}
		if s < 10 {
			acks = append(acks, Ack{Room: "d", At: at(s)})
		}
	}
	return acks
}

func TestMeasureGaps(t *testing.T) {
	rec := Measure(timeline(), []string{"a", "b", "c"}, part, at(10), at(22), time.Second)
	got := map[string]time.Duration{}
	for _, g := range rec.Rooms {
		got[g.Key] = g.Longest
	}
	want := map[string]time.Duration{"a": 500 * time.Millisecond, "b": 4 * time.Second, "c": 7500 * time.Millisecond}
	for room, w := range want {
		if got[room] != w {
			t.Errorf("room %s: longest gap %v, want %v", room, got[room], w)
		}
	}
	if rec.Partitions[0] != 4*time.Second || rec.Partitions[1] != 7500*time.Millisecond {
		t.Errorf("partitions = %v, want 0:4s 1:7.5s", rec.Partitions)
	}
	if rec.AllResumed != 7500*time.Millisecond {
		t.Errorf("AllResumed = %v, want 7.5s (room c)", rec.AllResumed)
	}
	if rec.Uninterrupted != 1 {
		t.Errorf("Uninterrupted = %d, want 1 (room a)", rec.Uninterrupted)
	}
	if !slices.IsSortedFunc(rec.Rooms, func(x, y Gap) int { return int(x.Longest - y.Longest) }) {
		t.Errorf("rooms not sorted by gap: %+v", rec.Rooms)
	}
}

func TestMeasureNeverResumed(t *testing.T) {
	rec := Measure(timeline(), []string{"a", "d"}, part, at(10), at(22), time.Second)
	if rec.AllResumed != 0 {
		t.Errorf("AllResumed = %v with a room that never resumed, want 0", rec.AllResumed)
	}
	for _, g := range rec.Rooms {
		if g.Key == "d" && (g.Longest != 12*time.Second || !g.Resumed.IsZero()) {
			t.Errorf("room d: %+v, want a 12 s gap and no resumption", g)
		}
	}
}

func TestMeasureTrailingGapCounts(t *testing.T) {
	// Writes stop 2 s before the end of the window: that is a gap too.
	acks := []Ack{{Room: "a", At: at(10.2)}, {Room: "a", At: at(11)}}
	rec := Measure(acks, []string{"a"}, part, at(10), at(13), time.Second)
	if rec.Rooms[0].Longest != 2*time.Second {
		t.Errorf("trailing gap = %v, want 2s", rec.Rooms[0].Longest)
	}
}

func TestCheck(t *testing.T) {
	acks := []Ack{{Room: "r", EventID: "$1", Tag: "t1"}, {Room: "r", EventID: "$2", Tag: "t2"}, {Room: "s", EventID: "$3", Tag: "t3"}}
	good := map[string]map[string]Stored{
		"dc1": {"r": {EventIDs: []string{"$1", "$2"}, Tags: []string{"t1", "t2"}}, "s": {EventIDs: []string{"$3"}, Tags: []string{"t3"}}},
		"dc3": {"r": {EventIDs: []string{"$1", "$2"}, Tags: []string{"t1", "t2"}}, "s": {EventIDs: []string{"$3"}, Tags: []string{"t3"}}},
	}
	if l := Check(acks, good); len(l.Missing)+len(l.Duplicates)+len(l.OrderDiffers) != 0 {
		t.Fatalf("clean read-back reported %+v", l)
	}
	bad := map[string]map[string]Stored{
		"dc1": {"r": {EventIDs: []string{"$1", "$2", "$9"}, Tags: []string{"t1", "t2", "t2"}}, "s": {EventIDs: []string{"$3"}, Tags: []string{"t3"}}},
		"dc3": {"r": {EventIDs: []string{"$2", "$1"}, Tags: []string{"t2", "t1"}}, "s": {}},
	}
	l := Check(acks, bad)
	if !slices.Equal(l.Missing, []string{"$3"}) {
		t.Errorf("Missing = %v, want [$3]", l.Missing)
	}
	if !slices.Equal(l.Duplicates, []string{"t2"}) {
		t.Errorf("Duplicates = %v, want [t2]", l.Duplicates)
	}
	if !slices.Equal(l.OrderDiffers, []string{"r", "s"}) {
		t.Errorf("OrderDiffers = %v, want [r s]", l.OrderDiffers)
	}
}

func TestLedElsewhere(t *testing.T) {
	rooms := []Gap{
		{Key: "a", Longest: 600 * time.Millisecond}, // partition 0, led by dc2: untouched
		{Key: "b", Longest: 4 * time.Second},        // partition 1, led by dc2: interrupted
		{Key: "c", Longest: 7 * time.Second},        // partition 2, led by the target
		{Key: "d", Longest: 9 * time.Second},        // partition 3, leader unknown
	}
	part := map[string]int{"a": 0, "b": 1, "c": 2, "d": 3}
	led := map[int]string{0: "dc2", 1: "dc2", 2: "dc1"}
	n, bad := ledElsewhere(rooms, led, func(r string) int { return part[r] }, "dc1", time.Second)
	if n != 2 || bad != 1 {
		t.Fatalf("led elsewhere %d, interrupted %d; want 2 and 1", n, bad)
	}
	if n, bad := ledElsewhere(rooms, nil, func(r string) int { return part[r] }, "dc1", time.Second); n != 0 || bad != 0 {
		t.Fatalf("without leaders: %d, %d", n, bad)
	}
}

func TestCheckReads(t *testing.T) {
	final := map[string]Stored{"!r": {EventIDs: []string{"$1", "$2", "$3", "$4"}}}
	reads := []map[string][]string{
		{"!r": {"$1", "$2", "$2", "$4"}}, // in order, $2 given twice
		{"!r": {"$3", "$2", "$9"}},       // $2 after $3; $9 never stored
	}
	got := CheckReads(reads, final)
	if got.Checked != 6 || got.Redelivered != 1 || got.OutOfOrder != 1 || len(got.Phantom) != 1 || got.Phantom[0] != "$9" {
		t.Fatalf("CheckReads = %+v", got)
	}
	if clean := CheckReads(reads[:1], final); clean.OutOfOrder != 0 || len(clean.Phantom) != 0 {
		t.Fatalf("a clean read: %+v", clean)
	}
}
