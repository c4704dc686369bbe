package jetstream

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	natsjs "github.com/nats-io/nats.go/jetstream"

	"github.com/planb-chat/planb"
)

// bucket returns the declared bucket name. It panics on an undeclared
// name, which is a programming error.
func (e *Engine) bucket(name string) natsjs.KeyValue {
	kv, ok := e.kv[name]
	if !ok {
		panic("undeclared bucket " + name)
	}
	return kv
}

// Entry is a key-value record with its revision (its stream sequence).
type Entry struct {
	Value    []byte
	Revision uint64
}

// Get reads key from bucket. It first asks the nearest replica (fast, may
// lag behind by a few milliseconds) and, when that has no such key, asks the
// bucket's leader — so a record written a moment ago in another data center
// (a new access token, say) is found. Returns planb.ErrNotFound when the key
// does not exist or was deleted.
//
// A direct get goes to a random replica (see directGetFirst), so each try
// is bounded and a replica that does not answer (frozen, cut off) costs one
// short timeout, not the caller's whole deadline.
func (e *Engine) Get(ctx context.Context, bucket, key string) (Entry, error) {
	var err error
	for wait := directGetFirst; wait <= directGetTimeout; wait *= 2 {
		actx, cancel := context.WithTimeout(ctx, wait)
		var v natsjs.KeyValueEntry
		v, err = e.bucket(bucket).Get(actx, key)
		cancel()
		if err == nil {
			return Entry{Value: v.Value(), Revision: v.Revision()}, nil
		}
		if errors.Is(err, natsjs.ErrKeyNotFound) || errors.Is(err, natsjs.ErrKeyDeleted) {
			return e.GetLeader(ctx, bucket, key)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return Entry{}, fmt.Errorf("get %s/%s: %w", bucket, key, err)
}

// GetLeader reads key through the bucket's leader: it sees every committed
// write. Returns planb.ErrNotFound when the key does not exist or was deleted.
func (e *Engine) GetLeader(ctx context.Context, bucket, key string) (Entry, error) {
	m, err := e.LeaderGet(ctx, "KV_"+bucket, 0, "$KV."+bucket+"."+key)
	if err != nil {
		return Entry{}, err
	}
	if op := m.Header.Get("KV-Operation"); op == "DEL" || op == "PURGE" {
		return Entry{}, planb.ErrNotFound
	}
	return Entry{Value: m.Data, Revision: m.Seq}, nil
}

// Create stores key only if it does not exist; planb.ErrExists otherwise.
func (e *Engine) Create(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	rev, err := e.bucket(bucket).Create(ctx, key, value)
	if errors.Is(err, natsjs.ErrKeyExists) {
		return 0, planb.ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("create %s/%s: %w: %w", bucket, key, planb.ErrNoQuorum, err)
	}
	e.hint(BucketStream(bucket), rev)
	return rev, nil
}

// Update stores key only if its revision is still rev; planb.ErrConflict
// otherwise.
func (e *Engine) Update(ctx context.Context, bucket, key string, value []byte, rev uint64) (uint64, error) {
	n, err := e.bucket(bucket).Update(ctx, key, value, rev)
	if isWrongLastSeq(err) || errors.Is(err, natsjs.ErrKeyExists) {
		return 0, planb.ErrConflict
	}
	if err != nil {
		return 0, fmt.Errorf("update %s/%s: %w: %w", bucket, key, planb.ErrNoQuorum, err)
	}
	e.hint(BucketStream(bucket), n)
	return n, nil
}

// Put stores key unconditionally and returns the new revision.
func (e *Engine) Put(ctx context.Context, bucket, key string, value []byte) (uint64, error) {
	n, err := e.bucket(bucket).Put(ctx, key, value)
	if err != nil {
		return 0, fmt.Errorf("put %s/%s: %w: %w", bucket, key, planb.ErrNoQuorum, err)
	}
	e.hint(BucketStream(bucket), n)
	return n, nil
}

// Delete removes key (a tombstone that followers of the bucket observe).
func (e *Engine) Delete(ctx context.Context, bucket, key string) error {
	if _, err := e.deleteKey(ctx, bucket, key, nil); err != nil {
		return fmt.Errorf("delete %s/%s: %w: %w", bucket, key, planb.ErrNoQuorum, err)
	}
	return nil
}

// deleteKey writes key's delete marker as the KV API does (an empty
// message with KV-Operation: DEL), but through a publish whose
// acknowledgement gives the marker's sequence, so that followers can be
// hinted exactly. With lastRev set, only if the key is still at that
// revision.
func (e *Engine) deleteKey(ctx context.Context, bucket, key string, lastRev *uint64) (uint64, error) {
	m := nats.NewMsg("$KV." + bucket + "." + key)
	m.Header.Set("KV-Operation", "DEL")
	var opts []natsjs.PublishOpt
	if lastRev != nil {
		opts = append(opts, natsjs.WithExpectLastSequencePerSubject(*lastRev))
	}
	ack, err := e.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		return 0, err
	}
	e.hint(BucketStream(bucket), ack.Sequence)
	return ack.Sequence, nil
}

// Keys lists the keys of bucket matching filter (NATS wildcards allowed).
func (e *Engine) Keys(ctx context.Context, bucket, filter string) ([]string, error) {
	l, err := e.bucket(bucket).ListKeysFiltered(ctx, filter)
	if err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", bucket, filter, err)
	}
	var keys []string
	for k := range l.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

// KeyPart encodes one part of a key (keys and subjects allow only
// [-/_=.a-zA-Z0-9]); parts are joined with ".".
func KeyPart(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// DecodeKeyPart is the inverse of KeyPart; "" for a part it did not encode.
func DecodeKeyPart(s string) string {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return ""
	}
	return string(b)
}

// BucketStream returns the stream behind a bucket, for Follow.
func BucketStream(bucket string) string { return "KV_" + bucket }

// BucketKey returns the key of a message of a bucket's stream.
func BucketKey(bucket, subject string) string {
	return subject[len("$KV."+bucket+"."):]
}

// DeleteIf removes key only if its revision is still rev; planb.ErrConflict
// otherwise.
func (e *Engine) DeleteIf(ctx context.Context, bucket, key string, rev uint64) error {
	_, err := e.deleteKey(ctx, bucket, key, &rev)
	if isWrongLastSeq(err) {
		return planb.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("delete %s/%s: %w: %w", bucket, key, planb.ErrNoQuorum, err)
	}
	return nil
}
