//go:build linux

package devcluster

import (
	"os"
	"os/exec"
	"testing"
)

func TestProcessAlive(t *testing.T) {
	if !processAlive(os.Getpid()) {
		t.Fatalf("processAlive(own pid) = false")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Skipf("no sleep binary: %v", err)
	}
	pid := cmd.Process.Pid
	if !processAlive(pid) {
		t.Errorf("processAlive(running child) = false")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if processAlive(pid) {
		t.Errorf("processAlive(reaped child) = true")
	}
}

func TestTaskRunning(t *testing.T) {
	for stat, want := range map[string]bool{
		"12 (planb) S 1 12 12 0":       true,
		"12 (planb) R 1 12 12 0":       true,
		"12 (plan b) (x)) D 1 12 12 0": true,
		"12 (planb) Z 1 12 12 0":       false,
		"12 (planb) X 1 12 12 0":       false,
		"12 (planb":                    true, // unreadable: assume it runs
	} {
		if got := taskRunning([]byte(stat)); got != want {
			t.Errorf("taskRunning(%q) = %v, want %v", stat, got, want)
		}
	}
}
