package projection

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	json "github.com/segmentio/encoding/json"

	"github.com/planb-chat/planb"
)

// StoreVersion is the format of the on-disk read model. A store of another
// version is deleted and rebuilt from the log when it is opened.
const StoreVersion = "3"

// The store's keys: a kind byte, then the parts. A string part is its
// length (uvarint) and its bytes, so that no part can run into the next
// whatever it holds; a number is 8 big-endian bytes, so that keys sort in
// number order. Every write of the model is one Pebble batch that also
// moves the positions it reaches, so the store is always consistent with a
// log position and a restarted node resumes from there.
//
//	"\x00v"                      → StoreVersion
//	"\x00p" p(2)                 → applied sequence of partition p
//	"\x00r", "\x00a"             → applied receipts / account-data sequence
//	'R' room                     → roomMeta (JSON)
//	'E' room idx                 → storedEntry (JSON): the timeline
//	'Q' room seq                 → idx: the room's first event in record seq
//	'I' eventID                  → room idx
//	'T' txnKey                   → eventID
//	'L' room idx                 → "": the room's state events in order
//	'S' room type stateKey       → idx: the room's current state
//	'M' room user idx            → membership eventID: membership changes
//	'V' room idx                 → history visibility changes
//	'C' room user receiptType [thread] → Receipt (JSON): no thread part when unthreaded
//	'A' user room type           → pos content: account data ("" room: global)
//	'F' user room                → eventID: the room was forgotten at this membership
//	"\x00t", "\x00k"             → applied to-device / device-keys sequence
//	"\x00o", "\x00f"             → applied one-time-keys / fallback-keys sequence
//	'D' user device              → sequence of the device's newest to-device message
//	'O' user device algorithm    → one-time keys left (a number)
//	'B' user device algorithm    → "": an unused fallback key
//	'K' seq                      → user: the user's device keys changed at seq
//	"\x00u", "\x00d"             → applied accounts / room-directory sequence
//	'P' user                     → Profile (JSON): the user's global profile
//	'U' room                     → "": the room is published in the room directory
//	'x' room parent idx          → relType eventType childID: relations (relations.go)
//	'h' room root                → count latest: a thread
//	'y' room latest              → root rootIdx: threads by their newest reply
//	'z' room root user           → count: the user's replies in the thread
//	'W' room word 0x00 idx       → the search index (searchindex.go)
const (
	kRoom     = 'R'
	kEntry    = 'E'
	kSeq      = 'Q'
	kID       = 'I'
	kTxn      = 'T'
	kStateLog = 'L'
	kState    = 'S'
	kMember   = 'M'
	kVis      = 'V'
	kReceipt  = 'C'
	kData     = 'A'
	kForgot   = 'F'

	kToDevice    = 'D'
	kOneTimeKeys = 'O'
	kFallback    = 'B'
	kKeyChange   = 'K'

	kProfile   = 'P'
	kPublished = 'U'
)

var (
	keyVersion  = []byte("\x00v")
	keyReceipts = []byte("\x00r")
	keyData     = []byte("\x00a")

	keyToDevice     = []byte("\x00t")
	keyDeviceKeys   = []byte("\x00k")
	keyOneTimeKeys  = []byte("\x00o")
	keyFallbackKeys = []byte("\x00f")

	keyAccounts  = []byte("\x00u")
	keyDirectory = []byte("\x00d")
)

func keyPart(p int) []byte { return binary.BigEndian.AppendUint16([]byte("\x00p"), uint16(p)) }

// key builds kind followed by the string parts.
func key(kind byte, parts ...string) []byte {
	n := 1
	for _, p := range parts {
		n += len(p) + binary.MaxVarintLen32
	}
	k := make([]byte, 0, n+8)
	k = append(k, kind)
	for _, p := range parts {
		k = appendStr(k, p)
	}
	return k
}

func appendStr(k []byte, s string) []byte {
	k = binary.AppendUvarint(k, uint64(len(s)))
	return append(k, s...)
}

// withNum appends a big-endian number to k.
func withNum(k []byte, n uint64) []byte { return binary.BigEndian.AppendUint64(k, n) }

func entryKey(room string, idx int) []byte { return withNum(key(kEntry, room), uint64(idx)) }

// keyReader takes a key apart.
type keyReader struct {
	b   []byte
	err bool
}

func (r *keyReader) str() string {
	n, w := binary.Uvarint(r.b)
	if w <= 0 || uint64(len(r.b)-w) < n {
		r.err = true
		return ""
	}
	s := string(r.b[w : w+int(n)])
	r.b = r.b[w+int(n):]
	return s
}

func (r *keyReader) num() uint64 {
	if len(r.b) < 8 {
		r.err = true
		return 0
	}
	n := binary.BigEndian.Uint64(r.b)
	r.b = r.b[8:]
	return n
}

// upperBound returns the smallest key above every key that starts with p.
func upperBound(p []byte) []byte {
	u := append([]byte(nil), p...)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] < 0xff {
			u[i]++
			return u[:i+1]
		}
	}
	return nil
}

// roomMeta is what the store keeps of a room besides its events.
type roomMeta struct {
	Partition  int    `json:"p"`
	Version    string `json:"v"`
	Creator    string `json:"c"`
	Count      int    `json:"n"`
	LastSeq    uint64 `json:"s"`
	LastEvent  string `json:"l"`
	Redactions int    `json:"r,omitempty"`
}

// storedEntry is one timeline entry on disk.
type storedEntry struct {
	Event       *planb.Event    `json:"e"`
	Seq         uint64          `json:"q"`
	TxnID       string          `json:"t,omitempty"`
	DeviceID    string          `json:"d,omitempty"`
	PrevContent json.RawMessage `json:"pc,omitempty"`
	PrevSender  string          `json:"ps,omitempty"`
	Replaces    string          `json:"r,omitempty"`
	RedactedBy  *planb.Event    `json:"rb,omitempty"`
	// Content is the redacted content, when the event was redacted.
	Content json.RawMessage `json:"c,omitempty"`
}

func encodeEntry(e *Entry) ([]byte, error) {
	se := storedEntry{Event: e.Event, Seq: e.Seq, TxnID: e.TxnID, DeviceID: e.DeviceID, PrevContent: e.PrevContent,
		PrevSender: e.PrevSender, Replaces: e.Replaces, RedactedBy: e.RedactedBy}
	if e.RedactedBy != nil {
		se.Content = e.Content
	}
	return json.Marshal(se)
}

func decodeEntry(b []byte, r *Room, idx int) (*Entry, error) {
	var se storedEntry
	if err := json.Unmarshal(b, &se); err != nil || se.Event == nil {
		return nil, fmt.Errorf("read model store: entry %d of %s is damaged: %v", idx, r.ID, err)
	}
	e := &Entry{Event: se.Event, Room: r, Seq: se.Seq, Index: idx, TxnID: se.TxnID, DeviceID: se.DeviceID,
		PrevContent: se.PrevContent, PrevSender: se.PrevSender, Replaces: se.Replaces, RedactedBy: se.RedactedBy,
		Content: se.Event.Content}
	if se.RedactedBy != nil {
		e.Content = se.Content
	}
	summarizeMessage(e)
	return e, nil
}

// StoreOptions say where and how a model keeps its store.
type StoreOptions struct {
	// Dir is the store's directory; "" keeps it in memory (tests).
	Dir string
	// CacheBytes is the size of the block cache (default 64 MiB).
	CacheBytes int64
	// Rebuild deletes the store first, so that it is rebuilt from the log.
	Rebuild bool
	// Log receives the store's errors (nil: discarded).
	Log *slog.Logger
	// MinFreeBytes is the free space the store's disk must keep: below it
	// the model takes no more writes (the node is not ready) until space is
	// freed. Pebble cannot go on after a failed log write, so the store
	// must never fill the disk. Default 256 MiB.
	MinFreeBytes uint64
	// fs replaces the file system (tests inject faults with it).
	fs vfs.FS
	// corrupt is told of damage found while serving (set by Open).
	corrupt func(error)
}

// pebbleOpen opens the Pebble database of o as it is.
func pebbleOpen(o StoreOptions) (*pebble.DB, error) {
	cacheBytes := o.CacheBytes
	if cacheBytes <= 0 {
		cacheBytes = 64 << 20
	}
	cache := pebble.NewCache(cacheBytes)
	defer cache.Unref()
	opts := &pebble.Options{Cache: cache, Logger: storeLogger{o.Log},
		// Larger memtables than Pebble's 4 MiB: a rebuild of 1,000,000
		// events took 15.3 s instead of 20.7 s (fewer, larger flushes and
		// less L0 compaction), for at most 128 MiB of memtables.
		MemTableSize: 32 << 20, MemTableStopWritesThreshold: 4}
	for i := range opts.Levels {
		// Most lookups of a transaction key find nothing (a first send):
		// bloom filters answer those without reading the tables.
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.EventListener = &pebble.EventListener{
		// A checksum that does not match: reads of the damaged file fail
		// (the clients hear 503), the node reports the fault, and the
		// store is rebuilt from the log at the next start.
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			if o.Log != nil {
				o.Log.Error("read model store is damaged; it is rebuilt from the log at the next start", "file", info.Path, "err", info.Details)
			}
			if o.Dir != "" {
				_ = os.WriteFile(rebuildMarker(o.Dir), []byte(fmt.Sprint(info.Details)), 0o600)
			}
			if o.corrupt != nil {
				o.corrupt(fmt.Errorf("the read model store is damaged (%s): restart the node to rebuild it from the log: %v", info.Path, info.Details))
			}
		},
	}
	fs := o.fs
	switch {
	case fs != nil:
	case o.Dir == "":
		fs = vfs.NewMem()
	default:
		fs = vfs.Default
	}
	opts.FS = fs
	db, err := pebble.Open(o.Dir, opts)
	if err != nil {
		return nil, fmt.Errorf("open the read model store: %w", err)
	}
	return db, nil
}

// openStore opens (or creates) the store. reset tells why it had to be
// created afresh (the model then starts empty and is rebuilt from the
// beginning of the log), or is "".
func openStore(o StoreOptions) (db *pebble.DB, reset string, err error) {
	wipe := func(why string) (*pebble.DB, string, error) {
		if o.Dir != "" {
			if err := os.RemoveAll(o.Dir); err != nil {
				return nil, "", fmt.Errorf("delete the read model store %s: %w", o.Dir, err)
			}
		}
		db, err := pebbleOpen(o)
		if err != nil {
			return nil, "", err
		}
		if err := db.Set(keyVersion, []byte(StoreVersion), pebble.Sync); err != nil {
			db.Close()
			return nil, "", fmt.Errorf("create the read model store: %w", err)
		}
		return db, why, nil
	}
	if o.Dir == "" && o.fs == nil {
		return wipe("in memory")
	}
	if o.Rebuild {
		return wipe("a rebuild was asked for")
	}
	if why, err := os.ReadFile(rebuildMarker(o.Dir)); err == nil {
		if err := os.Remove(rebuildMarker(o.Dir)); err != nil {
			return nil, "", fmt.Errorf("read model store: %w", err)
		}
		return wipe("the store was found damaged while serving (" + string(why) + ")")
	}
	if entries, err := os.ReadDir(o.Dir); errors.Is(err, os.ErrNotExist) || (err == nil && len(entries) == 0) {
		return wipe("no store yet")
	}
	db, err = pebbleOpen(o)
	if err != nil {
		return wipe(fmt.Sprintf("the store could not be opened (%v)", err))
	}
	v, closer, err := db.Get(keyVersion)
	switch {
	case err != nil:
		db.Close()
		return wipe(fmt.Sprintf("the store has no version (%v)", err))
	case string(v) != StoreVersion:
		why := fmt.Sprintf("the store has format %q, this planb writes %q", v, StoreVersion)
		closer.Close()
		db.Close()
		return wipe(why)
	}
	closer.Close()
	return db, "", nil
}

// rebuildMarker is the file, beside the store's directory, that says the
// store must be rebuilt at the next start.
func rebuildMarker(dir string) string { return filepath.Clean(dir) + ".damaged" }

// storeLogger keeps Pebble's informational messages out of the node's log
// and passes its errors on.
type storeLogger struct{ log *slog.Logger }

func (storeLogger) Infof(string, ...any) {}
func (l storeLogger) Errorf(format string, args ...any) {
	if l.log != nil {
		l.log.Error("read model store: " + fmt.Sprintf(format, args...))
	}
}
func (storeLogger) Fatalf(format string, args ...any) {
	panic(fmt.Sprintf("read model store: "+format, args...))
}

// getter reads single keys from the database or a batch.
type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

// getCopy returns a copy of key's value, or nil, false when it is absent.
func getCopy(g getter, k []byte) ([]byte, bool, error) {
	v, closer, err := g.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read model store: %w", err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// getUint returns the big-endian number stored at k, or 0.
func getUint(g getter, k []byte) (uint64, error) {
	v, ok, err := getCopy(g, k)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("read model store: value of %q is damaged", k)
	}
	return binary.BigEndian.Uint64(v), nil
}

func num(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// diskSpace checks, at most once a second, that the store's disk keeps its
// minimum of free space.
type diskSpace struct {
	now     func() time.Time // time.Now but in tests
	fs      vfs.FS
	dir     string
	min     uint64
	checked time.Time
	err     error
}

// spaceCheckEvery is how often the free space of the store's disk is read.
const spaceCheckEvery = time.Second

// check returns an error while the disk has less free space than its
// minimum.
func (d *diskSpace) check() error {
	now := d.now()
	if d.dir == "" || now.Sub(d.checked) < spaceCheckEvery {
		return d.err
	}
	d.checked = now
	u, err := d.fs.GetDiskUsage(d.dir)
	switch {
	case err != nil:
		d.err = nil // unknown: let Pebble try
	case u.AvailBytes < d.min:
		d.err = fmt.Errorf("the disk of the read model store has %d MiB free, below the %d MiB it must keep; this node applies nothing more until space is freed",
			u.AvailBytes>>20, d.min>>20)
	default:
		d.err = nil
	}
	return d.err
}
