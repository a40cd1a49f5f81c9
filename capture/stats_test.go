package capture

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	peerA = AddrPeer(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7"))
	peerB = AddrPeer(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.8"))
	peerC = AddrPeer(netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8:ffff::7"))
)

// statsCmp compares PeerStats: netip.Addr has unexported fields.
var statsCmp = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

// ignoreQuantiles leaves the sketch's quantiles out of a comparison;
// TestQuantiles checks them.
var ignoreQuantiles = cmpopts.IgnoreFields(PeerStats{}, "P50", "P95", "P99", "Buckets")

// ignoreBuckets leaves the distribution out of a comparison; TestBuckets
// checks it.
var ignoreBuckets = cmpopts.IgnoreFields(PeerStats{}, "Buckets")

// sortStats orders drained stats by peer, for comparison.
func sortStats(s []PeerStats) []PeerStats {
	slices.SortFunc(s, func(a, b PeerStats) int {
		if c := a.Local.Compare(b.Local); c != 0 {
			return c
		}
		return a.Remote.Compare(b.Remote)
	})
	return s
}

// at returns the Unix nanoseconds of t0+d.
func at(d time.Duration) int64 { return t0.Add(d).UnixNano() }

func TestSmoothedRTT(t *testing.T) {
	// The expected values are worked out by hand from RFC 6298 §2: the
	// first sample R sets SRTT = R and RTTVAR = R/2; each next one sets
	// RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, then SRTT = 7/8 SRTT + 1/8 R.
	// Durations truncate to the nanosecond.
	tests := []struct {
		name   string
		series []time.Duration
		srtt   time.Duration
		rttvar time.Duration
	}{
		{name: "one-sample", series: []time.Duration{ms(100)}, srtt: ms(100), rttvar: ms(50)},
		{
			// 100: 100, 50; 200: 112.5, 62.5; 100: 110.9375, 50;
			// 300: 134.5703125, 84.765625.
			name:   "rising",
			series: []time.Duration{ms(100), ms(200), ms(100), ms(300)},
			srtt:   134_570_312, rttvar: 84_765_625,
		},
		{
			// RTTVAR decays by 3/4 a sample: 10 ms × (3/4)^9.
			name:   "constant",
			series: slices.Repeat([]time.Duration{ms(20)}, 10),
			srtt:   ms(20), rttvar: 750_846,
		},
		{
			// 1 ms: 1, 0.5; 0: 0.875, 0.625 (µs × 1000).
			name:   "zero-sample",
			series: []time.Duration{ms(1), 0},
			srtt:   875_000, rttvar: 625_000,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator()
			for i, r := range tc.series {
				aggAdd(a, peerA, int64(r), MethodSeqAck, at(time.Duration(i)*time.Second))
			}
			got := a.drain(nil)
			if len(got) != 1 {
				t.Fatalf("drained %d peers, want 1", len(got))
			}
			if got[0].SRTT != tc.srtt || got[0].RTTVar != tc.rttvar {
				t.Errorf("SRTT, RTTVar = %v, %v; want %v, %v", got[0].SRTT, got[0].RTTVar, tc.srtt, tc.rttvar)
			}
		})
	}
}

// TestSmoothedRTTPeerLifetime checks that the smoothed RTT is carried
// across drains while the peer has samples, and forgotten once it has had
// none for idle_ttl.
func TestSmoothedRTTPeerLifetime(t *testing.T) {
	// The first two samples (100 and 200 ms at 0 and 1 s) leave SRTT
	// 112.5 ms and RTTVAR 62.5 ms; the third, 100 ms, follows them.
	tests := []struct {
		name     string
		idleTTL  time.Duration
		expireAt time.Duration // Expire at t0+expireAt before the third sample
		third    time.Duration // capture time of the third sample
		srtt     time.Duration
		rttvar   time.Duration
		peers    uint64 // Stats.Peers after the Expire
	}{
		{
			name:     "carried",
			expireAt: time.Second + DefaultIdleTTL,
			third:    time.Second + DefaultIdleTTL,
			srtt:     ms(110.9375), rttvar: ms(50),
			peers: 1,
		},
		{
			name:     "forgotten-after-idle-ttl",
			expireAt: time.Second + DefaultIdleTTL + 1,
			third:    time.Second + DefaultIdleTTL + 1,
			srtt:     ms(100), rttvar: ms(50),
			peers: 0,
		},
		{
			name:     "custom-idle-ttl/carried",
			idleTTL:  10 * time.Second,
			expireAt: 11 * time.Second,
			third:    11 * time.Second,
			srtt:     ms(110.9375), rttvar: ms(50),
			peers: 1,
		},
		{
			name:     "custom-idle-ttl/forgotten",
			idleTTL:  10 * time.Second,
			expireAt: 11*time.Second + 1,
			third:    12 * time.Second,
			srtt:     ms(100), rttvar: ms(50),
			peers: 0,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := NewEngine(Config{IdleTTL: tc.idleTTL})
			aggAdd(e.agg, peerA, int64(ms(100)), MethodTimestamp, at(0))
			aggAdd(e.agg, peerA, int64(ms(200)), MethodTimestamp, at(time.Second))
			first := e.Drain(nil)
			if len(first) != 1 || first[0].SRTT != ms(112.5) || first[0].RTTVar != ms(62.5) {
				t.Fatalf("first drain = %+v, want SRTT 112.5ms, RTTVar 62.5ms", first)
			}
			e.Expire(t0.Add(tc.expireAt))
			if got := e.Stats().Peers; got != tc.peers {
				t.Errorf("Stats().Peers = %d after Expire, want %d", got, tc.peers)
			}
			aggAdd(e.agg, peerA, int64(ms(100)), MethodTimestamp, at(tc.third))
			got := e.Drain(nil)
			if len(got) != 1 || got[0].SRTT != tc.srtt || got[0].RTTVar != tc.rttvar {
				t.Errorf("second drain = %+v, want SRTT %v, RTTVar %v", got, tc.srtt, tc.rttvar)
			}
			if got := e.Stats().Peers; got != 1 {
				t.Errorf("Stats().Peers = %d after the third sample, want 1", got)
			}
		})
	}
}

// TestPeerForgottenBySweep checks, end to end, that a peer's smoothed RTT
// is forgotten by the capture-time sweep once it has gone idle_ttl
// without samples, while another peer keeps the capture going.
func TestPeerForgottenBySweep(t *testing.T) {
	e, _ := newTestEngine(t, Config{IdleTTL: 10 * time.Second}, "192.0.2.1")
	sc := script(false)
	// Peer A: samples at 20 and 140 ms.
	a := newConn(t, e, rttLocal, rttRemote)
	a.play(concat(sc.activeOpen(ms(20)), sc.requests(ms(40), ms(100))))
	// Peer B: samples at 5.03 and 10.03 s; the sweep at 10 s keeps A.
	b := newConn(t, e, "192.0.2.1:40001", "198.51.100.8:443")
	b.play(sc.requests(ms(30), 5*time.Second, 10*time.Second))
	if got := e.Stats().Peers; got != 2 {
		t.Fatalf("Stats().Peers = %d before A's idle_ttl ran out, want 2", got)
	}
	// B's packet at 11 s runs the sweep: A has had no sample since
	// 140 ms, more than idle_ttl, and its stats were drained.
	e.Drain(nil)
	b.play([]step{stepOut(11*time.Second, segData(lISN+1+2*reqLen, rISN+1+2*respLen, 1))})
	if got := e.Stats().Peers; got != 1 {
		t.Errorf("Stats().Peers = %d after the sweep, want 1", got)
	}
	e.Drain(nil)
	// A's next sample starts afresh: SRTT = R, RTTVAR = R/2.
	a.play([]step{
		stepOut(12*time.Second, segData(lISN+1+reqLen, rISN+1+respLen, reqLen)),
		stepIn(12*time.Second+ms(25), segACK(rISN+1+respLen, lISN+1+2*reqLen)),
	})
	got := e.Drain(nil)
	if len(got) != 1 || got[0].PeerKey != peerA || got[0].SRTT != ms(25) || got[0].RTTVar != ms(12.5) {
		t.Errorf("drain = %+v, want peer A with SRTT 25ms, RTTVar 12.5ms", got)
	}
}

func TestDrain(t *testing.T) {
	a := newAggregator()
	// Interval 1: A gets three samples by two methods, B one.
	aggAdd(a, peerA, int64(ms(30)), MethodTimestamp, at(ms(100)))
	aggAdd(a, peerB, int64(ms(5)), MethodHandshake, at(ms(150)))
	aggAdd(a, peerA, int64(ms(10)), MethodSeqAck, at(ms(200)))
	aggAdd(a, peerA, int64(ms(20)), MethodTimestamp, at(ms(300)))
	dst := []PeerStats{{Count: 99}} // Drain appends
	got := a.drain(dst)
	want := []PeerStats{
		{Count: 99},
		{
			PeerKey: peerA, Count: 3, ByMethod: [NumMethods]uint64{2, 1, 0},
			Last: ms(20), Min: ms(10), Max: ms(30),
			// 30: 30, 15; 10: 27.5, 16.25; 20: 26.5625, 14.0625
			SRTT: ms(26.5625), RTTVar: ms(14.0625),
			LastTime: t0.Add(ms(300)),
		},
		{
			PeerKey: peerB, Count: 1, ByMethod: [NumMethods]uint64{0, 0, 1},
			Last: ms(5), Min: ms(5), Max: ms(5), SRTT: ms(5), RTTVar: ms(2.5),
			LastTime: t0.Add(ms(150)),
		},
	}
	sortStats(got[1:])
	if diff := cmp.Diff(want, got, statsCmp, ignoreQuantiles); diff != "" {
		t.Errorf("first drain (-want +got):\n%s", diff)
	}

	// Nothing since: an empty drain.
	if got := a.drain(nil); len(got) != 0 {
		t.Errorf("second drain = %+v, want none", got)
	}

	// Interval 3: only C and A, A's interval stats afresh.
	aggAdd(a, peerC, int64(ms(1)), MethodSeqAck, at(ms(400)))
	aggAdd(a, peerA, int64(ms(40)), MethodSeqAck, at(ms(500)))
	got = sortStats(a.drain(nil))
	want = []PeerStats{
		{
			PeerKey: peerA, Count: 1, ByMethod: [NumMethods]uint64{0, 1, 0},
			Last: ms(40), Min: ms(40), Max: ms(40),
			// 40 after 26.5625, 14.0625: 28.2421875, 13.90625
			SRTT: 28_242_187, RTTVar: ms(13.90625),
			P50: ms(40), P95: ms(40), P99: ms(40), // one sample: clamped to min and max
			LastTime: t0.Add(ms(500)),
		},
		{
			PeerKey: peerC, Count: 1, ByMethod: [NumMethods]uint64{0, 1, 0},
			Last: ms(1), Min: ms(1), Max: ms(1), SRTT: ms(1), RTTVar: ms(0.5),
			P50: ms(1), P95: ms(1), P99: ms(1),
			LastTime: t0.Add(ms(400)),
		},
	}
	if diff := cmp.Diff(want, got, statsCmp, ignoreBuckets); diff != "" {
		t.Errorf("third drain (-want +got):\n%s", diff)
	}
}

// TestDrainEngine checks Drain end to end: only peers with samples since
// the last drain are returned.
func TestDrainEngine(t *testing.T) {
	e, _ := newTestEngine(t, Config{}, "192.0.2.1")
	sc := script(true)
	a := newConn(t, e, rttLocal, rttRemote)
	b := newConn(t, e, "192.0.2.1:40001", "198.51.100.8:443")
	a.play(concat(sc.activeOpen(ms(20)), sc.requests(ms(20), ms(100))))
	b.play(concat(sc.activeOpen(ms(30)), sc.requests(ms(30), ms(100))))
	got := sortStats(e.Drain(nil))
	if len(got) != 2 || got[0].PeerKey != peerA || got[0].Count != 2 || got[1].PeerKey != peerB || got[1].Count != 2 {
		t.Fatalf("first drain = %+v, want peers A and B with 2 samples each", got)
	}
	// Only A has new samples.
	a.play(sc.requests(ms(20), ms(100), ms(200))[3:])
	got = e.Drain(nil)
	want := []PeerStats{{
		PeerKey: peerA, Count: 1, ByMethod: [NumMethods]uint64{1, 0, 0},
		// SRTT and RTTVAR carry on from the first interval's samples
		// (20 ms each): RTTVAR 10, 7.5, then 5.625 ms.
		Last: ms(20), Min: ms(20), Max: ms(20), SRTT: ms(20), RTTVar: ms(5.625),
		P50: ms(20), P95: ms(20), P99: ms(20), LastTime: t0.Add(ms(220)),
	}}
	if diff := cmp.Diff(want, got, statsCmp, ignoreBuckets); diff != "" {
		t.Errorf("second drain (-want +got):\n%s", diff)
	}
	if got := e.Drain(nil); len(got) != 0 {
		t.Errorf("third drain = %+v, want none", got)
	}
}

// TestQuantiles checks the interval quantiles against the exact ones of
// large random series: within the sketch's 1 % relative accuracy. The
// exact quantile q of n sorted values is the nearest rank, the ⌈q·n⌉-th
// smallest.
func TestQuantiles(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	logUniform := func(lo, hi time.Duration) func() time.Duration {
		return func() time.Duration {
			return time.Duration(math.Exp(math.Log(float64(lo)) + rng.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
		}
	}
	tests := []struct {
		name string
		n    int
		gen  func() time.Duration
	}{
		{name: "log-uniform-10us-60s", n: 200_000, gen: logUniform(10*time.Microsecond, 60*time.Second)},
		{name: "uniform-1-50ms", n: 100_000, gen: func() time.Duration { return ms(1) + time.Duration(rng.Int64N(int64(ms(49)))) }},
		{name: "normal-20ms", n: 100_000, gen: func() time.Duration {
			return max(time.Microsecond, time.Duration(float64(ms(20))+rng.NormFloat64()*float64(ms(2))))
		}},
		{name: "bimodal", n: 100_000, gen: func() time.Duration {
			if rng.IntN(100) < 96 {
				return ms(0.2) + time.Duration(rng.Int64N(int64(ms(0.1))))
			}
			return ms(150) + time.Duration(rng.Int64N(int64(ms(50))))
		}},
		{name: "exponential-sub-ms", n: 100_000, gen: func() time.Duration {
			return time.Microsecond + time.Duration(rng.ExpFloat64()*float64(ms(0.3)))
		}},
		{name: "small", n: 7, gen: logUniform(time.Millisecond, time.Second)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator()
			vals := make([]time.Duration, tc.n)
			for i := range vals {
				vals[i] = tc.gen()
				aggAdd(a, peerA, int64(vals[i]), MethodTimestamp, at(time.Duration(i)))
			}
			got := a.drain(nil)
			if len(got) != 1 {
				t.Fatalf("drained %d peers, want 1", len(got))
			}
			st := got[0]
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			if st.Count != uint64(tc.n) || st.Min != sorted[0] || st.Max != sorted[tc.n-1] || st.Last != vals[tc.n-1] {
				t.Errorf("Count, Min, Max, Last = %d, %v, %v, %v; want %d, %v, %v, %v",
					st.Count, st.Min, st.Max, st.Last, tc.n, sorted[0], sorted[tc.n-1], vals[tc.n-1])
			}
			for _, q := range []struct {
				q   float64
				got time.Duration
			}{{0.5, st.P50}, {0.95, st.P95}, {0.99, st.P99}} {
				exact := sorted[nearestRank(q.q, tc.n)-1]
				// 1 % of the exact value, plus the nanosecond that the
				// conversion from the sketch's microseconds truncates.
				tol := SketchRelativeAccuracy*float64(exact) + 1
				if d := math.Abs(float64(q.got - exact)); d > tol {
					t.Errorf("p%v = %v, exact %v: off by %.3f %%", q.q*100, q.got, exact, 100*d/float64(exact))
				}
			}
		})
	}
}

// nearestRank returns ⌈q·n⌉, at least 1.
func nearestRank(q float64, n int) int { return max(int(math.Ceil(q*float64(n)-1e-9)), 1) }

// TestQuantilesNearestRank checks the quantile definition on small sets,
// where it matters most: an outlier among fewer than 100 samples is p99.
func TestQuantilesNearestRank(t *testing.T) {
	tests := []struct {
		name          string
		vals          []time.Duration
		p50, p95, p99 time.Duration
	}{
		{name: "one", vals: []time.Duration{ms(7)}, p50: ms(7), p95: ms(7), p99: ms(7)},
		{name: "two", vals: []time.Duration{ms(10), ms(100)}, p50: ms(10), p95: ms(100), p99: ms(100)},
		// The review's case: with rank ⌊q(n-1)⌋, p99 was 10 ms.
		{name: "50x10ms+100ms", vals: append(slices.Repeat([]time.Duration{ms(10)}, 50), ms(100)), p50: ms(10), p95: ms(10), p99: ms(100)},
		{name: "100x10ms+100ms", vals: append(slices.Repeat([]time.Duration{ms(10)}, 100), ms(100)), p50: ms(10), p95: ms(10), p99: ms(10)},
		{name: "18x10ms+100ms", vals: append(slices.Repeat([]time.Duration{ms(10)}, 18), ms(100)), p50: ms(10), p95: ms(100), p99: ms(100)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator()
			for i, v := range tc.vals {
				aggAdd(a, peerA, int64(v), MethodSeqAck, at(time.Duration(i)))
			}
			st := a.drain(nil)[0]
			near := func(got, want time.Duration) bool {
				return math.Abs(float64(got-want)) <= SketchRelativeAccuracy*float64(want)
			}
			if !near(st.P50, tc.p50) || !near(st.P95, tc.p95) || !near(st.P99, tc.p99) {
				t.Errorf("p50, p95, p99 = %v, %v, %v; want %v, %v, %v", st.P50, st.P95, st.P99, tc.p50, tc.p95, tc.p99)
			}
		})
	}
}

// TestDrainDuringProcess runs Process on one goroutine while others drain
// in a loop, for the race detector, and checks that no sample is lost or
// counted twice.
func TestDrainDuringProcess(t *testing.T) {
	for _, drainers := range []int{1, 3} {
		t.Run(fmt.Sprintf("drainers-%d", drainers), func(t *testing.T) {
			e, _ := newTestEngine(t, Config{}, "192.0.2.1")
			var done atomic.Bool
			var drained atomic.Uint64
			var wg sync.WaitGroup
			for range drainers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					var buf []PeerStats
					for !done.Load() {
						buf = e.Drain(buf[:0])
						for _, st := range buf {
							drained.Add(st.Count)
						}
						_ = e.Stats()
					}
				}()
			}
			// Eight connections to eight peers, 200 requests each.
			for i := range 8 {
				sc := script(i%2 == 0)
				c := newConn(t, e, fmt.Sprintf("192.0.2.1:%d", 40000+i), fmt.Sprintf("198.51.100.%d:443", 10+i))
				starts := make([]time.Duration, 200)
				for j := range starts {
					starts[j] = ms(100) + time.Duration(j)*ms(50)
				}
				c.play(concat(sc.activeOpen(ms(20)), sc.requests(ms(20)+time.Duration(i)*time.Millisecond, starts...)))
			}
			done.Store(true)
			wg.Wait()
			for _, st := range e.Drain(nil) {
				drained.Add(st.Count)
			}
			want := uint64(8 * 201)
			if s := e.Stats().Samples; s != want {
				t.Errorf("Stats().Samples = %d, want %d", s, want)
			}
			if got := drained.Load(); got != want {
				t.Errorf("drained %d samples in all, want %d", got, want)
			}
		})
	}
}

// aggAdd records a sample of rtt ns at capture time t for key k, as the
// engine does, with the engine clock at t.
func aggAdd(a *aggregator, k PeerKey, rtt int64, m Method, t int64) {
	if r := a.record(k, t); r != nil {
		a.add(r, rtt, m, t, t)
	}
}

// TestRTTVarNoSubnormal checks that a steady RTT takes RTTVAR to 0 without
// leaving it among the subnormal floats, whose arithmetic is slow, and that
// a changing RTT still gives RFC 6298's RTTVAR.
func TestRTTVarNoSubnormal(t *testing.T) {
	a := newAggregator()
	for i := range 5000 {
		aggAdd(a, peerA, int64(ms(20)), MethodTimestamp, at(ms(float64(i))))
		if v := a.peers[peerA].rttvar; v != 0 && math.Abs(v) < 0x1p-1022 {
			t.Fatalf("sample %d: rttvar %g is subnormal", i, v)
		}
	}
	if got := a.peers[peerA].rttvar; got != 0 {
		t.Errorf("rttvar after a steady RTT = %g, want 0", got)
	}
	aggAdd(a, peerA, int64(ms(28)), MethodTimestamp, at(ms(6000)))
	if r := a.peers[peerA]; r.srtt != float64(ms(21)) || r.rttvar != float64(ms(2)) {
		t.Errorf("after a step to 28 ms: srtt %v, rttvar %v, want 21 ms, 2 ms", time.Duration(r.srtt), time.Duration(r.rttvar))
	}
}
