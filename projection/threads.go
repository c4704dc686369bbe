package projection

import (
	"github.com/planb-chat/planb"
)

// Threaded read receipts and notification counts (spec: "Threaded read
// receipts", "Receiving notifications"). Which thread an event is in is
// read from the timeline (its m.relates_to and its parents'), and where a
// user has read to from their receipts, so the counts follow from the log
// and the receipts bucket alone.

// ThreadMain is the thread ID of the main timeline.
const ThreadMain = "main"

// threadHops is how many relations are followed to find an event's
// thread, as the spec recommends.
const threadHops = 3

// threadOf returns the root of the thread e is in, or "" when e is in the
// main timeline: e has an m.thread relation, or one of the (at most
// threadHops) events it relates to through other relations has one.
// Thread roots, and what relates to them otherwise, are in the main
// timeline. Caller holds mu.
func (m *Model) threadOf(r *Room, e *Entry) (string, error) {
	content := e.Content
	for hop := range threadHops {
		rel, ok := relationOf(content)
		if !ok {
			return "", nil
		}
		if rel.relType == RelThread {
			return rel.parent, nil
		}
		if hop == threadHops-1 {
			break
		}
		p, err := m.entryInRoom(r, rel.parent)
		if err != nil || p == nil {
			return "", err
		}
		content = p.Content
	}
	return "", nil
}

// entryInRoom returns the entry of event id when it is in r, else nil.
// Caller holds mu.
func (m *Model) entryInRoom(r *Room, id string) (*Entry, error) {
	er, idx, ok, err := m.locateInRoom(r, id)
	if err != nil || !ok || er != r {
		return nil, err
	}
	return m.entryAt(m.db, r, idx)
}

// CheckReceiptThread answers whether a receipt for thread ("main" or a
// thread root's ID) may point at eventID in roomID; a planb.InvalidParam
// error says why not. An event of the main timeline takes "main"; an
// event in a thread, its root's ID. Like Synapse, a thread's root and the
// events related to it (within threadHops relations, of any type: an
// annotation of a reference to the root, say) take the root's ID too.
func (m *Model) CheckReceiptThread(roomID, eventID, thread string) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	r := m.rooms[roomID]
	if r == nil {
		return planb.NotFound("event %s not found in room %s", eventID, roomID)
	}
	e, err := m.entryInRoom(r, eventID)
	if err != nil {
		return err
	}
	if e == nil {
		return planb.NotFound("event %s not found in room %s", eventID, roomID)
	}
	in, err := m.threadOf(r, e)
	if err != nil {
		return err
	}
	switch {
	case thread == ThreadMain && in == "":
		return nil
	case thread == ThreadMain:
		return planb.InvalidParam("event %s is in the thread of %s, not in the main timeline", eventID, in)
	case in == thread:
		return nil
	}
	if _, root, err := threadSummaryOf(m.db, r.ID, thread); err != nil || !root {
		if err != nil {
			return err
		}
		return planb.InvalidParam("%s is not the root of a thread of room %s", thread, roomID)
	}
	cur := e
	for range threadHops + 1 {
		if cur.Event.EventID == thread {
			return nil
		}
		rel, ok := relationOf(cur.Content)
		if !ok || rel.relType == RelThread {
			break
		}
		if cur, err = m.entryInRoom(r, rel.parent); err != nil || cur == nil {
			if err != nil {
				return err
			}
			break
		}
	}
	return planb.InvalidParam("event %s is not in the thread of %s", eventID, thread)
}

// readMarks is how far a user's read receipts (m.read and
// m.read.private) in a room reach: the unthreaded ones read everything up
// to upto, a threaded one its thread ("main" for the main timeline) up to
// its event. The furthest receipt of each counts.
type readMarks struct {
	upto    int            // -1: no unthreaded receipt
	threads map[string]int // thread ID → index
}

// read reports whether the event at idx, in thread ("" for the main
// timeline), is read.
func (rm readMarks) read(idx int, thread string) bool {
	if idx <= rm.upto {
		return true
	}
	if thread == "" {
		thread = ThreadMain
	}
	t, ok := rm.threads[thread]
	return ok && idx <= t
}

// readMarksOf returns user's read marks in r. A receipt of an event the
// model does not have (yet) reads nothing. Caller holds mu.
func (m *Model) readMarksOf(r *Room, user string) (readMarks, error) {
	rm := readMarks{upto: -1}
	for slot, rc := range r.receipts[user] {
		if slot.rtype != "m.read" && slot.rtype != "m.read.private" {
			continue
		}
		er, idx, ok, err := m.locateInRoom(r, rc.EventID)
		if err != nil {
			return readMarks{}, err
		}
		if !ok || er != r {
			continue
		}
		if slot.thread == "" {
			rm.upto = max(rm.upto, idx)
			continue
		}
		if rm.threads == nil {
			rm.threads = map[string]int{}
		}
		if cur, ok := rm.threads[slot.thread]; !ok || idx > cur {
			rm.threads[slot.thread] = idx
		}
	}
	return rm, nil
}

// receiptStamp tells cheaply whether user's receipts in r changed: each
// receipt applied has a higher receipts-bucket sequence than the ones
// before it, and none is ever taken away.
type receiptStamp struct {
	n      int
	newest uint64
}

func receiptStampOf(r *Room, user string) receiptStamp {
	s := receiptStamp{n: len(r.receipts[user])}
	for _, rc := range r.receipts[user] {
		s.newest = max(s.newest, rc.Pos)
	}
	return s
}

// ThreadUnread is a room's unread counts with threads apart: Main for the
// main timeline, Threads for each thread root with any notification.
type ThreadUnread struct {
	Main    Unread
	Threads map[string]Unread
}
