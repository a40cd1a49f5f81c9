package agent_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/format"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	module           = "github.com/go-metro/go-metro"
	adapterRel       = "pkg/collector/corechecks/net/gometro/gometro.go"
	registryRel      = "pkg/commonchecks/corechecks.go"
	adapterImport    = "\t\"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/gometro\"\n"
	registerCall     = "\tcorecheckLoader.RegisterCheck(gometro.CheckName, gometro.Factory())\n"
	buildRel         = "pkg/collector/corechecks/net/gometro/BUILD.bazel"
	registryBuildRel = "pkg/commonchecks/BUILD.bazel"
	gometroTarget    = "//pkg/collector/corechecks/net/gometro"
	exampleRel       = "cmd/agent/dist/conf.d/go_metro.d/conf.yaml.example"
)

// TestAdapterSource checks agent/go_metro.go, which cannot be compiled
// here: it must stay out of this module's build, parse, and be gofmt-clean
// (as gofmt -e -l checks).
func TestAdapterSource(t *testing.T) {
	src, err := os.ReadFile("go_metro.go")
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := bytes.Cut(src, []byte("\n")); string(first) != "//go:build ignore" {
		t.Errorf("first line of go_metro.go = %q, want //go:build ignore", first)
	}
	formatted, err := format.Source(src)
	if err != nil {
		t.Fatalf("go_metro.go does not parse: %v", err)
	}
	if !bytes.Equal(formatted, src) {
		t.Error("go_metro.go is not gofmt-formatted: run gofmt -w agent/go_metro.go")
	}
}

// TestInstall runs install.sh twice on a fake datadog-agent checkout
// (testdata/fakeagent) and checks the files it writes, that the second run
// changes nothing, and that the result builds and vets against the stubs of
// the Agent's API: the adapter's signatures match theirs. Then it runs the
// installed adapter against the stubs (testdata/gometro_test.go).
func TestInstall(t *testing.T) {
	tests := []struct {
		name     string
		provider bool // the checkout's Configure takes the config provider (Agent 7.78+)
		bazel    bool // the checkout has BUILD.bazel files
	}{
		{name: "current", provider: true, bazel: true},
		{name: "before-7.78", provider: false, bazel: true},
		{name: "without-bazel", provider: true, bazel: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireTools(t)
			repo := repoRoot(t)
			agent := fakeCheckout(t, tt.provider)
			if !tt.bazel {
				remove(t, filepath.Join(agent, registryBuildRel))
				remove(t, filepath.Join(agent, "pkg/collector/corechecks/net/ntp/BUILD.bazel"))
			}
			registryBuild, _ := os.ReadFile(filepath.Join(agent, registryBuildRel))

			runInstall(t, agent)
			first := snapshot(t, agent)
			runInstall(t, agent)
			if diff := cmp.Diff(first, snapshot(t, agent)); diff != "" {
				t.Errorf("a second run changed the checkout (-first +second):\n%s", diff)
			}

			checkAdapter(t, repo, first[adapterRel], tt.provider)
			checkRegistry(t, first[registryRel])
			checkGoMod(t, agent, repo)
			checkExample(t, repo, first[exampleRel])
			if tt.bazel {
				checkBuild(t, agent, first[adapterRel], first[buildRel])
				checkRegistryBuild(t, string(registryBuild), first[registryBuildRel])
			} else if _, ok := first[buildRel]; ok {
				t.Errorf("install.sh wrote %s in a checkout without BUILD.bazel files", buildRel)
			}

			// The installed adapter compiles against the stubs, and the
			// registration compiles with it.
			goCmd(t, agent, "vet", "./...")
			// go vet may add go-metro's requirements to go.mod; running
			// the script again still adds nothing twice.
			runInstall(t, agent)
			checkRegistry(t, readFile(t, filepath.Join(agent, registryRel)))
			checkGoMod(t, agent, repo)
			goCmd(t, agent, "build", "./...")

			// The adapter runs: registered, configured, one run, cancel.
			test := readFile(t, "testdata/gometro_test.go")
			if !tt.provider {
				test = strings.Replace(test, ", source, provider)", ", source)", 1)
			}
			writeFile(t, filepath.Join(agent, filepath.Dir(adapterRel), "gometro_test.go"), test)
			goCmd(t, agent, "test", "-count=1", "./"+filepath.Dir(adapterRel))
		})
	}
}

// TestInstallRejects checks that install.sh refuses, with a clear message
// and without changing anything, a directory that is not a checkout it
// knows.
func TestInstallRejects(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{
			name:  "no go.mod",
			spoil: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "go.mod")) },
			want:  "is not a datadog-agent checkout: it has no go.mod",
		},
		{
			name: "other module",
			spoil: func(t *testing.T, dir string) {
				writeFile(t, filepath.Join(dir, "go.mod"), "module example.com/other\n\ngo 1.26.0\n")
			},
			want: "its go.mod is module example.com/other, want github.com/DataDog/datadog-agent",
		},
		{
			name:  "no registration file",
			spoil: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, registryRel)) },
			want:  "pkg/commonchecks/corechecks.go, where core checks are registered, is missing",
		},
		{
			name: "no RegisterCheck call",
			spoil: func(t *testing.T, dir string) {
				p := filepath.Join(dir, registryRel)
				writeFile(t, p, strings.ReplaceAll(readFile(t, p), "corecheckLoader.RegisterCheck(", "corecheckLoader.Register("))
			},
			want: "found no RegisterCheck call to add ours after",
		},
		{
			name:  "no pkg/util/option",
			spoil: func(t *testing.T, dir string) { remove(t, filepath.Join(dir, "pkg/util/option")) },
			want:  "older than the Agent API the adapter supports (no pkg/util/option)",
		},
		{
			name: "CommonConfigure with digest",
			spoil: func(t *testing.T, dir string) {
				replaceAll(t, filepath.Join(dir, "pkg/collector/corechecks/checkbase.go"),
					"CommonConfigure(senderManager sender.SenderManager, initConfig",
					"CommonConfigure(integrationConfigDigest uint64, initConfig")
			},
			want: "CommonConfigure takes the config digest",
		},
		{
			name: "BUILD.bazel without deps",
			spoil: func(t *testing.T, dir string) {
				p := filepath.Join(dir, registryBuildRel)
				writeFile(t, p, strings.Replace(readFile(t, p), "    deps = [\n", "    deps = DEPS + [\n", 1))
			},
			want: "pkg/commonchecks/BUILD.bazel: found no deps list in its go_library: add \"//pkg/collector/corechecks/net/gometro\" to it by hand",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			requireTools(t)
			agent := fakeCheckout(t, true)
			tt.spoil(t, agent)
			goMod, _ := os.ReadFile(filepath.Join(agent, "go.mod"))
			registry, _ := os.ReadFile(filepath.Join(agent, registryRel))
			registryBuild, _ := os.ReadFile(filepath.Join(agent, registryBuildRel))
			out, err := install(agent)
			if err == nil {
				t.Fatalf("install.sh succeeded, want an error containing %q; output:\n%s", tt.want, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("install.sh output does not contain %q:\n%s", tt.want, out)
			}
			for _, rel := range []string{adapterRel, buildRel, exampleRel} {
				if _, err := os.Stat(filepath.Join(agent, rel)); err == nil {
					t.Errorf("install.sh wrote %s before failing", rel)
				}
			}
			if got, _ := os.ReadFile(filepath.Join(agent, "go.mod")); !bytes.Equal(got, goMod) {
				t.Errorf("install.sh changed go.mod before failing:\n%s", got)
			}
			if got, _ := os.ReadFile(filepath.Join(agent, registryRel)); !bytes.Equal(got, registry) {
				t.Errorf("install.sh changed %s before failing", registryRel)
			}
			if got, _ := os.ReadFile(filepath.Join(agent, registryBuildRel)); !bytes.Equal(got, registryBuild) {
				t.Errorf("install.sh changed %s before failing", registryBuildRel)
			}
		})
	}
}

// requireTools skips the test without bash or go in PATH; when CI is
// "true" it fails instead, so the test never silently stops running in CI.
func requireTools(tb testing.TB) {
	tb.Helper()
	for _, tool := range []string{"bash", "go"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") == "true" {
				tb.Fatalf("%s is not in PATH (CI=true, so this fails instead of skipping)", tool)
			}
			tb.Skipf("%s is not in PATH: install it to test install.sh", tool)
		}
	}
}

func repoRoot(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// fakeCheckout copies testdata/fakeagent to a temporary directory with a
// go.mod of module github.com/DataDog/datadog-agent and this module's
// go.sum. Without provider, the stubs take the form of Agents before 7.78,
// whose Configure and CommonConfigure have no provider argument.
func fakeCheckout(tb testing.TB, provider bool) string {
	tb.Helper()
	dir := tb.TempDir()
	if err := os.CopyFS(dir, os.DirFS("testdata/fakeagent")); err != nil {
		tb.Fatal(err)
	}
	writeFile(tb, filepath.Join(dir, "go.mod"), "module github.com/DataDog/datadog-agent\n\ngo 1.26.0\n")
	writeFile(tb, filepath.Join(dir, "go.sum"), readFile(tb, filepath.Join(repoRoot(tb), "go.sum")))
	if !provider {
		base := filepath.Join(dir, "pkg/collector/corechecks/checkbase.go")
		replaceAll(tb, base, "source string, provider string) error", "source string) error")
		replaceAll(tb, base, "source, provider)", "source)")
		replaceAll(tb, base, "\tc.provider = provider\n", "")
		replaceAll(tb, filepath.Join(dir, "pkg/collector/check/check.go"), "source string, provider string) error", "source string) error")
	}
	return dir
}

// install runs install.sh on agent, with the default repository.
func install(agent string) (string, error) {
	cmd := exec.Command("bash", "install.sh", agent)
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func runInstall(tb testing.TB, agent string) {
	tb.Helper()
	out, err := install(agent)
	if err != nil {
		tb.Fatalf("install.sh %s: %v\n%s", agent, err, out)
	}
	if !strings.Contains(out, "Next steps") || !strings.Contains(out, "setcap cap_net_raw+ep bin/agent/agent") {
		tb.Errorf("install.sh did not print the next steps:\n%s", out)
	}
}

// snapshot returns the files install.sh writes, those that exist.
func snapshot(tb testing.TB, agent string) map[string]string {
	tb.Helper()
	files := map[string]string{}
	for _, rel := range []string{adapterRel, registryRel, "go.mod", buildRel, registryBuildRel, exampleRel} {
		b, err := os.ReadFile(filepath.Join(agent, rel))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			tb.Fatal(err)
		}
		files[rel] = string(b)
	}
	return files
}

// checkAdapter compares the installed adapter with agent/go_metro.go: the
// same, without its build constraint, and without the provider argument
// for Agents before 7.78.
func checkAdapter(tb testing.TB, repo, got string, provider bool) {
	tb.Helper()
	src := readFile(tb, filepath.Join(repo, "agent/go_metro.go"))
	body, ok := strings.CutPrefix(src, "//go:build ignore\n\n")
	if !ok {
		tb.Fatal("agent/go_metro.go does not start with //go:build ignore and a blank line")
	}
	if !provider {
		body = strings.Replace(body, ", source string, provider string)", ", source string)", 1)
		body = strings.Replace(body, ", source, provider)", ", source)", 1)
	}
	header, installed, ok := strings.Cut(got, "\n\n")
	if !ok || !strings.Contains(header, "install.sh") {
		tb.Errorf("the installed adapter does not start with a line that names install.sh:\n%.200s", got)
	}
	if diff := cmp.Diff(body, installed); diff != "" {
		tb.Errorf("installed adapter (-want +got):\n%s", diff)
	}
	if strings.Contains(got, "//go:build") {
		tb.Error("the installed adapter keeps a build constraint")
	}
}

// checkRegistry checks that the registration file has the import and the
// call exactly once, and is gofmt-clean: the import is in sorted order.
func checkRegistry(tb testing.TB, got string) {
	tb.Helper()
	if n := strings.Count(got, adapterImport); n != 1 {
		tb.Errorf("%s imports gometro %d times, want 1:\n%s", registryRel, n, got)
	}
	if n := strings.Count(got, registerCall); n != 1 {
		tb.Errorf("%s registers gometro %d times, want 1:\n%s", registryRel, n, got)
	}
	if !strings.Contains(got, "\tcorecheckLoader.RegisterCheck(ntp.CheckName, ntp.Factory())\n"+registerCall) {
		tb.Errorf("%s does not register gometro after ntp:\n%s", registryRel, got)
	}
	formatted, err := format.Source([]byte(got))
	if err != nil {
		tb.Fatalf("%s does not parse: %v", registryRel, err)
	}
	if diff := cmp.Diff(got, string(formatted)); diff != "" {
		tb.Errorf("%s is not gofmt-clean (-got +gofmt):\n%s", registryRel, diff)
	}
}

// checkExample checks that the Agent ships conf.d/go_metro.d/conf.yaml.example
// as it is, as an example: a conf.yaml.default would make every Agent run
// the check.
func checkExample(tb testing.TB, repo, got string) {
	tb.Helper()
	if diff := cmp.Diff(readFile(tb, filepath.Join(repo, "conf.d/go_metro.d/conf.yaml.example")), got); diff != "" {
		tb.Errorf("%s (-want +got):\n%s", exampleRel, diff)
	}
}

// checkBuild checks the go_library that install.sh writes for the adapter:
// modeled on net/ntp's, with a dep for each of the adapter's imports (the
// Agent's packages as labels of this checkout, go-metro's as the external
// repository that gazelle's go_deps names com_github_go_metro_go_metro).
func checkBuild(tb testing.TB, agent, adapter, got string) {
	tb.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "gometro.go", adapter, parser.ImportsOnly)
	if err != nil {
		tb.Fatal(err)
	}
	var deps []string
	for _, imp := range f.Imports {
		path, _ := strconv.Unquote(imp.Path.Value)
		if rel, ok := strings.CutPrefix(path, "github.com/DataDog/datadog-agent/"); ok {
			deps = append(deps, "//"+rel)
			if _, err := os.Stat(filepath.Join(agent, rel)); err != nil {
				tb.Errorf("the adapter imports %s, which is not a package of the checkout: %v", path, err)
			}
		} else if rel, ok := strings.CutPrefix(path, module+"/"); ok {
			deps = append(deps, "@com_github_go_metro_go_metro//"+rel)
		}
	}
	slices.Sort(deps)
	want := []string{
		"//comp/core/autodiscovery/integration",
		"//pkg/aggregator/sender",
		"//pkg/collector/check",
		"//pkg/collector/corechecks",
		"//pkg/util/log",
		"//pkg/util/option",
		"@com_github_go_metro_go_metro//check",
	}
	if diff := cmp.Diff(want, deps); diff != "" {
		tb.Errorf("the adapter's imports, as Bazel labels (-want +got):\n%s", diff)
	}
	var b strings.Builder
	b.WriteString(`load("@rules_go//go:def.bzl", "go_library")

go_library(
    name = "gometro",
    srcs = ["gometro.go"],
    importpath = "github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/gometro",
    visibility = ["//visibility:public"],
    deps = [
`)
	for _, d := range want {
		fmt.Fprintf(&b, "        %q,\n", d)
	}
	b.WriteString("    ],\n)\n")
	header, body, _ := strings.Cut(got, "\n")
	if !strings.HasPrefix(header, "# ") || !strings.Contains(header, "install.sh") {
		tb.Errorf("%s does not start with a comment that names install.sh:\n%s", buildRel, got)
	}
	if diff := cmp.Diff(b.String(), body); diff != "" {
		tb.Errorf("%s (-want +got):\n%s", buildRel, diff)
	}
}

// checkRegistryBuild checks that install.sh added the adapter's target to
// the deps of pkg/commonchecks' go_library, once, in its sorted place, and
// changed nothing else.
func checkRegistryBuild(tb testing.TB, before, got string) {
	tb.Helper()
	entry := "        \"" + gometroTarget + "\",\n"
	if n := strings.Count(got, entry); n != 1 {
		tb.Errorf("%s lists %s %d times, want 1:\n%s", registryBuildRel, gometroTarget, n, got)
	}
	lib, _, _ := strings.Cut(got, "\n)\n")
	_, deps, _ := strings.Cut(lib, "    deps = [\n")
	deps, _, _ = strings.Cut(deps, "    ],")
	if !strings.Contains(deps, entry) {
		tb.Errorf("%s: %s is not in the deps of the go_library:\n%s", registryBuildRel, gometroTarget, got)
	}
	var labels []string
	for _, l := range strings.Split(strings.TrimSpace(deps), "\n") {
		labels = append(labels, strings.Trim(strings.TrimSpace(l), `",`))
	}
	if !slices.IsSorted(labels) {
		tb.Errorf("%s: the deps of the go_library are not sorted:\n%s", registryBuildRel, deps)
	}
	if diff := cmp.Diff(before, strings.Replace(got, entry, "", 1)); diff != "" {
		tb.Errorf("%s changed beyond the added dep (-before +after):\n%s", registryBuildRel, diff)
	}
}

// checkGoMod checks that go.mod requires go-metro v0.0.0 once and replaces
// it once, with the repository.
func checkGoMod(tb testing.TB, agent, repo string) {
	tb.Helper()
	var mod struct {
		Require []struct{ Path, Version string }
		Replace []struct {
			Old, New struct{ Path, Version string }
		}
	}
	if err := json.Unmarshal([]byte(goCmd(tb, agent, "mod", "edit", "-json")), &mod); err != nil {
		tb.Fatal(err)
	}
	var requires, replaces []string
	for _, r := range mod.Require {
		if r.Path == module {
			requires = append(requires, r.Version)
		}
	}
	for _, r := range mod.Replace {
		if r.Old.Path == module {
			replaces = append(replaces, sameFile(tb, r.New.Path, repo))
		}
	}
	if diff := cmp.Diff([]string{"v0.0.0"}, requires); diff != "" {
		tb.Errorf("go.mod requires of %s (-want +got):\n%s", module, diff)
	}
	if diff := cmp.Diff([]string{"the repository"}, replaces); diff != "" {
		tb.Errorf("go.mod replaces of %s (-want +got):\n%s", module, diff)
	}
}

// sameFile returns "the repository" when path is repo, else path.
func sameFile(tb testing.TB, path, repo string) string {
	tb.Helper()
	a, errA := os.Stat(path)
	b, errB := os.Stat(repo)
	if errA == nil && errB == nil && os.SameFile(a, b) && filepath.IsAbs(path) {
		return "the repository"
	}
	return path
}

// goCmd runs go in dir. It downloads what the fake checkout needs that the
// module cache lacks (go-metro's dependencies, the go.mod files of their
// requirements) through the environment's GOPROXY, so that it works with an
// empty module cache; GOFLAGS from the environment (-modcacherw, say) is
// kept.
func goCmd(tb testing.TB, dir string, args ...string) string {
	tb.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	goflags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -mod=mod -buildvcs=false")
	cmd.Env = append(os.Environ(), "GOFLAGS="+goflags, "GOWORK=off", "GOTOOLCHAIN=local")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("go %s in %s: %v\n%s%s", strings.Join(args, " "), dir, err, out, stderr.String())
	}
	return string(out)
}

func readFile(tb testing.TB, path string) string {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func writeFile(tb testing.TB, path, content string) {
	tb.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

func remove(tb testing.TB, path string) {
	tb.Helper()
	if err := os.RemoveAll(path); err != nil {
		tb.Fatal(err)
	}
}

// replaceAll replaces old with new in the file at path; old must occur.
func replaceAll(tb testing.TB, path, old, new string) {
	tb.Helper()
	s := readFile(tb, path)
	if !strings.Contains(s, old) {
		tb.Fatalf("%s does not contain %q", path, old)
	}
	writeFile(tb, path, strings.ReplaceAll(s, old, new))
}
