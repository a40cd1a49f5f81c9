package check_test

import (
	"bytes"
	stdcmp "cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

// normalize sorts the tags of every series and service check, and the
// series by metric and tags, so that batches compare as sets.
func normalize(b check.Batch) check.Batch {
	out := check.Batch{Series: []check.Series{}, ServiceChecks: []check.ServiceCheckResult{}, HistogramBuckets: []check.HistogramBucket{}}
	for _, h := range b.HistogramBuckets {
		h.Tags = sortedTags(h.Tags...)
		out.HistogramBuckets = append(out.HistogramBuckets, h)
	}
	slices.SortStableFunc(out.HistogramBuckets, func(a, b check.HistogramBucket) int {
		return stdcmp.Or(strings.Compare(a.Metric, b.Metric), strings.Compare(strings.Join(a.Tags, ","), strings.Join(b.Tags, ",")),
			stdcmp.Compare(a.LowerBound, b.LowerBound))
	})
	for _, s := range b.Series {
		s.Tags = sortedTags(s.Tags...)
		out.Series = append(out.Series, s)
	}
	slices.SortStableFunc(out.Series, func(a, b check.Series) int { return strings.Compare(seriesKey(a), seriesKey(b)) })
	for _, sc := range b.ServiceChecks {
		sc.Tags = sortedTags(sc.Tags...)
		out.ServiceChecks = append(out.ServiceChecks, sc)
	}
	return out
}

// TestRunPCAPReplay replays recorded captures of a 10 ms path into the
// check in two parts, with a run after each and one more run after the
// end, and checks every series and service check of every run.
func TestRunPCAPReplay(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		split int // frames fed before the first run
		local netip.Addr
		peer  netip.Addr
		// samples is the number of RTT samples of the whole file
		// (capture/testdata/README.md).
		samples uint64
		// upper bounds max, p99 and the smoothed RTT: the delay line
		// held two frames of reqresp_ts_v6 late, giving 15 and 20 ms
		// samples that tshark sees too.
		upper float64
	}{
		{name: "reqresp-ipv4-seqack", file: "reqresp_nots_v4.pcap", split: 24, local: pcapLocal4, peer: pcapServer4, samples: 22, upper: 10.6},
		{name: "reqresp-ipv6-timestamps", file: "reqresp_ts_v6.pcap", split: 24, local: pcapLocal6, peer: pcapServer6, samples: 22, upper: 20.2},
		{name: "short-connections", file: "short_conns_v4.pcap", split: 50, local: pcapLocal4, peer: pcapServer4, samples: 30, upper: 10.6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frames := loadPCAP(t, tt.file)
			c, fake := withFake(t, "interface: eth0\ntags: [env:test, team:net]\n", "", nil)
			c.Hostname = "host-a"
			rec := newRecorder(t)
			base := []string{"iface:eth0", "env:test", "team:net"}
			peerTags := append([]string{"src:" + tt.local.String(), "dst:" + tt.peer.String()}, base...)
			ok := []check.ServiceCheckResult{{Check: check.ServiceCheckName, Status: servicecheck.ServiceCheckOK, Tags: base, Host: "host-a"}}

			var total uint64
			for i, part := range [][]capture.Frame{frames[:tt.split], frames[tt.split:], nil} {
				fake.feed(part)
				got := run(t, c, rec)
				drained := fake.lastDrain()

				want := check.Batch{ServiceChecks: ok}
				if part != nil {
					if len(drained) != 1 || drained[0].PeerKey != capture.AddrPeer(tt.local, tt.peer) {
						t.Fatalf("run %d: engine drained %+v, want one peer %v -> %v", i, drained, tt.local, tt.peer)
					}
					p := drained[0]
					total += p.Count
					want.Series = peerSeries(p, peerTags)
					want.HistogramBuckets = peerBuckets(p, peerTags, "host-a")
					checkRTT(t, i, rttSeries(got), tt.upper)
				} else if len(drained) != 0 {
					t.Fatalf("run %d: engine drained %+v after no new frames", i, drained)
				}
				want.Series = append(want.Series, telemetry{
					received:    float64(len(part)),
					flowsActive: float64(fake.Health().Stats.Flows),
				}.series(base)...)
				for j := range want.Series {
					want.Series[j].Host = "host-a"
				}
				if diff := cmp.Diff(normalize(want), normalize(got)); diff != "" {
					t.Errorf("run %d: batch mismatch (-want +got):\n%s", i, diff)
				}
			}
			if total != tt.samples {
				t.Errorf("%s: %d samples over the runs, want %d", tt.file, total, tt.samples)
			}
		})
	}
}

// checkRTT checks the RTT gauges of one peer against the 10 ms path of the
// recorded captures: the last, minimum and median samples within 10 to
// 10.6 ms (the delay line adds up to about 0.5 ms), the others between the
// minimum and upper, and the jitter below upper-10 ms.
func checkRTT(t *testing.T, run int, series []check.Series, upper float64) {
	t.Helper()
	v := map[string]float64{}
	for _, s := range series {
		v[s.Metric] = s.Points[0][1]
	}
	for _, m := range []string{check.MetricRTT, check.MetricRTTMin, check.MetricRTTP50} {
		if v[m] < 10 || v[m] > 10.6 {
			t.Errorf("run %d: %s = %.3f ms, want 10 to 10.6 ms", run, m, v[m])
		}
	}
	for _, m := range []string{check.MetricRTTAvg, check.MetricRTTMax, check.MetricRTTP95, check.MetricRTTP99} {
		if v[m] < v[check.MetricRTTMin] || v[m] > upper {
			t.Errorf("run %d: %s = %.3f ms, want %.3f to %.1f ms", run, m, v[m], v[check.MetricRTTMin], upper)
		}
	}
	if j := v[check.MetricRTTJitter]; j <= 0 || j > upper-10 {
		t.Errorf("run %d: %s = %.3f ms, want above 0 and at most %.1f ms", run, check.MetricRTTJitter, j, upper-10)
	}
	if v[check.MetricRTTSamples] < 1 {
		t.Errorf("run %d: %s = %v, want at least 1", run, check.MetricRTTSamples, v[check.MetricRTTSamples])
	}
}

// TestRunDstTags replays an IPv6 and an IPv4 capture (two peers of one
// host) with peer lists from `ips` and `hosts`, and checks that the dst
// tag is the configured host name where a host resolved to the peer, and
// the address otherwise, and that peers outside the list are not timed.
func TestRunDstTags(t *testing.T) {
	resolver := fakeResolver{
		"server.example":  {pcapServer4, pcapServer6},
		"server4.example": {pcapServer4},
		"server6.example": {pcapServer6},
	}
	tests := []struct {
		name  string
		peers string // YAML lines of the instance
		want  map[netip.Addr]string
	}{
		{name: "all-peers", want: map[netip.Addr]string{pcapServer4: "192.0.2.2", pcapServer6: "2001:db8::2"}},
		{name: "ips", peers: "ips: [192.0.2.2, 2001:db8::/64]", want: map[netip.Addr]string{pcapServer4: "192.0.2.2", pcapServer6: "2001:db8::2"}},
		{name: "hosts", peers: "hosts: [server.example]", want: map[netip.Addr]string{pcapServer4: "server.example", pcapServer6: "server.example"}},
		{name: "ips-and-hosts", peers: "ips: [192.0.2.2]\nhosts: [server6.example]", want: map[netip.Addr]string{pcapServer4: "192.0.2.2", pcapServer6: "server6.example"}},
		{name: "host-named-over-ip", peers: "ips: [192.0.2.2]\nhosts: [server4.example]", want: map[netip.Addr]string{pcapServer4: "server4.example"}},
		{name: "ip-literal-in-hosts", peers: "hosts: [\"2001:db8::2\"]", want: map[netip.Addr]string{pcapServer6: "2001:db8::2"}},
	}
	v6, v4 := loadPCAP(t, "reqresp_ts_v6.pcap"), loadPCAP(t, "reqresp_nots_v4.pcap")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := withFake(t, "interface: eth0\ntags: [env:test]\n"+tt.peers, "", resolver)
			rec := newRecorder(t)
			fake.feed(v6) // recorded first, so capture time runs forward
			fake.feed(v4)
			b := run(t, c, rec)
			if sc := canCapture(t, b); sc.Status != servicecheck.ServiceCheckOK {
				t.Errorf("service check %v %q, want OK", sc.Status, sc.Message)
			}
			// Each peer has its own local address: key the tag sets by it.
			want := map[string][]string{}
			for remote, dst := range tt.want {
				src := "src:" + pcapLocal4.String()
				if remote.Is6() {
					src = "src:" + pcapLocal6.String()
				}
				want[src] = sortedTags(src, "dst:"+dst, "iface:eth0", "env:test")
			}
			got := map[string][]string{}
			for _, s := range b.Find(check.MetricRTT) {
				for _, tag := range s.Tags {
					if strings.HasPrefix(tag, "src:") {
						got[tag] = sortedTags(s.Tags...)
					}
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tags of each peer's %s (-want +got):\n%s", check.MetricRTT, diff)
			}
			if n, want := len(rttSeries(b)), 9*len(tt.want); n != want {
				t.Errorf("%d RTT series, want %d (9 for each of %d peers)", n, want, len(tt.want))
			}
		})
	}
}

// TestRunInstanceTags checks where the instance tags come from: the check
// adds them itself in the daemon, while inside the Agent the sender adds
// them (CommonConfigure), so that the check must not repeat them.
func TestRunInstanceTags(t *testing.T) {
	tests := []struct {
		name    string
		inAgent bool
		base    []string
	}{
		{name: "daemon", base: []string{"iface:eth0", "env:test", "team:net"}},
		{name: "agent", inAgent: true, base: []string{"iface:eth0"}},
	}
	frames := loadPCAP(t, "reqresp_nots_v4.pcap")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &check.Check{InAgent: tt.inAgent}
			if err := c.Configure([]byte("interface: eth0\ntags: [env:test, team:net]"), nil); err != nil {
				t.Fatal(err)
			}
			fake := newFakeCapture(t, c.Config().Capture, nil)
			c.NewCapture = func(capture.LiveConfig) (check.Capture, error) { return fake, nil }
			defer c.Cancel()
			fake.feed(frames)
			b := run(t, c, newRecorder(t))
			peer := sortedTags(append([]string{"src:192.0.2.1", "dst:192.0.2.2"}, tt.base...)...)
			for _, s := range b.Series {
				want := sortedTags(tt.base...)
				switch {
				case s.Metric == check.MetricResets:
					want = sortedTags(append(slices.Clone(peer), "sender:"+strings.TrimPrefix(tagValue(s.Tags, "sender"), "sender:"))...)
				case isPeerSeries(s):
					want = peer
				}
				if diff := cmp.Diff(want, sortedTags(s.Tags...)); diff != "" {
					t.Errorf("%s tags (-want +got):\n%s", s.Metric, diff)
				}
			}
			if diff := cmp.Diff(sortedTags(tt.base...), sortedTags(canCapture(t, b).Tags...)); diff != "" {
				t.Errorf("service check tags (-want +got):\n%s", diff)
			}
			if n := len(rttSeries(b)); n != 9 {
				t.Errorf("%d RTT series, want 9", n)
			}
		})
	}
}

// TestRunUnresolvedHost checks that a host that does not resolve makes the
// service check WARNING and a warning, naming the host, while the hosts
// that resolve are timed.
func TestRunUnresolvedHost(t *testing.T) {
	resolver := fakeResolver{"server.example": {pcapServer4}}
	c, fake := withFake(t, "interface: eth0\nhosts: [server.example, gone.example]", "", resolver)
	rec := newRecorder(t)
	fake.feed(loadPCAP(t, "reqresp_nots_v4.pcap"))
	b := run(t, c, rec)
	sc := canCapture(t, b)
	if sc.Status != servicecheck.ServiceCheckWarning || !strings.Contains(sc.Message, "gone.example") || strings.Contains(sc.Message, "server.example") {
		t.Errorf("service check %v %q, want WARNING naming gone.example only", sc.Status, sc.Message)
	}
	if s := b.Find(check.MetricRTT, "dst:server.example"); len(s) != 1 {
		t.Errorf("series of %s with dst:server.example: %+v, want one", check.MetricRTT, s)
	}
	if w := fmt.Sprint(c.Warnings()); !strings.Contains(w, "gone.example") {
		t.Errorf("Warnings() = %s, want one naming gone.example", w)
	}
}

// TestServiceCheck drives the check with crafted capture health and checks
// the state and message of go_metro.can_capture on each run, its tags,
// the warnings, and that the telemetry is submitted whatever the state.
func TestServiceCheck(t *testing.T) {
	const (
		ok       = servicecheck.ServiceCheckOK
		warning  = servicecheck.ServiceCheckWarning
		critical = servicecheck.ServiceCheckCritical
	)
	permErr := fmt.Errorf("capture on eth0: %w: grant CAP_NET_RAW (setcap cap_net_raw+ep /opt/datadog-agent/embedded/bin/agent) or run as root", capture.ErrPermission)
	noIfErr := fmt.Errorf("capture on eth0: find interface %q: %w: retrying until it appears; check `interface` if it never does", "eth0", capture.ErrNoInterface)
	panicErr := errors.New("capture on eth0: capture goroutine panicked: boom (recovered; restarting it)")
	readErr := errors.New("capture on eth0: read: the socket reported an error: the interface went down or was removed; reopening")
	noLocal := "no local address on eth0: no segment can be timed until one is configured (add local_ips, or check the interface)"

	type step struct {
		health  func(h *capture.Health) // applied before the run; nil: no change
		status  servicecheck.ServiceCheckStatus
		message []string // substrings of the message; none: empty message
		dropped float64  // go_metro.packets.dropped of the run
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "ok", steps: []step{{status: ok}, {status: ok}}},
		{name: "kernel-drops-in-interval", steps: []step{
			{status: ok},
			{health: func(h *capture.Health) { h.KernelDrops = 7 }, status: warning, dropped: 7,
				message: []string{"kernel dropped 7 packets", "raise `ring_size` (now 8388608 bytes)"}},
			{status: ok},
			{health: func(h *capture.Health) { h.KernelDrops = 9 }, status: warning, dropped: 2, message: []string{"dropped 2 packets"}},
		}},
		{name: "unresolved-hosts", steps: []step{
			{health: func(h *capture.Health) { h.Unresolved = []string{"db.example", "cache.example"} }, status: warning,
				message: []string{"hosts do not resolve: db.example, cache.example"}},
			{health: func(h *capture.Health) { h.Unresolved = nil }, status: ok},
		}},
		{name: "no-local-address", steps: []step{
			{health: func(h *capture.Health) { h.LocalAddrs, h.Warnings = 0, []string{noLocal} }, status: warning, message: []string{noLocal}},
		}},
		{name: "recovered-from-error", steps: []step{
			{status: ok},
			{health: func(h *capture.Health) { h.LastError, h.LastErrorTime = readErr, time.Now() }, status: warning,
				message: []string{"capture recovered from: " + readErr.Error()}},
			{status: ok}, // the same error, before the previous run
		}},
		{name: "starting", steps: []step{
			{health: func(h *capture.Health) { h.State = capture.StateStarting }, status: warning, message: []string{"capture is starting"}},
			{health: func(h *capture.Health) { h.State = capture.StateCapturing }, status: ok},
		}},
		{name: "several-warnings", steps: []step{
			{health: func(h *capture.Health) { h.KernelDrops, h.Unresolved = 3, []string{"db.example"} }, status: warning, dropped: 3,
				message: []string{"dropped 3 packets", "db.example"}},
		}},
		{name: "permission", steps: []step{
			{health: func(h *capture.Health) {
				h.State, h.LastError, h.LastErrorTime, h.Failures = capture.StateRetrying, permErr, time.Now(), 3
			}, status: critical, message: []string{"operation not permitted", "setcap cap_net_raw+ep"}},
			{status: critical, message: []string{"setcap cap_net_raw+ep"}}, // still failing
		}},
		{name: "missing-interface", steps: []step{
			{health: func(h *capture.Health) {
				h.State, h.LastError, h.LastErrorTime, h.Failures = capture.StateRetrying, noIfErr, time.Now(), 1
			}, status: critical, message: []string{"eth0", "no such network interface", "check `interface`"}},
			{health: func(h *capture.Health) { h.State, h.Failures = capture.StateCapturing, 0 }, status: ok},
		}},
		{name: "repeated-failures", steps: []step{
			{health: func(h *capture.Health) {
				h.State, h.LastError, h.LastErrorTime, h.Failures = capture.StateRetrying, readErr, time.Now(), 5
			}, status: critical, message: []string{readErr.Error()}},
		}},
		{name: "panic", steps: []step{
			{status: ok},
			// Recovered and already capturing again: still CRITICAL once.
			{health: func(h *capture.Health) { h.Panics, h.LastError, h.LastErrorTime = 1, panicErr, time.Now() }, status: critical,
				message: []string{"panicked: boom", "please report"}},
			{status: ok},
			{health: func(h *capture.Health) {
				h.Panics, h.State, h.LastError, h.LastErrorTime = 2, capture.StateRetrying, panicErr, time.Now()
			}, status: critical, message: []string{"please report"}},
		}},
		{name: "stopped", steps: []step{
			{health: func(h *capture.Health) { h.State = capture.StateStopped }, status: critical, message: []string{"capture is stopped"}},
		}},
	}
	base := []string{"iface:eth0", "env:test"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := withFake(t, "interface: eth0\ntags: [env:test]", "", nil)
			c.StartWait = time.Millisecond
			rec := newRecorder(t)
			for i, st := range tt.steps {
				if st.health != nil {
					fake.setHealth(st.health)
				}
				b := run(t, c, rec)
				sc := canCapture(t, b)
				if sc.Status != st.status {
					t.Errorf("run %d: status %v %q, want %v", i, sc.Status, sc.Message, st.status)
				}
				for _, m := range st.message {
					if !strings.Contains(sc.Message, m) {
						t.Errorf("run %d: message %q lacks %q", i, sc.Message, m)
					}
				}
				if len(st.message) == 0 && sc.Message != "" {
					t.Errorf("run %d: message %q, want none", i, sc.Message)
				}
				if diff := cmp.Diff(sortedTags(base...), sortedTags(sc.Tags...)); diff != "" {
					t.Errorf("run %d: service check tags (-want +got):\n%s", i, diff)
				}
				// Telemetry is submitted in every state.
				want := telemetry{dropped: st.dropped}.series(base)
				var got []check.Series
				for _, s := range b.Series {
					if !isRTT(s) {
						got = append(got, s)
					}
				}
				if diff := cmp.Diff(normalize(check.Batch{Series: want}).Series, normalize(check.Batch{Series: got}).Series); diff != "" {
					t.Errorf("run %d: telemetry (-want +got):\n%s", i, diff)
				}
				// A WARNING's causes, and a CRITICAL's message, are
				// warnings of the run too: `agent status` shows them.
				warns := fmt.Sprint(c.Warnings())
				if st.status == critical && !strings.Contains(warns, sc.Message) {
					t.Errorf("run %d: Warnings() = %s, lacks the CRITICAL message %q", i, warns, sc.Message)
				}
				if st.status == warning {
					for _, m := range st.message {
						if !strings.Contains(warns, m) {
							t.Errorf("run %d: Warnings() = %s, lacks %q", i, warns, m)
						}
					}
				}
				if st.status == ok && warns != "[]" {
					t.Errorf("run %d: Warnings() = %s, want none", i, warns)
				}
			}
		})
	}
}

// TestRunStartFailure checks that a capture that cannot be created or
// started makes Run return the error and submit CRITICAL with it, and
// nothing else, on every run.
func TestRunStartFailure(t *testing.T) {
	notSupported := fmt.Errorf("live capture: %w on plan9", capture.ErrNotSupported)
	allLocal := errors.New("the peers in `ips` and `hosts` are all local addresses of this host (192.0.2.1): go-metro times traffic to remote peers; list remote addresses or leave both empty")
	tests := []struct {
		name       string
		newErr     error // returned by NewCapture
		startErr   error // returned by Start
		wantCause  error
		wantStarts int
	}{
		{name: "new-capture", newErr: notSupported, wantCause: capture.ErrNotSupported},
		{name: "start", startErr: allLocal, wantCause: allLocal, wantStarts: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := configure(t, "interface: eth0\ntags: [env:test]", "")
			fake := newFakeCapture(t, c.Config().Capture, nil)
			fake.startErr = tt.startErr
			c.NewCapture = func(capture.LiveConfig) (check.Capture, error) {
				if tt.newErr != nil {
					return nil, tt.newErr
				}
				return fake, nil
			}
			defer c.Cancel()
			rec := newRecorder(t)
			for i := range 2 {
				start := time.Now()
				err := c.Run(rec)
				if d := time.Since(start); d > 100*time.Millisecond {
					t.Errorf("run %d took %v, want under 100 ms", i, d)
				}
				if !errors.Is(err, tt.wantCause) {
					t.Fatalf("run %d: Run() = %v, want an error wrapping %v", i, err, tt.wantCause)
				}
				if !strings.Contains(err.Error(), "start capture on eth0") {
					t.Errorf("run %d: error %q should name the interface", i, err)
				}
				want := check.Batch{
					Series: []check.Series{},
					ServiceChecks: []check.ServiceCheckResult{{
						Check: check.ServiceCheckName, Status: servicecheck.ServiceCheckCritical,
						Message: err.Error(), Tags: []string{"iface:eth0", "env:test"},
					}},
				}
				if diff := cmp.Diff(normalize(want), normalize(rec.Last())); diff != "" {
					t.Errorf("run %d: batch (-want +got):\n%s", i, diff)
				}
			}
			if starts, _ := fake.counts(); starts != tt.wantStarts {
				t.Errorf("Start called %d times, want %d: a start failure is not retried", starts, tt.wantStarts)
			}
		})
	}
}

// TestRunNotConfigured checks that Run before Configure fails and still
// commits.
func TestRunNotConfigured(t *testing.T) {
	var c check.Check
	rec := newRecorder(t)
	if err := c.Run(rec); err == nil || !strings.Contains(err.Error(), "not configured") {
		t.Errorf("Run() = %v, want a not-configured error", err)
	}
	if n := len(rec.Batches()); n != 1 {
		t.Errorf("%d batches committed, want 1", n)
	}
}

// TestStartsOnFirstRun checks the capture is opened lazily, once, with the
// configuration the check built.
func TestStartsOnFirstRun(t *testing.T) {
	c := configure(t, "interface: eth1\nnetns: /run/netns/blue\nring_size: 2097152\nmethods: [timestamp]\nips: [198.51.100.0/24]\nlocal_ips: [203.0.113.5]", "idle_ttl: 120\nexp_ttl: 30\nmax_flows: 1000\nsnaplen: 200")
	var (
		calls int
		got   capture.LiveConfig
	)
	fake := newFakeCapture(t, c.Config().Capture, nil)
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		calls++
		got = cfg
		return fake, nil
	}
	defer c.Cancel()
	if calls != 0 {
		t.Fatal("NewCapture called before the first Run")
	}
	rec := newRecorder(t)
	for range 3 {
		run(t, c, rec)
	}
	if starts, _ := fake.counts(); calls != 1 || starts != 1 {
		t.Errorf("NewCapture called %d times and Start %d times over 3 runs, want 1 and 1", calls, starts)
	}
	want := capture.LiveConfig{
		Interface: "eth1",
		Netns:     "/run/netns/blue",
		Snaplen:   200,
		RingSize:  2 << 20,
		Peers:     capture.PeerSpec{IPs: []string{"198.51.100.0/24"}},
		Local:     []string{"203.0.113.5"},
		Workers:   1,
		Engine: capture.Config{
			Methods:    capture.Methods(0).With(capture.MethodTimestamp),
			IdleTTL:    120 * time.Second,
			ExpTTL:     30 * time.Second,
			MaxFlows:   1000,
			MaxPeers:   capture.DefaultMaxPeers,
			MaxPorts:   capture.DefaultMaxPorts,
			SYNTimeout: capture.DefaultSYNTimeout,
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capture configuration (-want +got):\n%s", diff)
	}
}

// TestCancel checks that Cancel stops the capture once, is harmless when
// repeated, and that a cancelled check starts nothing again: a Run after
// Cancel (one the scheduler had queued) submits nothing, not even a
// CRITICAL service check, since the instance is gone, and logs at Debug.
func TestCancel(t *testing.T) {
	c, fake := withFake(t, "interface: eth0", "", nil)
	run(t, c, newRecorder(t))
	c.Cancel()
	c.Cancel()
	if starts, stops := fake.counts(); starts != 1 || stops != 1 {
		t.Errorf("after Run and two Cancels: %d starts, %d stops, want 1 and 1", starts, stops)
	}
	if s := fake.Health().State; s != capture.StateStopped {
		t.Errorf("capture state %v after Cancel, want stopped", s)
	}
	var logs bytes.Buffer
	c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	rec := newRecorder(t)
	if err := c.Run(rec); err != nil {
		t.Errorf("Run after Cancel: %v, want nil: the instance is gone", err)
	}
	if b := rec.Batches(); len(b) != 1 || len(b[0].Series) != 0 || len(b[0].ServiceChecks) != 0 {
		t.Errorf("Run after Cancel committed %+v, want one empty batch", b)
	}
	if !strings.Contains(logs.String(), "level=DEBUG msg=\"run after cancel") {
		t.Errorf("log %q, want the run after Cancel at debug", logs.String())
	}
	if starts, _ := fake.counts(); starts != 1 {
		t.Errorf("Run after Cancel started the capture again (%d starts)", starts)
	}

	c2, fake2 := withFake(t, "interface: eth0", "", nil)
	c2.Cancel() // before Run: nothing to stop, nothing to start later
	rec = newRecorder(t)
	if err := c2.Run(rec); err != nil || len(rec.Last().ServiceChecks) != 0 {
		t.Errorf("Run after Cancel: %v, %+v; want nil and nothing submitted", err, rec.Last())
	}
	if err := c2.Start(); err == nil || !strings.Contains(err.Error(), "cancelled") {
		t.Errorf("Start after Cancel: %v, want the cancellation", err)
	}
	if starts, stops := fake2.counts(); starts != 0 || stops != 0 {
		t.Errorf("Cancel before Run: %d starts, %d stops, want none", starts, stops)
	}
}

// TestConcurrentUse runs the check while frames are fed and other methods
// are called, for the race detector.
func TestConcurrentUse(t *testing.T) {
	c, fake := withFake(t, "interface: eth0", "", nil)
	frames := loadPCAP(t, "bulk_ts_v4.pcap")
	// Each goroutine has its own sender, as each run in the Agent has its
	// check's sender to itself: one Recorder shared by concurrent runs
	// would mix their batches.
	recs := []*check.Recorder{newRecorder(t), newRecorder(t), newRecorder(t), newRecorder(t)}
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range frames {
			fake.feed(frames[i : i+1])
		}
	})
	for g := range 3 {
		wg.Go(func() {
			for range 20 {
				_ = c.Run(recs[g])
				_ = c.Warnings()
				_ = c.Interval()
				_ = c.Config()
			}
		})
	}
	wg.Wait()
	run(t, c, recs[3])
	var samples, received float64
	for _, rec := range recs {
		for _, b := range rec.Batches() {
			for _, s := range b.Find(check.MetricRTTSamples) {
				samples += s.Points[0][1]
			}
			for _, s := range b.Find(check.MetricPacketsReceived) {
				received += s.Points[0][1]
			}
		}
	}
	if st := fake.engine.Stats(); samples != float64(st.Samples) || received != float64(len(frames)) {
		t.Errorf("runs reported %v samples and %v packets, want %d and %d: each counted exactly once", samples, received, st.Samples, len(frames))
	}
}

// TestWarnings checks that configuration warnings are available after
// Configure and on every run, the way the Agent collects them after each
// run, and that Warnings clears them.
func TestWarnings(t *testing.T) {
	c, _ := withFake(t, "interface: eth0\ntgas: [a:b]", "exp_tll: 30", nil)
	want := []string{"unknown init_config key `exp_tll` (did you mean `exp_ttl`?)", "unknown instance key `tgas` (did you mean `tags`?)"}
	contains := func(when string, got []error) {
		t.Helper()
		s := fmt.Sprint(got)
		for _, w := range want {
			if !strings.Contains(s, w) {
				t.Errorf("%s: Warnings() = %s, lacks %q", when, s, w)
			}
		}
	}
	contains("after Configure", c.Warnings())
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("second Warnings() = %v, want none: it clears them", w)
	}
	rec := newRecorder(t)
	for i := range 2 {
		run(t, c, rec)
		contains(fmt.Sprintf("after run %d", i), c.Warnings())
	}
}

// TestInterval checks min_collection_interval.
func TestInterval(t *testing.T) {
	var c check.Check
	if got := c.Interval(); got != check.DefaultInterval {
		t.Errorf("Interval() before Configure = %v, want %v", got, check.DefaultInterval)
	}
	c2 := configure(t, "interface: eth0\nmin_collection_interval: 60", "")
	if got := c2.Interval(); got != time.Minute {
		t.Errorf("Interval() = %v, want 1m", got)
	}
}

// liveCheck configures a check on iface in the namespace at netns, whose
// capture is a real capture.Live, and returns it with a function that
// returns that Live once the first Run made it.
func liveCheck(t *testing.T, iface, netns string, mod func(*capture.LiveConfig)) (*check.Check, func() *capture.Live) {
	t.Helper()
	c := configure(t, fmt.Sprintf("interface: %s\nnetns: %s\ntags: [env:test, team:net]", iface, netns), "")
	var (
		mu   sync.Mutex
		live *capture.Live
	)
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		cfg.MaxBackoff = 200 * time.Millisecond
		if mod != nil {
			mod(&cfg)
		}
		l, err := capture.NewLive(cfg)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		live = l
		mu.Unlock()
		return l, nil
	}
	return c, func() *capture.Live {
		mu.Lock()
		defer mu.Unlock()
		if live == nil {
			t.Fatal("no live capture yet")
		}
		return live
	}
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// vethSlack is how far apart a veth device's timestamps of one received
// frame can be for two packet sockets: it stamps the frame once per socket
// (testbed.VethSlack).
var vethSlack = testbed.VethSlack.Answer

// checkAgainstReference checks the RTT series of one interval of
// request/response traffic on a veth pair against the reference's samples
// of the same interval, from a packet socket of its own on the same
// device: go-metro times every ACK the reference times, so the sample
// count is the reference's, the median within max(0.5 ms, 3 %) of the
// reference's, and every other statistic within the envelope of the
// reference's RTTs, widened by vethSlack (see
// testbed.RefSamples.Envelope). A busy machine lengthens the reference's
// RTTs as much as go-metro's.
func checkAgainstReference(t *testing.T, series []check.Series, ref testbed.RefSamples) {
	t.Helper()
	lo, hi := ref.Envelope(vethSlack)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	t.Logf("reference: %d samples %v, median %v, envelope [%v, %v]", len(ref), ref.Counts(), ref.Median(), lo, hi)
	for _, s := range series {
		v := s.Points[0][1]
		switch s.Metric {
		case check.MetricRTTSamples:
			if v != float64(len(ref)) || v < 10 {
				t.Errorf("%s = %v, want the reference's %d, at least 10 (one per request)", s.Metric, v, len(ref))
			}
		case check.MetricRTTJitter:
			if v < 0 || v > ms(hi) {
				t.Errorf("%s = %v ms, want 0 to %.3f ms, the largest RTT of the reference", s.Metric, v, ms(hi))
			}
		case check.MetricRTTP50:
			// The median: the per-socket stamps of a few frames do not
			// move it.
			med := ref.Median()
			if tol := max(500*time.Microsecond, med*3/100); math.Abs(v-ms(med)) > ms(tol) {
				t.Errorf("%s = %v ms, want within %v of the reference's median %v", s.Metric, v, tol, med)
			}
			fallthrough
		default:
			if v <= 0 || v < ms(lo) || v > ms(hi) {
				t.Errorf("%s = %v ms, want within the reference's envelope [%v, %v]", s.Metric, v, lo, hi)
			}
		}
	}
}

// TestLiveCheck runs the check on the client side of a veth pair, with
// request/response traffic between runs, and checks the series, the
// service check and the telemetry; a run without traffic has no RTT
// series; Cancel stops the capture and leaks no goroutine.
func TestLiveCheck(t *testing.T) {
	pair := testbed.NewVethPair(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, live := liveCheck(t, pair.ClientIf, pair.Client.Path(), nil)
	// The default 50 ms for the socket to open can run out on a loaded
	// machine, making the first run WARNING "capture is starting".
	c.StartWait = 2 * time.Second
	rec := newRecorder(t)
	base := []string{"iface:veth0", "env:test", "team:net"}

	b := run(t, c, rec)
	if sc := canCapture(t, b); sc.Status != servicecheck.ServiceCheckOK {
		t.Errorf("first run: service check %v %q, want OK", sc.Status, sc.Message)
	}
	waitFor(t, 3*time.Second, "capturing", func() bool { return live().Health().State == capture.StateCapturing })

	// The reference: a packet socket of its own on the same device.
	tracker := testbed.TrackRetransmissions(t, pair.Client, pair.ClientIf)
	trafficStart := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 10, Gap: 5 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The kernel hands the ring over block by block, after at most 64 ms:
	// let the last block through. The capture reads the kernel's counters
	// every second.
	time.Sleep(250 * time.Millisecond)
	waitFor(t, 5*time.Second, "samples and kernel counters", func() bool {
		h := live().Health()
		return h.Stats.Samples > 0 && h.KernelPackets > 0
	})

	b = run(t, c, rec)
	if sc := canCapture(t, b); sc.Status != servicecheck.ServiceCheckOK || sc.Message != "" {
		t.Errorf("run with traffic: service check %v %q, want OK", sc.Status, sc.Message)
	}
	ref, err := tracker.Reference()
	if err != nil {
		t.Fatal(err)
	}
	ref = ref.To(pair.ServerAddr4).Between(trafficStart, time.Now())
	if err := tracker.Close(); err != nil { // before goleak looks
		t.Fatal(err)
	}
	checkAgainstReference(t, rttSeries(b), ref)
	wantTags := sortedTags(append([]string{"src:192.0.2.1", "dst:192.0.2.2"}, base...)...)
	series := rttSeries(b)
	var names []string
	for _, s := range series {
		names = append(names, s.Metric)
		if diff := cmp.Diff(wantTags, sortedTags(s.Tags...)); diff != "" {
			t.Errorf("%s tags (-want +got):\n%s", s.Metric, diff)
		}
	}
	wantNames := []string{check.MetricRTT, check.MetricRTTAvg, check.MetricRTTJitter, check.MetricRTTMax, check.MetricRTTMin,
		check.MetricRTTP50, check.MetricRTTP95, check.MetricRTTP99, check.MetricRTTSamples}
	if diff := cmp.Diff(sortedTags(wantNames...), sortedTags(names...)); diff != "" {
		t.Errorf("RTT series of the run with traffic (-want +got):\n%s", diff)
	}
	recv := b.Find(check.MetricPacketsReceived, base...)
	if len(recv) != 1 || recv[0].Points[0][1] <= 0 {
		t.Errorf("%s: %+v, want one series above 0", check.MetricPacketsReceived, recv)
	}
	for _, m := range []string{check.MetricPacketsDropped, check.MetricDecodeErrors, check.MetricFlowsActive, check.MetricFlowsEvicted, check.MetricSamplesDiscarded} {
		if s := b.Find(m, base...); len(s) != 1 {
			t.Errorf("%s: %+v, want one series", m, s)
		}
	}

	// No traffic: telemetry and the service check, no RTT series.
	time.Sleep(200 * time.Millisecond)
	b = run(t, c, rec)
	if s := rttSeries(b); len(s) != 0 {
		t.Errorf("run without traffic: RTT series %+v, want none", s)
	}
	if sc := canCapture(t, b); sc.Status != servicecheck.ServiceCheckOK {
		t.Errorf("run without traffic: service check %v %q, want OK", sc.Status, sc.Message)
	}
	if s := b.Find(check.MetricPacketsReceived, base...); len(s) != 1 {
		t.Errorf("run without traffic: %s %+v, want one series", check.MetricPacketsReceived, s)
	}

	start := time.Now()
	c.Cancel()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Cancel took %v, want under 1 s", d)
	}
	if s := live().Health().State; s != capture.StateStopped {
		t.Errorf("capture state %v after Cancel, want stopped", s)
	}
}

// TestLiveCheckHosts checks the dst tag of a peer from `hosts`, resolved
// by the live capture with an injected resolver.
func TestLiveCheckHosts(t *testing.T) {
	pair := testbed.NewVethPair(t)
	c := configure(t, fmt.Sprintf("interface: %s\nnetns: %s\nhosts: [server.test]", pair.ClientIf, pair.Client.Path()), "")
	var live *capture.Live
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		cfg.Resolver = fakeResolver{"server.test": {pair.ServerAddr4}}
		var err error
		live, err = capture.NewLive(cfg)
		return live, err
	}
	defer c.Cancel()
	rec := newRecorder(t)
	run(t, c, rec)
	// The resolved address reaches the kernel filter within about a
	// second: repeat the traffic until it is timed.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	waitFor(t, 10*time.Second, "samples of server.test", func() bool {
		if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 3}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond)
		return live.Health().Stats.Samples > 0
	})
	b := run(t, c, rec)
	want := sortedTags("src:192.0.2.1", "dst:server.test", "iface:veth0")
	s := b.Find(check.MetricRTT)
	if len(s) != 1 {
		t.Fatalf("%s series: %+v, want one", check.MetricRTT, s)
	}
	if diff := cmp.Diff(want, sortedTags(s[0].Tags...)); diff != "" {
		t.Errorf("tags (-want +got):\n%s", diff)
	}
	if sc := canCapture(t, b); sc.Status != servicecheck.ServiceCheckOK {
		t.Errorf("service check %v %q, want OK", sc.Status, sc.Message)
	}
}

// TestLiveCheckHostWithTwoAddresses is a load balancer with two A records:
// traffic to both addresses is one series per metric, tagged with the host
// name, whose sample count is that of both; no run sends a metric and tag
// set twice (newRecorder checks every run).
func TestLiveCheckHostWithTwoAddresses(t *testing.T) {
	pair := testbed.NewVethPair(t)
	second := netip.MustParseAddr("192.0.2.3")
	if err := pair.Server.IP("addr", "add", second.String()+"/24", "dev", pair.ServerIf); err != nil {
		t.Fatal(err)
	}
	if err := pair.Client.IP("neigh", "replace", second.String(), "lladdr", pair.ServerMAC.String(), "dev", pair.ClientIf, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	c := configure(t, fmt.Sprintf("interface: %s\nnetns: %s\nhosts: [lb.test]", pair.ClientIf, pair.Client.Path()), "")
	var live *capture.Live
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		cfg.Resolver = fakeResolver{"lb.test": {pair.ServerAddr4, second}}
		var err error
		live, err = capture.NewLive(cfg)
		return live, err
	}
	defer c.Cancel()
	rec := newRecorder(t)
	run(t, c, rec)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// The resolved addresses reach the kernel filter within about a
	// second: wait until both are timed.
	var seen [2]bool
	waitFor(t, 10*time.Second, "samples of both addresses", func() bool {
		for i, a := range []netip.Addr{pair.ServerAddr4, second} {
			before := live.Health().Stats.Samples
			p := pair.Path4()
			p.Dst = a
			if err := testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 3}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(150 * time.Millisecond)
			seen[i] = seen[i] || live.Health().Stats.Samples > before
		}
		return seen[0] && seen[1]
	})
	run(t, c, rec) // starts an interval with both addresses filtered in
	for _, a := range []netip.Addr{pair.ServerAddr4, second} {
		p := pair.Path4()
		p.Dst = a
		// 5 ms apart: a sample per TSval tick of 1 ms at most.
		if err := testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 10, Gap: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(250 * time.Millisecond)
	b := run(t, c, rec)
	for _, m := range []string{check.MetricRTT, check.MetricRTTP99, check.MetricRTTSamples} {
		s := b.Find(m, "dst:lb.test")
		if len(s) != 1 {
			t.Fatalf("%s series of dst:lb.test: %+v, want exactly one", m, s)
		}
		if m == check.MetricRTTSamples && s[0].Points[0][1] < 20 {
			t.Errorf("%s = %v, want at least 20: 10 requests to each address", m, s[0].Points[0][1])
		}
	}
	for _, s := range rttSeries(b) {
		if !slices.Contains(s.Tags, "dst:lb.test") {
			t.Errorf("series %s %v: every address of lb.test must be tagged with its name", s.Metric, s.Tags)
		}
	}
}

// TestLiveCheckMissingInterface configures an interface that does not
// exist in the namespace: Run returns quickly with CRITICAL naming it.
func TestLiveCheckMissingInterface(t *testing.T) {
	ns := testbed.NewNetNS(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	c, _ := liveCheck(t, "nosuch0", ns.Path(), nil)
	defer c.Cancel()
	rec := newRecorder(t)
	start := time.Now()
	err := c.Run(rec)
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Run took %v, want under 100 ms", d)
	}
	if err != nil {
		t.Errorf("Run() = %v, want nil: the capture retries until the interface appears", err)
	}
	b := rec.Last()
	sc := canCapture(t, b)
	if sc.Status != servicecheck.ServiceCheckCritical {
		t.Errorf("service check %v %q, want CRITICAL", sc.Status, sc.Message)
	}
	for _, want := range []string{"nosuch0", "no such network interface", "check `interface`"} {
		if !strings.Contains(sc.Message, want) {
			t.Errorf("message %q lacks %q", sc.Message, want)
		}
	}
	if diff := cmp.Diff(sortedTags("iface:nosuch0", "env:test", "team:net"), sortedTags(sc.Tags...)); diff != "" {
		t.Errorf("service check tags (-want +got):\n%s", diff)
	}
	c.Cancel()
}

// TestLiveCheckPermission runs the check in a process without CAP_NET_RAW
// (this test binary again, as uid 65534 with no capabilities) and checks
// the service check is CRITICAL with the setcap fix.
func TestLiveCheckPermission(t *testing.T) {
	if os.Getenv("GO_METRO_CHECK_PERM_CHILD") == "1" {
		c := configure(t, "interface: lo", "")
		defer c.Cancel()
		rec := newRecorder(t)
		err := c.Run(rec)
		sc := canCapture(t, rec.Last())
		fmt.Printf("err=%v\nstatus=%s\nmessage=%s\n", err, sc.Status, sc.Message)
		return
	}
	testbed.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	exe := testbed.CopyTestBinary(t, "check.test")
	dir := filepath.Dir(exe)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "-test.run=^TestLiveCheckPermission$")
	cmd.Env = append(os.Environ(), "GO_METRO_CHECK_PERM_CHILD=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("unprivileged check: %s", got)
	for _, want := range []string{"err=<nil>", "status=CRITICAL", "capture on lo: operation not permitted", "setcap cap_net_raw+ep ", "or run as root"} {
		if !strings.Contains(got, want) {
			t.Errorf("child output lacks %q", want)
		}
	}
}

// TestLiveCheckServiceTags runs, with service_tags, two outbound services
// on the peer (ports 7001 and 7002) and one inbound service (port 7003 on
// the local side): each series carries its direction and port, and its
// sample count with the three together equals what its connection gives
// alone.
func TestLiveCheckServiceTags(t *testing.T) {
	pair := testbed.NewVethPair(t)
	c := configure(t, fmt.Sprintf("interface: %s\nnetns: %s\nservice_tags: true", pair.ClientIf, pair.Client.Path()), "")
	c.StartWait = 2 * time.Second
	defer c.Cancel()
	rec := newRecorder(t)
	run(t, c, rec)
	out1, out2 := pair.Path4(), pair.Path4()
	out1.Port, out2.Port = 7001, 7002
	in := testbed.Path{Client: pair.Server, Server: pair.Client, Dst: pair.ClientAddr4, Port: 7003}
	conns := []struct {
		path testbed.Path
		tags []string
	}{
		{out1, []string{"direction:outbound", "port:7001"}},
		{out2, []string{"direction:outbound", "port:7002"}},
		{in, []string{"direction:inbound", "port:7003"}},
	}
	traffic := func(p testbed.Path) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 20, Gap: 5 * time.Millisecond})
	}
	samples := func(b check.Batch, tags []string) float64 {
		s := b.Find(check.MetricRTTSamples, tags...)
		if len(s) != 1 {
			t.Fatalf("%s series with %v: %+v, want exactly one", check.MetricRTTSamples, tags, s)
		}
		return s[0].Points[0][1]
	}
	// Each connection alone, one run each.
	alone := make([]float64, len(conns))
	for i, cn := range conns {
		if err := traffic(cn.path); err != nil {
			t.Fatal(err)
		}
		time.Sleep(250 * time.Millisecond)
		b := run(t, c, rec)
		alone[i] = samples(b, cn.tags)
		if n := len(b.Find(check.MetricRTTSamples)); n != 1 {
			t.Errorf("run of %v alone: %d series, want 1", cn.tags, n)
		}
	}
	// The three at once, in one run.
	errs := make(chan error, len(conns))
	for _, cn := range conns {
		go func() { errs <- traffic(cn.path) }()
	}
	for range conns {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(250 * time.Millisecond)
	b := run(t, c, rec)
	for i, cn := range conns {
		got := samples(b, cn.tags)
		t.Logf("%v: %v samples alone, %v together", cn.tags, alone[i], got)
		// Within one sample: whether the FIN exchange gives one depends
		// on how the closing segments fall in the TSval ticks.
		if math.Abs(got-alone[i]) > 1 || got < 20 {
			t.Errorf("%v: %v samples together, %v alone: want the same within one, at least 20 (one per request)", cn.tags, got, alone[i])
		}
		for _, s := range b.Find(check.MetricRTTSamples, cn.tags...) {
			if want := sortedTags(append([]string{"src:192.0.2.1", "dst:192.0.2.2", "iface:veth0"}, cn.tags...)...); !slices.Equal(sortedTags(s.Tags...), want) {
				t.Errorf("tags %v, want %v", s.Tags, want)
			}
		}
	}
}

// TestRuntimeMetricsOncePerProcess runs two instances with
// runtime_metrics: true, as the Agent or go-metro check would: the
// process's runtime.go.* metrics are sent by one of them only, never with
// an iface tag, and the other takes over when the first is cancelled.
func TestRuntimeMetricsOncePerProcess(t *testing.T) {
	const init = "runtime_metrics: true"
	c0, _ := withFake(t, "interface: eth0\ntags: [env:test, iface:eth0]", init, nil)
	c1, _ := withFake(t, "interface: eth1\ntags: [env:test]", init, nil)
	count := func(b check.Batch) int {
		n := 0
		for _, s := range b.Find(check.MetricGoNumGoroutine) {
			n++
			if slices.ContainsFunc(s.Tags, func(t string) bool { return strings.HasPrefix(t, "iface:") }) {
				t.Errorf("%s tagged %q: an iface tag on a process metric", s.Metric, s.Tags)
			}
		}
		return n
	}
	for i := range 2 {
		n0, n1 := count(run(t, c0, newRecorder(t))), count(run(t, c1, newRecorder(t)))
		if n0+n1 != 1 || n0 != 1 {
			t.Errorf("run %d: %s sent %d times by eth0 and %d by eth1, want once, by the first", i, check.MetricGoNumGoroutine, n0, n1)
		}
	}
	c0.Cancel()
	if n := count(run(t, c1, newRecorder(t))); n != 1 {
		t.Errorf("after eth0 was cancelled, eth1 sent %s %d times, want once", check.MetricGoNumGoroutine, n)
	}
}
