// Package testutil holds what planb's end-to-end test packages (e2e,
// dctest, devcluster, webclient, bench) share: finding the module, building
// the planb binary they run as real processes, and polling for a condition.
// Only tests import it.
package testutil

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ModuleRoot walks up from the working directory to the directory holding
// go.mod.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("get working dir: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("find module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

// BuildPlanb builds ./cmd/planb into dir and returns the binary's path. The
// error carries the compiler's output.
func BuildPlanb(dir string) (string, error) { return build(dir, false) }

// BuildPlanbRace is BuildPlanb with the race detector in the binary when
// the test itself runs with it (go test -race), so that tests of real
// processes check the server for data races too. Meant for tests with a
// light load: a race-enabled server uses several times the CPU.
func BuildPlanbRace(dir string) (string, error) { return build(dir, Race) }

func build(dir string, race bool) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "planb")
	args := []string{"build", "-o", bin}
	if race {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "./cmd/planb")...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/planb in %s: %w\n%s", root, err, out)
	}
	return bin, nil
}

// MustBuildPlanb is BuildPlanb into a directory of the test's own, failing
// the test when the build fails.
func MustBuildPlanb(t testing.TB) string {
	t.Helper()
	bin, err := BuildPlanb(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// WaitFor polls cond until it returns nil, and fails the test with cond's
// last error when timeout passes first. The poll interval starts at 10 ms
// and grows to 250 ms.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	interval := 10 * time.Millisecond
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s: %v", what, timeout, err)
		}
		time.Sleep(interval) // poll interval, not a wait for an outcome
		interval = min(interval*2, 250*time.Millisecond)
	}
}
