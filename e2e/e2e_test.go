package e2e

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	dto "github.com/prometheus/client_model/go"

	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

// delay is the one-way delay of the delay line, each way.
const delay = 5 * time.Millisecond

// The traffic: requests (and as many responses) in all, on two
// connections, and bulk transfers of 2 MiB, each on its own connection.
const (
	requests      = 200
	bulkTransfers = 3
)

// The addresses of the delay line's client and server (testbed.Pair).
const (
	clientAddr = "192.0.2.1"
	serverAddr = "192.0.2.2"
)

// daemonConfig is a go-metro run configuration for one instance on the
// client side of the delay line, run every second; statsd holds the
// init_config keys that choose DogStatsD, if any.
func daemonConfig(statsd, netns string) string {
	return fmt.Sprintf(`init_config:
%s  log_level: debug
instances:
  - interface: tap0
    netns: %s
    min_collection_interval: 1
    tags:
      - env:e2e
`, statsd, netns)
}

// run is a daemon and the DogStatsD server it reports to.
type run struct {
	transport string
	server    *dogstatsd
	daemon    *daemon
}

// TestDaemonToDogStatsD runs `go-metro run` as a child process against a
// real DogStatsD server, statsd_exporter, twice at once: over UDP, with the
// address in init_config, and over a unixgram socket, with the address in
// DD_DOGSTATSD_URL. Both capture on the client side of a 5 ms + 5 ms delay
// line while request/response and bulk traffic crosses it. After SIGTERM,
// it checks what reached each server: the RTT metrics, the telemetry, the
// runtime metrics and the service check, with their names, tags and
// plausible values, and that every metric the daemon logged as sent
// arrived.
func TestDaemonToDogStatsD(t *testing.T) {
	testbed.RequireRoot(t)
	start := time.Now()
	bin := buildGoMetro(t)
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: delay},
		ServerToClient: testbed.Impairment{Delay: delay},
	})
	path := dl.Path4()
	// Ping only checks the test bed, widely: the delay line never releases
	// a frame early, and a busy machine releases frames late.
	ping := testbed.Ping(t, dl.Client, path.Dst, 20)
	t.Logf("ping %v across the delay line", ping)
	if d := ping - 2*delay; d < 0 || d > bedSlack {
		t.Fatalf("ping %v across the delay line, want within %v above %v: the test bed is off", ping, bedSlack, 2*delay)
	}
	// The reference that the daemons' RTTs are compared with: a packet
	// socket of its own on the device they capture on.
	tracker := testbed.TrackRetransmissions(t, dl.Client, dl.ClientIf)

	udp := startDogStatsD(t, "udp")
	uds := startDogStatsD(t, "unixgram")
	netns := dl.Client.Path()
	host, port, err := net.SplitHostPort(udp.addr)
	if err != nil {
		t.Fatal(err)
	}
	runs := []run{
		{"udp", udp, startDaemon(t, "go-metro (udp)", bin,
			daemonConfig(fmt.Sprintf("  statsd_ip: %s\n  statsd_port: %s\n", host, port), netns))},
		{"unixgram", uds, startDaemon(t, "go-metro (unixgram)", bin,
			daemonConfig("", netns), "DD_DOGSTATSD_URL=unixgram://"+uds.addr)},
	}

	// The first run of each daemon starts its capture and reports it; on a
	// busy machine the capture may take longer to open than the run waits
	// for it, and the service check says WARNING "capture is starting".
	// The traffic waits until both capture, so that they count every frame.
	for _, r := range runs {
		ctx := waitCtx(t, 10*time.Second)
		var scs []dsdLine
		for n := 1; len(scs) == 0 || scs[len(scs)-1].value != 0; n++ {
			scs = r.server.waitServiceChecks(ctx, t, check.ServiceCheckName, n)
		}
		r.daemon.running(t)
		t.Logf("%s: service checks %v after %v", r.transport, scs, time.Since(r.daemon.started).Round(time.Millisecond))
	}
	framesBefore := tap0Frames(dl)

	// About 4 s of traffic. First, requests and responses every 10 ms on
	// one connection while 2 MiB bulk transfers run on three others; then
	// requests and responses alone, on a new connection, for 2 s, so that
	// the last intervals, whose gauges the exporter keeps, have no bulk
	// transfer: its queue at the delay line adds to the RTT, which ping
	// does not see.
	trafficStart := time.Now()
	ctx := waitCtx(t, 30*time.Second)
	rr := testbed.RequestResponseConfig{Count: requests / 2, Gap: 10 * time.Millisecond}
	var (
		wg             sync.WaitGroup
		rrErr, bulkErr error
	)
	wg.Go(func() { rrErr = testbed.RequestResponse(ctx, path, rr) })
	wg.Go(func() {
		for i := range bulkTransfers {
			if i > 0 {
				time.Sleep(300 * time.Millisecond)
			}
			if bulkErr = testbed.Bulk(ctx, path, 2<<20); bulkErr != nil {
				return
			}
		}
	})
	wg.Wait()
	if err := errors.Join(rrErr, bulkErr); err != nil {
		t.Fatalf("traffic: %v", err)
	}
	lastPhase := time.Now()
	if err := testbed.RequestResponse(ctx, path, rr); err != nil {
		t.Fatalf("traffic: %v", err)
	}
	// checkRTT compares the last interval's p50 with the reference's
	// samples well inside that interval. Traffic that ends less than
	// minTail after a run of a daemon leaves too few of them (none if it
	// ends within intervalSlack), so more requests and responses follow,
	// on a new connection, until it ends minTail after the latest run.
	conns := 2 + bulkTransfers // the traffic's connections
	for range 3 {
		var latest time.Time
		for _, r := range runs {
			if at := r.server.lastServiceCheck(t); at.After(latest) {
				latest = at
			}
		}
		wait := minTail - time.Since(latest)
		if wait <= 0 {
			break
		}
		// A request and its response take the path's RTT and the gap.
		more := testbed.RequestResponseConfig{Count: int(wait/(2*delay+rr.Gap)) + 1, Gap: rr.Gap}
		if err := testbed.RequestResponse(ctx, path, more); err != nil {
			t.Fatalf("traffic: %v", err)
		}
		conns++
	}
	t.Logf("traffic for %v", time.Since(trafficStart).Round(time.Millisecond))

	// Two more runs of each daemon report everything the traffic left in
	// the capture, the kernel's last ring block included.
	for _, r := range runs {
		n := len(r.server.serviceChecks(t))
		r.server.waitServiceChecks(waitCtx(t, 5*time.Second), t, check.ServiceCheckName, n+2)
	}
	frames := tap0Frames(dl) - framesBefore
	ref, err := tracker.Reference()
	if err != nil {
		t.Fatal(err)
	}
	ref = ref.To(dl.ServerAddr4)

	for _, r := range runs {
		took, code := r.daemon.terminate(t, 5*time.Second)
		t.Logf("%s: exit status %d %v after SIGTERM", r.transport, code, took.Round(time.Millisecond))
		if code != 0 {
			t.Errorf("%s: exit status %d after SIGTERM, want 0", r.transport, code)
		}
		if took > 2*time.Second {
			t.Errorf("%s: exited %v after SIGTERM, want within 2 s", r.transport, took)
		}
		if !strings.Contains(r.daemon.log.String(), "msg=stopped") {
			t.Errorf("%s: the log has no msg=stopped", r.transport)
		}
		r.server.sync(t)
	}

	for _, r := range runs {
		t.Run(r.transport, func(t *testing.T) {
			fams := r.server.gather(t)
			lines := received(t, r.server)
			t.Run("flushed", func(t *testing.T) { checkFlushed(t, r.daemon, lines) })
			t.Run("rtt", func(t *testing.T) { checkRTT(t, fams, lines, ref, lastPhase) })
			t.Run("telemetry", func(t *testing.T) { checkTelemetry(t, fams, lines, frames, conns) })
			t.Run("runtime", func(t *testing.T) { checkRuntime(t, fams, r.daemon) })
			t.Run("service-check", func(t *testing.T) { checkServiceCheck(t, fams, r.server) })
		})
	}
	t.Logf("test took %v", time.Since(start).Round(time.Millisecond))
}

// tap0Frames counts the frames that crossed tap0 in the client namespace:
// those the client sent, and those written to it from the server.
func tap0Frames(dl *testbed.DelayLine) uint64 {
	c2s, s2c := dl.Stats()
	return c2s.Received + s2c.Forwarded
}

// received returns the DogStatsD lines a server received, parsed, less
// datadog-go's own telemetry and the test's barrier.
func received(tb testing.TB, s *dogstatsd) []dsdLine {
	tb.Helper()
	var out []dsdLine
	for _, rl := range s.parser.received() {
		l := mustParseLine(tb, rl.text)
		l.at = rl.at
		if strings.HasPrefix(l.name, "datadog.dogstatsd.client.") || l.name == barrierMetric {
			continue
		}
		// statsd_exporter makes an event of each value: one a line, but
		// for a distribution's line of several values (DogStatsD's
		// extended aggregation).
		if l.typ != "_sc" && rl.events != len(l.values) {
			tb.Errorf("statsd_exporter made %d events of %q, want %d", rl.events, rl.text, len(l.values))
		}
		out = append(out, l)
	}
	return out
}

// checkFlushed checks that every metric and service check the daemon logged
// as sent reached the server, those of its last run before SIGTERM
// included, and nothing else: every value of a distribution, a line of
// every other metric.
func checkFlushed(t *testing.T, d *daemon, lines []dsdLine) {
	got := map[string]int{}
	for _, l := range lines {
		switch l.typ {
		case "_sc":
			got["_sc|"+l.name]++
		case "d":
			got[l.name] += len(l.values)
		default:
			got[l.name]++
		}
	}
	want := d.submitted()
	if len(want) == 0 {
		t.Fatal("the daemon logged no metric")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lines received by name, against those logged as sent (-logged +received):\n%s", diff)
	}
}

// bedSlack is how much longer than configured the delay line's path may
// be, for ping, before the test bed counts as off: a wide check, as a busy
// machine releases frames late.
const bedSlack = 5 * time.Millisecond

// intervalSlack bounds how long before a run of the daemon a sample's ACK
// may have arrived and still be left for the next run, or how long after
// it the run's lines may reach the server: the capture gets frames in ring
// blocks that the kernel hands over within 64 ms, and the daemon runs
// under the race detector on a busy machine.
const intervalSlack = 300 * time.Millisecond

// minTail is how long after the daemons' latest run the traffic goes on,
// at least: the last interval with samples, from that run to the next,
// then holds minTail-intervalSlack of requests and responses surely inside
// it (about 20 samples).
const minTail = 650 * time.Millisecond

// checkRTT checks the RTT metrics of the one peer. The p50 that the
// exporter kept, that of the last interval with samples, is compared with
// the reference's samples of that interval: a packet socket of its own
// saw the same frames, so a busy machine that lengthens the path lengthens
// both. The interval is that between two runs of the daemon, which the
// arrival of their lines at the server bounds within intervalSlack: the
// p50 must be within max(0.5 ms, 3 %) of every median that the reference's
// samples can have, with those near the bounds in or out
// (testbed.MedianRange). lastPhase starts the last request/response phase,
// without bulk transfers: the reference times every ACK of a bulk
// transfer, go-metro at most capture.MaxTimedSegments segments of a flow at
// once, so that they weigh the moments of a transfer differently.
func checkRTT(t *testing.T, fams map[string]family, lines []dsdLine, ref testbed.RefSamples, lastPhase time.Time) {
	labels := map[string]string{"src": clientAddr, "dst": serverAddr, "iface": "tap0", "env": "e2e"}
	v := map[string]float64{}
	for name, typ := range check.Metrics() {
		if strings.HasPrefix(name, "system.net.tcp.rtt") && typ != check.TypeDistribution {
			v[name] = only(t, fams, name, typ, labels)
		}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	t.Logf("last interval: rtt %.3f avg %.3f jitter %.3f min %.3f p50 %.3f p95 %.3f p99 %.3f max %.3f ms; samples %v",
		v[check.MetricRTT], v[check.MetricRTTAvg], v[check.MetricRTTJitter], v[check.MetricRTTMin],
		v[check.MetricRTTP50], v[check.MetricRTTP95], v[check.MetricRTTP99], v[check.MetricRTTMax], v[check.MetricRTTSamples])

	// The interval of the last p50 line: from the previous run of the
	// daemon, whose service check arrived at least half a second before.
	var last, prev time.Time
	for _, l := range lines {
		if l.name == check.MetricRTTP50 {
			last = l.at
		}
	}
	for _, l := range lines {
		if l.typ == "_sc" && l.at.Before(last.Add(-500*time.Millisecond)) {
			prev = l.at
		}
	}
	if last.IsZero() || prev.IsZero() {
		t.Fatalf("no %s line after a run before it", check.MetricRTTP50)
	}
	if prev.Add(-intervalSlack).Before(lastPhase) {
		t.Fatalf("the last interval with samples, from %v to %v, began before the last phase of the traffic at %v: make that phase longer",
			prev.Format("15:04:05.000"), last.Format("15:04:05.000"), lastPhase.Format("15:04:05.000"))
	}
	in := ref.Between(prev.Add(intervalSlack), last.Add(-intervalSlack)).RTTs()
	maybe := append(ref.Between(prev.Add(-intervalSlack), prev.Add(intervalSlack)).RTTs(), ref.Between(last.Add(-intervalSlack), last).RTTs()...)
	lo, hi := testbed.MedianRange(in, maybe)
	tolLo, tolHi := max(500*time.Microsecond, lo*3/100), max(500*time.Microsecond, hi*3/100)
	t.Logf("reference of the last interval: %d samples surely in it, %d more perhaps; their median is between %v and %v", len(in), len(maybe), lo, hi)
	if len(in) == 0 {
		t.Errorf("the reference has no sample surely in the last interval, from %v to %v", prev.Format("15:04:05.000"), last.Format("15:04:05.000"))
	}
	if p := v[check.MetricRTTP50]; p < ms(lo-tolLo) || p > ms(hi+tolHi) {
		t.Errorf("%s %.3f ms, want within max(0.5 ms, 3 %%) of the reference's median of the interval, between %.3f and %.3f ms",
			check.MetricRTTP50, p, ms(lo), ms(hi))
	}
	order := []string{check.MetricRTTMin, check.MetricRTTP50, check.MetricRTTP95, check.MetricRTTP99, check.MetricRTTMax}
	for i := 1; i < len(order); i++ {
		if v[order[i]] < v[order[i-1]] {
			t.Errorf("%s %.3f ms < %s %.3f ms", order[i], v[order[i]], order[i-1], v[order[i-1]])
		}
	}
	if last := v[check.MetricRTT]; last < v[check.MetricRTTMin] || last > v[check.MetricRTTMax] {
		t.Errorf("%s %.3f ms outside [min, max] of its interval", check.MetricRTT, last)
	}
	if j := v[check.MetricRTTJitter]; j < 0 || j > v[check.MetricRTTAvg] {
		t.Errorf("%s %.3f ms, want between 0 and %s", check.MetricRTTJitter, j, check.MetricRTTAvg)
	}

	// The counter adds up the count of every interval. No RTT of any
	// interval is below the configured path's: the delay line never
	// releases a frame early (1 % less for the sketch's quantiles).
	floor := ms(2*delay) * 0.99
	var sum float64
	var p50s []string
	var dist []float64 // every value of the distribution's lines
	for _, l := range lines {
		switch l.name {
		case check.MetricRTTSamples:
			sum += l.value
		case check.MetricRTTJitter:
		case check.MetricRTTDistribution:
			if l.typ != "d" || !slices.Equal(l.tags, []string{"src:" + clientAddr, "dst:" + serverAddr, "iface:tap0", "env:e2e"}) || strings.Contains(l.text, "|@") {
				t.Errorf("%q: want a |d line with the RTT's tags and no sample rate (the client would sample)", l)
			}
			for _, x := range l.values {
				if x < floor {
					t.Errorf("%q: a value below the configured RTT %v, less 1 %%", l, 2*delay)
					break
				}
			}
			dist = append(dist, l.values...)
		case check.MetricRTTP50:
			p50s = append(p50s, fmt.Sprintf("%.2f", l.value))
			fallthrough
		default:
			if strings.HasPrefix(l.name, "system.net.tcp.rtt") && l.value < floor {
				t.Errorf("%q: below the configured RTT %v, less 1 %%", l, 2*delay)
			}
		}
	}
	t.Logf("p50 of each interval (ms): %s", strings.Join(p50s, " "))
	if got := v[check.MetricRTTSamples]; got != sum {
		t.Errorf("%s %v, want %v, the sum of the counts sent", check.MetricRTTSamples, got, sum)
	}
	// The distribution carries each sample once: as many values as the
	// counts of samples add up to.
	if float64(len(dist)) != sum {
		t.Errorf("%s: %d values, want %v, one per sample (the sum of %s)", check.MetricRTTDistribution, len(dist), sum, check.MetricRTTSamples)
	}
	// Every request and response gives a sample at least.
	if got := v[check.MetricRTTSamples]; got < float64(requests) {
		t.Errorf("%s %v, want at least %d", check.MetricRTTSamples, got, requests)
	}
}

// checkTelemetry checks the capture telemetry against the frames that
// crossed the captured interface.
func checkTelemetry(t *testing.T, fams map[string]family, lines []dsdLine, frames uint64, conns int) {
	labels := map[string]string{"iface": "tap0", "env": "e2e"}
	// The TCP counts are per peer, tagged as the RTT; resets also by
	// which side sent them.
	peer := map[string]string{"src": clientAddr, "dst": serverAddr, "iface": "tap0", "env": "e2e"}
	v := map[string]float64{}
	for name, typ := range check.Metrics() {
		switch {
		case strings.HasPrefix(name, "system.net.tcp.rtt"):
		case name == check.MetricResets:
			for _, sender := range []string{"local", "remote"} {
				l := maps.Clone(peer)
				l["sender"] = sender
				v[name+"{sender:"+sender+"}"] = seriesOf(t, fams, name, typ, l)
			}
		case strings.HasPrefix(name, "go_metro.tcp."):
			v[name] = only(t, fams, name, typ, peer)
		default:
			v[name] = only(t, fams, name, typ, labels)
		}
	}
	t.Logf("telemetry %v; %d frames crossed tap0", v, frames)
	var sum float64
	for _, l := range lines {
		if l.name == check.MetricPacketsReceived {
			sum += l.value
		}
	}
	got := v[check.MetricPacketsReceived]
	if got != sum {
		t.Errorf("%s %v, want %v, the sum of the counts sent", check.MetricPacketsReceived, got, sum)
	}
	// The kernel passes the TCP frames only; a few others (IPv6 multicast
	// listener reports) may cross the interface too.
	if got > float64(frames) || got < float64(frames)*0.99 {
		t.Errorf("%s %v, want the %d frames that crossed tap0 (1 %% less for non-TCP frames)", check.MetricPacketsReceived, got, frames)
	}
	for _, name := range []string{check.MetricPacketsDropped, check.MetricDecodeErrors, check.MetricSamplesDiscarded, check.MetricFlowsEvicted} {
		if v[name] != 0 {
			t.Errorf("%s %v, want 0", name, v[name])
		}
	}
	// Every connection of the traffic, closed by now; the flow table
	// keeps closed flows for a while.
	if a := v[check.MetricFlowsActive]; a < 0 || a > float64(conns) {
		t.Errorf("%s %v, want between 0 and %d", check.MetricFlowsActive, a, conns)
	}
	// The client opened every connection, each answered, none reset.
	if got := v[check.MetricConnectionsOpened]; got != float64(conns) {
		t.Errorf("%s %v, want the %d connections of the traffic", check.MetricConnectionsOpened, got, conns)
	}
	for _, name := range []string{check.MetricConnectionsRefused, check.MetricConnectionTimeouts,
		check.MetricResets + "{sender:local}", check.MetricResets + "{sender:remote}"} {
		if v[name] != 0 {
			t.Errorf("%s %v, want 0", name, v[name])
		}
	}
}

// checkRuntime checks that every runtime metric arrived, with the instance's
// tags, and that the values of the last run are plausible and consistent.
func checkRuntime(t *testing.T, fams map[string]family, d *daemon) {
	labels := map[string]string{"env": "e2e"}
	want := check.RuntimeMetrics()
	listed := map[string]bool{}
	for name := range want {
		listed[escapeName(name)] = true
	}
	var extra []string
	for name := range fams {
		if strings.HasPrefix(name, "runtime_go_") && !listed[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		t.Errorf("runtime metrics that check.RuntimeMetrics does not list: %v", extra)
	}
	v := map[string]float64{}
	for name, typ := range want {
		v[strings.TrimPrefix(name, "runtime.go.")] = only(t, fams, name, typ, labels)
	}
	if t.Failed() {
		return
	}
	t.Logf("runtime: %v", v)
	type rule struct {
		what string
		ok   bool
	}
	sumOf := func(names ...string) float64 {
		var s float64
		for _, n := range names {
			s += v[n]
		}
		return s
	}
	start, stop := float64(d.started.UnixNano()), float64(d.exited.UnixNano())
	lastGC, pauseMax := v["mem_stats.last_gc"], v["gc_stats.pause_quantiles.max"]
	rules := []rule{
		{"num_cpu == runtime.NumCPU()", v["num_cpu"] == float64(runtime.NumCPU())},
		{"num_goroutine > 0", v["num_goroutine"] > 0},
		{"num_cgo_call >= 0", v["num_cgo_call"] >= 0},
		{"lookups == 0", v["mem_stats.lookups"] == 0},
		{"heap_alloc > 0", v["mem_stats.heap_alloc"] > 0},
		{"alloc == heap_alloc", v["mem_stats.alloc"] == v["mem_stats.heap_alloc"]},
		{"total_alloc >= heap_alloc", v["mem_stats.total_alloc"] >= v["mem_stats.heap_alloc"]},
		{"heap_objects > 0", v["mem_stats.heap_objects"] > 0},
		{"heap_objects == mallocs - frees", v["mem_stats.heap_objects"] == v["mem_stats.mallocs"]-v["mem_stats.frees"]},
		{"heap_inuse >= heap_alloc", v["mem_stats.heap_inuse"] >= v["mem_stats.heap_alloc"]},
		{"heap_sys == heap_inuse + heap_idle", v["mem_stats.heap_sys"] == v["mem_stats.heap_inuse"]+v["mem_stats.heap_idle"]},
		{"heap_idle >= heap_released", v["mem_stats.heap_idle"] >= v["mem_stats.heap_released"]},
		{"stack_inuse > 0", v["mem_stats.stack_inuse"] > 0},
		{"stack_sys >= stack_inuse", v["mem_stats.stack_sys"] >= v["mem_stats.stack_inuse"]},
		{"m_span_sys >= m_span_inuse > 0", v["mem_stats.m_span_sys"] >= v["mem_stats.m_span_inuse"] && v["mem_stats.m_span_inuse"] > 0},
		{"m_cache_sys >= m_cache_inuse > 0", v["mem_stats.m_cache_sys"] >= v["mem_stats.m_cache_inuse"] && v["mem_stats.m_cache_inuse"] > 0},
		{"sys == heap_sys + stack_sys + m_span_sys + m_cache_sys + buck_hash_sys + gc_sys + other_sys",
			v["mem_stats.sys"] == sumOf("mem_stats.heap_sys", "mem_stats.stack_sys", "mem_stats.m_span_sys", "mem_stats.m_cache_sys",
				"mem_stats.buck_hash_sys", "mem_stats.gc_sys", "mem_stats.other_sys")},
		{"next_gc > 0", v["mem_stats.next_gc"] > 0},
		{"num_gc >= num_forced_gc >= 0", v["mem_stats.num_gc"] >= v["mem_stats.num_forced_gc"] && v["mem_stats.num_forced_gc"] >= 0},
		{"0 <= gc_cpu_fraction < 1", v["mem_stats.gc_cpu_fraction"] >= 0 && v["mem_stats.gc_cpu_fraction"] < 1},
		// From one debug.ReadGCStats: no GC yet, or one while the daemon ran.
		{"last_gc == 0 or within the daemon's life", lastGC == 0 || lastGC >= start && lastGC <= stop},
		{"pause_quantiles: min <= 25p <= 50p <= 75p <= max",
			v["gc_stats.pause_quantiles.min"] <= v["gc_stats.pause_quantiles.25p"] &&
				v["gc_stats.pause_quantiles.25p"] <= v["gc_stats.pause_quantiles.50p"] &&
				v["gc_stats.pause_quantiles.50p"] <= v["gc_stats.pause_quantiles.75p"] &&
				v["gc_stats.pause_quantiles.75p"] <= pauseMax},
		{"before the first GC, no pause; after, 0 < pause max <= pause_total_ns",
			lastGC == 0 && pauseMax == 0 && v["mem_stats.pause_total_ns"] == 0 ||
				lastGC > 0 && pauseMax > 0 && pauseMax <= v["mem_stats.pause_total_ns"]},
	}
	for _, r := range rules {
		if !r.ok {
			t.Errorf("runtime metrics: want %s", r.what)
		}
	}
}

// checkServiceCheck checks the service checks that arrived, and that
// statsd_exporter made no metric of them.
func checkServiceCheck(t *testing.T, fams map[string]family, s *dogstatsd) {
	scs := s.serviceChecks(t)
	if len(scs) == 0 {
		t.Fatal("no service check arrived")
	}
	for i, sc := range scs {
		if sc.name != check.ServiceCheckName {
			t.Errorf("service check %q, want %s", sc, check.ServiceCheckName)
		}
		if diff := cmp.Diff([]string{"iface:tap0", "env:e2e"}, sc.tags); diff != "" {
			t.Errorf("service check %q: tags (-want +got):\n%s", sc, diff)
		}
		// The first run may find the capture still starting (WARNING).
		if sc.value != 0 && (i > 0 || sc.value != 1) {
			t.Errorf("service check %q: status %v, want 0 (OK)", sc, sc.value)
		}
	}
	for _, rl := range s.parser.received() {
		if strings.HasPrefix(rl.text, "_sc|") && rl.events != 0 {
			t.Errorf("statsd_exporter made %d events of %q, want none", rl.events, rl.text)
		}
	}
	for name := range fams {
		if strings.Contains(name, "can_capture") || strings.HasPrefix(name, "_sc") {
			t.Errorf("statsd_exporter has a metric %s for the service check", name)
		}
	}
	errs := fams["statsd_exporter_sample_errors_total"]
	t.Logf("%d service checks, the last %q; statsd_exporter_sample_errors_total %v", len(scs), scs[len(scs)-1], errs.series)
}

// seriesOf returns the value of the series of the DogStatsD metric name
// with labels, after checking its type (check.TypeGauge or
// check.TypeCount), among the metric's series.
func seriesOf(t *testing.T, fams map[string]family, name, typ string, labels map[string]string) float64 {
	t.Helper()
	prom, f, ok := familyOf(t, fams, name, typ)
	if !ok {
		return math.NaN()
	}
	for _, s := range f.series {
		got := maps.Clone(s.labels)
		delete(got, "container_id") // see only
		if maps.Equal(got, labels) {
			return s.value
		}
	}
	t.Errorf("%s: no series with labels %v: %v", prom, labels, f.series)
	return math.NaN()
}

// familyOf returns the Prometheus name and family of the DogStatsD metric
// name, after checking that it arrived with the type of check type typ.
func familyOf(t *testing.T, fams map[string]family, name, typ string) (string, family, bool) {
	t.Helper()
	prom := escapeName(name)
	f, ok := fams[prom]
	if !ok {
		t.Errorf("%s (%s) did not arrive", name, prom)
		return prom, f, false
	}
	if want := promType(typ); f.typ != want {
		t.Errorf("%s: type %v, want %v", prom, f.typ, want)
	}
	return prom, f, true
}

// promType is the type statsd_exporter gives a metric of check type typ.
func promType(typ string) dto.MetricType {
	if typ == check.TypeCount {
		return dto.MetricType_COUNTER
	}
	return dto.MetricType_GAUGE
}

// only returns the value of the one series of the DogStatsD metric name,
// after checking its type (check.TypeGauge or check.TypeCount) and labels.
func only(t *testing.T, fams map[string]family, name, typ string, labels map[string]string) float64 {
	t.Helper()
	prom, f, ok := familyOf(t, fams, name, typ)
	if !ok {
		return math.NaN()
	}
	if len(f.series) != 1 {
		t.Errorf("%s: %d series, want 1: %v", prom, len(f.series), f.series)
		return math.NaN()
	}
	got := maps.Clone(f.series[0].labels)
	// datadog-go adds the container of the daemon, when it runs in one,
	// to every line (|c:), and statsd_exporter makes a label of it.
	delete(got, "container_id")
	if diff := cmp.Diff(labels, got); diff != "" {
		t.Errorf("%s: labels (-want +got):\n%s", prom, diff)
	}
	return f.series[0].value
}
