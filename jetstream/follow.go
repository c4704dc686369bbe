package jetstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Follow replays stream from sequence from (1 = the beginning) and then
// follows new messages, calling fn for each in order, until ctx ends or fn
// returns an error.
//
// It reads with batched direct gets, which the local replica answers when it
// is current: a node's read models come from its own disk replica and
// depend on no consumer, no meta leader and no other data center. Writers
// publish a tiny hint after each commit (see hint) so followers fetch new
// messages within milliseconds; a short poll covers lost hints.
//
// A writer of room events pushes the committed message itself with its
// hint (see push): a follower that is right before that sequence applies
// it without asking any replica. Pushes are only a shortcut: every message
// a follower did not get by push, in order, it reads from the stream.
// Pushed messages carry no Header and no Time.
func (e *Engine) Follow(ctx context.Context, stream string, from uint64, fn func(RawMsg) error) error {
	if from < 1 {
		from = 1
	}
	hints := make(chan uint64, 1)
	pushed := newPushBuffer(from)
	hsub, err := e.nc.Subscribe(hintSubject(stream), func(m *nats.Msg) {
		seq, _ := strconv.ParseUint(string(m.Data), 10, 64)
		if ps := m.Header.Get(hdrPushSeq); ps != "" {
			seq, _ = strconv.ParseUint(ps, 10, 64)
			pushed.add(RawMsg{Subject: m.Header.Get(hdrPushSubject), Seq: seq, Data: m.Data})
		}
		select {
		case hints <- seq:
		default: // a wake-up is pending already
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to commit hints of %s: %w", stream, err)
	}
	defer hsub.Unsubscribe()
	// One reply subscription for the follower's whole life: subscribing per
	// request would announce a new interest to every other node, several
	// times a second per stream.
	replies := make(chan *nats.Msg, 1024)
	inbox := e.nc.NewInbox()
	rsub, err := e.nc.ChanSubscribe(inbox+".*", replies)
	if err != nil {
		return fmt.Errorf("subscribe to direct-get replies of %s: %w", stream, err)
	}
	defer rsub.Unsubscribe()
	var want uint64 // highest committed sequence we were told of
	backoff := time.Millisecond
	first := directGetFirst
	// fetch: read from the stream at the next turn. At first (the replay),
	// while reads return messages, and after a poll interval; in between,
	// only when a commit we were told of did not arrive by push.
	fetch := true
	for req := uint64(1); ; req++ {
		if _, err := pushed.deliver(&from, fn); err != nil {
			return err
		}
		if fetch || want >= from {
			n, err := e.directBatch(ctx, stream, &from, inbox+"."+strconv.FormatUint(req, 10), replies, first, fn)
			if errors.Is(err, errNoFirstReply) {
				// Ask again at once (NATS picks a replica again), with more
				// patience each time in case every replica is just slow.
				first = min(2*first, directGetTimeout)
				continue
			}
			first = directGetFirst
			var fnErr handlerError
			if errors.As(err, &fnErr) {
				return fnErr.err
			}
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				e.log.Debug("follow: direct get failed; retrying", "stream", stream, "from", from, "err", err)
			}
			if n > 0 {
				backoff = time.Millisecond
				continue
			}
		}
		fetch = false
		wait := followPoll
		if want >= from {
			// A commit we were told of has not reached the local replica
			// yet: look again soon.
			wait, backoff = backoff, min(backoff*2, 32*time.Millisecond)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case seq := <-hints:
			want = max(want, seq)
			backoff = time.Millisecond
		case <-t.C:
			fetch = true
		}
		t.Stop()
	}
}

// NATS hands a direct get to a random replica of the stream (it prefers
// local queue subscribers only for messages that arrive over a route), so
// one in three may go to a data center that is frozen or cut off. Readers
// therefore wait only briefly for the first reply and ask again, which
// picks again: directGetFirst at first, doubling up to directGetTimeout
// while no replica answers.
const (
	directGetFirst   = 250 * time.Millisecond
	directGetTimeout = 2 * time.Second
)

// followPoll is how often an idle follower looks for messages it was not
// told about (a writer that died between commit and hint).
const followPoll = 100 * time.Millisecond

// hintSubject carries "committed up to seq" hints of a stream.
func hintSubject(stream string) string { return "planb.hint." + stream }

// hint tells followers that stream has committed seq.
func (e *Engine) hint(stream string, seq uint64) {
	_ = e.nc.Publish(hintSubject(stream), []byte(strconv.FormatUint(seq, 10))) // best effort: followers also poll
}

// Headers of a push: a hint that carries the committed message.
const (
	hdrPushSeq     = "Planb-Seq"
	hdrPushSubject = "Planb-Subject"
)

// push tells followers that stream has committed data as message seq on
// subject, and hands them the message. Call it only with the data of a
// publish that the stream acknowledged as seq and not as a duplicate (a
// duplicate's seq holds the first publish's data). Best effort, like hint.
func (e *Engine) push(stream, subject string, seq uint64, data []byte) {
	m := nats.NewMsg(hintSubject(stream))
	m.Header.Set(hdrPushSeq, strconv.FormatUint(seq, 10))
	m.Header.Set(hdrPushSubject, subject)
	m.Data = data
	if err := e.nc.PublishMsg(m); err != nil { // too large for one message, say
		e.hint(stream, seq)
	}
}

// pushBuffer holds pushed messages until the follower reaches them. It is
// bounded: what does not fit is read from the stream instead.
type pushBuffer struct {
	mu    sync.Mutex // guards the fields below
	next  uint64     // the follower's next sequence; older pushes are dropped
	msgs  map[uint64]RawMsg
	bytes int
}

const (
	pushBufferMsgs  = 1024
	pushBufferBytes = 16 << 20
)

func newPushBuffer(next uint64) *pushBuffer {
	return &pushBuffer{next: next, msgs: map[uint64]RawMsg{}}
}

func (b *pushBuffer) add(m RawMsg) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.Seq < b.next || len(b.msgs) >= pushBufferMsgs || b.bytes+len(m.Data) > pushBufferBytes {
		return
	}
	if _, ok := b.msgs[m.Seq]; !ok {
		b.msgs[m.Seq] = m
		b.bytes += len(m.Data)
	}
}

// deliver hands fn the buffered messages that continue the log at *from,
// in order, advancing *from, and drops those the follower has passed. It
// returns how many it delivered, and fn's error.
func (b *pushBuffer) deliver(from *uint64, fn func(RawMsg) error) (int, error) {
	b.mu.Lock()
	if *from != b.next { // the follower read from the stream meanwhile
		for seq, m := range b.msgs {
			if seq < *from {
				delete(b.msgs, seq)
				b.bytes -= len(m.Data)
			}
		}
		b.next = *from
	}
	b.mu.Unlock()
	n := 0
	for {
		b.mu.Lock()
		m, ok := b.msgs[*from]
		if ok {
			delete(b.msgs, *from)
			b.bytes -= len(m.Data)
			b.next = *from + 1
		}
		b.mu.Unlock()
		if !ok {
			return n, nil
		}
		if err := fn(m); err != nil {
			return n, err
		}
		*from = m.Seq + 1
		n++
	}
}

type handlerError struct{ err error }

func (h handlerError) Error() string { return h.err.Error() }

// directBatch fetches up to one batch from *from on, with replies to reply
// (which ch receives, among late replies to earlier requests), and hands
// it to fn. It returns how many messages it delivered. The first reply must
// come within first (a live replica starts answering at once, whatever the
// batch size); after that, each message within directGetIdle.
func (e *Engine) directBatch(ctx context.Context, stream string, from *uint64, reply string, ch <-chan *nats.Msg, first time.Duration, fn func(RawMsg) error) (int, error) {
	req, _ := json.Marshal(map[string]any{"seq": *from, "batch": 512, "max_bytes": 4 << 20})
	if err := e.nc.PublishRequest("$JS.API.DIRECT.GET."+stream, reply, req); err != nil {
		return 0, fmt.Errorf("request: %w", err)
	}
	n := 0
	timeout := time.NewTimer(first)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return n, ctx.Err()
		case <-timeout.C:
			if n == 0 {
				return n, errNoFirstReply
			}
			return n, errors.New("direct get: replies stopped")
		case m := <-ch:
			if m.Subject != reply {
				continue // a late reply to an earlier, abandoned request
			}
			if status := m.Header.Get("Status"); status != "" {
				switch status {
				case "204", "404": // end of batch / nothing at or after from
					return n, nil
				default:
					return n, fmt.Errorf("direct get: %s %s", status, m.Header.Get("Description"))
				}
			}
			if len(m.Data) == 0 && m.Header.Get("Nats-Sequence") == "" {
				return n, errors.New("direct get: no responders")
			}
			seq, err := strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64)
			if err != nil {
				return n, fmt.Errorf("direct get: bad sequence header: %w", err)
			}
			ts, _ := time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
			raw := RawMsg{Subject: m.Header.Get("Nats-Subject"), Seq: seq, Data: m.Data, Header: m.Header, Time: ts}
			if err := fn(raw); err != nil {
				return n, handlerError{err}
			}
			*from = seq + 1
			n++
			timeout.Reset(directGetIdle)
		}
	}
}

// errNoFirstReply is a direct get that nobody started to answer in time:
// most likely it went to a replica that is frozen or cut off.
var errNoFirstReply = errors.New("direct get: no reply")

// directGetIdle bounds the wait between two messages of one batch.
const directGetIdle = 5 * time.Second
