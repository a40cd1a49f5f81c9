package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// The packages the tests build, once: versions 1.0.0 and 1.0.1, so that
// installing the second upgrades the first.
var (
	debOnce sync.Once
	debDir  string
	debErr  error
	debs    = map[string]string{} // version → path
)

func TestMain(m *testing.M) {
	code := m.Run()
	if debDir != "" {
		os.RemoveAll(debDir)
	}
	os.Exit(code)
}

// packages builds the test packages and returns the one of version.
func packages(t *testing.T, version string) string {
	t.Helper()
	debOnce.Do(func() {
		debDir, debErr = os.MkdirTemp("", "go-metro-deb-test-")
		if debErr != nil {
			return
		}
		var repo string
		if repo, debErr = repoRoot(); debErr != nil {
			return
		}
		for _, v := range []string{"1.0.0", "1.0.1"} {
			var path string
			if path, debErr = build(options{version: v, arch: runtime.GOARCH, outDir: debDir, repo: repo}); debErr != nil {
				return
			}
			debs[v] = path
		}
	})
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debs[version]
}

// TestDebPackage builds the package and checks its control fields, its
// files and its maintainer scripts with dpkg-deb.
func TestDebPackage(t *testing.T) {
	requireTools(t, "dpkg-deb")
	deb := packages(t, "1.0.0")
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("go-metro_1.0.0_%s.deb", debArch()); filepath.Base(deb) != want {
		t.Errorf("package file %s, want %s", filepath.Base(deb), want)
	}

	t.Run("control", func(t *testing.T) {
		fields := controlFields(command(t, "dpkg-deb", "-f", deb))
		for k, want := range map[string]string{
			"Package":      "go-metro",
			"Version":      "1.0.0",
			"Architecture": debArch(),
			"Depends":      "libcap2-bin, passwd",
			"Section":      "net",
		} {
			if fields[k] != want {
				t.Errorf("%s: %q, want %q", k, fields[k], want)
			}
		}
		info := command(t, "dpkg-deb", "-I", deb)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			if !regexp.MustCompile(`\*\s+` + s + `\s`).MatchString(info) {
				t.Errorf("dpkg-deb -I does not list the executable maintainer script %s:\n%s", s, info)
			}
		}
	})

	t.Run("files", func(t *testing.T) {
		// dpkg-deb -c: mode owner/group size date time path
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(command(t, "dpkg-deb", "-c", deb)), "\n") {
			f := strings.Fields(line)
			if len(f) < 6 {
				t.Fatalf("dpkg-deb -c line %q", line)
			}
			got[strings.TrimPrefix(f[len(f)-1], ".")] = f[0] + " " + f[1]
		}
		for path, want := range map[string]string{
			"/usr/bin/go-metro":                        "-rwxr-xr-x root/root",
			"/usr/lib/systemd/system/go-metro.service": "-rw-r--r-- root/root",
			"/etc/go-metro/":                           "drwxr-xr-x root/root",
			"/etc/go-metro/go-metro.yaml.example":      "-rw-r--r-- root/root",
		} {
			if got[path] != want {
				t.Errorf("%s: %q, want %q", path, got[path], want)
			}
		}
		if _, ok := got["/etc/go-metro/go-metro.yaml"]; ok {
			t.Error("the package ships /etc/go-metro/go-metro.yaml: the service would start unconfigured")
		}
	})

	t.Run("maintainer scripts", func(t *testing.T) {
		dir := t.TempDir()
		command(t, "dpkg-deb", "-e", deb, dir)
		for _, s := range []string{"postinst", "prerm", "postrm"} {
			got, err := os.ReadFile(filepath.Join(dir, s))
			if err != nil {
				t.Fatal(err)
			}
			if want := readFile(t, filepath.Join(repo, "packaging/deb", s)); string(got) != want {
				t.Errorf("%s differs from packaging/deb/%s", s, s)
			}
			if fi, _ := os.Stat(filepath.Join(dir, s)); fi.Mode().Perm() != 0o755 {
				t.Errorf("%s mode %v, want 0755", s, fi.Mode().Perm())
			}
		}
	})

	t.Run("unit and binary", func(t *testing.T) {
		root := t.TempDir()
		command(t, "dpkg-deb", "-x", deb, root)
		unit := readFile(t, filepath.Join(root, "usr/lib/systemd/system/go-metro.service"))
		if unit != readFile(t, filepath.Join(repo, "packaging/go-metro.service")) {
			t.Error("the package's unit differs from packaging/go-metro.service")
		}
		keys := unitKeys(unit)
		if got := keys["User"]; got != "go-metro" {
			t.Errorf("unit User=%s, want go-metro", got)
		}
		if got, want := keys["ExecStart"], "/usr/bin/go-metro run -c /etc/go-metro/go-metro.yaml"; got != want {
			t.Errorf("unit ExecStart=%s, want %s", got, want)
		}
		if got, want := keys["ConditionPathExists"], "/etc/go-metro/go-metro.yaml"; got != want {
			t.Errorf("unit ConditionPathExists=%s, want %s", got, want)
		}
		example := readFile(t, filepath.Join(root, "etc/go-metro/go-metro.yaml.example"))
		if example != readFile(t, filepath.Join(repo, "conf.d/go_metro.d/conf.yaml.example")) {
			t.Error("/etc/go-metro/go-metro.yaml.example differs from conf.d/go_metro.d/conf.yaml.example")
		}
		if runtime.GOOS == "linux" {
			if help := command(t, filepath.Join(root, "usr/bin/go-metro"), "help"); !strings.Contains(help, "go-metro run -c FILE") {
				t.Errorf("go-metro help:\n%s", help)
			}
		}
	})
}

// TestDebPostinst runs the package's postinst against a temporary root
// (DPKG_ROOT), as for a first install, again, and as for an upgrade after
// dpkg unpacked a new binary: each time the binary has CAP_NET_RAW, and
// the go-metro user, which the unit runs as, exists once. The installed
// binary captures on lo both as the unit runs it and by hand.
func TestDebPostinst(t *testing.T) {
	requireRoot(t)
	requireTools(t, "dpkg-deb", "setcap", "getcap", "useradd", "systemctl", "setpriv")
	deb := packages(t, "1.0.0")
	root := newRoot(t)
	command(t, "dpkg-deb", "-x", deb, root)
	ctl := t.TempDir()
	command(t, "dpkg-deb", "-e", deb, ctl)
	postinst := func(args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(ctl, "postinst"), args...)
		cmd.Env = append(os.Environ(), "DPKG_ROOT="+root)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("postinst %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	bin := filepath.Join(root, "usr/bin/go-metro")

	// First install.
	checkCap(t, root, bin, false)
	captureOnLo(t, bin, "by hand, before postinst", false, "--reuid=64000", "--regid=64000", "--clear-groups")
	postinst("configure")
	checkCap(t, root, bin, true)
	checkUser(t, root)
	checkEnabled(t, root, true)
	uid, gid := userID(t, root, "go-metro"), groupID(t, root, "go-metro")
	// As the unit runs it: its user, CAP_NET_RAW ambient and bounding,
	// no_new_privs (under which the file capability adds nothing new).
	captureOnLo(t, bin, "as the unit runs it", true,
		fmt.Sprintf("--reuid=%d", uid), fmt.Sprintf("--regid=%d", gid), "--clear-groups",
		"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", "--no-new-privs")
	// By hand, by a member of the group go-metro: the file capability.
	captureOnLo(t, bin, "by hand, in the group go-metro", true,
		"--reuid=64000", "--regid=64000", fmt.Sprintf("--groups=%d", gid))

	// Again: nothing twice.
	postinst("configure")
	checkUser(t, root)

	// Upgrade: dpkg unpacks the new binary, which has no capability;
	// postinst configure OLD-VERSION grants it again.
	command(t, "dpkg-deb", "-x", packages(t, "1.0.1"), root)
	checkCap(t, root, bin, false)
	postinst("configure", "1.0.0")
	checkCap(t, root, bin, true)
	checkUser(t, root)
}

// TestDebInstall installs the package with dpkg into a temporary root
// (dpkg --root, the maintainer scripts run without chroot), upgrades it,
// and removes it.
func TestDebInstall(t *testing.T) {
	requireRoot(t)
	requireTools(t, "dpkg", "dpkg-deb", "setcap", "getcap", "useradd", "systemctl")
	root := newRoot(t)
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers"} {
		mkdir(t, filepath.Join(admin, d))
	}
	for _, f := range []string{"status", "available"} {
		writeFile(t, filepath.Join(admin, f), "")
	}
	// libcap2-bin and passwd are the host's; the empty root has none.
	dpkg := func(args ...string) string {
		t.Helper()
		return command(t, "dpkg", append([]string{"--root=" + root, "--force-script-chrootless", "--force-depends"}, args...)...)
	}
	bin := filepath.Join(root, "usr/bin/go-metro")

	dpkg("-i", packages(t, "1.0.0"))
	checkCap(t, root, bin, true)
	checkUser(t, root)
	checkEnabled(t, root, true)
	if got := strings.TrimSpace(command(t, "dpkg-query", "--root="+root, "-W", "-f=${Version} ${Status}", "go-metro")); got != "1.0.0 install ok installed" {
		t.Errorf("dpkg-query: %q", got)
	}

	// The upgrade, in its two steps: the new binary has no capability
	// until postinst configure 1.0.0 grants it.
	dpkg("--unpack", packages(t, "1.0.1"))
	checkCap(t, root, bin, false)
	dpkg("--configure", "go-metro")
	checkCap(t, root, bin, true)
	checkUser(t, root)
	checkEnabled(t, root, true)
	if got := strings.TrimSpace(command(t, "dpkg-query", "--root="+root, "-W", "-f=${Version} ${Status}", "go-metro")); got != "1.0.1 install ok installed" {
		t.Errorf("dpkg-query after the upgrade: %q", got)
	}

	// Removal: the files and the enablement go, the user stays.
	dpkg("-r", "go-metro")
	if _, err := os.Stat(bin); !os.IsNotExist(err) {
		t.Errorf("%s after dpkg -r: %v", bin, err)
	}
	checkEnabled(t, root, false)
	checkUser(t, root)
}

// newRoot returns a root directory whose /etc has passwd, group, shadow
// and gshadow with root alone (no password), for useradd --prefix.
func newRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	// Traversable, for the binary run as other users.
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(t, filepath.Join(root, "etc"))
	for f, line := range map[string]string{
		"passwd":  "root:x:0:0:root:/root:/bin/sh",
		"group":   "root:x:0:",
		"shadow":  "root:*:20000:0:99999:7:::",
		"gshadow": "root:*::",
	} {
		writeFile(t, filepath.Join(root, "etc", f), line+"\n")
	}
	return root
}

// checkCap checks whether bin has exactly cap_net_raw=ep. With it, bin
// must be root:go-metro 0750: whoever executes it gets the capability.
func checkCap(t *testing.T, root, bin string, want bool) {
	t.Helper()
	caps := strings.TrimSpace(command(t, "getcap", bin))
	has := strings.HasSuffix(caps, "cap_net_raw=ep")
	if has != want {
		t.Errorf("getcap %s: %q, want cap_net_raw=ep: %v", bin, caps, want)
	}
	if !has {
		return
	}
	fi, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o750 || st.Uid != 0 || st.Gid != groupID(t, root, "go-metro") {
		t.Errorf("%s: mode %v, owner %d:%d; want 0750 root:go-metro", bin, fi.Mode().Perm(), st.Uid, st.Gid)
	}
}

// captureOnLo runs bin check on lo under setpriv with args, and checks
// whether it can capture. Three runs: a capture that opens later than the
// first run waits for (a loaded machine) is "starting" there, not an error.
func captureOnLo(t *testing.T, bin, how string, can bool, args ...string) {
	t.Helper()
	args = append(args, bin, "check", "--interface", "lo", "--runs", "3", "--interval", "300ms")
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("setpriv", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("setpriv %s: %v", strings.Join(args, " "), err)
	}
	got := stdout.String() + stderr.String()
	denied := strings.Contains(got, "operation not permitted: grant CAP_NET_RAW")
	capturing := strings.Contains(got, "interface lo, capture capturing")
	// go-metro check exits 1 when the capture cannot start, 0 otherwise.
	if can && (denied || !capturing || err != nil) {
		t.Errorf("go-metro check %s: cannot capture (%v):\n%s", how, err, got)
	}
	if !can && (!denied || capturing || exit == nil || exit.ExitCode() != 1) {
		t.Errorf("go-metro check %s: captures, or fails for another reason than the permission, or does not exit 1 (%v):\n%s", how, err, got)
	}
}

// userID returns the uid of user in root's /etc/passwd.
func userID(t *testing.T, root, user string) uint32 { return etcID(t, root, "passwd", user) }

// groupID returns the gid of group in root's /etc/group.
func groupID(t *testing.T, root, group string) uint32 { return etcID(t, root, "group", group) }

// etcID returns the number, the third field, of name in root's /etc/file.
func etcID(t *testing.T, root, file, name string) uint32 {
	t.Helper()
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "etc", file)), "\n") {
		if f := strings.Split(l, ":"); len(f) > 2 && f[0] == name {
			var id uint32
			fmt.Sscan(f[2], &id)
			return id
		}
	}
	t.Fatalf("no %s in %s/etc/%s", name, root, file)
	return 0
}

// checkUser checks that root has one go-metro system user and group, with
// no login shell, and that the unit runs as that user.
func checkUser(t *testing.T, root string) {
	t.Helper()
	var users []string
	for _, l := range strings.Split(readFile(t, filepath.Join(root, "etc/passwd")), "\n") {
		if strings.HasPrefix(l, "go-metro:") {
			users = append(users, l)
		}
	}
	if len(users) != 1 {
		t.Fatalf("go-metro users in /etc/passwd: %q, want 1", users)
	}
	f := strings.Split(users[0], ":")
	var uid, gid int
	fmt.Sscan(f[2], &uid)
	fmt.Sscan(f[3], &gid)
	if uid == 0 || uid >= 1000 || f[6] != "/usr/sbin/nologin" || f[5] != "/nonexistent" {
		t.Errorf("go-metro user %q: want a system uid (1 to 999), home /nonexistent, shell /usr/sbin/nologin", users[0])
	}
	if n := strings.Count(readFile(t, filepath.Join(root, "etc/group")), fmt.Sprintf("go-metro:x:%d:", gid)); n != 1 {
		t.Errorf("group go-metro with gid %d: %d in /etc/group, want 1", gid, n)
	}
	if unit := filepath.Join(root, "usr/lib/systemd/system/go-metro.service"); fileExists(unit) {
		keys := unitKeys(readFile(t, unit))
		if keys["User"] != "go-metro" || keys["Group"] != "go-metro" {
			t.Errorf("the unit runs as User=%s Group=%s, want go-metro", keys["User"], keys["Group"])
		}
	}
}

// checkEnabled checks whether the unit is enabled in root.
func checkEnabled(t *testing.T, root string, want bool) {
	t.Helper()
	link := filepath.Join(root, "etc/systemd/system/multi-user.target.wants/go-metro.service")
	target, err := os.Readlink(link)
	if got := err == nil; got != want {
		t.Errorf("%s enabled: %v, want %v (%v)", link, got, want, err)
	}
	if err == nil && target != "/usr/lib/systemd/system/go-metro.service" {
		t.Errorf("%s -> %s", link, target)
	}
}

// unitKeys returns the Key=Value lines of a systemd unit.
func unitKeys(unit string) map[string]string {
	keys := map[string]string{}
	s := bufio.NewScanner(strings.NewReader(unit))
	for s.Scan() {
		l := strings.TrimSpace(s.Text())
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(l, "#") {
			keys[k] = v
		}
	}
	return keys
}

// controlFields parses the output of dpkg-deb -f.
func controlFields(s string) map[string]string {
	fields := map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		if k, v, ok := strings.Cut(l, ": "); ok && !strings.HasPrefix(l, " ") {
			fields[k] = v
		}
	}
	return fields
}

// debArch is the Debian name of GOARCH.
func debArch() string {
	switch runtime.GOARCH {
	case "386":
		return "i386"
	case "ppc64le":
		return "ppc64el"
	}
	return runtime.GOARCH
}

// requireRoot skips the test without root, or fails when CI is "true", so
// that it never silently stops running in CI.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the test needs root (setcap, dpkg --root); CI=true, so it fails instead of skipping")
	}
	t.Skip("needs root (setcap, dpkg --root): run it as root")
}

// requireTools skips the test when a tool is missing, or fails when CI is
// "true".
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	slices.Sort(missing)
	msg := fmt.Sprintf("%s not in PATH: install dpkg, libcap2-bin, passwd and systemd (.ci/run does)", strings.Join(missing, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + "; CI=true, so the test fails instead of skipping")
	}
	t.Skip(msg)
}

func command(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
