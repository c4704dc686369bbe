package jetstream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	natsjs "github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"
)

// DefaultPartitions is the number of room-event streams when not configured.
// A lost stream leader stalls only the rooms of its partition, and each
// partition has its own Raft leader, so writes spread over the cluster.
const DefaultPartitions = 8

// Buckets of the key-value store. Every bucket is replicated like the log.
const (
	BucketAccounts    = "accounts"     // localpart → account record
	BucketDevices     = "devices"      // user.device → device record
	BucketTokens      = "tokens"       // sha256(access token) → session
	BucketFilters     = "filters"      // user.filterID → filter JSON
	BucketAccountData = "account_data" // user.room.type → content
	BucketReceipts    = "receipts"     // room.user.type → receipt
	BucketAliases     = "aliases"      // alias → room ID
	BucketMeta        = "meta"         // cluster-wide settings, e.g. partition count
	BucketDrills      = "drills"       // drill lock and the history of drill reports
	// End-to-end encryption keys (the server only stores and hands them out).
	BucketDeviceKeys   = "device_keys"    // user.device → the device's signed identity keys
	BucketOneTimeKeys  = "one_time_keys"  // user.device.algorithm.keyID → one-time key; claimed by compare-and-delete
	BucketFallbackKeys = "fallback_keys"  // user.device.algorithm → fallback key, with whether it was used
	BucketToDeviceTxns = "to_device_txns" // user.device.txnID → "": a to-device send that was committed
	BucketKeyBackup    = "key_backup"     // user.… → server-side backup versions and encrypted room keys
	BucketMediaPending = "media_pending"  // media ID → a reserved upload (POST /media/v1/create) and its uploader
	// BucketRoomDirectory holds, per room ever published, whether the
	// published room directory lists it (not room state: the server's
	// listing, set by createRoom's visibility and /directory/list/room).
	BucketRoomDirectory = "room_directory" // room → {"visibility": "public"|"private", "by", "ts"}
	BucketPushers       = "pushers"        // user.appID.pushkey → pusher, with the device that set it
	// BucketPresence holds each user's presence (not critical: written
	// only when the state changes, or to keep an active user's last-active
	// time fresh, at most once per refresh interval).
	BucketPresence = "presence" // user → presence state, status message, last active
	// BucketPushCursors holds, per partition, the last sequence whose
	// pushes were all attempted (see homeserver/pushsend.go).
	BucketPushCursors = "push_cursors" // p<partition> → {"seq", "node", "ts"}
	// BucketIncidents is the incident ledger (see package incident): the
	// cluster's own record of its outages, who they affected, the notices
	// sent and the damage reports filed.
	BucketIncidents = "incidents" // open.…, inc.<id>, aff.<id>.<user>, rep.<id>.<user>.<txn>, room.<user>
)

// ToDeviceTxnWindow is how long a to-device send's transaction ID is
// remembered, so that a retry within it sends nothing again.
const ToDeviceTxnWindow = 24 * time.Hour

// MediaPendingWindow is how long a reserved media ID waits for its upload
// (the unused_expires_at of POST /_matrix/media/v1/create).
const MediaPendingWindow = 24 * time.Hour

// Keys of the meta bucket besides "partitions" (the partition count the
// cluster was created with).
const (
	// MetaProbePrefix + KeyPart(datacenter+"/"+node) holds the Unix
	// milliseconds of the node's last committed write probe, followed,
	// when the node was not ready then, by a space and why (see Probe).
	MetaProbePrefix = "probe."
	// MetaDrainPrefix + KeyPart(node) marks a node an operator is
	// draining, so that no node's rebalancing hands it leaderships.
	MetaDrainPrefix = "drain."
)

// ProbeKey is the meta bucket's key of the heartbeat of node in data
// center dc.
func ProbeKey(dc, node string) string { return MetaProbePrefix + KeyPart(dc+"/"+node) }

// ParseProbeKey is the inverse of ProbeKey.
func ParseProbeKey(key string) (dc, node string) {
	dc, node, _ = strings.Cut(DecodeKeyPart(strings.TrimPrefix(key, MetaProbePrefix)), "/")
	return dc, node
}

// Probe is one node's heartbeat as the meta bucket holds it.
type Probe struct {
	At time.Time
	// NotReady says why the node was not ready; "" when it was.
	NotReady string
}

// Encode returns the probe's value in the meta bucket.
func (p Probe) Encode() []byte {
	v := strconv.FormatInt(p.At.UnixMilli(), 10)
	if p.NotReady != "" {
		v += " " + p.NotReady
	}
	return []byte(v)
}

// ParseProbe reads a probe's value (a bare timestamp is a ready node, as
// nodes before the readiness field wrote it).
func ParseProbe(v []byte) (Probe, error) {
	ms, reason, _ := strings.Cut(string(v), " ")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return Probe{}, fmt.Errorf("probe %q: %w", v, err)
	}
	return Probe{At: time.UnixMilli(n), NotReady: reason}, nil
}

// Ephemeral subjects (core NATS, nothing stored; see pubsub.go).
const (
	// TypingSubject carries typing notifications between nodes.
	TypingSubject = "planb.typing"
	// ForwardQueue is the queue group of the nodes serving forwarded
	// sends: one leader serves a partition, two during a hand-over.
	ForwardQueue = "planb-send"
)

// ForwardSubject carries sends forwarded to the node leading partition p.
func ForwardSubject(p int) string { return "planb.send." + strconv.Itoa(p) }

// MediaStore is the object store that holds uploaded media.
const MediaStore = "media"

// bucketSpec declares one key-value bucket.
type bucketSpec struct {
	name    string
	history uint8
	about   string
	ttl     time.Duration // 0: keys live until deleted
}

// The declared key-value buckets, reconciled at start.
var bucketSpecs = []bucketSpec{
	{BucketAccounts, 1, "accounts: password hashes and profiles", 0},
	{BucketDevices, 1, "devices of each user", 0},
	{BucketTokens, 1, "access tokens, stored only as SHA-256 hashes", 0},
	{BucketFilters, 1, "sync filters", 0},
	{BucketAccountData, 1, "global and per-room account data", 0},
	{BucketReceipts, 1, "read receipts", 0},
	{BucketAliases, 1, "room aliases", 0},
	{BucketMeta, 1, "cluster-wide settings", 0},
	{BucketDrills, 1, "the drill lock and past drill reports", 0},
	{BucketDeviceKeys, 1, "end-to-end encryption: device identity keys", 0},
	{BucketOneTimeKeys, 1, "end-to-end encryption: one-time keys, each handed out once", 0},
	{BucketFallbackKeys, 1, "end-to-end encryption: fallback keys", 0},
	{BucketToDeviceTxns, 1, "transaction IDs of to-device sends", ToDeviceTxnWindow},
	{BucketKeyBackup, 1, "end-to-end encryption: server-side key backup (encrypted by the clients)", 0},
	{BucketMediaPending, 1, "media IDs reserved for an upload to come", MediaPendingWindow},
	{BucketRoomDirectory, 1, "the published room directory: which rooms it lists", 0},
	{BucketPushers, 1, "pushers: where to send a user's push notifications", 0},
	{BucketPresence, 1, "presence: each user's online state, status message and last activity", 0},
	{BucketPushCursors, 1, "push delivery: per partition, the last event sequence whose pushes were sent", 0},
	{BucketIncidents, 1, "the incident ledger: outages, affected users, notices, damage reports", 0},
}

// specOf returns the declared spec of bucket name. It panics on an
// undeclared name, which is a programming error.
func specOf(name string) bucketSpec {
	for _, b := range bucketSpecs {
		if b.name == name {
			return b
		}
	}
	panic("undeclared bucket " + name)
}

// EventStream returns the stream name of partition p.
func EventStream(p int) string { return "EVENTS_" + strconv.Itoa(p) }

// eventSubjectPrefix returns the subject prefix of partition p.
func eventSubjectPrefix(p int) string { return "ev." + strconv.Itoa(p) + "." }

// eventStreamConfig declares partition p of the room log.
func (e *Engine) eventStreamConfig(p int) natsjs.StreamConfig {
	return natsjs.StreamConfig{
		Name:        EventStream(p),
		Description: "planb room events, partition " + strconv.Itoa(p),
		Subjects:    []string{eventSubjectPrefix(p) + "*"},
		Storage:     natsjs.FileStorage,
		Replicas:    e.cfg.Replicas,
		Retention:   natsjs.LimitsPolicy,
		Discard:     natsjs.DiscardNew,
		// Nats-Msg-Id de-duplication window. Matrix txnIds are idempotent for
		// longer than this; the log itself keeps the transaction record.
		Duplicates:  2 * time.Minute,
		MaxMsgSize:  4 * 1024 * 1024,
		AllowDirect: true,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// reconcile creates or updates every declared stream, bucket and store.
func (e *Engine) reconcile(ctx context.Context) error {
	if err := e.checkPartitions(ctx); err != nil {
		return err
	}
	// Create everything at once: in a fresh cluster each creation waits
	// for its own Raft group, and doing them one by one adds up.
	var (
		mu sync.Mutex // guards e.kv while the group runs
		g  errgroup.Group
	)
	for p := 0; p < e.cfg.Partitions; p++ {
		cfg := e.eventStreamConfig(p)
		g.Go(func() error {
			return retry(ctx, e.log, "stream "+cfg.Name, func(ctx context.Context) error {
				_, err := e.js.CreateOrUpdateStream(ctx, cfg)
				return err
			})
		})
	}
	g.Go(func() error {
		return retry(ctx, e.log, "stream "+ToDeviceStream, func(ctx context.Context) error {
			_, err := e.js.CreateOrUpdateStream(ctx, e.toDeviceStreamConfig())
			return err
		})
	})
	for _, b := range bucketSpecs {
		if b.name == BucketMeta {
			continue // opened by checkPartitions
		}
		g.Go(func() error {
			kv, err := e.openBucket(ctx, b)
			if err != nil {
				return err
			}
			mu.Lock()
			e.kv[b.name] = kv
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return retry(ctx, e.log, "object store "+MediaStore, func(ctx context.Context) error {
		var err error
		e.media, err = e.js.CreateOrUpdateObjectStore(ctx, natsjs.ObjectStoreConfig{
			Bucket:      MediaStore,
			Description: "uploaded media",
			Storage:     natsjs.FileStorage,
			Replicas:    e.cfg.Replicas,
		})
		return err
	})
}

func (e *Engine) openBucket(ctx context.Context, b bucketSpec) (natsjs.KeyValue, error) {
	var kv natsjs.KeyValue
	err := retry(ctx, e.log, "bucket "+b.name, func(ctx context.Context) error {
		var err error
		kv, err = e.js.CreateOrUpdateKeyValue(ctx, natsjs.KeyValueConfig{
			Bucket:      b.name,
			Description: b.about,
			History:     b.history,
			TTL:         b.ttl,
			Storage:     natsjs.FileStorage,
			Replicas:    e.cfg.Replicas,
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("bucket %s: %w", b.name, err)
	}
	return kv, nil
}

// checkPartitions records the partition count on first start and refuses to
// run with a different one later: rooms are placed by hashing into
// partitions, so changing the count would lose track of rooms.
func (e *Engine) checkPartitions(ctx context.Context) error {
	meta, err := e.openBucket(ctx, specOf(BucketMeta))
	if err != nil {
		return err
	}
	e.kv[BucketMeta] = meta
	want := strconv.Itoa(e.cfg.Partitions)
	return retry(ctx, e.log, "partition count", func(ctx context.Context) error {
		_, err := meta.Create(ctx, "partitions", []byte(want))
		if err == nil {
			return nil
		}
		if !errors.Is(err, natsjs.ErrKeyExists) {
			return err
		}
		got, err := meta.Get(ctx, "partitions")
		if err != nil {
			return err
		}
		if string(got.Value()) != want {
			return permanent(fmt.Errorf("cluster was created with %s partitions, config says %s", got.Value(), want))
		}
		return nil
	})
}
