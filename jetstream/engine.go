// Package jetstream is planb's engine: an embedded NATS JetStream server (or
// a connection to an external cluster), the declared streams, key-value
// buckets and object store, and the primitives the homeserver builds on:
// appending to a room's log with optimistic concurrency, idempotent
// publishes, leader reads and ordered replay.
//
// Every write goes through JetStream with the configured replica count and
// the server's SyncAlways policy, so an acknowledged write is fsynced on a
// quorum of replicas — in a three-data-center cluster, one per data center.
package jetstream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"
)

// Config describes how to start or reach the engine.
type Config struct {
	// DataDir is where the embedded server keeps JetStream's files.
	DataDir string
	// NodeName names this node's embedded NATS server (unique in the cluster).
	NodeName string
	// DataCenter is this node's data center; the server carries tag "dc:<name>".
	DataCenter string
	// ClusterName is the NATS cluster name shared by all nodes.
	ClusterName string
	// ClusterListen is host:port for cluster routes; empty runs standalone.
	ClusterListen string
	// ClusterAdvertise is the host:port other nodes are told to reach us
	// at. Route gossip still hands this address out even with NoAdvertise,
	// so when links must go through a fault-injection proxy, advertise an
	// address where nothing listens: gossiped direct routes then fail and
	// only the configured Routes (through the proxy) carry traffic.
	ClusterAdvertise string
	// Routes are nats-route:// URLs of the other nodes.
	Routes []string
	// NoAdvertise hides client URLs from other servers (it does not stop
	// route gossip; see ClusterAdvertise).
	NoAdvertise bool
	// ClientListen, when set, opens a NATS client port (host:port) for tools;
	// by default planb talks to its server in-process only.
	ClientListen string
	// Replicas is the replica count of every stream, bucket and object store.
	Replicas int
	// Partitions is the number of room-event streams.
	Partitions int
	// ExternalURLs connects to an operator's existing JetStream cluster
	// instead of starting an embedded server.
	ExternalURLs []string
	// CredsFile is the NATS credentials file for ExternalURLs.
	CredsFile string
}

// Route liveness: a peer that answers no ping for routePingInterval ×
// routeMaxPingsOut, or blocks a write for routeWriteDeadline, loses its
// route (and is dialled again).
const (
	routePingInterval  = 2 * time.Second
	routeMaxPingsOut   = 2
	routeWriteDeadline = 3 * time.Second
)

// Engine is a running JetStream engine. Its methods are safe for concurrent
// use.
type Engine struct {
	cfg   Config
	log   *slog.Logger
	srv   *server.Server // nil with an external cluster
	nc    *nats.Conn
	js    natsjs.JetStream
	kv    map[string]natsjs.KeyValue // fixed after Start
	media natsjs.ObjectStore
	guard *guard // nil unless an embedded clustered server
}

// Start starts the embedded server (or connects to ExternalURLs), waits
// until JetStream is usable and reconciles the declared schema. It returns
// an error if the engine cannot be ready before ctx ends.
func Start(ctx context.Context, cfg Config, log *slog.Logger) (*Engine, error) {
	if cfg.Replicas < 1 {
		cfg.Replicas = 1
	}
	if cfg.Partitions < 1 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.ClusterName == "" {
		cfg.ClusterName = "planb"
	}
	e := &Engine{cfg: cfg, log: log, kv: map[string]natsjs.KeyValue{}}
	var err error
	if len(cfg.ExternalURLs) > 0 {
		err = e.connectExternal()
	} else {
		err = e.startEmbedded(ctx)
	}
	if err != nil {
		e.Close()
		return nil, err
	}
	if err := e.reconcile(ctx); err != nil {
		e.Close()
		return nil, fmt.Errorf("reconcile schema: %w", err)
	}
	return e, nil
}

func (e *Engine) startEmbedded(ctx context.Context) error {
	cfg := e.cfg
	if cfg.DataDir == "" {
		return errors.New("engine: data directory is required")
	}
	storeDir := filepath.Join(cfg.DataDir, "jetstream")
	if err := os.MkdirAll(storeDir, 0o750); err != nil {
		return fmt.Errorf("create store dir: %w", err)
	}
	opts := &server.Options{
		ServerName:          cfg.NodeName,
		JetStream:           true,
		StoreDir:            storeDir,
		SyncAlways:          true, // fsync before ack: RPO = 0 needs it
		NoSigs:              true,
		DontListen:          cfg.ClientListen == "",
		JetStreamUniqueTag:  "dc:",
		MaxPayload:          8 * 1024 * 1024,
		LameDuckDuration:    5 * time.Second,
		LameDuckGracePeriod: time.Second,
	}
	if cfg.DataCenter != "" {
		opts.Tags = []string{"dc:" + cfg.DataCenter}
	}
	if cfg.ClientListen == "" && cfg.ClusterListen != "" && len(cfg.Routes) > 0 {
		// nats-server 2.15 starts cluster routing only after its client
		// accept loop runs: DontListen would keep routes from ever forming.
		// Open the client port on loopback at a random port instead.
		opts.DontListen = false
		opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	}
	if cfg.ClientListen != "" {
		host, port, err := splitHostPort(cfg.ClientListen)
		if err != nil {
			return fmt.Errorf("client listen: %w", err)
		}
		opts.Host, opts.Port = host, port
	}
	if cfg.ClusterListen != "" && len(cfg.Routes) == 0 {
		// JetStream cannot run clustered without peers; a node without
		// routes is a standalone single-replica server.
		e.log.Info("no cluster routes configured: running standalone", "cluster_listen", cfg.ClusterListen)
	}
	if cfg.ClusterListen != "" && len(cfg.Routes) > 0 {
		host, port, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return fmt.Errorf("cluster listen: %w", err)
		}
		opts.Cluster = server.ClusterOpts{
			Name:        cfg.ClusterName,
			Host:        host,
			Port:        port,
			NoAdvertise: cfg.NoAdvertise,
			Advertise:   cfg.ClusterAdvertise,
			// A frozen peer (SIGSTOP, a hung VM) keeps its TCP connections
			// open. With the defaults (route pings every 30 s, writes
			// retried after a 10 s deadline) the others keep queueing to it
			// for a minute; close such a route within a few seconds.
			PingInterval:  routePingInterval,
			MaxPingsOut:   routeMaxPingsOut,
			WriteDeadline: routeWriteDeadline,
			WriteTimeout:  server.WriteTimeoutPolicyClose,
		}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return fmt.Errorf("route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return fmt.Errorf("new nats server: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log: e.log.With("component", "nats")}, false, false, false)
	e.srv = srv
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		return errors.New("nats server not ready after 30s")
	}
	nc, err := nats.Connect("", nats.InProcessServer(srv), nats.Name("planb-"+cfg.NodeName),
		nats.MaxReconnects(-1), nats.PingInterval(5*time.Second))
	if err != nil {
		return fmt.Errorf("connect in-process: %w", err)
	}
	e.nc = nc
	if len(cfg.Routes) > 0 {
		if err := e.startGuard(); err != nil {
			return err
		}
	}
	return e.initJS(ctx)
}

// startGuard starts the quorum guard (guard.go).
func (e *Engine) startGuard() error {
	g := newGuard(e.srv, e.log, e.cfg.NodeName, len(e.cfg.Routes)+1, func(b []byte) error {
		return e.nc.Publish(aliveSubject, b)
	})
	if _, err := e.nc.Subscribe(aliveSubject, func(m *nats.Msg) { g.alive(m.Data) }); err != nil {
		return fmt.Errorf("subscribe %s: %w", aliveSubject, err)
	}
	e.guard = g
	go g.run()
	return nil
}

func (e *Engine) connectExternal() error {
	opts := []nats.Option{nats.Name("planb-" + e.cfg.NodeName), nats.MaxReconnects(-1)}
	if e.cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(e.cfg.CredsFile))
	}
	nc, err := nats.Connect(strings.Join(e.cfg.ExternalURLs, ","), opts...)
	if err != nil {
		return fmt.Errorf("connect %v: %w", e.cfg.ExternalURLs, err)
	}
	e.nc = nc
	return e.initJS(context.Background())
}

func (e *Engine) initJS(ctx context.Context) error {
	js, err := natsjs.New(e.nc)
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	e.js = js
	// Wait for the JetStream API to answer (in a cluster: a meta leader).
	return retry(ctx, e.log, "jetstream api", func(ctx context.Context) error {
		_, err := js.AccountInfo(ctx)
		return err
	})
}

// Close closes the connection and shuts the embedded server down.
func (e *Engine) Close() {
	if e.guard != nil {
		e.guard.close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
}

// Partitions returns the number of room-event partitions.
func (e *Engine) Partitions() int { return e.cfg.Partitions }

// Replicas returns the configured replica count.
func (e *Engine) Replicas() int { return e.cfg.Replicas }

// retry calls fn until it succeeds or ctx ends, with capped backoff. Each
// attempt may take 1 s at first, doubling to 5 s: while a new cluster is
// still forming, requests to the JetStream API go unanswered rather than
// fail, and a first attempt that waited the full 5 s made each of the
// start-up steps (API, buckets, object store) cost 5 s.
func retry(ctx context.Context, log *slog.Logger, what string, fn func(context.Context) error) error {
	delay := 100 * time.Millisecond
	limit := time.Second
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, limit)
		limit = min(2*limit, 5*time.Second)
		err := fn(cctx)
		cancel()
		if err == nil {
			return nil
		}
		var perm permanentError
		if errors.As(err, &perm) {
			return perm.error
		}
		if attempt%10 == 0 {
			log.Info("still waiting", "what", what, "attempt", attempt, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 2*time.Second)
	}
}

func splitHostPort(hp string) (string, int, error) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q: want host:port", hp)
	}
	var port int
	if _, err := fmt.Sscanf(hp[i+1:], "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hp)
	}
	return hp[:i], port, nil
}

// natsLogger adapts slog to nats-server's Logger interface.
type natsLogger struct{ log *slog.Logger }

// Noticef logs at debug: nats-server's notices are mostly its start-up
// banner; leader changes and faults come as warnings and errors.
func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Debugf(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any)  {}

// permanentError stops retry at once.
type permanentError struct{ error }

func (p permanentError) Unwrap() error { return p.error }

func permanent(err error) error { return permanentError{err} }

// QuorumConnected reports whether this node's embedded server has routes to
// a majority of the cluster (itself included) and hears it: the quorum
// guard (guard.go) has not found it cut off. known is false for an
// external engine or a standalone node, where only commits tell.
func (e *Engine) QuorumConnected() (ok, known bool) {
	if e.srv == nil || len(e.cfg.Routes) == 0 {
		return false, false
	}
	size := len(e.cfg.Routes) + 1
	ok = e.srv.NumRemotes()+1 >= size/2+1 && (e.guard == nil || !e.guard.cutOff())
	return ok, true
}

// CutOff reports whether this node knows it is cut off from a quorum of
// the cluster: it can commit nothing and hears nothing the others commit.
// An external or standalone engine never knows, and reports false.
func (e *Engine) CutOff() bool {
	quorum, known := e.QuorumConnected()
	return known && !quorum
}

// BrokenLink returns the node this one cannot hear although other peers
// still do (one end of a broken link, see guard.go), or "" when there is
// none or it cannot be told. Such a node can still commit through the
// others, but what the far node leads reaches it only after healing.
func (e *Engine) BrokenLink() string {
	if e.guard == nil {
		return ""
	}
	return e.guard.brokenLink()
}

// IsStreamLeader reports whether this node's embedded server leads stream,
// from its own Raft state (no request). known is false when that cannot be
// told: a standalone server or an external engine.
func (e *Engine) IsStreamLeader(stream string) (leader, known bool) {
	if e.srv == nil || len(e.cfg.Routes) == 0 {
		return false, false
	}
	return e.srv.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, stream), true
}

// IsMetaLeader reports whether this node's embedded server leads the
// JetStream meta group (the one elected node that places streams), from
// its own Raft state. known is false for a standalone server or an
// external engine.
func (e *Engine) IsMetaLeader() (leader, known bool) {
	if e.srv == nil || len(e.cfg.Routes) == 0 {
		return false, false
	}
	return e.srv.JetStreamIsLeader(), true
}

// NodeName returns this node's name in the cluster.
func (e *Engine) NodeName() string { return e.cfg.NodeName }
