package jetstream

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestPushBufferDeliversInOrderAndDropsWhatWasPassed(t *testing.T) {
	b := newPushBuffer(5)
	b.add(RawMsg{Seq: 4, Data: []byte("old")}) // before the follower: dropped
	b.add(RawMsg{Seq: 7, Data: []byte("g")})
	b.add(RawMsg{Seq: 5, Data: []byte("e")})
	b.add(RawMsg{Seq: 5, Data: []byte("twice")}) // the first one stays
	var got []string
	collect := func(m RawMsg) error { got = append(got, fmt.Sprintf("%d:%s", m.Seq, m.Data)); return nil }

	from := uint64(5)
	n, err := b.deliver(&from, collect)
	if err != nil || n != 1 || from != 6 || fmt.Sprint(got) != "[5:e]" {
		t.Fatalf("deliver = %d, %v; from %d, got %v; want 1 message (5), from 6", n, err, from, got)
	}
	// 6 never came by push: the follower reads 6 and 7 from the stream;
	// the buffered 7 is then dropped, not delivered twice.
	from = 8
	b.add(RawMsg{Seq: 8, Data: []byte("h")})
	n, err = b.deliver(&from, collect)
	if err != nil || n != 1 || from != 9 || fmt.Sprint(got) != "[5:e 8:h]" {
		t.Fatalf("deliver = %d, %v; from %d, got %v", n, err, from, got)
	}
	if len(b.msgs) != 0 || b.bytes != 0 {
		t.Errorf("buffer keeps %d messages, %d bytes after all were passed", len(b.msgs), b.bytes)
	}

	// fn's error stops delivery at the failing message.
	b.add(RawMsg{Seq: 9, Data: []byte("i")})
	b.add(RawMsg{Seq: 10, Data: []byte("j")})
	boom := errors.New("boom")
	n, err = b.deliver(&from, func(RawMsg) error { return boom })
	if !errors.Is(err, boom) || n != 0 || from != 9 {
		t.Errorf("deliver with a failing fn = %d, %v, from %d; want 0, boom, from 9", n, err, from)
	}
}

func TestPushBufferIsBounded(t *testing.T) {
	b := newPushBuffer(1)
	for seq := uint64(2); seq < 2+2*pushBufferMsgs; seq++ {
		b.add(RawMsg{Seq: seq, Data: []byte("x")})
	}
	if len(b.msgs) != pushBufferMsgs {
		t.Errorf("%d messages buffered, want at most %d", len(b.msgs), pushBufferMsgs)
	}
	b = newPushBuffer(1)
	big := make([]byte, pushBufferBytes/2+1)
	b.add(RawMsg{Seq: 1, Data: big})
	b.add(RawMsg{Seq: 2, Data: big})
	if len(b.msgs) != 1 || b.bytes != len(big) {
		t.Errorf("%d messages, %d bytes buffered; want one within %d bytes", len(b.msgs), b.bytes, pushBufferBytes)
	}
}

// TestFollowAppliesPushes: a follower applies a pushed message at its next
// sequence without reading the stream, and reads from the stream whatever
// did not come by push.
func TestFollowAppliesPushes(t *testing.T) {
	e := startEngine(t, t.TempDir(), 1)
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, err := e.AppendRoom(ctx, "!r:x", []byte("one"), 0, "")
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan RawMsg, 10)
	fctx, fcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- e.Follow(fctx, EventStream(0), 1, func(m RawMsg) error { got <- m; return nil })
	}()
	next := func(what string) RawMsg {
		t.Helper()
		select {
		case m := <-got:
			return m
		case <-ctx.Done():
			t.Fatalf("%s not delivered", what)
			return RawMsg{}
		}
	}
	if m := next("the replayed message"); m.Seq != a.Seq || string(m.Data) != "one" {
		t.Fatalf("replay: seq %d %q", m.Seq, m.Data)
	}
	// A push for the next sequence that is not in the stream (only a push
	// can deliver it; a real writer pushes only what the stream stored):
	// the follower takes it as is, without waiting for its poll.
	start := time.Now()
	e.push(EventStream(0), e.RoomSubject("!r:x"), a.Seq+1, []byte("pushed"))
	if m := next("the pushed message"); m.Seq != a.Seq+1 || string(m.Data) != "pushed" || m.Header != nil {
		t.Fatalf("push: seq %d %q header %v", m.Seq, m.Data, m.Header)
	}
	if took := time.Since(start); took >= followPoll {
		t.Errorf("the push took %v to apply, as long as a poll (%v)", took, followPoll)
	}
	fcancel()
	if err := <-done; err != nil {
		t.Fatalf("follow: %v", err)
	}

	// A follower that missed the push (it subscribed later, as after a
	// restart) reads the message from the stream.
	b, err := e.AppendRoom(ctx, "!r:x", []byte("two"), a.Seq, "")
	if err != nil {
		t.Fatal(err)
	}
	fctx, fcancel = context.WithCancel(ctx)
	defer fcancel()
	go func() {
		done <- e.Follow(fctx, EventStream(0), b.Seq, func(m RawMsg) error { got <- m; return nil })
	}()
	if m := next("a message read from the stream"); m.Seq != b.Seq || string(m.Data) != "two" || m.Header == nil {
		t.Fatalf("read: seq %d %q header %v", m.Seq, m.Data, m.Header)
	}
}
