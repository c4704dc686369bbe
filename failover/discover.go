package failover

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// DatacentersKey is planb's own key in /.well-known/matrix/client listing
// every data center's endpoint:
//
//	"org.planb.datacenters": [{"name": "dc1", "base_url": "https://dc1.example.org"}, ...]
const DatacentersKey = "org.planb.datacenters"

// maxWellKnown caps the size of a /.well-known/matrix/client document.
const maxWellKnown = 1 << 20

// wellKnown is the part of /.well-known/matrix/client that Discover reads.
type wellKnown struct {
	Homeserver *struct {
		BaseURL string `json:"base_url"`
	} `json:"m.homeserver"`
	Datacenters []struct {
		Name    string `json:"name"`
		BaseURL string `json:"base_url"`
	} `json:"org.planb.datacenters"`
}

// Discover fetches GET {baseURL}/.well-known/matrix/client with client
// (http.DefaultClient if nil) and returns the endpoints listed under
// DatacentersKey, in their order. If that key is absent or empty, it returns
// m.homeserver.base_url as the only endpoint, named after its host (with
// port). The endpoints are valid for New.
//
// It returns an error if baseURL is invalid, the request fails, the answer
// is not 200 or not JSON, no endpoint is given, or any endpoint is invalid.
func Discover(ctx context.Context, client *http.Client, baseURL string) ([]Endpoint, error) {
	if client == nil {
		client = http.DefaultClient
	}
	base, err := url.Parse(baseURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("failover: discover: invalid base URL %q", baseURL)
	}
	wkURL := strings.TrimRight(baseURL, "/") + "/.well-known/matrix/client"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wkURL, nil)
	if err != nil {
		return nil, fmt.Errorf("failover: discover: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failover: discover: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // read-only: nothing to lose
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("failover: discover: GET %s: %s", wkURL, resp.Status)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxWellKnown+1))
	if err != nil {
		return nil, fmt.Errorf("failover: discover: read %s: %w", wkURL, err)
	}
	if len(raw) > maxWellKnown {
		return nil, fmt.Errorf("failover: discover: %s is larger than %d bytes", wkURL, maxWellKnown)
	}
	var wk wellKnown
	if err := json.Unmarshal(raw, &wk); err != nil {
		return nil, fmt.Errorf("failover: discover: decode %s: %w", wkURL, err)
	}
	eps, err := wk.endpoints()
	if err != nil {
		return nil, fmt.Errorf("failover: discover: %s: %w", wkURL, err)
	}
	return eps, nil
}

// endpoints turns the document into endpoints valid for New.
func (wk wellKnown) endpoints() ([]Endpoint, error) {
	var eps []Endpoint
	if len(wk.Datacenters) > 0 {
		for i, dc := range wk.Datacenters {
			u, err := url.Parse(dc.BaseURL)
			if err != nil {
				return nil, fmt.Errorf("%s[%d] (%s): %w", DatacentersKey, i, dc.Name, err)
			}
			eps = append(eps, Endpoint{Name: dc.Name, URL: u})
		}
	} else {
		if wk.Homeserver == nil || wk.Homeserver.BaseURL == "" {
			return nil, fmt.Errorf("neither %s nor m.homeserver.base_url given", DatacentersKey)
		}
		u, err := url.Parse(wk.Homeserver.BaseURL)
		if err != nil {
			return nil, fmt.Errorf("m.homeserver.base_url: %w", err)
		}
		eps = append(eps, Endpoint{Name: u.Host, URL: u})
	}
	if errs := validateEndpoints(eps); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return eps, nil
}
