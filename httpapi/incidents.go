package httpapi

import (
	"io"
	"net/http"
	"strings"

	"github.com/planb-chat/planb"
	"github.com/planb-chat/planb/compensation"
	"github.com/planb-chat/planb/homeserver"
	"github.com/planb-chat/planb/incident"
	"github.com/planb-chat/planb/statuspage"
)

// clientPrefix is the root of planb's own client API (authenticated with
// a user's access token, like the Matrix client API).
const clientPrefix = "/_planb/client/v1"

// A user may file (or retry) damage reports this often, per node; the
// ledger bounds them per incident besides (incident.MaxReportsPerIncident).
const (
	reportsPerMinute = 6
	reportsBurst     = 3
)

// routesIncidents serves the public status page, a user's own incidents
// and damage reports, and the operator's incident API.
func (a *API) routesIncidents() {
	a.mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		p, err := a.ops.StatusPage(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		statuspage.ServeHTML(w, r, p)
	})
	a.mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		p, err := a.ops.StatusPage(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		statuspage.ServeJSON(w, r, p)
	})

	a.handle("GET "+clientPrefix+"/incidents", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		mine, err := a.ops.MyIncidents(r.Context(), s.UserID)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		p := a.ops.CompensationPolicy()
		writeJSON(w, 200, map[string]any{"incidents": mine, "compensation_policy": map[string]any{
			"rule": p, "description": map[string]string{"ko": p.Describe("ko"), "en": p.Describe("en")}}})
	})
	a.handle("PUT "+clientPrefix+"/incidents/{id}/reports/{txnId}", func(w http.ResponseWriter, r *http.Request, s homeserver.Session) {
		if ok, wait := a.reports.allow(s.UserID); !ok {
			writeError(w, a.log, planb.LimitExceeded(wait))
			return
		}
		var in incident.ReportInput
		if err := decode(r, &in); err != nil {
			writeError(w, a.log, err)
			return
		}
		rep, err := a.ops.FileReport(r.Context(), s.UserID, r.PathValue("id"), r.PathValue("txnId"), in)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"report": rep})
	})

	a.mux.HandleFunc("GET "+adminPrefix+"/incidents", a.admin(func(w http.ResponseWriter, r *http.Request) {
		ins, err := a.ops.Incidents(r.Context())
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"incidents": ins})
	}))
	a.mux.HandleFunc("GET "+adminPrefix+"/incidents/{id}", a.admin(func(w http.ResponseWriter, r *http.Request) {
		d, err := a.ops.Incident(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, d)
	}))
	a.mux.HandleFunc("GET "+adminPrefix+"/incidents/{id}/compensation", a.admin(func(w http.ResponseWriter, r *http.Request) {
		rs, err := a.ops.Compensation(r.Context(), r.PathValue("id"))
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if a.servedCSV(w, r, "compensation-"+r.PathValue("id")+".csv", func(w io.Writer) error { return compensation.WriteCSV(w, rs) }) {
			return
		}
		p := a.ops.CompensationPolicy()
		writeJSON(w, 200, map[string]any{"results": rs, "policy": p, "description": p.Describe("en")})
	}))
	a.mux.HandleFunc("GET "+adminPrefix+"/reports", a.admin(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		f := incident.ReportFilter{Incident: q.Get("incident"), User: q.Get("user"), Status: q.Get("status"), Category: q.Get("category")}
		rs, err := a.ops.Reports(r.Context(), f)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		if a.servedCSV(w, r, "damage-reports.csv", func(w io.Writer) error { return incident.WriteReportsCSV(w, rs) }) {
			return
		}
		writeJSON(w, 200, map[string]any{"reports": rs})
	}))
	a.mux.HandleFunc("PUT "+adminPrefix+"/reports/{id}/status", a.admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Status string `json:"status"`
		}
		if err := decode(r, &req); err != nil {
			writeError(w, a.log, err)
			return
		}
		rep, err := a.ops.SetReportStatus(r.Context(), r.PathValue("id"), req.Status)
		if err != nil {
			writeError(w, a.log, err)
			return
		}
		writeJSON(w, 200, map[string]any{"report": rep})
	}))
}

// servedCSV answers a request that asks for CSV (?format=csv) with what
// write writes, as a download called name, or a bad format with
// M_INVALID_PARAM, and reports whether it answered; false leaves the
// answer (JSON: no format, or format=json) to the caller.
func (a *API) servedCSV(w http.ResponseWriter, r *http.Request, name string, write func(io.Writer) error) bool {
	switch f := strings.ToLower(r.URL.Query().Get("format")); f {
	case "", "json":
		return false
	case "csv":
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		if err := write(w); err != nil {
			a.log.Warn("CSV export cut short", "file", name, "err", err)
		}
	default:
		writeError(w, a.log, planb.InvalidParam("format must be csv or json, not %q", f))
	}
	return true
}
