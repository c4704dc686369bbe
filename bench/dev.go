package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/planb-chat/planb/devcluster"
)

// devCluster is a local three-data-center cluster started for one run.
type devCluster struct {
	dir    string
	file   *devcluster.ClusterFile
	cancel context.CancelFunc
	done   chan error
	keep   bool
}

// startDev starts a dev cluster (devcluster.Run: one `planb serve` child
// per data center) in a temporary directory on free ports and waits until
// it is ready.
func startDev(ctx context.Context, cfg Config, log *slog.Logger, say func(string, ...any)) (*devCluster, error) {
	dir, err := os.MkdirTemp("", "planb-bench-dev-")
	if err != nil {
		return nil, fmt.Errorf("dev cluster dir: %w", err)
	}
	base := cfg.DevBasePort
	if base == 0 {
		if base, err = devcluster.FreeBasePort(3); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &devCluster{dir: dir, cancel: cancel, done: make(chan error, 1), keep: cfg.KeepDev}
	go func() {
		d.done <- devcluster.Run(rctx, devcluster.Config{Binary: cfg.Binary, DataDir: dir, BasePort: base, DCs: 3, Log: log, Stdout: io.Discard})
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
		say("dev cluster: starting three data centers in %s (base port %d): %.0f s", dir, base, time.Since(start).Seconds())
	}
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
