package capture

import (
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"
)

// Config configures an Engine. The zero value is valid: every zero field
// takes its documented default.
type Config struct {
	// Local is the set of the host's addresses; segments they send are
	// timed. It can be replaced later with SetLocal.
	Local *LocalSet
	// Methods are the enabled estimators; 0 means all of them.
	Methods Methods
	// IdleTTL expires flows without packets for this long; 0 means
	// DefaultIdleTTL. It also bounds how long a peer's smoothed RTT is
	// kept without samples.
	IdleTTL time.Duration
	// ExpTTL expires flows that saw FIN or RST this long after their last
	// packet; 0 means DefaultExpTTL.
	ExpTTL time.Duration
	// MaxFlows caps the flow table; 0 means DefaultMaxFlows. When it is
	// full, the least recently seen flow (closed ones first) is evicted.
	MaxFlows int
	// MaxPeers caps the peers (local and remote address pairs) whose
	// smoothed RTT is kept, and the peers of one Drain interval, which
	// bounds both memory and the number of tagged series; 0 means
	// DefaultMaxPeers. A sample of a new peer beyond the cap is discarded
	// and counted in Stats.SamplesDiscarded.
	MaxPeers int
	// MaxRTT is the sanity bound: longer samples are discarded and
	// counted; 0 means SanityMaxRTT.
	MaxRTT time.Duration
	// OnSample, if set, is called on the packet goroutine with each valid
	// sample. It must not retain the Engine's locks or block for long.
	OnSample func(Sample)
}

// DefaultMaxPeers is the default cap on peers (the max_peers setting): at
// most about 6 KiB each (smoothed RTT, interval stats and a sketch of at
// most sketchMaxBins bins), about 24 MiB in all.
const DefaultMaxPeers = 4096

// Sample is one RTT measurement.
type Sample struct {
	Time          time.Time // capture time of the packet that completed it
	Local, Remote netip.AddrPort
	Method        Method
	RTT           time.Duration
}

// Stats are an Engine's counters since it was created.
type Stats struct {
	Packets          uint64 // frames processed
	TCPPackets       uint64 // frames that decoded to a TCP segment
	DecodeErrors     uint64 // frames that were truncated or malformed
	Flows            uint64 // flows tracked now
	FlowsCreated     uint64
	FlowsExpired     uint64 // removed after idle_ttl or exp_ttl
	FlowsEvicted     uint64 // removed because max_flows was reached
	Samples          uint64 // valid samples
	SamplesDiscarded uint64 // samples with negative RTT (capture time went backwards), above MaxRTT, or of a peer beyond MaxPeers
	Peers            uint64 // peers whose smoothed RTT is being kept
}

// sweepEvery is how often, in capture time, Process expires flows and
// peers by itself.
const sweepEvery = int64(time.Second)

// Engine turns frames into RTT samples and aggregates them per peer.
// Process and Expire must be called from one goroutine (the
// packet goroutine); Drain, Stats and SetLocal are safe for concurrent use
// with them.
type Engine struct {
	local    atomic.Pointer[LocalSet]
	peers    atomic.Pointer[Peers] // userspace peer filter; nil: none
	methods  Methods
	idleTTL  int64
	expTTL   int64
	maxRTT   int64
	onSample func(Sample)

	flows     *flowTable
	agg       *aggregator
	pkt       Packet
	now       int64 // latest capture time seen
	lastSweep int64
	cur       *flow      // the flow whose samples emit is receiving
	curTime   int64      // the capture time emit stamps them with
	emitFn    sampleFunc // e.emit, bound once so that Process does not allocate

	packets, tcpPackets, decodeErrors atomic.Uint64
	samples, discarded                atomic.Uint64
}

// NewEngine returns an Engine configured by cfg.
func NewEngine(cfg Config) *Engine {
	e := &Engine{
		methods:  cfg.Methods,
		idleTTL:  int64(orDefault(cfg.IdleTTL, DefaultIdleTTL)),
		expTTL:   int64(orDefault(cfg.ExpTTL, DefaultExpTTL)),
		maxRTT:   int64(orDefault(cfg.MaxRTT, SanityMaxRTT)),
		onSample: cfg.OnSample,
		agg:      newAggregator(),
	}
	if e.methods == 0 {
		e.methods = AllMethods
	}
	maxFlows := cfg.MaxFlows
	if maxFlows <= 0 {
		maxFlows = DefaultMaxFlows
	}
	e.flows = newFlowTable(maxFlows)
	e.agg.max = cfg.MaxPeers
	if e.agg.max <= 0 {
		e.agg.max = DefaultMaxPeers
	}
	e.local.Store(cfg.Local)
	e.emitFn = e.emit
	return e
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// SetLocal replaces the set of local addresses. Safe for concurrent use.
func (e *Engine) SetLocal(s *LocalSet) { e.local.Store(s) }

// SetPeerFilter makes the engine ignore segments whose remote address is
// not in peers; nil (the default) removes the filter. Live capture sets it
// only when the kernel filter cannot hold the peer list. Safe for
// concurrent use.
func (e *Engine) SetPeerFilter(peers *Peers) {
	if !peers.Restricts() {
		peers = nil
	}
	e.peers.Store(peers)
}

// Local returns the current set of local addresses.
func (e *Engine) Local() *LocalSet { return e.local.Load() }

// Process decodes one frame captured at time ts and runs it through the
// flow table and the estimators. data is not retained. Process does not
// allocate in steady state (new flows and new peers aside) and never
// panics on any input; a truncated or malformed frame is counted in
// Stats.DecodeErrors and skipped.
func (e *Engine) Process(link LinkType, data []byte, wireLen int, ts time.Time) {
	e.ProcessNano(link, data, wireLen, ts.UnixNano())
}

// ProcessNano is Process with the capture time in Unix nanoseconds.
func (e *Engine) ProcessNano(link LinkType, data []byte, wireLen int, t int64) {
	e.packets.Add(1)
	p := &e.pkt
	if err := Decode(link, data, wireLen, p); err != nil {
		if IsDecodeError(err) {
			e.decodeErrors.Add(1)
		}
		return
	}
	e.tcpPackets.Add(1)
	if t > e.now {
		e.now = t
	}
	local := e.local.Load()
	peers := e.peers.Load() // nil unless the kernel filter could not hold the peers
	if local.Contains(p.Src) && (peers == nil || peers.Contains(p.Dst)) {
		e.outgoing(p, t)
	}
	if local.Contains(p.Dst) && (peers == nil || peers.Contains(p.Src)) {
		e.incoming(p, t)
	}
	if e.now-e.lastSweep >= sweepEvery {
		e.Expire(time.Unix(0, e.now))
	}
}

func (e *Engine) outgoing(p *Packet, t int64) {
	k := flowKey{netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)}
	f := e.flows.get(k, p.Flags&FlagRST == 0)
	if f == nil {
		return
	}
	closed := f.closed
	switch {
	case p.Flags&(FlagFIN|FlagRST) != 0:
		closed = true
	case p.Flags&FlagSYN != 0:
		closed = false // a new connection on this 4-tuple
	}
	e.flows.touch(f, t, closed)
	f.rtt.timeOutgoing(p, t, e.methods)
}

func (e *Engine) incoming(p *Packet, t int64) {
	k := flowKey{netip.AddrPortFrom(p.Dst, p.DstPort), netip.AddrPortFrom(p.Src, p.SrcPort)}
	f := e.flows.get(k, false)
	if f == nil {
		return // nothing of ours to time on a flow we never sent on
	}
	e.flows.touch(f, t, f.closed || p.Flags&(FlagFIN|FlagRST) != 0)
	e.cur, e.curTime = f, t
	f.rtt.timeIncoming(p, t, e.methods, e.emitFn)
	e.cur = nil
}

// emit checks one raw sample of e.cur and records it.
func (e *Engine) emit(rtt int64, m Method) {
	if rtt < 0 || rtt > e.maxRTT {
		e.discarded.Add(1)
		return
	}
	f := e.cur
	if !e.agg.add(PeerKey{f.key.local.Addr(), f.key.remote.Addr()}, rtt, m, e.curTime) {
		e.discarded.Add(1) // a new peer beyond MaxPeers
		return
	}
	e.samples.Add(1)
	if e.onSample != nil {
		e.onSample(Sample{
			Time:   time.Unix(0, e.curTime),
			Local:  f.key.local,
			Remote: f.key.remote,
			Method: m,
			RTT:    time.Duration(rtt),
		})
	}
}

// Expire removes flows and peers whose TTLs ran out at time now. Process
// calls it every second of capture time; a live capture also calls it on a
// timer so that flows expire while no packets arrive. Call it from the
// packet goroutine.
func (e *Engine) Expire(now time.Time) {
	n := now.UnixNano()
	e.lastSweep = n
	e.flows.expire(n-e.idleTTL, n-e.expTTL)
	e.agg.expire(n - e.idleTTL)
}

// Drain returns the per-peer stats of every peer with samples since the
// previous Drain, appended to dst, and starts a new interval. It holds the
// lock that Process takes only to swap two maps, and costs O(peers). Safe
// for concurrent use.
func (e *Engine) Drain(dst []PeerStats) []PeerStats {
	return e.agg.drain(dst)
}

// Stats returns the counters. Safe for concurrent use.
func (e *Engine) Stats() Stats {
	return Stats{
		Packets:          e.packets.Load(),
		TCPPackets:       e.tcpPackets.Load(),
		DecodeErrors:     e.decodeErrors.Load(),
		Flows:            e.flows.active.Load(),
		FlowsCreated:     e.flows.created.Load(),
		FlowsExpired:     e.flows.expired.Load(),
		FlowsEvicted:     e.flows.evicted.Load(),
		Samples:          e.samples.Load(),
		SamplesDiscarded: e.discarded.Load(),
		Peers:            e.agg.npeers.Load(),
	}
}

// String summarises the counters in one line.
func (s Stats) String() string {
	return fmt.Sprintf("packets=%d tcp=%d decode_errors=%d flows=%d evicted=%d samples=%d discarded=%d",
		s.Packets, s.TCPPackets, s.DecodeErrors, s.Flows, s.FlowsEvicted, s.Samples, s.SamplesDiscarded)
}
