//go:build linux

package accuracy_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/internal/testbed"
)

// pattern is one kind of traffic, from the client to the server.
type pattern struct {
	name string
	// traffic returns the traffic for a path of round-trip time rtt, sized
	// so that the pattern takes about a second or two.
	traffic func(rtt time.Duration) func(context.Context, testbed.Path) error
	// minSamples is the fewest samples the pattern must give.
	minSamples int
	// queues is set for bulk traffic, which sends back to back: its
	// samples stay out of the per-method rows, which pool sparse traffic.
	// Unpaced, it fills the path, and its RTT includes the queue it builds
	// in the delay line, which ping does not see.
	queues bool
	// lossy is set for the pattern of the lossy paths, which gets the Karn
	// checks.
	lossy bool
}

var (
	bulk = pattern{name: "bulk", minSamples: 40, queues: true, traffic: func(rtt time.Duration) func(context.Context, testbed.Path) error {
		// Paced at bulkPacingRate, so that the transfer does not queue in
		// the delay line, and sized for a second of traffic or more: a
		// stall of the machine delays every frame in the delay line, and
		// so lengthens every sample in flight, for an RTT's worth of them.
		// At 50 ms each way, 4 MiB take 1.5 s, and one stall lengthens
		// 7 % of the samples; 8 MiB take 2.3 s.
		n := int64(4 << 20)
		if rtt >= 40*time.Millisecond {
			n = 8 << 20
		}
		return func(ctx context.Context, p testbed.Path) error {
			return testbed.BulkPaced(ctx, p, testbed.BulkConfig{Bytes: n, PacingRate: bulkPacingRate})
		}
	}}
	reqResp = pattern{name: "request/response", minSamples: 40, traffic: func(time.Duration) func(context.Context, testbed.Path) error {
		return func(ctx context.Context, p testbed.Path) error {
			return testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 40, Gap: 10 * time.Millisecond})
		}
	}}
	shortConns = pattern{name: "short connections", minSamples: 40, traffic: func(time.Duration) func(context.Context, testbed.Path) error {
		return func(ctx context.Context, p testbed.Path) error {
			return testbed.ShortConnections(ctx, p, testbed.RequestResponseConfig{Count: 20})
		}
	}}
	slowSender = pattern{name: "slow sender", minSamples: 40, traffic: func(time.Duration) func(context.Context, testbed.Path) error {
		return func(ctx context.Context, p testbed.Path) error {
			return testbed.SlowSender(ctx, p, testbed.SlowSenderConfig{Count: 50, Size: 100, Interval: 10 * time.Millisecond})
		}
	}}
	lossyBulk = pattern{name: "lossy bulk", minSamples: 5, queues: true, lossy: true, traffic: func(rtt time.Duration) func(context.Context, testbed.Path) error {
		// With 3 % loss the window stays small: a few hundred segments,
		// for about ten retransmissions. At 1 ms each way, two transfers
		// give enough samples with timestamps, which time at most one
		// segment per millisecond.
		n, times := int64(256<<10), 1
		switch {
		case rtt < 5*time.Millisecond:
			times = 2
		case rtt < 40*time.Millisecond:
			n = 512 << 10
		}
		return func(ctx context.Context, p testbed.Path) error {
			for range times {
				if err := testbed.Bulk(ctx, p, n); err != nil {
					return err
				}
			}
			return nil
		}
	}}

	// lossless are the patterns of a path without loss.
	lossless = []pattern{bulk, reqResp, shortConns, slowSender}
	// sparse are the patterns that never send back to back: on a path
	// with jitter and without reordering, the delay line holds a frame
	// until the one before it leaves, so back-to-back frames take the
	// largest delay of their burst and bulk traffic crosses a longer path
	// than ping does.
	sparse = []pattern{reqResp, shortConns, slowSender}
)

// lossRate is the client-to-server loss of the lossy paths.
const lossRate = 0.03

// bulkPacingRate caps the sending rate of the bulk pattern, in bytes per
// second: 40 Mbit/s, a full-sized frame every 300 µs. Unpaced, a transfer
// sends bursts faster than the delay line forwards them (a frame every few
// microseconds on a busy machine), and their frames queue in it: the RTT of
// the samples rises above ping's, and so does the p95.
const bulkPacingRate = 40_000_000 / 8

// TestAccuracy runs each traffic pattern across delay lines of known RTT,
// with the check running live on the client side, and compares the p50
// and p95 the check reports for the server with those of a reference
// computed from the same frames, which a packet socket of its own saw on
// the same device at the same time. Ping and the configured RTT only check
// the test bed. See docs/accuracy.md.
func TestAccuracy(t *testing.T) {
	testbed.RequireRoot(t)
	rep := &report{start: time.Now()}
	loadBefore := loadAverage()
	for _, oneWay := range []time.Duration{time.Millisecond, 10 * time.Millisecond, 50 * time.Millisecond} {
		path := fmt.Sprintf("%d ms each way", oneWay.Milliseconds())
		im := testbed.Impairment{Delay: oneWay}
		t.Run(fmt.Sprintf("delay=%v", oneWay), func(t *testing.T) {
			cfg := testbed.DelayLineConfig{ClientToServer: im, ServerToClient: im, Seed: 1}
			testGrid(t, rep, path, cfg)
		})
	}
	t.Run("jitter", func(t *testing.T) {
		im := testbed.Impairment{Delay: 10 * time.Millisecond, Jitter: time.Millisecond}
		b := newBench(t, testbed.DelayLineConfig{ClientToServer: im, ServerToClient: im, Seed: 2})
		// With ±2 ms of round-trip jitter, the medians of ping and of a
		// pattern need about 60 values each to agree within 0.6 ms.
		sp := pathSpec{name: "10 ms ± 1 ms each way", want: 20 * time.Millisecond, jitter: 2 * time.Millisecond, repeat: 3}
		checkPing(t, b, sp)
		for _, pat := range sparse {
			runPattern(t, rep, b, sp, pat, "")
		}
	})
	t.Run("asymmetric", func(t *testing.T) {
		b := newBench(t, testbed.DelayLineConfig{
			ClientToServer: testbed.Impairment{Delay: 2 * time.Millisecond},
			ServerToClient: testbed.Impairment{Delay: 20 * time.Millisecond},
		})
		sp := pathSpec{name: "2 ms there, 20 ms back", want: 22 * time.Millisecond}
		checkPing(t, b, sp)
		for _, pat := range lossless {
			runPattern(t, rep, b, sp, pat, "")
		}
	})
	t.Run("vlan", func(t *testing.T) {
		// The delay line tags every frame it delivers with an 802.1Q
		// priority tag (VLAN ID 0): the kernel of the CI has no VLAN
		// devices, but its receive path strips the tag of any frame and
		// takes a frame of VLAN ID 0 as untagged.
		im := testbed.Impairment{Delay: 10 * time.Millisecond}
		b := newBench(t, testbed.DelayLineConfig{ClientToServer: im, ServerToClient: im, VLANPriorityTag: true})
		tags := watchPriorityTags(t, b.dl)
		sp := pathSpec{name: "10 ms each way, 802.1Q priority tag", want: 20 * time.Millisecond}
		checkPing(t, b, sp)
		for _, pat := range []pattern{bulk, reqResp} {
			runPattern(t, rep, b, sp, pat, "")
		}
		tags.check(t)
	})
	t.Run("any-bridge", func(t *testing.T) { testAnyBridge(t, rep) })

	elapsed := time.Since(rep.start)
	table := markdown(rep.results(), elapsed)
	table += fmt.Sprintf("\nMachine: %s, %d CPUs, %s; load average %s before the suite, %s after.\n",
		runtime.GOOS, runtime.NumCPU(), runtime.Version(), loadBefore, loadAverage())
	t.Logf("accuracy:\n%s", table)
	if os.Getenv(writeEnv) == "1" {
		if t.Failed() {
			t.Logf("not writing %s: the suite failed", docPath)
			return
		}
		if err := writeDoc(docPath, table); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", docPath)
	}
}

// pathSpec describes a path for the rows of its patterns.
type pathSpec struct {
	name string
	grid bool
	// want is the configured round-trip time, jitter the configured
	// round-trip jitter.
	want, jitter time.Duration
	// repeat runs the traffic of each pattern this many times in its
	// interval (0 means once), for a path whose jitter needs more samples.
	repeat int
	// reportOnly marks the rows of a path whose misses are reported, not
	// asserted (see anyBridgeRow).
	reportOnly bool
}

// testGrid runs every pattern on a path of cfg, with TCP timestamps and
// without, then the lossy pattern on the same path with loss.
func testGrid(t *testing.T, rep *report, path string, cfg testbed.DelayLineConfig) {
	sp := pathSpec{name: path, grid: true, want: cfg.ClientToServer.Delay + cfg.ServerToClient.Delay}
	b := newBench(t, cfg)
	checkPing(t, b, sp)

	// Per-method samples over the patterns that do not queue: the check's,
	// the reference's, and the reference's of the ACKs the check timed.
	byMethod := map[capture.Method][]time.Duration{}
	refByMethod := map[capture.Method][]time.Duration{}
	sameByMethod := map[capture.Method][]time.Duration{}
	collect := func(pat pattern, m measurement) {
		if pat.queues {
			return
		}
		for i, s := range m.Samples {
			byMethod[s.Method] = append(byMethod[s.Method], s.RTT)
			if m.Agree[i] {
				sameByMethod[s.Method] = append(sameByMethod[s.Method], s.RTT)
			}
		}
		for _, s := range m.Ref {
			refByMethod[refMethod(s.Method)] = append(refByMethod[refMethod(s.Method)], s.RTT)
		}
	}
	for _, pat := range lossless {
		collect(pat, runPattern(t, rep, b, sp, pat, ""))
	}
	b.setTimestamps(t, false)
	for _, pat := range lossless {
		collect(pat, runPattern(t, rep, b, sp, pat, ", no timestamps"))
	}
	for _, m := range []capture.Method{capture.MethodTimestamp, capture.MethodSeqAck, capture.MethodHandshake} {
		t.Run("method="+m.String(), func(t *testing.T) {
			rtts, ref, same := byMethod[m], refByMethod[m], sameByMethod[m]
			r := result{Path: sp.name, Pattern: "method " + m.String(), Grid: true, Method: true, Ping: b.ping, Want: sp.want,
				Samples: len(rtts), P50: quantile(rtts, 0.5), P95: quantile(rtts, 0.95),
				Same: len(same), RefSamples: len(ref), RefAll: quantile(ref, 0.5),
				Ref: quantile(same, 0.5), RefP95Low: quantileLow(same, 0.95), RefP95: quantile(same, 0.95)}
			defer func() { r.Failed = t.Failed(); rep.add(r) }()
			if len(rtts) < 10 || len(ref) < 10 {
				t.Fatalf("%d %s samples and %d of the reference, want at least 10 each", len(rtts), m, len(ref))
			}
			for _, miss := range append(checkQuantiles(t, &r, sp, true), checkCoverage(r)...) {
				t.Error(miss)
			}
		})
	}

	lossy := cfg
	lossy.ClientToServer.Loss = lossRate
	lb := newBench(t, lossy)
	for _, ts := range []bool{true, false} {
		suffix := ""
		if !ts {
			suffix = ", no timestamps"
		}
		lb.setTimestamps(t, ts)
		runPattern(t, rep, lb, sp, lossyBulk, suffix)
	}
}

// checkPing checks, with ping, that the test bed gives the path about the
// RTT it was configured for (see bedOK), measuring it again once if not.
// The check is not compared with ping: ping only vouches for the test bed.
func checkPing(t *testing.T, b *bench, sp pathSpec) {
	t.Helper()
	if bedOK(b.ping, sp.want, sp.jitter) {
		return
	}
	t.Logf("ping %v on a path configured for %v: measuring again", b.ping, sp.want)
	b.ping = b.measurePing(t)
	if !bedOK(b.ping, sp.want, sp.jitter) {
		t.Fatalf("ping %v on a path configured for %v, want %s: the test bed is off", b.ping, sp.want, bedRange(sp.want, sp.jitter))
	}
}

// refMethod returns the method of go-metro whose samples a rule of the
// reference stands for.
func refMethod(m testbed.RefMethod) capture.Method {
	switch m {
	case testbed.RefTimestamp:
		return capture.MethodTimestamp
	case testbed.RefSeqAck:
		return capture.MethodSeqAck
	}
	return capture.MethodHandshake
}

// maxAttempts bounds how often a pattern runs when its median or p95, or
// the Karn bound of a lossy one, misses. The reference comes from the same
// frames, so a stall of the machine lengthens both alike; but a stall can
// hold the few frames of one sample of the check and not of the reference
// (the check times at most capture.MaxTimedSegments segments of a flow at
// once, the reference all of them), and a pattern of 40 samples has few to
// spare at its p95.
// A bias of go-metro misses on every attempt.
const maxAttempts = 3

// runPattern measures one pattern on b, checks it and records its row; it
// returns the pattern's measurement.
func runPattern(t *testing.T, rep *report, b *bench, sp pathSpec, pat pattern, suffix string) measurement {
	var m measurement
	t.Run(pat.name+suffix, func(t *testing.T) {
		var r result
		defer func() { r.Failed = t.Failed(); rep.add(r) }()
		for attempt := 1; ; attempt++ {
			var misses []string
			r, m, misses = measurePattern(t, b, sp, pat, suffix)
			r.Attempts = attempt
			if len(misses) == 0 || t.Failed() {
				return
			}
			if attempt == maxAttempts || sp.reportOnly {
				if sp.reportOnly {
					r.Known = misses[0]
					if len(misses) > 1 {
						r.Known += fmt.Sprintf(" (and %d more)", len(misses)-1)
					}
					t.Logf("not asserted (see anyBridgeRow): %s", strings.Join(misses, "; "))
					return
				}
				for _, miss := range misses {
					t.Error(miss)
				}
				return
			}
			t.Logf("attempt %d missed: %s; retrying", attempt, strings.Join(misses, "; "))
		}
	})
	return m
}

// measurePattern runs a pattern once. It fails t on what is exact: a
// sample not paired with its frames, quantiles that are not those of the
// samples, too few samples, a seqack sample against Karn's rule. It
// returns the misses of the median, the p95 and the Karn bound, and a
// reference that says the test bed is off. (A pattern of a report-only
// path returns its too few samples and unpaired samples as misses too.)
func measurePattern(t *testing.T, b *bench, sp pathSpec, pat pattern, suffix string) (result, measurement, []string) {
	t.Helper()
	r := result{Path: sp.name, Pattern: pat.name + suffix, Grid: sp.grid, Ping: b.ping, Want: sp.want, Jitter: sp.jitter}
	lostBefore, _ := b.dl.Stats()
	before := len(b.tracker.Retransmissions())
	traffic := pat.traffic(sp.want)
	m := b.measure(t, func(ctx context.Context, p testbed.Path) error {
		for range max(sp.repeat, 1) {
			if err := traffic(ctx, p); err != nil {
				return err
			}
		}
		return nil
	})
	lostAfter, _ := b.dl.Stats()
	r.Samples, r.P50, r.P95 = m.Count, m.P50, m.P95
	r.RefSamples, r.RefAll, r.Same, r.Fallback = len(m.Ref), m.Ref.Median(), len(m.Same), m.Fallback
	r.Ref, r.RefP95Low, r.RefP95 = quantile(m.Same, 0.5), quantileLow(m.Same, 0.95), quantile(m.Same, 0.95)
	logMeasurement(t, m)
	var misses []string
	fail := t.Errorf
	if sp.reportOnly {
		fail = func(format string, args ...any) { misses = append(misses, fmt.Sprintf(format, args...)) }
	}
	checkPairing(fail, &r, m)
	for i, why := range m.Differ {
		if i == 5 {
			fail("... and %d more samples unlike the reference's", len(m.Differ)-i)
			break
		}
		fail("%s", why)
	}
	if want := pat.minSamples * max(sp.repeat, 1); m.Count < want || len(m.Ref) < want {
		fail("%d samples and %d of the reference, want at least %d each", m.Count, len(m.Ref), want)
		return r, m, misses
	}
	checkSketch(t, m)
	misses = append(misses, checkQuantiles(t, &r, sp, !pat.lossy)...)
	if !pat.queues {
		misses = append(misses, checkCoverage(r)...)
		if !bedOK(r.RefAll, sp.want, sp.jitter) {
			misses = append(misses, fmt.Sprintf("the reference's median %v on a path configured for %v, want %s: the test bed is off", r.RefAll, sp.want, bedRange(sp.want, sp.jitter)))
		}
	}
	if pat.lossy {
		r.Karn = &karnResult{Lost: int(lostAfter.Lost - lostBefore.Lost)}
		misses = append(misses, checkKarn(t, r.Karn, b, m, r.Ref, b.tracker.Retransmissions()[before:])...)
	}
	return r, m, misses
}

// checkKarn checks Karn's rule on the samples of a lossy pattern. The
// tracker stamps each frame with the kernel timestamp that go-metro's
// capture reads too, so a sample's two ends, Time-RTT and Time, are the
// timestamps of the very segment it timed and of the segment that ended
// it (checkPairing checks that both exist). It fails t if a seqack sample
// timed a segment that was itself a retransmission, or whose bytes were
// retransmitted before its ACK: that method must never (the timestamp
// method may, as TSecr names the transmission). It returns a miss for each
// sample taken while a retransmission of its flow was in flight, sent
// strictly between its two ends, that exceeds twice the path RTT, the
// reference's median ref of the pattern, unless the reference, which
// applies Karn's rule itself, measured the same for the same ACK: then the
// path was that slow (a stall of the machine).
func checkKarn(t *testing.T, k *karnResult, b *bench, m measurement, ref time.Duration, rexmits []testbed.Retransmission) []string {
	t.Helper()
	k.Retransmissions = len(rexmits)
	var misses []string
	for i, s := range m.Samples {
		timed, ok := b.tracker.Sent(s.Local, s.Remote, s.Time.Add(-s.RTT))
		if s.Method == capture.MethodSeqAck && ok {
			if why := karnViolation(timed, s.Time, rexmits); why != "" {
				t.Errorf("Karn: seqack sample %v at %v on %v→%v timed segment [%d, %d), which %s",
					s.RTT, s.Time.Format("15:04:05.000000"), s.Local, s.Remote, timed.Seq, timed.End, why)
			}
		}
		if !stemsFromRetransmission(s, rexmits) {
			continue
		}
		k.Attributed++
		k.Max = max(k.Max, s.RTT)
		if s.RTT > 2*ref && !m.Agree[i] {
			misses = append(misses, fmt.Sprintf("Karn: %s sample %v at %v on %v→%v, during a retransmission, exceeds 2 × the reference's median %v; %s",
				s.Method, s.RTT, s.Time.Format("15:04:05.000000"), s.Local, s.Remote, ref, describeRexmits(s, rexmits)))
		}
	}
	t.Logf("%d frames lost, %d retransmissions, %d samples during a retransmission (largest %v)",
		k.Lost, k.Retransmissions, k.Attributed, k.Max)
	if k.Retransmissions == 0 {
		t.Errorf("no retransmission with %.0f %% loss: the Karn check is vacuous; raise the loss or the transfer", lossRate*100)
	}
	return misses
}

// checkQuantiles checks the median and the p95 of a row against those of
// the reference's samples of the same ACKs (the p95 either way of ranking
// it, see sketchAgrees), and returns their misses. The p95 is asserted,
// within the jitter plus max(1 ms, 5 %), only with assertP95 and at least
// p95MinSamples samples; otherwise a p95 beyond that is marked in the row
// and logged.
//
// The same ACKs, because in a bulk transfer the check times a subset of
// the ACKs by design (at most capture.MaxTimedSegments segments of a flow
// at once, so fewer per second when the RTT grows; one per TSval tick), and
// the reference all of them: where the path's RTT varies during the
// transfer, as a busy machine's delay line makes it, the two sets weigh its
// moments differently, and their medians and tails part although every
// sample is right. On the other patterns, checkCoverage makes the sets the same.
func checkQuantiles(t *testing.T, r *result, sp pathSpec, assertP95 bool) []string {
	t.Helper()
	var misses []string
	if tol := medianTolerance(r.Ref); !within(r.P50, r.Ref, tol) {
		misses = append(misses, fmt.Sprintf("median %v is %v from the reference's %v for the same ACKs: more than max(0.5 ms, 3 %%) = %v", r.P50, r.P50-r.Ref, r.Ref, tol))
	}
	assertP95 = assertP95 && r.Samples >= p95MinSamples
	if tol := p95Tolerance(r.RefP95, sp.jitter); !within(r.P95, r.RefP95Low, tol) && !within(r.P95, r.RefP95, tol) {
		miss := fmt.Sprintf("p95 %v is %v from the reference's %v for the same ACKs: more than the jitter %v plus max(1 ms, 5 %%) = %v", r.P95, r.P95-r.RefP95, r.RefP95, sp.jitter, tol)
		if assertP95 {
			misses = append(misses, miss)
		} else {
			r.P95Over = true
			t.Logf("%s (reported, not asserted)", miss)
		}
	}
	return misses
}

// checkCoverage checks that the check timed the very ACKs the reference
// timed, no more and no fewer: on a pattern that never has more than a few
// segments in flight, go-metro's rules and the reference's are the same.
func checkCoverage(r result) []string {
	if r.Same == r.RefSamples && r.Same == r.Samples {
		return nil
	}
	return []string{fmt.Sprintf("the check has %d samples, the reference %d, and %d of them time the same ACKs alike: want all of them", r.Samples, r.RefSamples, r.Same)}
}

// checkSketch checks that the check's p50 and p95 are the quantiles of the
// samples it aggregated, within the relative accuracy of its sketch.
func checkSketch(t *testing.T, m measurement) {
	t.Helper()
	var rtts []time.Duration
	for _, s := range m.Samples {
		rtts = append(rtts, s.RTT)
	}
	for _, q := range []struct {
		name string
		q    float64
		got  time.Duration
	}{{"p50", 0.5, m.P50}, {"p95", 0.95, m.P95}} {
		if !sketchAgrees(q.got, rtts, q.q) {
			t.Errorf("the check's %s %v is not within %.0f %% of the %s of its %d samples, between %v and %v",
				q.name, q.got, capture.SketchRelativeAccuracy*100, q.name, len(rtts), quantileLow(rtts, q.q), quantile(rtts, q.q))
		}
	}
}

// checkPairing checks that every sample of m times a segment the client
// sent and the segment that answers it (see pairing), and that the check
// reported every sample the capture made; it reports what is wrong with
// fail.
func checkPairing(fail func(format string, args ...any), r *result, m measurement) {
	r.Paired = len(m.Samples) - len(m.Unpaired)
	for i, why := range m.Unpaired {
		if i == 5 {
			fail("... and %d more unpaired samples", len(m.Unpaired)-i)
			break
		}
		fail("unpaired: %s", why)
	}
	if len(m.Samples) != m.Count {
		fail("the capture made %d samples, the check reported %d", len(m.Samples), m.Count)
	}
}

func logMeasurement(t *testing.T, m measurement) {
	t.Helper()
	methods := map[capture.Method]int{}
	var rtts []time.Duration
	for _, s := range m.Samples {
		methods[s.Method]++
		rtts = append(rtts, s.RTT)
	}
	t.Logf("%v of traffic: %d samples %v, p50 %v p95 %v (samples: p50 %v p95 %v max %v); reference: %d samples %v, p50 %v p95 %v max %v; %d samples are the reference's of the same ACK (%d within a TSval tick)",
		m.End.Sub(m.Start).Round(time.Millisecond), m.Count, methods, m.P50, m.P95,
		quantile(rtts, 0.5), quantile(rtts, 0.95), quantile(rtts, 1),
		len(m.Ref), m.Ref.Counts(), m.Ref.Median(), m.Ref.Quantile(0.95), m.Ref.Quantile(1), len(m.Same), m.Fallback)
}

// describeRexmits lists the retransmissions in flight during a sample,
// with their times and those of their first transmissions relative to the
// segment the sample timed.
func describeRexmits(s capture.Sample, rexmits []testbed.Retransmission) string {
	from := s.Time.Add(-s.RTT)
	var b strings.Builder
	b.WriteString("retransmissions in flight (times after the timed segment):")
	for _, r := range rexmits {
		if r.Src == s.Local && r.Dst == s.Remote && r.Time.After(from) && r.Time.Before(s.Time) {
			first := "unknown"
			if !r.First.IsZero() {
				first = r.First.Sub(from).String()
			}
			fmt.Fprintf(&b, " [%d, %d) at %v, first sent at %s;", r.Seq, r.End, r.Time.Sub(from), first)
		}
	}
	return b.String()
}

// loadAverage returns the one-minute load average of the machine, or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
