package adminapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestClientAtDecodesAnswersAndErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer secret" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errcode":"M_UNKNOWN_TOKEN","error":"bad admin token"}`))
			return
		}
		switch r.URL.Path {
		case Path + "/status":
			_, _ = w.Write([]byte(`{"draining":true}`))
		case Path + "/drills/lock":
			w.WriteHeader(http.StatusConflict)
			_, _ = w.Write([]byte(`{"errcode":"` + CodeDrillRunning + `","error":"dc-loss is running"}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("no such page"))
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := New("secret", srv.URL+"/")
	var st struct{ Draining bool }
	if err := c.At(ctx, srv.URL, http.MethodGet, "/status", nil, &st); err != nil || !st.Draining {
		t.Fatalf("status = %+v, %v", st, err)
	}
	var raw json.RawMessage
	if err := c.At(ctx, srv.URL, http.MethodGet, "/status", nil, &raw); err != nil || string(raw) != `{"draining":true}` {
		t.Fatalf("raw status = %s, %v", raw, err)
	}
	var ae *Error
	err := c.At(ctx, srv.URL, http.MethodPut, "/drills/lock", map[string]int{"ttl_seconds": 5}, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Code != CodeDrillRunning || ae.Message != "dc-loss is running" {
		t.Fatalf("lock error = %v", err)
	}
	err = c.At(ctx, srv.URL, http.MethodGet, "/nothing", nil, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Message != "no such page" {
		t.Fatalf("non-JSON error = %v", err)
	}
	err = New("wrong", srv.URL).At(ctx, srv.URL, http.MethodGet, "/status", nil, nil)
	if !errors.As(err, &ae) || ae.Code != "M_UNKNOWN_TOKEN" {
		t.Fatalf("bad token error = %v", err)
	}
}

func TestClientAnyMovesOnFromDeadAndFailingNodes(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close() // nothing listens there any more
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"errcode":"M_UNAVAILABLE","error":"cut off"}`))
	}))
	defer failing.Close()
	asked := 0
	good := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked++
		_, _ = w.Write([]byte(`{"key":"k1"}`))
	}))
	defer good.Close()
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"errcode":"M_INVALID_PARAM","error":"bad report"}`))
	}))
	defer refusing.Close()
	ctx := context.Background()

	var out struct{ Key string }
	if err := New("t", deadURL, failing.URL, good.URL).Any(ctx, time.Minute, http.MethodPost, "/drills", struct{}{}, &out); err != nil || out.Key != "k1" || asked != 1 {
		t.Fatalf("any = %+v, %v (good node asked %d times)", out, err, asked)
	}
	// A node's own decision (4xx) is final: the good node is not asked.
	var ae *Error
	err := New("t", refusing.URL, good.URL).Any(ctx, time.Minute, http.MethodPost, "/drills", struct{}{}, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest || asked != 1 {
		t.Fatalf("any with a refusing first node = %v (good node asked %d times)", err, asked)
	}
	// Nobody answers: the budget ends the retries with the last error.
	start := time.Now()
	err = New("t", failing.URL).Any(ctx, 1500*time.Millisecond, http.MethodGet, "/status", nil, nil)
	if !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("any with no healthy node = %v", err)
	}
	if took := time.Since(start); took < time.Second {
		t.Errorf("gave up after %v, before the budget", took)
	}
}
