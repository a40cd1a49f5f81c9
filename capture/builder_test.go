package capture

import (
	"cmp"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// tseg describes a TCP segment to build in tests. Zero fields are left out
// of the header (no options unless set).
type tseg struct {
	src, dst        netip.AddrPort
	seq, ack        uint32
	flags           uint8
	win             uint16 // 0 means 65535; see zeroWin
	zeroWin         bool   // advertise a zero window (win 0)
	payload         int    // payload bytes (zeros)
	ts              bool
	tsval, tsecr    uint32
	mss             uint16
	hasWS           bool
	ws              uint8
	sackPerm        bool
	sack            []SACKBlock
	rawOpts         []byte // appended after the options above, before padding
	ipv6ExtHopByHop bool   // insert an IPv6 hop-by-hop header
}

// buildIP returns the IPv4 or IPv6 packet for s.
func buildIP(tb testing.TB, s tseg) []byte {
	tb.Helper()
	opts := tcpOptions(s)
	doff := 20 + len(opts)
	if doff > 60 {
		tb.Fatalf("tcp options too long: %d", len(opts))
	}
	tcp := make([]byte, doff+s.payload)
	binary.BigEndian.PutUint16(tcp[0:], s.src.Port())
	binary.BigEndian.PutUint16(tcp[2:], s.dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], s.seq)
	binary.BigEndian.PutUint32(tcp[8:], s.ack)
	tcp[12] = byte(doff/4) << 4
	tcp[13] = s.flags
	win := s.win
	if win == 0 && !s.zeroWin {
		win = 65535
	}
	binary.BigEndian.PutUint16(tcp[14:], win)
	copy(tcp[20:], opts)
	if s.src.Addr().Is4() {
		ip := make([]byte, 20, 20+len(tcp))
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[6] = 0x40 // DF
		ip[8] = 64
		ip[9] = 6
		a, b := s.src.Addr().As4(), s.dst.Addr().As4()
		copy(ip[12:], a[:])
		copy(ip[16:], b[:])
		return append(ip, tcp...)
	}
	ip := make([]byte, 40, 48+len(tcp))
	ip[0] = 0x60
	next := byte(6)
	var ext []byte
	if s.ipv6ExtHopByHop {
		ext = []byte{6, 0, 1, 4, 0, 0, 0, 0} // next=TCP, len 0 (8 bytes), PadN
		next = 0
	}
	binary.BigEndian.PutUint16(ip[4:], uint16(len(ext)+len(tcp)))
	ip[6] = next
	ip[7] = 64
	a, b := s.src.Addr().As16(), s.dst.Addr().As16()
	copy(ip[8:], a[:])
	copy(ip[24:], b[:])
	ip = append(ip, ext...)
	return append(ip, tcp...)
}

func tcpOptions(s tseg) []byte {
	var o []byte
	if s.mss != 0 {
		o = append(o, 2, 4, byte(s.mss>>8), byte(s.mss))
	}
	if s.sackPerm {
		o = append(o, 4, 2)
	}
	if s.hasWS {
		o = append(o, 1, 3, 3, s.ws)
	}
	if s.ts {
		o = append(o, 1, 1, 8, 10)
		o = binary.BigEndian.AppendUint32(o, s.tsval)
		o = binary.BigEndian.AppendUint32(o, s.tsecr)
	}
	if len(s.sack) > 0 {
		o = append(o, 1, 1, 5, byte(2+8*len(s.sack)))
		for _, b := range s.sack {
			o = binary.BigEndian.AppendUint32(o, b.Left)
			o = binary.BigEndian.AppendUint32(o, b.Right)
		}
	}
	o = append(o, s.rawOpts...)
	for len(o)%4 != 0 {
		o = append(o, 0) // EOL padding
	}
	return o
}

// ethFrame wraps an IP packet in Ethernet II with the given VLAN tags.
func ethFrame(ip []byte, vlans ...uint16) []byte {
	f := make([]byte, 12, 14+4*len(vlans)+len(ip))
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	for i, id := range vlans {
		tpid := uint16(etherTypeVLAN)
		if i == 0 && len(vlans) > 1 {
			tpid = etherTypeQinQ
		}
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, id)
	}
	f = binary.BigEndian.AppendUint16(f, ethType(ip))
	return append(f, ip...)
}

func ethType(ip []byte) uint16 {
	if ip[0]>>4 == 6 {
		return etherTypeIPv6
	}
	return etherTypeIPv4
}

// sllFrame wraps an IP packet in a Linux cooked v1 header.
func sllFrame(ip []byte) []byte {
	f := make([]byte, 16, 16+len(ip))
	binary.BigEndian.PutUint16(f[0:], 4) // sent by us
	binary.BigEndian.PutUint16(f[2:], 1) // ARPHRD_ETHER
	binary.BigEndian.PutUint16(f[4:], 6)
	binary.BigEndian.PutUint16(f[14:], ethType(ip))
	return append(f, ip...)
}

// sll2Frame wraps an IP packet in a Linux cooked v2 header.
func sll2Frame(ip []byte) []byte {
	f := make([]byte, 20, 20+len(ip))
	binary.BigEndian.PutUint16(f[0:], ethType(ip))
	binary.BigEndian.PutUint32(f[4:], 2) // ifindex
	binary.BigEndian.PutUint16(f[8:], 1) // ARPHRD_ETHER
	f[10] = 4                            // outgoing
	f[11] = 6
	return append(f, ip...)
}

// nullFrame wraps an IP packet in a BSD loopback header (little-endian AF).
func nullFrame(ip []byte, af uint32, bigEndian bool) []byte {
	f := make([]byte, 4, 4+len(ip))
	if bigEndian {
		binary.BigEndian.PutUint32(f, af)
	} else {
		binary.LittleEndian.PutUint32(f, af)
	}
	return append(f, ip...)
}

// conn is a test TCP connection between a local and a remote endpoint,
// with a clock, that feeds an Engine Ethernet frames.
type conn struct {
	tb            testing.TB
	e             *Engine
	local, remote netip.AddrPort
	now           time.Time
}

var t0 = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func newConn(tb testing.TB, e *Engine, local, remote string) *conn {
	return &conn{tb: tb, e: e, local: netip.MustParseAddrPort(local), remote: netip.MustParseAddrPort(remote), now: t0}
}

// advance moves the clock on by d.
func (c *conn) advance(d time.Duration) { c.now = c.now.Add(d) }

// out sends s from local to remote at the current time.
func (c *conn) out(s tseg) {
	c.tb.Helper()
	s.src, s.dst = c.local, c.remote
	c.e.Process(LinkEthernet, ethFrame(buildIP(c.tb, s)), 0, c.now)
}

// in delivers s from remote to local at the current time.
func (c *conn) in(s tseg) {
	c.tb.Helper()
	s.src, s.dst = c.remote, c.local
	c.e.Process(LinkEthernet, ethFrame(buildIP(c.tb, s)), 0, c.now)
}

// recorder collects the samples an Engine emits.
type recorder struct{ samples []Sample }

func (r *recorder) add(s Sample) { r.samples = append(r.samples, s) }

// rtts returns the recorded RTTs of method m.
func (r *recorder) rtts(m Method) []time.Duration {
	var out []time.Duration
	for _, s := range r.samples {
		if s.Method == m {
			out = append(out, s.RTT)
		}
	}
	return out
}

// newTestEngine returns an Engine whose local side is local and whose
// samples go to the returned recorder.
func newTestEngine(tb testing.TB, cfg Config, local ...string) (*Engine, *recorder) {
	tb.Helper()
	ls, err := ParseLocalSet(local...)
	if err != nil {
		tb.Fatal(err)
	}
	rec := &recorder{}
	cfg.Local = ls
	cfg.OnSample = rec.add
	return NewEngine(cfg), rec
}

// Helpers below build the less common shapes that the decoder tests,
// fuzz seeds, benchmarks and allocation tests need.

// withIPv4Options returns a copy of ip, an IPv4 packet without options,
// with opts inserted as IP options (padded with EOL to a multiple of 4
// bytes) and IHL and total length updated.
func withIPv4Options(ip, opts []byte) []byte {
	o := append([]byte(nil), opts...)
	for len(o)%4 != 0 {
		o = append(o, 0)
	}
	out := make([]byte, 0, len(ip)+len(o))
	out = append(out, ip[:20]...)
	out = append(out, o...)
	out = append(out, ip[20:]...)
	out[0] = 0x40 | byte((20+len(o))/4)
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	return out
}

// ext6 is an IPv6 extension header for withIPv6Ext: its protocol number
// and its bytes, whose first (next header) byte withIPv6Ext fills in.
type ext6 struct {
	proto byte
	b     []byte
}

// ipv6Opts returns a hop-by-hop (0) or destination options (60) header, or
// any header of that shape (routing 43, mobility 135...), of 8*units bytes
// padded with PadN.
func ipv6Opts(proto byte, units int) ext6 {
	b := make([]byte, 8*units)
	b[1] = byte(units - 1)
	b[2], b[3] = 1, byte(len(b)-4) // PadN over the rest
	return ext6{proto, b}
}

// ipv6Routing returns a type 0-style routing header of 8*units bytes with
// segments left 0.
func ipv6Routing(units int) ext6 {
	b := make([]byte, 8*units)
	b[1] = byte(units - 1)
	b[2] = 2 // routing type 2 (mobile IPv6), segments left 0
	return ext6{43, b}
}

// ipv6Frag returns a fragment header with fragment offset off (in 8-byte
// units) and the M flag set if more.
func ipv6Frag(off uint16, more bool) ext6 {
	b := make([]byte, 8)
	v := off << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(b[2:], v)
	binary.BigEndian.PutUint32(b[4:], 0xdecafbad) // identification
	return ext6{44, b}
}

// ipv6AH returns an authentication header with a 96-bit ICV (24 bytes).
func ipv6AH() ext6 {
	b := make([]byte, 24)
	b[1] = 24/4 - 2
	binary.BigEndian.PutUint32(b[4:], 0x100) // SPI
	return ext6{51, b}
}

// withIPv6Ext returns a copy of ip, an IPv6 packet, with exts inserted
// after the fixed header, in order, the next-header chain and payload
// length updated.
func withIPv6Ext(ip []byte, exts ...ext6) []byte {
	out := append([]byte(nil), ip[:40]...)
	next := ip[6]
	if len(exts) > 0 {
		out[6] = exts[0].proto
	}
	for i, x := range exts {
		h := append([]byte(nil), x.b...)
		if i+1 < len(exts) {
			h[0] = exts[i+1].proto
		} else {
			h[0] = next
		}
		out = append(out, h...)
	}
	out = append(out, ip[40:]...)
	binary.BigEndian.PutUint16(out[4:], uint16(len(out)-40))
	return out
}

// vlanEthFrame wraps an IP packet in Ethernet II behind the given tags,
// each a TPID and a VLAN ID, outermost first.
func vlanEthFrame(ip []byte, tags ...[2]uint16) []byte {
	f := make([]byte, 12, 14+4*len(tags)+len(ip))
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	for _, t := range tags {
		f = binary.BigEndian.AppendUint16(f, t[0])
		f = binary.BigEndian.AppendUint16(f, t[1])
	}
	f = binary.BigEndian.AppendUint16(f, ethType(ip))
	return append(f, ip...)
}

// rawEthFrame wraps payload in Ethernet II with the given EtherType.
func rawEthFrame(etype uint16, payload []byte) []byte {
	f := make([]byte, 12, 14+len(payload))
	copy(f, []byte{2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1})
	f = binary.BigEndian.AppendUint16(f, etype)
	return append(f, payload...)
}

// withProto returns a copy of ip, an IPv4 or IPv6 packet without
// extension headers, with its protocol (next header) field set to proto.
func withProto(ip []byte, proto byte) []byte {
	out := append([]byte(nil), ip...)
	if out[0]>>4 == 4 {
		out[9] = proto
	} else {
		out[6] = proto
	}
	return out
}

// patched returns a copy of b with the bytes at off replaced by v.
func patched(b []byte, off int, v ...byte) []byte {
	out := append([]byte(nil), b...)
	copy(out[off:], v)
	return out
}

// step is one segment of a scripted exchange: sent by the local side, or
// received by it when in is set, at time at after t0.
type step struct {
	at  time.Duration
	in  bool
	seg tseg
	dev Device // the device it is captured on; 0: unknown
}

// stepOut is a segment the local side sends at t0+at.
func stepOut(at time.Duration, s tseg) step { return step{at: at, seg: s} }

// stepIn is a segment the local side receives at t0+at.
func stepIn(at time.Duration, s tseg) step { return step{at: at, in: true, seg: s} }

// byTime concatenates step lists and sorts them by time, keeping the given
// order for steps at the same time.
func byTime(lists ...[]step) []step {
	var all []step
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortStableFunc(all, func(a, b step) int { return cmp.Compare(a.at, b.at) })
	return all
}

// play feeds steps to c's Engine in the order given (not sorted, so that a
// test can move the clock backwards), setting the clock to t0+at first.
func (c *conn) play(steps []step) {
	c.tb.Helper()
	for _, s := range steps {
		c.now = t0.Add(s.at)
		seg := s.seg
		if s.in {
			seg.src, seg.dst = c.remote, c.local
		} else {
			seg.src, seg.dst = c.local, c.remote
		}
		c.e.ProcessDev(LinkEthernet, ethFrame(buildIP(c.tb, seg)), 0, c.now.UnixNano(), s.dev)
	}
}

// msample is a sample reduced to what estimator tests compare.
type msample struct {
	Method Method
	RTT    time.Duration
}

// got returns the recorded samples as msamples, in order.
func (r *recorder) got() []msample {
	out := make([]msample, 0, len(r.samples))
	for _, s := range r.samples {
		out = append(out, msample{s.Method, s.RTT})
	}
	return out
}

// tsClock is a TCP timestamp clock that reads uint32(base) at t0 and ticks
// once a millisecond, wrapping like a real one.
type tsClock uint32

// at returns the clock's TSval at t0+d.
func (c tsClock) at(d time.Duration) uint32 { return uint32(c) + uint32(d/time.Millisecond) }
