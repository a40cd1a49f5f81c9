package testbed

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// ErrNotSupported is wrapped by the errors of functions that cannot work on
// the running operating system.
var ErrNotSupported = errors.New("not supported")

// Capability bits, from linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
)

// RequireRoot skips the test unless the process can build a test bed: Linux,
// CAP_NET_ADMIN and CAP_SYS_ADMIN (root has both), and the ip command of
// iproute2. When the environment variable CI is "true", it fails the test
// instead of skipping it, so that privileged tests never silently stop
// running in CI.
//
// Every helper of this package that takes a testing.TB calls it first.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	guard(tb, missingRequirement(), os.Getenv("CI") == "true")
}

// guard skips or, in CI, fails tb if there is a problem.
func guard(tb testing.TB, problem string, ci bool) {
	tb.Helper()
	switch {
	case problem == "":
	case ci:
		tb.Fatalf("testbed: %s (CI=true, so this fails instead of skipping)", problem)
	default:
		tb.Skipf("testbed: %s; run as root, for example: go test -exec sudo ./internal/testbed/", problem)
	}
}

// missingRequirement returns what prevents building a test bed, or "".
func missingRequirement() string {
	if runtime.GOOS != "linux" {
		return "network namespaces need Linux, not " + runtime.GOOS
	}
	caps, err := effectiveCaps()
	switch {
	case err != nil && os.Geteuid() != 0:
		return fmt.Sprintf("not root and cannot read capabilities: %v", err)
	case err == nil && (caps&(1<<capNetAdmin) == 0 || caps&(1<<capSysAdmin) == 0):
		return "need CAP_NET_ADMIN and CAP_SYS_ADMIN"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command is missing: install iproute2"
	}
	return ""
}

// effectiveCaps returns the CapEff mask of this process.
func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("no CapEff line in /proc/self/status")
}
