package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/jetstream"
)

const (
	drillLockKey     = "lock"
	drillReportKeys  = "report.>"
	maxDrillReport   = 256 << 10
	maxDrillLockTTL  = 2 * time.Hour
	minDrillLockTTL  = 5 * time.Second
	maxDrillsHistory = 1000
)

var drillIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// AcquireDrillLock takes the drill lock for ttl. It fails with
// ORG.PLANB.DRILL_RUNNING (409) while another unexpired drill holds it;
// taking it again with the same ID renews it.
func (o *Ops) AcquireDrillLock(ctx context.Context, l adminapi.DrillLock, ttl time.Duration) (adminapi.DrillLock, error) {
	if !drillIDPattern.MatchString(l.ID) {
		return adminapi.DrillLock{}, planb.InvalidParam("drill id %q: want 1-64 letters, digits, '-' or '_'", l.ID)
	}
	if ttl < minDrillLockTTL || ttl > maxDrillLockTTL {
		return adminapi.DrillLock{}, planb.InvalidParam("ttl_seconds must be between %d and %d", int(minDrillLockTTL.Seconds()), int(maxDrillLockTTL.Seconds()))
	}
	now := time.Now().UTC()
	l.Acquired, l.Expires = now, now.Add(ttl)
	raw, err := json.Marshal(l)
	if err != nil {
		return adminapi.DrillLock{}, fmt.Errorf("encode drill lock: %w", err)
	}
	for attempt := 0; attempt < 5; attempt++ {
		_, err := o.engine.Create(ctx, jetstream.BucketDrills, drillLockKey, raw)
		if err == nil {
			return l, nil
		}
		if !errors.Is(err, planb.ErrExists) {
			return adminapi.DrillLock{}, o.unavailable(err)
		}
		cur, rev, err := o.drillLock(ctx)
		if errors.Is(err, planb.ErrNotFound) {
			continue // released in between: try to create again
		}
		if err != nil {
			return adminapi.DrillLock{}, o.unavailable(err)
		}
		if cur.ID != l.ID && now.Before(cur.Expires) {
			return adminapi.DrillLock{}, &planb.Error{Code: adminapi.CodeDrillRunning, Status: http.StatusConflict,
				Message: fmt.Sprintf("drill %s (%s, run by %s) holds the lock until %s; one drill at a time",
					cur.ID, cur.Scenario, cur.Holder, cur.Expires.Format(time.RFC3339)),
				Extra: map[string]any{"lock": cur}}
		}
		if cur.ID == l.ID {
			l.Acquired = cur.Acquired
			if raw, err = json.Marshal(l); err != nil {
				return adminapi.DrillLock{}, fmt.Errorf("encode drill lock: %w", err)
			}
		}
		if _, err := o.engine.Update(ctx, jetstream.BucketDrills, drillLockKey, raw, rev); err == nil {
			return l, nil
		} else if !errors.Is(err, planb.ErrConflict) {
			return adminapi.DrillLock{}, o.unavailable(err)
		}
	}
	return adminapi.DrillLock{}, planb.Unavailable(time.Second, "the drill lock changed hands while taking it; retry")
}

// ReleaseDrillLock releases the lock if drill id holds it. It reports
// whether it did.
func (o *Ops) ReleaseDrillLock(ctx context.Context, id string) (bool, error) {
	cur, rev, err := o.drillLock(ctx)
	if errors.Is(err, planb.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, o.unavailable(err)
	}
	if cur.ID != id {
		return false, nil
	}
	if err := o.engine.DeleteIf(ctx, jetstream.BucketDrills, drillLockKey, rev); errors.Is(err, planb.ErrConflict) {
		return false, nil
	} else if err != nil {
		return false, o.unavailable(err)
	}
	return true, nil
}

// drillLock reads the current lock through the bucket's leader.
func (o *Ops) drillLock(ctx context.Context) (adminapi.DrillLock, uint64, error) {
	e, err := o.engine.GetLeader(ctx, jetstream.BucketDrills, drillLockKey)
	if err != nil {
		return adminapi.DrillLock{}, 0, err
	}
	var l adminapi.DrillLock
	if err := json.Unmarshal(e.Value, &l); err != nil {
		return adminapi.DrillLock{}, 0, fmt.Errorf("decode drill lock: %w", err)
	}
	return l, e.Revision, nil
}

// drillReportHead is what StoreDrillReport needs from a report.
type drillReportHead struct {
	ID       string    `json:"id"`
	Scenario string    `json:"scenario"`
	Started  time.Time `json:"started"`
}

// StoreDrillReport keeps a drill's report in the replicated history. The
// key is derived from the report's start time and ID, so storing the same
// report again (a retry) is a no-op.
func (o *Ops) StoreDrillReport(ctx context.Context, raw []byte) (string, error) {
	if len(raw) > maxDrillReport {
		return "", planb.Errorf(planb.CodeTooLarge, http.StatusRequestEntityTooLarge, "a drill report may be at most %d bytes", maxDrillReport)
	}
	var head drillReportHead
	if err := json.Unmarshal(raw, &head); err != nil {
		return "", planb.BadJSON("drill report: %v", err)
	}
	if !drillIDPattern.MatchString(head.ID) || head.Scenario == "" || head.Started.IsZero() {
		return "", planb.BadJSON("drill report needs id, scenario and started")
	}
	key := fmt.Sprintf("report.%020d.%s", head.Started.UnixNano(), head.ID)
	if _, err := o.engine.Create(ctx, jetstream.BucketDrills, key, raw); err != nil && !errors.Is(err, planb.ErrExists) {
		return "", o.unavailable(err)
	}
	return key, nil
}

// DrillHistory returns up to limit stored drill reports, newest first.
func (o *Ops) DrillHistory(ctx context.Context, limit int) ([]json.RawMessage, error) {
	if limit < 1 || limit > maxDrillsHistory {
		return nil, planb.InvalidParam("limit must be 1..%d", maxDrillsHistory)
	}
	keys, err := o.engine.Keys(ctx, jetstream.BucketDrills, drillReportKeys)
	if err != nil {
		return nil, o.unavailable(err)
	}
	sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	if len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]json.RawMessage, 0, len(keys))
	for _, k := range keys {
		e, err := o.engine.Get(ctx, jetstream.BucketDrills, k)
		if errors.Is(err, planb.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, o.unavailable(err)
		}
		out = append(out, json.RawMessage(e.Value))
	}
	return out, nil
}
