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
	// full, a flow is evicted: closed ones first, the least recently
	// listed, where a flow seen again since it was listed is listed anew
	// instead (a second chance, up to 8 flows per eviction), so that a
	// flood of one-packet flows evicts its own flows before those that
	// carry traffic.
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
	// PrefixV4 and PrefixV6, when not 0, group remote addresses by their
	// network of that many bits (the peer_prefix_v4 and peer_prefix_v6
	// settings): one series per network instead of one per address. Host
	// names from the peer list keep their name.
	PrefixV4, PrefixV6 int
	// ServiceTags splits each peer by direction (who opened the
	// connection) and service port (the service_tags setting).
	ServiceTags bool
	// MaxPorts caps the service ports of one local and remote pair when
	// ServiceTags is set; further ports are folded into PortOther. 0 means
	// DefaultMaxPorts.
	MaxPorts int
	// SYNTimeout is how long a SYN of the local side may go without a
	// SYN-ACK, from the first transmission, before the connection counts
	// in TCPCounts.Timeouts; 0 means DefaultSYNTimeout.
	SYNTimeout time.Duration
	// NoTCPCounts turns the loss and failure counts of TCPCounts off (the
	// tcp_health: false setting).
	NoTCPCounts bool
	// EphemeralPorts is the host's ephemeral port range
	// (ip_local_port_range), used to tell the direction of connections
	// that began before the capture; the zero value means
	// DefaultEphemeralPorts.
	EphemeralPorts [2]uint16
	// OnSample, if set, is called on the packet goroutine with each valid
	// sample. It must not retain the Engine's locks or block for long.
	OnSample func(Sample)
}

// DefaultSYNTimeout is the default SYNTimeout (the syn_timeout setting).
const DefaultSYNTimeout = 10 * time.Second

// DefaultMaxPorts is the default cap on service ports per peer (the
// max_ports setting).
const DefaultMaxPorts = 16

// DefaultEphemeralPorts is Linux's default ip_local_port_range.
var DefaultEphemeralPorts = [2]uint16{32768, 60999}

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
	SamplesDiscarded uint64 // samples with negative RTT (capture time went backwards), above MaxRTT, across a clock step, or of a peer beyond MaxPeers
	Peers            uint64 // peers whose smoothed RTT is being kept
	Copies           uint64 // frames that were copies of a segment already seen on another device
	ClockSteps       uint64 // steps of the wall clock detected
	PortsFolded      uint64 // series folded into port:other because their peer had MaxPorts ports
	CountsDropped    uint64 // TCP counts (TCPCounts) not kept: of a new peer beyond MaxPeers
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
	names    atomic.Pointer[Peers] // host names of the peer list, for grouping; nil: none
	methods  Methods
	idleTTL  int64
	expTTL   int64
	maxRTT   int64
	onSample func(Sample)
	prefix4  int
	prefix6  int
	service  bool
	ephem    [2]uint16
	counts   bool  // the TCP counts are on
	synTTL   int64 // SYNTimeout

	flows     *flowTable
	agg       *aggregator
	pkt       Packet
	now       int64      // latest capture time seen
	lastSweep int64      // engine clock of the last expiry
	cur       *flow      // the flow whose samples emit is receiving
	curTime   int64      // the capture time emit stamps them with
	emitFn    sampleFunc // e.emit, bound once so that Process does not allocate

	// The engine clock drives expiry. Without Advance it is the latest
	// capture time; once Advance has been called it is the monotonic
	// time Advance gave, so that a step of the wall clock, which stamps
	// packets, cannot expire every flow or keep them forever.
	live       bool
	mono       int64
	clockOff   int64 // wall - mono at the last Advance
	epoch      uint8 // bumped at each detected clock step
	quarantine bool  // a step was detected since the last Advance
	namesSeen  *Peers
	groupGen   uint32 // bumped when the host names change

	// The packet path counts in pend, and adds pend to the atomic
	// counters that Stats reads at the end of each Process call, or of
	// each batch (BeginBatch, which agg.held marks): an atomic add is a
	// full memory barrier on amd64, which is dear at a few per packet.
	pend                              counts
	packets, tcpPackets, decodeErrors atomic.Uint64
	samples, discarded, copies, steps atomic.Uint64
	countsDropped                     atomic.Uint64
	// The flow table's counters, as publishFlows last stored them for
	// Stats.
	flowsActive, flowsCreated, flowsExpired, flowsEvicted atomic.Uint64
}

// counts are the packet path's counters not yet added to the Engine's
// atomic ones.
type counts struct {
	packets, tcpPackets, decodeErrors, samples, discarded, copies uint64
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
		prefix4:  cfg.PrefixV4,
		prefix6:  cfg.PrefixV6,
		service:  cfg.ServiceTags,
		ephem:    cfg.EphemeralPorts,
		counts:   !cfg.NoTCPCounts,
		synTTL:   int64(orDefault(cfg.SYNTimeout, DefaultSYNTimeout)),
	}
	if e.ephem == [2]uint16{} {
		e.ephem = DefaultEphemeralPorts
	}
	if e.service {
		e.agg.maxPorts = cfg.MaxPorts
		if e.agg.maxPorts <= 0 {
			e.agg.maxPorts = DefaultMaxPorts
		}
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

// SetNames gives the engine the peer list whose host names group remote
// addresses: every address of a host is one series, tagged with the name.
// nil removes the names. Safe for concurrent use.
func (e *Engine) SetNames(p *Peers) { e.names.Store(p) }

// Local returns the current set of local addresses.
func (e *Engine) Local() *LocalSet { return e.local.Load() }

// Process decodes one frame captured at time ts and runs it through the
// flow table and the estimators. data is not retained. Process does not
// allocate in steady state (new flows and new peers aside) and never
// panics on any input; a truncated or malformed frame is counted in
// Stats.DecodeErrors and skipped.
func (e *Engine) Process(link LinkType, data []byte, wireLen int, ts time.Time) {
	e.ProcessDev(link, data, wireLen, ts.UnixNano(), 0)
}

// ProcessNano is Process with the capture time in Unix nanoseconds.
func (e *Engine) ProcessNano(link LinkType, data []byte, wireLen int, t int64) {
	e.ProcessDev(link, data, wireLen, t, 0)
}

// ProcessDev is ProcessNano for a frame captured on device dev (0 if
// unknown; a Linux cooked header's device is used then), which tells a
// copy of a segment seen on a second device from a retransmission.
func (e *Engine) ProcessDev(link LinkType, data []byte, wireLen int, t int64, dev Device) {
	e.process(link, data, wireLen, t, dev)
	if !e.agg.held {
		e.publish()
	}
}

// BeginBatch starts a batch of packets, which EndBatch ends: a live
// capture takes each ring block in batches of at most 512 frames, and
// replay its files in one. Within a batch, Process takes the
// aggregator's lock once for the whole batch rather than once for each
// sample, and adds to the counters that Stats reads once, at EndBatch;
// Drain waits for the batch to end. Call both from the packet goroutine,
// and end every batch (defer EndBatch), or Drain blocks for good.
func (e *Engine) BeginBatch() {
	if !e.agg.held {
		e.agg.hold()
	}
}

// EndBatch ends the batch that BeginBatch started; without one it does
// nothing.
func (e *Engine) EndBatch() {
	if e.agg.held {
		e.publish()
		e.agg.release()
	}
}

// publish adds the pending counts to the counters that Stats reads.
func (e *Engine) publish() {
	c := &e.pend
	e.packets.Add(c.packets)
	if c.tcpPackets != 0 {
		e.tcpPackets.Add(c.tcpPackets)
	}
	if c.decodeErrors != 0 {
		e.decodeErrors.Add(c.decodeErrors)
	}
	if c.samples != 0 {
		e.samples.Add(c.samples)
	}
	if c.discarded != 0 {
		e.discarded.Add(c.discarded)
	}
	if c.copies != 0 {
		e.copies.Add(c.copies)
	}
	*c = counts{}
	e.publishFlows()
}

// publishFlows stores the flow table's counters that changed since the
// last call for Stats: once per Process call or batch (publish), and
// after each expiry.
func (e *Engine) publishFlows() {
	t := e.flows
	if !t.changed {
		return
	}
	t.changed = false
	for _, c := range [...]struct {
		v   uint64
		pub *atomic.Uint64
	}{{uint64(t.n), &e.flowsActive}, {t.created, &e.flowsCreated}, {t.expired, &e.flowsExpired}, {t.evicted, &e.flowsEvicted}} {
		// An atomic load costs nothing on amd64; a store waits for the
		// writes before it.
		if c.pub.Load() != c.v {
			c.pub.Store(c.v)
		}
	}
}

func (e *Engine) process(link LinkType, data []byte, wireLen int, t int64, dev Device) {
	e.pend.packets++
	p := &e.pkt
	if err := Decode(link, data, wireLen, p); err != nil {
		if IsDecodeError(err) {
			e.pend.decodeErrors++
		}
		return
	}
	e.pend.tcpPackets++
	if p.Dev != 0 {
		// The link header's device (Linux cooked captures) is the most
		// specific; the capture's interface index completes SLL v1's.
		if p.Dev.Index() == 0 && dev.Index() != 0 {
			dev = MakeDevice(dev.Index(), p.Dev.PktType())
		} else {
			dev = p.Dev
		}
	}
	local := e.local.Load()
	peers := e.peers.Load() // nil unless the kernel filter could not hold the peers
	out := local.Contains(p.Src) && (peers == nil || peers.Contains(p.Dst))
	in := local.Contains(p.Dst) && (peers == nil || peers.Contains(p.Src))
	if t > e.now {
		e.now = t
		if !e.live {
			e.mono = t
		}
	}
	// Each flow key's hash is taken here, from the packet's words,
	// rather than from a key made for the lookup: measured, up to 4 ns a
	// packet less with 10,000 flows.
	if out {
		e.outgoing(p, t, dev, uint32(hashKey(e.flows.seed, &p.srcW, &p.dstW, uint32(p.SrcPort)<<16|uint32(p.DstPort))))
	}
	if in {
		e.incoming(p, t, dev, uint32(hashKey(e.flows.seed, &p.dstW, &p.srcW, uint32(p.DstPort)<<16|uint32(p.SrcPort))))
	}
	if !e.live && e.mono-e.lastSweep >= sweepEvery {
		e.expire(e.mono)
	}
}

func (e *Engine) outgoing(p *Packet, t int64, dev Device, h uint32) {
	k := flowKey{l: p.srcW, r: p.dstW, ports: uint32(p.SrcPort)<<16 | uint32(p.DstPort)}
	f := e.flows.getHash(&k, h, p.Flags&FlagRST == 0, e.mono)
	if f == nil {
		return
	}
	if f.seen[dirOut].isCopy(dev, segmentSig(p), t) {
		e.pend.copies++
		return
	}
	closed := f.closed
	switch {
	case p.Flags&(FlagFIN|FlagRST) != 0:
		closed = true
	case p.Flags&FlagSYN != 0:
		closed = false // a new connection on this 4-tuple
		if p.Flags&FlagACK != 0 {
			f.dir = DirInbound
		} else {
			f.dir = DirOutbound
		}
		f.peer = nil // the series may change with the direction
	}
	if f.dir == DirUnknown {
		f.dir = e.guessDirection(f.key)
	}
	e.flows.touch(f, e.mono, closed)
	if ev := f.rtt.timeOutgoing(p, t, e.epoch, e.methods, &e.flows.pool); ev != 0 && e.counts {
		if ev&evActiveOpen != 0 {
			f.conn++
			e.flows.syns.push(f, e.mono)
		}
		e.count(f, ev)
	}
}

func (e *Engine) incoming(p *Packet, t int64, dev Device, h uint32) {
	k := flowKey{l: p.dstW, r: p.srcW, ports: uint32(p.DstPort)<<16 | uint32(p.SrcPort)}
	f := e.flows.getHash(&k, h, false, e.mono)
	if f == nil {
		return // nothing of ours to time on a flow we never sent on
	}
	if f.seen[dirIn].isCopy(dev, segmentSig(p), t) {
		e.pend.copies++
		return
	}
	e.flows.touch(f, e.mono, f.closed || p.Flags&(FlagFIN|FlagRST) != 0)
	e.cur, e.curTime = f, t
	ev := f.rtt.timeIncoming(p, t, e.methods, e.emitFn, &e.flows.pool)
	e.cur = nil
	if ev != 0 && e.counts {
		e.count(f, ev)
	}
}

// count adds the TCP counts of the events of one segment of flow f.
func (e *Engine) count(f *flow, ev event) {
	ev &^= evActiveOpen
	if ev == 0 {
		return
	}
	r := e.record(f)
	if r == nil {
		e.countsDropped.Add(1) // a new peer beyond MaxPeers
		return
	}
	for _, c := range [...]struct {
		ev event
		f  countField
	}{
		{evRetransmit, countRetransmit}, {evOpened, countOpened}, {evRefused, countRefused},
		{evResetLocal, countResetLocal}, {evResetRemote, countResetRemote}, {evZeroWindow, countZeroWindow},
	} {
		if ev&c.ev != 0 {
			e.agg.count(r, c.f, e.mono)
		}
	}
}

// checkSYNs counts a timeout for each connection whose first SYN is
// SYNTimeout old without a SYN-ACK (nor an RST), at engine clock now.
func (e *Engine) checkSYNs(now int64) {
	r := &e.flows.syns
	for r.head < r.tail {
		s := r.at(r.head)
		if s.f == nil { // its flow was reused or released, or opened again
			r.head++
			continue
		}
		if s.first+e.synTTL > now {
			break
		}
		if s.pending() {
			s.f.rtt.synTimedOut = true // counted once, however many SYNs follow
			if rec := e.record(s.f); rec != nil {
				e.agg.count(rec, countTimeout, now)
			} else {
				e.countsDropped.Add(1)
			}
		}
		s.f.synPos = 0
		*s = pendingSYN{}
		r.head++
	}
}

// guessDirection tells who opened a connection whose handshake was not
// seen, from the ports: the side on an ephemeral port (the host's
// ip_local_port_range) is the client, unless both or neither are, where
// a well-known port (below 1024) marks the server.
func (e *Engine) guessDirection(k flowKey) Direction {
	lp, rp := uint16(k.ports>>16), uint16(k.ports)
	lEph := lp >= e.ephem[0] && lp <= e.ephem[1]
	rEph := rp >= e.ephem[0] && rp <= e.ephem[1]
	switch {
	case lEph && !rEph:
		return DirOutbound
	case rEph && !lEph:
		return DirInbound
	case rp < 1024 && lp >= 1024:
		return DirOutbound
	case lp < 1024 && rp >= 1024:
		return DirInbound
	}
	return DirUnknown
}

// peerKey returns the series of flow f: its local address, its remote
// address grouped by host name or prefix, and with service tags its
// direction and service port.
func (e *Engine) peerKey(f *flow, names *Peers) PeerKey {
	remote := wordsAddr(f.key.r)
	k := PeerKey{Local: wordsAddr(f.key.l)}
	if name := names.HostName(remote); name != "" {
		k.Remote = Remote{Host: name}
	} else {
		bits := remote.BitLen()
		if remote.Is4() && e.prefix4 > 0 {
			bits = e.prefix4
		} else if remote.Is6() && e.prefix6 > 0 {
			bits = e.prefix6
		}
		k.Remote = Remote{Prefix: netip.PrefixFrom(remote, bits).Masked()}
	}
	if e.service {
		k.Dir = f.dir
		switch f.dir {
		case DirOutbound:
			k.Port = f.key.ports & 0xffff
		case DirInbound:
			k.Port = f.key.ports >> 16
		}
	}
	return k
}

// record returns the aggregate record of flow f, looking it up when f has
// none or its grouping changed; nil when the peers are at MaxPeers.
func (e *Engine) record(f *flow) *peerRec {
	if names := e.names.Load(); names != e.namesSeen {
		e.namesSeen = names
		e.groupGen++
	}
	if r := f.peer; r != nil && !r.dead && f.peerGen == e.groupGen {
		return r
	}
	r := e.agg.record(e.peerKey(f, e.namesSeen), e.mono)
	f.peer, f.peerGen = r, e.groupGen
	return r
}

// emit checks one raw sample of e.cur and records it.
func (e *Engine) emit(rtt int64, m Method, epoch uint8) {
	if rtt < 0 || rtt > e.maxRTT || epoch != e.epoch || e.quarantine {
		e.pend.discarded++
		return
	}
	f := e.cur
	r := e.record(f)
	if r == nil {
		e.pend.discarded++ // a new peer beyond MaxPeers
		return
	}
	e.agg.add(r, rtt, m, e.curTime, e.mono)
	e.pend.samples++
	if e.onSample != nil {
		// OnSample may block (a slow consumer): a batch lets go of the
		// aggregator's lock meanwhile, so that Drain never waits for it.
		if e.agg.held {
			e.agg.release()
			defer e.agg.hold()
		}
		e.onSample(Sample{
			Time:   time.Unix(0, e.curTime),
			Local:  f.key.local(),
			Remote: f.key.remote(),
			Method: m,
			RTT:    time.Duration(rtt),
		})
	}
}

// Clock steps.
const (
	// stepThreshold is the change of the wall clock against the monotonic
	// clock between two calls of Advance that counts as a step. NTP
	// slews the clock by at most 0.5 ms a second.
	stepThreshold = int64(10 * time.Millisecond)
)

// Advance gives a live engine the time, once per block of packets or
// poll timeout: wall is the wall clock (Unix ns, the clock that stamps
// packets) and mono a monotonic clock (ns from any origin), both read at
// once. From the first call, expiry runs on mono instead of capture time.
// When wall moved against mono by more than 10 ms since the previous
// call, the wall clock stepped: samples timed from a segment sent before
// the step, and samples completed before the next call, are discarded
// and counted. Advance expires flows and peers every second. Call it from
// the packet goroutine.
func (e *Engine) Advance(wall, mono int64) {
	off := wall - mono
	switch {
	case !e.live:
		e.live = true
		e.lastSweep = mono
	case off-e.clockOff > stepThreshold || e.clockOff-off > stepThreshold:
		// Segments sent before the step, and those in the packets that
		// reached us since the last call, on either side of it, are
		// never timed against later ones.
		e.epoch++
		e.quarantine = true
		e.steps.Add(1)
	case e.quarantine:
		e.epoch++
		e.quarantine = false
	}
	e.clockOff = off
	e.mono = mono
	if e.mono-e.lastSweep >= sweepEvery {
		e.expire(e.mono)
	}
}

// Expire removes flows and peers whose TTLs ran out at time now, on the
// engine clock: capture time, or the monotonic time of Advance. Process
// and Advance call it every second; call it from the packet goroutine.
func (e *Engine) Expire(now time.Time) { e.expire(now.UnixNano()) }

func (e *Engine) expire(n int64) {
	e.lastSweep = n
	e.checkSYNs(n) // before expiry, which may release a waiting flow
	e.flows.expire(n-e.idleTTL, n-e.expTTL)
	e.agg.expire(n - e.idleTTL)
	e.publishFlows()
}

// Drain returns the per-peer stats of every peer with samples or TCP
// counts since the previous Drain, appended to dst, and starts a new
// interval. The Buckets of the stats returned share an array that the
// next Drain reuses: copy them to keep them longer. It holds the
// lock that Process takes only to swap two maps, and costs O(peers). Safe
// for concurrent use; during a batch (BeginBatch) it waits for the batch
// to end, so the packet goroutine must not call it inside one.
func (e *Engine) Drain(dst []PeerStats) []PeerStats {
	return e.agg.drain(dst)
}

// Stats returns the counters. Safe for concurrent use. The packets of a
// batch (BeginBatch) are in them once the batch ends.
func (e *Engine) Stats() Stats {
	return Stats{
		Packets:          e.packets.Load(),
		TCPPackets:       e.tcpPackets.Load(),
		DecodeErrors:     e.decodeErrors.Load(),
		Flows:            e.flowsActive.Load(),
		FlowsCreated:     e.flowsCreated.Load(),
		FlowsExpired:     e.flowsExpired.Load(),
		FlowsEvicted:     e.flowsEvicted.Load(),
		Samples:          e.samples.Load(),
		SamplesDiscarded: e.discarded.Load(),
		Peers:            e.agg.npeers.Load(),
		Copies:           e.copies.Load(),
		ClockSteps:       e.steps.Load(),
		PortsFolded:      e.agg.folded.Load(),
		CountsDropped:    e.countsDropped.Load(),
	}
}

// String summarises the counters in one line.
func (s Stats) String() string {
	return fmt.Sprintf("packets=%d tcp=%d decode_errors=%d flows=%d evicted=%d samples=%d discarded=%d",
		s.Packets, s.TCPPackets, s.DecodeErrors, s.Flows, s.FlowsEvicted, s.Samples, s.SamplesDiscarded)
}
