package check_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// The local addresses of the recorded captures in ../capture/testdata (see
// pcaps.md there), and their server.
var (
	pcapLocal4  = netip.MustParseAddr("192.0.2.1")
	pcapLocal6  = netip.MustParseAddr("2001:db8::1")
	pcapServer4 = netip.MustParseAddr("192.0.2.2")
	pcapServer6 = netip.MustParseAddr("2001:db8::2")
)

// loadPCAP returns every frame of ../capture/testdata/name, each with its
// own copy of the data.
func loadPCAP(tb testing.TB, name string) []capture.Frame {
	tb.Helper()
	src, err := capture.OpenFile(filepath.Join("..", "capture", "testdata", name))
	if err != nil {
		tb.Fatal(err)
	}
	defer src.Close()
	var frames []capture.Frame
	for {
		f, err := src.ReadFrame()
		if errors.Is(err, io.EOF) {
			return frames
		}
		if err != nil {
			tb.Fatal(err)
		}
		f.Data = slices.Clone(f.Data) // the source reuses its buffer
		frames = append(frames, f)
	}
}

// fakeResolver resolves the names it holds and fails the others as a DNS
// server that does not know them would.
type fakeResolver map[string][]netip.Addr

func (r fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// fakeCapture is a check.Capture that a test feeds with frames, from
// recorded pcaps, instead of a socket. It runs them through a real
// capture.Engine configured like the live capture would be, with the
// recorded captures' local addresses, and filters the peers as the kernel
// filter would. Its Health is crafted by the test, with the engine's
// counters and the number of frames fed as the kernel's packet count.
// Feed it from one goroutine; its other methods are safe for concurrent
// use.
type fakeCapture struct {
	engine *capture.Engine
	peers  *capture.Peers
	// startErr is what Start returns.
	startErr error

	mu      sync.Mutex
	health  capture.Health
	starts  int
	stops   int
	drained []capture.PeerStats // what the last Drain returned
}

var _ check.Capture = (*fakeCapture)(nil)

// newFakeCapture returns a capturing fakeCapture for cfg. Host names in
// cfg.Peers are resolved once, with r, as capture.Live does on start.
func newFakeCapture(tb testing.TB, cfg capture.LiveConfig, r capture.Resolver) *fakeCapture {
	tb.Helper()
	local, err := capture.ParseLocalSet(cfg.Local...)
	if err != nil {
		tb.Fatal(err)
	}
	local = capture.NewLocalSet(append(local.Addrs(), pcapLocal4, pcapLocal6), local.Prefixes())
	ecfg := cfg.Engine
	ecfg.Local = local
	pr, err := capture.NewPeerResolver(cfg.Peers, r)
	if err != nil {
		tb.Fatal(err)
	}
	peers, warns := pr.Resolve(context.Background())
	f := &fakeCapture{
		engine: capture.NewEngine(ecfg),
		peers:  peers,
		health: capture.Health{State: capture.StateCapturing, LocalAddrs: local.Len(), Unresolved: peers.Unresolved()},
	}
	// The kernel filter passes only the peers; the engine's userspace
	// filter does the same here.
	f.engine.SetPeerFilter(peers)
	f.engine.SetNames(peers) // host names group their addresses, as in Live
	if len(warns) > 0 {
		f.health.Warnings = []string{errors.Join(warns...).Error()}
	}
	return f
}

// feed runs frames through the engine and counts them as received by the
// kernel.
func (f *fakeCapture) feed(frames []capture.Frame) {
	for i := range frames {
		f.engine.ProcessFrame(&frames[i])
	}
	f.mu.Lock()
	f.health.KernelPackets += uint64(len(frames))
	f.mu.Unlock()
}

// setHealth changes the crafted health.
func (f *fakeCapture) setHealth(mod func(*capture.Health)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mod(&f.health)
}

// lastDrain returns the per-peer stats that the last Drain returned.
func (f *fakeCapture) lastDrain() []capture.PeerStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.drained)
}

// counts returns how often Start and Stop were called.
func (f *fakeCapture) counts() (starts, stops int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts, f.stops
}

func (f *fakeCapture) Start() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts++
	return f.startErr
}

func (f *fakeCapture) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stops++
	f.health.State = capture.StateStopped
}

func (f *fakeCapture) Drain(dst []capture.PeerStats) []capture.PeerStats {
	n := len(dst)
	dst = f.engine.Drain(dst)
	f.mu.Lock()
	f.drained = slices.Clone(dst[n:])
	f.mu.Unlock()
	return dst
}

func (f *fakeCapture) Health() capture.Health {
	f.mu.Lock()
	h := f.health
	f.mu.Unlock()
	h.Stats = f.engine.Stats()
	h.Unresolved = slices.Clone(h.Unresolved)
	h.Warnings = slices.Clone(h.Warnings)
	return h
}

func (f *fakeCapture) Peers() *capture.Peers { return f.peers }

// testTime stamps every recorded point, so that whole series compare.
var testTime = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// newRecorder returns a Recorder for the test, and checks when the test
// ends that no run sent one metric and tag set twice.
func newRecorder(tb testing.TB) *check.Recorder {
	rec := &check.Recorder{Now: func() time.Time { return testTime }}
	tb.Cleanup(func() { checkUnique(tb, rec) })
	return rec
}

// checkUnique fails tb if a batch of rec holds a metric and tag set twice.
func checkUnique(tb testing.TB, rec *check.Recorder) {
	tb.Helper()
	for i, b := range rec.Batches() {
		if dup := b.Duplicates(); len(dup) > 0 {
			tb.Errorf("run %d sent these metric and tag sets more than once: %v", i+1, dup)
		}
	}
}

// configure returns a check configured from instance and initConfig,
// failing the test on an error.
func configure(tb testing.TB, instance, initConfig string) *check.Check {
	tb.Helper()
	c := &check.Check{}
	if err := c.Configure([]byte(instance), []byte(initConfig)); err != nil {
		tb.Fatalf("Configure: %v", err)
	}
	return c
}

// withFake configures a check whose capture is a fakeCapture built from
// the check's own capture configuration, with host names resolved by r.
// The fake exists before the first Run, so that it can be fed first.
func withFake(tb testing.TB, instance, initConfig string, r capture.Resolver) (*check.Check, *fakeCapture) {
	tb.Helper()
	c := configure(tb, instance, initConfig)
	f := newFakeCapture(tb, c.Config().Capture, r)
	c.NewCapture = func(capture.LiveConfig) (check.Capture, error) { return f, nil }
	tb.Cleanup(c.Cancel)
	return c, f
}

// run runs c once with rec and returns the batch it committed.
func run(tb testing.TB, c *check.Check, rec *check.Recorder) check.Batch {
	tb.Helper()
	n := len(rec.Batches())
	if err := c.Run(rec); err != nil {
		tb.Fatalf("Run: %v", err)
	}
	if got := len(rec.Batches()); got != n+1 {
		tb.Fatalf("Run committed %d batches, want 1", got-n)
	}
	return rec.Last()
}

// ms converts to the milliseconds of the RTT gauges.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func point(v float64) [][2]float64 { return [][2]float64{{float64(testTime.Unix()), v}} }

// peerSeries returns the series the check must submit for one peer.
func peerSeries(p capture.PeerStats, tags []string) []check.Series {
	g := func(m string, d time.Duration) check.Series {
		return check.Series{Metric: m, Type: check.TypeGauge, Points: point(ms(d)), Tags: tags}
	}
	c := func(m string, n uint64) check.Series {
		return check.Series{Metric: m, Type: check.TypeCount, Points: point(float64(n)), Tags: tags}
	}
	return []check.Series{
		g(check.MetricRTT, p.Last),
		g(check.MetricRTTAvg, p.SRTT),
		g(check.MetricRTTJitter, p.RTTVar),
		g(check.MetricRTTMin, p.Min),
		g(check.MetricRTTMax, p.Max),
		g(check.MetricRTTP50, p.P50),
		g(check.MetricRTTP95, p.P95),
		g(check.MetricRTTP99, p.P99),
		{Metric: check.MetricRTTSamples, Type: check.TypeCount, Points: point(float64(p.Count)), Tags: tags},
		// The TCP counts: 0 for a peer with samples.
		c(check.MetricRetransmits, p.TCP.Retransmits),
		c(check.MetricConnectionsOpened, p.TCP.Opened),
		c(check.MetricConnectionsRefused, p.TCP.Refused),
		c(check.MetricConnectionTimeouts, p.TCP.Timeouts),
		withTag(c(check.MetricResets, p.TCP.ResetsLocal), "sender:local"),
		withTag(c(check.MetricResets, p.TCP.ResetsRemote), "sender:remote"),
		c(check.MetricZeroWindows, p.TCP.ZeroWindows),
	}
}

func withTag(s check.Series, tag string) check.Series {
	s.Tags = append(slices.Clone(s.Tags), tag)
	return s
}

// peerBuckets returns the histogram buckets the check must submit for
// one peer.
func peerBuckets(p capture.PeerStats, tags []string, host string) []check.HistogramBucket {
	var out []check.HistogramBucket
	for _, b := range p.Buckets {
		out = append(out, check.HistogramBucket{
			Metric: check.MetricRTTDistribution, Value: int64(b.Count), LowerBound: ms(b.Lower), UpperBound: ms(b.Upper),
			Tags: tags, Host: host,
		})
	}
	return out
}

// tagValue returns the first tag of tags with the given key, or "".
func tagValue(tags []string, key string) string {
	for _, t := range tags {
		if strings.HasPrefix(t, key+":") {
			return t
		}
	}
	return ""
}

// isPeerSeries reports whether s is tagged with a peer: an RTT series or
// a TCP count.
func isPeerSeries(s check.Series) bool {
	return isRTT(s) || strings.HasPrefix(s.Metric, "go_metro.tcp.")
}

// telemetry is the expected capture telemetry of one run.
type telemetry struct {
	received, dropped, decodeErrors, flowsActive, flowsEvicted, samplesDiscarded float64
}

func (tm telemetry) series(tags []string) []check.Series {
	c := func(m string, v float64) check.Series {
		return check.Series{Metric: m, Type: check.TypeCount, Points: point(v), Tags: tags}
	}
	return []check.Series{
		c(check.MetricPacketsReceived, tm.received),
		c(check.MetricPacketsDropped, tm.dropped),
		c(check.MetricDecodeErrors, tm.decodeErrors),
		{Metric: check.MetricFlowsActive, Type: check.TypeGauge, Points: point(tm.flowsActive), Tags: tags},
		c(check.MetricFlowsEvicted, tm.flowsEvicted),
		c(check.MetricSamplesDiscarded, tm.samplesDiscarded),
	}
}

// isRTT reports whether s is one of the per-peer RTT series.
func isRTT(s check.Series) bool {
	return s.Metric == check.MetricRTT || strings.HasPrefix(s.Metric, check.MetricRTT+".")
}

// rttSeries returns the per-peer series of b.
func rttSeries(b check.Batch) []check.Series {
	var out []check.Series
	for _, s := range b.Series {
		if isRTT(s) {
			out = append(out, s)
		}
	}
	return out
}

// canCapture returns the one go_metro.can_capture service check of b.
func canCapture(tb testing.TB, b check.Batch) check.ServiceCheckResult {
	tb.Helper()
	if len(b.ServiceChecks) != 1 || b.ServiceChecks[0].Check != check.ServiceCheckName {
		tb.Fatalf("service checks %+v, want exactly one %s", b.ServiceChecks, check.ServiceCheckName)
	}
	return b.ServiceChecks[0]
}

// sortedTags returns tags sorted, for comparing tag sets.
func sortedTags(tags ...string) []string {
	return slices.Sorted(slices.Values(tags))
}

// seriesKey orders series by metric and tag set, for comparing batches
// whose peers come out in map order.
func seriesKey(s check.Series) string {
	return s.Metric + "|" + strings.Join(sortedTags(s.Tags...), ",")
}
