//go:build linux

package capture

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestValidateNetns checks that a netns that exists and is not a network
// namespace is a configuration error, and that network namespaces, and
// paths that do not exist yet, are accepted.
func TestValidateNetns(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		path string
		want string // "" for valid
	}{
		{"/proc/self/ns/net", ""},
		{"/proc/thread-self/ns/net", ""},
		{"/run/netns/go-metro-does-not-exist", ""}, // retried until it exists
		{file, "it is not a namespace file"},
		{t.TempDir(), "it is not a namespace file"},
		{"/dev/null", "it is not a namespace file"},
		{"/proc/self/ns/mnt", "it is a namespace of another kind"},
		{"/proc/self/ns/uts", "it is a namespace of another kind"},
	} {
		cfg := LiveConfig{Interface: "eth0", Netns: tt.path}
		err := cfg.Validate()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("netns %s: %v, want it accepted", tt.path, err)
		case tt.want != "" && (err == nil || !errors.Is(err, ErrNotNetns) || !strings.Contains(err.Error(), tt.want) ||
			!strings.Contains(err.Error(), fmt.Sprintf("invalid `netns` %q: not a network namespace", tt.path))):
			t.Errorf("netns %s: error %v, want ErrNotNetns saying %q", tt.path, err, tt.want)
		}
	}
}

// TestNetnsNotNetnsAtRuntime replaces the namespace with a file after the
// configuration was checked: the capture says the path is not a network
// namespace and names `netns`, instead of retrying "invalid argument".
func TestNetnsNotNetnsAtRuntime(t *testing.T) {
	l, err := NewLive(LiveConfig{Interface: "lo", Netns: "/proc/self/ns/net"})
	if err != nil {
		t.Fatal(err)
	}
	l.cfg.Netns = "/dev/null"
	err = l.open()
	if err == nil {
		t.Fatal("open in /dev/null succeeded")
	}
	for _, want := range []string{"capture on lo: enter network namespace /dev/null: not a network namespace", "check `netns`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if errors.Is(err, ErrPermission) {
		t.Errorf("error %q is ErrPermission", err)
	}
}

// TestNetnsPermission enters network namespaces in a process with
// CAP_NET_RAW alone (the test binary again, as uid 65534): setns needs
// CAP_SYS_ADMIN, and /proc/1/ns/net is not readable. Both errors name
// CAP_SYS_ADMIN and the path, not CAP_NET_RAW.
func TestNetnsPermission(t *testing.T) {
	if path := os.Getenv("GO_METRO_NETNS_CHILD"); path != "" {
		l, err := NewLive(LiveConfig{Interface: "lo", Netns: path})
		if err != nil {
			fmt.Println("NewLive:", err)
			os.Exit(3)
		}
		err = l.open()
		fmt.Printf("errors.Is(ErrPermission)=%v\n%v\n", errors.Is(err, ErrPermission), err)
		os.Exit(0)
	}
	testbed.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	ns := testbed.NewNetNS(t)
	exe := testbed.CopyTestBinary(t, "capture.test")
	for _, path := range []string{ns.Path(), "/proc/1/ns/net"} {
		cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
			"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw",
			exe, "-test.run=^TestNetnsPermission$")
		cmd.Env = append(os.Environ(), "GO_METRO_NETNS_CHILD="+path)
		cmd.Dir = filepath.Dir(exe)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("child: %v\n%s", err, out)
		}
		got := string(out)
		t.Logf("netns %s: %s", path, got)
		for _, want := range []string{"errors.Is(ErrPermission)=true", "capture on lo: ", "network namespace " + path,
			"entering the network namespace " + path + " needs CAP_SYS_ADMIN (setcap cap_net_raw,cap_sys_admin+ep "} {
			if !strings.Contains(got, want) {
				t.Errorf("netns %s: child output lacks %q", path, want)
			}
		}
		if strings.Contains(got, "grant CAP_NET_RAW") {
			t.Errorf("netns %s: child output names CAP_NET_RAW", path)
		}
	}
}
