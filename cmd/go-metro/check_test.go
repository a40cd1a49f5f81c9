package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

// fakeCapture is a check.Capture that reports fixed peers and health.
// With retryErr, it starts but never captures, as a Live capture without
// CAP_NET_RAW.
type fakeCapture struct {
	cfg      capture.LiveConfig
	startErr error
	retryErr error
	peers    []capture.PeerStats
	health   capture.Health

	mu      sync.Mutex
	stopped bool
}

func (f *fakeCapture) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.startErr != nil {
		return f.startErr
	}
	f.health.State = capture.StateCapturing
	if f.retryErr != nil {
		f.health.State, f.health.LastError, f.health.LastErrorTime = capture.StateRetrying, f.retryErr, time.Now()
	}
	return nil
}

func (f *fakeCapture) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stopped = true
	f.health.State = capture.StateStopped
}

// Drain returns the peers, and counts 100 more packets.
func (f *fakeCapture) Drain(dst []capture.PeerStats) []capture.PeerStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.health.KernelPackets += 100
	return append(dst, f.peers...)
}

func (f *fakeCapture) Health() capture.Health {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeCapture) Peers() *capture.Peers { return nil }

func (f *fakeCapture) isStopped() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stopped
}

// fakeChecker returns a checker whose captures are fakes made by mk, and
// the captures it opened.
func fakeChecker(mk func(cfg capture.LiveConfig) *fakeCapture) (*checker, *[]*fakeCapture) {
	var mu sync.Mutex
	var opened []*fakeCapture
	c := &checker{
		newCapture: func(cfg capture.LiveConfig) (check.Capture, error) {
			f := mk(cfg)
			f.cfg = cfg
			mu.Lock()
			opened = append(opened, f)
			mu.Unlock()
			return f, nil
		},
		defaultRoute: func() (string, error) { return "eth7", nil },
	}
	return c, &opened
}

func ms2d(v float64) time.Duration { return time.Duration(v * 1e6) }

// twoPeers has 10.0.0.1 talking to 10.0.0.20 and 10.0.0.3.
func twoPeers(capture.LiveConfig) *fakeCapture {
	local := netip.MustParseAddr("10.0.0.1")
	p := func(remote string, n uint64, last, avg, min, max float64) capture.PeerStats {
		var s capture.PeerStats
		s.PeerKey = capture.AddrPeer(local, netip.MustParseAddr(remote))
		s.Count, s.Last, s.SRTT, s.RTTVar = n, ms2d(last), ms2d(avg), ms2d(avg/10)
		s.Min, s.Max, s.P50, s.P95, s.P99 = ms2d(min), ms2d(max), ms2d(avg), ms2d(max), ms2d(max)
		return s
	}
	a, b := p("10.0.0.20", 12, 1.5, 1.25, 1, 2), p("10.0.0.3", 3, 20, 21.5, 19.75, 24)
	a.Buckets = []capture.Bucket{{Lower: ms2d(1), Upper: ms2d(1.02), Count: 8}, {Lower: ms2d(1.98), Upper: ms2d(2), Count: 4}}
	b.Buckets = []capture.Bucket{{Lower: ms2d(19.75), Upper: ms2d(24), Count: 3}}
	b.TCP = capture.TCPCounts{Retransmits: 2, Opened: 1, ResetsRemote: 1}
	// A peer with counts and no sample: a refused connection.
	var refused capture.PeerStats
	refused.PeerKey = capture.AddrPeer(local, netip.MustParseAddr("10.0.0.9"))
	refused.TCP.Refused = 1
	return &fakeCapture{peers: []capture.PeerStats{a, b, refused}}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"check", "--bogus"}, "flag provided but not defined: -bogus"},
		{"argument", []string{"check", "eth0"}, `unexpected argument "eth0"`},
		{"runs zero", []string{"check", "--runs", "0"}, "invalid --runs 0: must be at least 1"},
		{"runs negative", []string{"check", "--runs=-2"}, "invalid --runs -2"},
		{"runs not a number", []string{"check", "--runs", "two"}, `invalid value "two" for flag -runs`},
		{"interval zero", []string{"check", "--interval", "0s"}, `invalid value "0s" for flag -interval: must be positive`},
		{"interval without unit", []string{"check", "--interval", "15"}, `invalid value "15" for flag -interval: want a duration such as 15s`},
		{"config without file", []string{"check", "-c"}, "flag needs an argument: -c"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("stderr does not contain %q:\n%s", tc.want, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
		})
	}
}

func TestCheckHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"check", "-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"Usage: go-metro check [-c FILE] [--interface IF] [--runs N] [--interval D] [--json]", "-runs N", "Exit status"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("help does not contain %q:\n%s", want, stderr.String())
		}
	}
	stdout.Reset()
	run([]string{"help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "go-metro check [-c FILE]") {
		t.Errorf("go-metro help does not list check:\n%s", stdout.String())
	}
}

func TestCheckConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string
	}{
		{
			name: "instance value",
			conf: "init_config:\ninstances:\n  - interface: eth0\n  - interface: eth1\n    ring_size: 5\n",
			want: []string{"conf.yaml: instances[1] (line 4): ", "invalid `ring_size` 5: must be between"},
		},
		{
			name: "init_config value",
			conf: "init_config:\n  snaplen: 40\ninstances:\n  - interface: eth0\n",
			want: []string{"conf.yaml: init_config (line 1): ", "invalid `snaplen` 40: must be between 128 and 65535"},
		},
		{
			name: "init_config value on a later line",
			conf: "# go-metro\n\ninit_config:\n  min_collection_interval: abc\ninstances:\n  - interface: eth0\n",
			want: []string{"conf.yaml: init_config (line 3): ", "invalid `min_collection_interval` \"abc\": must be a whole number"},
		},
		{
			name: "snaplen far too large",
			conf: "init_config:\n  snaplen: 99999999999999999999999\ninstances:\n  - interface: eth0\n",
			want: []string{"conf.yaml: init_config (line 1): ", "invalid `snaplen` 99999999999999999999999: out of range: far too large a number"},
		},
		{
			name: "typo hint kept with the error",
			conf: "instances:\n  - interfce: eth0\n",
			want: []string{"conf.yaml: instances[0] (line 2): ", "missing `interface`", "(unknown instance key `interfce`: did you mean `interface`?)"},
		},
		{
			name: "typo of a top-level key",
			conf: "init_config:\ninstancess:\n  - interface: eth0\n",
			want: []string{"conf.yaml: no `instances`", "(unknown top-level key `instancess`: did you mean `instances`?)"},
		},
		{
			name: "second YAML document",
			conf: "instances:\n  - interface: eth0\n---\ninstances:\n  - interface: eth1\n",
			want: []string{"conf.yaml: a second YAML document begins on line 4: a configuration is one document"},
		},
		{
			name: "instances and config",
			conf: "instances:\n  - interface: eth0\nconfig:\n  - interface: eth1\n",
			want: []string{"conf.yaml: both `instances` and `config` on lines 2 and 4: `config` is the old name of `instances`; keep only instances"},
		},
		{
			name: "duplicate instances",
			conf: "instances:\n  - interface: eth0\n    ips: [192.0.2.1, 10.0.0.0/8]\n    hosts: [Db.Example]\n  - interface: eth1\n  - interface: eth0\n    ips: [10.0.0.0/8, 192.0.2.1/32]\n    hosts: [db.example.]\n",
			want: []string{"conf.yaml: instances[2] (line 6) captures the same traffic as instances[0] (line 2): the same interface eth0, `netns` and peers, so every packet would be counted twice"},
		},
		{
			name: "alias bomb",
			conf: yamlBomb,
			want: []string{"conf.yaml: its aliases expand to more than 100000 YAML nodes"},
		},
		{
			name: "larger than 1 MiB",
			conf: "instances:\n  - interface: eth0\n" + strings.Repeat("#", 1<<20),
			want: []string{"conf.yaml: larger than 1048576 bytes (1 MiB), the most a configuration may have"},
		},
		{
			name: "wrong type",
			conf: "instances:\n  - interface: eth0\n    min_collection_interval: soon\n",
			want: []string{"conf.yaml: instances[0] (line 2): ", "invalid `min_collection_interval` \"soon\": must be a whole number"},
		},
		{
			name: "no instances",
			conf: "init_config: {}\n",
			want: []string{"conf.yaml: no `instances`"},
		},
		{
			name: "instances not a list",
			conf: "instances:\n  interface: eth0\n",
			want: []string{"conf.yaml: invalid `instances` on line 2: must be a list"},
		},
		{
			name: "not YAML",
			conf: "instances: [\n",
			want: []string{"parse ", "conf.yaml"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "conf.yaml", tc.conf)
			var stdout, stderr bytes.Buffer
			if code := run([]string{"check", "-c", path}, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q:\n%s", w, stderr.String())
				}
			}
		})
	}
	t.Run("endless file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "-c", "/dev/zero"}, &stdout, &stderr); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if want := "read the configuration /dev/zero: larger than 1048576 bytes (1 MiB)"; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	})
	t.Run("-c empty", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"check", "-c", ""}, &stdout, &stderr); code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if want := `go-metro check: usage: -c "": name a configuration file`; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q lacks %q", stderr.String(), want)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		missing := filepath.Join(t.TempDir(), "nope.yaml")
		if code := run([]string{"check", "-c", missing}, &stdout, &stderr); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		if !strings.Contains(stderr.String(), "nope.yaml: no such file") {
			t.Errorf("stderr: %s", stderr.String())
		}
	})
}

// yamlBomb is a billion laughs: nine levels of nine aliases.
var yamlBomb = func() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i <= 9; i++ {
		fmt.Fprintf(&b, "a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("instances:\n  - interface: eth0\n    tags: *a9\n")
	return b.String()
}()

// TestCheckConfigLoads checks configurations that are valid YAML, and
// those of go-metro's Agent 5 daemon, as go-metro check loads them:
// anchors in one section used in another, merge keys, a document that
// starts with `---`, the `config` key of Agent 5 (with a deprecation
// warning), and the same interface twice with different peers.
func TestCheckConfigLoads(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       []string // interface and tags of each instance
		warnings   []string
	}{
		{
			name: "anchors, aliases and merge keys across sections",
			conf: `init_config:
  service: &svc web
  snaplen: &snap 256
instances:
  - &eth0
    interface: eth0
    tags: &tags [env:prod, team:net]
    service: *svc
  - <<: *eth0
    interface: eth1
  - interface: eth2
    tags: *tags
`,
			want: []string{"eth0 [env:prod team:net]", "eth1 [env:prod team:net]", "eth2 [env:prod team:net]"},
		},
		{
			name: "document start",
			conf: "---\ninstances:\n  - interface: eth0\n",
			want: []string{"eth0 []"},
		},
		{
			name: "Agent 5 config key",
			conf: "init_config:\n  log_level: err\n  snaplen: 104\nconfig:\n  - interface: eth0\n    tags: [foo:bar]\n",
			want: []string{"eth0 [foo:bar]"},
			warnings: []string{"top-level key `config` is deprecated: it is the name go-metro's Agent 5 daemon gave the instances; rename it `instances`",
				"init_config `snaplen` 104 is below 128"},
		},
		{
			name: "same interface, other peers",
			conf: "instances:\n  - interface: eth0\n    ips: [192.0.2.1]\n  - interface: eth0\n    ips: [192.0.2.2]\n  - interface: eth0\n    netns: /proc/self/ns/net\n  - interface: eth0\n",
			want: []string{"eth0 []", "eth0 []", "eth0 []", "eth0 []"},
		},
		{
			name:     "Agent-only top-level keys",
			conf:     "ad_identifiers: [x]\ninstances:\n  - interface: eth0\n",
			want:     []string{"eth0 []"},
			warnings: []string{"top-level key `ad_identifiers` has an effect only inside the Agent; go-metro check and go-metro run ignore it"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "conf.yaml", tc.conf)
			c, _ := fakeChecker(twoPeers)
			insts, warnings, err := c.configure(&checkOptions{config: path})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range insts {
				cfg := in.chk.Config()
				got = append(got, fmt.Sprintf("%s %v", cfg.Instance.Interface, cfg.Instance.Tags))
				warnings = append(warnings, cfg.Warnings...)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("instances (-want +got):\n%s", diff)
			}
			if len(warnings) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", warnings, len(tc.warnings))
			}
			for _, w := range tc.warnings {
				if !slices.ContainsFunc(warnings, func(s string) bool { return strings.Contains(s, w) }) {
					t.Errorf("warnings %q lack %q", warnings, w)
				}
			}
			if strings.Contains(tc.conf, "*svc") && insts[0].chk.Config().Service != "web" {
				t.Errorf("service %q, want web from the alias", insts[0].chk.Config().Service)
			}
		})
	}
}

func TestCheckUnknownKeyWarning(t *testing.T) {
	path := writeFile(t, "conf.yaml", `init_config:
  snaplen: 256
  log_level: info
instances:
  - interface: eth0
    ring_sise: 4194304
`)
	c, _ := fakeChecker(twoPeers)
	var stdout, stderr bytes.Buffer
	if err := c.main(t.Context(), []string{"-c", path, "--interval", "10ms"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	want := "  Warning: unknown instance key `ring_sise` (did you mean `ring_size`?): it is ignored\n"
	if !strings.Contains(stdout.String(), want) {
		t.Errorf("stdout does not contain %q:\n%s", want, stdout.String())
	}

	// With --json, warnings go to stderr, once.
	stdout.Reset()
	stderr.Reset()
	if err := c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--runs", "2", "--json"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	want = "Warning: instances[0]: unknown instance key `ring_sise` (did you mean `ring_size`?): it is ignored\n"
	if stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
	if strings.Contains(stdout.String(), "Warning") {
		t.Errorf("warning in the JSON output:\n%s", stdout.String())
	}
}

func TestCheckText(t *testing.T) {
	path := writeFile(t, "conf.yaml", `init_config:
instances:
  - interface: eth0
    tags: [env:test]
    unknown_key: 1
`)
	c, opened := fakeChecker(twoPeers)
	var stdout, stderr bytes.Buffer
	if err := c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--runs", "2", "--interface", "eth3"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	run := `go_metro instances[0]: interface eth3, capture capturing
--------------------------------------------------------
       SRC        DST  SAMPLES    LAST     AVG  JITTER     MIN     P50     P95     P99     MAX  DISTRIBUTION
  10.0.0.1   10.0.0.3        3  20.000  21.500   2.150  19.750  21.500  24.000  24.000  24.000   3 in 1 bins
  10.0.0.1  10.0.0.20       12   1.500   1.250   0.125   1.000   1.250   2.000   2.000   2.000  12 in 2 bins
  RTTs in ms. AVG is the smoothed RTT and JITTER the RTT variation (RFC 6298);
  SAMPLES, MIN, P50 to P99 and MAX cover the interval. DISTRIBUTION: the samples of the
  system.net.tcp.rtt.distribution histogram buckets sent, and their number.

       SRC        DST  RETRANS  OPENED  REFUSED  TIMEOUTS  RST-LOCAL  RST-REMOTE  ZERO-WIN
  10.0.0.1   10.0.0.3        2       1        0         0          0           1         0
  10.0.0.1   10.0.0.9        -       -        1         -          -           -         -
  10.0.0.1  10.0.0.20        0       0        0         0          0           0         0
  TCP counts of the interval (go_metro.tcp.*).

  go_metro.packets.received       100
  go_metro.packets.dropped        0
  go_metro.packets.decode_errors  0
  go_metro.flows.active           0
  go_metro.flows.evicted          0
  go_metro.samples.discarded      0

  Service check go_metro.can_capture: OK
  Warning: unknown instance key ` + "`unknown_key`" + `: it is ignored

`
	want := "=== Run 1 of 2 (interval 10ms) ===\n\n" + run + "=== Run 2 of 2 (interval 10ms) ===\n\n" + run
	if diff := cmp.Diff(want, stdout.String()); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if len(*opened) != 1 || (*opened)[0].cfg.Interface != "eth3" {
		t.Errorf("captures opened: %+v", *opened)
	}
	if !(*opened)[0].isStopped() {
		t.Error("capture not stopped at the end")
	}
	if want := "Capturing on eth3: 2 runs, one every 10ms. Ctrl-C stops.\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

func TestCheckJSONMergesInstances(t *testing.T) {
	path := writeFile(t, "conf.yaml", `instances:
  - interface: eth0
  - interface: eth1
    min_collection_interval: 1
    tags: [role:db]
`)
	c, _ := fakeChecker(twoPeers)
	var stdout, stderr bytes.Buffer
	if err := c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--json", "--runs", "3"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d documents, want 3:\n%s", len(lines), stdout.String())
	}
	for _, l := range lines {
		if diff := cmp.Diff([]string{"series", "histogram_buckets", "service_checks"}, jsonKeys(t, l)); diff != "" {
			t.Errorf("document keys (-want +got):\n%s", diff)
		}
		var doc struct {
			Series []json.RawMessage `json:"series"`
			SCs    []json.RawMessage `json:"service_checks"`
		}
		if err := json.Unmarshal([]byte(l), &doc); err != nil {
			t.Fatal(err)
		}
		// Per instance: 2 peers * (9 RTT series + 7 TCP counts), 1 TCP
		// count of the refused peer, 6 telemetry series.
		if len(doc.Series) != 2*(2*16+1+6) || len(doc.SCs) != 2 {
			t.Fatalf("%d series and %d service checks, want %d and 2", len(doc.Series), len(doc.SCs), 2*(2*16+1+6))
		}
		for _, s := range doc.Series {
			if diff := cmp.Diff([]string{"metric", "type", "points", "tags"}, jsonKeys(t, string(s))); diff != "" {
				t.Fatalf("series keys (-want +got):\n%s", diff)
			}
		}
		var first, last check.Series
		json.Unmarshal(doc.Series[0], &first)
		json.Unmarshal(doc.Series[len(doc.Series)-1], &last)
		if diff := cmp.Diff([]string{"src:10.0.0.1", "dst:10.0.0.20", "iface:eth0"}, first.Tags); diff != "" {
			t.Errorf("first series tags (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"iface:eth1", "role:db"}, last.Tags); diff != "" {
			t.Errorf("last series tags (-want +got):\n%s", diff)
		}
		for i, sc := range doc.SCs {
			want := fmt.Sprintf(`{"check":"go_metro.can_capture","status":0,"message":"","tags":["iface:eth%d"%s]}`, i, map[int]string{1: `,"role:db"`}[i])
			if string(sc) != want {
				t.Errorf("service check %s, want %s", sc, want)
			}
		}
	}
}

func TestCheckDefaultInstance(t *testing.T) {
	c, opened := fakeChecker(func(capture.LiveConfig) *fakeCapture { return &fakeCapture{} })
	var stdout, stderr bytes.Buffer
	if err := c.main(t.Context(), []string{"--interval", "10ms"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if len(*opened) != 1 {
		t.Fatalf("%d captures, want 1", len(*opened))
	}
	got := (*opened)[0].cfg
	if got.Interface != "eth7" || len(got.Peers.IPs)+len(got.Peers.Hosts) != 0 || got.Netns != "" {
		t.Errorf("capture config %+v: want eth7, no peers", got)
	}
	if !strings.Contains(stdout.String(), "interface eth7, capture capturing\n") || !strings.Contains(stdout.String(), "No RTT samples in this interval.") {
		t.Errorf("output:\n%s", stdout.String())
	}

	c.defaultRoute = func() (string, error) { return "", errors.New("no default route; pass --interface") }
	if err := c.main(t.Context(), []string{"--interval", "10ms"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "pass --interface") {
		t.Errorf("err = %v", err)
	}
	// --interface needs no default route.
	if err := c.main(t.Context(), []string{"--interval", "10ms", "--interface", "any"}, &stdout, &stderr); err != nil {
		t.Error(err)
	}
}

func TestCheckStartFails(t *testing.T) {
	path := writeFile(t, "conf.yaml", "instances:\n  - interface: eth0\n  - interface: eth1\n")
	denied := fmt.Errorf("capture on eth: %w: grant CAP_NET_RAW", capture.ErrPermission)
	c, _ := fakeChecker(func(capture.LiveConfig) *fakeCapture { return &fakeCapture{startErr: denied} })
	var stdout, stderr bytes.Buffer
	begin := time.Now()
	err := c.main(t.Context(), []string{"-c", path, "--interval", "1h"}, &stdout, &stderr)
	if !errors.Is(err, capture.ErrPermission) {
		t.Fatalf("err = %v, want ErrPermission", err)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %v: a capture that cannot start should not wait for the interval", d)
	}
	for _, want := range []string{
		"instances[0]: start capture on eth0: capture on eth: operation not permitted",
		"instances[1]: start capture on eth1: capture on eth: operation not permitted",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not contain %q: %v", want, err)
		}
	}
	for _, want := range []string{
		"=== Start ===",
		"go_metro instances[1]: interface eth1, capture not started",
		"  Service check go_metro.can_capture: CRITICAL: start capture on eth1: capture on eth: operation not permitted: grant CAP_NET_RAW\n",
		"  Error: start capture on eth0: capture on eth: operation not permitted",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output does not contain %q:\n%s", want, stdout.String())
		}
	}

	// When one instance captures, the runs go on, and the exit status
	// reports the other.
	c, _ = fakeChecker(func(cfg capture.LiveConfig) *fakeCapture {
		if cfg.Interface == "eth1" {
			return &fakeCapture{startErr: denied}
		}
		return &fakeCapture{}
	})
	stdout.Reset()
	err = c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--runs", "2", "--json"}, &stdout, &stderr)
	if err == nil || !strings.HasPrefix(err.Error(), "instances[1]: start capture on eth1") {
		t.Errorf("err = %v", err)
	}
	if n := strings.Count(stdout.String(), `"status":2`); n != 2 {
		t.Errorf("%d CRITICAL service checks, want 2:\n%s", n, stdout.String())
	}
}

// TestCheckCannotCapture checks that a capture that starts but cannot
// capture (no CAP_NET_RAW: the Live capture retries, and the service
// check is CRITICAL) makes go-metro check exit 1, at once when no
// instance captures, and at the end when another one does.
func TestCheckCannotCapture(t *testing.T) {
	path := writeFile(t, "conf.yaml", "instances:\n  - interface: eth0\n  - interface: eth1\n")
	denied := fmt.Errorf("capture on eth0: %w: grant CAP_NET_RAW (setcap cap_net_raw+ep /usr/bin/go-metro) or run as root", capture.ErrPermission)
	c, _ := fakeChecker(func(capture.LiveConfig) *fakeCapture { return &fakeCapture{retryErr: denied} })
	var stdout, stderr bytes.Buffer
	begin := time.Now()
	err := c.main(t.Context(), []string{"-c", path, "--interval", "1h"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "instances[0]: go_metro.can_capture is CRITICAL: capture on eth0: operation not permitted: grant CAP_NET_RAW") ||
		!strings.Contains(err.Error(), "instances[1]: ") {
		t.Errorf("err = %v, want each instance's CRITICAL", err)
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	if d := time.Since(begin); d > 10*time.Second {
		t.Errorf("took %v: a capture that cannot start should not wait for the interval", d)
	}
	for _, want := range []string{"=== Start ===", "capture retrying", "Service check go_metro.can_capture: CRITICAL: capture on eth0: operation not permitted",
		"  Warning: capture on eth0: operation not permitted"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, stdout.String())
		}
	}

	// One instance captures: the runs go on, and the exit status reports
	// the other.
	c, _ = fakeChecker(func(cfg capture.LiveConfig) *fakeCapture {
		if cfg.Interface == "eth1" {
			return &fakeCapture{retryErr: denied}
		}
		return &fakeCapture{}
	})
	stdout.Reset()
	err = c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--runs", "2"}, &stdout, &stderr)
	if err == nil || !strings.HasPrefix(err.Error(), "instances[1]: go_metro.can_capture is CRITICAL") || exitCode(err) != 1 {
		t.Errorf("err = %v, want instances[1]'s CRITICAL and exit status 1", err)
	}
	if n := strings.Count(stdout.String(), "CRITICAL"); n != 2 {
		t.Errorf("%d CRITICAL service checks, want 2:\n%s", n, stdout.String())
	}
}

// exitCode is the exit status run gives err.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	return 1
}

func TestCheckInterrupted(t *testing.T) {
	c, opened := fakeChecker(twoPeers)
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(50*time.Millisecond, cancel)
	var stdout, stderr bytes.Buffer
	err := c.main(ctx, []string{"--interface", "eth0", "--interval", "1h", "--runs", "3"}, &stdout, &stderr)
	if err == nil || err.Error() != "interrupted after 0 of 3 runs" {
		t.Errorf("err = %v", err)
	}
	if len(*opened) != 1 || !(*opened)[0].isStopped() {
		t.Error("capture not stopped")
	}
	if stdout.Len() > 0 {
		t.Errorf("output:\n%s", stdout.String())
	}
}

func TestParseRoute4(t *testing.T) {
	const header = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT                                                       \n"
	for _, tc := range []struct {
		name, table, want, err string
	}{
		{
			name: "default",
			table: header +
				"eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0                                                                               \n" +
				"eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0                                                                               \n",
			want: "eth0",
		},
		{
			name: "lowest metric",
			table: header +
				"wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n" +
				"docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n" +
				"enp3s0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n",
			want: "enp3s0",
		},
		{
			name: "down and reject skipped",
			table: header +
				"eth0\t00000000\t010200C0\t0002\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"lo\t00000000\t00000000\t0201\t0\t0\t0\t00000000\t0\t0\t0\n" +
				"tun0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0\n",
			want: "tun0",
		},
		{
			name:  "no default route",
			table: header + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
		},
		{name: "empty"},
		{
			name:  "bad flags",
			table: header + "eth0\t00000000\t010200C0\tzz\t0\t0\t0\t00000000\t0\t0\t0\n",
			err:   `line 2: invalid flags "zz"`,
		},
		{
			name:  "short line",
			table: header + "eth0\t00000000\n",
			err:   "line 2: want at least 8 fields, have 2",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRoute4(strings.NewReader(tc.table))
			if msg := errString(err); msg != tc.err {
				t.Fatalf("err = %q, want %q", msg, tc.err)
			}
			if got != tc.want {
				t.Errorf("parseRoute4 = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseRoute6(t *testing.T) {
	const (
		local   = "fd000000000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     eth0\n"
		def     = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
		defWlan = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000258 00000002 00000000 00000003    wlan0\n"
		unreach = "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
		host    = "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000002 00000000 80200001       lo\n"
	)
	for _, tc := range []struct {
		name, table, want, err string
	}{
		{name: "default", table: local + def + host + unreach, want: "eth0"},
		{name: "lowest metric", table: def + defWlan, want: "wlan0"},
		{name: "only the unreachable route on lo", table: local + host + unreach},
		{name: "bad metric", table: strings.Replace(def, "00000400", "0000040g", 1), err: `line 1: invalid metric "0000040g"`},
		{name: "short line", table: "00000000000000000000000000000000 00\n", err: "line 1: want 10 fields, have 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseRoute6(strings.NewReader(tc.table))
			if msg := errString(err); msg != tc.err {
				t.Fatalf("err = %q, want %q", msg, tc.err)
			}
			if got != tc.want {
				t.Errorf("parseRoute6 = %q, want %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParseConfFileInterfaceOverride(t *testing.T) {
	conf := `init_config:
  idle_ttl: 30
instances:
  - interface: eth0
    ips: [192.0.2.9]
  -
  - {tags: [a:b]}
logz: []
`
	f, err := parseConfFile("conf.yaml", []byte(conf), "veth9")
	if err != nil {
		t.Fatal(err)
	}
	init, insts, warns := f.initYAML, f.instances, f.warnings
	if got := string(init); got != "idle_ttl: 30\n" {
		t.Errorf("init_config %q", got)
	}
	var got []string
	var lines []int
	for _, in := range insts {
		got = append(got, string(in.yaml))
		lines = append(lines, in.line)
	}
	if diff := cmp.Diff([]int{4, 6, 7}, lines); diff != "" {
		t.Errorf("lines (-want +got):\n%s", diff)
	}
	want := []string{
		"interface: veth9\nips: [192.0.2.9]\n",
		"interface: veth9\n",
		"{tags: ['a:b'], interface: veth9}\n",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("instances (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"conf.yaml: unknown top-level key `logz` (did you mean `logs`?): it is ignored; the check reads init_config and instances"}, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// checkDoc is one --json document.
type checkDoc struct {
	Series           []check.Series             `json:"series"`
	HistogramBuckets []check.HistogramBucket    `json:"histogram_buckets"`
	ServiceChecks    []check.ServiceCheckResult `json:"service_checks"`
}

// liveConf writes a conf.yaml that captures on the client side of pair.
func liveConf(t *testing.T, pair *testbed.Pair) string {
	return writeFile(t, "conf.yaml", fmt.Sprintf(`init_config:
instances:
  - interface: %s
    netns: %s
`, pair.ClientIf, pair.Client.Path()))
}

// checkWithTraffic runs go-metro check with args while request/response
// traffic crosses pair, and returns its output, and the reference's samples
// of the traffic to the server: those of a packet socket of its own on the
// client's side of pair, whose envelope holds every RTT statistic of the
// check (see vethEnvelope).
func checkWithTraffic(t *testing.T, pair *testbed.Pair, args ...string) (string, testbed.RefSamples) {
	t.Helper()
	tracker := testbed.TrackRetransmissions(t, pair.Client, pair.ClientIf)
	start := time.Now()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 100000, Gap: 5 * time.Millisecond})
	}()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"check"}, args...), &stdout, &stderr)
	select {
	case err := <-done:
		t.Errorf("traffic stopped before the check ended: %v", err)
	default:
		// Stopping the traffic fails the exchange in flight: ignore it.
		cancel()
		<-done
	}
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s\nstdout:\n%s", code, stderr.String(), stdout.String())
	}
	ref, err := tracker.Reference()
	if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), ref.To(pair.ServerAddr4).Between(start, time.Now())
}

// vethEnvelope returns the range, in milliseconds, in which every RTT
// statistic that go-metro reports of the traffic lies, if each of its
// samples is one of the reference's (testbed.RefSamples.Envelope): the
// reference reads the same veth device, which stamps a frame it receives
// once per socket (testbed.VethSlack). A busy machine
// lengthens the reference's RTTs as much as go-metro's.
func vethEnvelope(t *testing.T, ref testbed.RefSamples) (lo, hi float64) {
	t.Helper()
	if len(ref) == 0 {
		t.Fatal("the reference has no sample of the traffic")
	}
	l, h := ref.Envelope(testbed.VethSlack.Answer)
	t.Logf("reference: %d samples %v, median %v, envelope [%v, %v]", len(ref), ref.Counts(), ref.Median(), l, h)
	return float64(l) / float64(time.Millisecond), float64(h) / float64(time.Millisecond)
}

func TestCheckLive(t *testing.T) {
	t.Run("json", func(t *testing.T) {
		t.Parallel()
		pair := testbed.NewVethPair(t)
		out, ref := checkWithTraffic(t, pair, "-c", liveConf(t, pair), "--runs", "2", "--interval", "1s", "--json")
		lo, hi := vethEnvelope(t, ref)
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != 2 {
			t.Fatalf("%d documents, want 2:\n%s", len(lines), out)
		}
		peer := []string{"src:192.0.2.1", "dst:192.0.2.2", "iface:veth0"}
		var received float64
		for i, l := range lines {
			t.Logf("document %d: %s", i+1, l)
			var doc checkDoc
			dec := json.NewDecoder(strings.NewReader(l))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("document %d: %v\n%s", i+1, err, l)
			}
			b := check.Batch{Series: doc.Series, ServiceChecks: doc.ServiceChecks}
			for _, s := range doc.Series {
				if s.Host != "" {
					t.Errorf("series %s has host %q", s.Metric, s.Host)
				}
				if len(s.Points) != 1 || time.Since(time.Unix(int64(s.Points[0][0]), 0)).Abs() > time.Minute {
					t.Errorf("series %s points %v: want one point stamped now", s.Metric, s.Points)
				}
			}
			for _, m := range []string{check.MetricRTT, check.MetricRTTAvg, check.MetricRTTMin, check.MetricRTTMax, check.MetricRTTP50, check.MetricRTTP95, check.MetricRTTP99} {
				got := b.Find(m, peer...)
				if len(got) != 1 {
					t.Errorf("run %d: %d %s series tagged %v, want 1", i+1, len(got), m, peer)
					continue
				}
				if v := got[0].Points[0][1]; v <= 0 || v < lo || v > hi || got[0].Type != check.TypeGauge {
					t.Errorf("run %d: %s = %v (%s): want a gauge within the reference's envelope [%.3f, %.3f] ms", i+1, m, v, got[0].Type, lo, hi)
				}
			}
			if got := b.Find(check.MetricRTTJitter, peer...); len(got) != 1 || got[0].Points[0][1] < 0 || got[0].Points[0][1] > hi {
				t.Errorf("run %d: jitter %+v, want 0 to %.3f ms", i+1, got, hi)
			}
			// One request per 5 ms or so over 1 s: well over 20 samples.
			if got := b.Find(check.MetricRTTSamples, peer...); len(got) != 1 || got[0].Type != check.TypeCount || got[0].Points[0][1] < 20 {
				t.Errorf("run %d: samples %+v: want a count of at least 20", i+1, got)
			}
			for m, typ := range map[string]string{
				check.MetricPacketsReceived: check.TypeCount, check.MetricPacketsDropped: check.TypeCount,
				check.MetricDecodeErrors: check.TypeCount, check.MetricFlowsActive: check.TypeGauge,
				check.MetricFlowsEvicted: check.TypeCount, check.MetricSamplesDiscarded: check.TypeCount,
			} {
				got := b.Find(m, "iface:veth0")
				if len(got) != 1 || got[0].Type != typ {
					t.Errorf("run %d: telemetry %s: %+v, want one %s", i+1, m, got, typ)
				}
			}
			// The capture reads the kernel's counters once a second, so
			// a 1 s run may see only some of its packets.
			if got := b.Find(check.MetricPacketsReceived); len(got) == 1 {
				received += got[0].Points[0][1]
			}
			if got := b.Find(check.MetricFlowsActive); len(got) == 1 && got[0].Points[0][1] != 1 {
				t.Errorf("run %d: %v active flows, want 1", i+1, got[0].Points[0][1])
			}
			want := []check.ServiceCheckResult{{Check: check.ServiceCheckName, Status: 0, Message: "", Tags: []string{"iface:veth0"}}}
			if diff := cmp.Diff(want, doc.ServiceChecks); diff != "" {
				t.Errorf("run %d: service checks (-want +got):\n%s", i+1, diff)
			}
		}
		if received < 40 {
			t.Errorf("%v packets received in two runs, want at least 40", received)
		}
	})
	t.Run("text", func(t *testing.T) {
		t.Parallel()
		pair := testbed.NewVethPair(t)
		out, _ := checkWithTraffic(t, pair, "-c", liveConf(t, pair), "--runs", "1", "--interval", "1s")
		t.Logf("output:\n%s", out)
		lines := strings.Split(out, "\n")
		for _, want := range []string{
			"=== Run 1 of 1 (interval 1s) ===",
			"go_metro instances[0]: interface veth0 in netns " + pair.Client.Path() + ", capture capturing",
			"  Service check go_metro.can_capture: OK",
		} {
			if !slices.Contains(lines, want) {
				t.Errorf("no line %q", want)
			}
		}
		var header, row []string
		for i, l := range lines {
			if f := strings.Fields(l); len(f) > 0 && f[0] == "SRC" && i+1 < len(lines) && header == nil {
				header, row = f, strings.Fields(lines[i+1]) // the RTT table, the first
			}
		}
		if diff := cmp.Diff([]string{"SRC", "DST", "SAMPLES", "LAST", "AVG", "JITTER", "MIN", "P50", "P95", "P99", "MAX", "DISTRIBUTION"}, header); diff != "" {
			t.Fatalf("table header (-want +got):\n%s", diff)
		}
		// The distribution cell is "N in M bins".
		if len(row) != len(header)+3 || row[0] != "192.0.2.1" || row[1] != "192.0.2.2" || row[len(row)-1] != "bins" || row[2] != row[len(header)-1] {
			t.Fatalf("table row %q", row)
		}
		if !strings.Contains(out, "  go_metro.packets.received  ") {
			t.Error("no telemetry")
		}
	})
}

// TestCheckRuntimeMetricsOnce checks that go-metro check sends the
// process's runtime.go.* metrics once per run, whatever the number of
// instances, and without an iface tag, even one listed in `tags`.
func TestCheckRuntimeMetricsOnce(t *testing.T) {
	path := writeFile(t, "conf.yaml", "init_config:\n  runtime_metrics: true\ninstances:\n  - interface: eth0\n    tags: [env:prod, iface:eth0]\n  - interface: eth1\n    tags: [env:prod]\n")
	c, _ := fakeChecker(twoPeers)
	var stdout, stderr bytes.Buffer
	if err := c.main(t.Context(), []string{"-c", path, "--interval", "10ms", "--runs", "2", "--json"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2", len(docs))
	}
	for i, line := range docs {
		var doc checkDoc
		if err := json.Unmarshal([]byte(line), &doc); err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range doc.Series {
			if s.Metric != check.MetricGoNumGoroutine {
				continue
			}
			n++
			if slices.ContainsFunc(s.Tags, func(t string) bool { return strings.HasPrefix(t, "iface:") }) {
				t.Errorf("run %d: %s tagged %q", i+1, s.Metric, s.Tags)
			}
		}
		if n != 1 {
			t.Errorf("run %d: %s sent %d times, want once", i+1, check.MetricGoNumGoroutine, n)
		}
	}
}
