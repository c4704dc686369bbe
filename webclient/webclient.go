// Package webclient serves planb's own browser chat client: plain HTML, CSS
// and JavaScript modules embedded in the binary, so every node of every data
// center serves the same client and no build step (no Node.js) is needed.
//
// The client speaks only the Matrix client-server API. It learns every data
// center from /.well-known/matrix/client (org.planb.datacenters) and switches
// between them when one fails. The modules under static/:
//
//	api.js     requests with failover: next data center on a network error,
//	           502/503/504 or no answer; same method, path (txnId) and body;
//	           a probe of /ready finds a data center that hangs
//	outbox.js  messages not yet acknowledged, persisted with their txnId in
//	           localStorage and sent until a data center acknowledges them
//	model.js   rooms from /sync and /messages; who has read what (receipts)
//	chat.js    the /sync loop, status line, receipts, typing, room actions
//	           (deleting a message is a redaction; an admin's of anyone's)
//	list.js    chat list and dialogs; room.js the conversation and composer:
//	           links (util.js linkify), replies; msgmenu.js the ⋯ menu of
//	           each message and its reaction chips
//	incidents.js  "Report damage": the outages that affected the user, what
//	           the published rule pays, and damage reports (idempotent txnId)
//	members.js a chat's settings (name, topic) and members: power marks,
//	           removing a member (kick), offered only where power levels allow
//	profile.js my display name and photo; avatar.js photos or initials
//	search.js  message search (POST /search) in one room or all, the
//	           matched words marked, more pages through next_batch
//	auth.js    sign up / log in; i18n.js Korean and English (the top bar's
//	           switch, kept in the account data)
//	media.js   photos and files: authenticated downloads through the
//	           failover (retried when they fail), file chips, the server's
//	           upload limit checked before an upload
//	notify.js  desktop notifications and a WebAudio chime when the server's
//	           notification_count of a room grows (bell toggle in the top bar)
//	store.js   localStorage; util.js DOM and error helpers; app.js the entry
//	cache.js   rooms and their last events in IndexedDB, shown at start
//	           before the first /sync answers
//	sw.js      the service worker (served at /sw.js, scope /): the app
//	           shell from its cache, so the page loads while the data
//	           center that served it is down
package webclient

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/planb-chat/planb"
)

//go:embed static
var static embed.FS

// AssetPrefix is the URL path under which the client's files are served.
const AssetPrefix = "/_planb/web/"

// contentSecurityPolicy lets the page load only its own files, show images
// from blob: URLs (media is fetched with the access token and shown as
// blobs) and talk to any http(s) origin, because the other data centers are
// other origins.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' blob: data:; connect-src 'self' http: https:; object-src 'none'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// contentTypes maps the extensions of the embedded files to their types;
// set explicitly so that the answer does not depend on the host's mime
// tables.
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".json":        "application/json",
	".webmanifest": "application/manifest+json",
}

// asset is one embedded file, read once at registration.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// loadAssets reads every embedded file. The embedded tree is fixed at build
// time, so an error here is a programming error.
func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		out[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: ct,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		panic("webclient: read embedded files: " + err.Error())
	}
	return out
}

// ServiceWorkerPath is where the service worker is served: at the root, so
// that its scope is the whole origin (the app at "/" and its files).
const ServiceWorkerPath = "/sw.js"

// swName is the service worker's embedded file; swHeader is its first line,
// which serviceWorker replaces with the shell's version and file list.
const (
	swName   = "sw.js"
	swHeader = "const SHELL = { version: 'dev', files: [] };"
)

// serviceWorker returns sw.js with its first line naming this build's
// shell: a version (a hash of every file, so any change to the client
// changes sw.js and the browser installs it, replacing the old cache) and
// the files to cache. It panics if sw.js lacks that line (a programming
// error, caught by the tests).
func serviceWorker(assets map[string]asset) asset {
	sw, ok := assets[swName]
	if !ok || !bytes.HasPrefix(sw.body, []byte(swHeader)) {
		panic("webclient: static/sw.js must start with " + swHeader)
	}
	var names []string
	for name := range assets {
		if name != swName && name != "index.html" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	h := sha256.New()
	files := []string{"/"}
	for _, name := range append([]string{"index.html", swName}, names...) {
		h.Write([]byte(name + "\x00" + assets[name].etag + "\x00"))
	}
	for _, name := range names {
		files = append(files, AssetPrefix+name)
	}
	version := hex.EncodeToString(h.Sum(nil)[:8])
	head, err := json.Marshal(map[string]any{"version": version, "files": files})
	if err != nil {
		panic("webclient: encode the shell: " + err.Error())
	}
	body := append([]byte("const SHELL = "+string(head)+";"), sw.body[len(swHeader):]...)
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: sw.contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// Register adds the web client's routes to mux: the app at exactly "GET /",
// its service worker at "GET /sw.js" and its files under "GET /_planb/web/".
// It registers no catch-all, so every other unknown path still gets the
// API's Matrix M_UNRECOGNIZED answer. It panics, as ServeMux does, if these
// patterns are taken.
func Register(mux *http.ServeMux) {
	assets := loadAssets()
	sw := serviceWorker(assets)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, assets["index.html"])
	})
	mux.HandleFunc("GET "+ServiceWorkerPath, func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, sw)
	})
	mux.HandleFunc("GET "+AssetPrefix, func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, AssetPrefix)
		a, ok := assets[name]
		if !ok || name == "index.html" || name == swName {
			notFound(w, r.URL.Path)
			return
		}
		serve(w, r, a)
	})
}

// serve writes one file. Files are not versioned in their URLs (ES module
// imports name each other), so browsers must revalidate every time; the
// ETag makes that a cheap 304.
func serve(w http.ResponseWriter, r *http.Request, a asset) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if strings.HasPrefix(a.contentType, "text/html") {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("X-Frame-Options", "DENY")
	}
	// ServeContent answers If-None-Match with 304 and HEAD without a body.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// notFound answers like the Matrix API does, so clients see one error shape.
func notFound(w http.ResponseWriter, p string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_ = json.NewEncoder(w).Encode(map[string]string{"errcode": string(planb.CodeNotFound), "error": "no web client file " + p})
}
