package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/node"
)

// serveCmd runs one node. Flags given on the command line override the
// config file, which overrides the defaults (node.Default).
type serveCmd struct {
	configFile string
	// given records the flags of the command line in order, so that
	// validate can apply them over the config file.
	given []givenFlag
	cfg   node.Config // the result
}

func newServeCmd() *serveCmd { return &serveCmd{} }

// givenFlag is one flag as the command line gave it.
type givenFlag struct{ name, value string }

// bindServeFlags binds every flag of serve to its option in cfg: an
// option of the node is one field (in package node or the package it
// embeds) and one line here.
func bindServeFlags(fs *flag.FlagSet, cfg *node.Config) {
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data `directory` of the embedded engine")
	fs.StringVar(&cfg.HTTPListen, "http", cfg.HTTPListen, "HTTP listen address (`host:port`)")
	fs.StringVar(&cfg.ServerName, "server-name", cfg.ServerName, "Matrix server `name`")
	fs.Func("server-name-env", "take the Matrix server name from this environment `variable` (container images: Complement sets SERVER_NAME)", func(v string) error {
		name := os.Getenv(v)
		if name == "" {
			return fmt.Errorf("environment variable %s is not set", v)
		}
		cfg.ServerName = name
		return nil
	})
	fs.StringVar(&cfg.PublicBaseURL, "public-url", cfg.PublicBaseURL, "this node's public client `URL` (default: from the request)")
	fs.StringVar(&cfg.DataCenter, "dc", cfg.DataCenter, "this node's data center `name`")
	fs.StringVar(&cfg.NodeName, "node", cfg.NodeName, "this node's `name` in the cluster (default: the data center name)")
	fs.StringVar(&cfg.Cluster.Listen, "cluster", cfg.Cluster.Listen, "cluster listen address (`host:port`) for routes between nodes")
	fs.Func("cluster-port", "shorthand for --cluster 127.0.0.1:`PORT`", func(v string) error {
		port, err := strconv.Atoi(v)
		if err != nil || port < 1 || port > 65535 {
			return fmt.Errorf("want a port number")
		}
		cfg.Cluster.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		return nil
	})
	fs.Var(&listValue{dst: &cfg.Cluster.Routes}, "route", "route to another node, `[DC=]host:port` (repeat; name routes by data center for drills)")
	fs.BoolVar(&cfg.Cluster.NoAdvertise, "no-advertise", cfg.Cluster.NoAdvertise, "do not gossip route addresses (links go through a proxy)")
	fs.Var(&endpointsValue{dst: &cfg.Endpoints}, "datacenter", "a data center's client endpoint, `NAME=URL` (repeat; listed in /.well-known)")
	fs.IntVar(&cfg.Replicas, "replicas", cfg.Replicas, "`replicas` of every stream and bucket (1, 3 or 5)")
	fs.IntVar(&cfg.Partitions, "partitions", cfg.Partitions, "room-event `partitions` (fixed when the cluster is created)")
	fs.BoolVar(&cfg.OpenRegistration, "open-registration", cfg.OpenRegistration, "let anyone register (m.login.dummy)")
	fs.Var(&listValue{dst: &cfg.RegistrationTokens}, "registration-token", "allow registration with this `token` (repeat)")
	fs.Var(&listValue{dst: &cfg.AdminTokens}, "admin-token", "a `token` for the admin API /_planb/admin/v1 (repeat)")
	fs.Int64Var(&cfg.MaxUploadBytes, "max-upload-bytes", cfg.MaxUploadBytes, "largest media upload in `bytes`")
	fs.Var(&cfg.WriteTimeout, "write-timeout", "how long a write waits for a quorum of data centers before it fails with 503 (a `duration`)")
	fs.Var(&cfg.RefreshableTokenLifetime, "refreshable-token-lifetime", "how long an access token issued with a refresh token lives (a `duration`)")
	fs.Var(&cfg.PresenceTimeout, "presence-timeout", "how long after their last sync or presence update a user is set offline (a `duration`)")
	fs.IntVar(&cfg.LoginPerMinute, "rate-limit-login", cfg.LoginPerMinute, "login and registration `attempts` per minute per IP")
	fs.IntVar(&cfg.LoginBurst, "rate-limit-burst", cfg.LoginBurst, "`burst` above the login rate")
	fs.Var(&cfg.RebalanceEvery, "rebalance-every", "how often to check that stream leaderships are spread over the data centers and spread them when the cluster is settled (a `duration`; 0: off)")
	fs.Var(&cfg.IncidentAfter, "incident-after", "how long a data center must be silent, or a partition without a leader, before the cluster opens an incident (a `duration`)")
	fs.Var(&cfg.NoticeAfter, "notice-after", "how long an incident must have affected a user before they get a server notice (a `duration`; the Korean rule is 2h)")
	fs.BoolVar(&cfg.NoticeDrills, "notice-drills", cfg.NoticeDrills, "send incident notices for incidents caused by drills too")
	fs.IntVar(&cfg.CacheSizeMB, "cache-size", cfg.CacheSizeMB, "the read model store's block cache in `MiB` (bounds the node's memory, whatever the size of the history)")
	fs.IntVar(&cfg.MinFreeDiskMB, "min-free-disk", cfg.MinFreeDiskMB, "free space in `MiB` the read model store's disk must keep; below it the node stops applying the log and is not ready until space is freed")
	fs.BoolVar(&cfg.RebuildReadModels, "rebuild-read-models", cfg.RebuildReadModels, "delete this node's read model store at start and rebuild it from the log")
	fs.BoolVar(&cfg.Faults.Enabled, "enable-faults", cfg.Faults.Enabled, "turn on the admin fault endpoint so planb drill can cut or slow this node's routes (off in production unless you drill)")
	fs.Var(&listValue{dst: &cfg.External.URLs}, "nats-url", "use an existing NATS JetStream cluster at this `URL` instead of the embedded engine (repeat)")
	fs.StringVar(&cfg.External.CredsFile, "nats-creds", cfg.External.CredsFile, "credentials `file` for --nats-url")
}

func (c *serveCmd) flags(fs *flag.FlagSet) {
	defaults := node.Default()
	bindServeFlags(fs, &defaults)
	fs.VisitAll(func(f *flag.Flag) { f.Value = &recordedValue{Value: f.Value, name: f.Name, to: &c.given} })
	fs.StringVar(&c.configFile, "config", "", "JSON config `file` (flags override it)")
}

func (c *serveCmd) validate() error {
	cfg := node.Default()
	if c.configFile != "" {
		var err error
		if cfg, err = node.Load(c.configFile); err != nil {
			return err
		}
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	bindServeFlags(fs, &cfg)
	for _, g := range c.given {
		if err := fs.Set(g.name, g.value); err != nil {
			return fmt.Errorf("--%s %q: %w", g.name, g.value, err) // checked by the first parse already
		}
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	c.cfg = cfg
	return nil
}

func (c *serveCmd) run(ctx context.Context, log *slog.Logger) error {
	log = log.With("dc", c.cfg.DataCenter)
	if strings.HasPrefix(c.cfg.HTTPListen, "0.0.0.0") {
		log.Warn("listening on all interfaces; put TLS in front of planb")
	}
	return node.Run(ctx, c.cfg, log)
}

// recordedValue passes a flag through and records it as given.
type recordedValue struct {
	flag.Value
	name string
	to   *[]givenFlag
}

func (r *recordedValue) Set(v string) error {
	if err := r.Value.Set(v); err != nil {
		return err
	}
	*r.to = append(*r.to, givenFlag{r.name, v})
	return nil
}

func (r *recordedValue) String() string {
	if r == nil || r.Value == nil {
		return "" // the zero value flag.PrintDefaults compares the default with
	}
	return r.Value.String()
}

// IsBoolFlag keeps boolean flags usable without a value.
func (r *recordedValue) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// endpointsValue is a repeatable NAME=URL flag whose values replace the
// data centers of the config file.
type endpointsValue struct {
	dst *[]homeserver.Endpoint
	set bool
}

func (e *endpointsValue) String() string {
	if e == nil || e.dst == nil {
		return ""
	}
	parts := make([]string, 0, len(*e.dst))
	for _, ep := range *e.dst {
		parts = append(parts, ep.Name+"="+ep.BaseURL)
	}
	return strings.Join(parts, ",")
}

func (e *endpointsValue) Set(v string) error {
	name, url, ok := strings.Cut(v, "=")
	if !ok || name == "" || url == "" {
		return fmt.Errorf("want NAME=URL")
	}
	if !e.set {
		*e.dst, e.set = nil, true
	}
	*e.dst = append(*e.dst, homeserver.Endpoint{Name: name, BaseURL: url})
	return nil
}
