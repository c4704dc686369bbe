package e2e

import (
	"bytes"
	"crypto/rand"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"
)

// mediaLimit is the --max-upload-bytes of the media test server.
const mediaLimit = 200_000

// TestMedia uploads bytes and downloads them through the authenticated v1
// path and the legacy v3 path, byte for byte with their content type, and
// checks the upload limit.
func TestMedia(t *testing.T) {
	srv := startServer(t, withFlags("--max-upload-bytes", strconv.Itoa(mediaLimit)))
	ctx := t.Context()
	alice := newUser(t, srv, "alice")
	bob := newUser(t, srv, "bob")

	data := make([]byte, 150_000)
	_, _ = rand.Read(data)
	const ctype = "application/x-planb-e2e"
	up, err := alice.UploadBytesWithName(ctx, data, ctype, "blob.bin")
	must(t, "upload", err)
	mxc := up.ContentURI
	if mxc.Homeserver != serverName || mxc.FileID == "" {
		t.Fatalf("content_uri = %q, want mxc://%s/<id>", mxc.String(), serverName)
	}

	t.Run("v1 authenticated download", func(t *testing.T) {
		resp, err := bob.Download(ctx, mxc)
		must(t, "download", err)
		defer resp.Body.Close()
		checkDownload(t, resp, data, ctype)
	})

	t.Run("v1 download needs a token", func(t *testing.T) {
		r := srv.raw(t, "GET", "/_matrix/client/v1/media/download/"+mxc.Homeserver+"/"+mxc.FileID, "", nil)
		checkRaw(t, "v1 download without token", r, want{401, "M_MISSING_TOKEN"})
	})

	t.Run("legacy v3 download", func(t *testing.T) {
		req, err := http.NewRequestWithContext(ctx, "GET",
			srv.URL+"/_matrix/media/v3/download/"+mxc.Homeserver+"/"+mxc.FileID, nil)
		must(t, "build request", err)
		resp, err := (&http.Client{Timeout: httpTimeout}).Do(req)
		must(t, "legacy download", err)
		defer resp.Body.Close()
		checkDownload(t, resp, data, ctype)
	})

	t.Run("small text file", func(t *testing.T) {
		small := []byte("hello, planb\n")
		up, err := bob.UploadBytes(ctx, small, "text/plain")
		must(t, "upload", err)
		resp, err := alice.Download(ctx, up.ContentURI)
		must(t, "download", err)
		defer resp.Body.Close()
		checkDownload(t, resp, small, "text/plain")
	})

	t.Run("unknown media", func(t *testing.T) {
		_, err := bob.Download(ctx, id.ContentURI{Homeserver: serverName, FileID: "doesnotexist"})
		checkErr(t, "download unknown media", err, notFound)
	})

	t.Run("over the limit", func(t *testing.T) {
		big := make([]byte, mediaLimit+1)
		_, err := alice.UploadBytes(ctx, big, "application/octet-stream")
		checkErr(t, "upload of limit+1 bytes", err, want{413, "M_TOO_LARGE"})
		exact := make([]byte, mediaLimit)
		_, err = alice.UploadBytes(ctx, exact, "application/octet-stream")
		must(t, "upload of exactly the limit", err)
	})

	t.Run("asynchronous upload", func(t *testing.T) {
		created, err := alice.CreateMXC(ctx)
		must(t, "create media", err)
		c := created.ContentURI
		if c.Homeserver != serverName || c.FileID == "" || created.UnusedExpiresAt.Before(time.Now()) {
			t.Fatalf("create: %+v, want an mxc URI of %s that expires later", created, serverName)
		}
		dl := "/_matrix/client/v1/media/download/" + c.Homeserver + "/" + c.FileID
		checkRaw(t, "download before the upload", srv.raw(t, "GET", dl+"?timeout_ms=300", bob.AccessToken, nil), want{504, "M_NOT_YET_UPLOADED"})

		// A download that waits sees the upload that comes meanwhile.
		small := []byte("uploaded later")
		type result struct {
			r   rawResponse
			err error
		}
		waited := make(chan result, 1)
		go func() {
			r, err := getRequest(ctx, srv.URL+dl+"?timeout_ms=30000", bob.AccessToken)
			waited <- result{r, err}
		}()
		put := "/_matrix/media/v3/upload/" + c.Homeserver + "/" + c.FileID
		checkRaw(t, "bob uploads into alice's media ID", srv.raw(t, "PUT", put, bob.AccessToken, small), forbidden)
		_, err = alice.UploadMedia(ctx, mautrix.ReqUploadMedia{MXC: c, ContentBytes: small, ContentType: "text/plain"})
		must(t, "upload into the reserved ID", err)
		if w := <-waited; w.err != nil || w.r.status != 200 || !bytes.Equal(w.r.body, small) {
			t.Errorf("the waiting download: %s, %v; want the upload", w.r, w.err)
		}
		resp, err := bob.Download(ctx, c)
		must(t, "download", err)
		defer resp.Body.Close()
		checkDownload(t, resp, small, "text/plain")
		checkRaw(t, "a second upload", srv.raw(t, "PUT", put, alice.AccessToken, small), want{409, "M_CANNOT_OVERWRITE_MEDIA"})
		checkRaw(t, "an upload into an ID never reserved", srv.raw(t, "PUT", "/_matrix/media/v3/upload/"+serverName+"/neverreserved",
			alice.AccessToken, small), notFound)
		checkRaw(t, "an upload into another server's ID", srv.raw(t, "PUT", "/_matrix/media/v3/upload/other.example/"+c.FileID,
			alice.AccessToken, small), notFound)
	})

	t.Run("upload needs a token", func(t *testing.T) {
		r := srv.raw(t, "POST", "/_matrix/media/v3/upload", "", []byte("{}"))
		checkRaw(t, "upload without token", r, want{401, "M_MISSING_TOKEN"})
	})
}

// checkDownload compares a download response with the uploaded bytes and
// content type (parameters such as "; charset=utf-8" are tolerated).
func checkDownload(t *testing.T, resp *http.Response, want []byte, ctype string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		t.Fatalf("download: HTTP %d %s", resp.StatusCode, b)
	}
	got, err := io.ReadAll(resp.Body)
	must(t, "read download", err)
	if !bytes.Equal(got, want) {
		t.Errorf("downloaded %d bytes, want the %d uploaded bytes", len(got), len(want))
	}
	ct := resp.Header.Get("Content-Type")
	if base, _, _ := strings.Cut(ct, ";"); strings.TrimSpace(base) != ctype {
		t.Errorf("Content-Type = %q, want %q", ct, ctype)
	}
}
