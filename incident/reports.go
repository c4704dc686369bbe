package incident

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

// Bounds of a damage report.
const (
	MaxReportText = 4000
	// MaxAmount bounds a claimed amount (in the currency's minor unit).
	MaxAmount = 1_000_000_000_000
	// MaxReportsPerIncident is how many reports one user may file about
	// one incident.
	MaxReportsPerIncident = 10
	maxTxnID              = 255
)

// ReportInput is what a user sends to file a damage report.
type ReportInput struct {
	Category      string `json:"category"`
	Text          string `json:"text"`
	AmountClaimed *int64 `json:"amount_claimed"`
}

// Check returns the Matrix error for an input no report may have.
func (r ReportInput) Check() error {
	if !slices.Contains(Categories, r.Category) {
		return planb.InvalidParam("category must be one of %s, not %q", strings.Join(Categories, ", "), r.Category)
	}
	if !utf8.ValidString(r.Text) {
		return planb.InvalidParam("text is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(r.Text); n > MaxReportText {
		return planb.Errorf(planb.CodeTooLarge, 400, "text is %d characters; at most %d", n, MaxReportText)
	}
	if r.Category == CategoryOther && strings.TrimSpace(r.Text) == "" {
		return planb.MissingParam("a report of category other needs a text saying what happened")
	}
	if a := r.AmountClaimed; a != nil && (*a < 0 || *a > MaxAmount) {
		return planb.InvalidParam("amount_claimed must be between 0 and %d", int64(MaxAmount))
	}
	return nil
}

// FileReport records user's report about incident id under the client's
// transaction ID: the same transaction again returns the report filed the
// first time (created false) whatever it now says. The caller checks that
// the incident affected the user.
func (l *Ledger) FileReport(ctx context.Context, id, user, txnID string, in ReportInput, now time.Time) (Report, bool, error) {
	if txnID == "" || len(txnID) > maxTxnID {
		return Report{}, false, planb.InvalidParam("transaction ID must be 1 to %d bytes", maxTxnID)
	}
	key := repKey(id, user, txnID)
	var r Report
	if _, err := l.get(ctx, key, &r); err == nil {
		return r, false, nil
	} else if !errors.Is(err, planb.ErrNotFound) {
		return Report{}, false, err
	}
	if err := in.Check(); err != nil {
		return Report{}, false, err
	}
	mine, err := l.engine.Keys(ctx, jetstream.BucketIncidents, "rep."+id+"."+jetstream.KeyPart(user)+".*")
	if err != nil {
		return Report{}, false, fmt.Errorf("count reports of %s: %w", user, err)
	}
	if len(mine) >= MaxReportsPerIncident {
		return Report{}, false, planb.Errorf(planb.CodeLimitExceeded, 429, "at most %d reports per incident; you filed %d", MaxReportsPerIncident, len(mine))
	}
	r = Report{ID: strings.TrimPrefix(key, "rep."), Incident: id, User: user, Category: in.Category, Text: in.Text,
		AmountClaimed: in.AmountClaimed, Status: StatusReceived, CreatedAt: now.UTC(), UpdatedAt: now.UTC(), TxnID: txnID}
	if err := l.putNew(ctx, key, r); errors.Is(err, planb.ErrExists) {
		// The same transaction, retried at once: answer what was filed.
		_, err := l.get(ctx, key, &r)
		return r, false, err
	} else if err != nil {
		return Report{}, false, fmt.Errorf("file report: %w", err)
	}
	return r, true, nil
}

// ReportFilter selects reports; empty fields select all.
type ReportFilter struct {
	Incident string
	User     string
	Status   string
	Category string
}

// Reports returns the reports filter selects, oldest first.
func (l *Ledger) Reports(ctx context.Context, f ReportFilter) ([]Report, error) {
	pattern := "rep.>"
	if f.Incident != "" {
		pattern = "rep." + f.Incident + ".>"
		if f.User != "" {
			pattern = "rep." + f.Incident + "." + jetstream.KeyPart(f.User) + ".*"
		}
	}
	all, err := list[Report](ctx, l, pattern, "reports")
	if err != nil {
		return nil, err
	}
	var out []Report
	for _, r := range all {
		if (f.User == "" || r.User == f.User) && (f.Status == "" || r.Status == f.Status) && (f.Category == "" || r.Category == f.Category) {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// SetReportStatus sets the status of report reportID (a Report.ID).
func (l *Ledger) SetReportStatus(ctx context.Context, reportID, status string, now time.Time) (Report, error) {
	if status != StatusReceived && status != StatusReviewed && status != StatusPaid {
		return Report{}, planb.InvalidParam("status must be received, reviewed or paid, not %q", status)
	}
	parts := strings.Split(reportID, ".")
	if len(parts) != 3 || !ValidID(parts[0]) {
		return Report{}, planb.InvalidParam("no such report ID %q", reportID)
	}
	return update(ctx, l, "rep."+reportID, func(r *Report, exists bool) (bool, error) {
		if !exists {
			return false, planb.NotFound("no report %s", reportID)
		}
		if r.Status == status {
			return false, nil
		}
		r.Status, r.UpdatedAt = status, now.UTC()
		return true, nil
	})
}

// WriteReportsCSV writes reports as CSV with a header row. Cells that a
// spreadsheet would run as a formula are prefixed with a quote.
func WriteReportsCSV(w io.Writer, reports []Report) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"id", "incident", "user", "category", "amount_claimed", "status", "created_at", "updated_at", "text"})
	for _, r := range reports {
		amount := ""
		if r.AmountClaimed != nil {
			amount = strconv.FormatInt(*r.AmountClaimed, 10)
		}
		row := []string{r.ID, r.Incident, r.User, r.Category, amount, r.Status,
			r.CreatedAt.UTC().Format(time.RFC3339), r.UpdatedAt.UTC().Format(time.RFC3339), r.Text}
		for i := range row {
			row[i] = SafeCell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("write reports CSV: %w", err)
		}
	}
	cw.Flush()
	return cw.Error()
}

// SafeCell keeps a CSV cell from being read as a formula by spreadsheets.
func SafeCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
