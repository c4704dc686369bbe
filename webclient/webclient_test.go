package webclient

import (
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// apiLike wraps mux the way httpapi.API does: a request no pattern matches
// gets the Matrix M_UNRECOGNIZED answer. Register must leave those paths
// unmatched (no catch-all "/").
func apiLike(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern == "" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_ = json.NewEncoder(w).Encode(map[string]string{"errcode": "M_UNRECOGNIZED", "error": "unrecognized request"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /_matrix/client/versions", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"versions":["v1.11"]}`))
	})
	Register(mux)
	srv := httptest.NewServer(apiLike(mux))
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, b.String()
}

func TestRegisterServesIndex(t *testing.T) {
	srv := newTestServer(t)
	resp, body := get(t, srv.URL+"/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET / = %d, want 200", resp.StatusCode)
	}
	h := resp.Header
	if ct := h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := h.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("Cache-Control = %q, want no-cache", cc)
	}
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "img-src 'self' blob:", "connect-src 'self' http: https:", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", h.Get("X-Content-Type-Options"))
	}
	if !strings.Contains(body, `src="/_planb/web/app.js"`) || !strings.Contains(body, `href="/_planb/web/app.css"`) {
		t.Errorf("index does not load the app:\n%s", body)
	}

	// Revalidation is a 304 without a body.
	resp, body = get(t, srv.URL+"/", map[string]string{"If-None-Match": h.Get("ETag")})
	if resp.StatusCode != http.StatusNotModified || body != "" {
		t.Errorf("GET / with If-None-Match = %d %q, want 304 and no body", resp.StatusCode, body)
	}
	// HEAD works too (GET patterns match HEAD).
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/", nil)
	hr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 {
		t.Errorf("HEAD / = %d", hr.StatusCode)
	}
}

func TestRegisterServesAssets(t *testing.T) {
	srv := newTestServer(t)
	for path, ct := range map[string]string{
		"/_planb/web/app.js":   "text/javascript; charset=utf-8",
		"/_planb/web/api.js":   "text/javascript; charset=utf-8",
		"/_planb/web/app.css":  "text/css; charset=utf-8",
		"/_planb/web/icon.svg": "image/svg+xml",
	} {
		resp, body := get(t, srv.URL+path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct || body == "" {
			t.Errorf("GET %s = %d %q (%d bytes), want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), ct)
		}
		if resp.Header.Get("ETag") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q", path, resp.Header.Get("ETag"), resp.Header.Get("Cache-Control"))
		}
	}
	resp, body := get(t, srv.URL+"/_planb/web/missing.js", nil)
	if resp.StatusCode != 404 || !strings.Contains(body, `"errcode":"M_NOT_FOUND"`) {
		t.Errorf("GET a missing asset = %d %s, want 404 M_NOT_FOUND", resp.StatusCode, body)
	}
}

// TestUnknownPathsStayMatrix404 checks that the web client took only "/"
// and its own prefix: everything else still reaches the API's
// M_UNRECOGNIZED answer.
func TestUnknownPathsStayMatrix404(t *testing.T) {
	srv := newTestServer(t)
	for _, path := range []string{"/_matrix/client/v3/nope", "/favicon.ico", "/index.html", "/_planb/other", "/foo/bar", "/_matrix/client/versions/x"} {
		resp, body := get(t, srv.URL+path, nil)
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"errcode":"M_UNRECOGNIZED"`) {
			t.Errorf("GET %s = %d %q %s, want the Matrix 404", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if resp, _ := get(t, srv.URL+"/_matrix/client/versions", nil); resp.StatusCode != 200 {
		t.Errorf("the API's own route answers %d", resp.StatusCode)
	}
}

// TestModulesResolve checks that every file the page or a module imports is
// embedded, and that no file grows past the size the style guide asks for.
func TestModulesResolve(t *testing.T) {
	assets := loadAssets()
	ref := regexp.MustCompile(`(?:from\s+|import\s+|src=|href=)["'](\.\/[\w.-]+|/_planb/web/[\w.-]+)["']`)
	for name, a := range assets {
		for _, m := range ref.FindAllStringSubmatch(string(a.body), -1) {
			target := strings.TrimPrefix(strings.TrimPrefix(m[1], "./"), AssetPrefix)
			if _, ok := assets[target]; !ok {
				t.Errorf("%s refers to %s, which is not embedded", name, m[1])
			}
		}
		if n := strings.Count(string(a.body), "\n"); n > 800 {
			t.Errorf("%s has %d lines; split it (files stay under ~800 lines)", name, n)
		}
	}
	if _, err := fs.Stat(static, "static/index.html"); err != nil {
		t.Fatal(err)
	}
}

// TestServiceWorker checks /sw.js: served from the root with its first line
// naming this build's version and the shell's files, every one of which is
// served; the version changes with the files.
func TestServiceWorker(t *testing.T) {
	srv := newTestServer(t)
	resp, body := get(t, srv.URL+ServiceWorkerPath, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /sw.js = %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}
	first, _, _ := strings.Cut(body, "\n")
	var shell struct {
		Version string   `json:"version"`
		Files   []string `json:"files"`
	}
	js, ok := strings.CutPrefix(first, "const SHELL = ")
	if !ok || json.Unmarshal([]byte(strings.TrimSuffix(js, ";")), &shell) != nil {
		t.Fatalf("first line of sw.js = %q", first)
	}
	if shell.Version == "" || shell.Version == "dev" {
		t.Errorf("version %q", shell.Version)
	}
	want := map[string]bool{"/": true, "/_planb/web/app.js": true, "/_planb/web/api.js": true, "/_planb/web/app.css": true, "/_planb/web/icon.svg": true, "/_planb/web/cache.js": true}
	for _, f := range shell.Files {
		delete(want, f)
		if r, _ := get(t, srv.URL+f, nil); r.StatusCode != 200 {
			t.Errorf("the shell lists %s, which answers %d", f, r.StatusCode)
		}
		if f == "/_planb/web/sw.js" || f == "/_planb/web/index.html" {
			t.Errorf("the shell lists %s", f)
		}
	}
	if len(want) > 0 {
		t.Errorf("the shell lacks %v", want)
	}
	if r, _ := get(t, srv.URL+AssetPrefix+"sw.js", nil); r.StatusCode != 404 {
		t.Errorf("sw.js under %s answers %d, want 404 (it is served at the root only)", AssetPrefix, r.StatusCode)
	}

	assets := loadAssets()
	v1 := string(serviceWorker(assets).body)
	a := assets["app.js"]
	a.etag = `"changed"`
	assets["app.js"] = a
	if v2 := string(serviceWorker(assets).body); v1 == v2 {
		t.Error("changing a file does not change sw.js")
	}
}
