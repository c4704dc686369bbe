package drill

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// AdminError is an error answer of a node's admin API.
type AdminError struct {
	URL     string
	Status  int
	Code    string `json:"errcode"`
	Message string `json:"error"`
}

func (e *AdminError) Error() string {
	return fmt.Sprintf("%s: HTTP %d %s: %s", e.URL, e.Status, e.Code, e.Message)
}

// admin talks to the admin API (/_planb/admin/v1) of a cluster's nodes.
type admin struct {
	endpoints []Endpoint // every node the drill knows, data center by data center
	token     string
	hc        *http.Client
}

func newAdmin(endpoints []Endpoint, token string) *admin {
	return &admin{endpoints: endpoints, token: token, hc: &http.Client{Timeout: 30 * time.Second}}
}

const adminPath = "/_planb/admin/v1"

// at sends one request to the node at base and decodes a 200 answer into out.
func (a *admin) at(ctx context.Context, base, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+adminPath+path, rd)
	if err != nil {
		return fmt.Errorf("build %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, base+path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, base+path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &AdminError{URL: base + adminPath + path, Status: resp.StatusCode}
		if json.Unmarshal(b, ae) != nil || ae.Code == "" {
			ae.Message = string(b)
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

// any sends a cluster-wide request to the nodes in turn until one answers:
// the drill lock and the history live in the replicated engine, so every
// node serves them while it reaches a quorum. Errors the node decided on
// (4xx) are returned at once; unreachable nodes and 5xx move on, for up to
// budget.
func (a *admin) any(ctx context.Context, budget time.Duration, method, path string, body, out any) error {
	deadline := time.Now().Add(budget)
	var last error
	for round := 0; ; round++ {
		for _, e := range a.endpoints {
			err := a.at(ctx, e.URL, method, path, body, out)
			if err == nil {
				return nil
			}
			var ae *AdminError
			if errors.As(err, &ae) && ae.Status < 500 {
				return err
			}
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no node answered within %v: %w", budget, last)
		}
		if err := sleep(ctx, time.Second); err != nil {
			return err
		}
	}
}

// Lock is the cluster-wide drill lock (see homeserver.DrillLock).
type Lock struct {
	ID       string    `json:"id"`
	Scenario string    `json:"scenario"`
	Holder   string    `json:"holder"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
}

// ErrDrillRunning is returned when another drill holds the cluster's lock.
var ErrDrillRunning = errors.New("another drill is running on this cluster")

func (a *admin) lock(ctx context.Context, l Lock, ttl time.Duration) error {
	req := map[string]any{"id": l.ID, "scenario": l.Scenario, "holder": l.Holder, "ttl_seconds": int(ttl.Seconds())}
	err := a.any(ctx, time.Minute, "PUT", "/drills/lock", req, nil)
	var ae *AdminError
	if errors.As(err, &ae) && ae.Code == "ORG.PLANB.DRILL_RUNNING" {
		return fmt.Errorf("%w: %s", ErrDrillRunning, ae.Message)
	}
	if err != nil {
		return fmt.Errorf("take the drill lock: %w", err)
	}
	return nil
}

func (a *admin) unlock(ctx context.Context, id string) error {
	if err := a.any(ctx, time.Minute, "DELETE", "/drills/lock/"+id, nil, nil); err != nil {
		return fmt.Errorf("release the drill lock: %w", err)
	}
	return nil
}

// store keeps the report in the cluster's drill history.
func (a *admin) store(ctx context.Context, rep *Report) (string, error) {
	var out struct {
		Key string `json:"key"`
	}
	if err := a.any(ctx, 2*time.Minute, "POST", "/drills", rep, &out); err != nil {
		return "", fmt.Errorf("store the report in the cluster: %w", err)
	}
	return out.Key, nil
}

// History lists the drills stored in the cluster, newest first.
func History(ctx context.Context, endpoints []Endpoint, token string, limit int) ([]Report, error) {
	var out struct {
		Drills []Report `json:"drills"`
	}
	a := newAdmin(endpoints, token)
	if err := a.any(ctx, 30*time.Second, "GET", fmt.Sprintf("/drills?limit=%d", limit), nil, &out); err != nil {
		return nil, fmt.Errorf("read the drill history: %w", err)
	}
	return out.Drills, nil
}
