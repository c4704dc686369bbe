package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/planb-chat/planb"
)

// openWorld returns a world whose model keeps its store in dir.
func openWorld(t *testing.T, n int, o StoreOptions) (*world, string) {
	t.Helper()
	w := newWorld(t, n)
	m, reset, err := Open(n, func(roomID string) int { return w.parts[roomID] }, o)
	if err != nil {
		t.Fatalf("open the store: %v", err)
	}
	w.m = m
	t.Cleanup(func() { _ = m.Close() })
	return w, reset
}

// reopen closes w's model and opens its store again, keeping the world's
// rooms and sequences.
func (w *world) reopen(t *testing.T, o StoreOptions) string {
	t.Helper()
	if err := w.m.db.Flush(); err != nil { // read back from tables, not the log
		t.Fatal(err)
	}
	if err := w.m.Close(); err != nil {
		t.Fatal(err)
	}
	m, reset, err := Open(len(w.next), func(roomID string) int { return w.parts[roomID] }, o)
	if err != nil {
		t.Fatalf("reopen the store: %v", err)
	}
	w.m = m
	t.Cleanup(func() { _ = m.Close() })
	return reset
}

// clock matches what moves with the clock rather than with the log: ages
// and the typing position (a node's own, taken from its clock at start).
// In a sync token the typing position is fourth from the end, a Unix time
// in milliseconds.
var clock = regexp.MustCompile(`"age":[0-9]+|"Typing":[0-9]+|_[0-9]{13,}_[0-9]+_[0-9]+_[0-9]+"`)

// answers is everything a client can read of the model about r, as JSON.
func answers(t *testing.T, w *world, r *room, users ...string) string {
	t.Helper()
	var b strings.Builder
	add := func(v any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(clock.ReplaceAll(raw, []byte(`~`)))
		b.WriteByte('\n')
	}
	for _, u := range users {
		resp, _, _, err := w.m.Sync(SyncRequest{User: u, Device: "DEV", Filter: includeLeave()})
		add(resp, err)
		add(w.m.Messages(u, "DEV", r.id, "", "", true, 100, nil))
		add(w.m.State(u, r.id))
		add(w.m.Members(u, r.id, "", "", ""))
		add(w.m.JoinedRooms(u), nil)
		ad, err := w.m.AccountData(u, "", "m.direct")
		if errors.Is(err, planb.ErrNotFound) {
			ad, err = json.RawMessage(`"none"`), nil
		}
		add(ad, err)
	}
	add(w.m.Position(), nil)
	add(w.m.Stats(), nil)
	return b.String()
}

// sameAnswers fails at the first answer that differs.
func sameAnswers(t *testing.T, what, before, after string) {
	t.Helper()
	b, a := strings.Split(before, "\n"), strings.Split(after, "\n")
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			t.Fatalf("%s answers differently, answer %d:\nbefore: %.2000s\nafter:  %.2000s", what, i, at(b, i), at(a, i))
		}
	}
}

func at(l []string, i int) string {
	if i < len(l) {
		return l[i]
	}
	return "(none)"
}

// busyRoom fills a room with what the store must keep: state changes,
// redactions, transactions, leaves, receipts, account data and a
// forgotten room.
func busyRoom(t *testing.T, w *world) *room {
	t.Helper()
	r := w.createRoom("!busy:hs", 1, alice, "shared")
	r.join(bob)
	r.sayN(alice, 30)
	secret := r.say(bob, "oops")
	r.commit(r.redaction(bob, secret.EventID))
	r.commitTxns([]planb.Txn{{Event: 0, Key: "k1", DeviceID: "DEV", TxnID: "t1"}}, r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "txn"}))
	r.commit(r.state(alice, planb.TypeName, "", obj{"name": "renamed"}))
	r.commit(r.state(bob, planb.TypeMember, bob, obj{"membership": "join", "displayname": "Bobby"}))
	_ = w.m.ApplyReceipt(1, r.id, bob, "m.read", Receipt{EventID: secret.EventID, TS: 5})
	_ = w.m.ApplyAccountData(1, alice, "", "m.direct", json.RawMessage(`{"x":1}`))
	for i := range 50 { // many entries: values read back must not share the store's buffers
		_ = w.m.ApplyAccountData(uint64(10+i), bob, "", fmt.Sprintf("org.example.%02d", i), json.RawMessage(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i*20))))
	}
	gone := w.createRoom("!gone:hs", 0, alice, "joined")
	gone.join(bob)
	gone.leave(bob)
	_ = w.m.ApplyAccountData(100, bob, gone.id, ForgottenType, json.RawMessage(`{"event_id":"`+w.m.LastMembershipEvent(gone.id, bob)+`"}`))
	return r
}

func TestReopenedStoreAnswersTheSame(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, reset := openWorld(t, 2, StoreOptions{Dir: dir})
	if reset == "" {
		t.Fatal("a new store should say it starts empty")
	}
	r := busyRoom(t, w)
	before := answers(t, w, r, alice, bob)
	if got := w.reopen(t, StoreOptions{Dir: dir}); got != "" {
		t.Fatalf("reopening reset the store: %s", got)
	}
	sameAnswers(t, "the reopened store", before, answers(t, w, r, alice, bob))
	// It goes on from where it stopped: the next record of the room.
	m := r.say(alice, "after the restart")
	page, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 1, nil)
	if err != nil || len(page.Chunk) != 1 || page.Chunk[0].EventID != m.EventID {
		t.Fatalf("newest message after the restart: %+v, %v", page, err)
	}
	if ev, err := w.m.TxnEvent("k1"); err != nil || ev == nil {
		t.Fatalf("transaction index after the restart: %v, %v", ev, err)
	}
}

func TestStoreOfAnotherFormatIsRebuilt(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir})
	busyRoom(t, w)
	if err := w.m.db.Set(keyVersion, []byte("0"), nil); err != nil {
		t.Fatal(err)
	}
	reset := w.reopen(t, StoreOptions{Dir: dir})
	if !strings.Contains(reset, `format "0"`) {
		t.Fatalf("reset reason %q, want the format named", reset)
	}
	if st := w.m.Stats(); st.Events != 0 || st.Rooms != 0 {
		t.Fatalf("a store of another format kept %+v", st)
	}
	if p := w.m.Position(); p.Parts[0] != 0 || p.Parts[1] != 0 {
		t.Fatalf("a rebuilt store starts at %v, want the beginning", p)
	}
}

func TestRebuildIsForced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir})
	busyRoom(t, w)
	if reset := w.reopen(t, StoreOptions{Dir: dir, Rebuild: true}); reset == "" || w.m.Stats().Events != 0 {
		t.Fatalf("forced rebuild: reset %q, %+v", reset, w.m.Stats())
	}
}

func TestDamagedStoreIsRebuiltNotBelieved(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir})
	busyRoom(t, w)
	if err := w.m.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := w.m.Close(); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table files after a flush")
	}
	for _, p := range tables {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < len(b)/2; i++ {
			b[i] ^= 0x5a // flip the data blocks; checksums no longer match
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m, reset, err := Open(2, func(roomID string) int { return w.parts[roomID] }, StoreOptions{Dir: dir})
	if err != nil {
		t.Fatalf("open a damaged store: %v", err)
	}
	defer m.Close()
	if reset == "" {
		t.Fatal("a damaged store was believed")
	}
	if st := m.Stats(); st.Events != 0 {
		t.Fatalf("a damaged store's model holds %+v, want it empty to be rebuilt", st)
	}
}

// shrinkingDisk is the real file system, but its free space is what the
// test says.
type shrinkingDisk struct {
	vfs.FS
	free atomic.Uint64
}

func (d *shrinkingDisk) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	u, err := d.FS.GetDiskUsage(path)
	u.AvailBytes = d.free.Load()
	return u, err
}

func TestFullDiskStopsWritesAndRecovers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	disk := &shrinkingDisk{FS: vfs.Default}
	disk.free.Store(10 << 30)
	now := time.Now()
	w, _ := openWorld(t, 2, StoreOptions{Dir: dir, fs: disk, MinFreeBytes: 64 << 20})
	w.m.space.now = func() time.Time { return now }
	r := busyRoom(t, w)
	before := answers(t, w, r, alice, bob)

	disk.free.Store(10 << 20)
	now = now.Add(2 * spaceCheckEvery)
	w.next[r.part]++
	rec := &planb.Record{Events: []*planb.Event{r.event(alice, planb.TypeMessage, nil, obj{"msgtype": "m.text", "body": "kept"})}}
	err := w.m.ApplyRecord(r.part, w.next[r.part], rec)
	if err == nil || !strings.Contains(err.Error(), "10 MiB free") {
		t.Fatalf("apply with 10 MiB free: %v, want a refusal naming the free space", err)
	}
	if f := w.m.Fault(); f == nil || !strings.Contains(f.Error(), "until space is freed") {
		t.Fatalf("fault with the disk nearly full: %v", f)
	}
	if err := w.m.ApplyReceipt(9, r.id, alice, "m.read", Receipt{EventID: "x"}); err == nil {
		t.Fatal("a receipt was applied with the disk nearly full")
	}
	sameAnswers(t, "with the disk nearly full", before, answers(t, w, r, alice, bob))

	disk.free.Store(1 << 30)
	if err := w.m.ApplyRecord(r.part, w.next[r.part], rec); err == nil {
		t.Fatal("the free space was read again within a second (the check is meant to be cheap)")
	}
	now = now.Add(2 * spaceCheckEvery)
	if err := w.m.ApplyRecord(r.part, w.next[r.part], rec); err != nil {
		t.Fatalf("apply after space was freed: %v", err)
	}
	if f := w.m.Fault(); f != nil {
		t.Fatalf("fault after a successful write: %v", f)
	}
	page, err := w.m.Messages(bob, "DEV", r.id, "", "", true, 1, nil)
	if err != nil || len(page.Chunk) != 1 || page.Chunk[0].EventID != rec.Events[0].EventID {
		t.Fatalf("newest message after recovery: %+v, %v", page, err)
	}
}

// pages reads the whole timeline of r as user, limit events a page, in
// direction backwards or forwards, and returns the event IDs oldest first.
func pages(t *testing.T, w *world, r *room, user string, backwards bool, limit int) []string {
	t.Helper()
	var ids []string
	from := ""
	for range 1000 {
		p, err := w.m.Messages(user, "DEV", r.id, from, "", backwards, limit, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Chunk {
			ids = append(ids, e.EventID)
		}
		if p.End == "" {
			break
		}
		from = p.End
	}
	if backwards {
		slices.Reverse(ids)
	}
	return ids
}

func TestTimelineAcrossTheTailCacheAndTheStore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 1, StoreOptions{Dir: dir})
	r := w.createRoom("!long:hs", 0, alice, "shared")
	r.join(bob)
	r.sayN(alice, 5*tailSize+3)
	all := r.timelineIDs()
	if len(all) != 7+5*tailSize+3 {
		t.Fatalf("timeline has %d events", len(all))
	}
	check := func(what string) {
		t.Helper()
		for _, limit := range []int{1, 7, tailSize + 1, 1000} {
			equalIDs(t, fmt.Sprintf("%s, backwards by %d", what, limit), pages(t, w, r, bob, true, limit), all)
			equalIDs(t, fmt.Sprintf("%s, forwards by %d", what, limit), pages(t, w, r, bob, false, limit), all)
		}
		resp, _, _ := w.sync(bob, nil, timelineLimit(3*tailSize))
		equalIDs(t, what+", sync timeline", ids(resp.Rooms.Join[r.id].Timeline.Events), all[len(all)-3*tailSize:])
	}
	check("with the tail cache")
	_, _, tok := w.sync(bob, nil, nil)
	newer := r.sayN(alice, 5)
	incremental := func(what string) {
		t.Helper()
		resp, _, _ := w.sync(bob, &tok, nil)
		equalIDs(t, what+", incremental sync", ids(resp.Rooms.Join[r.id].Timeline.Events), newer)
	}
	incremental("with the tail cache")
	all = r.timelineIDs()
	w.reopen(t, StoreOptions{Dir: dir})
	check("from the store alone")
	incremental("from the store alone")
	r.sayN(bob, 10)
	all = r.timelineIDs()
	check("with a short tail after the reopen")
}

// A receipt may be applied before its room (the receipts bucket and the
// partitions are followed on their own, and a rebuild reads them all at
// once): it is kept for the room, also across a reopen.
func TestReceiptBeforeItsRoom(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 1, StoreOptions{Dir: dir})
	if err := w.m.ApplyReceipt(1, "!later:hs", bob, "m.read", Receipt{EventID: "$x", TS: 7}); err != nil {
		t.Fatal(err)
	}
	seen := func(what string) {
		t.Helper()
		if rc, ok := w.m.Receipt("!later:hs", bob, "m.read", ""); !ok || rc.TS != 7 || rc.Pos != 1 {
			t.Fatalf("%s: receipt %+v, %v", what, rc, ok)
		}
	}
	w.reopen(t, StoreOptions{Dir: dir})
	r := w.createRoom("!later:hs", 0, alice, "shared")
	r.join(bob)
	seen("applied before its room")
	w.reopen(t, StoreOptions{Dir: dir})
	seen("after a reopen")
}
