package httpapi

import (
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/homeserver"
)

func (a *API) routesMedia() {
	upload := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		limit := a.hs.Config().MaxUploadBytes
		if r.ContentLength > limit {
			writeError(w, a.log, planb.Errorf(planb.CodeTooLarge, 413, "upload is larger than the limit of %d bytes", limit))
			return
		}
		uri, err := a.hs.Upload(r.Context(), s, r.Header.Get("Content-Type"), r.URL.Query().Get("filename"),
			r.ContentLength, http.MaxBytesReader(w, r.Body, limit+1))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]string{"content_uri": uri})
	}
	a.handle("POST /_matrix/media/v3/upload", upload)
	a.handle("POST /_matrix/media/v1/create", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		uri, expires, err := a.hs.CreateMedia(r.Context(), s)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"content_uri": uri, "unused_expires_at": expires})
	})
	a.handle("PUT /_matrix/media/v3/upload/{serverName}/{mediaId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		limit := a.hs.Config().MaxUploadBytes
		if r.ContentLength > limit {
			writeError(w, a.log, planb.Errorf(planb.CodeTooLarge, 413, "upload is larger than the limit of %d bytes", limit))
			return
		}
		err := a.hs.UploadReserved(r.Context(), s, r.PathValue("serverName"), r.PathValue("mediaId"), r.Header.Get("Content-Type"),
			r.URL.Query().Get("filename"), r.ContentLength, http.MaxBytesReader(w, r.Body, limit+1))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, struct{}{})
	})
	config := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		writeJSON(w, 200, map[string]int64{"m.upload.size": a.hs.Config().MaxUploadBytes})
	}
	a.handle("GET /_matrix/client/v1/media/config", config)
	a.handle("GET /_matrix/media/v3/config", config)
	authedDL := func(w http.ResponseWriter, r *http.Request, s homeserver.Session) { a.download(w, r) }
	a.handle("GET /_matrix/client/v1/media/download/{serverName}/{mediaId}", authedDL)
	a.handle("GET /_matrix/client/v1/media/download/{serverName}/{mediaId}/{fileName}", authedDL)
	// Legacy unauthenticated downloads, still used by many clients.
	a.mux.HandleFunc("GET /_matrix/media/v3/download/{serverName}/{mediaId}", a.download)
	a.mux.HandleFunc("GET /_matrix/media/v3/download/{serverName}/{mediaId}/{fileName}", a.download)
}

func (a *API) download(w http.ResponseWriter, r *http.Request) {
	// An asynchronous upload not yet made is waited for (spec: timeout_ms,
	// default 20 s).
	wait := 20 * time.Second
	if v := r.URL.Query().Get("timeout_ms"); v != "" {
		ms, err := strconv.ParseInt(v, 10, 64)
		if err != nil || ms < 0 {
			writeError(w, a.log, planb.InvalidParam("timeout_ms must be a non-negative integer"))
			return
		}
		wait = time.Duration(ms) * time.Millisecond
	}
	m, err := a.hs.Download(r.Context(), r.PathValue("serverName"), r.PathValue("mediaId"), wait)
	if err != nil {
		writeError(w, a.log, err)
		return
	}
	defer m.Body.Close()
	name := r.PathValue("fileName")
	if name == "" {
		name = m.FileName
	}
	h := w.Header()
	h.Set("Content-Type", m.ContentType)
	h.Set("Content-Length", strconv.FormatUint(m.Size, 10))
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';")
	h.Set("Cross-Origin-Resource-Policy", "cross-origin")
	disp := "attachment"
	if isInline(m.ContentType) {
		disp = "inline"
	}
	if name != "" {
		disp = mime.FormatMediaType(disp, map[string]string{"filename": name})
	}
	h.Set("Content-Disposition", disp)
	w.WriteHeader(200)
	if _, err := io.Copy(w, m.Body); err != nil {
		a.log.Debug("media download interrupted", "err", err)
	}
}

// isInline reports whether a content type is safe to show inline.
func isInline(ct string) bool {
	mt, _, _ := mime.ParseMediaType(ct)
	switch mt {
	case "image/jpeg", "image/gif", "image/png", "image/apng", "image/webp", "image/avif",
		"video/mp4", "video/webm", "video/ogg", "audio/mp4", "audio/webm", "audio/aac", "audio/mpeg", "audio/ogg", "audio/wav", "text/plain":
		return true
	}
	return false
}
