package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// readyCmd asks one node's /ready and exits 0 only on 200: the health
// check of a container image, which has no shell or curl to do it.
type readyCmd struct {
	stdout  io.Writer
	url     string
	timeout time.Duration
}

func (c *readyCmd) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8008", "the node's client `URL`")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "how long to wait for the answer")
}

func (c *readyCmd) validate() error {
	u, err := url.Parse(c.url)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--url %q: want http(s)://host:port", c.url)
	}
	if c.timeout <= 0 {
		return fmt.Errorf("--timeout %s: want a positive duration", c.timeout)
	}
	return nil
}

func (c *readyCmd) run(ctx context.Context, _ *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(c.url, "/")+"/ready", nil)
	if err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %d %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	fmt.Fprintln(c.stdout, "ready")
	return nil
}
