// Package incident holds planb's account of its own outages: the incidents
// the cluster opens by itself when a data center is lost or cut off, or a
// partition cannot commit, who they affected and for how long, the notices
// those users were sent and the damage reports they filed. Everything is
// kept in the replicated incidents bucket (see Ledger), so the account of
// an outage survives the loss of the data center it describes.
package incident

import (
	"slices"
	"sort"
	"time"
)

// Kind says what went wrong.
type Kind string

// The kinds of incident the cluster detects.
const (
	// DataCenterLost: every node of a data center stopped committing its
	// heartbeat (killed, frozen, or cut off from the others).
	DataCenterLost Kind = "datacenter_lost"
	// PartitionStalled: a partition of the room log had no leader, so its
	// rooms could not take writes.
	PartitionStalled Kind = "partition_stalled"
	// NodeNotReady: a node kept committing heartbeats but said it was not
	// ready to serve (its disk full, its read models rebuilding).
	NodeNotReady Kind = "node_not_ready"
)

// Incident is one outage, open while EndedAt is nil.
type Incident struct {
	ID        string     `json:"id"`
	Kind      Kind       `json:"kind"`
	StartedAt time.Time  `json:"started_at"`
	EndedAt   *time.Time `json:"ended_at"`
	// DataCenters and Partitions are those concerned.
	DataCenters []string `json:"datacenters"`
	Partitions  []int    `json:"partitions,omitempty"`
	// Rooms is how many rooms had their writes stalled (the rooms of the
	// partitions concerned).
	Rooms int `json:"rooms"`
	// Reason is what a node that was not ready said.
	Reason string `json:"reason,omitempty"`
	// AffectedUsers is how many users the ledger records as affected.
	AffectedUsers int `json:"affected_users"`
	// Drill is set when the incident started while a drill held the drill
	// lock: it was caused on purpose.
	Drill   bool   `json:"drill"`
	DrillID string `json:"drill_id,omitempty"`
	// OpenedBy is the node that detected it first (the others joined).
	OpenedBy string `json:"opened_by"`
	// NoticesDone is set once every follow-up notice of a closed incident
	// was sent.
	NoticesDone bool `json:"notices_done,omitempty"`
}

// Open reports whether the incident has not ended.
func (in Incident) Open() bool { return in.EndedAt == nil }

// Duration is how long the incident lasted, or has lasted by now.
func (in Incident) Duration(now time.Time) time.Duration {
	end := now
	if in.EndedAt != nil {
		end = *in.EndedAt
	}
	return max(end.Sub(in.StartedAt), 0)
}

// Why a user counts as affected.
const (
	// ReasonStranded: the user's session was at a data center the incident
	// lost, and they had not been seen at another one since.
	ReasonStranded = "session_stranded"
	// ReasonServerErrors: requests of the user failed with 5xx.
	ReasonServerErrors = "server_errors"
	// ReasonWritesStalled: a room of the user could not take writes.
	ReasonWritesStalled = "writes_stalled"
)

// Interval is a span of time a user was affected; To is zero while it
// lasts.
type Interval struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to,omitzero"`
}

// Affected is what an incident did to one user.
type Affected struct {
	Incident  string     `json:"incident"`
	User      string     `json:"user"`
	Reasons   []string   `json:"reasons"`
	Intervals []Interval `json:"intervals"`
	// DataCenter is where the user's session was (for stranded users).
	DataCenter string `json:"datacenter,omitempty"`
	// Notified and FollowedUp are set once the user's notice and the
	// follow-up at the incident's end were committed to their
	// server-notices room.
	Notified   bool `json:"notified,omitempty"`
	FollowedUp bool `json:"followed_up,omitempty"`
}

// Add records that the user was affected for reason during iv, merging it
// with the intervals already known.
func (a *Affected) Add(reason string, iv Interval) {
	if !slices.Contains(a.Reasons, reason) {
		a.Reasons = append(a.Reasons, reason)
		sort.Strings(a.Reasons)
	}
	a.Intervals = Merge(append(a.Intervals, iv))
}

// Ongoing reports whether an interval of a is still open.
func (a Affected) Ongoing() bool {
	for _, iv := range a.Intervals {
		if iv.To.IsZero() {
			return true
		}
	}
	return false
}

// Close ends every interval still open at end (the incident's end).
func (a *Affected) Close(end time.Time) {
	for i := range a.Intervals {
		if a.Intervals[i].To.IsZero() {
			a.Intervals[i].To = end
			if end.Before(a.Intervals[i].From) {
				a.Intervals[i].To = a.Intervals[i].From
			}
		}
	}
	a.Intervals = Merge(a.Intervals)
}

// Duration is the total time the user was affected, counting open
// intervals up to now; overlapping intervals count once.
func (a Affected) Duration(now time.Time) time.Duration {
	var d time.Duration
	for _, iv := range Merge(a.Intervals) {
		to := iv.To
		if to.IsZero() {
			to = now
		}
		d += max(to.Sub(iv.From), 0)
	}
	return d
}

// Merge returns the intervals sorted, with overlapping or touching ones
// joined; an open interval (To zero) absorbs every later one.
func Merge(ivs []Interval) []Interval {
	if len(ivs) == 0 {
		return nil
	}
	s := slices.Clone(ivs)
	sort.Slice(s, func(i, j int) bool { return s[i].From.Before(s[j].From) })
	out := []Interval{s[0]}
	for _, iv := range s[1:] {
		last := &out[len(out)-1]
		switch {
		case last.To.IsZero():
			// open: covers everything after it
		case !iv.From.After(last.To):
			if iv.To.IsZero() || iv.To.After(last.To) {
				last.To = iv.To
			}
		default:
			out = append(out, iv)
		}
	}
	return out
}

// Report categories.
const (
	CategoryMessages = "messages" // messages lost or late
	CategoryBusiness = "business" // business loss
	CategoryPayment  = "payment"  // payment problem
	CategoryOther    = "other"
)

// Categories lists the categories a damage report may have.
var Categories = []string{CategoryMessages, CategoryBusiness, CategoryPayment, CategoryOther}

// Report statuses, set by an operator.
const (
	StatusReceived = "received"
	StatusReviewed = "reviewed"
	StatusPaid     = "paid"
)

// Report is a damage report a user filed for an incident that affected
// them.
type Report struct {
	ID       string `json:"id"`
	Incident string `json:"incident"`
	User     string `json:"user"`
	Category string `json:"category"`
	Text     string `json:"text"`
	// AmountClaimed is in the minor unit of the policy's currency (won
	// have none); nil when the user claims no amount.
	AmountClaimed *int64    `json:"amount_claimed,omitempty"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
	TxnID         string    `json:"txn_id"`
}
