package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/planb-chat/planb/adminapi"
	"github.com/planb-chat/planb/cluster"
	"github.com/planb-chat/planb/compensation"
	"github.com/planb-chat/planb/incident"
)

// incidentsCmd is the operator's side of the incident ledger:
//
//	planb admin incidents                     list the incidents
//	planb admin incident --incident ID        one incident and whom it affected
//	planb admin reports [filters]             damage reports (table, csv or json)
//	planb admin report-status --report ID --status S
//	planb admin compensation --incident ID    what the published rule pays each affected user
type incidentsCmd struct {
	stdout   io.Writer
	action   string
	target   targetFlags
	incident string
	report   string
	status   string
	user     string
	category string
	format   string
	client   *adminapi.Client
}

// incidentActions are the admin actions incidentsCmd serves.
var incidentActions = []string{"incidents", "incident", "reports", "report-status", "compensation"}

func (c *incidentsCmd) flags(fs *flag.FlagSet) {
	c.target.flags(fs, devClusterFile)
	fs.StringVar(&c.incident, "incident", "", "the incident `ID` (incident, compensation; a filter for reports)")
	fs.StringVar(&c.report, "report", "", "the report `ID` (report-status)")
	fs.StringVar(&c.status, "status", "", "reports: only those with this `status`; report-status: the new status (received, reviewed, paid)")
	fs.StringVar(&c.user, "user", "", "reports: only this `user`'s")
	fs.StringVar(&c.category, "category", "", "reports: only this `category` (messages, business, payment, other)")
	fs.StringVar(&c.format, "format", "table", "output `format`: table, csv (reports, compensation) or json")
}

func (c *incidentsCmd) validate() error {
	var errs []error
	switch c.format {
	case "table", "json":
	case "csv":
		if c.action != "reports" && c.action != "compensation" {
			errs = append(errs, fmt.Errorf("--format csv: only reports and compensation export CSV"))
		}
	default:
		errs = append(errs, fmt.Errorf("--format %q: want table, csv or json", c.format))
	}
	if (c.action == "incident" || c.action == "compensation") && c.incident == "" {
		errs = append(errs, fmt.Errorf("%s needs --incident ID (planb admin incidents lists them)", c.action))
	}
	if c.incident != "" && !incident.ValidID(c.incident) {
		errs = append(errs, fmt.Errorf("--incident %q is not an incident ID", c.incident))
	}
	if c.action == "report-status" && (c.report == "" || c.status == "") {
		errs = append(errs, errors.New("report-status needs --report ID and --status received|reviewed|paid"))
	}
	tg, err := c.target.resolve()
	if err == nil {
		err = needToken(tg)
	}
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	var nodes []string
	for _, dc := range tg.DataCenters {
		nodes = append(nodes, dc.Nodes...)
	}
	c.client = adminapi.New(tg.AdminToken, nodes...)
	return errors.Join(errs...)
}

func (c *incidentsCmd) run(ctx context.Context, _ *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	get := func(path string, out any) error {
		return c.client.Any(ctx, 30*time.Second, http.MethodGet, path, nil, out)
	}
	switch c.action {
	case "incidents":
		var out struct {
			Incidents []incident.Incident `json:"incidents"`
		}
		if err := get("/incidents", &out); err != nil {
			return err
		}
		if c.format == "json" {
			return printJSON(c.stdout, out)
		}
		return printIncidents(c.stdout, out.Incidents)
	case "incident":
		var out cluster.IncidentDetail
		if err := get("/incidents/"+c.incident, &out); err != nil {
			return err
		}
		if c.format == "json" {
			return printJSON(c.stdout, out)
		}
		return printIncidentDetail(c.stdout, out)
	case "reports":
		q := url.Values{}
		for k, v := range map[string]string{"incident": c.incident, "user": c.user, "status": c.status, "category": c.category} {
			if v != "" {
				q.Set(k, v)
			}
		}
		var out struct {
			Reports []incident.Report `json:"reports"`
		}
		if err := get("/reports?"+q.Encode(), &out); err != nil {
			return err
		}
		switch c.format {
		case "json":
			return printJSON(c.stdout, out)
		case "csv":
			return incident.WriteReportsCSV(c.stdout, out.Reports)
		}
		return printReports(c.stdout, out.Reports)
	case "report-status":
		var out json.RawMessage
		err := c.client.Any(ctx, 30*time.Second, http.MethodPut, "/reports/"+url.PathEscape(c.report)+"/status", map[string]string{"status": c.status}, &out)
		if err != nil {
			return err
		}
		return printJSON(c.stdout, out)
	case "compensation":
		var out struct {
			Results     []compensation.Result `json:"results"`
			Description string                `json:"description"`
		}
		if err := get("/incidents/"+c.incident+"/compensation", &out); err != nil {
			return err
		}
		switch c.format {
		case "json":
			return printJSON(c.stdout, out)
		case "csv":
			return compensation.WriteCSV(c.stdout, out.Results)
		}
		return printCompensation(c.stdout, out.Results, out.Description)
	}
	return fmt.Errorf("unknown admin action %q", c.action)
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") }

func printIncidents(w io.Writer, ins []incident.Incident) error {
	if len(ins) == 0 {
		_, err := fmt.Fprintln(w, "no incidents recorded")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tSTARTED\tENDED\tLASTED\tDATA CENTERS\tPARTITIONS\tAFFECTED\tDRILL")
	now := time.Now()
	for _, in := range ins {
		ended := "open"
		if in.EndedAt != nil {
			ended = fmtTime(*in.EndedAt)
		}
		drill := ""
		if in.Drill {
			drill = "drill " + in.DrillID
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%v\t%d\t%s\n", in.ID, in.Kind, fmtTime(in.StartedAt), ended,
			in.Duration(now).Round(time.Second), strings.Join(in.DataCenters, ","), in.Partitions, in.AffectedUsers, drill)
	}
	return tw.Flush()
}

func printIncidentDetail(w io.Writer, d cluster.IncidentDetail) error {
	if err := printIncidents(w, []incident.Incident{d.Incident}); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tREASONS\tAFFECTED FOR\tNOTIFIED\tFOLLOWED UP")
	end := time.Now()
	if d.Incident.EndedAt != nil {
		end = *d.Incident.EndedAt
	}
	for _, a := range d.Affected {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%v\n", a.User, strings.Join(a.Reasons, ","), a.Duration(end).Round(time.Second), a.Notified, a.FollowedUp)
	}
	return tw.Flush()
}

func printReports(w io.Writer, rs []incident.Report) error {
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "no damage reports")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tINCIDENT\tUSER\tCATEGORY\tCLAIMED\tSTATUS\tFILED\tTEXT")
	for _, r := range rs {
		claimed := "-"
		if r.AmountClaimed != nil {
			claimed = fmt.Sprint(*r.AmountClaimed)
		}
		text := strings.Join(strings.Fields(r.Text), " ")
		if len([]rune(text)) > 60 {
			text = string([]rune(text)[:60]) + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%q\n", r.ID, r.Incident, r.User, r.Category, claimed, r.Status, fmtTime(r.CreatedAt), text)
	}
	return tw.Flush()
}

func printCompensation(w io.Writer, rs []compensation.Result, rule string) error {
	fmt.Fprintln(w, rule)
	fmt.Fprintln(w)
	if len(rs) == 0 {
		_, err := fmt.Fprintln(w, "nobody was affected")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tMINUTES\tPAYING\tAMOUNT\tWHY")
	var total int64
	for _, r := range rs {
		total += r.Amount
		fmt.Fprintf(tw, "%s\t%d\t%v\t%s\t%s\n", r.User, r.AffectedMinutes, r.Paying, compensation.FormatAmount(r.Amount, r.Currency, "en"), r.Explanation)
	}
	fmt.Fprintf(tw, "TOTAL\t\t\t%s\t%d users\n", compensation.FormatAmount(total, rs[0].Currency, "en"), len(rs))
	return tw.Flush()
}
