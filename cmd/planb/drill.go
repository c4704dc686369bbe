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
	"time"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/drill"
)

// drillCmd breaks a dev cluster on purpose under load and reports RTO, RPO,
// duplicates, errors and catch-up.
type drillCmd struct {
	stdout, stderr io.Writer
	clusterFile    string
	cfg            drill.Config
	out            string
}

func (c *drillCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.clusterFile, "cluster", "planb-dev/cluster.json", "cluster file written by planb dev")
	fs.StringVar(&c.cfg.Scenario, "scenario", drill.ScenarioDCLoss, "dc-loss (SIGKILL, then restart) or dc-isolate (cut links, then heal)")
	fs.StringVar(&c.cfg.Target, "target", "", "data center to break (default: the second)")
	fs.IntVar(&c.cfg.Users, "users", 6, "simulated users, spread over the data centers")
	fs.IntVar(&c.cfg.Rooms, "rooms", 8, "rooms; every user sends into every room")
	fs.DurationVar(&c.cfg.Interval, "interval", 500*time.Millisecond, "time between sends of one user into one room")
	fs.DurationVar(&c.cfg.Before, "before", 10*time.Second, "load before the fault")
	fs.DurationVar(&c.cfg.During, "during", 20*time.Second, "how long the fault lasts")
	fs.DurationVar(&c.cfg.After, "after", 10*time.Second, "load after healing")
	fs.DurationVar(&c.cfg.RTOBudget, "rto-budget", 10*time.Second, "fail when writes take longer to resume in every room")
	fs.IntVar(&c.cfg.Partitions, "partitions", 8, "the cluster's room-event partitions")
	fs.StringVar(&c.out, "out", "", "also write the report as JSON to this file")
}

func (c *drillCmd) validate() error {
	f, err := devcluster.ReadClusterFile(c.clusterFile)
	if err != nil {
		return fmt.Errorf("--cluster: %w (drills on real deployments need the admin fault endpoint, which this build does not have yet)", err)
	}
	c.cfg.Cluster = f
	c.cfg.Progress = c.stderr
	return c.cfg.Validate()
}

func (c *drillCmd) run(ctx context.Context, _ *slog.Logger) error {
	rep, err := drill.Run(ctx, c.cfg)
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	rep.Human(c.stdout)
	if c.out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", c.out, err)
		}
	}
	if !rep.Pass {
		return errors.New("the drill found the promise broken (see FAILED above)")
	}
	return nil
}
