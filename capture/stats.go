package capture

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch"
)

// PeerKey identifies a peer: a local address and the remote one it talks
// to. It is comparable and used as a map key.
type PeerKey struct {
	Local, Remote netip.Addr
}

// PeerStats is what a drain reports for one peer over one interval.
type PeerStats struct {
	PeerKey
	// Count is the number of samples in the interval; ByMethod splits it.
	Count    uint64
	ByMethod [NumMethods]uint64
	// Last, Min and Max are over the interval.
	Last, Min, Max time.Duration
	// SRTT and RTTVar are the RFC 6298 smoothed RTT and RTT variation
	// (α = 1/8, β = 1/4), carried across intervals while the peer is
	// active.
	SRTT, RTTVar time.Duration
	// P50, P95 and P99 are interval quantiles from a DDSketch with 1 %
	// relative accuracy.
	P50, P95, P99 time.Duration
	// LastTime is the capture time of the last sample.
	LastTime time.Time
}

// SketchRelativeAccuracy is the relative accuracy of the interval quantiles.
const SketchRelativeAccuracy = 0.01

// sketchMaxBins bounds a sketch's memory to 4 KiB of bins: with 1 %
// accuracy, 512 bins span a factor of 28,000 (10 µs to 280 ms, say) before
// the lowest bins collapse, which only coarsens the lowest quantiles.
const sketchMaxBins = 512

// interval accumulates one peer's samples between two drains. The sketch
// holds microseconds.
type interval struct {
	count    uint64
	byMethod [NumMethods]uint64
	last     int64
	min, max int64
	srtt     float64
	rttvar   float64
	lastTime int64
	sketch   *ddsketch.DDSketch
}

func newInterval() *interval {
	sk, err := ddsketch.LogCollapsingLowestDenseDDSketch(SketchRelativeAccuracy, sketchMaxBins)
	if err != nil {
		panic(err) // constant arguments: unreachable
	}
	return &interval{sketch: sk}
}

// peerState is the part of a peer that outlives an interval: the smoothed
// RTT. Only the packet goroutine touches it.
type peerState struct {
	srtt, rttvar float64 // ns
	lastSample   int64   // capture time, Unix ns
	seen         bool    // srtt and rttvar hold a first sample
}

// aggregator collects samples per peer. add runs on the packet goroutine;
// drain may run on any goroutine concurrently with it, and holds the lock
// only to swap maps.
type aggregator struct {
	peers  map[PeerKey]*peerState // packet goroutine only
	npeers atomic.Uint64          // len(peers), for concurrent readers
	// max caps both len(peers) and len(cur), and so the intervals in
	// free to about max (twice that if new peers arrive while a drain
	// runs), so that a flood of samples from distinct peers cannot grow
	// memory without bound; 0 means no cap. Set before first use.
	max int

	mu    sync.Mutex
	cur   map[PeerKey]*interval // guarded by mu
	spare map[PeerKey]*interval // guarded by mu: an empty map ready for the next swap
	free  []*interval           // guarded by mu: reset intervals for reuse
}

func newAggregator() *aggregator {
	return &aggregator{
		peers: make(map[PeerKey]*peerState),
		cur:   make(map[PeerKey]*interval),
		spare: make(map[PeerKey]*interval),
	}
}

// add records one valid sample of rtt ns at capture time t and reports
// whether it did. It records nothing and returns false when the sample is
// of a peer that would take the peers or the interval beyond max. It does
// not allocate for a peer that has been seen before.
func (a *aggregator) add(k PeerKey, rtt int64, m Method, t int64) bool {
	ps := a.peers[k]
	if ps == nil && a.max > 0 && len(a.peers) >= a.max {
		return false
	}

	a.mu.Lock()
	iv := a.cur[k]
	if iv == nil {
		if a.max > 0 && len(a.cur) >= a.max {
			a.mu.Unlock()
			return false
		}
		if n := len(a.free); n > 0 {
			iv = a.free[n-1]
			a.free = a.free[:n-1]
		} else {
			iv = newInterval()
		}
		a.cur[k] = iv
	}
	if ps == nil {
		ps = &peerState{}
		a.peers[k] = ps
		a.npeers.Store(uint64(len(a.peers)))
	}
	r := float64(rtt)
	if !ps.seen {
		ps.srtt, ps.rttvar, ps.seen = r, r/2, true
	} else {
		d := ps.srtt - r
		if d < 0 {
			d = -d
		}
		ps.rttvar = 0.75*ps.rttvar + 0.25*d
		ps.srtt = 0.875*ps.srtt + 0.125*r
	}
	ps.lastSample = t

	if iv.count == 0 || rtt < iv.min {
		iv.min = rtt
	}
	if iv.count == 0 || rtt > iv.max {
		iv.max = rtt
	}
	iv.count++
	iv.byMethod[m]++
	iv.last = rtt
	iv.lastTime = t
	iv.srtt, iv.rttvar = ps.srtt, ps.rttvar
	_ = iv.sketch.Add(float64(rtt) / 1e3) // µs; Add fails only on negative values
	a.mu.Unlock()
	return true
}

// expire forgets the smoothed RTT of peers without a sample since before.
func (a *aggregator) expire(before int64) {
	for k, ps := range a.peers {
		if ps.lastSample < before {
			delete(a.peers, k)
		}
	}
	a.npeers.Store(uint64(len(a.peers)))
}

// drain returns the peers with samples since the last drain and resets
// their interval stats. It appends to dst and returns it.
func (a *aggregator) drain(dst []PeerStats) []PeerStats {
	a.mu.Lock()
	m := a.cur
	next := a.spare
	a.spare = nil
	if next == nil {
		// Another drain holds the spare map: make a new one (rare). It
		// is installed before unlocking: a nil a.cur would make a
		// concurrent add write to a nil map and panic, and checking
		// a.cur after unlocking would race with add.
		next = make(map[PeerKey]*interval)
	}
	a.cur = next
	a.mu.Unlock()

	done := make([]*interval, 0, len(m))
	for k, iv := range m {
		st := PeerStats{
			PeerKey:  k,
			Count:    iv.count,
			ByMethod: iv.byMethod,
			Last:     time.Duration(iv.last),
			Min:      time.Duration(iv.min),
			Max:      time.Duration(iv.max),
			SRTT:     time.Duration(iv.srtt),
			RTTVar:   time.Duration(iv.rttvar),
			LastTime: time.Unix(0, iv.lastTime),
		}
		if qs, err := iv.sketch.GetValuesAtQuantiles([]float64{0.5, 0.95, 0.99}); err == nil {
			st.P50 = usToDuration(qs[0], iv.min, iv.max)
			st.P95 = usToDuration(qs[1], iv.min, iv.max)
			st.P99 = usToDuration(qs[2], iv.min, iv.max)
		}
		dst = append(dst, st)
		sk := iv.sketch
		sk.Clear()
		*iv = interval{sketch: sk}
		done = append(done, iv)
	}
	clear(m)

	a.mu.Lock()
	a.free = append(a.free, done...)
	if a.spare == nil {
		a.spare = m
	}
	a.mu.Unlock()
	return dst
}

// usToDuration converts a sketch quantile in µs to a Duration, clamped to
// the interval's exact min and max (the sketch's 1 % error could otherwise
// put p99 above max).
func usToDuration(us float64, lo, hi int64) time.Duration {
	v := int64(us * 1e3)
	v = max(v, lo)
	v = min(v, hi)
	return time.Duration(v)
}
