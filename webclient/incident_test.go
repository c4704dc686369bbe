package webclient

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// noticeAfter is the cluster's notice threshold in TestBrowserIncident
// (the default is the Korean rule, two hours).
const noticeAfter = 5 * time.Second

// TestBrowserIncident: a user whose session is at dc2 is stranded when dc2
// is SIGKILLed; the survivors open an incident by themselves. Signed in at
// dc1, the web client tells the server the user's language, offers "Report
// damage" with the incident (what, when, how long, the compensation by the
// published rule and the rule itself), refuses an invalid report without
// sending it, files a valid one — keeping its txnId across a failed attempt
// — and lists it as received; the operator's CSV export holds it once. The
// server-notices room is joined by itself, shows the notice and has no
// composer. Then the same view in Korean.
func TestBrowserIncident(t *testing.T) {
	chrome := findChromium(t)
	if testing.Short() {
		t.Skip("starts three planb processes and a browser; skipped with -short")
	}
	started := time.Now()
	cluster := startCluster(t, testutil.MustBuildPlanb(t), "--notice-after", noticeAfter.String())
	dc1, dc2 := cluster.DataCenters[0], cluster.DataCenters[1]
	t.Logf("MEASURED: dev cluster ready in %s", time.Since(started).Round(100*time.Millisecond))

	// dana's session is at dc2: she registers and syncs there (presence
	// online records the data center), then dc2 dies.
	const user, pass = "dana", "stranded at dc2"
	userID, token := registerUser(t, dc2.URL, user, pass)
	if code, body := call(t, http.MethodGet, dc2.URL+"/_matrix/client/v3/sync?timeout=0", token, nil); code != http.StatusOK {
		t.Fatalf("first sync at dc2: %d %s", code, body)
	}
	if err := syscall.Kill(dc2.PID, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s (pid %d): %v", dc2.Name, dc2.PID, err)
	}
	killed := time.Now()
	incID := openIncidentAbout(t, dc1.URL, dc2.Name)
	t.Logf("MEASURED: incident %s open on %s's /status.json %.1f s after the SIGKILL", incID, dc1.Name, time.Since(killed).Seconds())
	// Wait for the notice before signing in: the page's first /sync at dc1
	// ends dana's stranded time.
	testutil.WaitFor(t, 2*time.Minute, "dana is notified", func() error {
		code, body := call(t, http.MethodGet, dc1.URL+"/_planb/admin/v1/incidents/"+incID, cluster.AdminToken, nil)
		if code != http.StatusOK {
			return fmt.Errorf("admin incident: %d %s", code, body)
		}
		var d struct {
			Affected []struct {
				User     string `json:"user"`
				Notified bool   `json:"notified"`
			} `json:"affected"`
		}
		if err := json.Unmarshal(body, &d); err != nil {
			return err
		}
		for _, a := range d.Affected {
			if a.User == userID && a.Notified {
				return nil
			}
		}
		return fmt.Errorf("affected: %+v", d.Affected)
	})
	var mine struct {
		Incidents []struct {
			Incident struct {
				ID string `json:"id"`
			} `json:"incident"`
		} `json:"incidents"`
		Policy struct {
			Description map[string]string `json:"description"`
		} `json:"compensation_policy"`
	}
	if code, body := call(t, http.MethodGet, dc1.URL+"/_planb/client/v1/incidents", token, nil); code != http.StatusOK || json.Unmarshal(body, &mine) != nil {
		t.Fatalf("dana's incidents: %d %s", code, body)
	}
	if len(mine.Incidents) != 1 || mine.Incidents[0].Incident.ID != incID || mine.Policy.Description["en"] == "" {
		t.Fatalf("dana's incidents: %+v, want only %s with the rule described", mine, incID)
	}

	browser := newBrowser(t, chrome)
	p := openPage(t, browser, "dana", dc1.URL+"/", 390, 844)
	logIn(p, user, pass)
	onDC(p, dc1.Name)
	waitLanguage(t, dc1.URL, token, userID, "en")

	// The banner in the chat list leads to the view.
	p.waitJS("the chat list offers Report damage", uiTimeout, `(() => {
		const b = document.getElementById('incidents-btn');
		return b && !b.hidden && b.offsetParent && b.dataset.count === '1' && document.getElementById('incidents-badge').textContent === '1' ? '' : 'banner: ' + (b && b.outerHTML);
	})()`)
	p.waitJS("the banner fits on one line", uiTimeout, notWrapped(`#incidents-btn .incidents-name, .list-head button`))
	p.click("#incidents-btn")
	card := fmt.Sprintf(`.incident[data-incident-id=%s]`, jsString(incID))
	q := func(sel string) string { return fmt.Sprintf(`document.querySelector(%s)`, jsString(card+" "+sel)) }
	p.waitJS("the view shows the incident", uiTimeout, fmt.Sprintf(`(() => {
		if (location.hash !== '#/incidents' || document.getElementById('incident-pane').hidden) return 'hash ' + location.hash;
		const c = document.querySelector(%s);
		if (!c) return 'no card; state: ' + document.getElementById('incidents-state').textContent;
		const txt = (s) => c.querySelector(s).textContent;
		if (txt('.incident-title') !== 'Outage of data center %s') return 'title ' + txt('.incident-title');
		if (txt('.incident-state') !== 'Ongoing') return 'state ' + txt('.incident-state');
		if (!/^Started .+ · not over yet$/.test(txt('.incident-when'))) return 'when ' + txt('.incident-when');
		if (!/^\d+ (s|min)/.test(txt('.incident-affected'))) return 'affected ' + txt('.incident-affected');
		if (txt('.compensation-amount') !== 'Below the compensation threshold') return 'amount ' + txt('.compensation-amount');
		if (!txt('.compensation-explanation')) return 'no explanation';
		if (txt('.no-reports') === '' || c.querySelector('.no-reports').hidden) return 'reports listed';
		return '';
	})()`, jsString(card), dc2.Name))
	p.click(card + " .rule summary")
	p.waitJS("the published rule shows", uiTimeout, fmt.Sprintf(`(() => {
		const pre = %s;
		return pre.offsetParent && pre.textContent === %s ? '' : 'rule: ' + pre.textContent.slice(0, 80);
	})()`, q(".rule-text"), jsString(mine.Policy.Description["en"])))
	p.waitJS("the view's buttons fit on one line at 390 px", uiTimeout, notWrapped(`#incident-pane button, #incident-pane summary`))
	p.str(fmt.Sprintf(`(() => {
		import('/_planb/web/incidents.js').then((m) => { window.__fmt = [m.formatAmount(5000, 'KRW', 'ko'), m.formatAmount(5000, 'KRW', 'en'), m.formatAmount(1234567, 'KRW', 'en')]; });
		return '';
	})()`))
	p.waitJS("amounts are formatted the Korean and the English way", uiTimeout, `JSON.stringify(window.__fmt) === JSON.stringify(['5,000원', 'KRW 5,000', 'KRW 1,234,567']) ? '' : 'formatted ' + JSON.stringify(window.__fmt)`)

	// An invalid report is refused in words, and nothing is sent.
	selectCategory(p, card, "other")
	p.click(card + " .report-submit")
	p.waitJS("an empty “other” report is refused", uiTimeout, fmt.Sprintf(`(() => {
		const e = %s.textContent, ta = %s;
		return /for “other”, describe what happened/i.test(e) && ta.getAttribute('aria-invalid') === 'true' && document.activeElement === ta ? '' : 'error: ' + e;
	})()`, q(".report-error"), q(".report-text-input")))
	if sent := p.str(`planb.chat.api.trace.filter((l) => / PUT \/_planb\/client\/v1\/incidents\//.test(l)).join('; ')`); sent != "" {
		t.Errorf("the invalid report was sent: %s", sent)
	}
	if rows := reportsCSV(t, dc1.URL, cluster.AdminToken, incID); len(rows) != 1 {
		t.Errorf("reports after the invalid submit: %q, want the header only", rows)
	}

	// A valid report: the first attempt finds no network; the retry keeps
	// its txnId and is filed once.
	const text = "Messages to my shop were late <b>x</b>\nfor an hour"
	selectCategory(p, card, "messages")
	p.typeInto(card+" .report-text-input", text)
	p.typeInto(card+" .report-amount", "30000")
	p.waitJS("the counter counts", uiTimeout, fmt.Sprintf(`%s.textContent === '%d / 4000' ? '' : 'counter ' + %s.textContent`, q(".counter"), len([]rune(text)), q(".counter")))
	p.do("go offline", enableNetwork(), setOffline(true))
	p.click(card + " .report-submit")
	p.waitJS("the button is disabled while sending", uiTimeout, fmt.Sprintf(`(() => { const b = %s; return b.disabled && b.textContent === 'Sending…' ? '' : 'button ' + b.disabled + ' ' + b.textContent; })()`, q(".report-submit")))
	p.waitJS("a network failure is explained", 2*uiTimeout, fmt.Sprintf(`(() => {
		const e = %s.textContent, b = %s;
		return /not sent: no data center answers\. try again/i.test(e) && !b.disabled ? '' : 'error: ' + e;
	})()`, q(".report-error"), q(".report-submit")))
	txn := p.str(q(".report-form") + `.dataset.txn || ''`)
	if txn == "" {
		t.Fatal("the form keeps no txnId for the retry")
	}
	p.do("go online", setOffline(false))
	p.click(card + " .report-submit")
	p.waitJS("the report is received and listed", uiTimeout, fmt.Sprintf(`(() => {
		const ok = %s.textContent;
		const r = document.querySelectorAll(%s);
		if (ok !== 'Report received') return 'ok line: ' + ok + '; error: ' + %s.textContent;
		if (r.length !== 1) return r.length + ' reports listed';
		const li = r[0];
		const got = [li.querySelector('.report-cat').textContent, li.querySelector('.report-status').textContent, li.querySelector('.report-amount').textContent, li.querySelector('.report-text').textContent];
		const want = ['Messages lost or late', 'Received', 'Claimed: KRW 30,000', %s];
		if (JSON.stringify(got) !== JSON.stringify(want)) return 'report ' + JSON.stringify(got);
		if (li.querySelector('.report-text b')) return 'the text was inserted as HTML';
		return %s.value === '' && !%s.dataset.txn ? '' : 'the form is not reset';
	})()`, q(".report-ok"), jsString(card+" .report"), q(".report-error"), jsString(text), q(".report-text-input"), q(".report-form")))

	if sent := p.str(`planb.chat.api.trace.filter((l) => / PUT \/_planb\/client\/v1\/incidents\//.test(l)).join('; ')`); sent == "" {
		t.Error("the page's trace shows no report sent, so the check that the invalid one was not sent proves nothing")
	}
	rows := reportsCSV(t, dc1.URL, cluster.AdminToken, incID)
	// The export quotes cells a spreadsheet would run as formulas: '@dana:…
	if len(rows) != 2 || strings.TrimPrefix(rows[1][2], "'") != userID || rows[1][3] != "messages" || rows[1][4] != "30000" || rows[1][8] != text {
		t.Errorf("reports CSV: %q, want one row of %s with the text", rows, userID)
	}
	code, body := call(t, http.MethodGet, dc1.URL+"/_planb/admin/v1/reports?incident="+incID, cluster.AdminToken, nil)
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"txn_id":"`+txn+`"`)) {
		t.Errorf("the report was not filed with the txnId of the failed attempt (%s): %d %s", txn, code, body)
	}

	// The server-notices room: joined by itself, named, read-only.
	p.click("#incidents-back")
	notices := `#chat-list .chat-item.notices-room`
	p.waitJS("the server-notices room is listed", uiTimeout, fmt.Sprintf(`(() => {
		const b = document.querySelector(%s);
		return b && b.querySelector('.chat-name').textContent === 'Server notices' ? '' : 'chats: ' + [...document.querySelectorAll('#chat-list li')].map((li) => li.className + ' ' + li.textContent).join(' | ');
	})()`, jsString(notices)))
	p.click(notices)
	p.waitJS("the notice shows, as text, with no composer", uiTimeout, fmt.Sprintf(`(() => {
		const rows = [...document.querySelectorAll('.row.server-notice[data-event-id] .body')];
		if (rows.length !== 1) return rows.length + ' notices';
		const body = rows[0].textContent;
		if (!body.includes(%s) || !body.includes(%s) || !body.includes('\n')) return 'notice: ' + body;
		if (getComputedStyle(rows[0].closest('.bubble')).whiteSpace !== 'pre-wrap') return 'newlines not kept';
		if (document.getElementById('composer-form').offsetParent !== null || document.getElementById('composer')?.offsetParent) return 'a composer shows';
		const ro = document.getElementById('read-only');
		if (ro.hidden || !/cannot reply/.test(ro.textContent)) return 'read-only line: ' + ro.textContent;
		if (document.getElementById('notices-report').hidden) return 'no way to report damage';
		return document.getElementById('room-title').textContent === 'Server notices' ? '' : 'title ' + document.getElementById('room-title').textContent;
	})()`, jsString(incID), jsString(dc2.Name)))

	// The same in Korean: the account data follows the page's language.
	p.do("reload in Korean", chromedp.Navigate(dc1.URL+"/?lang=ko#/incidents"))
	p.waitJS("the view speaks Korean", uiTimeout, fmt.Sprintf(`(() => {
		const c = document.querySelector(%s);
		if (!c) return 'no card';
		const li = c.querySelector('.report');
		const got = [document.getElementById('incidents-title').textContent, c.querySelector('.incident-title').textContent, c.querySelector('.incident-state').textContent,
			c.querySelector('.compensation-amount').textContent, c.querySelector('.rule summary').textContent, li && li.querySelector('.report-cat').textContent,
			li && li.querySelector('.report-status').textContent, li && li.querySelector('.report-amount').textContent, c.querySelector('.report-submit').textContent];
		const want = ['장애 피해 신고', '데이터센터 %s 장애', '진행 중', '보상 기준 미달', '보상 기준 보기', '메시지 유실·지연', '접수됨', '청구 금액: 30,000원', '신고하기'];
		return JSON.stringify(got) === JSON.stringify(want) ? '' : JSON.stringify(got);
	})()`, jsString(card), dc2.Name))
	waitLanguage(t, dc1.URL, token, userID, "ko")
	p.waitJS("the Korean buttons fit on one line at 390 px", uiTimeout, notWrapped(`#incident-pane button, #incident-pane summary`))
	p.waitJS("nothing is wider than the phone", uiTimeout, `document.documentElement.scrollWidth <= 390 && document.querySelector('.incidents-body').scrollWidth <= 390 ? '' : 'scroll width ' + document.querySelector('.incidents-body').scrollWidth`)
	if os.Getenv("PLANB_SCREENSHOTS") == "1" || os.Getenv("PLANB_SCREENSHOT") == "1" {
		saveScreenshot(t, p, "webclient-damage-report.png")
	}
	p.click("#incidents-back")
	p.waitJS("the Korean list names the notices room and the banner", uiTimeout, fmt.Sprintf(`(() => {
		const n = document.querySelector(%s + ' .chat-name')?.textContent, b = document.querySelector('#incidents-btn .incidents-sub')?.textContent;
		return n === '서버 알림' && b === '장애 1건이 내 계정에 영향을 주었습니다' ? '' : n + ' / ' + b;
	})()`, jsString(notices)))
	p.waitJS("the Korean banner fits on one line", uiTimeout, notWrapped(`#incidents-btn .incidents-name, .list-head button`))
	t.Logf("MEASURED: the whole scenario took %s", time.Since(started).Round(time.Second))
}

// notWrapped yields "" when every visible element sel selects shows its
// text on one line and does not overflow.
func notWrapped(sel string) string {
	return fmt.Sprintf(`(() => {
		const els = [...document.querySelectorAll(%s)].filter((el) => el.offsetParent);
		if (!els.length) return 'nothing visible';
		const bad = els.filter((el) => {
			const r = document.createRange();
			r.selectNodeContents(el);
			const tops = new Set([...r.getClientRects()].filter((x) => x.width > 0).map((x) => Math.round(x.top)));
			return tops.size > 1 || el.scrollWidth > el.clientWidth + 1;
		});
		return bad.length ? 'wrapped: ' + bad.map((el) => el.textContent).join(' | ') : '';
	})()`, jsString(sel))
}

// selectCategory picks a report category the way a change of the select does.
func selectCategory(p *page, card, value string) {
	p.t.Helper()
	p.str(fmt.Sprintf(`(() => {
		const s = document.querySelector(%s);
		s.value = %s;
		s.dispatchEvent(new Event('change', { bubbles: true }));
		return '';
	})()`, jsString(card+" .report-category"), jsString(value)))
}

// logIn signs in through the log-in form.
func logIn(p *page, user, pass string) {
	p.t.Helper()
	p.waitJS("the log-in form", uiTimeout, `document.getElementById('auth-form')?.dataset.mode === 'login' ? '' : 'no form'`)
	p.typeInto("#auth-user", user)
	p.typeInto("#auth-pass", pass)
	p.click("#auth-submit")
	p.waitJS("logged in as "+user, uiTimeout, `document.getElementById('chat-app') ? '' : (document.getElementById('auth-error')?.textContent || 'still on the form')`)
}

// call sends a request with an optional bearer token and JSON body and
// returns the status and body (status 0 when there is no answer).
func call(t *testing.T, method, u, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// registerUser creates an account over the API (user-interactive auth with
// m.login.dummy) and returns its user ID and access token.
func registerUser(t *testing.T, base, user, pass string) (string, string) {
	t.Helper()
	req := map[string]any{"username": user, "password": pass}
	code, body := call(t, http.MethodPost, base+"/_matrix/client/v3/register", "", req)
	if code == http.StatusUnauthorized {
		var flows struct {
			Session string `json:"session"`
		}
		_ = json.Unmarshal(body, &flows)
		req["auth"] = map[string]any{"type": "m.login.dummy", "session": flows.Session}
		code, body = call(t, http.MethodPost, base+"/_matrix/client/v3/register", "", req)
	}
	var res struct {
		UserID      string `json:"user_id"`
		AccessToken string `json:"access_token"`
	}
	if code != http.StatusOK || json.Unmarshal(body, &res) != nil || res.AccessToken == "" {
		t.Fatalf("register %s: %d %s", user, code, body)
	}
	return res.UserID, res.AccessToken
}

// openIncidentAbout waits until base's /status.json lists an open
// datacenter_lost incident about data center lost and returns its ID.
func openIncidentAbout(t *testing.T, base, lost string) string {
	t.Helper()
	var id string
	testutil.WaitFor(t, 90*time.Second, "an open incident about "+lost, func() error {
		code, body := call(t, http.MethodGet, base+"/status.json", "", nil)
		if code != http.StatusOK {
			return fmt.Errorf("/status.json: %d %s", code, body)
		}
		var s struct {
			Incidents []struct {
				ID          string     `json:"id"`
				Kind        string     `json:"kind"`
				EndedAt     *time.Time `json:"ended_at"`
				DataCenters []string   `json:"datacenters"`
			} `json:"incidents"`
		}
		if err := json.Unmarshal(body, &s); err != nil {
			return err
		}
		for _, in := range s.Incidents {
			if in.Kind == "datacenter_lost" && in.EndedAt == nil && len(in.DataCenters) == 1 && in.DataCenters[0] == lost {
				id = in.ID
				return nil
			}
		}
		return fmt.Errorf("incidents: %+v", s.Incidents)
	})
	return id
}

// waitLanguage waits until the user's account data names lang as the
// language of their notices.
func waitLanguage(t *testing.T, base, token, userID, lang string) {
	t.Helper()
	testutil.WaitFor(t, uiTimeout, "account data says "+lang, func() error {
		code, body := call(t, http.MethodGet, base+"/_matrix/client/v3/user/"+url.PathEscape(userID)+"/account_data/org.planb.language", token, nil)
		if code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		var c struct {
			Language string `json:"language"`
		}
		if err := json.Unmarshal(body, &c); err != nil {
			return err
		}
		if c.Language != lang {
			return errors.New("language " + c.Language)
		}
		return nil
	})
}

// reportsCSV returns the rows (header first) of the operator's CSV export
// of incident id's damage reports.
func reportsCSV(t *testing.T, base, adminToken, id string) [][]string {
	t.Helper()
	code, body := call(t, http.MethodGet, base+"/_planb/admin/v1/reports?format=csv&incident="+url.QueryEscape(id), adminToken, nil)
	if code != http.StatusOK {
		t.Fatalf("reports CSV: %d %s", code, body)
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("reports CSV %q: %v", body, err)
	}
	if len(rows) == 0 || !strings.HasPrefix(strings.Join(rows[0], ","), "id,incident,user") {
		t.Fatalf("reports CSV without its header: %q", body)
	}
	return rows
}
