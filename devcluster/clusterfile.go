package devcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// ClusterFileName is the name of the file Run writes into its data
// directory once every data center is ready.
const ClusterFileName = "cluster.json"

// ClusterFile is the content of DataDir/cluster.json: everything a tool
// (drill, bench, a test) needs to find the data centers of a running dev
// cluster, fail them and bring them back.
type ClusterFile struct {
	// DataCenters lists every data center in order dc1..dcN.
	DataCenters []DataCenter `json:"datacenters"`
	// ToxiproxyURL is the HTTP API of the in-process toxiproxy that carries
	// every link between data centers; drive it with
	// github.com/Shopify/toxiproxy/v2/client.
	ToxiproxyURL string `json:"toxiproxy_url"`
	// Links are the toxiproxy proxies, one per ordered pair of data centers.
	// Cutting a data center off means disabling every link from or to it.
	Links []Link `json:"links"`
	// ServerName is the Matrix server name of the cluster.
	ServerName string `json:"server_name"`
	// AdminToken authorises the admin API (/_planb/admin/v1) of every data
	// center of this run.
	AdminToken string `json:"admin_token"`

	// Path is where the file was read from or written to; RestartDataCenter
	// rewrites it. It is not part of the JSON.
	Path string `json:"-"`
}

// DataCenter is one data center of the dev cluster: one planb process.
type DataCenter struct {
	// Name is the data center's name (dc1, dc2, ...).
	Name string `json:"name"`
	// URL is the base URL of its Matrix client-server API.
	URL string `json:"url"`
	// PID is the process id of its planb process as last started.
	PID int `json:"pid"`
	// DataDir is its data directory (absolute).
	DataDir string `json:"data_dir"`
	// Log is the file its stdout and stderr are appended to.
	Log string `json:"log"`
	// ClusterListen is the real address of its NATS route listener; other
	// data centers reach it only through Links.
	ClusterListen string `json:"cluster_listen"`
	// Args is the full argv (binary first) that starts it again.
	Args []string `json:"args"`
}

// Link is one direction of the connection between two data centers: the
// toxiproxy proxy through which From's NATS server dials To's.
type Link struct {
	// Name is the toxiproxy proxy name, "dc1-to-dc2".
	Name string `json:"name"`
	// From is the data center whose routes dial through this link.
	From string `json:"from"`
	// To is the data center the link leads to.
	To string `json:"to"`
	// Listen is the proxy's listen address (the route From is given).
	Listen string `json:"listen"`
	// Upstream is To's cluster listen address.
	Upstream string `json:"upstream"`
}

// DataCenter returns the data center called name, or false.
func (f *ClusterFile) DataCenter(name string) (DataCenter, bool) {
	i := slices.IndexFunc(f.DataCenters, func(dc DataCenter) bool { return dc.Name == name })
	if i < 0 {
		return DataCenter{}, false
	}
	return f.DataCenters[i], true
}

// LinksOf returns the names of every link from or to the data center called
// name: disable them all to cut it off from the others.
func (f *ClusterFile) LinksOf(name string) []string {
	var out []string
	for _, l := range f.Links {
		if l.From == name || l.To == name {
			out = append(out, l.Name)
		}
	}
	return out
}

// ReadClusterFile reads and parses a cluster.json. It returns an error if
// the file cannot be read or is not a valid cluster file.
func ReadClusterFile(path string) (*ClusterFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read cluster file: %w", err)
	}
	var f ClusterFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("parse cluster file %s: %w", path, err)
	}
	if len(f.DataCenters) == 0 {
		return nil, fmt.Errorf("parse cluster file %s: no data centers", path)
	}
	f.Path = path
	return &f, nil
}

// writeClusterFile writes f to path atomically: a temporary file in the
// same directory, fsynced, then renamed over the old one, so a reader never
// sees half a file.
func writeClusterFile(path string, f *ClusterFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode cluster file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".cluster.json-*")
	if err != nil {
		return fmt.Errorf("write cluster file: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename this is a no-op
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write cluster file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync cluster file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close cluster file: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return fmt.Errorf("chmod cluster file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename cluster file: %w", err)
	}
	return nil
}

// RestartDataCenter starts the data center called name again with its
// recorded Args, detached from the caller: in its own process group and
// without a parent-death signal, so it outlives the tool that restarted it
// (the supervisor of `planb dev` still stops it on Ctrl-C, see Run). Its
// output is appended to its log. It rewrites the cluster file at file.Path
// with the new pid (re-reading it first, so other fields written meanwhile
// survive) and updates file in memory.
//
// It does not wait for the data center to become ready; poll its /ready.
// It returns an error if name is unknown, if the recorded process is still
// running, or if the process cannot be started or the file not written.
// Two tools restarting data centers at the same moment may lose one pid
// update; the dev cluster does not lock the file.
func RestartDataCenter(ctx context.Context, file *ClusterFile, name string) (pid int, err error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("restart %s: %w", name, err)
	}
	if file.Path == "" {
		return 0, fmt.Errorf("restart %s: cluster file has no path; load it with ReadClusterFile", name)
	}
	dc, ok := file.DataCenter(name)
	if !ok {
		return 0, fmt.Errorf("restart %s: no such data center in %s", name, file.Path)
	}
	if len(dc.Args) == 0 {
		return 0, fmt.Errorf("restart %s: no recorded args in %s", name, file.Path)
	}
	if dc.PID > 0 && processAlive(dc.PID) && isOurProcess(dc.PID, dc.Args) {
		return 0, fmt.Errorf("restart %s: still running as pid %d", name, dc.PID)
	}
	cmd, err := startProcess(dc, false)
	if err != nil {
		return 0, fmt.Errorf("restart %s: %w", name, err)
	}
	// Reap it when it exits, so it does not linger as a zombie of a
	// long-running caller (a test); if the caller exits first, init adopts it.
	go func() { _ = cmd.Wait() }()
	pid = cmd.Process.Pid

	disk, err := ReadClusterFile(file.Path)
	if err != nil {
		return pid, fmt.Errorf("restart %s: started as pid %d but %w", name, pid, err)
	}
	for _, f := range []*ClusterFile{disk, file} {
		for i := range f.DataCenters {
			if f.DataCenters[i].Name == name {
				f.DataCenters[i].PID = pid
			}
		}
	}
	if err := writeClusterFile(file.Path, disk); err != nil {
		return pid, fmt.Errorf("restart %s: started as pid %d but %w", name, pid, err)
	}
	return pid, nil
}

// startProcess starts dc's recorded Args with output appended to dc.Log,
// in a new process group. With tied set, the process also gets a
// parent-death signal where the platform has one (see sysProcAttr).
func startProcess(dc DataCenter, tied bool) (*exec.Cmd, error) {
	if err := os.MkdirAll(dc.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	logf, err := os.OpenFile(dc.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child holds its own copy of the descriptor; ours is not needed
	// once it has started.
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== planb dev: starting %s at %s: %q\n", dc.Name, time.Now().Format(time.RFC3339), dc.Args)
	cmd := exec.Command(dc.Args[0], dc.Args[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr(tied)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", dc.Args[0], err)
	}
	return cmd, nil
}

// SignalDataCenter sends sig to the recorded process of data center name,
// after checking that the pid still runs that data center's command (so a
// pid the kernel has since reused is never signalled).
func SignalDataCenter(file *ClusterFile, name string, sig syscall.Signal) error {
	dc, ok := file.DataCenter(name)
	if !ok {
		return fmt.Errorf("signal %s: no such data center in %s", name, file.Path)
	}
	if dc.PID <= 0 || !processAlive(dc.PID) || !isOurProcess(dc.PID, dc.Args) {
		return fmt.Errorf("signal %s: its process (pid %d) is not running", name, dc.PID)
	}
	if err := syscall.Kill(dc.PID, sig); err != nil {
		return fmt.Errorf("signal %s (pid %d) with %v: %w", name, dc.PID, sig, err)
	}
	return nil
}

// StopDataCenter stops data center name gracefully: SIGTERM (the node hands
// its stream leaderships over and drains its connections), then waits until
// the process has exited, SIGKILLing it after grace.
func StopDataCenter(ctx context.Context, file *ClusterFile, name string, grace time.Duration) error {
	if err := SignalDataCenter(file, name, syscall.SIGTERM); err != nil {
		return err
	}
	dc, _ := file.DataCenter(name)
	deadline := time.Now().Add(grace)
	for processAlive(dc.PID) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(dc.PID, syscall.SIGKILL)
			deadline = time.Now().Add(time.Hour)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stop %s: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}
