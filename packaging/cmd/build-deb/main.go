// Command build-deb builds the Debian package of the go-metro daemon,
// go-metro_VERSION_ARCH.deb, with nfpm:
//
//	go -C packaging run ./cmd/build-deb [-version 1.2.3] [-arch amd64] [-o DIR]
//
// It builds cmd/go-metro (static, CGO_ENABLED=0, -trimpath) for linux/ARCH
// and packages:
//
//	/usr/bin/go-metro                          the daemon
//	/usr/lib/systemd/system/go-metro.service   packaging/go-metro.service
//	/etc/go-metro/go-metro.yaml.example        conf.d/go_metro.d/conf.yaml.example
//
// with the maintainer scripts of packaging/deb: postinst creates the
// go-metro system user and grants CAP_NET_RAW to the binary on every
// install and upgrade.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
)

// packagingModule is the module path of this command's module.
const packagingModule = "github.com/go-metro/go-metro/packaging"

// options are the command line's.
type options struct {
	version string // Debian package version, e.g. 1.2.3 or 0.0.0~dev
	arch    string // GOARCH
	outDir  string
	repo    string // the go-metro repository
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "build-deb: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("build-deb", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.version, "version", "", "package version (default: the vX.Y.Z tag of HEAD, else 0.0.0~dev)")
	fs.StringVar(&o.arch, "arch", runtime.GOARCH, "GOARCH of the binary and the package")
	fs.StringVar(&o.outDir, "o", "", "directory of the .deb (default: the repository's root)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	repo, err := repoRoot()
	if err != nil {
		return err
	}
	o.repo = repo
	if o.outDir == "" {
		o.outDir = repo
	}
	if o.version == "" {
		o.version = gitVersion(repo)
	}
	path, err := build(o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, path)
	return nil
}

// build builds the binary and the package, and returns the package's path.
func build(o options) (string, error) {
	work, err := os.MkdirTemp("", "go-metro-deb-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)

	bin := filepath.Join(work, "go-metro")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "./cmd/go-metro")
	cmd.Dir = o.repo
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+o.arch, "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build go-metro for linux/%s: %v\n%s", o.arch, err, out)
	}

	pkgDir := filepath.Join(o.repo, "packaging")
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:       "go-metro",
		Arch:       o.arch,
		Platform:   "linux",
		Version:    o.version,
		Section:    "net",
		Priority:   "optional",
		Maintainer: "go-metro maintainers <go-metro@users.noreply.github.com>",
		Homepage:   "https://github.com/go-metro/go-metro",
		Description: "passive TCP round-trip-time monitoring beside the Datadog Agent\n" +
			"go-metro captures the TCP segments a host sends and receives, and\n" +
			"reports the round-trip time per remote peer to the Datadog Agent's\n" +
			"DogStatsD. It never sends a packet.",
		Overridables: nfpm.Overridables{
			// setcap and useradd, which postinst runs.
			Depends: []string{"libcap2-bin", "passwd"},
			Contents: files.Contents{
				{Source: bin, Destination: "/usr/bin/go-metro", FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: filepath.Join(pkgDir, "go-metro.service"), Destination: "/usr/lib/systemd/system/go-metro.service", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
				{Destination: "/etc/go-metro", Type: files.TypeDir, FileInfo: &files.ContentFileInfo{Mode: 0o755}},
				{Source: filepath.Join(o.repo, "conf.d/go_metro.d/conf.yaml.example"), Destination: "/etc/go-metro/go-metro.yaml.example", FileInfo: &files.ContentFileInfo{Mode: 0o644}},
			},
			Scripts: nfpm.Scripts{
				PostInstall: filepath.Join(pkgDir, "deb/postinst"),
				PreRemove:   filepath.Join(pkgDir, "deb/prerm"),
				PostRemove:  filepath.Join(pkgDir, "deb/postrm"),
			},
		},
	})
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(o.outDir, deb.Default.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := deb.Default.Package(info, f); err != nil {
		f.Close()
		os.Remove(path)
		return "", fmt.Errorf("package %s: %w", path, err)
	}
	return path, f.Close()
}

// repoRoot returns the go-metro repository: the parent of this module,
// which the working directory must be in.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Path}} {{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("find the packaging module: go list -m: %w", err)
	}
	path, dir, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	if path != packagingModule {
		return "", errors.New("run it in the packaging module: go -C packaging run ./cmd/build-deb")
	}
	return filepath.Dir(dir), nil
}

// gitVersion returns X.Y.Z when HEAD is tagged vX.Y.Z, else 0.0.0~dev.
func gitVersion(repo string) string {
	cmd := exec.Command("git", "describe", "--tags", "--exact-match", "--match", "v[0-9]*", "HEAD")
	cmd.Dir = repo
	if out, err := cmd.Output(); err == nil {
		return strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
	}
	return "0.0.0~dev"
}
