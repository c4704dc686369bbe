package incident

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/jetstream"
)

var t0 = time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func TestMergeAndDuration(t *testing.T) {
	got := Merge([]Interval{{at(10), at(20)}, {at(0), at(5)}, {at(5), at(7)}, {at(15), at(30)}, {at(40), at(41)}})
	want := []Interval{{at(0), at(7)}, {at(10), at(30)}, {at(40), at(41)}}
	if !sameIntervals(got, want) {
		t.Errorf("Merge = %v, want %v", got, want)
	}
	open := Merge([]Interval{{From: at(3)}, {at(5), at(9)}, {at(0), at(1)}})
	if len(open) != 2 || !open[1].To.IsZero() || !open[1].From.Equal(at(3)) {
		t.Errorf("an open interval absorbs the later ones: %v", open)
	}
	a := Affected{Intervals: []Interval{{at(0), at(10)}, {at(5), at(15)}, {From: at(20)}}}
	if d := a.Duration(at(25)); d != 20*time.Minute {
		t.Errorf("Duration = %v, want 20m (overlap once, open up to now)", d)
	}
	if !a.Ongoing() {
		t.Errorf("Ongoing = false with an open interval")
	}
	a.Close(at(22))
	if a.Ongoing() {
		t.Errorf("Ongoing = true after Close")
	}
	if d := a.Duration(at(99)); d != 17*time.Minute {
		t.Errorf("Duration after Close = %v, want 17m", d)
	}
	b := Affected{Intervals: []Interval{{From: at(10)}}}
	b.Close(at(5)) // an end before the interval's start closes it empty
	if d := b.Duration(at(99)); d != 0 {
		t.Errorf("closed before its start: %v", d)
	}
}

func TestIDs(t *testing.T) {
	id := NewID(time.Date(2026, 12, 4, 3, 4, 5, 0, time.FixedZone("KST", 9*3600)), DataCenterLost, "dc 2/<x>")
	if id != "20261203-180405-dc-2--x--lost" || !ValidID(id) {
		t.Errorf("NewID = %q (valid %v)", id, ValidID(id))
	}
	for _, bad := range []string{"", "a.b", "a*", "../x", strings.Repeat("a", 81)} {
		if ValidID(bad) {
			t.Errorf("ValidID(%q) = true", bad)
		}
	}
}

func TestReportInputCheck(t *testing.T) {
	neg, big := int64(-1), int64(MaxAmount+1)
	for _, tc := range []struct {
		in   ReportInput
		code planb.ErrCode
	}{
		{ReportInput{Category: "money"}, planb.CodeInvalidParam},
		{ReportInput{Category: CategoryOther, Text: "  "}, planb.CodeMissingParam},
		{ReportInput{Category: CategoryMessages, Text: strings.Repeat("가", MaxReportText+1)}, planb.CodeTooLarge},
		{ReportInput{Category: CategoryMessages, AmountClaimed: &neg}, planb.CodeInvalidParam},
		{ReportInput{Category: CategoryMessages, AmountClaimed: &big}, planb.CodeInvalidParam},
		{ReportInput{Category: CategoryMessages, Text: "\xff"}, planb.CodeInvalidParam},
	} {
		err := tc.in.Check()
		if e, ok := planb.AsError(err); !ok || e.Code != tc.code {
			t.Errorf("Check(%+v) = %v, want %s", tc.in, err, tc.code)
		}
	}
	if err := (ReportInput{Category: CategoryMessages, Text: strings.Repeat("가", MaxReportText)}).Check(); err != nil {
		t.Errorf("a report of the longest text: %v", err)
	}
}

func TestReportsCSVIsFormulaSafe(t *testing.T) {
	amount := int64(5000)
	var buf bytes.Buffer
	err := WriteReportsCSV(&buf, []Report{{ID: "i.u.t", Incident: "i", User: "@sam:x", Category: "other", Text: "=HYPERLINK(\"x\")\nsecond line",
		AmountClaimed: &amount, Status: StatusReceived, CreatedAt: t0, UpdatedAt: t0}})
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil || len(rows) != 2 {
		t.Fatalf("CSV: %v %q", err, rows)
	}
	if rows[1][2] != "'@sam:x" || rows[1][8] != "'=HYPERLINK(\"x\")\nsecond line" || rows[1][4] != "5000" {
		t.Errorf("row %q", rows[1])
	}
}

// engine starts a one-replica engine in a temporary directory.
func engine(t *testing.T) *jetstream.Engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	eng, err := jetstream.Start(ctx, jetstream.Config{DataDir: t.TempDir(), NodeName: "n1", DataCenter: "dc1", Replicas: 1, Partitions: 1},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("start engine: %v", err)
	}
	t.Cleanup(eng.Close)
	return eng
}

// TestLedgerOpenJoinClose opens one incident from many detectors at once:
// one opens it, the others join the same one; affected users are counted
// once each; closing ends every open interval and frees the subject for a
// new incident.
func TestLedgerOpenJoinClose(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(engine(t))
	var wg sync.WaitGroup
	ids := make([]string, 6)
	opened := make([]bool, 6)
	errs := make([]error, 6)
	for i := range ids {
		wg.Go(func() {
			in, o, err := l.Open(ctx, Incident{Kind: DataCenterLost, StartedAt: at(i), DataCenters: []string{"dc2"}, OpenedBy: "n"}, "dc2")
			ids[i], opened[i], errs[i] = in.ID, o, err
		})
	}
	wg.Wait()
	n := 0
	for i := range ids {
		if errs[i] != nil {
			t.Fatalf("open %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Errorf("detector %d joined %s, detector 0 %s", i, ids[i], ids[0])
		}
		if opened[i] {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d detectors opened the incident, want 1", n)
	}
	id := ids[0]
	if in, ok, err := l.OpenAbout(ctx, DataCenterLost, "dc2"); err != nil || !ok || in.ID != id {
		t.Fatalf("OpenAbout = %+v %v %v", in, ok, err)
	}
	for range 3 { // the same user thrice, and a second one
		if _, err := l.AddAffected(ctx, id, "@sam:x", "dc2", ReasonStranded, Interval{From: at(0)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AddAffected(ctx, id, "@mia:x", "", ReasonServerErrors, Interval{at(1), at(2)}); err != nil {
		t.Fatal(err)
	}
	in, _, err := l.Get(ctx, id)
	if err != nil || in.AffectedUsers != 2 {
		t.Fatalf("affected users %d (%v), want 2", in.AffectedUsers, err)
	}
	closed, err := l.Close(ctx, id, "dc2", at(30))
	if err != nil || closed.EndedAt == nil || !closed.EndedAt.Equal(at(30)) {
		t.Fatalf("Close = %+v %v", closed, err)
	}
	sam, err := l.Affected(ctx, id, "@sam:x")
	if err != nil || sam.Duration(at(999)) != 30*time.Minute || sam.DataCenter != "dc2" {
		t.Errorf("sam after the close: %+v %v (affected %v)", sam, err, sam.Duration(at(999)))
	}
	if _, ok, _ := l.OpenAbout(ctx, DataCenterLost, "dc2"); ok {
		t.Errorf("still open about dc2 after the close")
	}
	next, o, err := l.Open(ctx, Incident{Kind: DataCenterLost, StartedAt: at(60), DataCenters: []string{"dc2"}}, "dc2")
	if err != nil || !o || next.ID == id {
		t.Errorf("a new loss of dc2: %+v opened %v %v", next, o, err)
	}
	all, err := l.List(ctx)
	if err != nil || len(all) != 2 || all[0].ID != next.ID {
		t.Errorf("List = %+v %v, want the open one first", all, err)
	}
}

func TestLedgerReports(t *testing.T) {
	ctx := context.Background()
	l := NewLedger(engine(t))
	in, _, err := l.Open(ctx, Incident{Kind: DataCenterLost, StartedAt: at(0), DataCenters: []string{"dc2"}}, "dc2")
	if err != nil {
		t.Fatal(err)
	}
	r1, created, err := l.FileReport(ctx, in.ID, "@sam:x", "t1", ReportInput{Category: CategoryMessages, Text: "late"}, at(1))
	if err != nil || !created || r1.Status != StatusReceived {
		t.Fatalf("file: %+v %v %v", r1, created, err)
	}
	again, created, err := l.FileReport(ctx, in.ID, "@sam:x", "t1", ReportInput{Category: CategoryOther, Text: "changed"}, at(2))
	if err != nil || created || again.ID != r1.ID || again.Text != "late" {
		t.Errorf("the same transaction again: %+v created %v %v", again, created, err)
	}
	for i := 1; i < MaxReportsPerIncident; i++ {
		if _, _, err := l.FileReport(ctx, in.ID, "@sam:x", "more"+string(rune('a'+i)), ReportInput{Category: CategoryBusiness}, at(3)); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	if _, _, err := l.FileReport(ctx, in.ID, "@sam:x", "one-too-many", ReportInput{Category: CategoryBusiness}, at(4)); !errors.Is(err, planb.Errorf(planb.CodeLimitExceeded, 429, "")) {
		t.Errorf("report beyond the limit: %v, want M_LIMIT_EXCEEDED", err)
	}
	if _, _, err := l.FileReport(ctx, in.ID, "@mia:x", "t1", ReportInput{Category: CategoryPayment}, at(5)); err != nil {
		t.Fatal(err)
	}
	sams, err := l.Reports(ctx, ReportFilter{Incident: in.ID, User: "@sam:x"})
	if err != nil || len(sams) != MaxReportsPerIncident {
		t.Errorf("sam's reports: %d %v", len(sams), err)
	}
	pay, err := l.Reports(ctx, ReportFilter{Category: CategoryPayment})
	if err != nil || len(pay) != 1 || pay[0].User != "@mia:x" {
		t.Errorf("payment reports: %+v %v", pay, err)
	}
	paid, err := l.SetReportStatus(ctx, pay[0].ID, StatusPaid, at(9))
	if err != nil || paid.Status != StatusPaid || !paid.UpdatedAt.Equal(at(9)) {
		t.Errorf("set status: %+v %v", paid, err)
	}
	if _, err := l.SetReportStatus(ctx, pay[0].ID, "lost", at(9)); err == nil {
		t.Errorf("status lost accepted")
	}
	if _, err := l.SetReportStatus(ctx, in.ID+".eA.eA", StatusPaid, at(9)); !errors.Is(err, planb.ErrNotFound) && !errors.Is(err, planb.NotFound("")) {
		t.Errorf("status of a missing report: %v", err)
	}
}
