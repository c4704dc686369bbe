// Package drill measures what clients experienced while a cluster was
// broken on purpose: recovery time (RTO) per room and per partition, lost
// acknowledged writes (RPO), duplicates and errors. The fault injection and
// the workload of `planb drill` build on it; the multi-data-center tests use
// the same measurements.
package drill

import (
	"slices"
	"sort"
	"time"
)

// Ack is one acknowledged write as a client saw it.
type Ack struct {
	Room      string
	Partition int
	Tag       string // unique per write (also its txnId)
	EventID   string
	At        time.Time
}

// Gap is the longest time a room (or partition) went without an
// acknowledged write inside the measured window.
type Gap struct {
	Key     string
	Longest time.Duration
	// Resumed is the first acknowledgement after the fault, or zero when
	// writes never resumed inside the window.
	Resumed time.Time
}

// Recovery summarises a fault's effect on writes.
type Recovery struct {
	Fault time.Time
	Until time.Time
	Rooms []Gap // sorted by Longest, worst last
	// Partitions holds, per partition, the worst room gap.
	Partitions map[int]time.Duration
	// AllResumed is the time from the fault until every room had an
	// acknowledged write again (RTO for the whole cluster); zero when some
	// room never resumed inside the window.
	AllResumed time.Duration
	// Uninterrupted counts rooms whose longest gap stayed below the
	// threshold given to Measure.
	Uninterrupted int
}

// Measure computes recovery after a fault at fault, looking at writes up to
// until, for the given rooms (rooms without any write in the window count
// as never resumed). A room is uninterrupted when its longest gap is below
// smooth; choose smooth above the workload's normal interval per room.
func Measure(acks []Ack, rooms []string, partitionOf func(string) int, fault, until time.Time, smooth time.Duration) Recovery {
	by := map[string][]time.Time{}
	for _, a := range acks {
		by[a.Room] = append(by[a.Room], a.At)
	}
	rec := Recovery{Fault: fault, Until: until, Partitions: map[int]time.Duration{}}
	var allResumed time.Time
	never := false
	for _, room := range rooms {
		ts := by[room]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		g := Gap{Key: room}
		prev := fault
		for _, at := range ts {
			if at.Before(fault) {
				continue
			}
			if at.After(until) {
				break
			}
			if g.Resumed.IsZero() {
				g.Resumed = at
			}
			g.Longest = max(g.Longest, at.Sub(prev))
			prev = at
		}
		g.Longest = max(g.Longest, until.Sub(prev))
		if g.Resumed.IsZero() {
			never = true
		} else if g.Resumed.After(allResumed) {
			allResumed = g.Resumed
		}
		if g.Longest < smooth {
			rec.Uninterrupted++
		}
		p := partitionOf(room)
		rec.Partitions[p] = max(rec.Partitions[p], g.Longest)
		rec.Rooms = append(rec.Rooms, g)
	}
	sort.Slice(rec.Rooms, func(i, j int) bool { return rec.Rooms[i].Longest < rec.Rooms[j].Longest })
	if !never && len(rooms) > 0 {
		rec.AllResumed = allResumed.Sub(fault)
	}
	return rec
}

// Loss is what reading the acknowledged writes back found.
type Loss struct {
	// Missing lists acknowledged event IDs not found (RPO in events).
	Missing []string
	// Duplicates lists tags stored more than once.
	Duplicates []string
	// OrderDiffers lists rooms whose order differs between data centers.
	OrderDiffers []string
}

// Stored is one data center's read-back of one room, oldest first.
type Stored struct {
	EventIDs []string
	Tags     []string
}

// Check compares acknowledged writes with what each data center returns
// for each room (by data center, then room). Every acknowledged event must
// be present exactly once everywhere, in the same order.
func Check(acks []Ack, readBack map[string]map[string]Stored) Loss {
	var l Loss
	want := map[string]map[string]bool{} // room → event IDs
	for _, a := range acks {
		if want[a.Room] == nil {
			want[a.Room] = map[string]bool{}
		}
		want[a.Room][a.EventID] = true
	}
	missing, dups, order := map[string]bool{}, map[string]bool{}, map[string]bool{}
	first := map[string][]string{}
	for _, dc := range sortedKeys(readBack) {
		for _, room := range sortedKeys(readBack[dc]) {
			st := readBack[dc][room]
			have := map[string]bool{}
			for _, e := range st.EventIDs {
				have[e] = true
			}
			for e := range want[room] {
				if !have[e] {
					missing[e] = true
				}
			}
			seen := map[string]int{}
			for _, tag := range st.Tags {
				if tag == "" {
					continue
				}
				if seen[tag]++; seen[tag] == 2 {
					dups[tag] = true
				}
			}
			if f, ok := first[room]; !ok {
				first[room] = st.EventIDs
			} else if !slices.Equal(f, st.EventIDs) {
				order[room] = true
			}
		}
	}
	l.Missing, l.Duplicates, l.OrderDiffers = sortedKeys(missing), sortedKeys(dups), sortedKeys(order)
	return l
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ledElsewhere counts the rooms whose partition was led outside target at
// the fault (led: partition -> data center), and those of them that went
// without a write for smooth or longer.
func ledElsewhere(rooms []Gap, led map[int]string, partitionOf func(string) int, target string, smooth time.Duration) (n, interrupted int) {
	for _, g := range rooms {
		if dc, ok := led[partitionOf(g.Key)]; ok && dc != target {
			n++
			if g.Longest >= smooth {
				interrupted++
			}
		}
	}
	return n, interrupted
}

// Reads is what CheckReads finds in what clients read through /sync during
// the drill, against the history read back at the end.
type Reads struct {
	// Checked counts the messages read (first sightings).
	Checked int
	// Phantom lists messages a read returned that the final history does
	// not hold: a write that was never acknowledged and vanished, or one
	// that was lost after it was seen.
	Phantom []string
	// OutOfOrder counts messages a reader saw before one that the final
	// history puts earlier in the same room.
	OutOfOrder int
	// Redelivered counts messages a reader was given again (after a
	// failover, a /sync may resend what another data center already gave).
	Redelivered int
}

// CheckReads compares each reader's per-room sequence of message IDs with
// final (room -> event IDs in order, as read back from one data center).
func CheckReads(reads []map[string][]string, final map[string]Stored) Reads {
	var out Reads
	phantom := map[string]bool{}
	for _, rooms := range reads {
		for room, ids := range rooms {
			pos := map[string]int{}
			for i, e := range final[room].EventIDs {
				pos[e] = i
			}
			seen := map[string]bool{}
			last := -1
			for _, e := range ids {
				if seen[e] {
					out.Redelivered++
					continue
				}
				seen[e] = true
				out.Checked++
				p, ok := pos[e]
				if !ok {
					phantom[e] = true
					continue
				}
				if p < last {
					out.OutOfOrder++
				}
				last = max(last, p)
			}
		}
	}
	out.Phantom = sortedKeys(phantom)
	return out
}
