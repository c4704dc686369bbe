package webclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/planb-chat/planb/internal/testutil"
)

// Timeouts are generous: the suite must pass on a loaded 2-core machine.
const (
	uiTimeout   = 60 * time.Second // one visible change in a page
	httpTimeout = 30 * time.Second
)

// findChromium returns the browser to drive. Without one the test is skipped
// on a developer machine, but fails in CI (CI=true), which must install it:
// apt-get install -y chromium.
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PLANB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed but CI is set: install it (apt-get install -y chromium)")
	}
	t.Skip("chromium is not installed (apt-get install -y chromium); skipping the browser test")
	return ""
}

// portsFree reports whether every port a dev cluster with this base uses
// (base .. base+254, see package devcluster) can be listened on.
func portsFree(base int) bool {
	for p := base; p <= base+254; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// startNode runs one `planb serve` process (one data center, open
// registration, more flags in args) on a free port and returns its base URL; it is stopped
// when the test ends.
func startNode(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	dir := t.TempDir()
	logPath := filepath.Join(dir, "planb.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--data", filepath.Join(dir, "data"), "--http", addr, "--open-registration"}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start planb serve: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("end of the node's log:\n%s", b)
		}
	})
	c := &http.Client{Timeout: 5 * time.Second}
	testutil.WaitFor(t, 2*time.Minute, "planb serve is ready", func() error {
		select {
		case <-done:
			return errors.New("planb serve exited; see its log")
		default:
		}
		resp, err := c.Get(base + "/ready")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("/ready: %d", resp.StatusCode)
		}
		return nil
	})
	return base
}

// newBrowser starts one headless chromium for the test.
func newBrowser(t *testing.T, chrome string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chrome),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// page is one tab in its own browser context (its own storage), like a
// second person on another computer.
type page struct {
	t    *testing.T
	name string
	ctx  context.Context
}

// openPage opens url in a new browser context with a w×h viewport and logs
// the page's uncaught exceptions and console errors into the test output.
func openPage(t *testing.T, browser context.Context, name, url string, w, h int64) *page {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &page{t: t, name: name, ctx: ctx}
	// The page's uncaught exceptions and console errors go to the test log,
	// until the test ends (logging after that would panic).
	var mu sync.Mutex
	ended := false
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if !ended {
			t.Logf(format, args...)
		}
	}
	t.Cleanup(func() {
		mu.Lock()
		ended = true
		mu.Unlock()
	})
	exceptions := chromedp.Events(ctx, runtime.ExceptionThrown)
	console := chromedp.Events(ctx, runtime.ConsoleAPICalled)
	go func() {
		for ev, err := range exceptions {
			if err != nil {
				return
			}
			logf("%s: uncaught: %s", name, exceptionText(ev))
		}
	}()
	go func() {
		for ev, err := range console {
			if err != nil {
				return
			}
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var parts []string
				for _, a := range ev.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				logf("%s: console.%s %s", name, ev.Type, strings.Join(parts, " "))
			}
		}
	}()
	// Record Content-Security-Policy violations: the page must need none.
	p.do("watch for CSP violations", chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{Source: `
			window.__csp = [];
			document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`})
		return err
	}))
	p.do("open "+url, chromedp.EmulateViewport(w, h), chromedp.Navigate(url))
	t.Cleanup(func() {
		var v []string
		if err := p.eval(`window.__csp || []`, &v); err == nil && len(v) > 0 {
			t.Errorf("%s: the page broke its Content-Security-Policy: %v", name, v)
		}
	})
	return p
}

func exceptionText(ev runtime.EventExceptionThrown) string {
	d := ev.ExceptionDetails
	s := d.Text
	if d.Exception != nil {
		s += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", s, d.URL, d.LineNumber)
}

// do runs actions or fails the test.
func (p *page) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, uiTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression and decodes its JSON value into out.
func (p *page) eval(js string, out any) error {
	ctx, cancel := context.WithTimeout(p.ctx, httpTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](js))
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

// str evaluates an expression that yields a string.
func (p *page) str(js string) string {
	p.t.Helper()
	var s string
	if err := p.eval(js, &s); err != nil {
		p.fail("evaluate %s: %v", js, err)
	}
	return s
}

// waitJS polls js, an expression that yields "" once the condition holds and
// otherwise says what it sees, until timeout.
func (p *page) waitJS(what string, timeout time.Duration, js string) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		var s string
		err := p.eval(js, &s)
		if err == nil && s == "" {
			return
		}
		if err != nil {
			last = err.Error()
		} else {
			last = s
		}
		if time.Now().After(deadline) {
			p.fail("%s: not within %s; last seen: %s", what, timeout, last)
		}
		time.Sleep(150 * time.Millisecond) // the poll interval, not a wait for the result
	}
}

// fail saves a screenshot and the page's status next to the error.
func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err == nil {
		f := filepath.Join(os.TempDir(), fmt.Sprintf("planb-webclient-%s-%d.png", p.name, time.Now().UnixNano()))
		if os.WriteFile(f, shot, 0o644) == nil {
			msg += "\nscreenshot: " + f
		}
	}
	if st, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('status')||{}).textContent||''`)); err == nil && st != "" {
		msg += "\nstatus line: " + st
	}
	if tr, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(window.planb && window.planb.chat) ? window.planb.chat.api.trace.join('\n') + '\noutbox: ' + JSON.stringify(window.planb.chat.outbox.items) : ''`)); err == nil && tr != "" {
		msg += "\nthe page's last requests:\n" + tr
	}
	p.t.Fatalf("%s: %s", p.name, msg)
}

// typeInto focuses a field and types text with real key events.
func (p *page) typeInto(sel, text string) {
	p.t.Helper()
	p.do("type into "+sel, chromedp.Focus(chromedp.CSS(sel)), chromedp.SendKeys(chromedp.CSS(sel), text))
}

// send types text into the composer and presses Enter the way a keyboard
// does: keydown and keyup, without the separate "char" event SendKeys adds
// (which would type a newline after the page has already sent).
func (p *page) send(text string) {
	p.t.Helper()
	if text != "" {
		p.typeInto("#composer", text)
	}
	enter := input.DispatchKeyEventParams{Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13}
	p.do("press Enter", chromedp.Focus(chromedp.CSS("#composer")), chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		down, up := enter, enter
		down.Type, up.Type = input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp
		if _, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, input.DispatchKeyEvent, up)
		return err
	}))
}

// clear empties form fields.
func (p *page) clear(sels ...string) {
	p.t.Helper()
	for _, sel := range sels {
		p.str(fmt.Sprintf(`(document.querySelector(%s).value = '')`, jsString(sel)))
	}
}

func (p *page) click(sel string) {
	p.t.Helper()
	p.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// jsString quotes s for JavaScript.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeTestImage writes a small PNG and returns its path.
func writeTestImage(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 320, 200))
	for y := range 200 {
		for x := range 320 {
			img.Set(x, y, color.RGBA{uint8(x * 255 / 320), uint8(y * 255 / 200), 180, 255})
		}
	}
	for y := 60; y < 140; y++ { // a yellow bar, to see it is the same picture
		for x := 40; x < 280; x++ {
			img.Set(x, y, color.RGBA{254, 229, 0, 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sunrise.png")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// countMessages asks the server (any live data center) how many events in
// roomID have the body text.
func countMessages(base, token, roomID, text string) (int, error) {
	req, err := http.NewRequest(http.MethodGet, base+"/_matrix/client/v3/rooms/"+roomID+"/messages?dir=b&limit=200", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: httpTimeout}
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("GET /messages: %d %s", resp.StatusCode, b)
	}
	var page struct {
		Chunk []struct {
			Type    string `json:"type"`
			Content struct {
				Body string `json:"body"`
			} `json:"content"`
		} `json:"chunk"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		return 0, err
	}
	n := 0
	for _, ev := range page.Chunk {
		if ev.Type == "m.room.message" && ev.Content.Body == text {
			n++
		}
	}
	return n, nil
}

// sendText sends a text message through the API.
func sendText(base, token, roomID, txnID, body string) error {
	b, _ := json.Marshal(map[string]string{"msgtype": "m.text", "body": body})
	req, err := http.NewRequest(http.MethodPut, base+"/_matrix/client/v3/rooms/"+url.PathEscape(roomID)+"/send/m.room.message/"+txnID, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		out, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("send %s: %d %s", txnID, resp.StatusCode, out)
	}
	return nil
}

var errNotYet = errors.New("not yet")
