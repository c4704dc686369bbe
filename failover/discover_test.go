package failover

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// serveWellKnown starts a server answering /.well-known/matrix/client with
// status and body.
func serveWellKnown(t *testing.T, status int, body string) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/matrix/client", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestDiscover(t *testing.T) {
	t.Run("data centers", func(t *testing.T) {
		srv := serveWellKnown(t, http.StatusOK, `{
			"m.homeserver": {"base_url": "http://127.0.0.1:8008"},
			"org.planb.datacenters": [
				{"name": "dc1", "base_url": "http://127.0.0.1:8008"},
				{"name": "dc2", "base_url": "http://127.0.0.1:8018/"},
				{"name": "dc3", "base_url": "https://dc3.example.org"}
			]}`)
		eps, err := Discover(t.Context(), srv.Client(), srv.URL+"/")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range eps {
			got = append(got, e.Name+"="+e.URL.String())
		}
		want := "dc1=http://127.0.0.1:8008 dc2=http://127.0.0.1:8018/ dc3=https://dc3.example.org"
		if strings.Join(got, " ") != want {
			t.Errorf("got %v, want %s", got, want)
		}
		if _, err := New(eps, Options{}); err != nil {
			t.Errorf("New rejects discovered endpoints: %v", err)
		}
	})
	t.Run("plain homeserver", func(t *testing.T) {
		srv := serveWellKnown(t, http.StatusOK, `{"m.homeserver": {"base_url": "https://matrix.example.org:8448"}}`)
		eps, err := Discover(t.Context(), nil, srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 1 || eps[0].Name != "matrix.example.org:8448" || eps[0].URL.String() != "https://matrix.example.org:8448" {
			t.Errorf("got %+v, want one endpoint named after the host", eps)
		}
	})
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"not found", `{}`, http.StatusNotFound, "404"},
		{"not JSON", `<html>`, http.StatusOK, "decode"},
		{"nothing", `{}`, http.StatusOK, "neither org.planb.datacenters nor m.homeserver.base_url"},
		{"bad scheme", `{"org.planb.datacenters": [{"name": "dc1", "base_url": "ftp://x"}]}`, http.StatusOK, "scheme"},
		{"duplicate", `{"org.planb.datacenters": [{"name": "dc1", "base_url": "http://a"}, {"name": "dc1", "base_url": "http://b"}]}`,
			http.StatusOK, "duplicate name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := serveWellKnown(t, tc.status, tc.body)
			_, err := Discover(t.Context(), srv.Client(), srv.URL)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	if _, err := Discover(t.Context(), nil, "not a url"); err == nil {
		t.Error("Discover accepted an invalid base URL")
	}
}
