package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestDrillLockAndHistory checks the admin API planb drill uses: one drill
// at a time (the lock), expiry of a lock whose drill died, and the stored
// history, newest first, with idempotent stores.
func TestDrillLockAndHistory(t *testing.T) {
	t.Parallel()
	s := startServer(t, withFlags("--admin-token", "drill-admin"))
	const tok = "drill-admin"
	lock := func(id string, ttl int) rawResponse {
		b, _ := json.Marshal(map[string]any{"id": id, "scenario": "dc-loss", "holder": "test", "ttl_seconds": ttl})
		return s.raw(t, "PUT", "/_planb/admin/v1/drills/lock", tok, b)
	}
	expect := func(r rawResponse, status int, errcode string) {
		t.Helper()
		if r.status != status || (errcode != "" && r.json["errcode"] != errcode) {
			t.Fatalf("want %d %s, got %s", status, errcode, r)
		}
	}

	expect(s.raw(t, "PUT", "/_planb/admin/v1/drills/lock", "", []byte(`{}`)), 401, "M_MISSING_TOKEN")
	expect(s.raw(t, "PUT", "/_planb/admin/v1/drills/lock", "wrong", []byte(`{}`)), 401, "M_UNKNOWN_TOKEN")
	expect(lock("bad id!", 60), 400, "M_INVALID_PARAM")
	expect(lock("a", 1), 400, "M_INVALID_PARAM")
	expect(lock("a", 60), 200, "")
	held := lock("b", 60)
	expect(held, 409, "ORG.PLANB.DRILL_RUNNING")
	if l, _ := held.json["lock"].(map[string]any); l["id"] != "a" {
		t.Fatalf("409 should name the drill holding the lock: %s", held)
	}
	expect(lock("a", 60), 200, "") // the holder renews
	r := s.raw(t, "DELETE", "/_planb/admin/v1/drills/lock/b", tok, nil)
	expect(r, 200, "")
	if r.json["released"] != false {
		t.Fatalf("a drill that does not hold the lock must not release it: %s", r)
	}
	expect(lock("b", 60), 409, "ORG.PLANB.DRILL_RUNNING")
	r = s.raw(t, "DELETE", "/_planb/admin/v1/drills/lock/a", tok, nil)
	if r.json["released"] != true {
		t.Fatalf("release by the holder: %s", r)
	}
	// A lock whose drill died expires on its own.
	expect(lock("c", 5), 200, "")
	expect(lock("d", 60), 409, "ORG.PLANB.DRILL_RUNNING")
	time.Sleep(5500 * time.Millisecond)
	expect(lock("d", 60), 200, "")

	// History: stored reports come back newest first; storing again is a no-op.
	t0 := time.Now().UTC().Add(-time.Hour)
	store := func(id string, started time.Time) rawResponse {
		b, _ := json.Marshal(map[string]any{"id": id, "scenario": "dc-isolate", "started": started, "pass": true, "rto_seconds": 5.5})
		return s.raw(t, "POST", "/_planb/admin/v1/drills", tok, b)
	}
	first := store("old", t0)
	expect(first, 200, "")
	again := store("old", t0)
	if again.json["key"] != first.json["key"] {
		t.Fatalf("storing the same report twice gave two keys: %s vs %s", first, again)
	}
	expect(store("new", t0.Add(time.Minute)), 200, "")
	expect(s.raw(t, "POST", "/_planb/admin/v1/drills", tok, []byte(`{"scenario":"x"}`)), 400, "M_BAD_JSON")
	expect(s.raw(t, "POST", "/_planb/admin/v1/drills", tok, []byte(`[1]`)), 400, "M_BAD_JSON")
	h := s.raw(t, "GET", "/_planb/admin/v1/drills", tok, nil)
	expect(h, 200, "")
	list, _ := h.json["drills"].([]any)
	if len(list) != 2 {
		t.Fatalf("want 2 stored drills, got %s", h)
	}
	if a, b := list[0].(map[string]any)["id"], list[1].(map[string]any)["id"]; a != "new" || b != "old" {
		t.Fatalf("history must be newest first, got %v then %v", a, b)
	}
	h = s.raw(t, "GET", "/_planb/admin/v1/drills?limit=1", tok, nil)
	if list, _ := h.json["drills"].([]any); len(list) != 1 {
		t.Fatalf("limit=1: %s", h)
	}
	expect(s.raw(t, "GET", "/_planb/admin/v1/drills?limit=x", tok, nil), 400, "M_INVALID_PARAM")
}

// TestFaultEndpointOff checks that a node started without --enable-faults
// says so and injects nothing.
func TestFaultEndpointOff(t *testing.T) {
	t.Parallel()
	s := startServer(t, withFlags("--admin-token", "fault-admin"))
	const tok = "fault-admin"
	r := s.raw(t, "GET", "/_planb/admin/v1/faults", tok, nil)
	if r.status != 200 || r.json["enabled"] != false || r.json["reason"] == "" {
		t.Fatalf("GET faults on a node without --enable-faults: %s", r)
	}
	for _, path := range []string{"/faults/isolate", "/faults/blackhole", "/faults/heal"} {
		if r := s.raw(t, "POST", "/_planb/admin/v1"+path, tok, []byte(`{}`)); r.status != 403 || r.json["errcode"] != "M_FORBIDDEN" {
			t.Errorf("POST %s: want 403 M_FORBIDDEN, got %s", path, r)
		}
	}
	for _, path := range []string{"/faults/slow", "/faults/cut"} {
		if r := s.raw(t, "POST", "/_planb/admin/v1"+path, tok, []byte(`{"latency_ms":100}`)); r.status != 400 || r.json["errcode"] != "M_MISSING_PARAM" {
			t.Errorf("POST %s without a peer: want 400 M_MISSING_PARAM, got %s", path, r)
		}
	}
	if r := s.raw(t, "POST", "/_planb/admin/v1/faults/isolate", "", []byte(`{}`)); r.status != 401 {
		t.Errorf("fault endpoint without a token: want 401, got %s", r)
	}
	if r := s.raw(t, "GET", "/ready", "", nil); r.status != 200 {
		t.Errorf("the node must stay ready: %s", r)
	}
}
