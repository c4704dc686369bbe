package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/planb-chat/planb/devcluster"
)

// devCluster is a local three-data-center cluster started for one run.
type devCluster struct {
	dir    string
	base   int
	file   *devcluster.ClusterFile
	cancel context.CancelFunc
	done   chan error
	keep   bool
}

// startDev starts a dev cluster (devcluster.Run: one `planb serve` child
// per data center) and waits until it is ready: in dir (kept afterwards)
// when given, else in a temporary directory; on base port base, or on free
// ports when 0.
func startDev(ctx context.Context, cfg Config, dir string, base int, log *slog.Logger, say func(string, ...any)) (*devCluster, error) {
	keep := cfg.KeepDev || dir != ""
	var err error
	if dir == "" {
		if dir, err = os.MkdirTemp("", "planb-bench-dev-"); err != nil {
			return nil, fmt.Errorf("dev cluster dir: %w", err)
		}
	}
	if base == 0 {
		if base, err = devcluster.FreeBasePort(3); err != nil {
			if !keep {
				os.RemoveAll(dir)
			}
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &devCluster{dir: dir, base: base, cancel: cancel, done: make(chan error, 1), keep: keep}
	// The nodes' readiness lines ("catching up with the log: …") become
	// the progress line: on a large history they may take minutes.
	var lastLine atomic.Pointer[string]
	out := lineFunc(func(line string) { lastLine.Store(&line) })
	go func() {
		d.done <- devcluster.Run(rctx, devcluster.Config{Binary: cfg.Binary, DataDir: dir, BasePort: base, DCs: 3, Log: log,
			Stdout: out, ReadyTimeout: 30 * time.Minute})
	}()
	start := time.Now()
	path := filepath.Join(dir, devcluster.ClusterFileName)
	for {
		select {
		case err := <-d.done:
			d.done <- err
			d.stop()
			if err == nil {
				err = errors.New("stopped before it was ready")
			}
			return nil, fmt.Errorf("dev cluster: %w", err)
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if f, err := devcluster.ReadClusterFile(path); err == nil {
			d.file = f
			return d, nil
		}
		status := ""
		if l := lastLine.Load(); l != nil && strings.HasPrefix(*l, "waiting for") {
			status = " — " + *l
		}
		say("dev cluster: starting three data centers in %s (base port %d): %.0f s%s", dir, base, time.Since(start).Seconds(), status)
	}
}

// lineFunc is an io.Writer that hands each written chunk, trimmed, to a
// function (the supervisor writes whole lines).
type lineFunc func(string)

func (f lineFunc) Write(b []byte) (int, error) {
	if s := strings.TrimSpace(string(b)); s != "" {
		f(s)
	}
	return len(b), nil
}

// target returns the dev cluster as a bench target.
func (d *devCluster) target() Target {
	t := Target{Name: "dev cluster (3 data centers, R3)", AdminToken: d.file.AdminToken}
	for _, dc := range d.file.DataCenters {
		t.DataCenters = append(t.DataCenters, DataCenter{Name: dc.Name, URL: dc.URL})
	}
	return t
}

// stop stops the cluster and removes its directory (unless kept).
func (d *devCluster) stop() {
	d.cancel()
	select {
	case <-d.done:
	case <-time.After(devcluster.StopTimeout + 10*time.Second):
	}
	if !d.keep {
		os.RemoveAll(d.dir)
	}
}
