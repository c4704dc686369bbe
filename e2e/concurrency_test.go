package e2e

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// TestConcurrentSenders: 8 clients each send 40 messages into one room at
// the same time while each follows its own /sync stream. Every reader sees
// every event exactly once, all readers (sync streams and /messages) agree
// on one order, and that order keeps each sender's messages in send order.
func TestConcurrentSenders(t *testing.T) {
	const (
		clients = 8
		each    = 40
		total   = clients * each
	)
	srv := startServer(t)
	ctx := t.Context()

	users := make([]*mautrix.Client, clients)
	for i := range users {
		users[i] = newUser(t, srv, fmt.Sprintf("conc%d", i))
	}
	created, err := users[0].CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "public_chat", Name: "concurrency"})
	must(t, "create room", err)
	room := created.RoomID
	for _, u := range users[1:] {
		_, err := u.JoinRoomByID(ctx, room)
		must(t, u.UserID.String()+" joins", err)
	}

	// Readers start before the writers so that they see the events arrive
	// over many incremental syncs.
	syncers := make([]*syncer, clients)
	for i, u := range users {
		syncers[i] = newSyncer(u)
		must(t, "initial sync", syncers[i].once(ctx))
	}
	readCtx := ctxTimeout(t, 120*time.Second)
	var readers sync.WaitGroup
	readErrs := make([]error, clients)
	for i, s := range syncers {
		readers.Go(func() {
			readErrs[i] = s.untilCtx(readCtx, func() error {
				if n := len(s.messages(room, "conc-")); n < total {
					return fmt.Errorf("%s synced %d of %d messages", s.cli.UserID, n, total)
				}
				return nil
			})
		})
	}

	start := make(chan struct{})
	var writers sync.WaitGroup
	sent := make([][]id.EventID, clients)
	writeErrs := make([]error, clients)
	for i, u := range users {
		writers.Go(func() {
			<-start
			for j := range each {
				resp, err := u.SendMessageEvent(readCtx, room, event.EventMessage, text(fmt.Sprintf("conc-%d-%d", i, j)))
				if err != nil {
					writeErrs[i] = fmt.Errorf("%s message %d: %w", u.UserID, j, err)
					return
				}
				sent[i] = append(sent[i], resp.EventID)
			}
		})
	}
	close(start)
	writers.Wait()
	if err := errors.Join(writeErrs...); err != nil {
		t.Fatalf("send errors: %v", err)
	}
	readers.Wait()
	if err := errors.Join(readErrs...); err != nil {
		t.Fatalf("sync errors: %v", err)
	}

	want := map[id.EventID]string{}
	for i := range sent {
		for j, e := range sent[i] {
			if prev, dup := want[e]; dup {
				t.Errorf("event ID %s returned for two sends (%s and conc-%d-%d)", e, prev, i, j)
			}
			want[e] = fmt.Sprintf("conc-%d-%d", i, j)
		}
	}

	// Each reader's sequence: exactly the sent events, once each, with
	// the body that was sent.
	orders := map[string][]id.EventID{}
	for _, s := range syncers {
		orders["/sync of "+s.cli.UserID.String()] = ids(s.messages(room, "conc-"))
		if s.gapsFilled > 1 {
			t.Logf("%s: %d limited timelines back-filled from /messages", s.cli.UserID, s.gapsFilled)
		}
	}
	for _, u := range users {
		all, err := allMessages(ctx, u, room, 50)
		must(t, "read room with /messages", err)
		orders["/messages of "+u.UserID.String()] = ids(filterMessages(all, "conc-"))
	}
	for reader, order := range orders {
		checkExactlyOnce(t, reader, order, want)
	}

	// One order for all readers.
	ref := orders["/sync of "+users[0].UserID.String()]
	for reader, order := range orders {
		if !slices.Equal(order, ref) {
			t.Errorf("%s orders events differently from %s's /sync (first difference at %d)",
				reader, users[0].UserID, firstDiff(order, ref))
		}
	}

	// That order keeps each sender's messages in the order they were sent:
	// each send returned before the next began.
	pos := map[id.EventID]int{}
	for i, e := range ref {
		pos[e] = i
	}
	for i := range sent {
		for j := 1; j < len(sent[i]); j++ {
			if pos[sent[i][j-1]] > pos[sent[i][j]] {
				t.Errorf("conc-%d-%d is ordered before conc-%d-%d", i, j, i, j-1)
			}
		}
	}
}

// checkExactlyOnce reports events of want missing from order, events
// appearing twice and events that were never sent.
func checkExactlyOnce(t *testing.T, reader string, order []id.EventID, want map[id.EventID]string) {
	t.Helper()
	seen := map[id.EventID]int{}
	for _, e := range order {
		seen[e]++
	}
	var missing, dups, unknown []string
	for e, b := range want {
		if seen[e] == 0 {
			missing = append(missing, b)
		}
	}
	for e, n := range seen {
		if _, ok := want[e]; !ok {
			unknown = append(unknown, e.String())
		} else if n > 1 {
			dups = append(dups, want[e]+" x"+strconv.Itoa(n))
		}
	}
	if len(missing)+len(dups)+len(unknown) > 0 {
		slices.Sort(missing)
		t.Errorf("%s: %d events missing %s; duplicated %v; unknown %v",
			reader, len(missing), abbreviate(missing), dups, unknown)
	}
}

func abbreviate(s []string) string {
	if len(s) > 10 {
		return strings.Join(s[:10], " ") + " ..."
	}
	return strings.Join(s, " ")
}

func firstDiff(a, b []id.EventID) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
