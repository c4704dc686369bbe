package projection

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	json "github.com/segmentio/encoding/json"
)

// The relation index: events whose content has an m.relates_to with a
// rel_type and an event_id of the same room (the spec ignores the others),
// and the threads they form. It is written in the batch of the record that
// holds the child event, so it is as far as the model's position and is
// rebuilt from the log with the rest; a redaction takes the child out (the
// redacted content has no m.relates_to any more).
//
//	'x' room parent idx   → relType eventType childID: the parent's children in timeline order
//	'h' room root         → count(8) latest(8): a thread's size and newest reply
//	'y' room latest       → root rootIdx(8): the room's threads by their newest reply
//	'z' room root user    → count(8): the user's replies in the thread
const (
	kRelation       = 'x'
	kThread         = 'h'
	kThreadActivity = 'y'
	kThreadUser     = 'z'
)

// RelThread is the rel_type of a thread reply.
const RelThread = "m.thread"

func relationKey(room, parent string, idx int) []byte {
	return withNum(key(kRelation, room, parent), uint64(idx))
}

func threadActivityKey(room string, latest int) []byte {
	return withNum(key(kThreadActivity, room), uint64(latest))
}

// relation is what an event's m.relates_to says.
type relation struct {
	relType, parent string
}

// relationOf returns the relation content declares, or false when it
// declares none with both a rel_type and an event_id. A rich reply
// (m.in_reply_to only) is no relation of this index.
func relationOf(content json.RawMessage) (relation, bool) {
	// Most events have none: skip decoding them.
	if !bytes.Contains(content, []byte(`"m.relates_to"`)) {
		return relation{}, false
	}
	var c struct {
		R *struct {
			RelType string `json:"rel_type"`
			EventID string `json:"event_id"`
		} `json:"m.relates_to"`
	}
	if json.Unmarshal(content, &c) != nil || c.R == nil || c.R.RelType == "" || c.R.EventID == "" {
		return relation{}, false
	}
	return relation{c.R.RelType, c.R.EventID}, true
}

// threadSummary is what the store keeps of a thread.
type threadSummary struct {
	count  int // replies not redacted
	latest int // timeline index of the newest of them
}

// threadSummaryOf reads the summary of root's thread in room.
func threadSummaryOf(g getter, room, root string) (threadSummary, bool, error) {
	v, ok, err := getCopy(g, key(kThread, room, root))
	if err != nil || !ok {
		return threadSummary{}, false, err
	}
	if len(v) != 16 {
		return threadSummary{}, false, fmt.Errorf("read model store: thread %s of %s is damaged", root, room)
	}
	return threadSummary{int(binary.BigEndian.Uint64(v)), int(binary.BigEndian.Uint64(v[8:]))}, true, nil
}

func (s threadSummary) encode() []byte {
	return binary.BigEndian.AppendUint64(num(uint64(s.count)), uint64(s.latest))
}

// indexRelation adds e to the relation index in b when it relates to an
// event of its room. Caller holds mu for writing.
func (m *Model) indexRelation(b *pebble.Batch, room *Room, e *Entry) error {
	rel, ok := relationOf(e.Event.Content)
	if !ok {
		return nil
	}
	pr, pidx, found, err := m.locate(b, rel.parent)
	if err != nil || !found || pr != room {
		return err
	}
	b.Set(relationKey(room.ID, rel.parent, e.Index), appendStr(appendStr(appendStr(nil, rel.relType), e.Event.Type), e.Event.EventID), nil)
	if rel.relType != RelThread {
		return nil
	}
	sum, had, err := threadSummaryOf(b, room.ID, rel.parent)
	if err != nil {
		return err
	}
	if had {
		b.Delete(threadActivityKey(room.ID, sum.latest), nil)
	}
	sum.count++
	sum.latest = e.Index
	b.Set(key(kThread, room.ID, rel.parent), sum.encode(), nil)
	b.Set(threadActivityKey(room.ID, e.Index), withNum(appendStr(nil, rel.parent), uint64(pidx)), nil)
	return addThreadUser(b, room.ID, rel.parent, e.Event.Sender, 1)
}

// unindexRelation takes redacted entry t out of the relation index in b.
// Caller holds mu for writing.
func (m *Model) unindexRelation(b *pebble.Batch, room *Room, t *Entry) error {
	rel, ok := relationOf(t.Event.Content) // as it was before the redaction
	if !ok {
		return nil
	}
	k := relationKey(room.ID, rel.parent, t.Index)
	if _, indexed, err := getCopy(b, k); err != nil || !indexed {
		return err
	}
	b.Delete(k, nil)
	if rel.relType != RelThread {
		return nil
	}
	sum, had, err := threadSummaryOf(b, room.ID, rel.parent)
	if err != nil || !had {
		return err
	}
	sum.count--
	if err := addThreadUser(b, room.ID, rel.parent, t.Event.Sender, -1); err != nil {
		return err
	}
	if sum.latest == t.Index {
		v, _, err := getCopy(b, threadActivityKey(room.ID, sum.latest))
		if err != nil {
			return err
		}
		b.Delete(threadActivityKey(room.ID, sum.latest), nil)
		prev, found, err := m.lastChild(b, room.ID, rel.parent, RelThread, t.Index)
		if err != nil {
			return err
		}
		if found {
			sum.latest = prev
			b.Set(threadActivityKey(room.ID, prev), v, nil)
		}
	}
	if sum.count <= 0 {
		b.Delete(key(kThread, room.ID, rel.parent), nil)
		return nil
	}
	b.Set(key(kThread, room.ID, rel.parent), sum.encode(), nil)
	return nil
}

// addThreadUser adds d to the count of user's replies in root's thread.
func addThreadUser(b *pebble.Batch, room, root, user string, d int) error {
	k := key(kThreadUser, room, root, user)
	n, err := getUint(b, k)
	if err != nil {
		return err
	}
	if int(n)+d <= 0 {
		b.Delete(k, nil)
		return nil
	}
	b.Set(k, num(uint64(int(n)+d)), nil)
	return nil
}

// iterSource is the store or an indexed batch.
type iterSource interface {
	NewIter(*pebble.IterOptions) (*pebble.Iterator, error)
}

// relValue is the value of a relation key.
type relValue struct {
	relType, eventType, child string
}

func decodeRelValue(v []byte) (relValue, bool) {
	r := keyReader{b: v}
	rv := relValue{r.str(), r.str(), r.str()}
	return rv, !r.err
}

// eachChild calls fn for the children of parent in room with index in
// [lo, hi), newest first when backwards, until fn returns false.
func eachChild(src iterSource, room, parent string, lo, hi int, backwards bool, fn func(idx int, v relValue) (bool, error)) error {
	if lo >= hi {
		return nil
	}
	prefix := key(kRelation, room, parent)
	it, err := src.NewIter(&pebble.IterOptions{LowerBound: relationKey(room, parent, lo), UpperBound: relationKey(room, parent, hi)})
	if err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	defer it.Close()
	ok := it.First()
	if backwards {
		ok = it.Last()
	}
	for ; ok; ok = step(it, backwards) {
		k := keyReader{b: it.Key()[len(prefix):]}
		idx := int(k.num())
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("read model store: %w", err)
		}
		rv, good := decodeRelValue(v)
		if k.err || !good {
			return fmt.Errorf("read model store: a relation of %s in %s is damaged", parent, room)
		}
		more, err := fn(idx, rv)
		if err != nil || !more {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read model store: %w", err)
	}
	return nil
}

// lastChild returns the index of parent's newest child of relType below
// index before.
func (m *Model) lastChild(src iterSource, room, parent, relType string, before int) (int, bool, error) {
	found, at := false, 0
	err := eachChild(src, room, parent, 0, before, true, func(idx int, v relValue) (bool, error) {
		if v.relType == relType {
			found, at = true, idx
		}
		return !found, nil
	})
	return at, found, err
}
