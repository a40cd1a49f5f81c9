package capture

import (
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// interpolated returns the values that spreading each bucket's count
// evenly over [Lower, Upper] gives, as the Agent's check sampler does
// with a histogram bucket (insertInterp), sorted.
func interpolated(buckets []Bucket) []time.Duration {
	var out []time.Duration
	for _, b := range buckets {
		for i := range b.Count {
			f := (float64(i) + 0.5) / float64(b.Count)
			out = append(out, b.Lower+time.Duration(f*float64(b.Upper-b.Lower)))
		}
	}
	slices.Sort(out)
	return out
}

// TestBuckets checks the interval's distribution: its bucket counts add
// up to the samples, no bound is infinite or outside [Min, Max], and
// quantiles of the buckets spread linearly within each (what the Agent
// makes of them) are within 2 % of the exact nearest-rank quantiles.
func TestBuckets(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	logUniform := func(lo, hi float64) func() time.Duration {
		return func() time.Duration {
			return time.Duration(math.Exp(math.Log(lo) + rng.Float64()*(math.Log(hi)-math.Log(lo))))
		}
	}
	tests := []struct {
		name string
		n    int
		gen  func() time.Duration
	}{
		{name: "one", n: 1, gen: func() time.Duration { return ms(20) }},
		{name: "equal", n: 50, gen: func() time.Duration { return ms(20) }},
		{name: "normal-20ms", n: 5000, gen: func() time.Duration {
			return max(time.Microsecond, time.Duration(float64(ms(20))+rng.NormFloat64()*float64(ms(2))))
		}},
		{name: "log-uniform-50us-5s", n: 20000, gen: logUniform(float64(50*time.Microsecond), float64(5*time.Second))},
		{name: "bimodal", n: 2000, gen: func() time.Duration {
			if rng.IntN(10) < 9 {
				return ms(0.3) + time.Duration(rng.Int64N(int64(ms(0.05))))
			}
			return ms(80) + time.Duration(rng.Int64N(int64(ms(40))))
		}},
		// A span wider than the sketch's 512 bins: the lowest collapse.
		{name: "collapsed-1us-60s", n: 20000, gen: logUniform(float64(time.Microsecond), float64(60*time.Second))},
		{name: "zero-and-tiny", n: 100, gen: func() time.Duration { return time.Duration(rng.IntN(3)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAggregator()
			vals := make([]time.Duration, tc.n)
			for i := range vals {
				vals[i] = tc.gen()
				aggAdd(a, peerA, int64(vals[i]), MethodSeqAck, at(time.Duration(i)))
			}
			st := a.drain(nil)[0]
			var sum uint64
			for i, b := range st.Buckets {
				sum += b.Count
				if b.Count == 0 || b.Lower > b.Upper || b.Lower < st.Min || b.Upper > st.Max ||
					i > 0 && b.Lower < st.Buckets[i-1].Lower {
					t.Errorf("bucket %d %+v: want a count, Lower <= Upper within [%v, %v], increasing", i, b, st.Min, st.Max)
				}
			}
			if sum != st.Count || sum != uint64(tc.n) {
				t.Errorf("bucket counts add up to %d, want %d samples", sum, tc.n)
			}
			sorted := slices.Clone(vals)
			slices.Sort(sorted)
			spread := interpolated(st.Buckets)
			for _, q := range []float64{0.5, 0.95, 0.99} {
				r := nearestRank(q, tc.n) - 1
				exact, got := sorted[r], spread[r]
				tol := 0.02*float64(exact) + 2 // ns: the bounds are rounded to the ns
				if d := math.Abs(float64(got - exact)); d > tol {
					t.Errorf("p%v of the spread buckets = %v, exact %v: off by %.2f %%", q*100, got, exact, 100*d/float64(exact))
				}
			}
		})
	}
}

// TestServiceTags checks direction and service port: connections the
// local side opens are outbound to the remote port, those it accepts
// inbound on its own port, and connections that began before the capture
// are told by the ephemeral port range.
func TestServiceTags(t *testing.T) {
	e, _ := newTestEngine(t, Config{ServiceTags: true}, "192.0.2.1")
	sc := script(false)
	local, remote := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	// Two outbound connections to port 443, one to 5432.
	newConn(t, e, "192.0.2.1:40000", "198.51.100.7:443").play(concat(sc.activeOpen(ms(10)), sc.requests(ms(10), ms(100))))
	newConn(t, e, "192.0.2.1:40001", "198.51.100.7:443").play(concat(sc.activeOpen(ms(10)), sc.requests(ms(10), ms(100))))
	newConn(t, e, "192.0.2.1:40002", "198.51.100.7:5432").play(concat(sc.activeOpen(ms(30)), sc.requests(ms(30), ms(100))))
	// One inbound connection to the local port 8080.
	newConn(t, e, "192.0.2.1:8080", "198.51.100.7:51000").play(concat(sc.passiveOpen(ms(20)), sc.responses(ms(20), ms(100))))
	// Connections seen from the middle: by the ephemeral range.
	newConn(t, e, "192.0.2.1:33000", "198.51.100.7:6379").play(sc.requests(ms(5), ms(100)))
	newConn(t, e, "192.0.2.1:9000", "198.51.100.7:45000").play(sc.responses(ms(7), ms(100)))
	// Neither side ephemeral nor well-known: unknown, without a port.
	newConn(t, e, "192.0.2.1:2000", "198.51.100.7:3000").play(sc.requests(ms(9), ms(100)))
	got := map[PeerKey]uint64{}
	for _, p := range e.Drain(nil) {
		got[p.PeerKey] = p.Count
	}
	k := func(d Direction, port uint32) PeerKey {
		return PeerKey{Local: local, Remote: RemoteAddr(remote), Dir: d, Port: port}
	}
	want := map[PeerKey]uint64{
		k(DirOutbound, 443):  4,
		k(DirOutbound, 5432): 2,
		k(DirInbound, 8080):  2,
		k(DirOutbound, 6379): 1,
		k(DirInbound, 9000):  1,
		k(DirUnknown, 0):     1,
	}
	if !maps.Equal(got, want) {
		t.Errorf("samples per series:\n got %v\nwant %v", got, want)
	}
}

// TestMaxPorts checks that a peer's service ports beyond MaxPorts are
// folded into port:other, and counted.
func TestMaxPorts(t *testing.T) {
	e, _ := newTestEngine(t, Config{ServiceTags: true, MaxPorts: 3}, "192.0.2.1")
	sc := script(false)
	for i := range 5 {
		newConn(t, e, netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), uint16(40000+i)).String(),
			netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), uint16(1000+i)).String()).
			play(concat(sc.activeOpen(ms(10)), sc.requests(ms(10), ms(100))))
	}
	got := map[uint32]uint64{}
	for _, p := range e.Drain(nil) {
		got[p.Port] = p.Count
	}
	want := map[uint32]uint64{1000: 2, 1001: 2, 1002: 2, PortOther: 4}
	if !maps.Equal(got, want) {
		t.Errorf("samples per port: got %v, want %v", got, want)
	}
	if st := e.Stats(); st.PortsFolded != 2 {
		t.Errorf("Stats.PortsFolded = %d, want 2", st.PortsFolded)
	}
}

// TestPeerPrefixes groups remote addresses by network: three clients in
// one /24 and one in another are two series, with counts added and
// sketches merged; host names keep their name.
func TestPeerPrefixes(t *testing.T) {
	pr, err := NewPeerResolver(PeerSpec{Hosts: []string{"db.example"}}, mapResolver{"db.example": {netip.MustParseAddr("203.0.113.99")}})
	if err != nil {
		t.Fatal(err)
	}
	peers, _ := pr.Resolve(t.Context())
	e, _ := newTestEngine(t, Config{PrefixV4: 24, PrefixV6: 48}, "192.0.2.1", "2001:db8::1")
	e.SetNames(peers)
	sc := script(false)
	for i, c := range []struct {
		remote string
		rtt    time.Duration
	}{
		{"203.0.113.7:443", ms(10)}, {"203.0.113.8:443", ms(20)}, {"203.0.113.200:443", ms(30)},
		{"198.51.100.7:443", ms(5)},
		{"203.0.113.99:443", ms(40)}, // db.example
		{"[2001:db8:aaaa:1::7]:443", ms(3)}, {"[2001:db8:aaaa:2::8]:443", ms(4)},
	} {
		local := "192.0.2.1"
		if netip.MustParseAddrPort(c.remote).Addr().Is6() {
			local = "2001:db8::1"
		}
		newConn(t, e, netip.AddrPortFrom(netip.MustParseAddr(local), uint16(40000+i)).String(), c.remote).
			play(concat(sc.activeOpen(c.rtt), sc.requests(c.rtt, ms(100))))
	}
	got := map[string]PeerStats{}
	for _, p := range e.Drain(nil) {
		got[p.Remote.String()] = p
	}
	want := map[string]struct {
		count    uint64
		min, max time.Duration
	}{
		"203.0.113.0/24":     {6, ms(10), ms(30)},
		"198.51.100.0/24":    {2, ms(5), ms(5)},
		"db.example":         {2, ms(40), ms(40)},
		"2001:db8:aaaa::/48": {4, ms(3), ms(4)},
	}
	if len(got) != len(want) {
		t.Fatalf("series %v, want %v", slices.Sorted(maps.Keys(got)), want)
	}
	for name, w := range want {
		p, ok := got[name]
		if !ok || p.Count != w.count || p.Min != w.min || p.Max != w.max {
			t.Errorf("%s: %+v, want %d samples from %v to %v", name, p, w.count, w.min, w.max)
			continue
		}
		var n uint64
		for _, b := range p.Buckets {
			n += b.Count
		}
		if n != w.count {
			t.Errorf("%s: the merged sketch holds %d samples, want %d", name, n, w.count)
		}
	}
}
