package capture

import (
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/DataDog/sketches-go/ddsketch/mapping"
	"github.com/DataDog/sketches-go/ddsketch/store"
)

// Direction says which side opened a connection. The zero value, DirNone,
// means that service tags are off and the direction is not reported.
type Direction uint8

// The directions of a connection.
const (
	DirNone     Direction = iota // not reported (service tags off)
	DirOutbound                  // the local side opened it: it sent the SYN
	DirInbound                   // the local side accepted it: it sent the SYN-ACK
	DirUnknown                   // neither the handshake nor the port range tells
)

var dirNames = [...]string{"", "outbound", "inbound", "unknown"}

// String returns "outbound", "inbound", "unknown", or "" for DirNone.
func (d Direction) String() string {
	if int(d) < len(dirNames) {
		return dirNames[d]
	}
	return "unknown"
}

// PortOther is the Port of a PeerKey whose samples and counts were folded
// together because its peer already has MaxPorts service ports.
const PortOther = 1 << 16

// Remote is the remote side of a peer: an address, a network when remote
// addresses are grouped by prefix, or a host name from `hosts`, which
// stands for all of its addresses. It is comparable.
type Remote struct {
	// Prefix is the remote address as a single-address prefix (/32 or
	// /128), or the network it was grouped into. It is the zero Prefix
	// when Host is set.
	Prefix netip.Prefix
	// Host is the configured host name whose addresses include the
	// remote address, or "".
	Host string
}

// RemoteAddr returns the Remote of a single address.
func RemoteAddr(a netip.Addr) Remote { return Remote{Prefix: netip.PrefixFrom(a, a.BitLen())} }

// Addr returns the remote address when the Remote is a single address,
// and the zero Addr otherwise.
func (r Remote) Addr() netip.Addr {
	if r.Host == "" && r.Prefix.IsValid() && r.Prefix.IsSingleIP() {
		return r.Prefix.Addr()
	}
	return netip.Addr{}
}

// String returns the value of the dst: tag: the host name, the address,
// or the network in CIDR notation.
func (r Remote) String() string {
	switch {
	case r.Host != "":
		return r.Host
	case !r.Prefix.IsValid():
		return "invalid"
	case r.Prefix.IsSingleIP():
		return r.Prefix.Addr().String()
	}
	return r.Prefix.String()
}

// Compare orders Remotes: host names first, by name, then prefixes.
func (r Remote) Compare(o Remote) int {
	switch {
	case r.Host != "" && o.Host != "":
		if r.Host < o.Host {
			return -1
		} else if r.Host > o.Host {
			return 1
		}
		return 0
	case r.Host != "":
		return -1
	case o.Host != "":
		return 1
	}
	return r.Prefix.Compare(o.Prefix)
}

// PeerKey identifies a series of samples and counts: a local address, the
// remote group it talks to and, with service tags, the direction and
// service port of its connections. It is comparable and used as a map key.
type PeerKey struct {
	Local  netip.Addr
	Remote Remote
	// Dir and Port are DirNone and 0 unless service tags are on. Port is
	// the remote port of outbound connections, the local port of inbound
	// ones, 0 when the direction is unknown, and PortOther for the ports
	// beyond MaxPorts.
	Dir  Direction
	Port uint32
}

// AddrPeer returns the PeerKey of a local and a remote address, without
// service tags.
func AddrPeer(local, remote netip.Addr) PeerKey {
	return PeerKey{Local: local, Remote: RemoteAddr(remote)}
}

// Compare orders PeerKeys by local address, remote, direction and port.
func (k PeerKey) Compare(o PeerKey) int {
	if c := k.Local.Compare(o.Local); c != 0 {
		return c
	}
	if c := k.Remote.Compare(o.Remote); c != 0 {
		return c
	}
	if k.Dir != o.Dir {
		return int(k.Dir) - int(o.Dir)
	}
	return int(k.Port) - int(o.Port)
}

// TCPCounts are a peer's loss and failure counts over one interval.
type TCPCounts struct {
	// Retransmits counts segments the local side sent again: sequence
	// space it had already sent, copies seen on a second device aside.
	Retransmits uint64
	// Opened counts completed handshakes, outbound and inbound.
	Opened uint64
	// Refused counts SYNs of the local side answered by a RST.
	Refused uint64
	// Timeouts counts SYNs of the local side that no SYN-ACK answered
	// within the SYN timeout of the first one.
	Timeouts uint64
	// ResetsLocal and ResetsRemote count RSTs on established connections,
	// by the side that sent them.
	ResetsLocal, ResetsRemote uint64
	// ZeroWindows counts segments of the peer advertising a zero receive
	// window.
	ZeroWindows uint64
}

// IsZero reports whether every count is zero.
func (c TCPCounts) IsZero() bool { return c == TCPCounts{} }

func (c *TCPCounts) add(o *TCPCounts) {
	c.Retransmits += o.Retransmits
	c.Opened += o.Opened
	c.Refused += o.Refused
	c.Timeouts += o.Timeouts
	c.ResetsLocal += o.ResetsLocal
	c.ResetsRemote += o.ResetsRemote
	c.ZeroWindows += o.ZeroWindows
}

// Bucket is one bin of a peer's RTT distribution over an interval:
// Count samples between Lower and Upper (both inclusive bounds of the
// bin, Lower <= Upper, both finite).
type Bucket struct {
	Lower, Upper time.Duration
	Count        uint64
}

// PeerStats is what a drain reports for one peer over one interval.
type PeerStats struct {
	PeerKey
	// Count is the number of samples in the interval; ByMethod splits it.
	// It is 0 when the peer had only TCP counts in the interval: then
	// the RTT fields below are zero.
	Count    uint64
	ByMethod [NumMethods]uint64
	// Last, Min and Max are over the interval.
	Last, Min, Max time.Duration
	// SRTT and RTTVar are the RFC 6298 smoothed RTT and RTT variation
	// (α = 1/8, β = 1/4) over the peer's samples in capture order, carried
	// across intervals while the peer is active.
	SRTT, RTTVar time.Duration
	// P50, P95 and P99 are interval quantiles by the nearest-rank
	// definition (the ⌈q·n⌉-th smallest sample), from a sketch with 1 %
	// relative accuracy, clamped to [Min, Max].
	P50, P95, P99 time.Duration
	// Buckets is the interval's distribution: the sketch's non-empty
	// bins, in increasing order; their counts add up to Count. It is
	// valid until the next Drain.
	Buckets []Bucket
	// LastTime is the capture time of the last sample.
	LastTime time.Time
	// TCP are the loss and failure counts of the interval.
	TCP TCPCounts
}

// SketchRelativeAccuracy is the relative accuracy of the interval quantiles.
const SketchRelativeAccuracy = 0.01

// sketchMaxBins bounds a sketch's memory to 4 KiB of bins: with 1 %
// accuracy, 512 bins span a factor of about 28,000 (10 µs to 280 ms, say)
// before the lowest bins collapse, which only coarsens the lowest
// quantiles.
const sketchMaxBins = 512

// rttMapping maps sketch values (µs) to bins: a cubically interpolated
// logarithm, which needs no math.Log call per sample.
var rttMapping = func() *mapping.CubicallyInterpolatedMapping {
	m, err := mapping.NewCubicallyInterpolatedMapping(SketchRelativeAccuracy)
	if err != nil {
		panic(err) // constant argument: unreachable
	}
	return m
}()

// rttSketch is a DDSketch of non-negative values in µs, built from the
// sketches-go parts with concrete types, so that adding a value makes no
// interface call.
type rttSketch struct {
	bins  store.CollapsingLowestDenseStore // by value: one pointer fewer to follow per sample
	zeros uint64                           // values too small to index (0 µs)
	n     uint64
}

func newRTTSketch() rttSketch {
	return rttSketch{bins: *store.NewCollapsingLowestDenseStore(sketchMaxBins)}
}

func (s *rttSketch) add(us float64) {
	s.n++
	if us <= rttMapping.MinIndexableValue() {
		s.zeros++
		return
	}
	s.bins.Add(rttMapping.Index(min(us, rttMapping.MaxIndexableValue())))
}

func (s *rttSketch) merge(o *rttSketch) {
	s.n += o.n
	s.zeros += o.zeros
	s.bins.MergeWith(&o.bins)
}

func (s *rttSketch) clear() {
	s.bins.Clear()
	s.zeros, s.n = 0, 0
}

// quantiles sets out[i] to the qs[i] quantile in µs by the nearest-rank
// definition: the ⌈q·n⌉-th smallest value (at least the first). qs must
// be increasing.
func (s *rttSketch) quantiles(qs []float64, out []float64) {
	if s.n == 0 {
		return
	}
	var rankBuf [4]uint64
	ranks := rankBuf[:0]
	if len(qs) > len(rankBuf) {
		ranks = make([]uint64, 0, len(qs))
	}
	ranks = ranks[:len(qs)]
	for i, q := range qs {
		ranks[i] = max(uint64(math.Ceil(q*float64(s.n)-1e-9)), 1)
	}
	i := 0
	cum := s.zeros
	for i < len(qs) && cum >= ranks[i] {
		out[i] = 0
		i++
	}
	s.bins.ForEach(func(index int, count float64) bool {
		cum += uint64(count)
		for i < len(qs) && cum >= ranks[i] {
			out[i] = rttMapping.Value(index)
			i++
		}
		return i == len(qs)
	})
	for ; i < len(qs); i++ { // unreachable unless counts disagree
		out[i] = math.Inf(1)
	}
}

// buckets appends the non-empty bins as Buckets, with the lowest lower
// bound raised to lo and the highest upper bound lowered to hi (the exact
// min and max, in ns), so that no bound lies outside the samples.
func (s *rttSketch) buckets(dst []Bucket, lo, hi int64) []Bucket {
	start := len(dst)
	if s.zeros > 0 {
		dst = append(dst, Bucket{Count: s.zeros})
	}
	s.bins.ForEach(func(index int, count float64) bool {
		l := usToNS(rttMapping.LowerBound(index))
		u := usToNS(rttMapping.LowerBound(index + 1))
		dst = append(dst, Bucket{Lower: time.Duration(l), Upper: time.Duration(u), Count: uint64(count)})
		return false
	})
	// The lowest bin of a collapsed store holds everything below it, and
	// the highest bin's upper bound may lie above the largest sample:
	// clamp every bound to the samples' range.
	for i := start; i < len(dst); i++ {
		b := &dst[i]
		b.Lower = time.Duration(min(max(int64(b.Lower), lo), hi))
		b.Upper = time.Duration(min(max(int64(b.Upper), int64(b.Lower)), hi))
	}
	return dst
}

func usToNS(us float64) int64 {
	if math.IsInf(us, 0) || us > math.MaxInt64/1e3 {
		return math.MaxInt64
	}
	return int64(math.Round(us * 1e3))
}

// interval accumulates one peer's samples and counts between two drains.
type interval struct {
	count    uint64
	byMethod [NumMethods]uint64
	last     int64
	min, max int64
	srtt     float64
	rttvar   float64
	lastTime int64 // capture time of the last sample
	sketch   rttSketch
	tcp      TCPCounts
}

func newInterval() *interval { return &interval{sketch: newRTTSketch()} }

func (iv *interval) reset() {
	sk := iv.sketch
	sk.clear()
	*iv = interval{sketch: sk}
}

// merge adds o's samples and counts to iv. The smoothed RTT is that of the
// interval with the newest sample.
func (iv *interval) merge(o *interval) {
	if o.count > 0 {
		if iv.count == 0 || o.min < iv.min {
			iv.min = o.min
		}
		if iv.count == 0 || o.max > iv.max {
			iv.max = o.max
		}
		if iv.count == 0 || o.lastTime >= iv.lastTime {
			iv.last, iv.lastTime, iv.srtt, iv.rttvar = o.last, o.lastTime, o.srtt, o.rttvar
		}
		iv.count += o.count
		for m := range iv.byMethod {
			iv.byMethod[m] += o.byMethod[m]
		}
		iv.sketch.merge(&o.sketch)
	}
	iv.tcp.add(&o.tcp)
}

// summary turns iv into the PeerStats of key k. Its Buckets are appended
// to *buckets; the caller sets st.Buckets once all are appended, because
// appending may move them.
func (iv *interval) summary(k PeerKey, buckets *[]Bucket) PeerStats {
	st := PeerStats{PeerKey: k, TCP: iv.tcp}
	if iv.count == 0 {
		return st
	}
	st.Count = iv.count
	st.ByMethod = iv.byMethod
	st.Last = time.Duration(iv.last)
	st.Min = time.Duration(iv.min)
	st.Max = time.Duration(iv.max)
	st.SRTT = time.Duration(iv.srtt)
	st.RTTVar = time.Duration(iv.rttvar)
	st.LastTime = time.Unix(0, iv.lastTime)
	var qs [3]float64
	iv.sketch.quantiles([]float64{0.5, 0.95, 0.99}, qs[:])
	st.P50 = usToDuration(qs[0], iv.min, iv.max)
	st.P95 = usToDuration(qs[1], iv.min, iv.max)
	st.P99 = usToDuration(qs[2], iv.min, iv.max)
	*buckets = iv.sketch.buckets(*buckets, iv.min, iv.max)
	return st
}

// peerRec is the aggregate of one PeerKey. Flows keep a pointer to theirs,
// so that a sample needs no map lookup.
type peerRec struct {
	key PeerKey
	// Packet goroutine only.
	srtt, rttvar float64 // ns
	seen         bool    // srtt and rttvar hold a first sample
	active       int64   // engine clock of the last sample or count
	dead         bool    // expired: flows must look their record up again
	// iv holds the current interval's stats, nil until the interval's
	// first sample or count. Guarded by aggregator.mu.
	iv *interval
}

// aggregator collects samples and counts per PeerKey. Its record and add
// methods run on the packet goroutine; drain may run on any goroutine
// concurrently with them, and holds the lock only to take the intervals.
type aggregator struct {
	peers  map[PeerKey]*peerRec // packet goroutine only
	npeers atomic.Uint64        // len(peers), for concurrent readers
	// max caps len(peers), and so the intervals (at most one per record,
	// plus the free list), so that a flood of samples from distinct peers
	// cannot grow memory without bound; 0 means no cap. Set before first
	// use.
	max int
	// maxPorts caps the service ports per local and remote pair; 0 means
	// no cap. ports counts them, by the key with Dir and Port cleared.
	maxPorts int
	ports    map[PeerKey]int
	folded   atomic.Uint64 // new series folded into PortOther

	// drainMu serialises drains, which reuse ivBuf and bucketBuf.
	drainMu   sync.Mutex
	ivBuf     []keyedInterval
	bucketBuf []Bucket
	endBuf    []int

	mu    sync.Mutex
	held  bool        // packet goroutine only: a batch holds mu (hold), but while OnSample runs
	dirty []*peerRec  // guarded by mu: the records with an interval
	spare []*peerRec  // guarded by mu: an empty slice for the next swap
	free  []*interval // guarded by mu: reset intervals for reuse
}

func newAggregator() *aggregator {
	return &aggregator{peers: make(map[PeerKey]*peerRec), ports: make(map[PeerKey]int)}
}

// record returns the record of k, creating it if needed. It returns nil
// when a new record would take the peers beyond max. A service port
// beyond maxPorts for its local and remote pair is folded into PortOther.
// now is the engine clock.
func (a *aggregator) record(k PeerKey, now int64) *peerRec {
	if r := a.peers[k]; r != nil {
		return r
	}
	var base PeerKey
	if k.Dir != DirNone && k.Port != 0 && k.Port != PortOther && a.maxPorts > 0 {
		base = PeerKey{Local: k.Local, Remote: k.Remote}
		if a.ports[base] >= a.maxPorts {
			a.folded.Add(1)
			k.Port = PortOther
			if r := a.peers[k]; r != nil {
				return r
			}
			base = PeerKey{}
		}
	}
	if a.max > 0 && len(a.peers) >= a.max {
		return nil
	}
	if base.Local.IsValid() {
		a.ports[base]++
	}
	r := &peerRec{key: k, active: now}
	a.peers[k] = r
	a.npeers.Store(uint64(len(a.peers)))
	return r
}

// hold takes mu for a batch of packets: until release, the packet
// goroutine's lock and unlock do nothing.
func (a *aggregator) hold() {
	a.mu.Lock()
	a.held = true
}

// release gives back the mu that hold took.
func (a *aggregator) release() {
	a.held = false
	a.mu.Unlock()
}

// lock takes mu for the packet goroutine, unless a batch holds it.
func (a *aggregator) lock() {
	if !a.held {
		a.mu.Lock()
	}
}

// unlock gives back what lock took.
func (a *aggregator) unlock() {
	if !a.held {
		a.mu.Unlock()
	}
}

// intervalLocked returns r's interval, taking one for it if it has none.
// a.mu must be held.
func (a *aggregator) intervalLocked(r *peerRec) *interval {
	if r.iv != nil {
		return r.iv
	}
	if n := len(a.free); n > 0 {
		r.iv = a.free[n-1]
		a.free = a.free[:n-1]
	} else {
		r.iv = newInterval()
	}
	a.dirty = append(a.dirty, r)
	return r.iv
}

// minRTTVar is the smallest RTTVAR an aggregate keeps, in ns (a
// femtosecond); below it, it is 0.
const minRTTVar = 1e-6

// add records one valid sample of rtt ns, completed at capture time t,
// to r; now is the engine clock. It does not allocate once r has had a
// sample in an earlier interval.
func (a *aggregator) add(r *peerRec, rtt int64, m Method, t, now int64) {
	v := float64(rtt)
	if !r.seen {
		r.srtt, r.rttvar, r.seen = v, v/2, true
	} else {
		d := r.srtt - v
		if d < 0 {
			d = -d
		}
		r.rttvar = 0.75*r.rttvar + 0.25*d
		if r.rttvar < minRTTVar {
			// A steady RTT decays rttvar toward 0 through the subnormal
			// floats, whose arithmetic the CPU does slowly (10 ns or more
			// a sample here, in a benchmark whose samples repeat one
			// value); Duration truncates it to 0 long before.
			r.rttvar = 0
		}
		r.srtt = 0.875*r.srtt + 0.125*v
	}
	r.active = now

	a.lock()
	iv := a.intervalLocked(r)
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
	iv.srtt, iv.rttvar = r.srtt, r.rttvar
	iv.sketch.add(v / 1e3) // µs
	a.unlock()
}

// countField selects one of TCPCounts' counters.
type countField uint8

const (
	countRetransmit countField = iota
	countOpened
	countRefused
	countTimeout
	countResetLocal
	countResetRemote
	countZeroWindow
)

// count adds one to a TCP counter of r; now is the engine clock.
func (a *aggregator) count(r *peerRec, f countField, now int64) {
	r.active = now
	a.lock()
	c := &a.intervalLocked(r).tcp
	switch f {
	case countRetransmit:
		c.Retransmits++
	case countOpened:
		c.Opened++
	case countRefused:
		c.Refused++
	case countTimeout:
		c.Timeouts++
	case countResetLocal:
		c.ResetsLocal++
	case countResetRemote:
		c.ResetsRemote++
	case countZeroWindow:
		c.ZeroWindows++
	}
	a.unlock()
}

// expire forgets the records without a sample or count since before,
// except those with stats not yet drained, so that one drain never reports
// two records of one key.
func (a *aggregator) expire(before int64) {
	a.lock()
	defer a.unlock()
	for k, r := range a.peers {
		if r.active >= before || r.iv != nil {
			continue
		}
		r.dead = true
		delete(a.peers, k)
		if k.Dir != DirNone && k.Port != 0 && k.Port != PortOther {
			base := PeerKey{Local: k.Local, Remote: k.Remote}
			if a.ports[base]--; a.ports[base] <= 0 {
				delete(a.ports, base)
			}
		}
	}
	a.npeers.Store(uint64(len(a.peers)))
}

// keyedInterval is a drained interval and its key.
type keyedInterval struct {
	key PeerKey
	iv  *interval
}

// take appends the intervals of the records with samples or counts since
// the last take, and starts a new interval. The caller owns the intervals
// until it gives them back with recycle.
func (a *aggregator) take(dst []keyedInterval) []keyedInterval {
	a.mu.Lock()
	recs := a.dirty
	a.dirty = a.spare
	a.spare = nil
	for _, r := range recs {
		dst = append(dst, keyedInterval{r.key, r.iv})
		r.iv = nil
	}
	a.mu.Unlock()

	clear(recs)
	a.mu.Lock()
	if a.spare == nil {
		a.spare = recs[:0]
	}
	a.mu.Unlock()
	return dst
}

// recycle resets drained intervals and keeps them for reuse.
func (a *aggregator) recycle(ivs []keyedInterval) {
	for _, k := range ivs {
		k.iv.reset()
	}
	a.mu.Lock()
	for _, k := range ivs {
		a.free = append(a.free, k.iv)
	}
	// Keep no more spares than records can use at once.
	if a.max > 0 && len(a.free) > a.max {
		clear(a.free[a.max:])
		a.free = a.free[:a.max]
	}
	a.mu.Unlock()
}

// drain returns the per-peer stats since the last drain, appended to dst.
// Their Buckets share one array, reused by the next drain.
func (a *aggregator) drain(dst []PeerStats) []PeerStats {
	a.drainMu.Lock()
	defer a.drainMu.Unlock()
	ivs := a.take(a.ivBuf[:0])
	a.bucketBuf, a.endBuf, dst = summarize(ivs, a.bucketBuf[:0], a.endBuf[:0], dst)
	a.recycle(ivs)
	clear(ivs)
	a.ivBuf = ivs[:0]
	return dst
}

// summarize appends the PeerStats of ivs to dst, with their Buckets in
// buckets (ends, a scratch buffer, notes where each one's end), and
// returns the three.
func summarize(ivs []keyedInterval, buckets []Bucket, ends []int, dst []PeerStats) ([]Bucket, []int, []PeerStats) {
	n := len(dst)
	for _, k := range ivs {
		dst = append(dst, k.iv.summary(k.key, &buckets))
		ends = append(ends, len(buckets))
	}
	start := 0
	for i := range ivs {
		if end := ends[i]; end > start {
			dst[n+i].Buckets = buckets[start:end:end]
			start = end
		}
	}
	return buckets, ends, dst
}

// usToDuration converts a sketch quantile in µs to a Duration, clamped to
// the interval's exact min and max (the sketch's 1 % error could otherwise
// put p99 above max).
func usToDuration(us float64, lo, hi int64) time.Duration {
	v := usToNS(us)
	v = max(v, lo)
	v = min(v, hi)
	return time.Duration(v)
}
