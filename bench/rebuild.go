package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/jetstream"
	"github.com/planb-chat/planb/projection"
)

// RebuildReport is the read-model rebuild measurement.
type RebuildReport struct {
	Events  int     `json:"events"`
	Records int     `json:"records"`
	Rooms   int     `json:"rooms"`
	Users   int     `json:"users"`
	AvgMsgs float64 `json:"events_per_record"`
	// FillSeconds is how long writing the log took (0 when reused).
	FillSeconds float64 `json:"fill_seconds"`
	// EngineSeconds is from process start until the node answered /health
	// (its engine had recovered the stored streams).
	EngineSeconds float64 `json:"engine_seconds"`
	// RebuildSeconds is the node's own "read models caught up with the
	// log ... took" when it rebuilt its store from the whole log.
	RebuildSeconds      float64 `json:"rebuild_seconds"`
	RebuildEventsPerSec float64 `json:"rebuild_events_per_second"`
	// ReadySeconds is from process start until /ready answered 200.
	ReadySeconds float64 `json:"ready_seconds"`
	RSSMiB       float64 `json:"rss_mib"`
	PeakRSSMiB   float64 `json:"peak_rss_mib,omitempty"`
	HeapMiB      float64 `json:"heap_inuse_mib"`
	// RestartReadySeconds is from the start of a second process on the
	// same data directory, which resumes from its store, until /ready.
	RestartReadySeconds float64 `json:"restart_ready_seconds"`
	RestartRSSMiB       float64 `json:"restart_rss_mib"`
	RestartHeapMiB      float64 `json:"restart_heap_inuse_mib"`
	// LogBytes and StoreBytes are the disk taken by the engine (the log,
	// one replica) and by the read model store.
	LogBytes   int64  `json:"log_bytes"`
	StoreBytes int64  `json:"store_bytes"`
	Dir        string `json:"dir"`
}

// fillMarker is written into a filled log directory so a later run can
// reuse it.
const fillMarker = "bench-rebuild.json"

// fillInfo describes a filled log directory.
type fillInfo struct {
	Events      int     `json:"events"`
	Records     int     `json:"records"`
	Rooms       int     `json:"rooms"`
	Users       int     `json:"users"`
	FillSeconds float64 `json:"fill_seconds"`
}

// Shape of the filled log: 200 rooms of 8 members among 64 users for a
// million events, fewer for small logs (a quick test).
const (
	fillMaxUsers       = 64
	fillMaxRooms       = 200
	fillMembersPerRoom = 8
	fillServerName     = "localhost"
	fillNode           = "dc1"
)

// fillConcurrency is the number of concurrent senders of each room, by room
// index: most rooms see one or two writers at a time, some many, so group
// commit writes records of 1 to ~32 events, as it does under real load.
var fillConcurrency = []int{1, 1, 1, 2, 2, 4, 8, 16, 32}

// fillLog writes a log of about events events into dir through the real
// write path: an in-process single-node engine (SyncAlways, as always) and
// homeserver, users registered, rooms created and joined, then messages sent
// concurrently so that group commit produces the usual mix of batch sizes.
// Every record is exactly what a serving node would have written.
func fillLog(ctx context.Context, dir string, events int, say func(string, ...any)) (fillInfo, error) {
	start := time.Now()
	fillRooms := min(fillMaxRooms, max(4, events/5000))
	fillUsers := min(fillMaxUsers, max(fillMembersPerRoom, fillRooms))
	log := slog.New(slog.DiscardHandler)
	eng, err := jetstream.Start(ctx, jetstream.Config{DataDir: dir, NodeName: fillNode, DataCenter: fillNode, Replicas: 1,
		Partitions: jetstream.DefaultPartitions}, log)
	if err != nil {
		return fillInfo{}, fmt.Errorf("start fill engine: %w", err)
	}
	defer eng.Close()
	hcfg := homeserver.DefaultConfig()
	hcfg.ServerName, hcfg.OpenRegistration, hcfg.DataCenter = fillServerName, true, fillNode
	hcfg.WriteTimeout = planb.Duration(time.Minute)
	model, _, err := projection.Open(eng.Partitions(), eng.Partition, projection.StoreOptions{Dir: filepath.Join(dir, "readmodel")})
	if err != nil {
		return fillInfo{}, fmt.Errorf("open the fill node's read models: %w", err)
	}
	defer model.Close()
	svc := homeserver.New(hcfg, eng, model, log, nil)
	rctx, stop := context.WithCancel(ctx)
	var runErr error
	var runWG sync.WaitGroup
	runWG.Add(1)
	go func() { defer runWG.Done(); runErr = svc.Run(rctx) }()
	defer func() { stop(); runWG.Wait() }()
	for !svc.CaughtUp() {
		select {
		case <-ctx.Done():
			return fillInfo{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}

	sessions := make([]homeserver.Session, fillUsers)
	for i := range sessions {
		resp, err := svc.Register(ctx, homeserver.RegisterRequest{Auth: json.RawMessage(`{"type":"m.login.dummy"}`),
			Username: "fill" + strconv.Itoa(i), Password: "fill-password-" + strconv.Itoa(i)})
		if err != nil {
			return fillInfo{}, fmt.Errorf("register fill user %d: %w", i, err)
		}
		sessions[i] = homeserver.Session{UserID: resp.UserID, DeviceID: resp.DeviceID}
		say("rebuild: filling the log: registered %d of %d users", i+1, fillUsers)
	}
	rooms := make([]string, fillRooms)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	var made atomic.Int64
	for r := range rooms {
		g.Go(func() error {
			name := fmt.Sprintf("fill room %d", r)
			id, err := svc.CreateRoom(gctx, sessions[r%fillUsers], homeserver.CreateRoomRequest{Preset: "public_chat", Name: &name})
			if err != nil {
				return fmt.Errorf("create fill room %d: %w", r, err)
			}
			for j := 1; j < fillMembersPerRoom; j++ {
				if _, err := svc.Join(gctx, sessions[(r+j*7)%fillUsers], id, nil); err != nil {
					return fmt.Errorf("join fill room %d: %w", r, err)
				}
			}
			rooms[r] = id
			say("rebuild: filling the log: created %d of %d rooms", made.Add(1), fillRooms)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fillInfo{}, err
	}

	// Messages until the model holds the wanted number of events.
	have := svc.Model().Stats().Events
	var budget atomic.Int64
	budget.Store(int64(events - have))
	var sent atomic.Int64
	g, gctx = errgroup.WithContext(ctx)
	for r, room := range rooms {
		for w := range fillConcurrency[r%len(fillConcurrency)] {
			g.Go(func() error {
				sess := sessions[(r+(w%fillMembersPerRoom)*7)%fillUsers] // a member of the room
				for n := 0; budget.Add(-1) >= 0; n++ {
					body := fmt.Sprintf(`{"msgtype":"m.text","body":"message %d of writer %d in room %d: %s"}`, n, w, r,
						strings.Repeat("lorem ipsum ", 4+n%12))
					if _, err := svc.SendEvent(gctx, sess, room, "m.room.message", fmt.Sprintf("w%d-%d", w, n), json.RawMessage(body)); err != nil {
						return fmt.Errorf("send into fill room %d: %w", r, err)
					}
					if k := sent.Add(1); k%5000 == 0 {
						el := time.Since(start).Seconds()
						say("rebuild: filling the log: %d of %d events (%.0f/s)", int(k)+have, events, float64(k)/el)
					}
				}
				return nil
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fillInfo{}, err
	}
	info := fillInfo{Events: svc.Model().Stats().Events, Rooms: fillRooms, Users: fillUsers}
	for p := range eng.Partitions() {
		seq, err := eng.StreamLastSeq(ctx, jetstream.EventStream(p))
		if err != nil {
			return fillInfo{}, fmt.Errorf("count records: %w", err)
		}
		info.Records += int(seq)
	}
	info.FillSeconds = time.Since(start).Seconds()
	stop()
	runWG.Wait()
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return fillInfo{}, fmt.Errorf("fill node: %w", runErr)
	}
	return info, nil
}

// rebuild fills (or reuses) a log of cfg.RebuildEvents events and times
// `planb serve` on it until /ready: first rebuilding its read models from
// the whole log, then restarting on the store that left.
func rebuild(ctx context.Context, cfg Config, binary string, say func(string, ...any)) (*RebuildReport, error) {
	dir := cfg.RebuildDir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "planb-bench-rebuild-")
		if err != nil {
			return nil, fmt.Errorf("rebuild dir: %w", err)
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("rebuild dir: %w", err)
	}
	var info fillInfo
	reused := false
	if b, err := os.ReadFile(filepath.Join(dir, fillMarker)); err == nil && json.Unmarshal(b, &info) == nil && info.Events >= cfg.RebuildEvents {
		reused = true
		say("rebuild: reusing the log of %d events in %s", info.Events, dir)
	} else {
		if entries, _ := os.ReadDir(dir); len(entries) > 0 {
			return nil, fmt.Errorf("rebuild dir %s is not empty and holds no log of at least %d events from an earlier run; give an empty or new directory", dir, cfg.RebuildEvents)
		}
		if info, err = fillLog(ctx, dir, cfg.RebuildEvents, say); err != nil {
			return nil, err
		}
		b, _ := json.Marshal(info)
		if err := os.WriteFile(filepath.Join(dir, fillMarker), b, 0o644); err != nil {
			return nil, fmt.Errorf("write %s: %w", fillMarker, err)
		}
	}
	rep := &RebuildReport{Events: info.Events, Records: info.Records, Rooms: info.Rooms, Users: info.Users, Dir: dir}
	if info.Records > 0 {
		rep.AvgMsgs = float64(info.Events) / float64(info.Records)
	}
	if !reused {
		rep.FillSeconds = info.FillSeconds
	}
	if err := timeStart(ctx, binary, dir, cfg.PprofDir, rep, say); err != nil {
		return nil, err
	}
	return rep, nil
}
