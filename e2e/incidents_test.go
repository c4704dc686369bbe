package e2e

import (
	"bytes"
	"testing"
)

// TestIncidentAPIOnOneNode checks the incident endpoints of a node whose
// ledger is empty (incidents come from losing a data center, see
// dctest.TestIncidentThroughDataCenterLoss): the status page is public and
// healthy, a user's own list is empty, a report for an incident that does
// not exist is 404, bad input is refused before anything is looked up, and
// reports are rate-limited per user.
func TestIncidentAPIOnOneNode(t *testing.T) {
	s := startServer(t)
	cli := newUser(t, s, "incident-ann")
	tok := cli.AccessToken

	if r := s.raw(t, "GET", "/status.json", "", nil); r.status != 200 || r.json["incidents"] == nil || r.json["datacenters"] == nil {
		t.Errorf("/status.json: %s", r)
	}
	if r := s.raw(t, "GET", "/status?lang=en", "", nil); r.status != 200 || !bytes.Contains(r.body, []byte("All data centers operational")) {
		t.Errorf("/status: %d %.300s", r.status, r.body)
	}
	if r := s.raw(t, "GET", "/_planb/client/v1/incidents", "", nil); r.status != 401 {
		t.Errorf("incidents without a token: %s", r)
	}
	if r := s.raw(t, "GET", "/_planb/client/v1/incidents", tok, nil); r.status != 200 || len(r.json["incidents"].([]any)) != 0 || r.json["compensation_policy"] == nil {
		t.Errorf("my incidents: %s", r)
	}
	path := "/_planb/client/v1/incidents/20261204-000000-dc9-lost/reports/"
	report := []byte(`{"category":"messages","text":"late"}`)
	if r := s.raw(t, "PUT", path+"t1", tok, []byte(`{"category":"messages","text":`)); r.status != 400 || r.json["errcode"] != "M_NOT_JSON" {
		t.Errorf("broken JSON: %s", r)
	}
	if r := s.raw(t, "PUT", path+"t2", tok, report); r.status != 404 || r.json["errcode"] != "M_NOT_FOUND" {
		t.Errorf("report for no incident: %s", r)
	}
	if r := s.raw(t, "PUT", "/_planb/client/v1/incidents/..%2Fx/reports/t3", tok, report); r.status != 404 {
		t.Errorf("report for a malformed incident ID: %s", r)
	}
	limited := false
	for i := 0; i < 6 && !limited; i++ {
		r := s.raw(t, "PUT", path+"t4", tok, report)
		limited = r.status == 429 && r.json["errcode"] == "M_LIMIT_EXCEEDED" && r.json["retry_after_ms"] != nil
	}
	if !limited {
		t.Errorf("six more reports within a second were not rate-limited")
	}
}
