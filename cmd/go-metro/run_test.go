package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/DataDog/datadog-go/v5/statsd"
	"github.com/google/go-cmp/cmp"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

func TestStatsdAddress(t *testing.T) {
	tests := []struct {
		name     string
		init     string
		env      map[string]string
		want     string
		wantFrom string
		wantErr  string
	}{
		{name: "default", want: "127.0.0.1:8125", wantFrom: "default"},
		{
			name:     "file keys win over the environment",
			init:     "statsd_ip: 10.0.0.5\nstatsd_port: 9125",
			env:      map[string]string{envDogstatsURL: "unix:///var/run/datadog/dsd.socket", envAgentHost: "agent", envDogstatsPort: "8126"},
			want:     "10.0.0.5:9125",
			wantFrom: "init_config statsd_ip/statsd_port",
		},
		{
			name:     "the seed's Agent 5 file",
			init:     "snaplen: 512\nidle_ttl: 300\nexp_ttl: 60\nstatsd_ip: 127.0.0.1\nstatsd_port: 8125\nlog_to_file: false\nlog_level: info",
			env:      map[string]string{envAgentHost: "agent"},
			want:     "127.0.0.1:8125",
			wantFrom: "init_config statsd_ip/statsd_port",
		},
		{
			name:     "statsd_port alone keeps the default IP",
			init:     "statsd_port: 9125",
			env:      map[string]string{envAgentHost: "agent"},
			want:     "127.0.0.1:9125",
			wantFrom: "init_config statsd_ip/statsd_port",
		},
		{
			name:     "statsd_ip alone keeps the default port",
			init:     "statsd_ip: dsd.local",
			env:      map[string]string{envDogstatsPort: "9000"},
			want:     "dsd.local:8125",
			wantFrom: "init_config statsd_ip/statsd_port",
		},
		{name: "IPv6 statsd_ip", init: "statsd_ip: '::1'", want: "[::1]:8125", wantFrom: "init_config statsd_ip/statsd_port"},
		{name: "empty statsd_ip", init: "statsd_ip: ''", wantErr: "invalid `statsd_ip` \"\": must be the IP address or host name of DogStatsD"},
		{name: "statsd_ip is not a socket", init: "statsd_ip: unix:///tmp/x", wantErr: "invalid `statsd_ip` \"unix:///tmp/x\""},
		{name: "other init keys do not count", init: "snaplen: 512", want: "127.0.0.1:8125", wantFrom: "default"},
		{name: "agent host", env: map[string]string{envAgentHost: "agent"}, want: "agent:8125", wantFrom: "DD_AGENT_HOST"},
		{
			name:     "agent host and port",
			env:      map[string]string{envAgentHost: "10.1.2.3", envDogstatsPort: "9000"},
			want:     "10.1.2.3:9000",
			wantFrom: "DD_AGENT_HOST and DD_DOGSTATSD_PORT",
		},
		{name: "port alone", env: map[string]string{envDogstatsPort: "9000"}, want: "127.0.0.1:9000", wantFrom: "DD_DOGSTATSD_PORT"},
		{name: "IPv6 agent host", env: map[string]string{envAgentHost: "fd00::1"}, want: "[fd00::1]:8125", wantFrom: "DD_AGENT_HOST"},
		{name: "agent host with a port", env: map[string]string{envAgentHost: "agent:9001"}, want: "agent:9001", wantFrom: "DD_AGENT_HOST"},
		{
			name:     "the port variable overrides the host's",
			env:      map[string]string{envAgentHost: "agent:9001", envDogstatsPort: "9002"},
			want:     "agent:9002",
			wantFrom: "DD_AGENT_HOST and DD_DOGSTATSD_PORT",
		},
		{name: "bad port", env: map[string]string{envAgentHost: "agent", envDogstatsPort: "http"}, wantErr: `invalid port "http" in DD_DOGSTATSD_PORT: must be a number between 1 and 65535`},
		{name: "port out of range", env: map[string]string{envDogstatsPort: "70000"}, wantErr: `invalid port "70000" in DD_DOGSTATSD_PORT`},
		{name: "socket path in the host", env: map[string]string{envAgentHost: "/var/run/datadog/dsd.socket"}, wantErr: "set DD_DOGSTATSD_URL for a URL or a Unix socket"},
		{name: "URL in the host", env: map[string]string{envAgentHost: "http://x"},
			wantErr: `invalid DD_AGENT_HOST "http://x": must be the IP address or host name of the Agent, not a URL or a path; set DD_DOGSTATSD_URL`},
		{name: "bad name in the host", env: map[string]string{envAgentHost: "bad..name"}, wantErr: `invalid DD_AGENT_HOST "bad..name": must be the IP address or host name of the Agent; not a host name`},
		{name: "statsd_ip with a port", init: "statsd_ip: 127.0.0.1:9999",
			wantErr: "invalid `statsd_ip` \"127.0.0.1:9999\": must be the IP address or host name of DogStatsD, such as 127.0.0.1; it carries a port: put the port in `statsd_port`"},
		{name: "statsd_ip with a host and port", init: "statsd_ip: dsd.local:9999", wantErr: "invalid `statsd_ip` \"dsd.local:9999\""},
		{name: "statsd_ip URL", init: "statsd_ip: udp://127.0.0.1", wantErr: "invalid `statsd_ip` \"udp://127.0.0.1\": must be the IP address or host name of DogStatsD, such as 127.0.0.1; a URL belongs in DD_DOGSTATSD_URL"},
		{name: "statsd_ip with spaces", init: "statsd_ip: ' 10.0.0.1'", wantErr: "invalid `statsd_ip` \" 10.0.0.1\""},
		{name: "bracketed IPv6 statsd_ip", init: "statsd_ip: '[::1]'", want: "[::1]:8125", wantFrom: "init_config statsd_ip/statsd_port"},
		{
			name:     "udp URL",
			env:      map[string]string{envDogstatsURL: "udp://agent:9125", envAgentHost: "other", envDogstatsPort: "1"},
			want:     "agent:9125",
			wantFrom: "DD_DOGSTATSD_URL",
		},
		{name: "udp URL without a port", env: map[string]string{envDogstatsURL: "udp://agent"}, want: "agent:8125", wantFrom: "DD_DOGSTATSD_URL"},
		{name: "udp URL with IPv6", env: map[string]string{envDogstatsURL: "udp://[::1]:8125"}, want: "[::1]:8125", wantFrom: "DD_DOGSTATSD_URL"},
		{
			name:     "unix URL",
			env:      map[string]string{envDogstatsURL: "unix:///var/run/datadog/dsd.socket"},
			want:     "unix:///var/run/datadog/dsd.socket",
			wantFrom: "DD_DOGSTATSD_URL",
		},
		{
			name:     "unixgram URL",
			env:      map[string]string{envDogstatsURL: "unixgram:///var/run/datadog/dsd.socket"},
			want:     "unixgram:///var/run/datadog/dsd.socket",
			wantFrom: "DD_DOGSTATSD_URL",
		},
		{name: "unixstream URL", env: map[string]string{envDogstatsURL: "unixstream:///run/dsd.sock"}, want: "unixstream:///run/dsd.sock", wantFrom: "DD_DOGSTATSD_URL"},
		{name: "relative socket path", env: map[string]string{envDogstatsURL: "unix://dsd.socket"}, wantErr: "a socket path is absolute, after three slashes"},
		{name: "http URL", env: map[string]string{envDogstatsURL: "http://agent:8125"}, wantErr: `invalid DD_DOGSTATSD_URL "http://agent:8125": unsupported scheme "http"; use udp://host:port, unix:///path/to/dsd.socket or unixgram:///path/to/dsd.socket`},
		{name: "bare host in the URL", env: map[string]string{envDogstatsURL: "agent:8125"}, wantErr: "invalid DD_DOGSTATSD_URL"},
		{name: "udp URL with a bad port", env: map[string]string{envDogstatsURL: "udp://agent:0"}, wantErr: "the port must be between 1 and 65535"},
		{name: "udp URL with a path", env: map[string]string{envDogstatsURL: "udp://agent:8125/x"}, wantErr: "no path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := check.ParseConfig([]byte("interface: eth0"), []byte(tt.init), false)
			if err != nil {
				t.Fatal(err)
			}
			keys, err := yamlKeys([]byte(tt.init))
			if err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string { return tt.env[k] }
			addr, from, err := statsdAddress(cfg.Init, keys, getenv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([2]string{tt.want, tt.wantFrom}, [2]string{addr, from}); diff != "" {
				t.Errorf("address and source (-want +got):\n%s", diff)
			}
		})
	}
}

// testStatsdOptions make the client's lines exact: no telemetry of its
// own, no container ID.
var testStatsdOptions = []statsd.Option{statsd.WithoutTelemetry(), statsd.WithoutOriginDetection()}

// clearDDEnv unsets the variables that datadog-go turns into tags.
func clearDDEnv(t *testing.T) {
	for _, k := range []string{"DD_ENV", "DD_SERVICE", "DD_VERSION", "DD_ENTITY_ID", "DD_CARDINALITY", "DATADOG_CARDINALITY", "DD_EXTERNAL_ENV"} {
		t.Setenv(k, "")
	}
}

// dsdListener collects the lines sent to a DogStatsD socket.
type dsdListener struct {
	conn  net.PacketConn
	lines chan string
}

func newDSDListener(t *testing.T, network, address string) *dsdListener {
	t.Helper()
	conn, err := net.ListenPacket(network, address)
	if err != nil {
		t.Fatal(err)
	}
	l := &dsdListener{conn: conn, lines: make(chan string, 100_000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			for line := range strings.SplitSeq(strings.TrimSuffix(string(buf[:n]), "\n"), "\n") {
				select {
				case l.lines <- line:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return l
}

// listenUDP listens on 127.0.0.1 and returns the listener and its port.
func listenUDP(t *testing.T) (*dsdListener, int) {
	l := newDSDListener(t, "udp", "127.0.0.1:0")
	return l, l.conn.LocalAddr().(*net.UDPAddr).Port
}

// collect returns the lines received until done says so or timeout
// passes.
func (l *dsdListener) collect(t *testing.T, timeout time.Duration, done func(lines []string) bool) []string {
	t.Helper()
	var lines []string
	deadline := time.After(timeout)
	for {
		select {
		case line := <-l.lines:
			lines = append(lines, line)
			if done(lines) {
				return lines
			}
		case <-deadline:
			t.Errorf("timed out after %v; received %d lines:\n%s", timeout, len(lines), strings.Join(lines, "\n"))
			return lines
		}
	}
}

// collectN returns the first n lines, sorted.
func (l *dsdListener) collectN(t *testing.T, n int) []string {
	t.Helper()
	lines := l.collect(t, 5*time.Second, func(lines []string) bool { return len(lines) >= n })
	slices.Sort(lines)
	return lines
}

// hasLine says whether a line starts with prefix and contains all of
// parts.
func hasLine(lines []string, prefix string, parts ...string) bool {
	return slices.ContainsFunc(lines, func(l string) bool {
		if !strings.HasPrefix(l, prefix) {
			return false
		}
		for _, p := range parts {
			if !strings.Contains(l, p) {
				return false
			}
		}
		return true
	})
}

// sendSample submits what one run of a check could, on s.
func sendSample(s check.Sender) {
	tags := []string{"src:192.0.2.1", "dst:192.0.2.2", "iface:eth0", "env:prod"}
	s.Gauge(check.MetricRTT, 1.5, "", tags)
	s.Gauge(check.MetricRTTAvg, 0.125, "", tags)
	s.Count(check.MetricRTTSamples, 12, "", tags)
	s.Count(check.MetricPacketsReceived, 1234, "db-1", []string{"iface:eth0"})
	s.ServiceCheck(check.ServiceCheckName, servicecheck.ServiceCheckOK, "", []string{"iface:eth0"}, "")
	s.ServiceCheck(check.ServiceCheckName, servicecheck.ServiceCheckWarning, "", []string{"iface:eth1"}, "hosts do not resolve: db.example")
	s.ServiceCheck(check.ServiceCheckName, servicecheck.ServiceCheckCritical, "db-1", []string{"iface:eth2"}, "start capture on eth2: operation not permitted")
	s.ServiceCheck(check.ServiceCheckName, servicecheck.ServiceCheckUnknown, "", []string{"iface:eth3"}, "")
	s.Commit()
}

// sampleLines are the DogStatsD lines of sendSample, sorted.
var sampleLines = []string{
	"_sc|go_metro.can_capture|0|#iface:eth0",
	"_sc|go_metro.can_capture|1|#iface:eth1|m:hosts do not resolve: db.example",
	"_sc|go_metro.can_capture|2|#iface:eth2,host:db-1|m:start capture on eth2: operation not permitted",
	"_sc|go_metro.can_capture|3|#iface:eth3",
	"go_metro.packets.received:1234|c|#iface:eth0,host:db-1",
	"system.net.tcp.rtt.avg:0.125|g|#src:192.0.2.1,dst:192.0.2.2,iface:eth0,env:prod",
	"system.net.tcp.rtt.samples:12|c|#src:192.0.2.1,dst:192.0.2.2,iface:eth0,env:prod",
	"system.net.tcp.rtt:1.5|g|#src:192.0.2.1,dst:192.0.2.2,iface:eth0,env:prod",
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func TestStatsdSenderUDP(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	s, err := newStatsdSender(fmt.Sprintf("127.0.0.1:%d", port), discardLogger(), testStatsdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sendSample(s)
	got := l.collectN(t, len(sampleLines))
	t.Logf("lines:\n%s", strings.Join(got, "\n"))
	if diff := cmp.Diff(sampleLines, got); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

func TestStatsdSenderUnixgram(t *testing.T) {
	clearDDEnv(t)
	// A short directory: socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "gm-dsd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for _, scheme := range []string{"unix", "unixgram"} {
		t.Run(scheme, func(t *testing.T) {
			path := filepath.Join(dir, scheme+".socket")
			l := newDSDListener(t, "unixgram", path)
			addr, _, err := statsdAddress(check.InitConfig{}, nil, func(k string) string {
				return map[string]string{envDogstatsURL: scheme + "://" + path}[k]
			})
			if err != nil {
				t.Fatal(err)
			}
			s, err := newStatsdSender(addr, discardLogger(), testStatsdOptions...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			sendSample(s)
			if diff := cmp.Diff(sampleLines, l.collectN(t, len(sampleLines))); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStatsdSenderHostTag checks that the host: tag does not write into
// the caller's slice.
func TestStatsdSenderHostTag(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	s, err := newStatsdSender(fmt.Sprintf("127.0.0.1:%d", port), discardLogger(), append(testStatsdOptions, statsd.WithoutClientSideAggregation())...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	backing := make([]string, 1, 4)
	backing[0] = "iface:eth0"
	s.Gauge("a", 1, "h1", backing[:1])
	s.Gauge("b", 2, "", backing[:1])
	s.Commit()
	want := []string{"a:1|g|#iface:eth0,host:h1", "b:2|g|#iface:eth0"}
	if diff := cmp.Diff(want, l.collectN(t, 2)); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	if got := backing[:2][1]; got != "" {
		t.Errorf("the caller's backing array was written: %q", got)
	}
}

// TestStatsdSenderCloseFlushes checks that Close sends what is pending
// without a Commit, buffers and aggregation windows notwithstanding.
func TestStatsdSenderCloseFlushes(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	opts := append(slices.Clone(testStatsdOptions), statsd.WithBufferFlushInterval(time.Hour), statsd.WithAggregationInterval(time.Hour))
	s, err := newStatsdSender(fmt.Sprintf("127.0.0.1:%d", port), discardLogger(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.Gauge(check.MetricRTT, 3, "", []string{"iface:eth0"})
	s.ServiceCheck(check.ServiceCheckName, servicecheck.ServiceCheckOK, "", []string{"iface:eth0"}, "")
	select {
	case line := <-l.lines:
		t.Fatalf("sent before Close: %q", line)
	case <-time.After(200 * time.Millisecond):
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"_sc|go_metro.can_capture|0|#iface:eth0", "system.net.tcp.rtt:3|g|#iface:eth0"}
	if diff := cmp.Diff(want, l.collectN(t, 2)); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
}

// TestStatsdSenderErrorsLoggedOnce checks that a failing submission is
// logged at Warn once, then at Debug.
func TestStatsdSenderErrorsLoggedOnce(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := newStatsdSender("unix://"+filepath.Join(t.TempDir(), "none.socket"), logger, testStatsdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		s.Gauge("a", 1, "", nil)
		s.Commit()
	}
	out := buf.String()
	t.Logf("log:\n%s", out)
	if n := strings.Count(out, "level=WARN msg=\"DogStatsD submission failed; is DogStatsD listening?"); n != 1 {
		t.Errorf("%d warnings, want 1", n)
	}
	if n := strings.Count(out, "level=DEBUG msg=\"DogStatsD submission failed again\""); n < 2 {
		t.Errorf("%d repeats at debug, want 2 or more", n)
	}
}

func TestParseLogLevel(t *testing.T) {
	tests := []struct {
		in   string
		want slog.Level
	}{
		{"trace", slog.LevelDebug}, {"DEBUG", slog.LevelDebug}, {"info", slog.LevelInfo}, {"", slog.LevelInfo},
		{"warn", slog.LevelWarn}, {"Warning", slog.LevelWarn}, {"error", slog.LevelError}, {"critical", slog.LevelError},
		{"off", levelOff},
	}
	for _, tt := range tests {
		got, err := parseLogLevel(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("parseLogLevel(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if _, err := parseLogLevel("verbose"); err == nil || !strings.Contains(err.Error(), "invalid `log_level` \"verbose\"") {
		t.Errorf("parseLogLevel(verbose): %v", err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testDaemon is a daemon running in the test, with fake captures.
type testDaemon struct {
	sigs   chan os.Signal
	stderr *syncBuffer
	done   chan error
	cancel context.CancelFunc

	mu     sync.Mutex
	opened []*fakeCapture
}

// startDaemon runs go-metro run -c path with fake captures made by mk (nil:
// one peer) and returns once it has started, or failed to.
func startDaemon(t *testing.T, path string, mk func(capture.LiveConfig) *fakeCapture) *testDaemon {
	t.Helper()
	if mk == nil {
		mk = onePeer
	}
	td := &testDaemon{sigs: make(chan os.Signal, 8), stderr: &syncBuffer{}, done: make(chan error, 1)}
	d := &daemon{
		stderr:  td.stderr,
		getenv:  func(string) string { return "" },
		signals: td.sigs,
		newCapture: func(cfg capture.LiveConfig) (check.Capture, error) {
			f := mk(cfg)
			f.cfg = cfg
			td.mu.Lock()
			td.opened = append(td.opened, f)
			td.mu.Unlock()
			return f, nil
		},
		statsdOptions:  testStatsdOptions,
		defaultLogFile: filepath.Join(t.TempDir(), "go-metro.log"),
	}
	ctx, cancel := context.WithCancel(context.Background())
	td.cancel = cancel
	go func() { td.done <- d.main(ctx, []string{"-c", path}) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-td.done:
		case <-time.After(5 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return td
}

// onePeer has 192.0.2.1 talking to 192.0.2.2.
func onePeer(capture.LiveConfig) *fakeCapture {
	var p capture.PeerStats
	p.PeerKey = capture.AddrPeer(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"))
	p.Count, p.Last, p.SRTT, p.Min, p.Max, p.P50, p.P95, p.P99 = 4, ms2d(2), ms2d(2), ms2d(1), ms2d(3), ms2d(2), ms2d(3), ms2d(3)
	return &fakeCapture{peers: []capture.PeerStats{p}}
}

func (td *testDaemon) captures() []*fakeCapture {
	td.mu.Lock()
	defer td.mu.Unlock()
	return slices.Clone(td.opened)
}

// waitLog waits until the log holds n occurrences of s.
func (td *testDaemon) waitLog(t *testing.T, s string, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(td.stderr.String(), s) < n {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not hold %q %d times:\n%s", s, n, td.stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wait waits for the daemon to return.
func (td *testDaemon) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-td.done:
		td.done <- err // for the cleanup
		return err
	case <-time.After(5 * time.Second):
		t.Fatalf("the daemon did not return; log:\n%s", td.stderr.String())
		return nil
	}
}

func daemonConf(port int, instances string) string {
	return fmt.Sprintf("init_config:\n  statsd_ip: 127.0.0.1\n  statsd_port: %d\ninstances:\n%s", port, instances)
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{name: "no config", args: []string{"run"}, code: 2, inStderr: "go-metro run: usage: no configuration: pass -c FILE"},
		{name: "argument", args: []string{"run", "-c", "x.yaml", "extra"}, code: 2, inStderr: `unexpected argument "extra"`},
		{name: "unknown flag", args: []string{"run", "--bogus"}, code: 2, inStderr: "flag provided but not defined: -bogus"},
		{name: "help", args: []string{"run", "-h"}, code: 0, inStderr: "Usage: go-metro run -c FILE"},
		{name: "missing file", args: []string{"run", "-c", "/nonexistent/go-metro.yaml"}, code: 1, inStderr: "go-metro run: read the configuration: open /nonexistent/go-metro.yaml: no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stderr does not hold %q:\n%s", tt.inStderr, stderr.String())
			}
		})
	}
	var stdout bytes.Buffer
	run([]string{"help"}, &stdout, &stdout)
	if !strings.Contains(stdout.String(), "go-metro run -c FILE") {
		t.Errorf("the usage does not list run:\n%s", stdout.String())
	}
}

func TestRunConfigErrors(t *testing.T) {
	tests := []struct {
		name, conf, want string
	}{
		{name: "bad instance", conf: "instances:\n  - interface: eth0\n  - interface: eth1\n    min_collection_interval: 0\n", want: "instances[1] (line 3): configure go_metro: invalid `min_collection_interval` 0"},
		{name: "bad log level", conf: "init_config:\n  log_level: loud\ninstances: [{interface: eth0}]\n", want: "invalid `log_level` \"loud\""},
		{name: "bad log file", conf: "init_config:\n  log_to_file: true\n  log_file: /\ninstances: [{interface: eth0}]\n", want: "invalid `log_file` \"/\": cannot open it: is a directory: set `log_file` to a file the go-metro user can write, or `log_to_file: false`"},
		{name: "bad statsd_ip", conf: "init_config:\n  statsd_ip: ' '\ninstances: [{interface: eth0}]\n", want: "invalid `statsd_ip`"},
		{name: "no instances", conf: "init_config:\n", want: "no `instances`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			path := writeFile(t, "go-metro.yaml", tt.conf)
			if code := run([]string{"run", "-c", path}, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("stderr does not hold %q:\n%s", tt.want, stderr.String())
			}
		})
	}
}

// TestRunAgent5File loads go-metro's Agent 5 example as it is.
func TestRunAgent5File(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "go-metro.log")
	d := &daemon{stderr: &bytes.Buffer{}, getenv: func(string) string { return "unix:///elsewhere" }, defaultLogFile: logFile, statsdOptions: testStatsdOptions}
	d.log = newDaemonLog(d.stderr)
	// The integration page's example, as it is (the check package's test data).
	seedConf, err := os.ReadFile("../../check/testdata/integration-page-example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := d.load(writeFile(t, "go-metro.yaml", string(seedConf)))
	if err != nil {
		t.Fatal(err)
	}
	defer cfg.sender.Close()
	defer cfg.logs.close()
	if cfg.addr != "127.0.0.1:8125" || cfg.logs.path != logFile || cfg.logs.level != slog.LevelInfo {
		t.Errorf("address %s, log file %q at %v", cfg.addr, cfg.logs.path, cfg.logs.level)
	}
	c := cfg.instances[0].chk.Config()
	want := check.Instance{Interface: "eth0", Tags: []string{"env:prod"}, IPs: []string{"45.33.125.153"}, Hosts: []string{"app.datadoghq.com"}, MinCollectionInterval: 15,
		MaxPorts: capture.DefaultMaxPorts, Distribution: true, PercentileGauges: true, TCPHealth: true, SYNTimeout: 10, Workers: 1}
	if diff := cmp.Diff(want, c.Instance); diff != "" {
		t.Errorf("instance (-want +got):\n%s", diff)
	}
	if c.Init.Snaplen != 512 || c.Init.IdleTTL != 300 || c.Init.ExpTTL != 60 || len(c.Warnings) != 0 {
		t.Errorf("init_config %+v, warnings %q", c.Init, c.Warnings)
	}
	if out := d.stderr.(*bytes.Buffer).String(); out != "" {
		t.Errorf("log:\n%s", out)
	}
}

// TestRunSendsAndStops runs two instances on their schedules and stops
// with SIGTERM: the captures stop and everything sent arrives.
func TestRunSendsAndStops(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, `  - interface: eth0
    min_collection_interval: 1
    tags: [env:prod]
  - interface: eth1
    min_collection_interval: 1
`))
	td := startDaemon(t, path, nil)
	// Each instance runs at once, then a second later: the telemetry
	// counts the fake's packets from the second run on.
	want := []string{
		"system.net.tcp.rtt:2|g|#src:192.0.2.1,dst:192.0.2.2,iface:eth0,env:prod",
		"system.net.tcp.rtt.samples:4|c|#src:192.0.2.1,dst:192.0.2.2,iface:eth0,env:prod",
		"system.net.tcp.rtt.max:3|g|#src:192.0.2.1,dst:192.0.2.2,iface:eth1",
		"go_metro.packets.received:100|c|#iface:eth1",
		"go_metro.packets.received:100|c|#iface:eth0,env:prod",
		"go_metro.flows.active:0|g|#iface:eth0,env:prod",
		"_sc|go_metro.can_capture|0|#iface:eth0,env:prod",
		"_sc|go_metro.can_capture|0|#iface:eth1",
	}
	l.collect(t, 5*time.Second, func(lines []string) bool {
		return !slices.ContainsFunc(want, func(w string) bool { return !slices.Contains(lines, w) })
	})
	td.sigs <- syscall.SIGTERM
	if err := td.wait(t); err != nil {
		t.Fatal(err)
	}
	caps := td.captures()
	if len(caps) != 2 {
		t.Fatalf("%d captures opened, want 2", len(caps))
	}
	for _, c := range caps {
		if !c.isStopped() {
			t.Errorf("capture on %s not stopped", c.cfg.Interface)
		}
	}
	log := td.stderr.String()
	t.Logf("log:\n%s", log)
	for _, want := range []string{
		"level=INFO msg=\"go-metro running\" config=" + path + " instances=2 interfaces=eth0,eth1 dogstatsd=127.0.0.1:",
		"dogstatsd_from=\"init_config statsd_ip/statsd_port\"",
		"level=INFO msg=stopping signal=terminated",
		"level=INFO msg=stopped",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not hold %q", want)
		}
	}
	if strings.Contains(log, "level=DEBUG") || strings.Contains(log, "msg=metric") {
		t.Errorf("debug lines at log_level info")
	}
}

// TestRunRuntimeMetrics checks that the runtime metrics are sent once per
// interval for the process, with the tags common to the instances, without
// runtime_metrics in the file.
func TestRunRuntimeMetrics(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	// No runtime_metrics key: the daemon sends them on every interval
	// whatever it says.
	conf := daemonConf(port, `  - interface: eth0
    min_collection_interval: 1
    tags: [env:prod, team:net]
  - interface: eth1
    min_collection_interval: 2
    tags: [env:prod]
`)
	startDaemon(t, writeFile(t, "go-metro.yaml", conf), nil)
	count := func(lines []string, prefix string) int {
		n := 0
		for _, line := range lines {
			if strings.HasPrefix(line, prefix) {
				n++
			}
		}
		return n
	}
	// eth0 runs at 0, 1 and 2 s, eth1 at 0 and 2 s, the runtime metrics
	// every second, as the shortest interval.
	lines := l.collect(t, 5*time.Second, func(lines []string) bool {
		return count(lines, "_sc|go_metro.can_capture|0|#iface:eth0,") >= 3
	})
	n := count(lines, check.MetricGoNumGoroutine+":")
	if n < 2 || n > 3 {
		t.Errorf("%d %s lines while eth0 ran 3 times, want 2 or 3", n, check.MetricGoNumGoroutine)
	}
	for name := range check.RuntimeMetrics() {
		if !hasLine(lines, name+":", "|g|#env:prod") {
			t.Errorf("no gauge %s tagged env:prod", name)
		}
	}
	if hasLine(lines, "runtime.go.", "iface:") || hasLine(lines, "runtime.go.", "team:net") {
		t.Logf("%s", strings.Join(lines, "\n"))
		t.Errorf("runtime metrics with instance-specific tags")
	}
}

// TestRunReload reloads an invalid configuration, which changes nothing,
// then a valid one, which replaces the checks.
func TestRunReload(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, "  - interface: eth0\n    min_collection_interval: 1\n"))
	td := startDaemon(t, path, nil)
	td.waitLog(t, `msg="go-metro running"`, 1)
	l.collect(t, 5*time.Second, func(lines []string) bool { return hasLine(lines, "_sc|", "iface:eth0") })

	// An invalid configuration: the running one stays.
	if err := os.WriteFile(path, []byte(daemonConf(port, "  - interface: eth0\n    ring_size: 5\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	td.sigs <- syscall.SIGHUP
	td.waitLog(t, "reload failed", 1)
	if !strings.Contains(td.stderr.String(), "level=ERROR msg=\"reload failed: the running configuration stays\" config="+path+" error=\""+path+": instances[0] (line 5): configure go_metro: invalid `ring_size` 5") {
		t.Errorf("log:\n%s", td.stderr.String())
	}
	if caps := td.captures(); len(caps) != 1 || caps[0].isStopped() {
		t.Fatalf("the running capture changed: %d captures", len(caps))
	}
	// It still runs: a second run of eth0 comes.
	l.collect(t, 5*time.Second, func(lines []string) bool { return hasLine(lines, "_sc|", "iface:eth0") })

	// A valid one: eth0 stops, eth1 with debug logging starts.
	conf := strings.Replace(daemonConf(port, "  - interface: eth1\n    min_collection_interval: 1\n    tags: [gen:2]\n"), "init_config:\n", "init_config:\n  log_level: debug\n", 1)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	td.sigs <- syscall.SIGHUP
	td.waitLog(t, `msg="go-metro running"`, 2)
	l.collect(t, 5*time.Second, func(lines []string) bool { return hasLine(lines, "_sc|", "iface:eth1,gen:2") })
	caps := td.captures()
	if len(caps) != 2 || !caps[0].isStopped() || caps[1].isStopped() || caps[1].cfg.Interface != "eth1" {
		t.Fatalf("captures after the reload: %d", len(caps))
	}
	// Nothing from eth0 after eth1 started: the old client was flushed
	// and closed before.
	drain := l.collect(t, 3*time.Second, func(lines []string) bool { return hasLine(lines, "_sc|", "iface:eth1,gen:2") })
	if hasLine(drain, "", "iface:eth0") {
		t.Errorf("eth0 still sends after the reload:\n%s", strings.Join(drain, "\n"))
	}
	td.waitLog(t, "level=DEBUG msg=metric", 1)
	td.cancel()
	if err := td.wait(t); err != nil {
		t.Fatal(err)
	}
	if !td.captures()[1].isStopped() {
		t.Error("eth1 capture not stopped")
	}
}

// TestRunReloadRealSignal sends a real SIGHUP to the test process, which
// the daemon, and only it, is notified of.
func TestRunReloadRealSignal(t *testing.T) {
	_, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, "  - interface: eth0\n"))
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGHUP)
	defer signal.Stop(sigs)
	stderr := &syncBuffer{}
	d := &daemon{stderr: stderr, getenv: func(string) string { return "" }, signals: sigs, statsdOptions: testStatsdOptions,
		newCapture: func(cfg capture.LiveConfig) (check.Capture, error) { return onePeer(cfg), nil }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.main(ctx, []string{"-c", path}) }()
	td := &testDaemon{stderr: stderr}
	td.waitLog(t, `msg="go-metro running"`, 1)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	td.waitLog(t, "msg=reloading", 1)
	td.waitLog(t, `msg="go-metro running"`, 2)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon did not stop")
	}
}

// slowStop is a capture whose Stop waits for release.
type slowStop struct {
	*fakeCapture
	release chan struct{}
}

func (c slowStop) Stop() {
	<-c.release
	c.fakeCapture.Stop()
}

// TestRunSecondSignal gives up waiting when a second signal comes while
// the captures stop.
func TestRunSecondSignal(t *testing.T) {
	_, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, "  - interface: eth0\n"))
	release := make(chan struct{})
	sigs := make(chan os.Signal, 8)
	stderr := &syncBuffer{}
	d := &daemon{stderr: stderr, getenv: func(string) string { return "" }, signals: sigs, statsdOptions: testStatsdOptions,
		newCapture: func(cfg capture.LiveConfig) (check.Capture, error) {
			return slowStop{onePeer(cfg), release}, nil
		}}
	done := make(chan error, 1)
	go func() { done <- d.main(context.Background(), []string{"-c", path}) }()
	td := &testDaemon{stderr: stderr}
	td.waitLog(t, `msg="go-metro running"`, 1)
	sigs <- syscall.SIGTERM
	td.waitLog(t, "msg=stopping", 1)
	sigs <- syscall.SIGHUP // ignored while stopping
	sigs <- syscall.SIGINT
	select {
	case err := <-done:
		if err == nil || err.Error() != "interrupt while stopping: exiting without waiting for the captures to stop" {
			t.Fatalf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon did not return")
	}
	close(release)
}

func TestRunLogging(t *testing.T) {
	_, port := listenUDP(t)
	t.Run("to file", func(t *testing.T) {
		logFile := filepath.Join(t.TempDir(), "metro.log")
		conf := strings.Replace(daemonConf(port, "  - interface: eth0\n"), "init_config:\n",
			fmt.Sprintf("init_config:\n  log_to_file: true\n  log_file: %s\n  log_level: debug\n", logFile), 1)
		path := writeFile(t, "go-metro.yaml", conf)
		td := startDaemon(t, path, nil)
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(logFile)
			if strings.Contains(string(b), "msg=\"service check\"") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("log file:\n%s", b)
			}
			time.Sleep(10 * time.Millisecond)
		}
		td.cancel()
		td.wait(t)
		b, err := os.ReadFile(logFile)
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`level=INFO msg="go-metro running"`,
			"level=DEBUG msg=metric type=gauge name=system.net.tcp.rtt value=2 tags=\"[src:192.0.2.1 dst:192.0.2.2 iface:eth0]\"",
			"level=DEBUG msg=\"service check\" name=go_metro.can_capture status=OK tags=[iface:eth0] message=\"\"",
			"level=INFO msg=stopped",
		} {
			if !strings.Contains(string(b), want) {
				t.Errorf("the log file does not hold %q:\n%s", want, b)
			}
		}
		if s := td.stderr.String(); s != "" {
			t.Errorf("logged to stderr:\n%s", s)
		}
	})
	t.Run("warn to stderr", func(t *testing.T) {
		conf := strings.Replace(daemonConf(port, "  - interface: eth0\n    bogus: 1\n"), "init_config:\n", "init_config:\n  log_level: warn\n", 1)
		td := startDaemon(t, writeFile(t, "go-metro.yaml", conf), nil)
		// The unknown key is logged before the level applies, at Warn.
		td.waitLog(t, "level=WARN msg=\"unknown instance key `bogus`: it is ignored\" instance=instances[0] check=go_metro", 1)
		time.Sleep(200 * time.Millisecond)
		td.cancel()
		td.wait(t)
		if s := td.stderr.String(); strings.Contains(s, "level=INFO") || strings.Contains(s, "level=DEBUG") {
			t.Errorf("info or debug at log_level warn:\n%s", s)
		}
	})
	t.Run("full disk", func(t *testing.T) {
		// /dev/full opens, and every write fails with ENOSPC: the lines
		// go to stderr instead, after a note that says why.
		conf := strings.Replace(daemonConf(port, "  - interface: eth0\n"), "init_config:\n", "init_config:\n  log_to_file: true\n  log_file: /dev/full\n", 1)
		td := startDaemon(t, writeFile(t, "go-metro.yaml", conf), nil)
		td.waitLog(t, `level=INFO msg="go-metro running"`, 1)
		td.cancel()
		td.wait(t)
		s := td.stderr.String()
		const note = "go-metro: cannot write the log file /dev/full: write /dev/full: no space left on device; logging to standard error until it can be written again\n"
		if strings.Count(s, note) != 1 || !strings.Contains(s, "level=INFO msg=stopped") {
			t.Errorf("stderr, want the note once and every line:\n%s", s)
		}
	})
	t.Run("log_file without log_to_file", func(t *testing.T) {
		conf := strings.Replace(daemonConf(port, "  - interface: eth0\n"), "init_config:\n", "init_config:\n  log_file: /tmp/x.log\n", 1)
		td := startDaemon(t, writeFile(t, "go-metro.yaml", conf), nil)
		td.waitLog(t, "level=WARN msg=\"init_config key `log_file` is ignored: `log_to_file` is not true", 1)
	})
}

// TestRunReopenLogFile checks that a SIGHUP reopens a rotated log file,
// even when the new configuration is invalid.
func TestRunReopenLogFile(t *testing.T) {
	_, port := listenUDP(t)
	dir := t.TempDir()
	logFile := filepath.Join(dir, "go-metro.log")
	conf := strings.Replace(daemonConf(port, "  - interface: eth0\n"), "init_config:\n",
		fmt.Sprintf("init_config:\n  log_to_file: true\n  log_file: %s\n", logFile), 1)
	path := filepath.Join(dir, "go-metro.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	td := startDaemon(t, path, nil)
	waitFile := func(name, s string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			b, _ := os.ReadFile(name)
			if strings.Contains(string(b), s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s does not hold %q:\n%s", name, s, b)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFile(logFile, "go-metro running")
	if err := os.Rename(logFile, logFile+".1"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(conf+"    ring_size: 5\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	td.sigs <- syscall.SIGHUP
	waitFile(logFile, "reload failed")
	td.cancel()
	td.wait(t)
	waitFile(logFile, "msg=stopped")
}

// TestRunLive captures on a veth pair in namespaces and sends the RTT of
// request/response traffic to a UDP listener.
func TestRunLive(t *testing.T) {
	pair := testbed.NewVethPair(t)
	clearDDEnv(t)
	l, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, fmt.Sprintf(`  - interface: %s
    netns: %s
    min_collection_interval: 1
    tags: [env:test]
`, pair.ClientIf, pair.Client.Path())))
	// The reference: a packet socket of its own on the same device.
	tracker := testbed.TrackRetransmissions(t, pair.Client, pair.ClientIf)
	start := time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	traffic := make(chan error, 1)
	go func() {
		traffic <- testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 100000, Gap: 5 * time.Millisecond})
	}()
	stderr := &syncBuffer{}
	d := &daemon{stderr: stderr, getenv: func(string) string { return "" }, signals: make(chan os.Signal), statsdOptions: testStatsdOptions}
	done := make(chan error, 1)
	go func() { done <- d.main(ctx, []string{"-c", path}) }()

	peer := "src:192.0.2.1,dst:192.0.2.2,iface:veth0,env:test"
	lines := l.collect(t, 8*time.Second, func(lines []string) bool {
		return hasLine(lines, "system.net.tcp.rtt:", "|g|#"+peer) && hasLine(lines, "system.net.tcp.rtt.samples:", "|c|#"+peer) &&
			hasLine(lines, "_sc|go_metro.can_capture|0|#iface:veth0,env:test")
	})
	for _, line := range lines {
		if strings.Contains(line, "192.0.2.2") || strings.HasPrefix(line, "_sc|") {
			t.Logf("%s", line)
		}
	}
	ref, err := tracker.Reference()
	if err != nil {
		t.Fatal(err)
	}
	lo, hi := vethEnvelope(t, ref.To(pair.ServerAddr4).Between(start, time.Now()))
	for _, line := range lines {
		name, rest, _ := strings.Cut(line, ":")
		if name == check.MetricRTT || name == check.MetricRTTAvg {
			var v float64
			if _, err := fmt.Sscanf(rest, "%g|", &v); err != nil || v <= 0 || v < lo || v > hi {
				t.Errorf("%q: want an RTT within the reference's envelope [%.3f, %.3f] ms", line, lo, hi)
			}
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the daemon did not stop; log:\n%s", stderr.String())
	}
	if err := <-traffic; err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("traffic: %v", err)
	}
	if t.Failed() {
		t.Logf("log:\n%s", stderr.String())
	}
}

// TestRunFinalRun checks that stopping runs each check one last time, so
// that what was captured since the last scheduled run is sent.
func TestRunFinalRun(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	path := writeFile(t, "go-metro.yaml", daemonConf(port, `  - interface: eth0
    min_collection_interval: 600
`))
	td := startDaemon(t, path, nil)
	const rtt = "system.net.tcp.rtt:2|g|#src:192.0.2.1,dst:192.0.2.2,iface:eth0"
	sent := func(lines []string) bool { return slices.Contains(lines, rtt) }
	l.collect(t, 5*time.Second, sent) // the run at start
	td.sigs <- syscall.SIGTERM
	if err := td.wait(t); err != nil {
		t.Fatal(err)
	}
	// The 600 s schedule never fired: this one comes from the stop.
	if lines := l.collect(t, 5*time.Second, sent); !sent(lines) {
		t.Error("no RTT sent when stopping: the partial interval was lost")
	}
}

// TestStatsdSenderDistribution sends the histogram buckets of 1,000
// samples through DogStatsD and checks that the Agent would count every
// sample exactly once: the |d lines at sample rate 1 carry as many values
// as the buckets' counts, each within its bucket. It logs the bytes sent,
// which the README quotes.
func TestStatsdSenderDistribution(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	s, err := newStatsdSender(fmt.Sprintf("127.0.0.1:%d", port), discardLogger(), testStatsdOptions...)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tags := []string{"src:192.0.2.1", "dst:db.example", "iface:eth0"}
	// 1,000 samples around 20 ms in 1 % bins, as a real interval gives.
	type bucket struct {
		lo, hi float64
		n      int64
	}
	var buckets []bucket
	total := int64(0)
	for lo := 18.0; total < 1000; lo *= 1.02 {
		n := min(int64(40+20*math.Sin(lo)), 1000-total)
		buckets = append(buckets, bucket{lo, lo * 1.02, n})
		total += n
	}
	for _, b := range buckets {
		s.HistogramBucket(check.MetricRTTDistribution, b.n, b.lo, b.hi, false, "", tags, false)
	}
	s.Commit()
	var values []float64
	bytes := 0
	l.collect(t, 5*time.Second, func(lines []string) bool {
		last := lines[len(lines)-1]
		bytes += len(last) + 1
		name, rest, ok := strings.Cut(last, ":")
		body, meta, ok2 := strings.Cut(rest, "|d|")
		if !ok || !ok2 || name != check.MetricRTTDistribution || strings.Contains(meta, "@") ||
			meta != "#"+strings.Join(tags, ",") {
			t.Fatalf("line %q: want %s:v1:v2...|d|#%s without a sample rate", last, check.MetricRTTDistribution, strings.Join(tags, ","))
		}
		for v := range strings.SplitSeq(body, ":") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("value %q in %q: %v", v, last, err)
			}
			values = append(values, f)
		}
		return int64(len(values)) >= total
	})
	if int64(len(values)) != total {
		t.Fatalf("%d values received, want %d (one per sample)", len(values), total)
	}
	i := 0
	for _, b := range buckets {
		for range b.n {
			if values[i] < b.lo-0.0005 || values[i] > b.hi+0.0005 {
				t.Fatalf("value %d = %v, outside its bucket [%v, %v]", i, values[i], b.lo, b.hi)
			}
			i++
		}
	}
	t.Logf("%d samples in %d buckets: %d bytes of DogStatsD lines (%.1f bytes per sample)", total, len(buckets), bytes, float64(bytes)/float64(total))
}

// TestRunStatsdHostResolvesLater starts the daemon while the DogStatsD
// host name does not resolve (the client's constructor fails as
// statsd.New does then, with a *net.DNSError): the daemon starts, says
// so, drops what it measures, and sends once the name resolves, at a
// later interval, without a restart.
func TestRunStatsdHostResolvesLater(t *testing.T) {
	clearDDEnv(t)
	l, port := listenUDP(t)
	var calls atomic.Int32
	newClient := func(addr string, opts ...statsd.Option) (*statsd.Client, error) {
		if calls.Add(1) <= 2 {
			return nil, &net.DNSError{Err: "no such host", Name: "dsd.test", IsNotFound: true}
		}
		return statsd.New(fmt.Sprintf("127.0.0.1:%d", port), opts...)
	}
	conf := fmt.Sprintf("init_config:\n  statsd_ip: dsd.test\n  statsd_port: %d\ninstances:\n  - interface: eth0\n    min_collection_interval: 1\n", port)
	stderr := &syncBuffer{}
	d := &daemon{stderr: stderr, getenv: func(string) string { return "" }, signals: make(chan os.Signal), statsdOptions: testStatsdOptions,
		newStatsdClient: newClient,
		newCapture:      func(cfg capture.LiveConfig) (check.Capture, error) { return onePeer(cfg), nil }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.main(ctx, []string{"-c", writeFile(t, "go-metro.yaml", conf)}) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon: %v", err)
		}
	}()
	lines := l.collect(t, 5*time.Second, func(lines []string) bool { return hasLine(lines, "_sc|go_metro.can_capture", "iface:eth0") })
	if !hasLine(lines, "_sc|go_metro.can_capture", "iface:eth0") {
		t.Fatalf("nothing sent once the host resolved; log:\n%s", stderr.String())
	}
	log := stderr.String()
	for _, want := range []string{
		`level=WARN msg="the DogStatsD host does not resolve yet: go-metro tries again on every interval, and drops what it measures until it resolves" dogstatsd=dsd.test:`,
		`level=INFO msg="the DogStatsD host resolves: sending" dogstatsd=dsd.test:`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
}
