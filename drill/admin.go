package drill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/planb-chat/planb/adminapi"
)

// admin talks to the admin API of a cluster's nodes.
type admin struct{ *adminapi.Client }

func newAdmin(endpoints []Endpoint, token string) *admin {
	urls := make([]string, len(endpoints))
	for i, e := range endpoints {
		urls[i] = e.URL
	}
	return &admin{adminapi.New(token, urls...)}
}

// Lock is the cluster-wide drill lock (adminapi.DrillLock).
type Lock = adminapi.DrillLock

// ErrDrillRunning is returned when another drill holds the cluster's lock.
var ErrDrillRunning = errors.New("another drill is running on this cluster")

func (a *admin) lock(ctx context.Context, l Lock, ttl time.Duration) error {
	req := map[string]any{"id": l.ID, "scenario": l.Scenario, "holder": l.Holder, "ttl_seconds": int(ttl.Seconds())}
	err := a.Any(ctx, time.Minute, "PUT", "/drills/lock", req, nil)
	var ae *adminapi.Error
	if errors.As(err, &ae) && ae.Code == adminapi.CodeDrillRunning {
		return fmt.Errorf("%w: %s", ErrDrillRunning, ae.Message)
	}
	if err != nil {
		return fmt.Errorf("take the drill lock: %w", err)
	}
	return nil
}

func (a *admin) unlock(ctx context.Context, id string) error {
	if err := a.Any(ctx, time.Minute, "DELETE", "/drills/lock/"+id, nil, nil); err != nil {
		return fmt.Errorf("release the drill lock: %w", err)
	}
	return nil
}

// store keeps the report in the cluster's drill history.
func (a *admin) store(ctx context.Context, rep *Report) (string, error) {
	var out struct {
		Key string `json:"key"`
	}
	if err := a.Any(ctx, 2*time.Minute, "POST", "/drills", rep, &out); err != nil {
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
	if err := a.Any(ctx, 30*time.Second, "GET", fmt.Sprintf("/drills?limit=%d", limit), nil, &out); err != nil {
		return nil, fmt.Errorf("read the drill history: %w", err)
	}
	return out.Drills, nil
}
