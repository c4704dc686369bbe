package projection

import (
	"path/filepath"
	"slices"
	"testing"
)

func TestSyncKeyCounts(t *testing.T) {
	w := newWorld(t, 1)
	w.createRoom("!r:hs", 0, alice, "shared")
	resp, _, _ := w.sync(alice, nil, nil)
	if resp.OneTimeKeysCount["signed_curve25519"] != 0 || resp.UnusedFallbackKeyTypes == nil {
		t.Fatalf("a device without keys: counts %v, fallback %v; want signed_curve25519 0 and []", resp.OneTimeKeysCount, resp.UnusedFallbackKeyTypes)
	}
	for i := range 5 {
		must(t, w.m.ApplyOneTimeKey(uint64(i+1), alice, "DEV", "signed_curve25519", true))
	}
	must(t, w.m.ApplyOneTimeKey(6, alice, "OTHER", "signed_curve25519", true))
	must(t, w.m.ApplyOneTimeKey(7, alice, "DEV", "signed_curve25519", false)) // claimed
	must(t, w.m.ApplyOneTimeKey(7, alice, "DEV", "signed_curve25519", false)) // a replay: ignored
	must(t, w.m.ApplyFallbackKey(1, alice, "DEV", "signed_curve25519", true))
	resp, _, _ = w.sync(alice, nil, nil)
	if got := resp.OneTimeKeysCount["signed_curve25519"]; got != 4 {
		t.Errorf("one-time keys left = %d, want 4 (5 uploaded, 1 claimed; the other device's not counted)", got)
	}
	if !slices.Equal(resp.UnusedFallbackKeyTypes, []string{"signed_curve25519"}) {
		t.Errorf("unused fallback key types = %v", resp.UnusedFallbackKeyTypes)
	}
	must(t, w.m.ApplyFallbackKey(2, alice, "DEV", "signed_curve25519", false)) // handed out
	// A key deleted twice (a claim racing the device's deletion) never
	// makes the count negative.
	for i := range 6 {
		must(t, w.m.ApplyOneTimeKey(uint64(8+i), alice, "DEV", "signed_curve25519", false))
	}
	resp, _, _ = w.sync(alice, nil, nil)
	if got := resp.OneTimeKeysCount["signed_curve25519"]; got != 0 {
		t.Errorf("one-time keys left = %d, want 0", got)
	}
	if len(resp.UnusedFallbackKeyTypes) != 0 {
		t.Errorf("a used fallback key is still reported unused: %v", resp.UnusedFallbackKeyTypes)
	}
}

func TestSyncToDeviceWaiting(t *testing.T) {
	w := newWorld(t, 1)
	w.createRoom("!r:hs", 0, alice, "shared")
	_, _, tok := w.sync(alice, nil, nil)
	wake := syncWake(t, w, alice, &tok)
	must(t, w.m.ApplyToDevice(3, alice, "DEV"))
	must(t, w.m.ApplyToDevice(4, alice, "OTHER"))
	if !closed(wake) {
		t.Error("a to-device message did not wake the device's sync")
	}
	resp, _, next := w.sync(alice, &tok, nil)
	if resp.ToDeviceNewest != 3 || next.ToDevice != tok.ToDevice {
		t.Fatalf("newest %d, next to-device position %d: want 3 and %d (not past the waiting message)", resp.ToDeviceNewest, next.ToDevice, tok.ToDevice)
	}
	// Once the token is past it, nothing waits and the position follows
	// the stream.
	tok.ToDevice = 3
	resp, _, next = w.sync(alice, &tok, nil)
	if resp.ToDeviceNewest > tok.ToDevice || next.ToDevice != 4 {
		t.Fatalf("after receipt: newest %d, next %d; want nothing waiting and the position at 4", resp.ToDeviceNewest, next.ToDevice)
	}
}

func TestSyncDeviceLists(t *testing.T) {
	w := newWorld(t, 1)
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(alice, nil, nil)

	// Keys of a room peer, of alice herself and of a stranger change.
	must(t, w.m.ApplyDeviceKeys(1, bob))
	must(t, w.m.ApplyDeviceKeys(2, alice))
	must(t, w.m.ApplyDeviceKeys(3, eve))
	resp, has, next := w.sync(alice, &tok, nil)
	if !has || resp.DeviceLists == nil {
		t.Fatal("changed device keys did not make the sync answer")
	}
	if !slices.Equal(resp.DeviceLists.Changed, []string{alice, bob}) || len(resp.DeviceLists.Left) != 0 {
		t.Errorf("device_lists = %+v, want changed [alice bob] (not eve, who shares no room)", resp.DeviceLists)
	}
	// Carol joins: alice must fetch her devices. Bob leaves and shares no
	// other room: he is left.
	r.join(carol)
	r.leave(bob)
	resp, _, next2 := w.sync(alice, &next, nil)
	if resp.DeviceLists == nil || !slices.Equal(resp.DeviceLists.Changed, []string{carol}) || !slices.Equal(resp.DeviceLists.Left, []string{bob}) {
		t.Errorf("after carol joined and bob left: %+v, want changed [carol] left [bob]", resp.DeviceLists)
	}
	if resp, _, _ := w.sync(alice, &next2, nil); resp.DeviceLists != nil {
		t.Errorf("nothing changed, yet device_lists = %+v", resp.DeviceLists)
	}
	changed, left, err := w.m.DeviceListChanges(alice, tok, next2)
	if err != nil || !slices.Equal(changed, []string{alice, carol}) || !slices.Equal(left, []string{bob}) {
		t.Errorf("keys/changes over both syncs = %v, %v, %v; want [alice carol] [bob]", changed, left, err)
	}
}

func TestDeviceStateSurvivesReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "readmodel")
	w, _ := openWorld(t, 1, StoreOptions{Dir: dir})
	r := w.createRoom("!r:hs", 0, alice, "shared")
	r.join(bob)
	_, _, tok := w.sync(alice, nil, nil)
	must(t, w.m.ApplyOneTimeKey(1, alice, "DEV", "signed_curve25519", true))
	must(t, w.m.ApplyFallbackKey(1, alice, "DEV", "signed_curve25519", true))
	must(t, w.m.ApplyToDevice(9, alice, "DEV"))
	must(t, w.m.ApplyDeviceKeys(5, bob))
	if got := w.reopen(t, StoreOptions{Dir: dir}); got != "" {
		t.Fatalf("reopening reset the store: %s", got)
	}
	pos := w.m.Position()
	if pos.ToDevice != 9 || pos.DeviceKeys != 5 || pos.OneTimeKeys != 1 || pos.FallbackKeys != 1 {
		t.Errorf("positions after reopening: %+v", pos)
	}
	resp, _, _ := w.sync(alice, &tok, nil)
	if resp.OneTimeKeysCount["signed_curve25519"] != 1 || len(resp.UnusedFallbackKeyTypes) != 1 || resp.ToDeviceNewest != 9 {
		t.Errorf("after reopening: counts %v, fallback %v, newest to-device %d", resp.OneTimeKeysCount, resp.UnusedFallbackKeyTypes, resp.ToDeviceNewest)
	}
	if resp.DeviceLists == nil || !slices.Equal(resp.DeviceLists.Changed, []string{bob}) {
		t.Errorf("after reopening: device_lists %+v, want bob changed", resp.DeviceLists)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// syncWake returns the channel a sync of user since tok would wait on.
func syncWake(t *testing.T, w *world, user string, tok *Token) <-chan struct{} {
	t.Helper()
	_, _, wake, err := w.m.Sync(SyncRequest{User: user, Device: "DEV", Since: tok})
	if err != nil {
		t.Fatal(err)
	}
	return wake
}
