// Package adminapi is the one Go client of planb's admin API
// (/_planb/admin/v1 on every node): `planb admin`, `planb drill` and
// `planb bench` all talk to clusters through it.
package adminapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// Path is the admin API's prefix on every node.
const Path = "/_planb/admin/v1"

// CodeDrillRunning is the errcode of a drill lock held by another drill.
const CodeDrillRunning = "ORG.PLANB.DRILL_RUNNING"

// Error is an error answer of a node's admin API.
type Error struct {
	URL     string
	Status  int
	Code    string `json:"errcode"`
	Message string `json:"error"`
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.URL, e.Status, e.Code, e.Message)
}

// Client talks to the admin API of a cluster's nodes with one admin token.
type Client struct {
	// Endpoints are the base URLs of every node the client knows, in the
	// order Any tries them.
	Endpoints []string
	token     string
	hc        *http.Client
}

// New returns a client for the nodes at endpoints (base URLs).
func New(token string, endpoints ...string) *Client {
	eps := make([]string, len(endpoints))
	for i, e := range endpoints {
		eps[i] = strings.TrimRight(e, "/")
	}
	return &Client{Endpoints: eps, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
}

// WithTimeout returns a copy of c whose requests may take up to d each
// (the default is 30 s; an engine benchmark takes minutes).
func (c *Client) WithTimeout(d time.Duration) *Client {
	cp := *c
	cp.hc = &http.Client{Timeout: d}
	return &cp
}

// At sends one request to the node at base and decodes a 200 answer into
// out (a *json.RawMessage keeps it as it came). A non-200 answer is an
// *Error.
func (c *Client) At(ctx context.Context, base, method, path string, body, out any) error {
	base = strings.TrimRight(base, "/")
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+Path+path, rd)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &Error{URL: base + Path + path, Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Code == "" {
			ae.Message = string(bytes.TrimSpace(b))
		}
		return ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, base+path, err)
		}
	}
	return nil
}

// Any sends a cluster-wide request to the nodes in turn until one answers:
// what lives in the replicated engine (the drill lock and history, the
// cluster status) is served by every node that reaches a quorum. Errors a
// node decided on (4xx) are returned at once; unreachable nodes and 5xx
// answers move on to the next node, for up to budget.
func (c *Client) Any(ctx context.Context, budget time.Duration, method, path string, body, out any) error {
	if len(c.Endpoints) == 0 {
		return errors.New("admin API: no node to ask")
	}
	deadline := time.Now().Add(budget)
	var last error
	for {
		for _, base := range c.Endpoints {
			err := c.At(ctx, base, method, path, body, out)
			if err == nil {
				return nil
			}
			var ae *Error
			if errors.As(err, &ae) && ae.Status < 500 {
				return err
			}
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no node answered within %v: %w", budget, last)
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
