package capture

import (
	"encoding/binary"
	"flag"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/debug"
	"slices"
	"testing"
	"time"
)

// Floods and state exhaustion: hostile or pathological traffic fed to an
// Engine at full speed, checking that its memory stays within the caps
// (MaxFlows, MaxTimedSegments, and the peers bounded by MaxPeers and
// idle_ttl) and that no flood gives bogus samples. Each test logs the
// heap it measured; docs/hardening.md tabulates the figures:
//
//	go test ./capture/ -run 'TestFlood' -v
//	go test ./capture/ -run '^$' -bench 'Process|Flood' -benchmem
//
// Frames come from one template per shape, rewritten in place before each
// Process (addresses, ports, sequence numbers, flags, timestamps, and the
// IP total length: the payload is never captured, as with a short snap
// length), so that a million packets take well under a second.

// floodLocal is the local address of every flood.
var floodLocal = mixLocal4

// floodLocalIP is floodLocal as a uint32, and floodRemoteBase the first
// remote address of the floods: 10.0.0.0/8 holds 16 million peers.
var (
	floodLocalIP    = binary.BigEndian.Uint32(floodLocal.AsSlice())
	floodRemoteBase = binary.BigEndian.Uint32([]byte{10, 0, 0, 0})
)

// raceEnabled reports whether the test binary was built with -race. It is
// read from the binary's build info, so that no build-tagged file is
// needed.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// floodN scales a flood of n packets or flows: a quarter under the race
// detector, which runs the packet path 15-20 times slower, and an
// eighth more with -short; never below least.
func floodN(n, least int) int {
	if raceEnabled() {
		n /= 4
	}
	if testing.Short() {
		n /= 8
	}
	return max(n, least)
}

// floodFrame is an Ethernet IPv4 TCP frame that a flood rewrites in place.
// Checksums are not kept right: Decode does not check them.
type floodFrame struct {
	b  []byte
	ts int // offset of the TSval in b, or -1 without timestamps
}

const (
	floodIPOff  = 14      // IPv4 header in a floodFrame
	floodTCPOff = 14 + 20 // TCP header
)

// newFloodFrame returns the frame of s, an IPv4 segment without payload
// bytes (setPayload declares a payload).
func newFloodFrame(tb testing.TB, s tseg) *floodFrame {
	tb.Helper()
	if !s.src.Addr().Is4() || s.payload != 0 || s.ipv6ExtHopByHop {
		tb.Fatalf("newFloodFrame: want IPv4 without payload bytes: %+v", s)
	}
	f := &floodFrame{b: ethFrame(buildIP(tb, s)), ts: -1}
	if s.ts {
		// tcpOptions puts MSS, SACK-permitted and window scale before
		// NOP, NOP, kind 8, length 10.
		off := floodTCPOff + 20 + 4
		if s.mss != 0 {
			off += 4
		}
		if s.sackPerm {
			off += 2
		}
		if s.hasWS {
			off += 4
		}
		f.ts = off
	}
	var p Packet
	if err := Decode(LinkEthernet, f.b, 0, &p); err != nil || p.HasTS != s.ts || p.TSval != s.tsval || p.TSecr != s.tsecr {
		tb.Fatalf("newFloodFrame: template decodes to %+v, %v", p, err)
	}
	return f
}

func (f *floodFrame) setAddrs(src, dst uint32) {
	binary.BigEndian.PutUint32(f.b[floodIPOff+12:], src)
	binary.BigEndian.PutUint32(f.b[floodIPOff+16:], dst)
}

func (f *floodFrame) setPorts(src, dst uint16) {
	binary.BigEndian.PutUint16(f.b[floodTCPOff:], src)
	binary.BigEndian.PutUint16(f.b[floodTCPOff+2:], dst)
}

func (f *floodFrame) setSeq(seq, ack uint32) {
	binary.BigEndian.PutUint32(f.b[floodTCPOff+4:], seq)
	binary.BigEndian.PutUint32(f.b[floodTCPOff+8:], ack)
}

// setTS sets the timestamps, if the frame has them.
func (f *floodFrame) setTS(tsval, tsecr uint32) {
	if f.ts < 0 {
		return
	}
	binary.BigEndian.PutUint32(f.b[f.ts:], tsval)
	binary.BigEndian.PutUint32(f.b[f.ts+4:], tsecr)
}

// setPayload declares n payload bytes in the IP total length.
func (f *floodFrame) setPayload(n int) {
	doff := int(f.b[floodTCPOff+12]>>4) * 4
	binary.BigEndian.PutUint16(f.b[floodIPOff+2:], uint16(20+doff+n))
}

// maxPayload is the largest payload setPayload can declare.
func (f *floodFrame) maxPayload() int { return 65535 - 20 - int(f.b[floodTCPOff+12]>>4)*4 }

func (f *floodFrame) process(e *Engine, t int64) { e.ProcessNano(LinkEthernet, f.b, 0, t) }

// heapProbe measures the heap a flood adds over a baseline taken before
// the Engine exists: after a GC (settled), and the peak HeapAlloc sampled
// during the flood without forcing a GC, so that the peak includes garbage
// not yet collected.
type heapProbe struct {
	base, peak int64
	ms         runtime.MemStats
}

func newHeapProbe() *heapProbe {
	h := &heapProbe{}
	runtime.GC()
	runtime.ReadMemStats(&h.ms)
	h.base = int64(h.ms.HeapAlloc)
	return h
}

// floodSampleEvery is how many packets a flood processes between heap
// samples.
const floodSampleEvery = 1 << 14

// sample records the heap now towards the peak.
func (h *heapProbe) sample() {
	runtime.ReadMemStats(&h.ms)
	h.peak = max(h.peak, int64(h.ms.HeapAlloc)-h.base)
}

// settled returns the heap over the baseline after a GC, and samples it.
func (h *heapProbe) settled() int64 {
	runtime.GC()
	runtime.ReadMemStats(&h.ms)
	d := int64(h.ms.HeapAlloc) - h.base
	h.peak = max(h.peak, d)
	return d
}

// floodSlack is the heap a flood may take beyond its caps: the test's own
// allocations and the runtime's noise.
const floodSlack = 4 << 20

// floodPeerBytes bounds the heap of one peer with a few samples of similar
// RTTs in the current interval: its peerState and map entries, and its
// interval with a sketch of a few bins. TestFloodSYN measures it (about
// 1.1 KiB). A sketch with samples of 1 µs and 60 s holds 8.3 KiB of bins,
// which it keeps when cleared: see docs/hardening.md.
const floodPeerBytes = 1536

// checkHeap fails tb if the flood's peak or settled heap exceeds limit.
func checkHeap(tb testing.TB, h *heapProbe, limit int64) {
	tb.Helper()
	settled := h.settled()
	if h.peak > limit || settled > limit {
		tb.Errorf("heap: peak %.1f MiB, settled %.1f MiB, want at most %.1f MiB", mib(h.peak), mib(settled), mib(limit))
	}
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

// checkFlowCounters checks that an Engine's flow counters add up and that
// the table is within max.
func checkFlowCounters(tb testing.TB, st Stats, limit int) {
	tb.Helper()
	if st.Flows > uint64(limit) || st.Flows != st.FlowsCreated-st.FlowsExpired-st.FlowsEvicted {
		tb.Errorf("flows %d (max %d), created %d, expired %d, evicted %d", st.Flows, limit, st.FlowsCreated, st.FlowsExpired, st.FlowsEvicted)
	}
	if st.Peers > uint64(limit) {
		tb.Errorf("peers %d > max %d", st.Peers, limit)
	}
}

// maxTimedSegs returns the most timed segments any flow of e holds.
func maxTimedSegs(e *Engine) int {
	n := 0
	e.flows.each(func(f *flow) { n = max(n, int(f.rtt.nseg)) })
	return n
}

// TestFloodSYN floods an Engine with a million distinct flows at the
// default MaxFlows: the host scanning a million hosts (a quarter answer
// with a SYN-ACK, a quarter with an RST), and a SYN flood from a million
// spoofed sources that the host answers with SYN-ACKs. The table stays at
// MaxFlows, every flow beyond it evicts one, the peers stay within
// MaxPeers, and the heap within MaxFlows × FlowBytes + MaxPeers ×
// floodPeerBytes.
func TestFloodSYN(t *testing.T) {
	n := floodN(1_000_000, 4*DefaultMaxFlows)
	const step = int64(time.Microsecond) // a million packets a second

	t.Run("outgoing-scan", func(t *testing.T) {
		syn := newFloodFrame(t, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 80), flags: FlagSYN,
			mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
		synAck := newFloodFrame(t, tseg{src: mixAP(floodLocal, 80), dst: mixAP(floodLocal, 1), flags: FlagSYN | FlagACK,
			mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
		rst := newFloodFrame(t, tseg{src: mixAP(floodLocal, 80), dst: mixAP(floodLocal, 1), flags: FlagRST | FlagACK})
		h := newHeapProbe()
		e := NewEngine(Config{Local: mixLocalSet()})
		now := t0.UnixNano()
		answered := 0
		for i := range n {
			remote, lport := floodRemoteBase+uint32(i), uint16(1024+i%60000)
			isn := uint32(i) * 2654435761
			syn.setAddrs(floodLocalIP, remote)
			syn.setPorts(lport, 80)
			syn.setSeq(isn, 0)
			syn.setTS(uint32(i), 0)
			syn.process(e, now)
			now += step
			switch i % 4 {
			case 0: // open port
				synAck.setAddrs(remote, floodLocalIP)
				synAck.setPorts(80, lport)
				synAck.setSeq(^isn, isn+1)
				synAck.setTS(7, uint32(i))
				synAck.process(e, now)
				now += step
				answered++
			case 1: // closed port
				rst.setAddrs(remote, floodLocalIP)
				rst.setPorts(80, lport)
				rst.setSeq(0, isn+1)
				rst.process(e, now)
				now += step
			}
			if i%floodSampleEvery == 0 {
				h.sample()
			}
		}
		st := e.Stats()
		checkFlowCounters(t, st, DefaultMaxFlows)
		if st.FlowsCreated != uint64(n) || st.Flows != DefaultMaxFlows || st.FlowsEvicted != uint64(n-DefaultMaxFlows) {
			t.Errorf("%d flows: %+v", n, st)
		}
		// Each answer is a new peer: a SYN-ACK with a sample (and an
		// opened connection), an RST with a refused one. The first
		// MaxPeers are kept, half of each; the others' samples and counts
		// are discarded and counted.
		refused := n / 4
		if n%4 > 1 {
			refused++
		}
		if st.Peers != DefaultMaxPeers || st.Samples != DefaultMaxPeers/2 || st.SamplesDiscarded != uint64(answered-DefaultMaxPeers/2) ||
			st.CountsDropped != uint64(answered-DefaultMaxPeers/2+refused-DefaultMaxPeers/2) {
			t.Errorf("%d answers, %d refusals: peers %d, samples %d, discarded %d, counts dropped %d", answered, refused, st.Peers, st.Samples, st.SamplesDiscarded, st.CountsDropped)
		}
		settled := h.settled()
		checkHeap(t, h, DefaultMaxFlows*FlowBytes+DefaultMaxPeers*floodPeerBytes+floodSlack)
		if got := len(e.Drain(nil)); got != DefaultMaxPeers {
			t.Errorf("drained %d peers, want %d", got, DefaultMaxPeers)
		}
		t.Logf("%d flows, %d packets: %v; heap peak %.1f MiB, settled %.1f MiB: %.0f bytes per flow with its peer",
			n, st.Packets, st, mib(h.peak), mib(settled), float64(settled)/float64(st.Flows))
		runtime.KeepAlive(e)
	})

	t.Run("incoming-syn-flood", func(t *testing.T) {
		syn := newFloodFrame(t, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 443), flags: FlagSYN,
			mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
		synAck := newFloodFrame(t, tseg{src: mixAP(floodLocal, 443), dst: mixAP(floodLocal, 1), flags: FlagSYN | FlagACK,
			mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
		h := newHeapProbe()
		e := NewEngine(Config{Local: mixLocalSet()})
		now := t0.UnixNano()
		for i := range n {
			remote, rport := floodRemoteBase+uint32(i)*7, uint16(1024+i%64000)
			isn := uint32(i) * 2654435761
			syn.setAddrs(remote, floodLocalIP)
			syn.setPorts(rport, 443)
			syn.setSeq(isn, 0)
			syn.setTS(uint32(i), 0)
			syn.process(e, now)
			now += step
			synAck.setAddrs(floodLocalIP, remote)
			synAck.setPorts(443, rport)
			synAck.setSeq(^isn, isn+1)
			synAck.setTS(uint32(i), uint32(i))
			synAck.process(e, now)
			now += step
			if i%floodSampleEvery == 0 {
				h.sample()
			}
		}
		st := e.Stats()
		checkFlowCounters(t, st, DefaultMaxFlows)
		if st.FlowsCreated != uint64(n) || st.Flows != DefaultMaxFlows || st.FlowsEvicted != uint64(n-DefaultMaxFlows) ||
			st.Samples != 0 || st.SamplesDiscarded != 0 || st.Peers != 0 {
			t.Errorf("%d flows: %+v", n, st)
		}
		if got := maxTimedSegs(e); got != 0 {
			t.Errorf("a half-open flow holds %d timed segments", got)
		}
		settled := h.settled()
		checkHeap(t, h, DefaultMaxFlows*FlowBytes+floodSlack)
		t.Logf("%d flows, %d packets: %v; heap peak %.1f MiB, settled %.1f MiB: %.0f bytes per flow",
			n, st.Packets, st, mib(h.peak), mib(settled), float64(settled)/float64(st.Flows))
		runtime.KeepAlive(e)
	})
}

// TestFloodPeerCap checks the cap on peers that MaxPeers sets, in both of
// its places: the peers whose smoothed RTT is kept, and the peers of the
// current interval, which only a Drain empties. Every answered SYN is a
// sample of a new peer, ten a second, with an idle_ttl of 10 s.
func TestFloodPeerCap(t *testing.T) {
	const maxFlows = 64
	syn := newFloodFrame(t, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 80), flags: FlagSYN})
	synAck := newFloodFrame(t, tseg{src: mixAP(floodLocal, 80), dst: mixAP(floodLocal, 1), flags: FlagSYN | FlagACK})
	e := NewEngine(Config{Local: mixLocalSet(), MaxFlows: maxFlows, MaxPeers: maxFlows, IdleTTL: 10 * time.Second})
	now := t0.UnixNano()
	i := uint32(0)
	answer := func() {
		syn.setAddrs(floodLocalIP, floodRemoteBase+i)
		syn.setSeq(i, 0)
		syn.process(e, now)
		synAck.setAddrs(floodRemoteBase+i, floodLocalIP)
		synAck.setSeq(7, i+1)
		synAck.process(e, now+int64(time.Millisecond))
		now += int64(100 * time.Millisecond)
		i++
	}
	// Without a Drain, the interval fills with the first maxFlows peers
	// and keeps them, though their smoothed RTTs expire.
	for range 1000 {
		answer()
	}
	st := e.Stats()
	if st.Samples != maxFlows || st.SamplesDiscarded != 1000-maxFlows || st.Peers > maxFlows {
		t.Errorf("1000 new peers without a drain: %v, peers %d; want %d samples", st, st.Peers, maxFlows)
	}
	if got := len(e.Drain(nil)); got != maxFlows {
		t.Errorf("drained %d peers, want %d", got, maxFlows)
	}
	// Drained every second, the interval holds 10 peers; the smoothed
	// RTTs of the last 10 s, 100 peers, are capped.
	for k := range 1000 {
		answer()
		if k%10 == 9 {
			if got := len(e.Drain(nil)); got > maxFlows {
				t.Fatalf("drained %d peers, more than %d", got, maxFlows)
			}
		}
		if st := e.Stats(); st.Peers > maxFlows {
			t.Fatalf("%d peers, more than %d", st.Peers, maxFlows)
		}
	}
	after := e.Stats()
	if after.Samples+after.SamplesDiscarded != 2000 || after.Samples == st.Samples || after.SamplesDiscarded == st.SamplesDiscarded {
		t.Errorf("1000 more new peers, drained every second: %v (before: %v)", after, st)
	}
	e.agg.mu.Lock()
	free := len(e.agg.free)
	e.agg.mu.Unlock()
	if free > 2*maxFlows {
		t.Errorf("%d intervals on the free list, more than 2 × %d", free, maxFlows)
	}
	t.Logf("2000 new peers with MaxPeers %d: %v, %d intervals on the free list", maxFlows, after, free)
}

// TestFloodSYNChurn evicts 600 × MaxFlows flows, enough for the flow map
// to reach the size at which the tombstones of its deletions stop growing
// it (see FlowBytes): a flow then takes its most heap, which must stay
// within FlowBytes. A small table gets there in well under a second (a
// smaller one under the race detector).
func TestFloodSYNChurn(t *testing.T) {
	maxFlows := 4096
	if raceEnabled() {
		maxFlows = 1024
	}
	n := 600 * maxFlows
	syn := newFloodFrame(t, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 80), flags: FlagSYN,
		mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
	h := newHeapProbe()
	e := NewEngine(Config{Local: mixLocalSet(), MaxFlows: maxFlows})
	now := t0.UnixNano()
	for i := range n {
		syn.setAddrs(floodLocalIP, floodRemoteBase+uint32(i))
		syn.setPorts(uint16(1024+i%60000), 80)
		syn.setSeq(uint32(i)*2654435761, 0)
		syn.process(e, now)
		now += int64(time.Microsecond)
		if i%floodSampleEvery == 0 {
			h.sample()
		}
	}
	st := e.Stats()
	checkFlowCounters(t, st, maxFlows)
	if st.FlowsEvicted != uint64(n-maxFlows) {
		t.Errorf("%d flows: %v", n, st)
	}
	settled := h.settled()
	if per := float64(settled) / float64(maxFlows); per > FlowBytes {
		t.Errorf("after %d evictions a flow takes %.0f bytes, FlowBytes says %d", st.FlowsEvicted, per, FlowBytes)
	}
	checkHeap(t, h, int64(maxFlows)*FlowBytes+floodSlack)
	t.Logf("%d flows through a table of %d: heap peak %.1f MiB, settled %.1f MiB: %.0f bytes per flow",
		n, maxFlows, mib(h.peak), mib(settled), float64(settled)/float64(maxFlows))
	runtime.KeepAlive(e)
}

// TestFloodOutstanding sends a million data segments on one flow that the
// peer never acknowledges: the flow keeps MaxTimedSegments records and the
// heap does not grow; when the ACK comes at last, the records go and the
// flow is timed again. With 64 KiB segments the sender runs 15 times round
// the sequence space: without timestamps, records whose ACKs were missed
// would then look ahead of every ACK for a whole wrap, and must be dropped
// to make room.
func TestFloodOutstanding(t *testing.T) {
	n := floodN(1_000_000, 100_000)
	for _, tc := range []struct {
		name string
		ts   bool
		big  bool // segments of the largest payload, else 1448 bytes
	}{
		{name: "timestamps", ts: true},
		{name: "seqack"},
		{name: "seqack-wrapping", big: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: netip.MustParseAddrPort("198.51.100.7:443"), flags: FlagACK | FlagPSH, ts: tc.ts})
			mss := uint32(1448)
			if tc.big {
				mss = uint32(data.maxPayload())
			}
			data.setPayload(int(mss))
			ack := newFloodFrame(t, tseg{src: netip.MustParseAddrPort("198.51.100.7:443"), dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: tc.ts})
			n := n
			if tc.big {
				// End three quarters of the way round the sequence space
				// from the first records, where they look ahead of the
				// last ACK.
				n = int((uint64(n)*uint64(mss)>>32<<32 + 3<<30) / uint64(mss))
			}
			rec := &recorder{}
			h := newHeapProbe()
			e := NewEngine(Config{Local: mixLocalSet(), OnSample: rec.add})
			now := t0.UnixNano()
			seq := 0 - 100*mss // wraps past 2^32 on the way
			for i := range n {
				data.setSeq(seq+uint32(i)*mss, 1)
				data.setTS(uint32(i)+1, 1) // from 1: a TSecr of 0 is no echo
				data.process(e, now)
				now += int64(time.Microsecond)
				if i%floodSampleEvery == 0 {
					h.sample()
					if got := maxTimedSegs(e); got > MaxTimedSegments {
						t.Fatalf("after %d segments: %d timed segments", i+1, got)
					}
				}
			}
			st := e.Stats()
			if st.Flows != 1 || st.Samples != 0 || st.SamplesDiscarded != 0 {
				t.Errorf("after %d segments: %+v", n, st)
			}
			// Thinned to a uniform sample of the flight, between three
			// quarters of the room and all of it.
			if got := maxTimedSegs(e); got < MaxTimedSegments*3/4-1 || got > MaxTimedSegments {
				t.Errorf("%d timed segments, want %d to %d", got, MaxTimedSegments*3/4, MaxTimedSegments)
			}
			settled := h.settled()
			// One flow: the whole flood fits in the slack.
			checkHeap(t, h, floodSlack)

			// The peer acknowledges everything at last, echoing the first
			// TSval; then one more segment is timed as usual.
			end := seq + uint32(n)*mss
			ack.setSeq(1, end)
			ack.setTS(9, 1)
			ack.process(e, now)
			if got := maxTimedSegs(e); got != 0 {
				t.Errorf("after the ACK of everything: %d timed segments", got)
			}
			data.setSeq(end, 1)
			data.setTS(uint32(n)+1, 9)
			data.process(e, now+int64(time.Millisecond))
			ack.setSeq(1, end+mss)
			ack.setTS(10, uint32(n)+1)
			ack.process(e, now+3*int64(time.Millisecond))
			got := rec.got()
			want := []msample{{MethodSeqAck, 2 * time.Millisecond}}
			switch {
			case tc.ts && len(got) == 2:
				// The records are a uniform sample of the flood: the first
				// segment, which the ACK echoes, may be among them.
				want = []msample{{MethodTimestamp, time.Duration(now - t0.UnixNano())}, {MethodTimestamp, 2 * time.Millisecond}}
			case tc.ts:
				want = []msample{{MethodTimestamp, 2 * time.Millisecond}}
			case len(got) == 2:
				// The last segment of the flood may hold a record, which
				// the ACK of everything times.
				want = []msample{{MethodSeqAck, time.Microsecond}, want[0]}
			}
			if !slices.Equal(got, want) {
				t.Errorf("samples after the flood: %v, want %v", got, want)
			}
			t.Logf("%d segments of %d bytes outstanding on one flow (%.1f× 2^32): %d timed; heap peak %.1f KiB, settled %.1f KiB",
				n, mss, float64(uint64(n)*uint64(mss))/(1<<32), MaxTimedSegments, float64(h.peak)/1024, float64(settled)/1024)
			runtime.KeepAlive(e)
		})
	}
}

// TestFloodACKStorm sends millions of duplicate and old ACKs on an
// established flow with data in flight, and ACKs for flows that do not
// exist: they give no sample, create no flow, drop no timed segment and
// grow nothing; the next real ACK is timed as usual.
func TestFloodACKStorm(t *testing.T) {
	n := floodN(2_000_000, 200_000)
	const mss = 1448
	remote := netip.MustParseAddrPort("198.51.100.7:443")
	for _, ts := range []bool{true, false} {
		name := "seqack"
		if ts {
			name = "timestamps"
		}
		t.Run(name, func(t *testing.T) {
			data := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: remote, flags: FlagACK | FlagPSH, ts: ts})
			data.setPayload(mss)
			// Duplicate ACKs carry SACK blocks, as real ones do.
			ack := newFloodFrame(t, tseg{src: remote, dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: ts,
				sack: []SACKBlock{{1, 2}, {3, 4}, {5, 6}}})
			rec := &recorder{}
			e := NewEngine(Config{Local: mixLocalSet(), OnSample: rec.add})
			now := t0.UnixNano()
			isn := uint32(0xfffff000) // the storm's old ACKs reach back across 0
			for i := range uint32(8) {
				data.setSeq(isn+i*mss, 1)
				data.setTS(100+i, 50)
				data.process(e, now)
				now += int64(time.Microsecond)
			}
			// The first real ACK covers 4 segments: one sample.
			now += int64(time.Millisecond)
			ack.setSeq(1, isn+4*mss)
			ack.setTS(51, 100)
			ack.process(e, now)
			before := e.Stats()
			if before.Samples != 1 || maxTimedSegs(e) != 4 {
				t.Fatalf("before the storm: %v, %d timed segments", before, maxTimedSegs(e))
			}

			h := newHeapProbe()
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range n {
				now += 100 // 10 million ACKs a second
				switch i % 3 {
				case 0: // duplicate
					ack.setSeq(1, isn+4*mss)
					ack.setTS(51, 100)
				case 1: // old, up to 2^30 back, echoing an old TSval
					ack.setSeq(1, isn+4*mss-1-rng.Uint32N(1<<30))
					ack.setTS(51, 100-rng.Uint32N(1<<30))
				case 2: // the handshake's ACK, long gone
					ack.setSeq(1, isn)
					ack.setTS(51, 99)
				}
				ack.process(e, now)
				if i%floodSampleEvery == 0 {
					h.sample()
				}
			}
			after := e.Stats()
			if after.Samples != before.Samples || after.SamplesDiscarded != before.SamplesDiscarded ||
				after.Flows != 1 || after.FlowsCreated != 1 || maxTimedSegs(e) != 4 {
				t.Errorf("after %d old ACKs: %v, %d timed segments", n, after, maxTimedSegs(e))
			}
			checkHeap(t, h, floodSlack)
			peak := h.peak

			// ACKs for flows that were never seen.
			for i := range n {
				now += 100
				ack.setAddrs(floodRemoteBase+uint32(i), floodLocalIP)
				ack.setPorts(uint16(i), uint16(i>>16))
				ack.setSeq(rng.Uint32(), rng.Uint32())
				ack.setTS(rng.Uint32(), rng.Uint32())
				ack.process(e, now)
				if i%floodSampleEvery == 0 {
					h.sample()
				}
			}
			if st := e.Stats(); st.Samples != before.Samples || st.FlowsCreated != 1 || st.Flows != 1 {
				t.Errorf("after %d ACKs for unknown flows: %v", n, st)
			}
			checkHeap(t, h, floodSlack)

			// The next real ACK covers the rest: one sample, from the
			// fifth segment (timestamps: the one at the previous ACK) or
			// the eighth (seq/ack: the one it ends) to now.
			now += int64(time.Millisecond)
			ack.setAddrs(binary.BigEndian.Uint32(remote.Addr().AsSlice()), floodLocalIP)
			ack.setPorts(remote.Port(), 40000)
			ack.setSeq(1, isn+8*mss)
			ack.setTS(52, 104)
			ack.process(e, now)
			want := time.Duration(now - (t0.UnixNano() + 7*int64(time.Microsecond)))
			if ts {
				want = time.Duration(now - (t0.UnixNano() + 4*int64(time.Microsecond)))
			}
			if got := rec.samples; len(got) != 2 || got[1].RTT != want || maxTimedSegs(e) != 0 {
				t.Errorf("after the storm, the real ACK gave %v (want one more sample of %v), %d timed segments left", got, want, maxTimedSegs(e))
			}
			t.Logf("%d old and duplicate ACKs on one flow, %d for unknown flows: no sample, no flow; heap peak %.1f KiB (%.1f KiB during the storm)",
				n, n, float64(h.peak)/1024, float64(peak)/1024)
			runtime.KeepAlive(e)
		})
	}
}

// TestFloodTSvalJumps runs a flow whose timestamps are noise: the local
// side sends random TSvals (jumps of up to 2^32 either way), the peer
// echoes one of the recent ones or a random value, and capture time
// stalls for up to 2 minutes or goes back now and then. Every sample must
// be the capture time between a segment and the ACK that echoes its TSval,
// within MaxRTT; longer or negative ones are discarded and counted.
func TestFloodTSvalJumps(t *testing.T) {
	n := floodN(1_000_000, 100_000)
	const mss = 1448
	remote := netip.MustParseAddrPort("198.51.100.7:443")
	data := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: remote, flags: FlagACK | FlagPSH, ts: true})
	data.setPayload(mss)
	ack := newFloodFrame(t, tseg{src: remote, dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: true})

	// sent remembers the last segments: the peer echoes one of them, and
	// a sample must time one of them.
	type sent struct {
		tsval uint32
		t     int64
	}
	const window = 64
	var ring [window]sent
	var bad []Sample
	var lastEcho uint32
	var ackTime int64
	check := func(s Sample) {
		for _, r := range ring {
			if r.tsval == lastEcho && ackTime-r.t == int64(s.RTT) {
				return
			}
		}
		if len(bad) < 5 {
			bad = append(bad, s)
		}
	}
	var samples int
	var sampledEcho uint32 // the last echo that gave a sample
	h := newHeapProbe()
	e := NewEngine(Config{Local: mixLocalSet(), OnSample: func(s Sample) {
		samples++
		sampledEcho = lastEcho
		if s.RTT < 0 || s.RTT > SanityMaxRTT {
			bad = append(bad, s)
		}
		check(s)
	}})
	rng := rand.New(rand.NewPCG(3, 4))
	now := t0.UnixNano()
	seq, acked := uint32(1), uint32(1)
	acks := 0
	for i := range n {
		switch r := rng.IntN(10000); {
		case r == 0:
			now += rng.Int64N(int64(2 * time.Minute)) // a stall: samples across it exceed MaxRTT
		case r == 1:
			now -= rng.Int64N(int64(time.Second)) // capture time going back
		default:
			now += int64(10 * time.Microsecond)
		}
		if i%2 == 0 {
			tsval := rng.Uint32()
			ring[(i/2)%window] = sent{tsval, now}
			data.setSeq(seq, 1)
			data.setTS(tsval, 7)
			data.process(e, now)
			seq += mss
		} else {
			// ACK all or part of what is in flight, echoing a recent
			// TSval, an old one, or noise.
			acked = seq - mss*rng.Uint32N(3)
			switch rng.IntN(4) {
			case 0:
				lastEcho = rng.Uint32()
			default:
				lastEcho = ring[(i/2-rng.IntN(4)+window)%window].tsval
			}
			ack.setSeq(7, acked)
			ack.setTS(7, lastEcho)
			ackTime = now
			ack.process(e, now)
			acks++
		}
		if i%floodSampleEvery == 0 {
			h.sample()
			if got := maxTimedSegs(e); got > MaxTimedSegments {
				t.Fatalf("%d timed segments", got)
			}
		}
	}
	// Last, a segment whose echo comes after a 61 s stall: its sample is
	// discarded, whatever the noise before left.
	before := e.Stats()
	ack.setSeq(7, seq)
	ack.setTS(7, rng.Uint32())
	ack.process(e, now) // acknowledges every record
	lastEcho = sampledEcho + 1
	data.setSeq(seq, 1)
	data.setTS(lastEcho, 7)
	data.process(e, now)
	now += int64(61 * time.Second)
	ack.setSeq(7, seq+mss)
	ack.setTS(7, lastEcho)
	ack.process(e, now)
	acks += 2
	st := e.Stats()
	if st.Samples != before.Samples || st.SamplesDiscarded != before.SamplesDiscarded+1 {
		t.Errorf("a 61 s echo: %v, then %v; want one more discarded", before, st)
	}
	if len(bad) > 0 {
		t.Errorf("bogus samples: %+v", bad)
	}
	if st.Samples != uint64(samples) || st.Samples+st.SamplesDiscarded > uint64(acks) || st.Flows != 1 {
		t.Errorf("%d ACKs: %v", acks, st)
	}
	for _, ps := range e.Drain(nil) {
		if ps.Max > SanityMaxRTT || ps.Min < 0 {
			t.Errorf("peer stats beyond the sanity bound: %+v", ps)
		}
	}
	settled := h.settled()
	checkHeap(t, h, floodSlack)
	t.Logf("%d packets with random TSvals: %d samples, %d discarded; heap peak %.1f KiB, settled %.1f KiB",
		n, st.Samples, st.SamplesDiscarded, float64(h.peak)/1024, float64(settled)/1024)
	runtime.KeepAlive(e)
}

// TestFloodSeqWrap runs a bidirectional bulk transfer of 64 KiB segments
// (GSO-sized, as captured before the NIC splits them) whose sequence
// numbers, in both directions, and TSvals wrap past 2^32 many times: every
// ACK is timed with the exact RTT. Without timestamps, a retransmission
// straddling 0 each time the sequence wraps is never timed (Karn).
func TestFloodSeqWrap(t *testing.T) {
	wraps := 8
	if raceEnabled() || testing.Short() {
		wraps = 2
	}
	remote := netip.MustParseAddrPort("198.51.100.7:443")
	for _, ts := range []bool{true, false} {
		name := "seqack-retransmit-at-0"
		if ts {
			name = "timestamps"
		}
		t.Run(name, func(t *testing.T) {
			out := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: remote, flags: FlagACK | FlagPSH, ts: ts})
			in := newFloodFrame(t, tseg{src: remote, dst: mixAP(floodLocal, 40000), flags: FlagACK | FlagPSH, ts: ts})
			l := uint32(out.maxPayload())
			out.setPayload(int(l))
			in.setPayload(int(l))
			// A is timed from its send to the first remote segment, 2 µs
			// later; B by seq/ack, 1 µs. The samples are counted, not
			// kept: a million of them would fill the heap being measured.
			want := msample{MethodTimestamp, 2 * time.Microsecond}
			if !ts {
				want = msample{MethodSeqAck, time.Microsecond}
			}
			var samples int
			var wrong []Sample
			h := newHeapProbe()
			e := NewEngine(Config{Local: mixLocalSet(), OnSample: func(s Sample) {
				samples++
				if (msample{s.Method, s.RTT}) != want && len(wrong) < 5 {
					wrong = append(wrong, s)
				}
			}})
			const step = int64(time.Microsecond)
			now := t0.UnixNano()
			snd, rcv := uint32(1<<32-3*65000), uint32(1<<32-5*65000)
			tsL, tsR := uint32(1<<32-1000), uint32(1<<31-100)
			cycles := int(uint64(wraps) << 32 / uint64(2*l))
			var wantSamples, rexmits int
			wrapsSnd, wrapsRcv := 0, 0
			for c := range cycles {
				// Local: two segments, A and B.
				straddle := -1
				for k := range 2 {
					out.setSeq(snd, rcv)
					out.setTS(tsL, tsR)
					out.process(e, now)
					now += step
					tsL++
					if snd+l < snd {
						wrapsSnd++
						straddle = k
					}
					snd += l
				}
				// Without timestamps, resend the one that straddles 0.
				rexmit := !ts && straddle >= 0
				if rexmit {
					// Later than a copy from a second device could be.
					now += 2 * int64(time.Millisecond)
					out.setSeq(snd-uint32(2-straddle)*l, rcv)
					out.process(e, now)
					now += step
					rexmits++
				}
				// Remote: two segments, the first ACKing A and B and
				// echoing A's TSval, the one at the previous ACK.
				for range 2 {
					in.setSeq(rcv, snd)
					in.setTS(tsR, tsL-2)
					in.process(e, now)
					now += step
					tsR++
					if rcv+l < rcv {
						wrapsRcv++
					}
					rcv += l
				}
				if !rexmit && !(ts && tsL-2 == 0) { // a TSecr of 0 is no echo
					wantSamples++
				}
				// Local: a pure ACK of both.
				out.setPayload(0)
				out.setSeq(snd, rcv)
				out.setTS(tsL, tsR-2)
				out.process(e, now)
				out.setPayload(int(l))
				now += step
				if c%(floodSampleEvery/8) == 0 {
					h.sample()
				}
			}
			st := e.Stats()
			if st.Samples != uint64(wantSamples) || st.SamplesDiscarded != 0 || samples != wantSamples {
				t.Errorf("%d cycles, %d retransmissions: %v, want %d samples", cycles, rexmits, st, wantSamples)
			}
			if len(wrong) > 0 {
				t.Errorf("samples %+v, want all %v", wrong, want)
			}
			if wrapsSnd < wraps || wrapsRcv < wraps || (!ts && rexmits != wrapsSnd) {
				t.Errorf("local sequence wrapped %d times, remote %d, %d retransmissions; want %d wraps", wrapsSnd, wrapsRcv, rexmits, wraps)
			}
			if got := maxTimedSegs(e); got > 2 {
				t.Errorf("%d timed segments left", got)
			}
			checkHeap(t, h, floodSlack)
			t.Logf("%d cycles of %d-byte segments: sequence numbers wrapped %d times each way; %d samples; heap peak %.1f KiB",
				cycles, l, wrapsSnd, st.Samples, float64(h.peak)/1024)
			runtime.KeepAlive(e)
		})
	}
}

// TestFloodSilentPeers runs hours of capture time in which the host sends
// requests to a stream of new peers that never answer (a dead backend, a
// blackholed route): every 20 ms a new connection to a new remote address
// sends a request, half of them then close with a FIN, and one in fifty
// peers answers once and falls silent. Flows expire by idle_ttl (open) and
// exp_ttl (closed), peers by idle_ttl, without eviction, and everything is
// gone once idle_ttl passes without traffic.
func TestFloodSilentPeers(t *testing.T) {
	hours := 3
	if raceEnabled() || testing.Short() {
		hours = 1
	}
	const (
		every  = 20 * time.Millisecond
		drain  = 15 * time.Second // the check's interval
		answer = 50               // one connection in answer gets an answer
	)
	const perSec = int(time.Second / every)
	data := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: mixAP(floodLocal, 443), flags: FlagACK | FlagPSH, ts: true})
	data.setPayload(300)
	fin := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: mixAP(floodLocal, 443), flags: FlagACK | FlagFIN, ts: true})
	ack := newFloodFrame(t, tseg{src: mixAP(floodLocal, 443), dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: true})

	h := newHeapProbe()
	e := NewEngine(Config{Local: mixLocalSet()})
	// At most the connections of the last idle_ttl (open) or exp_ttl
	// (closed) plus a sweep's second are tracked; peers that answered in
	// the last idle_ttl.
	maxFlows := uint64(perSec/2*int(DefaultIdleTTL/time.Second+1) + perSec/2*int(DefaultExpTTL/time.Second+1) + perSec)
	maxPeers := uint64(perSec/answer*int(DefaultIdleTTL/time.Second+1) + 1)
	var highFlows, highPeers uint64
	var drained []PeerStats
	start := t0.UnixNano()
	end := start + int64(time.Duration(hours)*time.Hour)
	nextDrain := start + int64(drain)
	conns := 0
	for now := start; now < end; now += int64(every) {
		i := uint32(conns)
		conns++
		remote, lport := floodRemoteBase+i, uint16(1024+i%60000)
		data.setAddrs(floodLocalIP, remote)
		data.setPorts(lport, 443)
		data.setSeq(i, 1)
		data.setTS(i+1, 0) // from 1: a TSecr of 0 is no echo
		data.process(e, now)
		if i%answer == 0 {
			ack.setAddrs(remote, floodLocalIP)
			ack.setPorts(443, lport)
			ack.setSeq(1, i+300)
			ack.setTS(1, i+1)
			ack.process(e, now+int64(time.Millisecond))
		}
		if i%2 == 0 {
			fin.setAddrs(floodLocalIP, remote)
			fin.setPorts(lport, 443)
			fin.setSeq(i+300, 1)
			fin.setTS(i+1, 0)
			fin.process(e, now+int64(2*time.Millisecond))
		}
		if now >= nextDrain {
			drained = e.Drain(drained[:0]) // reusing the buffer, as the check does
			nextDrain += int64(drain)
			st := e.Stats()
			highFlows, highPeers = max(highFlows, st.Flows), max(highPeers, st.Peers)
			if st.Flows > maxFlows || st.Peers > maxPeers || st.FlowsEvicted != 0 {
				t.Fatalf("at %v: %v, peers %d; want at most %d flows, %d peers, no eviction",
					time.Duration(now-start), st, st.Peers, maxFlows, maxPeers)
			}
		}
		if conns%(floodSampleEvery/4) == 0 {
			h.sample()
		}
	}
	st := e.Stats()
	checkFlowCounters(t, st, DefaultMaxFlows)
	if st.FlowsCreated != uint64(conns) || st.Samples != uint64((conns+answer-1)/answer) {
		t.Errorf("%d connections: %v", conns, st)
	}
	checkHeap(t, h, int64(maxFlows)*FlowBytes+int64(maxPeers)*floodPeerBytes+floodSlack)

	// idle_ttl later, with no packet in between, the sweep of a live
	// capture leaves nothing (once the last interval is drained).
	e.Drain(nil)
	e.Expire(time.Unix(0, end).Add(DefaultIdleTTL + time.Second))
	if st := e.Stats(); st.Flows != 0 || st.Peers != 0 || st.FlowsExpired != st.FlowsCreated {
		t.Errorf("idle_ttl after the last packet: %v, peers %d", st, st.Peers)
	}
	settled := h.settled()
	t.Logf("%d h of capture, %d connections to silent peers: at most %d flows (bound %d), %d peers (bound %d); heap peak %.1f MiB, %.1f MiB after all expired (free list)",
		hours, conns, highFlows, maxFlows, highPeers, maxPeers, mib(h.peak), mib(settled))
	runtime.KeepAlive(e)
}

// floodKinds are the floods BenchmarkFlood measures in steady state: each
// returns a function that processes the flood's next packet.
var floodKinds = []struct {
	name  string
	setup func(tb testing.TB, e *Engine) func()
}{
	{
		// The host scanning: a SYN to a new host per packet; the table
		// is full, so each evicts a flow.
		name: "syn-scan",
		setup: func(tb testing.TB, e *Engine) func() {
			syn := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 80), flags: FlagSYN,
				mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
			now, i := t0.UnixNano(), uint32(0)
			return func() {
				syn.setAddrs(floodLocalIP, floodRemoteBase+i)
				syn.setPorts(uint16(1024+i%60000), 80)
				syn.setSeq(i*2654435761, 0)
				syn.process(e, now)
				now += int64(time.Microsecond)
				i++
			}
		},
	},
	{
		// A spoofed SYN, then the host's SYN-ACK, which creates a flow
		// and evicts one.
		name: "syn-flood-in",
		setup: func(tb testing.TB, e *Engine) func() {
			syn := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 1), dst: mixAP(floodLocal, 443), flags: FlagSYN,
				mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
			synAck := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 443), dst: mixAP(floodLocal, 1), flags: FlagSYN | FlagACK,
				mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
			now, i := t0.UnixNano(), uint32(0)
			return func() {
				remote, port := floodRemoteBase+i/2*7, uint16(1024+i/2%64000)
				if i%2 == 0 {
					syn.setAddrs(remote, floodLocalIP)
					syn.setPorts(port, 443)
					syn.process(e, now)
				} else {
					synAck.setAddrs(floodLocalIP, remote)
					synAck.setPorts(443, port)
					synAck.setSeq(i, i/2*2654435761+1)
					synAck.process(e, now)
				}
				now += int64(time.Microsecond)
				i++
			}
		},
	},
	{
		// Data on one flow, never acknowledged: the timed segments are
		// full.
		name: "outstanding",
		setup: func(tb testing.TB, e *Engine) func() {
			data := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 40000), dst: netip.MustParseAddrPort("198.51.100.7:443"), flags: FlagACK | FlagPSH, ts: true})
			data.setPayload(1448)
			now, i := t0.UnixNano(), uint32(0)
			return func() {
				data.setSeq(i*1448, 1)
				data.setTS(i, 1)
				data.process(e, now)
				now += int64(time.Microsecond)
				i++
			}
		},
	},
	{
		// Duplicate and old ACKs with SACK blocks on a flow with data
		// in flight.
		name: "ack-storm",
		setup: func(tb testing.TB, e *Engine) func() {
			remote := netip.MustParseAddrPort("198.51.100.7:443")
			data := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 40000), dst: remote, flags: FlagACK | FlagPSH, ts: true})
			data.setPayload(1448)
			now := t0.UnixNano()
			for i := range uint32(8) {
				data.setSeq(1+i*1448, 1)
				data.setTS(100+i, 7)
				data.process(e, now)
			}
			ack := newFloodFrame(tb, tseg{src: remote, dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: true,
				sack: []SACKBlock{{1, 2}, {3, 4}, {5, 6}}})
			ack.setSeq(1, 1+4*1448)
			ack.setTS(8, 100)
			ack.process(e, now)
			i := uint32(0)
			return func() {
				ack.setSeq(1, 1+4*1448-(i%2)*(i%5000))
				ack.process(e, now)
				now += 100
				i++
			}
		},
	},
	{
		// ACKs for flows that do not exist.
		name: "ack-unknown",
		setup: func(tb testing.TB, e *Engine) func() {
			ack := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 443), dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: true})
			now, i := t0.UnixNano(), uint32(0)
			return func() {
				ack.setAddrs(floodRemoteBase+i, floodLocalIP)
				ack.setSeq(i, i)
				ack.process(e, now)
				now += 100
				i++
			}
		},
	},
	{
		// Random TSvals and echoes on one flow.
		name: "tsval-jumps",
		setup: func(tb testing.TB, e *Engine) func() {
			remote := netip.MustParseAddrPort("198.51.100.7:443")
			data := newFloodFrame(tb, tseg{src: mixAP(floodLocal, 40000), dst: remote, flags: FlagACK | FlagPSH, ts: true})
			data.setPayload(1448)
			ack := newFloodFrame(tb, tseg{src: remote, dst: mixAP(floodLocal, 40000), flags: FlagACK, ts: true})
			rng := rand.New(rand.NewPCG(5, 6))
			now, seq, i := t0.UnixNano(), uint32(1), 0
			var last uint32
			return func() {
				if i%2 == 0 {
					last = rng.Uint32()
					data.setSeq(seq, 1)
					data.setTS(last, 7)
					data.process(e, now)
					seq += 1448
				} else {
					ack.setSeq(7, seq)
					ack.setTS(7, last^uint32(i/2%4)) // an echo of the last TSval one time in four
					ack.process(e, now)
				}
				now += int64(10 * time.Microsecond)
				i++
			}
		},
	},
}

// floodBench returns the benchmark of flood kind k, in batches of batch
// frames, or frame by frame if batch is 0: ns/op is ns/packet. The
// engine is warmed up first, over enough packets to fill the flow table.
func floodBench(k, batch int) func(b *testing.B) {
	return func(b *testing.B) {
		e := NewEngine(Config{Local: mixLocalSet()})
		next := floodKinds[k].setup(b, e)
		for range DefaultMaxFlows + 1000 {
			next()
		}
		b.ReportAllocs()
		n := 0
		if batch > 0 {
			e.BeginBatch()
		}
		for b.Loop() {
			next()
			if n++; n == batch {
				e.EndBatch()
				e.BeginBatch()
				n = 0
			}
		}
		e.EndBatch()
		if st := e.Stats(); st.DecodeErrors != 0 || st.Flows > DefaultMaxFlows {
			b.Fatalf("stats: %v", st)
		}
	}
}

// BenchmarkFlood measures Engine.ProcessNano per packet (one op is one
// frame) under each flood, in steady state, to compare with
// BenchmarkProcess: go test -bench 'Process|Flood' ./capture/.
func BenchmarkFlood(b *testing.B) {
	for k, fk := range floodKinds {
		b.Run(fk.name, floodBench(k, 0))
	}
}

// BenchmarkFloodBatch is BenchmarkFlood with the frames in batches of
// processBatchSize (Engine.BeginBatch), as live capture takes them: to
// compare with BenchmarkProcessBatch.
func BenchmarkFloodBatch(b *testing.B) {
	for k, fk := range floodKinds {
		b.Run(fk.name, floodBench(k, processBatchSize))
	}
}

// mixBench returns BenchmarkProcess's benchmark of a traffic mix.
func mixBench(mc mixCase) func(b *testing.B) {
	return func(b *testing.B) {
		m := mc.build(b)
		e := mixEngine(b, m)
		b.ReportAllocs()
		for b.Loop() {
			m.processNext(e)
		}
	}
}

// TestFloodThroughput compares the ns/packet of each flood with that of
// normal traffic (the mix of BenchmarkProcess, its cold-frame control
// left out, whose cost is the median of the mixes), from short
// testing.Benchmark runs, and logs the ratios. Each
// round measures the normal mix and, right after it, the flood, and the
// test takes the median of three rounds' ratios: a busy machine slows both
// sides of a round alike, where a baseline measured once, before all the
// floods, would be compared with floods measured under another load (a
// 9.7× "ratio" was seen that way under a CPU-bound neighbour, against
// 3.7× when each flood had its own baseline). The requirement is at most
// 2×, which BenchmarkFlood and BenchmarkProcess show (docs/hardening.md).
// This check is only a guard against gross regressions, such as
// per-packet work that grows with the table: the floods that create a
// flow per packet are bound by memory latency, which other processes on a
// busy machine slow down far more than the cached normal mixes (up to
// 3.2× was seen on a loaded 2-core VM, against 1.5-2× when quiet), so it
// fails only above 5×. The ratios hold under the race detector too, though
// both sides are 15-20 times slower.
func TestFloodThroughput(t *testing.T) {
	const rounds, limit = 3, 5.0
	if f := flag.Lookup("test.benchtime"); f != nil {
		old := f.Value.String()
		if err := f.Value.Set("50ms"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = f.Value.Set(old) })
	}
	nsPerPacket := func(fn func(b *testing.B)) float64 {
		r := testing.Benchmark(fn)
		if r.N == 0 {
			t.Fatalf("benchmark failed")
		}
		return float64(r.T.Nanoseconds()) / float64(r.N)
	}
	// The normal mix: the one of median cost, of the mixes that are not
	// controls.
	var mixes []mixCase
	for _, mc := range mixCases {
		if !mc.control {
			mixes = append(mixes, mc)
		}
	}
	costs := make([]float64, len(mixes))
	for i, mc := range mixes {
		costs[i] = nsPerPacket(mixBench(mc))
	}
	normalMix := mixes[slices.Index(costs, medianOf(costs))]
	t.Logf("normal traffic: %.0f ns/packet (the mixes: %.0f)", medianOf(costs), costs)
	for k, fk := range floodKinds {
		var ratios, floods []float64
		for range rounds {
			normal := nsPerPacket(mixBench(normalMix))
			flood := nsPerPacket(floodBench(k, 0))
			ratios = append(ratios, flood/normal)
			floods = append(floods, flood)
		}
		ratio := medianOf(ratios)
		t.Logf("flood %s: %.0f ns/packet, %.2f× normal (rounds: %.2f)", fk.name, medianOf(floods), ratio, ratios)
		if ratio > limit {
			t.Errorf("flood %s: %.2f× normal traffic, the median of rounds %.2f: want at most 2× (checked here at %.0f×)", fk.name, ratio, ratios, limit)
		}
	}
}

// TestFloodLargeFlights gives thousands of flows a flight larger than
// their inline records at once: at most max(256, MaxFlows/16) of them
// borrow room for MaxTimedSegments records, the others time their flight
// with their inline records, and the heap stays within FlowTableBytes.
// When the flights are acknowledged, the room goes back to the pool.
func TestFloodLargeFlights(t *testing.T) {
	const flows, flight = 5000, 200
	maxFlows := 8192
	h := newHeapProbe()
	e := NewEngine(Config{Local: mixLocalSet(), MaxFlows: maxFlows})
	data := newFloodFrame(t, tseg{src: mixAP(floodLocal, 40000), dst: netip.MustParseAddrPort("198.51.100.7:443"), flags: FlagACK | FlagPSH})
	data.setPayload(1448)
	ack := newFloodFrame(t, tseg{src: netip.MustParseAddrPort("198.51.100.7:443"), dst: mixAP(floodLocal, 40000), flags: FlagACK})
	now := t0.UnixNano()
	for i := range flight {
		for f := range flows {
			data.setPorts(uint16(10000+f), 443)
			data.setSeq(uint32(i*1448), 1)
			data.process(e, now)
			now += int64(time.Microsecond)
		}
		h.sample()
	}
	if got, max := e.flows.pool.inUse, extMax(maxFlows); got != max {
		t.Errorf("%d flows borrowed room for a large flight, want the cap, %d", got, max)
	}
	borrowed := 0
	e.flows.each(func(f *flow) {
		if f.rtt.ext != nil {
			borrowed++
		}
		if n := int(f.rtt.nseg); n > MaxTimedSegments || f.rtt.ext == nil && n > inlineSegs {
			t.Fatalf("a flow holds %d records", n)
		}
	})
	if borrowed != e.flows.pool.inUse {
		t.Errorf("%d flows hold borrowed room, the pool lent %d", borrowed, e.flows.pool.inUse)
	}
	checkHeap(t, h, FlowTableBytes(maxFlows)+floodSlack)
	// The peer acknowledges every flight: the room goes back.
	for f := range flows {
		ack.setPorts(443, uint16(10000+f))
		ack.setSeq(1, uint32(flight*1448))
		ack.process(e, now)
	}
	if got := e.flows.pool.inUse; got != 0 {
		t.Errorf("after the ACKs, %d flows still borrow room", got)
	}
	t.Logf("%d flows of %d segments in flight: %d borrowed room; heap peak %.1f MiB (bound %.1f MiB)",
		flows, flight, borrowed, mib(h.peak), mib(FlowTableBytes(maxFlows)+floodSlack))
}
