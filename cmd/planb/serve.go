package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/node"
)

// serveCmd runs one node. Flags given on the command line override the
// config file, which overrides the defaults.
type serveCmd struct {
	fs          *flag.FlagSet
	configFile  string
	flagCfg     node.Config // values of the flags
	cfg         node.Config // the result
	clusterPort int
	routes      listFlag
	tokens      listFlag
	dcs         listFlag
	natsURLs    listFlag
	admin       listFlag
}

func newServeCmd() *serveCmd { return &serveCmd{flagCfg: node.Default()} }

func (c *serveCmd) flags(fs *flag.FlagSet) {
	c.fs = fs
	d, f := node.Default(), &c.flagCfg
	fs.StringVar(&c.configFile, "config", "", "JSON config file (flags override it)")
	fs.StringVar(&f.DataDir, "data", d.DataDir, "data directory of the embedded engine")
	fs.StringVar(&f.HTTPListen, "http", d.HTTPListen, "HTTP listen address (host:port)")
	fs.StringVar(&f.ServerName, "server-name", d.ServerName, "Matrix server name")
	fs.StringVar(&f.PublicURL, "public-url", "", "this node's public client URL (default: from the request)")
	fs.StringVar(&f.DataCenter, "dc", d.DataCenter, "this node's data center name")
	fs.StringVar(&f.NodeName, "node", "", "this node's name in the cluster (default: the data center name)")
	fs.StringVar(&f.Cluster.Listen, "cluster", "", "cluster listen address (host:port) for routes between nodes")
	fs.IntVar(&c.clusterPort, "cluster-port", 0, "shorthand for --cluster 127.0.0.1:PORT")
	fs.Var(&c.routes, "route", "route to another node, [DC=]host:port (repeat; name routes by data center for drills)")
	fs.BoolVar(&f.Cluster.NoAdvertise, "no-advertise", false, "do not gossip route addresses (links go through a proxy)")
	fs.Var(&c.dcs, "datacenter", "a data center's client endpoint, NAME=URL (repeat; listed in /.well-known)")
	fs.IntVar(&f.Replicas, "replicas", d.Replicas, "replicas of every stream and bucket (1, 3 or 5)")
	fs.IntVar(&f.Partitions, "partitions", d.Partitions, "room-event partitions (fixed when the cluster is created)")
	fs.BoolVar(&f.OpenRegistration, "open-registration", false, "let anyone register (m.login.dummy)")
	fs.Var(&c.tokens, "registration-token", "allow registration with this token (repeat)")
	fs.Var(&c.admin, "admin-token", "a token for the admin API /_planb/admin/v1 (repeat)")
	fs.Int64Var(&f.MaxUploadBytes, "max-upload-bytes", d.MaxUploadBytes, "largest media upload in bytes")
	fs.IntVar(&f.LoginPerMinute, "rate-limit-login", d.LoginPerMinute, "login and registration attempts per minute per IP")
	fs.IntVar(&f.LoginBurst, "rate-limit-burst", d.LoginBurst, "burst above the login rate")
	fs.StringVar(&f.RebalanceEvery, "rebalance-every", d.RebalanceEvery, "how often to check that stream leaderships are spread over the data centers and spread them when the cluster is settled (0: off)")
	fs.BoolVar(&f.Faults.Enabled, "enable-faults", false, "turn on the admin fault endpoint so planb drill can cut or slow this node's routes (off in production unless you drill)")
	fs.Var(&c.natsURLs, "nats-url", "use an existing NATS JetStream cluster at this URL instead of the embedded engine (repeat)")
	fs.StringVar(&f.External.CredsFile, "nats-creds", "", "credentials file for --nats-url")
}

func (c *serveCmd) validate() error {
	cfg := node.Default()
	if c.configFile != "" {
		var err error
		if cfg, err = node.Load(c.configFile); err != nil {
			return err
		}
	}
	f := c.flagCfg
	var errs []string
	c.fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "data":
			cfg.DataDir = f.DataDir
		case "http":
			cfg.HTTPListen = f.HTTPListen
		case "server-name":
			cfg.ServerName = f.ServerName
		case "public-url":
			cfg.PublicURL = f.PublicURL
		case "dc":
			cfg.DataCenter = f.DataCenter
		case "node":
			cfg.NodeName = f.NodeName
		case "cluster":
			cfg.Cluster.Listen = f.Cluster.Listen
		case "cluster-port":
			cfg.Cluster.Listen = fmt.Sprintf("127.0.0.1:%d", c.clusterPort)
		case "route":
			cfg.Cluster.Routes = c.routes
		case "no-advertise":
			cfg.Cluster.NoAdvertise = f.Cluster.NoAdvertise
		case "datacenter":
			cfg.DataCenters = nil
			for _, v := range c.dcs {
				name, url, ok := strings.Cut(v, "=")
				if !ok {
					errs = append(errs, fmt.Sprintf("--datacenter %q: want NAME=URL", v))
					continue
				}
				cfg.DataCenters = append(cfg.DataCenters, homeserver.Endpoint{Name: name, BaseURL: url})
			}
		case "replicas":
			cfg.Replicas = f.Replicas
		case "partitions":
			cfg.Partitions = f.Partitions
		case "open-registration":
			cfg.OpenRegistration = f.OpenRegistration
		case "registration-token":
			cfg.RegistrationTokens = c.tokens
		case "admin-token":
			cfg.AdminTokens = c.admin
		case "max-upload-bytes":
			cfg.MaxUploadBytes = f.MaxUploadBytes
		case "rate-limit-login":
			cfg.LoginPerMinute = f.LoginPerMinute
		case "rate-limit-burst":
			cfg.LoginBurst = f.LoginBurst
		case "nats-url":
			cfg.External.URLs = c.natsURLs
		case "rebalance-every":
			cfg.RebalanceEvery = f.RebalanceEvery
		case "enable-faults":
			cfg.Faults.Enabled = f.Faults.Enabled
		case "nats-creds":
			cfg.External.CredsFile = f.External.CredsFile
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("invalid flags:\n%s", strings.Join(errs, "\n"))
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
