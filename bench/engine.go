package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/planb-chat/planb/adminapi"
)

// EngineLimit is the engine's publish rate on the same cluster and planb's
// throughput as a ratio of it — the headline figure, since absolute rates
// on a shared machine move from run to run.
type EngineLimit struct {
	Node            string  `json:"node"`
	Leader          string  `json:"stream_leader"`
	Replicas        int     `json:"replicas"`
	Messages        int     `json:"messages"`
	Size            int     `json:"size"`
	SyncConcurrency int     `json:"sync_concurrency"`
	SyncRate        float64 `json:"sync_per_second"`
	AsyncWindow     int     `json:"async_window"`
	AsyncRate       float64 `json:"async_per_second"`
	PlanbRate       float64 `json:"planb_per_second"`
	RatioSync       float64 `json:"planb_vs_sync"`
	RatioAsync      float64 `json:"planb_vs_async"`
	Errors          string  `json:"errors,omitempty"`
}

// engineLimit asks the node at dc to publish the same number of messages
// of the same size as planb acknowledged, straight to a temporary stream
// configured like a room-event partition (POST
// /_planb/admin/v1/bench/engine), one at a time with the senders'
// concurrency and pipelined.
func engineLimit(ctx context.Context, dc DataCenter, token string, req adminapi.EngineBenchRequest, planbRate float64) (*EngineLimit, error) {
	req.Messages = min(req.Messages, adminapi.BenchMaxMessages, int(adminapi.BenchMaxBytes/int64(req.Size)))
	req.Messages = max(req.Messages, 1)
	var rep adminapi.EngineBenchReport
	admin := adminapi.New(token, dc.URL).WithTimeout(15 * time.Minute)
	if err := admin.At(ctx, dc.URL, http.MethodPost, "/bench/engine", req, &rep); err != nil {
		return nil, fmt.Errorf("engine benchmark at %s: %w", dc.Name, err)
	}
	out := &EngineLimit{Node: rep.Node, Leader: rep.Leader, Replicas: rep.Replicas, Messages: req.Messages, Size: rep.Size,
		SyncConcurrency: rep.SyncConc, SyncRate: rep.Sync.PerSecond, AsyncWindow: rep.AsyncWin, AsyncRate: rep.Async.PerSecond,
		PlanbRate: planbRate}
	if out.SyncRate > 0 {
		out.RatioSync = planbRate / out.SyncRate
	}
	if out.AsyncRate > 0 {
		out.RatioAsync = planbRate / out.AsyncRate
	}
	if rep.Sync.Errors+rep.Async.Errors > 0 {
		out.Errors = fmt.Sprintf("one at a time: %d (%s); pipelined: %d (%s)", rep.Sync.Errors, rep.Sync.FirstError, rep.Async.Errors, rep.Async.FirstError)
	}
	return out, nil
}

// profileNodes saves a CPU profile of every node, taken over d, into dir.
func profileNodes(ctx context.Context, dcs []DataCenter, token, dir string, d time.Duration) []error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return []error{fmt.Errorf("pprof dir: %w", err)}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	secs := max(1, int(d.Seconds()))
	for _, dc := range dcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := fetchProfile(ctx, dc, token, secs, filepath.Join(dir, dc.Name+"-cpu.pprof"))
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

func fetchProfile(ctx context.Context, dc DataCenter, token string, secs int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		fmt.Sprintf("%s%s/bench/pprof/profile?seconds=%d", dc.URL, adminapi.Path, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", dc.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("profile %s: HTTP %d", dc.Name, resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile %s: %w", dc.Name, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", dc.Name, err)
	}
	return f.Close()
}

// spreadLeaders asks the cluster to spread its stream leaderships (the
// admin rebalance) until the room-event partitions are led evenly, up to
// a minute, so that every run starts from the same layout: a fresh
// cluster may have one data center leading no partition, and the
// cluster's own rebalancing would then move leaders in the middle of the
// load. It returns the partitions each node leads.
func spreadLeaders(ctx context.Context, target Target, say func(string, ...any)) (map[string]int, error) {
	dc := target.DataCenters[0]
	admin := adminapi.New(target.AdminToken, dc.URL).WithTimeout(time.Minute)
	var last map[string]int
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		var rep adminapi.RebalanceReport
		if err := admin.At(ctx, dc.URL, http.MethodPost, "/rebalance", nil, &rep); err != nil {
			return nil, fmt.Errorf("rebalance at %s: %w", dc.Name, err)
		}
		last = rep.EventLeadersBefore
		lo, hi := -1, 0
		for _, n := range last {
			if lo < 0 || n < lo {
				lo = n
			}
			hi = max(hi, n)
		}
		if len(last) >= len(target.DataCenters) && hi-lo <= 1 {
			return last, nil
		}
		say("leaders: spreading the room-event partitions over the data centers: %v", last)
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return last, fmt.Errorf("partitions still led unevenly after a minute: %v", last)
}
