package httpapi

import (
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
		if csv, err := exportCSV(r); err != nil {
			writeError(w, a.log, err)
			return
		} else if csv {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="compensation-`+r.PathValue("id")+`.csv"`)
			if err := compensation.WriteCSV(w, rs); err != nil {
				a.log.Warn("compensation CSV cut short", "err", err)
			}
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
		if csv, err := exportCSV(r); err != nil {
			writeError(w, a.log, err)
			return
		} else if csv {
			w.Header().Set("Content-Type", "text/csv; charset=utf-8")
			w.Header().Set("Content-Disposition", `attachment; filename="damage-reports.csv"`)
			if err := incident.WriteReportsCSV(w, rs); err != nil {
				a.log.Warn("reports CSV cut short", "err", err)
			}
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

// exportCSV reports whether the request asks for CSV (?format=csv) rather
// than JSON (no format, or format=json).
func exportCSV(r *http.Request) (bool, error) {
	switch f := strings.ToLower(r.URL.Query().Get("format")); f {
	case "", "json":
		return false, nil
	case "csv":
		return true, nil
	default:
		return false, planb.InvalidParam("format must be csv or json, not %q", f)
	}
}
