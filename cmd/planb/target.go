package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/planb-chat/planb/devcluster"
	"github.com/planb-chat/planb/drill"
)

// devClusterFile is where planb dev writes its cluster file.
const devClusterFile = "planb-dev/cluster.json"

// targetFlags are the flags of every command that works on a cluster
// (admin, drill, drill history, bench), parsed here only:
//
//	--cluster FILE           a cluster file written by planb dev
//	--datacenter [NAME=]URL  a deployment's node (repeat; several per data center allowed)
//	--admin-token TOKEN      the deployment's admin token (default $PLANB_ADMIN_TOKEN;
//	                         a dev cluster's is in its cluster file)
type targetFlags struct {
	clusterFile string
	dcs         []string
	adminToken  string
	// fallback is the cluster file used when neither --cluster nor
	// --datacenter is given ("": none, the command needs a target).
	fallback string
}

func (t *targetFlags) flags(fs *flag.FlagSet, fallback string) {
	t.fallback = fallback
	def := ""
	if fallback != "" {
		def = " (default " + fallback + " unless --datacenter is given)"
	}
	fs.StringVar(&t.clusterFile, "cluster", "", "target: the cluster `file` written by planb dev"+def)
	fs.Var(&listValue{dst: &t.dcs}, "datacenter", "target: a deployment's node, `NAME=URL` of its client API (repeat; give every node, several per data center allowed; a bare URL is named dc1, dc2, ...)")
	fs.StringVar(&t.adminToken, "admin-token", "", "admin `token` of the deployment (default $PLANB_ADMIN_TOKEN; a dev cluster's is read from its cluster file)")
}

// given reports whether a target was given on the command line.
func (t *targetFlags) given() bool { return t.clusterFile != "" || len(t.dcs) > 0 }

// resolve returns the target the flags name, reporting every problem.
func (t *targetFlags) resolve() (drill.Target, error) {
	if len(t.dcs) > 0 {
		if t.clusterFile != "" {
			return drill.Target{}, errors.New("give either --cluster (a dev cluster) or --datacenter (a deployment), not both")
		}
		var tg drill.Target
		var errs []error
		for i, v := range t.dcs {
			name, url, ok := strings.Cut(v, "=")
			if !ok || strings.Contains(name, "/") {
				name, url = "dc"+strconv.Itoa(i+1), v
			}
			if name == "" || !strings.HasPrefix(url, "http") {
				errs = append(errs, fmt.Errorf("--datacenter %q: want NAME=http(s)://host:port", v))
				continue
			}
			url = strings.TrimSuffix(url, "/")
			found := false
			for i := range tg.DataCenters {
				if tg.DataCenters[i].Name == name {
					tg.DataCenters[i].Nodes, found = append(tg.DataCenters[i].Nodes, url), true
				}
			}
			if !found {
				tg.DataCenters = append(tg.DataCenters, drill.DataCenterNodes{Name: name, Nodes: []string{url}})
			}
		}
		tg.AdminToken = t.adminToken
		if tg.AdminToken == "" {
			tg.AdminToken = os.Getenv("PLANB_ADMIN_TOKEN")
		}

		return tg, errors.Join(errs...)
	}
	path := t.clusterFile
	if path == "" {
		path = t.fallback
	}
	if path == "" {
		return drill.Target{}, errors.New("no target: give --cluster FILE (a dev cluster) or --datacenter NAME=URL for every node (a deployment)")
	}
	f, err := devcluster.ReadClusterFile(path)
	if err != nil {
		return drill.Target{}, fmt.Errorf("--cluster: %w (for a real deployment give --datacenter NAME=URL for every node and --admin-token)", err)
	}
	tg := drill.DevTarget(f)
	if t.adminToken != "" {
		tg.AdminToken = t.adminToken
	}
	return tg, nil
}

// needToken reports the missing admin token of tg.
func needToken(tg drill.Target) error {
	if tg.AdminToken == "" {
		return errors.New("--admin-token (or $PLANB_ADMIN_TOKEN) is required with --datacenter")
	}
	return nil
}

// label names the target in reports: the cluster file or the URLs.
func (t *targetFlags) label() string {
	if len(t.dcs) > 0 {
		return strings.Join(t.dcs, " ")
	}
	if t.clusterFile != "" {
		return t.clusterFile
	}
	return t.fallback
}
