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
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/planb-chat/planb/adminapi"
)

// adminCmd calls a node's admin API: status, drain, undrain, rebalance.
type adminCmd struct {
	stdout io.Writer
	action string
	url    string
	token  string
	json   bool
}

func (c *adminCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8008", "a node's base URL")
	fs.StringVar(&c.token, "token", os.Getenv("PLANB_ADMIN_TOKEN"), "admin token (default $PLANB_ADMIN_TOKEN)")
	fs.BoolVar(&c.json, "json", false, "print the raw JSON answer")
}

func (c *adminCmd) validate() error {
	var errs []error
	switch c.action {
	case "status", "drain", "undrain", "rebalance":
	default:
		errs = append(errs, fmt.Errorf("unknown admin action %q: want status, drain, undrain or rebalance", c.action))
	}
	if c.token == "" {
		errs = append(errs, errors.New("--token (or $PLANB_ADMIN_TOKEN) is required"))
	}
	if !strings.HasPrefix(c.url, "http") {
		errs = append(errs, fmt.Errorf("--url %q: want http(s)://host:port", c.url))
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
	if err := adminapi.New(c.token, c.url).At(ctx, c.url, method, "/"+c.action, nil, &body); err != nil {
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
