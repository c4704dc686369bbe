package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"

	"github.com/planb-chat/planb/node"
)

// devCmd runs a local development setup with open registration.
//
// For now it runs a single node; the three-data-center cluster of child
// processes is the next step (issue "Three data centers, one service").
type devCmd struct {
	stdout   io.Writer
	data     string
	basePort int
	dcs      int
}

func (c *devCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "planb-dev", "data directory (a second run reuses it)")
	fs.IntVar(&c.basePort, "base-port", 8008, "HTTP port of the first data center")
	fs.IntVar(&c.dcs, "dcs", 1, "number of data centers (only 1 is supported yet)")
}

func (c *devCmd) validate() error {
	var errs []error
	if c.basePort < 1 || c.basePort > 65000 {
		errs = append(errs, fmt.Errorf("--base-port %d: want 1..65000", c.basePort))
	}
	if c.dcs != 1 {
		errs = append(errs, fmt.Errorf("--dcs %d: this build runs one data center in dev mode", c.dcs))
	}
	if c.data == "" {
		errs = append(errs, errors.New("--data is required"))
	}
	return errors.Join(errs...)
}

func (c *devCmd) run(ctx context.Context, log *slog.Logger) error {
	cfg := node.Default()
	cfg.DataDir = filepath.Join(c.data, "dc1")
	cfg.HTTPListen = fmt.Sprintf("127.0.0.1:%d", c.basePort)
	cfg.OpenRegistration = true
	cfg.PublicURL = fmt.Sprintf("http://127.0.0.1:%d", c.basePort)
	fmt.Fprintf(c.stdout, "planb dev: data center dc1 at %s (data in %s)\n", cfg.PublicURL, cfg.DataDir)
	return node.Run(ctx, cfg, log)
}
