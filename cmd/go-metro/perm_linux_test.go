//go:build linux

package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestCheckWithoutCapNetRaw runs `go-metro check` with a real capture in
// a process without CAP_NET_RAW (the test binary again, as uid 65534 with
// no capability): the capture cannot start, so it exits 1 at once and
// says which capability to grant, as its help promises.
func TestCheckWithoutCapNetRaw(t *testing.T) {
	if os.Getenv("GO_METRO_CHECK_CHILD") == "1" {
		os.Exit(run([]string{"check", "--interface", "lo", "--interval", "100ms"}, os.Stdout, os.Stderr))
	}
	testbed.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	exe := testbed.CopyTestBinary(t, "go-metro.test")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "-test.run=^TestCheckWithoutCapNetRaw$")
	cmd.Env = append(os.Environ(), "GO_METRO_CHECK_CHILD=1")
	cmd.Dir = filepath.Dir(exe)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit: %v, want status 1\n%s", err, out)
	}
	for _, want := range []string{"=== Start ===", "Service check go_metro.can_capture: CRITICAL: capture on lo: operation not permitted: grant CAP_NET_RAW",
		"go-metro check: instances[0]: go_metro.can_capture is CRITICAL"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "Run 1 of 1") {
		t.Errorf("it ran on after the capture could not start:\n%s", out)
	}
}
