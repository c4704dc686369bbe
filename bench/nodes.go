package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// nodeSample is one scrape of a node's /metrics.
type nodeSample struct {
	at         time.Time
	cpuSeconds float64 // process_cpu_seconds_total
	rss        float64 // process_resident_memory_bytes
	heapInuse  float64 // go_memstats_heap_inuse_bytes
	stackInuse float64 // go_memstats_stack_inuse_bytes
	goroutines float64 // go_goroutines
	openFDs    float64 // process_open_fds
	maxFDs     float64 // process_max_fds
}

// scrape reads the process and Go metrics of the node at baseURL.
func scrape(ctx context.Context, hc *http.Client, baseURL string) (nodeSample, error) {
	s := nodeSample{at: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(baseURL, "/")+"/metrics", nil)
	if err != nil {
		return s, fmt.Errorf("metrics request: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return s, fmt.Errorf("scrape %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("scrape %s: status %d", baseURL, resp.StatusCode)
	}
	want := map[string]*float64{
		"process_cpu_seconds_total":     &s.cpuSeconds,
		"process_resident_memory_bytes": &s.rss,
		"go_memstats_heap_inuse_bytes":  &s.heapInuse,
		"go_memstats_stack_inuse_bytes": &s.stackInuse,
		"go_goroutines":                 &s.goroutines,
		"process_open_fds":              &s.openFDs,
		"process_max_fds":               &s.maxFDs,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if p := want[name]; p != nil {
			if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
				*p = v
				found++
			}
		}
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("scrape %s: %w", baseURL, err)
	}
	if s.rss == 0 {
		return s, fmt.Errorf("scrape %s: no process_resident_memory_bytes (process collector missing?)", baseURL)
	}
	return s, nil
}

// usageMeter follows every node's CPU and memory through a phase.
type usageMeter struct {
	hc  *http.Client
	dcs []DataCenter

	mu    sync.Mutex // guards first, last, maxRSS, errs
	first []nodeSample
	last  []nodeSample
	maxRS []float64
	errs  []string
	cpu0  time.Duration // bench process CPU at start
	t0    time.Time
}

func newUsageMeter(ctx context.Context, hc *http.Client, dcs []DataCenter) *usageMeter {
	u := &usageMeter{hc: hc, dcs: dcs, first: make([]nodeSample, len(dcs)), last: make([]nodeSample, len(dcs)),
		maxRS: make([]float64, len(dcs)), errs: make([]string, len(dcs)), cpu0: selfCPU(), t0: time.Now()}
	u.sample(ctx, true)
	return u
}

// sample scrapes every node once.
func (u *usageMeter) sample(ctx context.Context, first bool) {
	var wg sync.WaitGroup
	for i, dc := range u.dcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			s, err := scrape(cctx, u.hc, dc.URL)
			cancel()
			u.mu.Lock()
			defer u.mu.Unlock()
			if err != nil {
				u.errs[i] = err.Error()
				return
			}
			if first {
				u.first[i] = s
			}
			u.last[i] = s
			u.maxRS[i] = max(u.maxRS[i], s.rss)
		}()
	}
	wg.Wait()
}

// finish takes a last sample and returns every node's usage over the phase
// and the bench process's own CPU use.
func (u *usageMeter) finish(ctx context.Context) ([]NodeUsage, float64) {
	u.sample(ctx, false)
	benchCPU := (selfCPU() - u.cpu0).Seconds() / time.Since(u.t0).Seconds()
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]NodeUsage, len(u.dcs))
	for i, dc := range u.dcs {
		f, l := u.first[i], u.last[i]
		out[i] = NodeUsage{DataCenter: dc.Name}
		if f.at.IsZero() || l.at.Sub(f.at) <= 0 {
			out[i].Error = "no metrics: " + u.errs[i]
			continue
		}
		out[i].CPUCores = (l.cpuSeconds - f.cpuSeconds) / l.at.Sub(f.at).Seconds()
		out[i].RSSMiB = l.rss / (1 << 20)
		out[i].MaxRSSMiB = u.maxRS[i] / (1 << 20)
		out[i].HeapMiB = l.heapInuse / (1 << 20)
	}
	return out, benchCPU
}

// selfCPU returns this process's user+system CPU time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
