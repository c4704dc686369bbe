package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/planb-chat/planb/cluster"
	"github.com/planb-chat/planb/faultnet"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/httpapi"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
	"github.com/planb-chat/planb/webclient"
)

// Run runs the node until ctx ends, then shuts down in order: stop taking
// requests, stop following the log, close the engine.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if cfg.NodeName == "" {
		cfg.NodeName = cfg.DataCenter
	}
	for _, w := range cfg.Warnings() {
		log.Warn("configuration: " + w)
	}
	ln, err := net.Listen("tcp", cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTPListen, err)
	}
	log.Info("starting engine", "node", cfg.NodeName, "datacenter", cfg.DataCenter, "replicas", cfg.Replicas, "data", cfg.DataDir)
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	jcfg := jetstream.Config{
		DataDir: cfg.DataDir, NodeName: cfg.NodeName, DataCenter: cfg.DataCenter,
		ClusterListen: cfg.Cluster.Listen, ClusterAdvertise: cfg.Cluster.Advertise,
		Routes: cfg.routeURLs(), NoAdvertise: cfg.Cluster.NoAdvertise,
		Replicas: cfg.Replicas, Partitions: cfg.Partitions,
		ExternalURLs: cfg.External.URLs, CredsFile: cfg.External.CredsFile,
	}
	var faults httpapi.FaultInjector
	if cfg.Faults.Enabled {
		links, wiring, err := faultnet.Start(cfg.NodeName, cfg.Cluster.Listen, cfg.routes(), log)
		if err != nil {
			cancel()
			ln.Close()
			return fmt.Errorf("start the fault proxies: %w", err)
		}
		defer links.Close()
		jcfg.ClusterListen, jcfg.Routes, jcfg.ClusterAdvertise = wiring.ClusterListen, wiring.Routes, wiring.Advertise
		faults = faultInjector{links}
		log.Warn("the admin fault endpoint is enabled: drills may cut or slow this node's routes", "routes", len(wiring.Routes))
	}
	engine, err := jetstream.Start(startCtx, jcfg, log)
	cancel()
	if err != nil {
		ln.Close()
		return fmt.Errorf("start engine: %w", err)
	}
	defer engine.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	model, reset, err := projection.Open(engine.Partitions(), engine.Partition, projection.StoreOptions{
		Dir: filepath.Join(cfg.DataDir, "readmodel"), CacheBytes: int64(cfg.CacheSizeMB) << 20,
		MinFreeBytes: uint64(cfg.MinFreeDiskMB) << 20, Rebuild: cfg.RebuildReadModels, Log: log})
	if err != nil {
		ln.Close()
		return fmt.Errorf("open the read models: %w", err)
	}
	defer model.Close()
	if reset != "" {
		log.Info("read models start empty and are rebuilt from the log", "why", reset)
	} else {
		pos := model.Position()
		log.Info("read models resume from their store", "events", model.Stats().Events, "position", pos.String())
	}
	hs := homeserver.New(cfg.Config, engine, model, log, reg)
	ops := cluster.New(cfg.Policy, engine, hs, log, reg)
	api := httpapi.New(hs, ops, log, httpapi.Options{
		Limits: cfg.Limits, Registry: reg, Faults: faults,
		Extra: func(mux *http.ServeMux) {
			mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				fmt.Fprintf(w, "{\"status\":\"ok\",\"datacenter\":%q}\n", cfg.DataCenter)
			})
			mux.HandleFunc("GET /ready", readyHandler(hs))
			mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
			webclient.Register(mux)
		},
	})
	srv := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	// The node runs until ctx ends (SIGTERM) and then first hands its
	// stream leaderships over while it still serves, so that stopping it
	// interrupts no partition for longer than a leader change.
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()
	g, gctx := errgroup.WithContext(runCtx)
	g.Go(func() error {
		select {
		case <-ctx.Done():
			hctx, cancel := context.WithTimeout(context.Background(), handOverTimeout)
			ops.HandOver(hctx)
			cancel()
			stopRun()
		case <-gctx.Done():
		}
		return nil
	})
	g.Go(func() error { return hs.Run(gctx) })
	g.Go(func() error { return ops.Run(gctx) })
	g.Go(func() error {
		log.Info("serving Matrix client-server API", "addr", ln.Addr().String(), "server_name", cfg.ServerName)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx) // long-polls are cut after the grace period
		return nil
	})
	err = g.Wait()
	log.Info("stopped")
	return err
}

// handOverTimeout bounds the hand-over of leaderships when the node stops.
// One round takes about 0.3 s; when every node stops at once (Ctrl-C on
// planb dev) nobody can take over and the bound is all it costs.
const handOverTimeout = 3 * time.Second

// readyHandler answers 200 only when this node can commit writes and its
// read models have caught up with the log; load balancers route on it.
func readyHandler(hs *homeserver.Service) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		st := hs.Status()
		w.Header().Set("Content-Type", "application/json")
		if !st.Ready {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(st)
	}
}

// faultInjector adapts faultnet.Links to the HTTP edge.
type faultInjector struct{ l *faultnet.Links }

func (f faultInjector) Status() any                            { return f.l.Status() }
func (f faultInjector) Isolate(d time.Duration) error          { return f.l.Isolate(d) }
func (f faultInjector) Blackhole(d time.Duration) error        { return f.l.Blackhole(d) }
func (f faultInjector) Cut(peer string, d time.Duration) error { return f.l.Cut(peer, d) }
func (f faultInjector) Heal() error                            { return f.l.Heal() }
func (f faultInjector) Slow(peer string, latency, jitter, d time.Duration) error {
	return f.l.Slow(peer, latency, jitter, d)
}
