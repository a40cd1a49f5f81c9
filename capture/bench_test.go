package capture

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// A traffic mix is a cycle of prebuilt frames from a few synthetic TCP
// connections in steady state. Before each frame is processed, mix.next
// rewrites its sequence number, ACK and timestamps in place from the
// connection's state, so that the cycle can be replayed for ever and still
// look live to the Engine: no replayed frame is a retransmission, a
// duplicate ACK or a stale timestamp echo, and every ACK gives the samples
// a real one would. Checksums are not kept right: Decode does not check
// them.

// mixKind is what a mix frame is.
type mixKind uint8

const (
	mixOutData mixKind = iota // local -> remote, with payload
	mixOutAck                 // local -> remote, pure ACK
	mixInData                 // remote -> local, with payload, ACKing all local data
	mixInAck                  // remote -> local, pure ACK of all local data
)

// mixConn is one connection's state, seen from the local end.
type mixConn struct {
	sndNxt, rcvNxt uint32 // next local and remote sequence numbers
	tsLocal        uint32 // local TSval clock: one tick per data segment
	tsRemote       uint32
	// acked is the remote's last ACK; echo is the TSval of the local
	// segment that started there, which the remote echoes next (RFC 7323
	// §4.3: TS.Recent is taken from the segment at Last.ACK.sent).
	acked, echo uint32
	outLen      uint32 // payload of mixOutData frames
	inLen       uint32 // payload of mixInData frames
}

// mixFrame is one prebuilt frame of a mix.
type mixFrame struct {
	link  LinkType
	frame []byte // cut to DefaultSnaplen, in the mix's ring (build)
	wire  int    // the frame's length on the wire
	tcp   int    // offset of the TCP header in frame
	ts    int    // offset of the TSval in frame, or -1 without timestamps
	kind  mixKind
	conn  *mixConn
}

// mix is a cycle of frames and the clock that stamps them.
type mix struct {
	frames []mixFrame
	ring   []byte // the frames, one after another (build)
	i      int
	now    int64 // capture time of the next frame, Unix ns
	step   int64 // capture time between frames
	// scatter: mixEngine puts the engine's free flows in random order
	// first (scatterFlows).
	scatter bool
}

// mixLink is the framing of a mix connection's frames.
type mixLink struct {
	link  LinkType
	vlans []uint16
}

var (
	mixEth  = mixLink{link: LinkEthernet}
	mixVLAN = mixLink{link: LinkEthernet, vlans: []uint16{100}}
	mixSLL  = mixLink{link: LinkLinuxSLL}
	mixSLL2 = mixLink{link: LinkLinuxSLL2}
	mixRaw  = mixLink{link: LinkRaw}
)

func (l mixLink) wrap(ip []byte) []byte {
	switch l.link {
	case LinkEthernet:
		return ethFrame(ip, l.vlans...)
	case LinkLinuxSLL:
		return sllFrame(ip)
	case LinkLinuxSLL2:
		return sll2Frame(ip)
	}
	return ip
}

// mixBuilder builds a mix.
type mixBuilder struct {
	tb testing.TB
	m  *mix
}

func newMix(tb testing.TB, step time.Duration) *mixBuilder {
	return &mixBuilder{tb: tb, m: &mix{now: t0.UnixNano(), step: int64(step)}}
}

// conn starts a connection from local to remote with timestamps if ts.
func (b *mixBuilder) conn(local, remote netip.AddrPort, l mixLink, ts bool, outLen, inLen uint32) *mixConnBuilder {
	c := &mixConn{sndNxt: 1000, rcvNxt: 5000, tsLocal: 100, tsRemote: 7000, outLen: outLen, inLen: inLen}
	c.acked, c.echo = c.sndNxt, c.tsLocal
	return &mixConnBuilder{b: b, c: c, local: local, remote: remote, l: l, ts: ts}
}

// mixConnBuilder adds one connection's frames to a mix.
type mixConnBuilder struct {
	b             *mixBuilder
	c             *mixConn
	local, remote netip.AddrPort
	l             mixLink
	ts            bool
}

// add appends frames of the given kinds to the mix, in order.
func (cb *mixConnBuilder) add(kinds ...mixKind) *mixConnBuilder {
	for _, k := range kinds {
		s := tseg{flags: FlagACK, ts: cb.ts, win: 1000}
		switch k {
		case mixOutData:
			s.src, s.dst, s.payload, s.flags = cb.local, cb.remote, int(cb.c.outLen), FlagACK|FlagPSH
		case mixOutAck:
			s.src, s.dst = cb.local, cb.remote
		case mixInData:
			s.src, s.dst, s.payload, s.flags = cb.remote, cb.local, int(cb.c.inLen), FlagACK|FlagPSH
		case mixInAck:
			s.src, s.dst = cb.remote, cb.local
		}
		ip := buildIP(cb.b.tb, s)
		frame := cb.l.wrap(ip)
		tcp := len(frame) - len(ip) + 20
		if ip[0]>>4 == 6 {
			tcp = len(frame) - len(ip) + 40
		}
		ts := -1
		if cb.ts {
			ts = tcp + 20 + 4 // after NOP, NOP, kind, length
		}
		cb.b.m.frames = append(cb.b.m.frames, mixFrame{link: cb.l.link, frame: frame, tcp: tcp, ts: ts, kind: k, conn: cb.c})
	}
	return cb
}

// build returns the mix, its frames laid out as a live capture's ring
// holds them: cut to the default snap length, one after another in one
// buffer, each after room for TPACKET_V3's frame header. The engine reads
// its frames in the order it walks a ring block, as it does live, rather
// than from separate allocations of whole frames (which made the many
// flows' mixes measure the cache misses of 30 MB of payload the engine
// never reads).
func (b *mixBuilder) build() *mix {
	const hdr = 80 // tpacket3_hdr and sockaddr_ll, aligned (TPACKET_ALIGN)
	snap := func(f *mixFrame) int { return min(len(f.frame), DefaultSnaplen) }
	size := 0
	for i := range b.m.frames {
		size += hdr + (snap(&b.m.frames[i])+15)&^15
	}
	b.m.ring = make([]byte, size)
	off := 0
	for i := range b.m.frames {
		f := &b.m.frames[i]
		n, src := snap(f), f.frame
		off += hdr
		f.wire, f.frame = len(src), b.m.ring[off:off+n:off+n]
		copy(f.frame, src)
		off += (n + 15) &^ 15
	}
	return b.m
}

// next rewrites the next frame of the cycle for its connection's state
// and returns it with its capture time.
func (m *mix) next() (*mixFrame, int64) {
	f := &m.frames[m.i]
	m.i++
	if m.i == len(m.frames) {
		m.i = 0
	}
	t := m.now
	m.now += m.step
	c := f.conn
	var seq, ack, tsval, tsecr uint32
	switch f.kind {
	case mixOutData:
		c.tsLocal++
		seq, ack, tsval, tsecr = c.sndNxt, c.rcvNxt, c.tsLocal, c.tsRemote
		if c.sndNxt == c.acked {
			c.echo = c.tsLocal
		}
		c.sndNxt += c.outLen
	case mixOutAck:
		seq, ack, tsval, tsecr = c.sndNxt, c.rcvNxt, c.tsLocal, c.tsRemote
	case mixInData, mixInAck:
		c.tsRemote++
		seq, ack, tsval, tsecr = c.rcvNxt, c.sndNxt, c.tsRemote, c.echo
		if f.kind == mixInData {
			c.rcvNxt += c.inLen
		}
		c.acked = c.sndNxt
	}
	b := f.frame
	binary.BigEndian.PutUint32(b[f.tcp+4:], seq)
	binary.BigEndian.PutUint32(b[f.tcp+8:], ack)
	if f.ts >= 0 {
		binary.BigEndian.PutUint32(b[f.ts:], tsval)
		binary.BigEndian.PutUint32(b[f.ts+4:], tsecr)
	}
	return f, t
}

// processNext processes the mix's next frame in e.
func (m *mix) processNext(e *Engine) {
	f, t := m.next()
	e.ProcessNano(f.link, f.frame, f.wire, t)
}

// The local ends of the mixes, and a LocalSet of them.
var (
	mixLocal4 = netip.MustParseAddr("192.0.2.1")
	mixLocal6 = netip.MustParseAddr("2001:db8::1")
)

func mixLocalSet() *LocalSet { return NewLocalSet([]netip.Addr{mixLocal4, mixLocal6}, nil) }

func mixAP(a netip.Addr, port uint16) netip.AddrPort { return netip.AddrPortFrom(a, port) }

// mixCase is a named traffic mix and the samples one cycle of it gives
// in steady state.
type mixCase struct {
	name          string
	build         func(tb testing.TB) *mix
	samplesPerCyc int
	// control: the mix is a variant or a baseline of another, not one
	// of the normal-traffic mixes that the floods are compared with.
	control bool
}

var mixCases = []mixCase{
	{
		// One bulk sender with timestamps; the peer ACKs every 2 segments,
		// echoing the TSval of the first.
		name: "ipv4-bulk",
		build: func(tb testing.TB) *mix {
			b := newMix(tb, 20*time.Microsecond)
			b.conn(mixAP(mixLocal4, 40000), netip.MustParseAddrPort("198.51.100.7:443"), mixEth, true, 1448, 0).
				add(mixOutData, mixOutData, mixInAck)
			return b.build()
		},
		samplesPerCyc: 1,
	},
	{
		// A client's request, the response that ACKs it, and the
		// client's pure ACK of the response.
		name: "ipv4-reqresp",
		build: func(tb testing.TB) *mix {
			b := newMix(tb, 50*time.Microsecond)
			b.conn(mixAP(mixLocal4, 40001), netip.MustParseAddrPort("198.51.100.8:6379"), mixEth, true, 120, 900).
				add(mixOutData, mixInData, mixOutAck)
			return b.build()
		},
		samplesPerCyc: 1,
	},
	{
		// Bulk without timestamps (seq/ack timing), Linux cooked capture.
		name: "seqack-no-ts",
		build: func(tb testing.TB) *mix {
			b := newMix(tb, 20*time.Microsecond)
			b.conn(mixAP(mixLocal4, 40002), netip.MustParseAddrPort("198.51.100.9:443"), mixSLL, false, 1448, 0).
				add(mixOutData, mixOutData, mixInAck)
			return b.build()
		},
		samplesPerCyc: 1,
	},
	{
		// IPv6 over VLAN-tagged Ethernet and SLL2: bulk with timestamps,
		// request/response without, and incoming data with pure ACKs.
		name: "ipv6-mixed",
		build: func(tb testing.TB) *mix {
			b := newMix(tb, 20*time.Microsecond)
			bulk := b.conn(mixAP(mixLocal6, 40003), netip.MustParseAddrPort("[2001:db8:ffff::7]:443"), mixVLAN, true, 1428, 0)
			rr := b.conn(mixAP(mixLocal6, 40004), netip.MustParseAddrPort("[2001:db8:ffff::8]:8080"), mixSLL2, false, 300, 1200)
			down := b.conn(mixAP(mixLocal6, 40005), netip.MustParseAddrPort("[2001:db8:ffff::9]:443"), mixRaw, true, 100, 1428)
			bulk.add(mixOutData)
			rr.add(mixOutData)
			bulk.add(mixOutData)
			down.add(mixInData)
			bulk.add(mixInAck)
			rr.add(mixInData)
			down.add(mixInData, mixOutAck)
			rr.add(mixOutAck)
			return b.build()
		},
		samplesPerCyc: 2,
	},
	{
		// 10,000 flows to 1,000 peers, served round robin: each flow
		// sends a segment that the next frame ACKs.
		name:          "many-flows",
		build:         buildManyFlows,
		samplesPerCyc: 10000,
	},
	{
		// many-flows with its flows in no order in memory. many-flows
		// creates its flows in the order its packets visit them, so they
		// lie in memory in that order, and the CPU's prefetcher, which
		// sees a stride, fetches each flow before its packet: only the
		// index slot misses the cache. A real table holds its flows where
		// earlier flows were freed, in no relation to the order in which
		// packets arrive; each packet of a new flow then misses on its
		// slot and, after it, on its flow.
		name: "many-flows-scattered",
		build: func(tb testing.TB) *mix {
			m := buildManyFlows(tb)
			m.scatter = true
			return m
		},
		samplesPerCyc: 10000,
		control:       true,
	},
	{
		// many-flows' 20,000 frames on one flow: the same cold frames,
		// so that many-flows against it is the cost of the flows alone
		// (the other mixes cycle through a few frames that stay cached,
		// where a capture's frames arrive in memory the cache has not
		// seen).
		name: "one-flow-cold-frames",
		build: func(tb testing.TB) *mix {
			b := newMix(tb, 20*time.Microsecond)
			c := b.conn(mixAP(mixLocal4, 40006), netip.MustParseAddrPort("198.51.100.10:443"), mixEth, true, 1448, 0)
			for range 10000 {
				c.add(mixOutData, mixInAck)
			}
			return b.build()
		},
		samplesPerCyc: 10000,
		control:       true,
	},
}

// mixEngine returns an Engine for a mix, warmed up over enough cycles
// that every flow, peer and sketch bin exists.
func mixEngine(tb testing.TB, m *mix) *Engine {
	tb.Helper()
	e := NewEngine(Config{Local: mixLocalSet()})
	if m.scatter {
		scatterFlows(e, min(len(m.frames), DefaultMaxFlows))
	}
	for range 3 * len(m.frames) {
		m.processNext(e)
	}
	if st := e.Stats(); st.DecodeErrors != 0 || st.Samples == 0 {
		tb.Fatalf("warm-up: %v", st)
	}
	return e
}

// scatterFlows leaves n flows on e's free list in random order, as a
// table that has churned holds them: the flows it creates next lie in
// memory in no relation to the order of their packets.
func scatterFlows(e *Engine, n int) {
	fs := make([]*flow, n)
	for i := range fs {
		k := makeFlowKey(mixLocal6, uint16(i), mixLocal6, 1)
		fs[i] = e.flows.get(&k, true, 0)
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	for _, f := range fs {
		e.flows.release(f)
	}
}

// buildManyFlows builds the many-flows mix.
func buildManyFlows(tb testing.TB) *mix { return buildFlows(tb, 10000, 10000) }

// buildFlows builds a mix of flows flows to flows/10 peers (at least
// one), served round robin for visits visits in all: each visit is a
// segment and the frame that ACKs it.
func buildFlows(tb testing.TB, flows, visits int) *mix {
	b := newMix(tb, 20*time.Microsecond)
	cs := make([]*mixConnBuilder, flows)
	for i := range cs {
		remote := netip.AddrFrom4([4]byte{10, 1, byte(i / 10 >> 8), byte(i / 10)})
		cs[i] = b.conn(mixAP(mixLocal4, uint16(20000+i)), mixAP(remote, 443), mixEth, true, 1448, 0)
	}
	for i := range visits {
		cs[i%flows].add(mixOutData, mixInAck)
	}
	return b.build()
}

// medianOf returns the median of v (the upper one of an even count),
// leaving v as it is.
func medianOf[T cmp.Ordered](v []T) T {
	v = slices.Clone(v)
	slices.Sort(v)
	return v[len(v)/2]
}

func BenchmarkDecode(b *testing.B) {
	data4 := buildIP(b, decSeg(false, decShapes[2].seg))
	data6 := buildIP(b, decSeg(true, decShapes[2].seg))
	for _, bc := range []struct {
		name  string
		link  LinkType
		frame []byte
	}{
		{"eth-ipv4-ts", LinkEthernet, ethFrame(data4)},
		{"vlan-ipv6", LinkEthernet, ethFrame(data6, 100)},
		{"sll2", LinkLinuxSLL2, sll2Frame(data4)},
		{"raw", LinkRaw, data4},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var p Packet
			if err := Decode(bc.link, bc.frame, len(bc.frame), &p); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := Decode(bc.link, bc.frame, len(bc.frame), &p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkProcess measures Engine.ProcessNano per packet (one op is one
// frame) on a warmed-up engine; the in-place rewrite of the frame's
// sequence numbers and timestamps is included and costs a few ns.
func BenchmarkProcess(b *testing.B) { benchProcess(b, 0) }

// processBatchSize is the frames of one batch in BenchmarkProcessBatch:
// live capture takes a ring block's frames in batches of at most 512
// (batchFrames), fewer when a quiet link's block ends at its timeout.
const processBatchSize = 256

// BenchmarkProcessBatch is BenchmarkProcess with the frames in batches
// (Engine.BeginBatch), as live capture processes each ring block and
// replay its files.
func BenchmarkProcessBatch(b *testing.B) { benchProcess(b, processBatchSize) }

// benchProcess runs every mix through a warmed-up engine, in batches of
// batch frames, or frame by frame if batch is 0.
func benchProcess(b *testing.B, batch int) {
	for _, mc := range mixCases {
		b.Run(mc.name, func(b *testing.B) {
			m := mc.build(b)
			e := mixEngine(b, m)
			before := e.Stats()
			b.ReportAllocs()
			n := 0
			if batch > 0 {
				e.BeginBatch()
			}
			for b.Loop() {
				m.processNext(e)
				if n++; n == batch {
					e.EndBatch()
					e.BeginBatch()
					n = 0
				}
			}
			e.EndBatch()
			after := e.Stats()
			b.ReportMetric(float64(after.Samples-before.Samples)/float64(b.N), "samples/op")
			if after.SamplesDiscarded != before.SamplesDiscarded || after.DecodeErrors != 0 || after.Packets-before.Packets != uint64(b.N) {
				b.Fatalf("stats: %v", after)
			}
		})
	}
}

// TestMixSamples checks that the mixes the benchmarks and TestNoAllocs use
// give the samples that real connections would: one per ACK that covers
// new data, with the RTT from the segment it times.
func TestMixSamples(t *testing.T) {
	for _, mc := range mixCases {
		t.Run(mc.name, func(t *testing.T) {
			m := mc.build(t)
			e := mixEngine(t, m)
			before := e.Stats()
			const cycles = 5
			for range cycles * len(m.frames) {
				m.processNext(e)
			}
			after := e.Stats()
			if got, want := after.Samples-before.Samples, uint64(cycles*mc.samplesPerCyc); got != want {
				t.Errorf("%d cycles gave %d samples, want %d (%v)", cycles, got, want, after)
			}
			if after.SamplesDiscarded != 0 || after.DecodeErrors != 0 || after.TCPPackets != after.Packets {
				t.Errorf("stats: %v", after)
			}
			if peers := e.Drain(nil); len(peers) == 0 {
				t.Errorf("no peers drained")
			} else if p := peers[0]; p.Min <= 0 || p.Max > time.Second {
				t.Errorf("implausible RTTs: %+v", p)
			}
		})
	}
}
