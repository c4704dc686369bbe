package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/planb-chat/planb/bench"
)

// benchCmd generates load against a cluster and reports throughput,
// latencies, the engine's limit, idle-connection cost and rebuild time.
type benchCmd struct {
	stdout, stderr io.Writer
	cfg            bench.Config
	target         targetFlags
	jsonOut        bool
	out            string
}

func newBenchCmd(stdout, stderr io.Writer) *benchCmd {
	return &benchCmd{stdout: stdout, stderr: stderr, cfg: bench.Default()}
}

func (c *benchCmd) flags(fs *flag.FlagSet) {
	d := &c.cfg
	fs.BoolVar(&d.Dev, "dev", false, "start a local three-data-center cluster in a temporary directory, and stop it after")
	fs.IntVar(&d.DevBasePort, "dev-base-port", 0, "base port of the --dev cluster (0: a free range)")
	fs.BoolVar(&d.KeepDev, "keep-dev", false, "keep the --dev cluster's directory (its logs) after the run")
	c.target.flags(fs, "")
	fs.IntVar(&d.Users, "users", d.Users, "users that send, spread over the data centers")
	fs.IntVar(&d.Rooms, "rooms", d.Rooms, "rooms")
	fs.IntVar(&d.Members, "members", d.Members, "sending members per room")
	fs.IntVar(&d.Senders, "senders", d.Senders, "concurrent senders")
	fs.IntVar(&d.Receivers, "receivers", d.Receivers, "users in every room following /sync (delivery latency)")
	fs.IntVar(&d.MessageSize, "size", d.MessageSize, "message body size in bytes")
	fs.DurationVar(&d.Duration, "duration", d.Duration, "saturated phase: every sender sends again as soon as acknowledged")
	fs.DurationVar(&d.PacedDuration, "paced-duration", d.PacedDuration, "paced phase at --paced-rate (0 skips it)")
	fs.Float64Var(&d.PacedRate, "paced-rate", 0, "sends/s offered in the paced phase (0: half the saturated rate)")
	fs.BoolVar(&d.Engine, "engine", d.Engine, "measure the engine's own publish rate on the same cluster")
	fs.IntVar(&d.EngineWindow, "engine-window", d.EngineWindow, "unacknowledged publishes of the pipelined engine publisher")
	fs.IntVar(&d.IdleSyncs, "idle-syncs", d.IdleSyncs, "idle /sync long-polls to hold against one node (0 skips)")
	fs.IntVar(&d.IdleUsers, "idle-users", d.IdleUsers, "users the idle long-polls belong to (all in one room)")
	fs.IntVar(&d.IdleNode, "idle-node", 0, "index of the data center that holds the idle long-polls")
	fs.DurationVar(&d.IdleTimeout, "idle-timeout", d.IdleTimeout, "timeout of the idle long-polls")
	fs.IntVar(&d.HistoryMessages, "history-messages", 0, "messages the --dev cluster holds in its history before the load, a tenth in one room whose /messages is timed (0: it starts empty)")
	fs.StringVar(&d.HistoryDir, "history-dir", "", "keep the --dev cluster with its history here and reuse it next time (default: a temporary directory)")
	fs.IntVar(&d.KeysSamples, "e2ee-samples", d.KeysSamples, "one-time-key claims and to-device messages to time across data centers (0 skips)")
	fs.BoolVar(&d.Pushers, "pushers", d.Pushers, "register a pusher for every receiver, pointing at a push gateway the bench serves, and measure push latency")
	fs.StringVar(&d.PushGatewayListen, "push-gateway", d.PushGatewayListen, "host:port the bench's push gateway listens on; the nodes must reach it (port 0 picks one)")
	fs.IntVar(&d.RebuildEvents, "rebuild-events", d.RebuildEvents, "events in the log a fresh node rebuilds from (0 skips)")
	fs.StringVar(&d.RebuildDir, "rebuild-dir", "", "keep the rebuild log here and reuse it next time (default: a temporary directory)")
	fs.StringVar(&d.PprofDir, "pprof", "", "save a CPU profile of every node during the saturated phase into this directory")
	fs.BoolVar(&c.jsonOut, "json", false, "write the report as JSON to stdout instead of text")
	fs.StringVar(&c.out, "out", "", "also write the report as JSON to this file")
}

func (c *benchCmd) validate() error {
	var errs []error
	switch {
	case c.cfg.Dev && c.target.given():
		errs = append(errs, errors.New("give one target: --dev, --cluster or --datacenter"))
	case c.target.given():
		tg, err := c.target.resolve()
		if err != nil {
			errs = append(errs, err)
		}
		c.cfg.Target = bench.Target{Name: c.target.label(), AdminToken: tg.AdminToken}
		for _, dc := range tg.DataCenters {
			c.cfg.Target.DataCenters = append(c.cfg.Target.DataCenters, bench.DataCenter{Name: dc.Name, URL: dc.Nodes[0]})
		}
	}
	c.cfg.Progress = c.stderr
	if err := c.cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid flags:\n%w", err)
	}
	return nil
}

func (c *benchCmd) run(ctx context.Context, log *slog.Logger) error {
	c.cfg.Log = log
	rep, err := bench.Run(ctx, c.cfg)
	if rep != nil {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if c.jsonOut {
			c.stdout.Write(append(b, '\n'))
		} else {
			rep.Human(c.stdout)
		}
		if c.out != "" {
			if werr := os.WriteFile(c.out, append(b, '\n'), 0o644); werr != nil {
				return errors.Join(err, fmt.Errorf("write %s: %w", c.out, werr))
			}
		}
	}
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
