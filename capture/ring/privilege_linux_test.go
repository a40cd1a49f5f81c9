//go:build linux

package ring_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// privilegeChildEnv tells a child process of TestPrivileges which part it
// plays: "none" (no capability) or "net_raw" (CAP_NET_RAW alone).
const privilegeChildEnv = "GO_METRO_RING_PRIVILEGE_CHILD"

// TestPrivileges runs this test binary again in a network namespace, as
// uid 65534 with no_new_privs, once with no capability and once with
// CAP_NET_RAW alone (as packaging/go-metro.service runs the daemon). The
// first must fail to open a ring with ErrPermission, the second must open
// one, in a fanout group too, and read from it.
func TestPrivileges(t *testing.T) {
	if role := os.Getenv(privilegeChildEnv); role != "" {
		privilegeChild(t, role)
		return
	}
	ns := testbed.NewNetNS(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	exe := testbed.CopyTestBinary(t, "ring.test")
	for _, tc := range []struct{ role, caps string }{{"none", "-all"}, {"net_raw", "-all,+net_raw"}} {
		t.Run(tc.role, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name(), setpriv,
				"--reuid=65534", "--regid=65534", "--clear-groups",
				"--inh-caps="+tc.caps, "--ambient-caps="+tc.caps, "--bounding-set="+tc.caps, "--no-new-privs",
				exe, "-test.run=^TestPrivileges$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), privilegeChildEnv+"="+tc.role)
			cmd.Dir = filepath.Dir(exe)
			out, err := cmd.CombinedOutput()
			if err != nil || !strings.Contains(string(out), "\n--- PASS: TestPrivileges") {
				t.Fatalf("child (%s): %v\n%s", tc.role, err, out)
			}
			for _, l := range strings.Split(string(out), "\n") {
				if i := strings.Index(l, "child: "); i >= 0 {
					t.Log(l[i:])
				}
			}
		})
	}
}

// privilegeChild is the child's part of TestPrivileges.
func privilegeChild(t *testing.T, role string) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "Uid:") || strings.HasPrefix(l, "CapEff:") {
			ids = append(ids, strings.Join(strings.Fields(l), " "))
		}
	}
	t.Logf("child: %s", strings.Join(ids, "; "))
	r, err := ring.Open(ring.Config{Interface: "lo", Fanout: ring.FanoutNew})
	switch role {
	case "none":
		if err == nil {
			r.Close()
			t.Fatal("Open succeeded without CAP_NET_RAW")
		}
		if !errors.Is(err, ring.ErrPermission) || !errors.Is(err, unix.EPERM) {
			t.Fatalf("Open: %v, want ErrPermission and EPERM", err)
		}
		t.Logf("child: Open: %v", err)
	case "net_raw":
		if err != nil {
			t.Fatalf("Open with CAP_NET_RAW: %v", err)
		}
		defer r.Close()
		if _, err := r.NextBlock(10 * time.Millisecond); err != ring.ErrTimeout {
			t.Fatalf("NextBlock: %v, want ErrTimeout on an idle loopback", err)
		}
		var c ring.Counters
		if err := r.ReadStats(&c); err != nil {
			t.Fatal(err)
		}
		t.Logf("child: opened a ring on lo in fanout group %d, counters %+v", r.FanoutGroup(), c)
	default:
		t.Fatalf("unknown role %q", role)
	}
}
