package dctest

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/internal/testutil"
)

// noticeAfter is the incident notice threshold of the accountability
// tests (the default is the Korean rule, two hours).
const noticeAfter = 20 * time.Second

// statusJSON is the part of /status.json the tests read.
type statusJSON struct {
	DataCenters []struct {
		Name  string `json:"name"`
		Ready bool   `json:"ready"`
	} `json:"datacenters"`
	Incidents []struct {
		ID            string     `json:"id"`
		Kind          string     `json:"kind"`
		StartedAt     time.Time  `json:"started_at"`
		EndedAt       *time.Time `json:"ended_at"`
		DataCenters   []string   `json:"datacenters"`
		AffectedUsers int        `json:"affected_users"`
		Drill         bool       `json:"drill"`
	} `json:"incidents"`
}

// affected is the part of an affected user's ledger record the tests read.
type affected struct {
	User      string   `json:"user"`
	Reasons   []string `json:"reasons"`
	Notified  bool     `json:"notified"`
	Followed  bool     `json:"followed_up"`
	Intervals []struct {
		From time.Time `json:"from"`
		To   time.Time `json:"to"`
	} `json:"intervals"`
}

// httpDo sends a request and returns status and body.
func httpDo(t *testing.T, method, url, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// status reads /status.json at data center dc.
func (c *cluster) status(t *testing.T, dc string) (statusJSON, error) {
	code, body := httpDo(t, http.MethodGet, c.dc(dc).URL+"/status.json", "", nil)
	var s statusJSON
	if code != http.StatusOK {
		return s, fmt.Errorf("/status.json at %s: %d %s", dc, code, body)
	}
	return s, json.Unmarshal(body, &s)
}

// incidentAbout waits until /status.json at via lists a datacenter_lost
// incident about data center lost whose openness is open, and returns its
// ID.
func (c *cluster) incidentAbout(t *testing.T, via, lost string, open bool, timeout time.Duration) (id string, drill bool) {
	t.Helper()
	return c.incidentOf(t, via, "datacenter_lost", lost, open, timeout)
}

// incidentOf waits for an incident of kind about data center dc.
func (c *cluster) incidentOf(t *testing.T, via, kind, dc string, open bool, timeout time.Duration) (id string, drill bool) {
	t.Helper()
	testutil.WaitFor(t, timeout, fmt.Sprintf("%s lists a %s incident about %s (open %v)", via, kind, dc, open), func() error {
		s, err := c.status(t, via)
		if err != nil {
			return err
		}
		for _, in := range s.Incidents {
			if in.Kind == kind && len(in.DataCenters) == 1 && in.DataCenters[0] == dc && (in.EndedAt == nil) == open {
				id, drill = in.ID, in.Drill
				return nil
			}
		}
		return fmt.Errorf("incidents: %+v", s.Incidents)
	})
	return id, drill
}

// affectedUsers reads an incident's affected users through the admin API.
func (c *cluster) affectedUsers(t *testing.T, via, incident string) map[string]affected {
	t.Helper()
	code, body := httpDo(t, http.MethodGet, c.dc(via).URL+"/_planb/admin/v1/incidents/"+incident, c.file.AdminToken, nil)
	if code != http.StatusOK {
		t.Fatalf("admin incident %s: %d %s", incident, code, body)
	}
	var d struct {
		Affected []affected `json:"affected"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatal(err)
	}
	out := map[string]affected{}
	for _, a := range d.Affected {
		out[a.User] = a
	}
	return out
}

// notices returns the bodies of the server notices user has, read at dc
// without moving the user's session there (set_presence=offline writes no
// presence), joining the server-notices room if invited.
func notices(ctx context.Context, cli *mautrix.Client) ([]string, error) {
	resp, err := cli.SyncRequest(ctx, 0, "", "", false, event.PresenceOffline)
	if err != nil {
		return nil, err
	}
	var rooms []id.RoomID
	for room := range resp.Rooms.Invite {
		rooms = append(rooms, room)
	}
	for room := range resp.Rooms.Join {
		rooms = append(rooms, room)
	}
	var out []string
	for _, room := range rooms {
		if _, ok := resp.Rooms.Invite[room]; ok {
			if _, err := cli.JoinRoomByID(ctx, room); err != nil {
				return nil, fmt.Errorf("join %s: %w", room, err)
			}
		}
		msgs, err := cli.Messages(ctx, room, "", "", mautrix.DirectionForward, nil, 100)
		if err != nil {
			return nil, err
		}
		for _, ev := range msgs.Chunk {
			if ev.Type == event.EventMessage && ev.Content.Raw["msgtype"] == "m.server_notice" {
				out = append(out, fmt.Sprint(ev.Content.Raw["body"]))
			}
		}
	}
	return out, nil
}

// TestIncidentThroughDataCenterLoss SIGKILLs a data center under load: the
// survivors open an incident by themselves within seconds and show it on
// /status and /status.json; the user whose session was stranded at the
// lost data center gets one notice once the threshold passes, the user
// whose client moved to another data center and the bystander get none;
// after the restart the incident closes and the stranded user gets one
// follow-up with the amount the published rule pays; their damage report
// is filed (idempotently), refused for a user the incident did not affect,
// and exported by the admin API as CSV; the compensation table lists them.
// Then a second loss while a drill holds the drill lock is marked as a
// drill and notifies nobody.
func TestIncidentThroughDataCenterLoss(t *testing.T) {
	skipShort(t)
	c := startCluster(t, "--notice-after", noticeAfter.String())
	ctx := context.Background()

	samID, samTok := c.register("inc-sam", "dc2") // a stock client that knows only dc2
	miaID, miaTok := c.register("inc-mia", "dc2") // moves to dc1 when dc2 is lost
	benID, benTok := c.register("inc-ben", "dc1") // at dc1 all along
	for _, u := range []struct {
		cli *mautrix.Client
	}{{c.pinned(samID, samTok, "dc2")}, {c.pinned(miaID, miaTok, "dc2")}, {c.pinned(benID, benTok, "dc1")}} {
		if _, err := u.cli.SyncRequest(ctx, 0, "", "", false, event.PresenceOnline); err != nil {
			t.Fatalf("first sync of %s: %v", u.cli.UserID, err)
		}
	}
	w := setup(t, c, 3, 2)
	lctx, stopLoad := context.WithCancel(ctx)
	l := w.start(lctx, 300*time.Millisecond)
	defer func() { stopLoad(); l.wait() }()
	waitAcks(t, l, 30, "load before the kill")

	c.signal("dc2", syscall.SIGKILL)
	killed := time.Now()
	// mia's client moves at once and goes on syncing at dc1, as a client
	// does (a presence write that meets the election after the kill fails,
	// and the next sync writes it).
	miaCtx, stopMia := context.WithCancel(ctx)
	defer stopMia()
	miaCli := c.pinned(miaID, miaTok, "dc1") // here: c.pinned reloads c.file, which only this goroutine may do
	go func() {
		for miaCtx.Err() == nil {
			if _, err := miaCli.SyncRequest(miaCtx, 2000, "", "", false, event.PresenceOnline); err != nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	incID, drill := c.incidentAbout(t, "dc1", "dc2", true, 60*time.Second)
	t.Logf("MEASURED: incident %s open on dc1's /status.json %.1f s after the SIGKILL", incID, time.Since(killed).Seconds())
	if drill {
		t.Errorf("incident %s is marked as a drill; no drill ran", incID)
	}
	if id3, _ := c.incidentAbout(t, "dc3", "dc2", true, 30*time.Second); id3 != incID {
		t.Errorf("dc3 lists incident %s, dc1 %s: one incident, whoever detects first", id3, incID)
	}
	code, page := httpDo(t, http.MethodGet, c.dc("dc3").URL+"/status?lang=en", "", nil)
	if code != http.StatusOK || !bytes.Contains(page, []byte(incID)) {
		t.Errorf("dc3 /status: %d, incident %s listed: %v", code, incID, bytes.Contains(page, []byte(incID)))
	}

	// sam is notified once the threshold passes; mia and ben never are.
	testutil.WaitFor(t, noticeAfter+60*time.Second, "sam notified", func() error {
		a, ok := c.affectedUsers(t, "dc1", incID)[string(samID)]
		if !ok || !a.Notified {
			return fmt.Errorf("sam: %+v (recorded %v)", a, ok)
		}
		return nil
	})
	t.Logf("MEASURED: sam's notice committed %.1f s after the SIGKILL (threshold %s)", time.Since(killed).Seconds(), noticeAfter)
	samAt3 := c.pinned(samID, samTok, "dc3")
	var got []string
	testutil.WaitFor(t, 30*time.Second, "sam's notice readable at dc3", func() error {
		var err error
		if got, err = notices(ctx, samAt3); err != nil {
			return err
		}
		if len(got) != 1 {
			return fmt.Errorf("%d notices", len(got))
		}
		return nil
	})
	if !strings.Contains(got[0], incID) || !strings.Contains(got[0], "dc2") {
		t.Errorf("sam's notice does not name the incident and the data center: %q", got[0])
	}
	t.Logf("sam's notice: %s", got[0])

	// Damage reports: sam's is filed once however often it is retried;
	// ben's is refused, the incident did not affect him.
	report := map[string]any{"category": "messages", "text": "<b>messages</b> to my shop were late", "amount_claimed": 30000}
	url := c.dc("dc1").URL + "/_planb/client/v1/incidents/" + incID + "/reports/txn-1"
	code, first := httpDo(t, http.MethodPut, url, samTok, report)
	if code != http.StatusOK {
		t.Fatalf("sam's report: %d %s", code, first)
	}
	report["text"] = "a retry says something else"
	if code, again := httpDo(t, http.MethodPut, strings.Replace(url, "dc1", "dc3", 1), samTok, report); code != http.StatusOK {
		t.Fatalf("sam's retried report: %d %s", code, again)
	} else if !bytes.Equal(reportID(t, first), reportID(t, again)) || bytes.Contains(again, []byte("a retry")) {
		t.Errorf("the retried report is another report: %s vs %s", first, again)
	}
	if code, body := httpDo(t, http.MethodPut, c.dc("dc1").URL+"/_planb/client/v1/incidents/"+incID+"/reports/txn-1", benTok, report); code != http.StatusForbidden || !bytes.Contains(body, []byte("M_FORBIDDEN")) {
		t.Errorf("ben's report: %d %s, want 403 M_FORBIDDEN", code, body)
	}

	// dc2 comes back: the incident closes, sam gets one follow-up.
	c.restart("dc2")
	c.waitReady("dc2", 2*time.Minute)
	c.incidentAbout(t, "dc3", "dc2", false, 60*time.Second)
	testutil.WaitFor(t, 60*time.Second, "sam's follow-up", func() error {
		var err error
		if got, err = notices(ctx, samAt3); err != nil {
			return err
		}
		if len(got) != 2 {
			return fmt.Errorf("%d notices", len(got))
		}
		return nil
	})
	t.Logf("sam's follow-up: %s", got[1])
	if !strings.Contains(got[1], "원") && !strings.Contains(got[1], "KRW") {
		t.Errorf("the follow-up states no amount: %q", got[1])
	}
	users := c.affectedUsers(t, "dc2", incID)
	sam, mia := users[string(samID)], users[string(miaID)]
	if _, ok := users[string(benID)]; ok {
		t.Errorf("ben, at dc1 all along, is recorded as affected: %+v", users[string(benID)])
	}
	if !sam.Followed || len(sam.Intervals) == 0 || sam.Intervals[0].To.IsZero() {
		t.Errorf("sam's record after the close: %+v", sam)
	}
	if !strings.Contains(strings.Join(mia.Reasons, ","), "session_stranded") || mia.Notified {
		t.Errorf("mia (moved at once) recorded as %+v, want stranded until her move and not notified", mia)
	} else if d := mia.Intervals[0].To.Sub(mia.Intervals[0].From); d > noticeAfter {
		t.Errorf("mia affected for %s, though she moved within seconds", d)
	}
	for _, cli := range []*mautrix.Client{c.pinned(miaID, miaTok, "dc1"), c.pinned(benID, benTok, "dc1")} {
		if n, err := notices(ctx, cli); err != nil || len(n) != 0 {
			t.Errorf("%s has notices %q (%v), want none", cli.UserID, n, err)
		}
	}
	s, err := c.status(t, "dc2")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range s.Incidents {
		if in.ID == incID && in.AffectedUsers != len(users) {
			t.Errorf("status.json counts %d affected users, the ledger holds %d", in.AffectedUsers, len(users))
		}
	}

	// The operator's exports.
	code, csvBody := httpDo(t, http.MethodGet, c.dc("dc3").URL+"/_planb/admin/v1/reports?format=csv&incident="+incID, c.file.AdminToken, nil)
	rows, err := csv.NewReader(bytes.NewReader(csvBody)).ReadAll()
	if code != http.StatusOK || err != nil || len(rows) != 2 || !strings.Contains(rows[1][2], string(samID)) {
		t.Errorf("reports CSV: %d %v %q", code, err, csvBody)
	}
	code, comp := httpDo(t, http.MethodGet, c.dc("dc1").URL+"/_planb/admin/v1/incidents/"+incID+"/compensation", c.file.AdminToken, nil)
	if code != http.StatusOK || !bytes.Contains(comp, []byte(samID)) {
		t.Errorf("compensation table: %d %s", code, comp)
	}
	clusterFile := filepath.Join(c.dir, "cluster.json")
	for _, args := range [][]string{
		{"reports", "--incident", incID, "--format", "csv"},
		{"compensation", "--incident", incID},
		{"incident", "--incident", incID},
	} {
		out, err := exec.Command(planbBinary, append(append([]string{"admin"}, args...), "--cluster", clusterFile)...).CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte(samID)) {
			t.Errorf("planb admin %q: %v\n%s", args, err, out)
		}
		t.Logf("planb admin %s:\n%s", strings.Join(args, " "), out)
	}

	// A drill: the loss of dc3 while the drill lock is held.
	code, body := httpDo(t, http.MethodPut, c.dc("dc1").URL+"/_planb/admin/v1/drills/lock", c.file.AdminToken,
		map[string]any{"id": "incident-test", "scenario": "dc-kill", "holder": "dctest", "ttl_seconds": 600})
	if code != http.StatusOK {
		t.Fatalf("take the drill lock: %d %s", code, body)
	}
	zoeID, zoeTok := c.register("inc-zoe", "dc3")
	if _, err := c.pinned(zoeID, zoeTok, "dc3").SyncRequest(ctx, 0, "", "", false, event.PresenceOnline); err != nil {
		t.Fatal(err)
	}
	c.signal("dc3", syscall.SIGKILL)
	drillInc, drill := c.incidentAbout(t, "dc1", "dc3", true, 60*time.Second)
	if !drill {
		t.Errorf("incident %s, during a drill, is not marked as a drill", drillInc)
	}
	time.Sleep(noticeAfter + 10*time.Second)
	zoe, ok := c.affectedUsers(t, "dc1", drillInc)[string(zoeID)]
	if !ok || zoe.Notified {
		t.Errorf("zoe in the drill's incident: %+v (recorded %v); want recorded and not notified", zoe, ok)
	}
	stopLoad()
	l.wait()
	_, errs := l.snapshot()
	t.Logf("load errors seen by clients over both losses: %v", errs)
}

// TestIncidentNodeNotReady restarts dc3 with a free-space floor its disk
// cannot meet, as if the disk were full: the node goes on committing
// heartbeats but stops applying the log and says it is not ready; the
// cluster opens a node_not_ready incident about dc3, and closes it once
// dc3 is back with its normal configuration.
func TestIncidentNodeNotReady(t *testing.T) {
	skipShort(t)
	c := startCluster(t)
	ctx := context.Background()
	uid, tok := c.register("nr-ann", "dc1")
	ann := c.pinned(uid, tok, "dc1")
	room, err := ann.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat"})
	if err != nil {
		t.Fatal(err)
	}
	c.signal("dc3", syscall.SIGTERM)
	testutil.WaitFor(t, time.Minute, "dc3 stops", func() error {
		if c.ready("dc3") == nil {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	time.Sleep(2 * time.Second) // let the SIGTERMed process release its ports
	// c.dc reloads c.file from disk: change the arguments just before the
	// restart.
	normal := c.dc("dc3").Args
	for i := range c.file.DataCenters {
		if dc := &c.file.DataCenters[i]; dc.Name == "dc3" {
			dc.Args = append(append([]string{}, normal...), "--min-free-disk", "100000000") // 100 TB
		}
	}
	if _, err := devcluster.RestartDataCenter(rctx, c.file, "dc3"); err != nil {
		t.Fatalf("restart dc3 with a full disk: %v", err)
	}
	// Something to apply, so that dc3's read models try to write.
	testutil.WaitFor(t, time.Minute, "dc3 not ready for lack of disk", func() error {
		_, _ = ann.SendText(ctx, room.RoomID, "a message for dc3 to apply")
		code, body := httpDo(t, http.MethodGet, c.dc("dc3").URL+"/ready", "", nil)
		if code != http.StatusServiceUnavailable || !bytes.Contains(body, []byte("cannot be written")) {
			return fmt.Errorf("/ready %d %s", code, body)
		}
		return nil
	})
	incID, _ := c.incidentOf(t, "dc1", "node_not_ready", "dc3", true, time.Minute)
	t.Logf("incident %s open about dc3 not ready", incID)
	c.signal("dc3", syscall.SIGKILL)
	time.Sleep(2 * time.Second)
	c.dc("dc3") // reload, then restore the normal arguments
	for i := range c.file.DataCenters {
		if c.file.DataCenters[i].Name == "dc3" {
			c.file.DataCenters[i].Args = normal
		}
	}
	c.restart("dc3")
	c.incidentOf(t, "dc2", "node_not_ready", "dc3", false, time.Minute)
}

func reportID(t *testing.T, body []byte) []byte {
	t.Helper()
	var r struct {
		Report struct {
			ID string `json:"id"`
		} `json:"report"`
	}
	if err := json.Unmarshal(body, &r); err != nil || r.Report.ID == "" {
		t.Fatalf("report answer %s: %v", body, err)
	}
	return []byte(r.Report.ID)
}
