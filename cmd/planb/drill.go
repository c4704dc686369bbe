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
	"strings"
	"text/tabwriter"
	"time"

	"github.com/planb-chat/planb/drill"
)

// drillCmd breaks a cluster on purpose under load and reports RTO, RPO,
// duplicates, errors, delivery latency and catch-up.
type drillCmd struct {
	stdout, stderr io.Writer
	target         targetFlags
	cfg            drill.Config
	out            string
}

func (c *drillCmd) flags(fs *flag.FlagSet) {
	c.target.flags(fs, devClusterFile)
	fs.StringVar(&c.cfg.Scenario, "scenario", drill.ScenarioDCLoss, "one of: "+strings.Join(drill.Scenarios(), ", "))
	fs.StringVar(&c.cfg.Target, "target", "", "data center to break (default: the second)")
	fs.StringVar(&c.cfg.Peer, "peer", "", "slow-link: the other data center of the link (default: the one after --target)")
	fs.DurationVar(&c.cfg.Latency, "latency", 100*time.Millisecond, "slow-link: latency added each way")
	fs.DurationVar(&c.cfg.Jitter, "jitter", 20*time.Millisecond, "slow-link: jitter of that latency")
	fs.DurationVar(&c.cfg.Flap, "flap", 3*time.Second, "dc-flap: length of each cut and of each healed spell between cuts")
	fs.IntVar(&c.cfg.Users, "users", 6, "simulated users, spread over the data centers")
	fs.IntVar(&c.cfg.Rooms, "rooms", 8, "rooms; every user sends into every room")
	fs.IntVar(&c.cfg.Receivers, "receivers", 3, "users that follow /sync to measure delivery latency")
	fs.DurationVar(&c.cfg.Interval, "interval", 500*time.Millisecond, "time between sends of one user into one room")
	fs.DurationVar(&c.cfg.Before, "before", 10*time.Second, "load before the fault")
	fs.DurationVar(&c.cfg.During, "during", 20*time.Second, "how long the fault lasts")
	fs.DurationVar(&c.cfg.After, "after", 10*time.Second, "load after healing")
	fs.DurationVar(&c.cfg.RTOBudget, "rto-budget", 10*time.Second, "fail when a room goes longer without an acknowledged write")
	fs.IntVar(&c.cfg.Partitions, "partitions", 8, "the cluster's room-event partitions")
	fs.StringVar(&c.out, "out", "", "also write the report as JSON to this file")
}

func (c *drillCmd) validate() error {
	tg, err := c.target.resolve()
	if err != nil {
		return err
	}
	c.cfg.Cluster = tg
	c.cfg.Progress = c.stderr
	return c.cfg.Validate()
}

func (c *drillCmd) run(ctx context.Context, _ *slog.Logger) error {
	rep, err := drill.Run(ctx, c.cfg)
	if rep == nil {
		return fmt.Errorf("drill: %w", err)
	}
	rep.Human(c.stdout)
	if err != nil {
		fmt.Fprintf(c.stdout, "  NOT STORED in the cluster's history: %v\n", err)
	}
	if c.out != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(c.out, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", c.out, err)
		}
	}
	if !rep.Pass {
		return errors.New("the drill found the promise broken (see FAILED above)")
	}
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	return nil
}

// drillHistoryCmd lists the drills stored in the cluster.
type drillHistoryCmd struct {
	stdout io.Writer
	target targetFlags
	tg     drill.Target
	limit  int
	asJSON bool
}

func (c *drillHistoryCmd) flags(fs *flag.FlagSet) {
	c.target.flags(fs, devClusterFile)
	fs.IntVar(&c.limit, "limit", 20, "how many drills to list, newest first")
	fs.BoolVar(&c.asJSON, "json", false, "print the stored reports as JSON")
}

func (c *drillHistoryCmd) validate() error {
	var err error
	c.tg, err = c.target.resolve()
	if err == nil {
		err = needToken(c.tg)
	}
	if err == nil && (c.limit < 1 || c.limit > 1000) {
		err = errors.New("--limit must be 1..1000")
	}
	return err
}

func (c *drillHistoryCmd) run(ctx context.Context, _ *slog.Logger) error {
	var eps []drill.Endpoint
	for _, dc := range c.tg.DataCenters {
		for _, u := range dc.Nodes {
			eps = append(eps, drill.Endpoint{Name: dc.Name, URL: u})
		}
	}
	reps, err := drill.History(ctx, eps, c.tg.AdminToken, c.limit)
	if err != nil {
		return err
	}
	if c.asJSON {
		enc := json.NewEncoder(c.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(reps)
	}
	if len(reps) == 0 {
		fmt.Fprintln(c.stdout, "no drills stored in this cluster yet; run planb drill")
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "STARTED (UTC)\tID\tSCENARIO\tTARGET\tVERDICT\tRTO\tRPO\tDUPLICATES\tERRORS\tCATCH-UP")
	for _, r := range reps {
		verdict, errs := "PASS", 0
		if !r.Pass {
			verdict = "FAIL"
		}
		for _, n := range r.Errors {
			errs += n
		}
		target := r.Target
		if r.Peer != "" {
			target += "+" + r.Peer
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2fs\t%d\t%d\t%d\t%.1fs\n", r.Started.UTC().Format("2006-01-02 15:04:05"), r.ID,
			r.Scenario, target, verdict, r.RTOSeconds, r.Missing, r.Duplicates, errs, r.CatchUp)
	}
	return tw.Flush()
}
