// Command planb is a Matrix homeserver that keeps working when a whole data
// center is lost. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "planb:", err)
		os.Exit(1)
	}
}

// command is one subcommand.
type command interface {
	// flags registers the command's flags.
	flags(fs *flag.FlagSet)
	// validate checks the parsed flags, reporting every problem.
	validate() error
	// run executes the command.
	run(ctx context.Context, log *slog.Logger) error
}

const usage = `planb — a Matrix homeserver that survives the loss of a data center

Usage:
  planb dev    [flags]   run a local cluster for development (open registration)
  planb serve  [flags]   run one node
  planb drill  [flags]   break a cluster on purpose under load (dc-loss, dc-freeze,
                         dc-isolate, dc-blackhole, dc-flap, bridge-partition, slow-link,
                         rolling-restart, drain) and report
                         RTO, RPO, duplicates, errors, delivery latency, catch-up
  planb drill history [flags]
                         list the drills stored in the cluster
  planb bench  [flags]   load a cluster (--dev: a local one) and report sends/s,
                         send and delivery latency, the engine's own limit, memory
                         per idle /sync and read-model rebuild time
  planb ready  [--url URL]
                         exit 0 when the node at URL answers /ready with 200 (a
                         container health check; default http://127.0.0.1:8008)
  planb admin  status|drain|undrain|rebalance [flags]
                         ask a node for the cluster's status, evacuate its data
                         center, or spread stream leaders evenly again
  planb admin  incidents|incident|reports|report-status|compensation [flags]
                         the outages the cluster recorded, whom they affected,
                         damage reports (export with --format csv), their
                         status, and what the compensation rule pays

Commands that work on a cluster (admin, drill, bench) take the same target
flags: --cluster FILE (written by planb dev; admin and drill default to
planb-dev/cluster.json), or --datacenter NAME=URL for every node of a
deployment, and --admin-token TOKEN (or $PLANB_ADMIN_TOKEN).

Run 'planb <command> -h' for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	var cmd command
	switch args[0] {
	case "serve":
		cmd = newServeCmd()
	case "admin":
		if len(args) < 2 {
			return fmt.Errorf("planb admin needs an action: status, drain, undrain, rebalance, %s", strings.Join(incidentActions, ", "))
		}
		cmd = &adminCmd{stdout: stdout, action: args[1]}
		if slices.Contains(incidentActions, args[1]) {
			cmd = &incidentsCmd{stdout: stdout, action: args[1]}
		}
		args = append([]string{"admin " + args[1]}, args[2:]...)
	case "drill":
		if len(args) > 1 && args[1] == "history" {
			cmd = &drillHistoryCmd{stdout: stdout}
			args = append([]string{"drill history"}, args[2:]...)
			break
		}
		cmd = &drillCmd{stdout: stdout, stderr: stderr}
	case "dev":
		cmd = &devCmd{stdout: stdout}
	case "bench":
		cmd = newBenchCmd(stdout, stderr)
	case "ready":
		cmd = &readyCmd{stdout: stdout}
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("planb "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	cmd.flags(fs)
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if err := cmd.validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return cmd.run(ctx, log)
}

// listValue is a repeatable flag whose values replace the list from the
// config file, or its default (they do not add to it).
type listValue struct {
	dst *[]string
	set bool
}

func (l *listValue) String() string {
	if l == nil || l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listValue) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	*l.dst = append(*l.dst, v)
	return nil
}
