package homeserver

import "testing"

// The push window's completed position never passes a sequence whose
// first attempts are still in flight.
func TestPushWindow(t *testing.T) {
	w := newPushWindow(10)
	if got := w.completed(); got != 10 {
		t.Fatalf("fresh window: %d, want 10", got)
	}
	w.start(11, 2)
	w.start(12, 0) // nothing to push
	w.start(13, 1)
	if got := w.completed(); got != 10 {
		t.Errorf("with 11 in flight: %d, want 10", got)
	}
	w.finish(13)
	w.finish(11)
	if got := w.completed(); got != 10 {
		t.Errorf("with one of 11's two in flight: %d, want 10", got)
	}
	w.finish(11)
	if got := w.completed(); got != 13 {
		t.Errorf("all finished: %d, want 13", got)
	}
	w.start(14, 0)
	if got := w.completed(); got != 14 {
		t.Errorf("after an empty record: %d, want 14", got)
	}
}
