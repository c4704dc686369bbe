package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/planb-chat/planb/adminapi"
)

// adminCmd calls the admin API: status, drain, undrain, rebalance.
type adminCmd struct {
	stdout io.Writer
	action string
	target targetFlags
	dc     string
	json   bool
	token  string
	nodes  []string // the nodes to ask, resolved by validate
}

func (c *adminCmd) flags(fs *flag.FlagSet) {
	c.target.flags(fs, devClusterFile)
	fs.StringVar(&c.dc, "dc", "", "ask only this data center's node (drain and undrain act on the node they ask: name it when the target has more than one)")
	fs.BoolVar(&c.json, "json", false, "print the raw JSON answer")
}

func (c *adminCmd) validate() error {
	var errs []error
	switch c.action {
	case "status", "drain", "undrain", "rebalance":
	default:
		errs = append(errs, fmt.Errorf("unknown admin action %q: want status, drain, undrain or rebalance", c.action))
	}
	tg, err := c.target.resolve()
	if err == nil {
		err = needToken(tg)
	}
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	c.token = tg.AdminToken
	var names []string
	for _, dc := range tg.DataCenters {
		names = append(names, dc.Name)
		if c.dc == "" || c.dc == dc.Name {
			c.nodes = append(c.nodes, dc.Nodes...)
		}
	}
	switch {
	case len(c.nodes) == 0:
		errs = append(errs, fmt.Errorf("--dc %q: the target has data centers %s", c.dc, strings.Join(names, ", ")))
	case (c.action == "drain" || c.action == "undrain") && len(c.nodes) > 1:
		errs = append(errs, fmt.Errorf("%s acts on the node it asks, and the target has %d: name its data center with --dc (one of %s), or give only its --datacenter",
			c.action, len(c.nodes), strings.Join(names, ", ")))
	}
	return errors.Join(errs...)
}

func (c *adminCmd) run(ctx context.Context, _ *slog.Logger) error {
	method := http.MethodPost
	if c.action == "status" {
		method = http.MethodGet
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var body json.RawMessage
	cl := adminapi.New(c.token, c.nodes...)
	var err error
	if len(c.nodes) == 1 {
		err = cl.At(ctx, c.nodes[0], method, "/"+c.action, nil, &body)
	} else {
		err = cl.Any(ctx, 30*time.Second, method, "/"+c.action, nil, &body)
	}
	if err != nil {
		return err
	}
	if c.json || c.action != "status" {
		var out bytes.Buffer
		_ = json.Indent(&out, body, "", "  ")
		fmt.Fprintln(c.stdout, out.String())
		return nil
	}
	return printStatus(c.stdout, body)
}

// printStatus renders the cluster status as two tables.
func printStatus(w io.Writer, body []byte) error {
	var st adminapi.ClusterStatus
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	fmt.Fprintf(w, "asked node in %s: ready=%v %s\n\n", st.This.DataCenter, st.This.Ready, st.This.Reason)
	tw := tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "DATA CENTER\tNODE\tLAST COMMIT\tHEALTHY")
	for _, d := range st.DataCenters {
		fmt.Fprintf(tw, "%s\t%s\t%.1fs ago\t%v\n", d.DataCenter, d.Node, d.AgeSeconds, d.Healthy)
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 2, 2, ' ', 0)
	fmt.Fprintln(tw, "STREAM\tLEADER\tFOLLOWERS (lag)")
	for _, s := range st.Streams {
		if s.Error != "" {
			fmt.Fprintf(tw, "%s\tunreachable\t%s\n", s.Name, s.Error)
			continue
		}
		var f []string
		for _, r := range s.Replicas {
			f = append(f, fmt.Sprintf("%s(%d)", r.Node, r.Lag))
		}
		fmt.Fprintf(tw, "%s\t%s [%s]\t%s\n", s.Name, s.Leader, s.LeaderDC, strings.Join(f, " "))
	}
	return tw.Flush()
}
