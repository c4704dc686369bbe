package homeserver

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/projection"
)

// SyncParams are the query parameters of GET /sync.
type SyncParams struct {
	Since     string
	Timeout   time.Duration
	FullState bool
	Filter    string // a filter ID or inline JSON
}

// maxSyncTimeout caps long-polls so that intermediaries do not cut them.
const maxSyncTimeout = 5 * time.Minute

// resolveFilter returns the filter named or spelled out by f.
func (s *Service) resolveFilter(ctx context.Context, sess Session, f string) (*projection.Filter, error) {
	if f == "" {
		return nil, nil
	}
	var raw json.RawMessage
	if strings.HasPrefix(strings.TrimSpace(f), "{") {
		raw = json.RawMessage(f)
	} else {
		b, err := s.Filter(ctx, sess, sess.UserID, f)
		if err != nil {
			return nil, planb.InvalidParam("unknown filter %q", f)
		}
		raw = b
	}
	return projection.ParseFilter(raw)
}

// Sync answers GET /sync: it first catches up to the positions of the since
// token (which another node may have issued), then answers at once when
// there is something new, or waits up to the timeout for it.
func (s *Service) Sync(ctx context.Context, sess Session, p SyncParams) (*projection.SyncResponse, error) {
	filter, err := s.resolveFilter(ctx, sess, p.Filter)
	if err != nil {
		return nil, err
	}
	req := projection.SyncRequest{User: sess.UserID, Device: sess.DeviceID, FullState: p.FullState, Filter: filter}
	timeout := min(max(p.Timeout, 0), maxSyncTimeout)
	deadline := time.Now().Add(timeout)
	if p.Since != "" {
		tok, err := projection.ParseToken(p.Since, s.engine.Partitions())
		if err != nil {
			return nil, planb.InvalidParam("invalid since token: %v", err)
		}
		req.Since = &tok
		// A token from a node that is ahead of us: catch up first, but never
		// wait past the client's timeout (at least a few seconds).
		wctx, cancel := context.WithDeadline(ctx, latest(deadline, time.Now().Add(5*time.Second)))
		err = s.model.WaitFor(wctx, tok)
		cancel()
		if err != nil && ctx.Err() == nil {
			return nil, s.unavailable(err)
		}
	}
	for {
		resp, has, wake := s.model.Sync(req)
		if has || req.Since == nil || p.FullState || !time.Now().Before(deadline) {
			return resp, nil
		}
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-wake:
			t.Stop()
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
