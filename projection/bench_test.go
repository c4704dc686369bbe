package projection

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/planb-chat/planb"
)

// benchRoomEvents is the size of the room BenchmarkMessagesFromTheMiddle
// reads (PLANB_BENCH_ROOM_EVENTS overrides it).
func benchRoomEvents() int {
	if n, err := strconv.Atoi(os.Getenv("PLANB_BENCH_ROOM_EVENTS")); err == nil && n > 0 {
		return n
	}
	return 1_000_000
}

// BenchmarkMessagesFromTheMiddle pages 50 events backwards from random
// places in the middle of one room of a million events kept on disk, as
// /messages does, and reports the latency percentiles.
func BenchmarkMessagesFromTheMiddle(b *testing.B) {
	n := benchRoomEvents()
	w := newWorld(b, 1)
	m, _, err := Open(1, func(string) int { return 0 }, StoreOptions{Dir: filepath.Join(b.TempDir(), "readmodel"), CacheBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	w.m = m
	r := w.createRoom("!big:hs", 0, alice, "shared")
	r.join(bob)
	start := time.Now()
	const perRecord = 50
	for have := r.w.m.Stats().Events; have < n; have += perRecord {
		evs := make([]*planb.Event, perRecord)
		for i := range evs {
			evs[i] = r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": fmt.Sprintf("message %d of the big room", have+i)})
		}
		r.commit(evs...)
	}
	b.Logf("filled a room of %d events in %s", m.Stats().Events, time.Since(start).Round(time.Millisecond))
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		from := n/4 + rand.IntN(n/2)
		t0 := time.Now()
		page, err := m.Messages(bob, "DEV", r.id, topoToken(from), "", true, 50, nil)
		lat = append(lat, time.Since(t0))
		if err != nil || len(page.Chunk) != 50 {
			b.Fatalf("page from %d: %d events, %v", from, len(page.Chunk), err)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(ms(0.5), "p50-ms")
	b.ReportMetric(ms(0.99), "p99-ms")
}
