package capture

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// updateFuzzCorpus rewrites the committed seed corpus under
// testdata/fuzz from fuzzDecodeSeeds and fuzzEngineSeeds:
//
//	go test -run '^TestFuzzSeedCorpus$' ./capture/ -update-fuzz-corpus
var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// fuzzSeed is a named seed: its corpus file name says what it is, since
// the corpus file format has no comments.
type fuzzSeed struct {
	name string
	desc string
	link uint16 // FuzzDecode only
	data []byte
}

// fuzzDecodeSeeds returns FuzzDecode's seeds: valid frames of every link
// type and TCP option shape, and the hostile shapes of TestDecodeErrors.
func fuzzDecodeSeeds(tb testing.TB) []fuzzSeed {
	tb.Helper()
	var seeds []fuzzSeed
	add := func(name, desc string, link LinkType, frame []byte) {
		seeds = append(seeds, fuzzSeed{name, desc, uint16(link), frame})
	}
	syn4 := buildIP(tb, decSeg(false, decShapes[0].seg))
	syn6 := buildIP(tb, decSeg(true, decShapes[0].seg))
	data4 := buildIP(tb, decSeg(false, decShapes[2].seg))
	data6 := buildIP(tb, decSeg(true, decShapes[2].seg))
	sack4 := buildIP(tb, decSeg(false, decShapes[7].seg)) // 4 SACK blocks
	sack6 := buildIP(tb, decSeg(true, decShapes[6].seg))  // timestamps and 3 SACK blocks

	add("eth-ipv4-tcp-syn-opts", "Ethernet, IPv4, SYN with MSS, SACK-permitted, window scale, timestamps", LinkEthernet, ethFrame(syn4))
	add("eth-ipv4-tcp-ts", "Ethernet, IPv4, 100-byte data segment with timestamps", LinkEthernet, ethFrame(data4))
	add("eth-ipv4-tcp-sack4", "Ethernet, IPv4, ACK with 4 SACK blocks", LinkEthernet, ethFrame(sack4))
	add("eth-ipv6-tcp-syn-opts", "Ethernet, IPv6, SYN with every handshake option", LinkEthernet, ethFrame(syn6))
	add("eth-ipv6-tcp-ts-sack3", "Ethernet, IPv6, ACK with timestamps and 3 SACK blocks", LinkEthernet, ethFrame(sack6))
	add("vlan-ipv4-tcp-ts", "802.1Q-tagged Ethernet, IPv4 data with timestamps", LinkEthernet, ethFrame(data4, 100))
	add("vlan-ipv6-tcp-ts", "802.1Q-tagged Ethernet, IPv6 data with timestamps", LinkEthernet, ethFrame(data6, 100))
	add("qinq-ipv4-tcp-ts", "QinQ (0x88a8 outer, 0x8100 inner), IPv4 data", LinkEthernet, ethFrame(data4, 200, 100))
	add("qinq9100-ipv6-tcp-ts", "pre-standard QinQ (0x9100 outer, 0x8100 inner), IPv6 data", LinkEthernet,
		vlanEthFrame(data6, [2]uint16{etherTypeQinQ2, 300}, [2]uint16{etherTypeVLAN, 100}))
	add("vlan8-ipv4-tcp-ts", "8 stacked VLAN tags (the most accepted), IPv4 data", LinkEthernet, ethFrame(data4, 1, 2, 3, 4, 5, 6, 7, 8))
	add("sll-ipv4-tcp-ts", "Linux cooked v1, IPv4 data", LinkLinuxSLL, sllFrame(data4))
	add("sll-ipv6-tcp-syn-opts", "Linux cooked v1, IPv6 SYN", LinkLinuxSLL, sllFrame(syn6))
	add("sll2-ipv4-tcp-syn-opts", "Linux cooked v2, IPv4 SYN", LinkLinuxSLL2, sll2Frame(syn4))
	add("sll2-ipv6-tcp-ts", "Linux cooked v2, IPv6 data", LinkLinuxSLL2, sll2Frame(data6))
	add("raw-ipv4-tcp-ts", "LINKTYPE_RAW, IPv4 data", LinkRaw, data4)
	add("raw-ipv6-tcp-ts", "LINKTYPE_RAW, IPv6 data", LinkRaw, data6)
	add("linkipv4-tcp-sack4", "LINKTYPE_IPV4, ACK with 4 SACK blocks", LinkIPv4, sack4)
	add("linkipv6-tcp-syn-opts", "LINKTYPE_IPV6, SYN", LinkIPv6, syn6)
	add("null-le-ipv4-tcp-ts", "BSD loopback, little-endian AF_INET 2, IPv4 data", LinkNull, nullFrame(data4, 2, false))
	add("null-be-ipv4-tcp-ts", "BSD loopback, big-endian AF_INET 2, IPv4 data", LinkNull, nullFrame(data4, 2, true))
	for _, af := range []uint32{10, 24, 28, 30} {
		add(fmt.Sprintf("null-le-af%d-ipv6-tcp-ts", af), fmt.Sprintf("BSD loopback, little-endian AF_INET6 %d, IPv6 data", af), LinkNull, nullFrame(data6, af, false))
	}
	add("null-be-af30-ipv6-tcp-ts", "BSD loopback, big-endian AF_INET6 30 (Darwin), IPv6 data", LinkNull, nullFrame(data6, 30, true))
	add("loop-ipv4-tcp-ts", "OpenBSD loopback (network-order AF 2), IPv4 data", LinkLoop, nullFrame(data4, 2, true))
	add("loop-af24-ipv6-tcp-ts", "OpenBSD loopback (network-order AF 24), IPv6 data", LinkLoop, nullFrame(data6, 24, true))

	add("raw-ipv4-ip-options-tcp-ts", "IPv4 with 16 bytes of IP options (IHL 9), data", LinkRaw,
		withIPv4Options(data4, []byte{1, 1, 0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0}))
	add("raw-ipv4-first-fragment-tcp-ts", "IPv4 first fragment (MF set, offset 0): decodes", LinkRaw, patched(data4, 6, 0x20, 0))
	add("raw-ipv4-later-fragment", "IPv4 non-first fragment: ErrFragment", LinkRaw, patched(data4, 6, 0x00, 0xb9))
	add("eth-ipv4-big-tcp", "IPv4 BIG TCP: tot_len 0 (decodes only with a wire length)", LinkEthernet, ethFrame(patched(data4, 2, 0, 0)))
	add("raw-ipv6-jumbo", "IPv6 payload length 0 (jumbogram / BIG TCP)", LinkRaw, patched(data6, 4, 0, 0))
	add("raw-ipv6-hbh-tcp-ts", "IPv6 hop-by-hop header, data", LinkRaw, withIPv6Ext(data6, ipv6Opts(0, 1)))
	add("eth-ipv6-ext-chain-tcp-ts", "IPv6 hop-by-hop, destination options, routing, fragment (offset 0), AH, destination options", LinkEthernet,
		ethFrame(withIPv6Ext(data6, ipv6Opts(0, 1), ipv6Opts(60, 1), ipv6Routing(1), ipv6Frag(0, false), ipv6AH(), ipv6Opts(60, 4))))
	add("raw-ipv6-ext16-tcp-ts", "IPv6 with 16 destination options headers (the most followed)", LinkRaw,
		withIPv6Ext(data6, repeatExt(ipv6Opts(60, 1), maxExtHdrs)...))
	add("raw-ipv6-ext17", "IPv6 with 17 extension headers: ErrMalformed", LinkRaw,
		withIPv6Ext(data6, repeatExt(ipv6Opts(60, 1), maxExtHdrs+1)...))
	add("raw-ipv6-later-fragment", "IPv6 fragment header with offset 185: ErrFragment", LinkRaw, withIPv6Ext(data6, ipv6Frag(185, false)))
	add("raw-ipv6-hbh-overrun", "IPv6 hop-by-hop length past the payload length", LinkRaw, patched(withIPv6Ext(data6, ipv6Opts(0, 1)), 41, 255))
	add("vlan9-ipv4", "9 stacked VLAN tags: ErrMalformed", LinkEthernet, ethFrame(data4, 1, 2, 3, 4, 5, 6, 7, 8, 9))
	add("raw-ipv4-udp", "IPv4 UDP: ErrNotTCP", LinkRaw, withProto(data4, 17))
	add("eth-ipv6-icmpv6", "IPv6 ICMPv6: ErrNotTCP", LinkEthernet, ethFrame(withProto(data6, 58)))
	add("eth-arp", "ARP: ErrNotTCP", LinkEthernet, rawEthFrame(0x0806, make([]byte, 28)))
	add("raw-ipv4-ihl4", "IPv4 IHL 4: ErrMalformed", LinkRaw, patched(data4, 0, 0x44))
	add("raw-ipv4-total-below-ihl20", "IPv4 total length 39: ErrMalformed", LinkRaw, patched(data4, 2, 0, 39))
	add("raw-ipv4-tcp-doff4", "TCP data offset 4: ErrMalformed", LinkRaw, patched(data4, 20+12, 0x40))
	add("raw-ipv4-tcp-doff15-cut", "TCP data offset 15 past the captured bytes: ErrTruncated", LinkRaw, patched(data4, 20+12, 0xf0)[:60])
	add("raw-ipv4-tcp-ts-len9", "timestamp option of length 9: ErrMalformed", LinkRaw,
		buildIP(tb, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{8, 9, 0, 0, 0, 1, 0, 0, 0}})))
	add("raw-ipv4-tcp-opt-len0", "MSS option of length 0: ErrMalformed", LinkRaw,
		buildIP(tb, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{2, 0}})))
	add("raw-ipv4-tcp-opt-past-end", "unknown option running past the header: ErrMalformed", LinkRaw,
		buildIP(tb, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{99, 41, 0, 0}})))
	add("raw-ipv4-tcp-eol-nops", "NOPs, MSS, EOL, then garbage", LinkRaw,
		buildIP(tb, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{1, 1, 2, 4, 5, 0xb4, 0, 0xff, 0xff, 0xff, 0xff, 0xff}})))
	add("eth-ipv4-tcp-cut", "IPv4 data cut inside the TCP options: ErrTruncated", LinkEthernet, ethFrame(data4)[:14+20+25])
	add("unknown-link-147", "link type 147 (user-defined): ErrLinkType", 147, ethFrame(data4))
	return seeds
}

// fuzzEngineLocal is the LocalSet FuzzEngine's engine uses: the local
// ends of the seed streams.
var fuzzEngineLocal = []string{"192.0.2.1", "2001:db8::1", "10.0.0.0/24"}

// fuzzLinks maps a frame's link byte in a FuzzEngine stream to a link type;
// the last is unsupported.
var fuzzLinks = [...]LinkType{LinkEthernet, LinkLinuxSLL, LinkLinuxSLL2, LinkRaw, LinkIPv4, LinkIPv6, LinkNull, LinkLoop, 147}

// FuzzEngine stream format. The first byte configures the engine:
//
//	bits 0-3: MaxFlows (0: the default)
//	bits 4-6: Methods (0: all)
//	bit 7:    MaxRTT 1 ms instead of the default
//
// Then come frames, each
//
//	link byte:  bits 0-3 index fuzzLinks (mod its length); bit 5: the
//	            frame starts a batch (Engine.BeginBatch) or, inside one,
//	            ends it; bit 6: wire length = captured length + 65536 (a
//	            cut BIG TCP packet); bit 7: wire length = captured length;
//	            else wire length 0
//	int16 BE:   time since the previous frame, in units of 100 µs (may be
//	            negative: capture time going backwards)
//	uint16 BE:  frame length (cut to what is left)
//	frame bytes
const fuzzTimeUnit = 100 * time.Microsecond

// fuzzFrame is one frame of a FuzzEngine stream.
type fuzzFrame struct {
	link    LinkType
	batch   bool // starts a batch, or ends the one it is in
	wireLen int
	dt      time.Duration
	data    []byte
}

// fuzzEngineConfig returns the Config that a stream's first byte selects,
// Local and OnSample aside.
func fuzzEngineConfig(c byte) Config {
	cfg := Config{
		MaxFlows: int(c & 0x0f),
		Methods:  Methods(c>>4) & AllMethods,
		IdleTTL:  10 * time.Second,
		ExpTTL:   2 * time.Second,
	}
	if c&0x80 != 0 {
		cfg.MaxRTT = time.Millisecond
	}
	return cfg
}

// parseFuzzStream splits a FuzzEngine stream into frames.
func parseFuzzStream(b []byte) []fuzzFrame {
	var out []fuzzFrame
	for len(b) >= 5 {
		lb := b[0]
		dt := time.Duration(int16(binary.BigEndian.Uint16(b[1:3]))) * fuzzTimeUnit
		n := int(binary.BigEndian.Uint16(b[3:5]))
		b = b[5:]
		n = min(n, len(b))
		f := fuzzFrame{link: fuzzLinks[int(lb&0x0f)%len(fuzzLinks)], batch: lb&0x20 != 0, dt: dt, data: b[:n:n]}
		switch {
		case lb&0x80 != 0:
			f.wireLen = n
		case lb&0x40 != 0:
			f.wireLen = n + 65536
		}
		out = append(out, f)
		b = b[n:]
	}
	return out
}

// encodeFuzzStream is the inverse of parseFuzzStream, with config byte c.
func encodeFuzzStream(c byte, frames []fuzzFrame) []byte {
	out := []byte{c}
	for _, f := range frames {
		idx := slices.Index(fuzzLinks[:], f.link)
		if idx < 0 {
			panic(fmt.Sprintf("link %v not in fuzzLinks", f.link))
		}
		lb := byte(idx)
		if f.batch {
			lb |= 0x20
		}
		switch f.wireLen {
		case 0:
		case len(f.data):
			lb |= 0x80
		case len(f.data) + 65536:
			lb |= 0x40
		default:
			panic(fmt.Sprintf("wire length %d not encodable", f.wireLen))
		}
		out = append(out, lb)
		out = binary.BigEndian.AppendUint16(out, uint16(int16(f.dt/fuzzTimeUnit)))
		out = binary.BigEndian.AppendUint16(out, uint16(len(f.data)))
		out = append(out, f.data...)
	}
	return out
}

// streamBuilder writes a TCP conversation as FuzzEngine stream frames.
type streamBuilder struct {
	tb            testing.TB
	link          LinkType
	vlans         []uint16
	local, remote netip.AddrPort
	frames        []fuzzFrame
	dt            time.Duration // before the next frame
}

func newStream(tb testing.TB, link LinkType, local, remote string, vlans ...uint16) *streamBuilder {
	return &streamBuilder{tb: tb, link: link, vlans: vlans, local: netip.MustParseAddrPort(local), remote: netip.MustParseAddrPort(remote)}
}

// wait puts d between the previous frame and the next.
func (b *streamBuilder) wait(d time.Duration) *streamBuilder { b.dt += d; return b }

func (b *streamBuilder) frame(s tseg) []byte {
	ip := buildIP(b.tb, s)
	switch b.link {
	case LinkEthernet:
		return ethFrame(ip, b.vlans...)
	case LinkLinuxSLL:
		return sllFrame(ip)
	case LinkLinuxSLL2:
		return sll2Frame(ip)
	case LinkNull:
		af := uint32(2)
		if ip[0]>>4 == 6 {
			af = 30
		}
		return nullFrame(ip, af, false)
	case LinkLoop:
		af := uint32(2)
		if ip[0]>>4 == 6 {
			af = 24
		}
		return nullFrame(ip, af, true)
	}
	return ip
}

func (b *streamBuilder) add(s tseg) *streamBuilder {
	b.frames = append(b.frames, fuzzFrame{link: b.link, dt: b.dt, data: b.frame(s)})
	b.dt = 0
	return b
}

// out adds s sent by the local end; in adds s sent by the remote one.
func (b *streamBuilder) out(s tseg) *streamBuilder {
	s.src, s.dst = b.local, b.remote
	return b.add(s)
}

func (b *streamBuilder) in(s tseg) *streamBuilder {
	s.src, s.dst = b.remote, b.local
	return b.add(s)
}

// raw adds a frame as it is.
func (b *streamBuilder) raw(link LinkType, wireLen int, data []byte) *streamBuilder {
	b.frames = append(b.frames, fuzzFrame{link: link, wireLen: wireLen, dt: b.dt, data: data})
	b.dt = 0
	return b
}

// fuzzEngineSeeds returns FuzzEngine's seeds: TCP conversations that give
// samples of every method, and the awkward cases around them.
func fuzzEngineSeeds(tb testing.TB) []fuzzSeed {
	tb.Helper()
	var seeds []fuzzSeed
	add := func(name, desc string, c byte, frames []fuzzFrame) {
		seeds = append(seeds, fuzzSeed{name: name, desc: desc, data: encodeFuzzStream(c, frames)})
	}
	const ms = time.Millisecond
	const ack, psh = FlagACK, FlagPSH | FlagACK

	// An active open with timestamps, bulk data ACKed every 2 segments,
	// and a FIN exchange.
	s := newStream(tb, LinkEthernet, "192.0.2.1:40000", "198.51.100.7:443")
	s.out(tseg{seq: 100, flags: FlagSYN, mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 1})
	s.wait(20 * ms).in(tseg{seq: 900, ack: 101, flags: FlagSYN | ack, mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 50, tsecr: 1})
	s.wait(ms).out(tseg{seq: 101, ack: 901, flags: ack, ts: true, tsval: 2, tsecr: 50})
	seq, tsv := uint32(101), uint32(3)
	for range 3 {
		s.out(tseg{seq: seq, ack: 901, flags: psh, payload: 100, ts: true, tsval: tsv, tsecr: 50})
		s.wait(ms).out(tseg{seq: seq + 100, ack: 901, flags: psh, payload: 100, ts: true, tsval: tsv + 1, tsecr: 50})
		s.wait(20 * ms).in(tseg{seq: 901, ack: seq + 200, flags: ack, ts: true, tsval: 51, tsecr: tsv})
		seq, tsv = seq+200, tsv+2
	}
	s.out(tseg{seq: seq, ack: 901, flags: FlagFIN | ack, ts: true, tsval: tsv, tsecr: 51})
	s.wait(20 * ms).in(tseg{seq: 901, ack: seq + 1, flags: FlagFIN | ack, ts: true, tsval: 52, tsecr: tsv})
	s.out(tseg{seq: seq + 1, ack: 902, flags: ack, ts: true, tsval: tsv + 1, tsecr: 52})
	add("eth-ipv4-handshake-ts-bulk-fin", "Ethernet IPv4: active open, bulk data with timestamps ACKed every 2 segments, FIN exchange", 0, s.frames)
	batched := slices.Clone(s.frames)
	batched[1].batch, batched[len(batched)-3].batch = true, true
	add("eth-ipv4-handshake-ts-bulk-fin-batched", "the same, from the SYN-ACK to the FIN in one batch of the engine", 0, batched)

	// A passive open without timestamps, then data timed by seq/ack.
	s = newStream(tb, LinkEthernet, "[2001:db8::1]:443", "[2001:db8:ffff::7]:50000", 10)
	s.in(tseg{seq: 7000, flags: FlagSYN, mss: 1440})
	s.wait(ms).out(tseg{seq: 3000, ack: 7001, flags: FlagSYN | ack, mss: 1440})
	s.wait(30 * ms).in(tseg{seq: 7001, ack: 3001, flags: ack})
	s.in(tseg{seq: 7001, ack: 3001, flags: psh, payload: 50})
	s.wait(ms).out(tseg{seq: 3001, ack: 7051, flags: psh, payload: 1000})
	s.out(tseg{seq: 4001, ack: 7051, flags: psh, payload: 1000})
	s.wait(30 * ms).in(tseg{seq: 7051, ack: 4001, flags: ack})
	s.wait(ms).in(tseg{seq: 7051, ack: 5001, flags: ack})
	add("vlan-ipv6-passive-open-seqack", "802.1Q Ethernet IPv6: passive open, request, response timed by seq/ack", 0, s.frames)

	// A retransmission: the ACK that covers it gives no seq/ack sample
	// (Karn); the segment after it, never retransmitted, and the next data
	// are timed.
	s = newStream(tb, LinkLinuxSLL2, "192.0.2.1:40001", "198.51.100.8:80")
	s.out(tseg{seq: 1, ack: 1, flags: psh, payload: 500})
	s.out(tseg{seq: 501, ack: 1, flags: psh, payload: 500})
	s.wait(200 * ms).out(tseg{seq: 1, ack: 1, flags: psh, payload: 500})
	s.wait(30 * ms).in(tseg{seq: 1, ack: 501, flags: ack, sack: []SACKBlock{{1, 501}}})
	s.in(tseg{seq: 1, ack: 1001, flags: ack})
	s.out(tseg{seq: 1001, ack: 1, flags: psh, payload: 500})
	s.wait(30 * ms).in(tseg{seq: 1, ack: 1501, flags: ack})
	add("sll2-ipv4-retransmit-karn", "Linux cooked v2 IPv4: a retransmission, the ACK covering it (no sample, Karn), later ACKs (samples)", 0, s.frames)

	// Capture time going backwards: the sample is negative and discarded.
	s = newStream(tb, LinkRaw, "192.0.2.1:40002", "203.0.113.9:22")
	s.out(tseg{seq: 10, ack: 10, flags: psh, payload: 48, ts: true, tsval: 100, tsecr: 7})
	s.wait(-5 * ms).in(tseg{seq: 10, ack: 58, flags: ack, ts: true, tsval: 8, tsecr: 100})
	s.wait(10 * ms).out(tseg{seq: 58, ack: 10, flags: psh, payload: 48, ts: true, tsval: 101, tsecr: 8})
	s.wait(3 * ms).in(tseg{seq: 10, ack: 106, flags: ack, ts: true, tsval: 9, tsecr: 101})
	add("raw-ipv4-time-backwards", "raw IPv4: an ACK captured before the data it echoes (discarded), then a good sample", 0, s.frames)

	// Two flows with MaxFlows 1: each new one evicts the other.
	a := newStream(tb, LinkEthernet, "192.0.2.1:40003", "198.51.100.7:443")
	a.out(tseg{seq: 1, flags: FlagSYN, ts: true, tsval: 1})
	b := newStream(tb, LinkEthernet, "192.0.2.1:40004", "198.51.100.7:443")
	b.out(tseg{seq: 1, flags: FlagSYN, ts: true, tsval: 1})
	a.wait(ms).in(tseg{seq: 5, ack: 2, flags: FlagSYN | ack, ts: true, tsval: 9, tsecr: 1})
	b.wait(ms).in(tseg{seq: 5, ack: 2, flags: FlagSYN | ack, ts: true, tsval: 9, tsecr: 1})
	frames := []fuzzFrame{a.frames[0], b.frames[0], a.frames[1], b.frames[1]}
	add("eth-ipv4-evict-maxflows1", "Ethernet IPv4: two handshakes interleaved with MaxFlows 1", 0x01, frames)

	// Flows that go idle and expire, then a new one on the same 4-tuple.
	s = newStream(tb, LinkNull, "[2001:db8::1]:40005", "[2001:db8:ffff::9]:443")
	s.out(tseg{seq: 1, flags: FlagSYN, ts: true, tsval: 1})
	s.wait(10 * ms).in(tseg{seq: 5, ack: 2, flags: FlagSYN | ack, ts: true, tsval: 9, tsecr: 1})
	for range 5 {
		s.wait(math.MaxInt16*fuzzTimeUnit).raw(LinkRaw, 0, withProto(buildIP(tb, decSeg(false, tseg{})), 17)) // UDP: time passes
	}
	s.out(tseg{seq: 1000, flags: FlagSYN, ts: true, tsval: 1000})
	s.wait(10 * ms).in(tseg{seq: 50, ack: 1001, flags: FlagSYN | ack, ts: true, tsval: 90, tsecr: 1000})
	s.out(tseg{seq: 1001, ack: 51, flags: FlagRST | ack})
	add("null-ipv6-idle-expire-rst", "BSD loopback IPv6: a handshake, 16 s of UDP (flows expire), a new handshake, RST", 0, s.frames)

	// Decode errors and untimed packets mixed with a timed exchange.
	s = newStream(tb, LinkLinuxSLL, "192.0.2.1:40006", "198.51.100.7:443")
	data := buildIP(tb, decSeg(false, decShapes[2].seg))
	s.out(tseg{seq: 1, ack: 1, flags: psh, payload: 10, ts: true, tsval: 5, tsecr: 5})
	s.raw(147, 0, ethFrame(data))
	s.raw(LinkEthernet, 0, ethFrame(data)[:30])
	s.raw(LinkRaw, 0, patched(data, 6, 0, 0xb9))
	s.raw(LinkEthernet, 0, ethFrame(data, 1, 2, 3, 4, 5, 6, 7, 8, 9))
	s.raw(LinkEthernet, len(ethFrame(data)), ethFrame(patched(data, 2, 0, 0)))
	s.raw(LinkEthernet, 65536+100, ethFrame(patched(data, 2, 0, 0))[:100])
	s.wait(ms).in(tseg{seq: 1, ack: 11, flags: ack, ts: true, tsval: 6, tsecr: 5})
	add("sll-ipv4-mixed-errors", "Linux cooked v1 IPv4 exchange mixed with an unknown link type, a cut frame, a fragment, 9 VLAN tags, BIG TCP", 0, s.frames)

	// Every method disabled but seq/ack, with timestamps present, and a
	// 1 ms MaxRTT that discards a slow sample.
	s = newStream(tb, LinkLoop, "10.0.0.5:40007", "10.1.0.9:443")
	s.out(tseg{seq: 1, flags: FlagSYN, ts: true, tsval: 1})
	s.wait(5 * ms).in(tseg{seq: 5, ack: 2, flags: FlagSYN | ack, ts: true, tsval: 9, tsecr: 1})
	s.out(tseg{seq: 2, ack: 6, flags: psh, payload: 10, ts: true, tsval: 2, tsecr: 9})
	s.wait(500 * time.Microsecond).in(tseg{seq: 6, ack: 12, flags: ack, ts: true, tsval: 10, tsecr: 2})
	add("loop-ipv4-seqack-only-maxrtt1ms", "OpenBSD loopback IPv4, prefix-local, Methods seqack only, MaxRTT 1 ms", 0x80|byte(Methods(0).With(MethodSeqAck))<<4, s.frames)
	return seeds
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzDecodeSeeds(f) {
		f.Add(s.link, s.data)
	}
	f.Fuzz(func(t *testing.T, link uint16, data []byte) {
		orig := bytes.Clone(data)
		var first Packet
		firstOK := false
		for _, wireLen := range []int{0, len(data), len(data) + 65536} {
			var p Packet
			err := Decode(LinkType(link), data, wireLen, &p)
			if !bytes.Equal(data, orig) {
				t.Fatalf("Decode changed its input")
			}
			switch err {
			case nil, ErrNotTCP, ErrFragment, ErrTruncated, ErrMalformed, ErrLinkType:
			default:
				t.Fatalf("Decode: unexpected error %v", err)
			}
			if (err == ErrLinkType) != !LinkType(link).Supported() {
				t.Fatalf("Decode of link type %v: got error %v", LinkType(link), err)
			}
			if err != nil {
				continue
			}
			checkFuzzPacket(t, LinkType(link), wireLen, &p)
			checkWords(t, &p)
			if firstOK {
				// A length in the IP header always wins over the wire length.
				if p != first {
					t.Fatalf("wireLen %d decodes otherwise than wireLen 0 (-want +got):\n%s", wireLen, cmp.Diff(first, p, pktCmp))
				}
			}
			if wireLen != 0 {
				continue
			}
			first, firstOK = p, true

			// Trailing bytes (Ethernet padding) change nothing.
			var q Packet
			if err := Decode(LinkType(link), append(bytes.Clone(data), make([]byte, 17)...), 0, &q); err != nil {
				t.Fatalf("Decode with trailing bytes: %v", err)
			}
			if q != p {
				t.Fatalf("Decode with trailing bytes mismatch (-want +got):\n%s", cmp.Diff(p, q, pktCmp))
			}
			// The same IP packet decodes alike in another framing.
			if lt := LinkType(link); lt == LinkRaw || lt == LinkIPv4 || lt == LinkIPv6 {
				for _, fr := range framings(data) {
					var r Packet
					if err := Decode(fr.link, fr.frame, 0, &r); err != nil {
						t.Fatalf("Decode as %s: %v", fr.name, err)
					}
					r.Dev = p.Dev // cooked framings tell the device, raw IP does not
					if r != p {
						t.Fatalf("Decode as %s mismatch (-want +got):\n%s", fr.name, cmp.Diff(p, r, pktCmp))
					}
				}
			}
		}
	})
}

// checkFuzzPacket checks what holds for every Packet that Decode returns
// without error.
func checkFuzzPacket(t *testing.T, link LinkType, wireLen int, p *Packet) {
	t.Helper()
	if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4() != p.Dst.Is4() || p.Src.Zone() != "" || p.Dst.Zone() != "" {
		t.Fatalf("bad addresses %v -> %v", p.Src, p.Dst)
	}
	if (link == LinkIPv4 && !p.Src.Is4()) || (link == LinkIPv6 && !p.Src.Is6()) {
		t.Fatalf("link type %v gave addresses %v -> %v", link, p.Src, p.Dst)
	}
	if p.NumSACK > MaxSACKBlocks {
		t.Fatalf("NumSACK %d", p.NumSACK)
	}
	if (!p.HasTS && (p.TSval != 0 || p.TSecr != 0)) || (!p.HasMSS && p.MSS != 0) || (!p.HasWScale && p.WScale != 0) {
		t.Fatalf("option values without their option: %+v", p)
	}
	// The IP header's 16-bit length bounds the payload, unless it was 0
	// and the wire length was used.
	if limit := max(65535-20, wireLen); int64(p.PayloadLen) > int64(limit) {
		t.Fatalf("PayloadLen %d with wire length %d", p.PayloadLen, wireLen)
	}
}

func FuzzEngine(f *testing.F) {
	for _, s := range fuzzEngineSeeds(f) {
		f.Add(s.data)
	}
	local, err := ParseLocalSet(fuzzEngineLocal...)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		if len(stream) == 0 {
			return
		}
		cfg := fuzzEngineConfig(stream[0])
		frames := parseFuzzStream(stream[1:])
		var samples []Sample
		cfg.Local = local
		cfg.OnSample = func(s Sample) { samples = append(samples, s) }
		e := NewEngine(cfg)
		methods, maxFlows, maxRTT := cfg.Methods, cfg.MaxFlows, cfg.MaxRTT
		if methods == 0 {
			methods = AllMethods
		}
		if maxFlows == 0 {
			maxFlows = DefaultMaxFlows
		}
		if maxRTT == 0 {
			maxRTT = SanityMaxRTT
		}

		now := t0.UnixNano()
		last := now
		var tcp, decodeErrs uint64
		var drained []PeerStats
		inBatch := false
		for i, fr := range frames {
			began := fr.batch && !inBatch
			if began {
				e.BeginBatch()
				inBatch = true
			}
			now += int64(fr.dt)
			last = max(last, now)
			var p Packet
			switch err := Decode(fr.link, fr.data, fr.wireLen, &p); {
			case err == nil:
				tcp++
			case IsDecodeError(err):
				decodeErrs++
			}
			nsamples := len(samples)
			e.ProcessNano(fr.link, fr.data, fr.wireLen, now)
			if fr.batch && !began {
				e.EndBatch()
				inBatch = false
			}
			for _, s := range samples[nsamples:] {
				if s.RTT < 0 || s.RTT > maxRTT || !methods.Has(s.Method) || !s.Time.Equal(time.Unix(0, now)) ||
					!local.Contains(s.Local.Addr()) || s.Local.Addr().Is4() != s.Remote.Addr().Is4() {
					t.Fatalf("frame %d: bad sample %+v", i, s)
				}
			}
			if len(samples)-nsamples > 2 {
				t.Fatalf("frame %d gave %d samples, want at most 2", i, len(samples)-nsamples)
			}
			if inBatch {
				continue // its counts reach Stats when it ends; Drain would wait for it
			}
			st := e.Stats()
			checkFuzzStats(t, st, uint64(i+1), tcp, decodeErrs, uint64(len(samples)), maxFlows)
			if i%7 == 6 {
				drained = checkDrain(drained, e.Drain(nil))
			}
		}
		if inBatch {
			e.EndBatch()
			checkFuzzStats(t, e.Stats(), uint64(len(frames)), tcp, decodeErrs, uint64(len(samples)), maxFlows)
		}
		drained = checkDrain(drained, e.Drain(nil))
		var count uint64
		for _, ps := range drained {
			count += ps.Count
			var byMethod uint64
			for _, n := range ps.ByMethod {
				byMethod += n
			}
			var buckets uint64
			for _, b := range ps.Buckets {
				buckets += b.Count
				if b.Lower > b.Upper || b.Lower < ps.Min || b.Upper > ps.Max {
					t.Fatalf("bad bucket %+v of peer stats %+v", b, ps)
				}
			}
			if ps.Count == 0 {
				// Counts only: a failure, a reset, a zero window.
				if ps.TCP.IsZero() || byMethod != 0 || buckets != 0 {
					t.Fatalf("peer stats without samples or counts %+v", ps)
				}
				continue
			}
			if byMethod != ps.Count || buckets != ps.Count ||
				ps.Min < 0 || ps.Min > ps.Last || ps.Last > ps.Max || ps.Max > maxRTT ||
				ps.P50 < ps.Min || ps.P50 > ps.P95 || ps.P95 > ps.P99 || ps.P99 > ps.Max ||
				ps.SRTT < 0 || ps.SRTT > maxRTT || ps.RTTVar < 0 || ps.RTTVar > maxRTT {
				t.Fatalf("bad peer stats %+v", ps)
			}
		}
		if count != uint64(len(samples)) {
			t.Fatalf("drains counted %d samples, OnSample saw %d", count, len(samples))
		}
		if len(e.Drain(nil)) != 0 {
			t.Fatalf("a second drain returned peers")
		}

		// Far enough in the future, everything expires. Expiring a flow
		// whose SYN no SYN-ACK answered counts the timeout: that count
		// is drained, and its peer expires on the next pass.
		far := time.Unix(0, last).Add(2 * (cfg.IdleTTL + cfg.ExpTTL))
		e.Expire(far)
		for _, ps := range e.Drain(nil) {
			if ps.Count != 0 || ps.TCP != (TCPCounts{Timeouts: ps.TCP.Timeouts}) || ps.TCP.Timeouts == 0 {
				t.Fatalf("expiry drained more than SYN timeouts: %+v", ps)
			}
		}
		e.Expire(far.Add(2 * (cfg.IdleTTL + cfg.ExpTTL)))
		if st := e.Stats(); st.Flows != 0 || st.Peers != 0 {
			t.Fatalf("after expiring everything: %+v", st)
		}
	})
}

// checkDrain appends the stats of a drain to all, with their buckets
// copied: the next drain reuses them.
func checkDrain(all, d []PeerStats) []PeerStats {
	for _, ps := range d {
		ps.Buckets = slices.Clone(ps.Buckets)
		all = append(all, ps)
	}
	return all
}

// checkFuzzStats checks an Engine's counters after packets frames, of which
// tcp decoded and decodeErrs were decode errors, gave samples samples.
func checkFuzzStats(t *testing.T, st Stats, packets, tcp, decodeErrs, samples uint64, maxFlows int) {
	t.Helper()
	switch {
	case st.Packets != packets:
		t.Fatalf("Packets %d, want %d", st.Packets, packets)
	case st.TCPPackets != tcp:
		t.Fatalf("TCPPackets %d, want %d", st.TCPPackets, tcp)
	case st.DecodeErrors != decodeErrs:
		t.Fatalf("DecodeErrors %d, want %d", st.DecodeErrors, decodeErrs)
	case st.TCPPackets+st.DecodeErrors > st.Packets:
		t.Fatalf("TCPPackets %d + DecodeErrors %d > Packets %d", st.TCPPackets, st.DecodeErrors, st.Packets)
	case st.Samples != samples:
		t.Fatalf("Samples %d, OnSample saw %d", st.Samples, samples)
	case st.Samples+st.SamplesDiscarded > 2*st.TCPPackets:
		t.Fatalf("Samples %d + SamplesDiscarded %d > 2 × TCPPackets %d", st.Samples, st.SamplesDiscarded, st.TCPPackets)
	case st.Flows != st.FlowsCreated-st.FlowsExpired-st.FlowsEvicted:
		t.Fatalf("Flows %d != created %d - expired %d - evicted %d", st.Flows, st.FlowsCreated, st.FlowsExpired, st.FlowsEvicted)
	case st.Flows > uint64(maxFlows):
		t.Fatalf("Flows %d > MaxFlows %d", st.Flows, maxFlows)
	case st.FlowsCreated > st.TCPPackets:
		t.Fatalf("FlowsCreated %d > TCPPackets %d", st.FlowsCreated, st.TCPPackets)
	case st.Peers > st.FlowsCreated:
		// A peer exists for a sample or a TCP count of one of its flows.
		t.Fatalf("Peers %d > FlowsCreated %d", st.Peers, st.FlowsCreated)
	case st.Copies > st.TCPPackets:
		t.Fatalf("Copies %d > TCPPackets %d", st.Copies, st.TCPPackets)
	}
}

// TestFuzzSeedCorpus checks that the committed seed corpus holds every
// seed of fuzzDecodeSeeds and fuzzEngineSeeds, and that each decode seed
// decodes as its name says; with -update-fuzz-corpus it rewrites the
// corpus and its README.
func TestFuzzSeedCorpus(t *testing.T) {
	targets := []struct {
		name    string
		seeds   []fuzzSeed
		marshal func(fuzzSeed) []byte
	}{
		{"FuzzDecode", fuzzDecodeSeeds(t), func(s fuzzSeed) []byte { return marshalSeed(s.link, s.data) }},
		{"FuzzEngine", fuzzEngineSeeds(t), func(s fuzzSeed) []byte { return marshalSeed(s.data) }},
		{"FuzzOptions", fuzzOptionsSeeds(t), func(s fuzzSeed) []byte { return marshalSeed(s.data) }},
	}
	var readme strings.Builder
	readme.WriteString(corpusReadmeHead)
	for _, tg := range targets {
		dir := filepath.Join("testdata", "fuzz", tg.name)
		fmt.Fprintf(&readme, "\n## %s\n\n", tg.name)
		for _, s := range tg.seeds {
			fmt.Fprintf(&readme, "- `%s`: %s\n", s.name, s.desc)
			want := tg.marshal(s)
			path := filepath.Join(dir, s.name)
			if *updateFuzzCorpus {
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, want, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Errorf("seed %s: %v (run with -update-fuzz-corpus)", s.name, err)
				continue
			}
			if !bytes.Equal(got, want) {
				t.Errorf("seed %s: committed file differs from the generated seed (run with -update-fuzz-corpus)", path)
			}
		}
	}
	readme.WriteString(corpusReadmeTail)
	path := filepath.Join("testdata", "fuzz", "README.md")
	if *updateFuzzCorpus {
		if err := os.WriteFile(path, []byte(readme.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(readme.String(), string(got)); diff != "" {
		t.Errorf("%s is stale (run with -update-fuzz-corpus) (-want +got):\n%s", path, diff)
	}

	// The names of the decode seeds say what they decode to.
	for _, s := range fuzzDecodeSeeds(t) {
		var p Packet
		err := Decode(LinkType(s.link), s.data, 0, &p)
		if wantOK := strings.Contains(s.name, "-tcp-") && !strings.Contains(s.desc, ": Err"); wantOK != (err == nil) {
			t.Errorf("seed %s: Decode: %v", s.name, err)
		}
	}
}

// marshalSeed encodes a seed in the `go test fuzz v1` corpus file format.
func marshalSeed(vals ...any) []byte {
	var b bytes.Buffer
	b.WriteString("go test fuzz v1\n")
	for _, v := range vals {
		switch v := v.(type) {
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		case []byte:
			fmt.Fprintf(&b, "[]byte(%q)\n", v)
		default:
			panic(fmt.Sprintf("marshalSeed: unsupported type %T", v))
		}
	}
	return b.Bytes()
}

const corpusReadmeHead = `# Fuzz seed corpus

The files under FuzzDecode/, FuzzEngine/ and FuzzOptions/ are seeds in the
` + "`go test fuzz v1`" + ` format, which allows no comments: each file is named for
what it holds, and this list says more. They are generated from the
frames that the decoder tests craft (fuzzDecodeSeeds and fuzzEngineSeeds
in capture/fuzz_test.go, fuzzOptionsSeeds in capture/fuzz_options_test.go),
which also pass them to f.Add; TestFuzzSeedCorpus keeps the files, this
list and the code in step. After changing the seeds, run

    go test -run '^TestFuzzSeedCorpus$' ./capture/ -update-fuzz-corpus

FuzzDecode takes a link type and a frame. FuzzEngine takes one stream: a
config byte, then frames, each a link byte, a signed time delta in 100 µs
units and a length (see the comment above fuzzTimeUnit). FuzzOptions takes
the bytes of a TCP option list, between the fixed header and the data
offset. To run every target for a while, see scripts/fuzz.sh and
docs/hardening.md.
`

const corpusReadmeTail = `
When fuzzing finds a failing input, ` + "`go test`" + ` saves it here under a hex
hash; add it to the seeds in fuzz_test.go (fuzz_options_test.go for
FuzzOptions) under a name that says what it is, so that it stays a named
regression test.
`
