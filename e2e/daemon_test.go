package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildGoMetro builds cmd/go-metro into a temporary directory and returns
// the binary. It builds in the go-metro module, the parent directory, so
// that the binary has that module's dependency versions, not the ones this
// module selects with statsd_exporter's. Under -race the binary has the
// race detector too, and a race makes it exit with status 66 (see
// startDaemon).
func buildGoMetro(tb testing.TB) string {
	tb.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		tb.Fatal(err)
	}
	bin := filepath.Join(tb.TempDir(), "go-metro")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "github.com/go-metro/go-metro/cmd/go-metro")
	// go test puts the go command of its toolchain first in PATH.
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	start := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), root, err, out)
	}
	tb.Logf("built go-metro (race %v) in %v", raceEnabled, time.Since(start).Round(time.Millisecond))
	return bin
}

// daemon is a running `go-metro run`.
type daemon struct {
	name    string
	cmd     *exec.Cmd
	log     *syncBuffer // standard output and error
	started time.Time

	done   chan struct{} // closed when the process has exited
	exited time.Time
	err    error // of Wait
}

// startDaemon runs `go-metro run -c config` with the environment of the
// test, less every DD_ variable, plus env. It kills the process at the end
// of the test if it still runs.
func startDaemon(tb testing.TB, name, bin, config string, env ...string) *daemon {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "go-metro.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		tb.Fatal(err)
	}
	d := &daemon{name: name, log: &syncBuffer{}, done: make(chan struct{})}
	d.cmd = exec.Command(bin, "run", "-c", path)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DD_") && !strings.HasPrefix(kv, "GORACE=") {
			d.cmd.Env = append(d.cmd.Env, kv)
		}
	}
	// A race ends the daemon at once. A race-enabled binary sleeps 1 s
	// before it exits, unless told not to.
	d.cmd.Env = append(d.cmd.Env, "GORACE=halt_on_error=1 atexit_sleep_ms=0")
	d.cmd.Env = append(d.cmd.Env, env...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	d.started = time.Now()
	if err := d.cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	go func() {
		d.err = d.cmd.Wait()
		d.exited = time.Now()
		close(d.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		if tb.Failed() {
			tb.Logf("%s log, without the metrics:\n%s", name, d.logWithoutMetrics())
		}
	})
	return d
}

// running fails the test if the daemon has exited.
func (d *daemon) running(tb testing.TB) {
	tb.Helper()
	select {
	case <-d.done:
		tb.Fatalf("%s exited early: %v\n%s", d.name, d.err, d.logWithoutMetrics())
	default:
	}
}

// terminate sends SIGTERM and waits up to limit for the daemon to exit.
// It returns how long that took and the exit status.
func (d *daemon) terminate(tb testing.TB, limit time.Duration) (time.Duration, int) {
	tb.Helper()
	d.running(tb)
	sent := time.Now()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM %s: %v", d.name, err)
	}
	select {
	case <-d.done:
	case <-time.After(limit):
		tb.Fatalf("%s still running %v after SIGTERM", d.name, limit)
	}
	var ee *exec.ExitError
	if d.err != nil && !errors.As(d.err, &ee) {
		tb.Fatalf("wait for %s: %v", d.name, d.err)
	}
	return d.exited.Sub(sent), d.cmd.ProcessState.ExitCode()
}

// The daemon logs every metric and service check it hands to the
// DogStatsD client at debug level, in log/slog's text format.
var (
	logMetricRE = regexp.MustCompile(`\bmsg=metric .*?\bname=(\S+)`)
	logCheckRE  = regexp.MustCompile(`\bmsg="service check" name=(\S+)`)
	// A distribution's bucket is logged once, with its count of samples
	// as the tag count:N; datadog-go may split its values over lines.
	logDistRE = regexp.MustCompile(`\bmsg=metric type=distribution .*\bcount:(\d+)`)
)

// submitted counts, by name, the metrics and service checks that the
// daemon logged as sent: the values of a distribution, the calls of the
// other metrics. Service checks are counted under "_sc|" + name.
func (d *daemon) submitted() map[string]int {
	n := map[string]int{}
	for _, l := range strings.Split(d.log.String(), "\n") {
		if m := logMetricRE.FindStringSubmatch(l); m != nil {
			if c := logDistRE.FindStringSubmatch(l); c != nil {
				k, _ := strconv.Atoi(c[1])
				n[m[1]] += k
			} else {
				n[m[1]]++
			}
		} else if m := logCheckRE.FindStringSubmatch(l); m != nil {
			n["_sc|"+m[1]]++
		}
	}
	return n
}

// logWithoutMetrics returns the log less the lines about each metric and
// service check sent.
func (d *daemon) logWithoutMetrics() string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(d.log.String(), "\n") {
		if !logMetricRE.MatchString(l) && !logCheckRE.MatchString(l) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// syncBuffer is a bytes.Buffer that is safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitCtx returns a context for waiting up to d within the test.
func waitCtx(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(tb.Context(), d)
	tb.Cleanup(cancel)
	return ctx
}
