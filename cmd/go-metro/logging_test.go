package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunLogDir checks that go-metro run creates the directory of its log
// file, as go-metro did, and logs to standard error with a warning when it
// cannot, instead of refusing to start.
func TestRunLogDir(t *testing.T) {
	_, port := listenUDP(t)
	conf := func(logFile string) string {
		return strings.Replace(daemonConf(port, "  - interface: eth0\n"), "init_config:\n",
			"init_config:\n  log_to_file: true\n  log_file: "+logFile+"\n", 1)
	}

	t.Run("created", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "var/log/datadog")
		logFile := filepath.Join(dir, "go-metro.log")
		td := startDaemon(t, writeFile(t, "go-metro.yaml", conf(logFile)), nil)
		waitFileHolds(t, logFile, `level=INFO msg="go-metro running"`)
		td.cancel()
		td.wait(t)
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode(); got != os.ModeDir|0o755 {
			t.Errorf("log directory mode %v, want drwxr-xr-x", got)
		}
		if s := td.stderr.String(); s != "" {
			t.Errorf("logged to stderr:\n%s", s)
		}
	})

	t.Run("cannot be created", func(t *testing.T) {
		// A regular file where a directory should be: root cannot create
		// the directory either.
		notDir := writeFile(t, "not-a-dir", "")
		logFile := filepath.Join(notDir, "datadog", "go-metro.log")
		td := startDaemon(t, writeFile(t, "go-metro.yaml", conf(logFile)), nil)
		td.waitLog(t, `level=WARN msg="logging to standard error, not to `+"`log_file`"+` \"`+logFile+`\": cannot create its directory `+filepath.Dir(logFile)+`: not a directory: create the directory, writable by the user go-metro runs as, or set `+"`log_file`"+`"`, 1)
		td.waitLog(t, `level=INFO msg="go-metro running"`, 1)
		td.cancel()
		if err := td.wait(t); err != nil {
			t.Errorf("the daemon returned %v", err)
		}
		td.waitLog(t, "level=INFO msg=stopped", 1)
	})
}

// TestRunAgent5FileNoLogDir loads go-metro's Agent 5 example, which has
// log_to_file: true, where the directory of the default log file is
// missing: it is created.
func TestRunAgent5FileNoLogDir(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "log", "datadog", "go-metro.log")
	d := &daemon{stderr: &bytes.Buffer{}, getenv: func(string) string { return "" }, defaultLogFile: logFile, statsdOptions: testStatsdOptions}
	d.log = newDaemonLog(d.stderr)
	example, err := os.ReadFile("../../check/testdata/integration-page-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := d.load(writeFile(t, "go-metro.yaml", string(example)))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.sender.Close()
	defer cfg.logs.close()
	if cfg.logs.path != logFile || cfg.logs.file == nil || cfg.logs.warning != "" {
		t.Errorf("log file %q (open: %v), warning %q; want %q open, no warning", cfg.logs.path, cfg.logs.file != nil, cfg.logs.warning, logFile)
	}
}

// waitFileHolds waits until the file at path holds s.
func waitFileHolds(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(path)
		if strings.Contains(string(b), s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not hold %q:\n%s", path, s, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
