package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/planb-chat/planb/devcluster"
)

// devCmd runs a local cluster of data centers for development: one
// `planb serve` child process per data center, links between them through
// an in-process toxiproxy, open registration (see package devcluster).
type devCmd struct {
	stdout   io.Writer
	data     string
	basePort int
	dcs      int
}

func (c *devCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", "planb-dev", "data directory (a second run reuses it)")
	fs.IntVar(&c.basePort, "base-port", 8008, "HTTP port of dc1; dc2 is +1, ...; toxiproxy API is +99, NATS routes +100.., links +211..")
	fs.IntVar(&c.dcs, "dcs", 3, "number of data centers: 3 or 5")
}

func (c *devCmd) config(log *slog.Logger) devcluster.Config {
	return devcluster.Config{DataDir: c.data, BasePort: c.basePort, DCs: c.dcs, Log: log, Stdout: c.stdout}
}

func (c *devCmd) validate() error {
	if err := c.config(nil).Validate(); err != nil {
		return fmt.Errorf("invalid flags (--data, --base-port, --dcs):\n%w", err)
	}
	return nil
}

func (c *devCmd) run(ctx context.Context, log *slog.Logger) error {
	return devcluster.Run(ctx, c.config(log))
}
