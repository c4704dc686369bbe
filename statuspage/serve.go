package statuspage

import (
	"bytes"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// contentSecurityPolicy forbids every load: the page's only resource is
// its inline style sheet.
const contentSecurityPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Lang picks "ko" or "en": the ?lang= query value if valid, else the first
// supported language of Accept-Language (by preference, region subtags
// ignored: "en-US" is "en"), else "ko".
func Lang(r *http.Request) string {
	if l := strings.ToLower(r.URL.Query().Get("lang")); texts[l] != nil {
		return l
	}
	type choice struct {
		lang string
		q    float64
	}
	var choices []choice
	for _, field := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(field, ";")
		tag = strings.ToLower(strings.TrimSpace(tag))
		tag, _, _ = strings.Cut(tag, "-")
		q := 1.0
		for _, param := range strings.Split(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(param), "=")
			if ok && strings.EqualFold(k, "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				} else {
					q = 0
				}
			}
		}
		if q > 0 && texts[tag] != nil {
			choices = append(choices, choice{tag, q})
		}
	}
	// Stable: among equal weights the first listed wins.
	slices.SortStableFunc(choices, func(a, b choice) int {
		switch {
		case a.q > b.q:
			return -1
		case a.q < b.q:
			return 1
		}
		return 0
	})
	if len(choices) > 0 {
		return choices[0].lang
	}
	return "ko"
}

// ServeHTML writes p as HTML in the language Lang picks for r, with
// Cache-Control: no-store and a Content-Security-Policy that forbids every
// external load. It answers 500 if the page cannot be rendered.
func ServeHTML(w http.ResponseWriter, r *http.Request, p Page) {
	var buf bytes.Buffer
	if err := p.WriteHTML(&buf, Lang(r)); err != nil {
		http.Error(w, "status page unavailable", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("Vary", "Accept-Language")
	serve(w, buf.Bytes())
}

// ServeJSON writes p as JSON with Cache-Control: no-store. It answers 500
// if the page cannot be encoded.
func ServeJSON(w http.ResponseWriter, r *http.Request, p Page) {
	var buf bytes.Buffer
	if err := p.WriteJSON(&buf); err != nil {
		http.Error(w, "status unavailable", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	serve(w, buf.Bytes())
}

func serve(w http.ResponseWriter, body []byte) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body) // the client went away; nothing to do
}
