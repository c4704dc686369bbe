package incident

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Ledger is the incident ledger in the replicated incidents bucket. Keys:
//
//	open.<kind>.<KeyPart(subject)>  → {"id","started_at"}: the incident open about subject
//	inc.<id>                        → Incident
//	aff.<id>.<KeyPart(user)>        → Affected
//	rep.<id>.<KeyPart(user)>.<KeyPart(txnID)> → Report
//	room.<KeyPart(user)>            → the user's server-notices room ID
//	mine.<KeyPart(user)>.<id>       → "": incident id affected user (an index)
//
// Every change is a create or a compare-and-set, so any number of nodes
// may record the same incident at once: the first to create the open key
// opens it, the others join it. Nothing is acknowledged before the bucket
// committed it with its replicas.
type Ledger struct {
	engine *jetstream.Engine
}

// NewLedger returns the ledger kept in engine's incidents bucket.
func NewLedger(engine *jetstream.Engine) *Ledger { return &Ledger{engine: engine} }

// casTries bounds compare-and-set retries against concurrent writers.
const casTries = 10

type openRecord struct {
	ID        string    `json:"id"`
	StartedAt time.Time `json:"started_at"`
}

func openKey(kind Kind, subject string) string {
	return "open." + string(kind) + "." + jetstream.KeyPart(subject)
}
func incKey(id string) string        { return "inc." + id }
func affKey(id, user string) string  { return "aff." + id + "." + jetstream.KeyPart(user) }
func roomKey(user string) string     { return "room." + jetstream.KeyPart(user) }
func mineKey(user, id string) string { return "mine." + jetstream.KeyPart(user) + "." + id }
func repKey(id, user, txn string) string {
	return "rep." + id + "." + jetstream.KeyPart(user) + "." + jetstream.KeyPart(txn)
}

// NewID returns a readable incident ID: start time (UTC) and what it is
// about, e.g. "20261204-183512-dc2-lost".
func NewID(start time.Time, kind Kind, subject string) string {
	var b strings.Builder
	for _, r := range subject {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
		if b.Len() >= 32 {
			break
		}
	}
	suffix := map[Kind]string{DataCenterLost: "lost", PartitionStalled: "stalled", NodeNotReady: "notready"}[kind]
	if suffix == "" {
		suffix = "incident"
	}
	return start.UTC().Format("20060102-150405") + "-" + b.String() + "-" + suffix
}

// ValidID reports whether id can be an incident ID (it is used in keys).
func ValidID(id string) bool {
	if id == "" || len(id) > 80 {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// Open opens the incident proto describes (its ID is derived from kind,
// subject and start) or, when one about subject is open already, joins
// that one. It returns the open incident and whether this call opened it.
func (l *Ledger) Open(ctx context.Context, proto Incident, subject string) (Incident, bool, error) {
	proto.ID = NewID(proto.StartedAt, proto.Kind, subject)
	proto.EndedAt = nil
	raw, err := json.Marshal(openRecord{ID: proto.ID, StartedAt: proto.StartedAt})
	if err != nil {
		return Incident{}, false, fmt.Errorf("encode open incident: %w", err)
	}
	_, err = l.engine.Create(ctx, jetstream.BucketIncidents, openKey(proto.Kind, subject), raw)
	opened := err == nil
	if err != nil && !errors.Is(err, planb.ErrExists) {
		return Incident{}, false, fmt.Errorf("open incident %s: %w", proto.ID, err)
	}
	if !opened {
		cur, ok, err := l.OpenAbout(ctx, proto.Kind, subject)
		if err != nil {
			return Incident{}, false, err
		}
		if !ok {
			return Incident{}, false, planb.Unavailable(time.Second, "the incident about %s closed while joining it; retry", subject)
		}
		if cur.ID != "" && cur.Kind != "" {
			return cur, false, nil
		}
		// The opener stopped between the open key and the record: write
		// the record it meant to write.
		proto.ID, proto.StartedAt = cur.ID, cur.StartedAt
	}
	if err := l.putNew(ctx, incKey(proto.ID), proto); err != nil && !errors.Is(err, planb.ErrExists) {
		return Incident{}, false, fmt.Errorf("record incident %s: %w", proto.ID, err)
	}
	in, _, err := l.Get(ctx, proto.ID)
	return in, opened, err
}

// OpenAbout returns the incident open about subject, if any. An incident
// whose open key exists but whose record is not written yet comes back
// with only ID and StartedAt set.
func (l *Ledger) OpenAbout(ctx context.Context, kind Kind, subject string) (Incident, bool, error) {
	var o openRecord
	if _, err := l.get(ctx, openKey(kind, subject), &o); errors.Is(err, planb.ErrNotFound) {
		return Incident{}, false, nil
	} else if err != nil {
		return Incident{}, false, err
	}
	in, _, err := l.Get(ctx, o.ID)
	if errors.Is(err, planb.ErrNotFound) {
		return Incident{ID: o.ID, StartedAt: o.StartedAt}, true, nil
	}
	return in, err == nil, err
}

// Get returns incident id and its revision.
func (l *Ledger) Get(ctx context.Context, id string) (Incident, uint64, error) {
	var in Incident
	rev, err := l.get(ctx, incKey(id), &in)
	return in, rev, err
}

// List returns every incident, open ones first, then newest first.
func (l *Ledger) List(ctx context.Context) ([]Incident, error) {
	out, err := list[Incident](ctx, l, "inc.*", "incidents")
	if err != nil {
		return nil, err
	}
	Sort(out)
	return out, nil
}

// Sort orders incidents open first, then newest first.
func Sort(ins []Incident) {
	sort.SliceStable(ins, func(i, j int) bool { return Before(ins[i], ins[j]) })
}

// Before reports whether a comes before b in that order.
func Before(a, b Incident) bool {
	if a.Open() != b.Open() {
		return a.Open()
	}
	return a.StartedAt.After(b.StartedAt)
}

// Update changes incident id by fn (false: nothing to write) by
// compare-and-set.
func (l *Ledger) Update(ctx context.Context, id string, fn func(*Incident) bool) (Incident, error) {
	return update(ctx, l, incKey(id), func(in *Incident, exists bool) (bool, error) {
		if !exists {
			return false, planb.NotFound("no incident %s", id)
		}
		return fn(in), nil
	})
}

// Close ends incident id at end: its record, then (for the call that
// ended it) every affected user's open intervals, then the open key. Of
// nodes closing it at once, one ends it and the others only delete the
// key. A node stopping midway leaves intervals open, which every reader
// counts up to the incident's end (Affected.Duration at EndedAt).
func (l *Ledger) Close(ctx context.Context, id, subject string, end time.Time) (Incident, error) {
	ended := false
	in, err := l.Update(ctx, id, func(in *Incident) bool {
		if in.EndedAt != nil {
			return false
		}
		ended = true
		e := end.UTC()
		if e.Before(in.StartedAt) {
			e = in.StartedAt
		}
		in.EndedAt = &e
		return true
	})
	if err != nil {
		return Incident{}, err
	}
	var affected []Affected
	if ended {
		if affected, err = l.ListAffected(ctx, id); err != nil {
			return Incident{}, err
		}
	}
	for _, a := range affected {
		if _, err := l.EndAffected(ctx, id, a.User, *in.EndedAt); err != nil {
			return Incident{}, err
		}
	}
	if err := l.engine.Delete(ctx, jetstream.BucketIncidents, openKey(in.Kind, subject)); err != nil && !errors.Is(err, planb.ErrNotFound) {
		return Incident{}, fmt.Errorf("close incident %s: %w", id, err)
	}
	return in, nil
}

// Affected returns what incident id did to user.
func (l *Ledger) Affected(ctx context.Context, id, user string) (Affected, error) {
	var a Affected
	_, err := l.get(ctx, affKey(id, user), &a)
	return a, err
}

// AddAffected records that incident id affected user for reason during
// iv (dc: the data center of a stranded session). The first record of a
// user counts them in the incident's AffectedUsers.
//
// Nothing extends past the incident's end: a writer that still took the
// incident for open (another node closed it meanwhile) has its open
// interval ended at the end.
func (l *Ledger) AddAffected(ctx context.Context, id, user, dc, reason string, iv Interval) (Affected, error) {
	in, _, err := l.Get(ctx, id)
	if err != nil {
		return Affected{}, err
	}
	created := false
	a, err := update(ctx, l, affKey(id, user), func(a *Affected, exists bool) (bool, error) {
		created = !exists
		if !exists {
			*a = Affected{Incident: id, User: user, DataCenter: dc}
		}
		before, ivs := len(a.Reasons), a.Intervals
		a.Add(reason, iv)
		if in.EndedAt != nil {
			a.Close(*in.EndedAt)
		}
		if a.DataCenter == "" {
			a.DataCenter = dc
		}
		return !exists || len(a.Reasons) != before || !sameIntervals(ivs, a.Intervals), nil
	})
	if err != nil {
		return Affected{}, err
	}
	if created {
		if _, err := l.engine.Put(ctx, jetstream.BucketIncidents, mineKey(user, id), nil); err != nil {
			return a, fmt.Errorf("index incident %s of %s: %w", id, user, err)
		}
		if _, err := l.Update(ctx, id, func(in *Incident) bool { in.AffectedUsers++; return true }); err != nil {
			return a, err
		}
	}
	return a, nil
}

// AffectedBy returns the IDs of the incidents that affected user.
func (l *Ledger) AffectedBy(ctx context.Context, user string) ([]string, error) {
	prefix := "mine." + jetstream.KeyPart(user) + "."
	keys, err := l.engine.Keys(ctx, jetstream.BucketIncidents, prefix+"*")
	if err != nil {
		return nil, fmt.Errorf("list the incidents of %s: %w", user, err)
	}
	ids := make([]string, 0, len(keys))
	for _, k := range keys {
		ids = append(ids, strings.TrimPrefix(k, prefix))
	}
	return ids, nil
}

func sameIntervals(a, b []Interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].From.Equal(b[i].From) || !a[i].To.Equal(b[i].To) {
			return false
		}
	}
	return true
}

// UpdateAffected changes user's record of incident id by fn (false:
// nothing to write).
func (l *Ledger) UpdateAffected(ctx context.Context, id, user string, fn func(*Affected) bool) (Affected, error) {
	return update(ctx, l, affKey(id, user), func(a *Affected, exists bool) (bool, error) {
		if !exists {
			return false, planb.NotFound("incident %s did not affect %s", id, user)
		}
		return fn(a), nil
	})
}

// EndAffected ends user's intervals of incident id still open at at (a
// move to another data center, the incident's end); a record with none
// open is left as it is.
func (l *Ledger) EndAffected(ctx context.Context, id, user string, at time.Time) (Affected, error) {
	return l.UpdateAffected(ctx, id, user, func(a *Affected) bool {
		if !a.Ongoing() {
			return false
		}
		a.Close(at)
		return true
	})
}

// ListAffected returns every user incident id affected, by user ID.
func (l *Ledger) ListAffected(ctx context.Context, id string) ([]Affected, error) {
	out, err := list[Affected](ctx, l, "aff."+id+".*", "affected users of "+id)
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].User < out[j].User })
	return out, nil
}

// NoticeRoom returns user's server-notices room, planb.ErrNotFound if
// none was made yet.
func (l *Ledger) NoticeRoom(ctx context.Context, user string) (string, error) {
	e, err := l.engine.Get(ctx, jetstream.BucketIncidents, roomKey(user))
	if err != nil {
		return "", err
	}
	return string(e.Value), nil
}

// SetNoticeRoom records room as user's server-notices room unless one was
// recorded meanwhile, and returns the one recorded.
func (l *Ledger) SetNoticeRoom(ctx context.Context, user, room string) (string, error) {
	_, err := l.engine.Create(ctx, jetstream.BucketIncidents, roomKey(user), []byte(room))
	if errors.Is(err, planb.ErrExists) {
		return l.NoticeRoom(ctx, user)
	}
	if err != nil {
		return "", fmt.Errorf("record server-notices room of %s: %w", user, err)
	}
	return room, nil
}

// list returns the values of the keys matching pattern (what names them
// in errors); keys deleted while listing are left out.
func list[T any](ctx context.Context, l *Ledger, pattern, what string) ([]T, error) {
	keys, err := l.engine.Keys(ctx, jetstream.BucketIncidents, pattern)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", what, err)
	}
	out := make([]T, 0, len(keys))
	for _, k := range keys {
		var v T
		if _, err := l.get(ctx, k, &v); errors.Is(err, planb.ErrNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// get decodes key into v and returns its revision.
func (l *Ledger) get(ctx context.Context, key string, v any) (uint64, error) {
	e, err := l.engine.GetLeader(ctx, jetstream.BucketIncidents, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(e.Value, v); err != nil {
		return 0, fmt.Errorf("decode incidents/%s: %w", key, err)
	}
	return e.Revision, nil
}

// putNew creates key with v's JSON.
func (l *Ledger) putNew(ctx context.Context, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode incidents/%s: %w", key, err)
	}
	_, err = l.engine.Create(ctx, jetstream.BucketIncidents, key, raw)
	return err
}

// update reads key, lets change modify it (exists false: it does not
// exist yet, cur is zero) and say whether to write it, and writes it by
// compare-and-set, again on a conflict. It returns the value written (or
// found, when change wrote nothing).
func update[T any](ctx context.Context, l *Ledger, key string, change func(cur *T, exists bool) (bool, error)) (T, error) {
	for range casTries {
		var cur T
		rev, err := l.get(ctx, key, &cur)
		exists := err == nil
		if err != nil && !errors.Is(err, planb.ErrNotFound) {
			return cur, err
		}
		write, err := change(&cur, exists)
		if err != nil || !write {
			return cur, err
		}
		raw, err := json.Marshal(cur)
		if err != nil {
			return cur, fmt.Errorf("encode incidents/%s: %w", key, err)
		}
		if exists {
			_, err = l.engine.Update(ctx, jetstream.BucketIncidents, key, raw, rev)
		} else {
			_, err = l.engine.Create(ctx, jetstream.BucketIncidents, key, raw)
		}
		if err == nil {
			return cur, nil
		}
		if !errors.Is(err, planb.ErrConflict) && !errors.Is(err, planb.ErrExists) {
			return cur, fmt.Errorf("write incidents/%s: %w", key, err)
		}
	}
	var zero T
	return zero, planb.Unavailable(time.Second, "incidents/%s keeps changing; retry", key)
}
