package projection

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/planb-chat/planb"
)

// BenchmarkSearch fills one room kept on disk with messages of ten words
// each, drawn from a vocabulary of 5,000 with a Zipf distribution (as
// words of a language are), and searches it as /search does: for a rare
// word, a common one, a prefix and two words. It reports the fill rate
// (events applied per second, with the search index written) and the
// latency of each search.
func BenchmarkSearch(b *testing.B) {
	n := min(benchRoomEvents(), 200_000)
	w := newWorld(b, 1)
	m, _, err := Open(1, func(string) int { return 0 }, StoreOptions{Dir: filepath.Join(b.TempDir(), "readmodel"), CacheBytes: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	w.m = m
	r := w.createRoom("!big:hs", 0, alice, "shared")
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("w%dx", i)
	}
	zipf := rand.NewZipf(rand.New(rand.NewPCG(1, 2)), 1.1, 1, uint64(len(vocab)-1))
	start := time.Now()
	const perRecord = 50
	for have := 0; have < n; have += perRecord {
		evs := make([]*planb.Event, perRecord)
		for i := range evs {
			words := make([]string, 10)
			for j := range words {
				words[j] = vocab[zipf.Uint64()]
			}
			evs[i] = r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": strings.Join(words, " ")})
		}
		r.commit(evs...)
	}
	fill := time.Since(start)
	b.Logf("filled a room of %d messages in %s (%.0f events/s)", n, fill.Round(time.Millisecond), float64(n)/fill.Seconds())
	for _, term := range []string{"w4000x", "w10x", "w1x", "w12", "w3x w20x"} {
		b.Run(term, func(b *testing.B) {
			var count int
			lat := make([]time.Duration, 0, b.N)
			for b.Loop() {
				t0 := time.Now()
				res, err := m.Search(SearchRequest{User: alice, Term: term, OrderBy: "recent"})
				lat = append(lat, time.Since(t0))
				if err != nil {
					b.Fatal(err)
				}
				count = res.Count
			}
			slices.Sort(lat)
			b.ReportMetric(float64(count), "matches")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
