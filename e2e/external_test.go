package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"maunium.net/go/mautrix"

	"github.com/planb-chat/planb/internal/testutil"
)

// TestExternalEngine runs planb against an existing NATS JetStream server
// (--nats-url) instead of its embedded engine, as operators who already run
// NATS do: rooms and messages live in that server and survive a restart of
// planb, and planb's own data directory stays empty.
func TestExternalEngine(t *testing.T) {
	natsDir := t.TempDir()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT, JetStream: true,
		StoreDir: natsDir, SyncAlways: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("external nats-server not ready")
	}
	srv := startServer(t, withFlags("--nats-url", ns.ClientURL()))
	alice := newUser(t, srv, "alice")
	ctx := ctxTimeout(t, 60*time.Second)
	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{Name: "on an external engine"})
	must(t, "create room", err)
	sent, err := alice.SendText(ctx, room.RoomID, "stored in the operator's NATS")
	must(t, "send", err)

	srv.restart(t)
	testutil.WaitFor(t, 30*time.Second, "the external NATS server", func() error {
		ev, err := alice.GetEvent(ctx, room.RoomID, sent.EventID)
		if err != nil {
			return err
		}
		if ev.Content.Raw["body"] != "stored in the operator's NATS" {
			t.Fatalf("event after restart: %v", ev.Content.Raw)
		}
		return nil
	})
	// Nothing durable lives in planb's data directory.
	if _, err := os.Stat(filepath.Join(srv.dataDir, "jetstream")); !os.IsNotExist(err) {
		t.Errorf("planb created an embedded store with --nats-url: %v", err)
	}
}
