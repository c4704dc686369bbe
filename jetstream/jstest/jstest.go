// Package jstest starts plain NATS JetStream servers for tests that need an
// engine planb does not own, such as an operator's existing cluster. It keeps
// NATS imports inside jetstream/ like the rest of the code.
package jstest

import (
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
)

// StartServer starts a standalone JetStream server on loopback with its
// store in a temporary directory (fsync before every acknowledgement, like
// planb's embedded engine) and returns its client URL. It stops when the
// test ends.
func StartServer(t testing.TB) string {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: natsserver.RANDOM_PORT,
		JetStream: true, StoreDir: t.TempDir(), SyncAlways: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready after 10 s")
	}
	return ns.ClientURL()
}
