package main

import (
	"strings"
	"testing"
)

// TestAdminIncidentsOnARealNode runs the incident actions against a real
// node with an empty ledger (incidents are made by losing a data center:
// dctest.TestIncidentThroughDataCenterLoss runs these actions on real ones).
func TestAdminIncidentsOnARealNode(t *testing.T) {
	url := serveForTest(t, "admin-secret")
	target := []string{"--datacenter", "seoul=" + url, "--admin-token", "admin-secret"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"incidents"}, "no incidents recorded"},
		{[]string{"incidents", "--format", "json"}, `"incidents": []`},
		{[]string{"reports"}, "no damage reports"},
		{[]string{"reports", "--format", "csv"}, "id,incident,user,category,amount_claimed,status"},
	} {
		out, err := admin(t, append(tc.args, target...)...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("admin %q: %v\n%s\nwant %q", tc.args, err, out, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"incident", "--incident", "20261204-000000-dc9-lost"}, "M_NOT_FOUND"},
		{[]string{"compensation", "--incident", "20261204-000000-dc9-lost"}, "M_NOT_FOUND"},
		{[]string{"report-status", "--report", "x.y.z", "--status", "paid"}, "M_NOT_FOUND"},
		{[]string{"report-status", "--report", "nodots", "--status", "paid"}, "M_INVALID_PARAM"},
		{[]string{"report-status", "--report", "a.b.c", "--status", "lost"}, "status must be received, reviewed or paid"},
	} {
		if out, err := admin(t, append(tc.args, target...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %q: %v\n%s\nwant an error with %q", tc.args, err, out, tc.want)
		}
	}
}

func TestAdminIncidentFlagsAreChecked(t *testing.T) {
	target := []string{"--datacenter", "seoul=http://127.0.0.1:1", "--admin-token", "x"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compensation"}, "compensation needs --incident ID"},
		{[]string{"incident", "--incident", "../etc"}, "is not an incident ID"},
		{[]string{"incidents", "--format", "csv"}, "only reports and compensation export CSV"},
		{[]string{"reports", "--format", "xml"}, "want table, csv or json"},
		{[]string{"report-status", "--report", "a.b.c"}, "report-status needs --report ID and --status"},
	} {
		if _, err := admin(t, append(tc.args, target...)...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("admin %q: %v, want an error with %q", tc.args, err, tc.want)
		}
	}
}
