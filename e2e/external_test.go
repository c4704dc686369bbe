package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"maunium.net/go/mautrix"

	"github.com/planb-chat/planb/internal/testutil"
	"github.com/planb-chat/planb/jetstream/jstest"
)

// TestExternalEngine runs planb against an existing NATS JetStream server
// (--nats-url) instead of its embedded engine, as operators who already run
// NATS do: rooms and messages live in that server and survive a restart of
// planb, and planb's own data directory stays empty.
func TestExternalEngine(t *testing.T) {
	natsURL := jstest.StartServer(t)
	srv := startServer(t, withFlags("--nats-url", natsURL))
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
