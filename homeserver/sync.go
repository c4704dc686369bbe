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
	// SetPresence is set_presence: "" or online, offline, unavailable.
	SetPresence string
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

// SyncWait is a /sync long-poll that has found nothing new yet. Its
// methods are not safe for concurrent use.
type SyncWait struct {
	s        *Service
	req      projection.SyncRequest
	presence string // the sync's set_presence
	deadline time.Time
	wake     <-chan struct{}
}

// SyncStart begins GET /sync: it catches up to the since token and returns
// the answer when there is one now, or a SyncWait to wait on otherwise
// (an incremental sync with time left and nothing new). The HTTP edge
// parks such waits without holding a request goroutine (see httpapi).
func (s *Service) SyncStart(ctx context.Context, sess Session, p SyncParams) (*projection.SyncResponse, *SyncWait, error) {
	if err := s.readable(readLive, "sync"); err != nil {
		return nil, nil, err
	}
	filter, err := s.resolveFilter(ctx, sess, p.Filter)
	if err != nil {
		return nil, nil, err
	}
	req := projection.SyncRequest{User: sess.UserID, Device: sess.DeviceID, FullState: p.FullState, Filter: filter,
		PresenceActive: s.presenceActive()}
	timeout := min(max(p.Timeout, 0), maxSyncTimeout)
	deadline := time.Now().Add(timeout)
	if p.Since != "" {
		tok, err := projection.ParseToken(p.Since, s.engine.Partitions())
		if err != nil {
			return nil, nil, planb.InvalidParam("invalid since token: %v", err)
		}
		req.Since = &tok
		// A token from a node that is ahead of us: catch up first, but never
		// wait past the client's timeout (at least a few seconds).
		wctx, cancel := context.WithDeadline(ctx, latest(deadline, time.Now().Add(5*time.Second)))
		err = s.model.WaitFor(wctx, tok)
		cancel()
		if err != nil && ctx.Err() == nil {
			return nil, nil, s.unavailable(err)
		}
	}
	s.syncPresence(ctx, sess.UserID, p.SetPresence)
	w := &SyncWait{s: s, req: req, presence: p.SetPresence, deadline: deadline}
	if resp, err := w.poll(); err != nil || resp != nil {
		return resp, nil, err
	}
	return nil, w, nil
}

// toDeviceRetry is how soon a sync answers when to-device messages are
// pending that could not be read.
const toDeviceRetry = time.Second

// poll computes the sync now. It returns the answer when there is
// something new or the deadline has passed, and nil otherwise; then w.wake
// is the channel that is closed when something for the user changes.
func (w *SyncWait) poll() (*projection.SyncResponse, error) {
	resp, has, wake, err := w.s.model.Sync(w.req)
	if err != nil {
		return nil, w.s.storeUnavailable(err)
	}
	if w.s.deliverToDevice(context.Background(), w.req, resp) {
		has = true
	} else if resp.ToDeviceNewest > resp.Next.ToDevice {
		// Messages the model knows of could not be read yet (the stream
		// has no leader, or a new one that has not caught up): answer
		// soon, so that the client's next sync tries again.
		if soon := time.Now().Add(toDeviceRetry); soon.Before(w.deadline) {
			w.deadline = soon
		}
	}
	if has || w.req.Since == nil || w.req.FullState || !time.Now().Before(w.deadline) {
		return resp, nil
	}
	w.wake = wake
	return nil, nil
}

// Block waits for something new or the deadline and returns the answer.
// It returns ctx's error when ctx ends first. It is the only sync wait
// loop: the HTTP edge calls it both for a request that waits on its own
// goroutine and for a parked one.
func (w *SyncWait) Block(ctx context.Context) (*projection.SyncResponse, error) {
	// A client waiting longer than half the presence refresh interval is
	// active all the while: keep its last-active time fresh, as its next
	// sync would.
	var keep <-chan time.Time
	if every := w.s.presenceRefresh() / 2; time.Until(w.deadline) > every {
		tick := time.NewTicker(every)
		defer tick.Stop()
		keep = tick.C
	}
	for {
		t := time.NewTimer(time.Until(w.deadline))
		select {
		case <-w.wake:
			t.Stop()
		case <-t.C:
		case <-keep:
			t.Stop()
			w.s.syncPresence(ctx, w.req.User, w.presence)
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
		if resp, err := w.poll(); err != nil || resp != nil {
			return resp, err
		}
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
