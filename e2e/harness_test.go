// Package e2e runs the real planb binary and talks to it over HTTP with a
// real Matrix client library (maunium.net/go/mautrix), the way clients in
// the field do. Every test starts its own server process in t.TempDir() on
// free ports; nothing is faked.
//
// The binary is built once in TestMain from ./cmd/planb. Tests poll for
// conditions with testutil.WaitFor (or long-poll /sync) and never sleep and hope.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/planb-chat/planb/internal/freeport"
	"github.com/planb-chat/planb/internal/testutil"
)

// Timeouts are generous: the suite must pass on a loaded 2-core machine.
const (
	readyTimeout = 60 * time.Second // process start until /ready answers 200
	stopTimeout  = 30 * time.Second // SIGTERM until the process has exited
	waitTimeout  = 30 * time.Second // default for testutil.WaitFor conditions
	httpTimeout  = 60 * time.Second // any single HTTP request
	serverName   = "localhost"
)

// planbBin is the binary built by TestMain; it is set before any test runs
// and never written again.
var planbBin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds ./cmd/planb into a temporary directory and runs the tests.
// A failed build fails the whole package loudly: there is nothing to test.
func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "planb-e2e-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: make temp dir: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if planbBin, err = testutil.BuildPlanbRace(dir); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: FAIL: %v\n", err)
		return 1
	}
	return m.Run()
}

// serverConfig holds the command-line choices of one test server.
type serverConfig struct {
	openRegistration bool
	rateLimitLogin   int // logins/registrations per minute and client IP
	flags            []string
}

// serverOption changes the default serverConfig.
type serverOption func(*serverConfig)

// withoutOpenRegistration starts the server without --open-registration.
func withoutOpenRegistration() serverOption {
	return func(c *serverConfig) { c.openRegistration = false }
}

// withLoginRateLimit sets --rate-limit-login.
func withLoginRateLimit(perMinute int) serverOption {
	return func(c *serverConfig) { c.rateLimitLogin = perMinute }
}

// withFlags appends raw flags such as "--max-upload-bytes", "1000".
func withFlags(flags ...string) serverOption {
	return func(c *serverConfig) { c.flags = append(c.flags, flags...) }
}

// server is one planb process with its data directory and ports. The data
// directory and ports stay the same across restarts, so clients built for
// the server keep working after restart.
type server struct {
	dataDir     string
	httpAddr    string // 127.0.0.1:PORT
	clusterPort int
	args        []string
	URL         string // http://127.0.0.1:PORT
	logs        *lockedBuffer

	// proc is the running process, nil when stopped. Only the test goroutine
	// starts and stops servers, so proc needs no lock.
	proc *process
	runs int
}

// process is one run of the binary; done is closed when it has exited and
// err (written before done is closed) holds cmd.Wait's result.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// startServer starts planb in a fresh t.TempDir() on free ports, waits for
// /ready and registers a cleanup that stops it with SIGTERM. The server's
// output goes into the test log when the test fails.
func startServer(t testing.TB, opts ...serverOption) *server {
	t.Helper()
	if planbBin == "" {
		t.Fatal("planb binary not built (TestMain did not run)")
	}
	cfg := serverConfig{openRegistration: true, rateLimitLogin: 60000}
	for _, o := range opts {
		o(&cfg)
	}
	s := &server{
		dataDir:     t.TempDir(),
		clusterPort: freePort(t),
		logs:        &lockedBuffer{},
	}
	s.httpAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	s.URL = "http://" + s.httpAddr
	s.args = []string{"serve",
		"--data", s.dataDir,
		"--http", s.httpAddr,
		"--cluster-port", strconv.Itoa(s.clusterPort),
		"--server-name", serverName,
		"--rate-limit-login", strconv.Itoa(cfg.rateLimitLogin),
	}
	if cfg.openRegistration {
		s.args = append(s.args, "--open-registration")
	}
	s.args = append(s.args, cfg.flags...)

	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if s.proc != nil {
			s.stop(t)
		}
		if t.Failed() {
			t.Logf("planb output (last 256 KiB):\n%s", s.logs.tail(256<<10))
		}
	})
	s.start(t)
	return s
}

// start runs the binary and waits until /health and /ready answer 200.
func (s *server) start(t testing.TB) {
	t.Helper()
	if s.proc != nil {
		t.Fatal("start: server already running")
	}
	s.runs++
	fmt.Fprintf(s.logs, "=== run %d: planb %s\n", s.runs, strings.Join(s.args, " "))
	cmd := exec.Command(planbBin, s.args...)
	cmd.Stdout = s.logs
	cmd.Stderr = s.logs
	setDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start planb: %v", err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.proc = p

	// Poll /health then /ready; stop early if the process dies.
	deadline := time.Now().Add(readyTimeout)
	var last error
	for {
		select {
		case <-p.done:
			s.proc = nil
			t.Fatalf("planb exited before it was ready: %v", p.err)
		default:
		}
		last = s.probe("/health")
		if last == nil {
			last = s.probe("/ready")
		}
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("planb not ready within %s: %v", readyTimeout, last)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// probe GETs path and returns nil on 200.
func (s *server) probe(path string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(s.URL + path)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return nil
}

// stop sends SIGTERM and waits for a clean exit (status 0). A process that
// does not exit in time is killed and the test fails; so does one that had
// already exited on its own.
func (s *server) stop(t testing.TB) {
	t.Helper()
	p := s.proc
	if p == nil {
		t.Fatal("stop: server not running")
	}
	s.proc = nil
	select {
	case <-p.done:
		t.Errorf("planb had exited on its own before stop: %v", p.err)
		return
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Errorf("send SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			t.Errorf("planb did not exit cleanly after SIGTERM: %v", p.err)
		}
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("planb did not exit within %s of SIGTERM; killed", stopTimeout)
	}
	fmt.Fprintf(s.logs, "=== run %d stopped: %v\n", s.runs, p.err)
}

// restart stops the server and starts it again on the same data dir and ports.
func (s *server) restart(t testing.TB) {
	t.Helper()
	s.stop(t)
	// Connections to the old process are dead; do not offer them to clients.
	sharedTransport.CloseIdleConnections()
	s.start(t)
}

// freePort returns a TCP port that was free a moment ago, below the
// ephemeral range so that a restart can listen on it again.
func freePort(t testing.TB) int {
	t.Helper()
	port, err := freeport.One()
	if err != nil {
		t.Fatalf("find free port: %v", err)
	}
	return port
}

// lockedBuffer collects process output; the process writes from its own
// goroutines while the test reads the tail.
type lockedBuffer struct {
	mu  sync.Mutex // guards buf
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// tail returns at most the last n bytes written.
func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return string(s)
}

// sharedTransport keeps connections alive across the many clients of a test.
var sharedTransport = &http.Transport{
	Proxy:               nil,
	MaxIdleConns:        256,
	MaxIdleConnsPerHost: 64,
	IdleConnTimeout:     30 * time.Second,
}

// client returns a mautrix client for the server, logged in as userID with
// token when they are set. It does not retry failed requests, so tests see
// every error the server returns.
func (s *server) client(t testing.TB, userID id.UserID, token string) *mautrix.Client {
	t.Helper()
	cli, err := mautrix.NewClient(s.URL, userID, token)
	if err != nil {
		t.Fatalf("new client: %v", err)
	}
	cli.Client = &http.Client{Timeout: httpTimeout, Transport: sharedTransport}
	cli.DefaultHTTPRetries = 0
	cli.IgnoreRateLimit = true
	return cli
}

// password is the password newUser gives each user.
func password(localpart string) string { return "pw-" + localpart + "-e2e-secret" }

// newUser registers localpart with m.login.dummy and returns a client holding
// the new access token and device.
func newUser(t testing.TB, s *server, localpart string) *mautrix.Client {
	t.Helper()
	cli := s.client(t, "", "")
	resp, err := cli.RegisterDummy(t.Context(), &mautrix.ReqRegister[any]{
		Username:                 localpart,
		Password:                 password(localpart),
		InitialDeviceDisplayName: "e2e " + localpart,
	})
	if err != nil {
		t.Fatalf("register %s: %v", localpart, err)
	}
	if want := id.UserID("@" + localpart + ":" + serverName); resp.UserID != want {
		t.Fatalf("register %s: user_id %q, want %q", localpart, resp.UserID, want)
	}
	if resp.AccessToken == "" || resp.DeviceID == "" {
		t.Fatalf("register %s: missing access_token or device_id: %+v", localpart, resp)
	}
	cli.SetCredentials(resp.UserID, resp.AccessToken)
	cli.DeviceID = resp.DeviceID
	return cli
}

// login logs in with m.login.password and an m.id.user identifier and
// returns a client for the new device.
func login(t testing.TB, s *server, user, pw string) (*mautrix.Client, error) {
	t.Helper()
	cli := s.client(t, "", "")
	_, err := cli.Login(t.Context(), &mautrix.ReqLogin{
		Type:                     mautrix.AuthTypePassword,
		Identifier:               mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: user},
		Password:                 pw,
		InitialDeviceDisplayName: "e2e login",
		StoreCredentials:         true,
	})
	return cli, err
}

// rawResponse is the outcome of a request made with net/http directly.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any // nil when the body is not a JSON object
}

// errcode returns the errcode of a Matrix error body, or "".
func (r rawResponse) errcode() string {
	s, _ := r.json["errcode"].(string)
	return s
}

func (r rawResponse) String() string {
	b := r.body
	if len(b) > 500 {
		b = b[:500]
	}
	return fmt.Sprintf("HTTP %d %s", r.status, b)
}

// raw sends a request with net/http. A non-empty token goes into the
// Authorization header; a non-nil body is sent as application/json.
func (s *server) raw(t testing.TB, method, path, token string, body []byte) rawResponse {
	t.Helper()
	return rawWith(t, &http.Client{Timeout: httpTimeout, Transport: sharedTransport}, method, s.URL+path, token, body)
}

func rawWith(t testing.TB, c *http.Client, method, url, token string, body []byte) rawResponse {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatalf("build request %s %s: %v", method, url, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return doRaw(t, c, req, token)
}

// doRaw sends req (with the token, if any) and reads the whole answer.
func doRaw(t testing.TB, c *http.Client, req *http.Request, token string) rawResponse {
	t.Helper()
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	r, err := send(c, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return r
}

// send sends req and reads the whole answer; it fails no test, so it may
// run off the test goroutine.
func send(c *http.Client, req *http.Request) (rawResponse, error) {
	resp, err := c.Do(req)
	if err != nil {
		return rawResponse{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return rawResponse{}, fmt.Errorf("read body: %w", err)
	}
	r := rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &r.json) // non-JSON bodies leave json nil
	return r, nil
}

// want is one acceptable error outcome: HTTP status and Matrix errcode.
type want struct {
	status int
	code   string
}

func (w want) String() string { return fmt.Sprintf("%d %s", w.status, w.code) }

// matches reports whether got is one of wants; a want with code "*"
// accepts any non-empty errcode with its status.
func matches(wants []want, got want) bool {
	return slices.ContainsFunc(wants, func(w want) bool {
		return w.status == got.status && (w.code == got.code || w.code == "*" && got.code != "")
	})
}

var (
	forbidden = want{http.StatusForbidden, "M_FORBIDDEN"}
	notFound  = want{http.StatusNotFound, "M_NOT_FOUND"}
)

// checkErr reports (with t.Errorf) unless err is a Matrix error response
// matching one of wants. It returns whether it matched.
func checkErr(t testing.TB, what string, err error, wants ...want) bool {
	t.Helper()
	if err == nil {
		t.Errorf("%s: succeeded, want error %v", what, wants)
		return false
	}
	var he mautrix.HTTPError
	if !errors.As(err, &he) || he.Response == nil {
		t.Errorf("%s: %v, want Matrix error %v", what, err, wants)
		return false
	}
	code := ""
	if he.RespError != nil {
		code = he.RespError.ErrCode
	}
	got := want{he.Response.StatusCode, code}
	if matches(wants, got) {
		return true
	}
	t.Errorf("%s: got %v (%v), want one of %v", what, got, err, wants)
	return false
}

// checkRaw is checkErr for raw responses.
func checkRaw(t testing.TB, what string, r rawResponse, wants ...want) bool {
	t.Helper()
	got := want{r.status, r.errcode()}
	if matches(wants, got) {
		if _, ok := r.json["error"].(string); !ok {
			t.Errorf("%s: error body lacks the \"error\" string the spec requires: %s", what, r)
		}
		return true
	}
	t.Errorf("%s: got %s, want one of %v", what, r, wants)
	return false
}

// must fails the test when err is not nil.
func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ctxTimeout is t.Context() with a deadline, for goroutines that must end.
func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}
