package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"

	"github.com/planb-chat/planb/node"
)

// serveCmd runs one node.
type serveCmd struct {
	configFile  string
	cfg         node.Config
	clusterPort int
	routes      listFlag
	tokens      listFlag
	set         map[string]bool
}

func newServeCmd() *serveCmd { return &serveCmd{cfg: node.Default()} }

func (c *serveCmd) flags(fs *flag.FlagSet) {
	d := node.Default()
	fs.StringVar(&c.configFile, "config", "", "JSON config file (flags override it)")
	fs.StringVar(&c.cfg.DataDir, "data", d.DataDir, "data directory of the embedded engine")
	fs.StringVar(&c.cfg.HTTPListen, "http", d.HTTPListen, "HTTP listen address (host:port)")
	fs.StringVar(&c.cfg.ServerName, "server-name", d.ServerName, "Matrix server name")
	fs.StringVar(&c.cfg.PublicURL, "public-url", "", "this node's public client URL (default: from the request)")
	fs.StringVar(&c.cfg.DataCenter, "dc", d.DataCenter, "this node's data center name")
	fs.StringVar(&c.cfg.NodeName, "node", "", "this node's name in the cluster (default: the data center name)")
	fs.StringVar(&c.cfg.Cluster.Listen, "cluster", "", "cluster listen address (host:port) for routes between nodes")
	fs.IntVar(&c.clusterPort, "cluster-port", 0, "shorthand for --cluster 127.0.0.1:PORT")
	fs.Var(&c.routes, "route", "route to another node (host:port; repeat)")
	fs.IntVar(&c.cfg.Replicas, "replicas", d.Replicas, "replicas of every stream and bucket (1, 3 or 5)")
	fs.IntVar(&c.cfg.Partitions, "partitions", d.Partitions, "room-event partitions (fixed when the cluster is created)")
	fs.BoolVar(&c.cfg.OpenRegistration, "open-registration", false, "let anyone register (m.login.dummy)")
	fs.Var(&c.tokens, "registration-token", "allow registration with this token (repeat)")
	fs.Int64Var(&c.cfg.MaxUploadBytes, "max-upload-bytes", d.MaxUploadBytes, "largest media upload")
	fs.IntVar(&c.cfg.LoginPerMinute, "rate-limit-login", d.LoginPerMinute, "login and registration attempts per minute per IP")
	fs.IntVar(&c.cfg.LoginBurst, "rate-limit-burst", d.LoginBurst, "burst above the login rate")
	c.set = map[string]bool{}
	fs.Func("nats-url", "use an existing NATS JetStream cluster at this URL instead of the embedded engine (repeat)", func(v string) error {
		c.cfg.External.URLs = append(c.cfg.External.URLs, v)
		return nil
	})
	fs.StringVar(&c.cfg.External.CredsFile, "nats-creds", "", "credentials file for --nats-url")
}

func (c *serveCmd) validate() error {
	if c.configFile != "" {
		fileCfg, err := node.Load(c.configFile)
		if err != nil {
			return err
		}
		// Flags given on the command line override the file.
		c.cfg = mergeFlags(fileCfg, c.cfg, c.set)
	}
	if c.clusterPort > 0 {
		c.cfg.Cluster.Listen = fmt.Sprintf("127.0.0.1:%d", c.clusterPort)
	}
	if len(c.routes) > 0 {
		c.cfg.Cluster.Routes = c.routes
	}
	if len(c.tokens) > 0 {
		c.cfg.RegistrationTokens = c.tokens
	}
	if err := c.cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return nil
}

// mergeFlags returns the file config with the explicitly set flags applied.
func mergeFlags(file, flags node.Config, set map[string]bool) node.Config {
	_ = set
	d := node.Default()
	if flags.DataDir != d.DataDir {
		file.DataDir = flags.DataDir
	}
	if flags.HTTPListen != d.HTTPListen {
		file.HTTPListen = flags.HTTPListen
	}
	if flags.ServerName != d.ServerName {
		file.ServerName = flags.ServerName
	}
	if flags.DataCenter != d.DataCenter {
		file.DataCenter = flags.DataCenter
	}
	if flags.OpenRegistration {
		file.OpenRegistration = true
	}
	return file
}

func (c *serveCmd) run(ctx context.Context, log *slog.Logger) error {
	log = log.With("dc", c.cfg.DataCenter)
	if strings.HasPrefix(c.cfg.HTTPListen, "0.0.0.0") {
		log.Warn("listening on all interfaces; put TLS in front of planb")
	}
	return node.Run(ctx, c.cfg, log)
}
