package testbed

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// tcpFrame builds an Ethernet frame of a TCP segment from src to dst with
// seq, ack, flags and n bytes of payload.
func tcpFrame(src, dst netip.AddrPort, seq, ack uint32, flags byte, n int) []byte {
	tcp := make([]byte, 20+n)
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	tcp[12] = 5 << 4
	tcp[13] = flags
	eth := make([]byte, 14)
	var ip []byte
	if src.Addr().Is4() {
		binary.BigEndian.PutUint16(eth[12:], 0x0800)
		ip = make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(tcp)))
		ip[9] = 6
		s, d := src.Addr().As4(), dst.Addr().As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
	} else {
		binary.BigEndian.PutUint16(eth[12:], 0x86dd)
		ip = make([]byte, 40)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(len(tcp)))
		ip[6] = 6
		s, d := src.Addr().As16(), dst.Addr().As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	return append(append(eth, ip...), tcp...)
}

// withTimestamps adds NOP, NOP and a timestamps option to the TCP header
// of an IPv4 frame from tcpFrame.
func withTimestamps(frame []byte, tsval, tsecr uint32) []byte {
	opt := []byte{1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(opt[4:], tsval)
	binary.BigEndian.PutUint32(opt[8:], tsecr)
	const tcpAt = 14 + 20
	out := append(append(append([]byte(nil), frame[:tcpAt+20]...), opt...), frame[tcpAt+20:]...)
	out[tcpAt+12] = (20 + byte(len(opt))) / 4 << 4
	binary.BigEndian.PutUint16(out[14+2:], uint16(len(out)-14))
	return out
}

func TestParseTCPFrame(t *testing.T) {
	c4, s4 := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:80")
	c6, s6 := netip.MustParseAddrPort("[2001:db8::1]:40000"), netip.MustParseAddrPort("[2001:db8::2]:80")
	seg := func(src, dst netip.AddrPort, seq, end, ack uint32, hasAck, syn bool) Segment {
		return Segment{Src: src, Dst: dst, Seq: seq, End: end, Ack: ack, HasAck: hasAck, SYN: syn}
	}
	tests := []struct {
		name   string
		frame  []byte
		want   Segment
		wantOK bool
	}{
		{name: "syn-v4", frame: tcpFrame(c4, s4, 100, 0, 0x02, 0), want: seg(c4, s4, 100, 101, 0, false, true), wantOK: true},
		{name: "data-v4", frame: tcpFrame(c4, s4, 101, 7, 0x18, 1448), want: seg(c4, s4, 101, 1549, 7, true, false), wantOK: true},
		{name: "data-v4-cut-after-header", frame: tcpFrame(c4, s4, 101, 7, 0x18, 1448)[:14+20+20], want: seg(c4, s4, 101, 1549, 7, true, false), wantOK: true},
		{name: "fin-v6", frame: tcpFrame(c6, s6, 7, 9, 0x11, 10), want: seg(c6, s6, 7, 18, 9, true, false), wantOK: true},
		{name: "ack-v6", frame: tcpFrame(c6, s6, 7, 9, 0x10, 0), want: seg(c6, s6, 7, 7, 9, true, false), wantOK: true},
		{name: "timestamps", frame: withTimestamps(tcpFrame(c4, s4, 1, 2, 0x10, 0), 1000, 999),
			want: Segment{Src: c4, Dst: s4, Seq: 1, End: 1, Ack: 2, HasAck: true, TSval: 1000, TSecr: 999, HasTS: true}, wantOK: true},
		{name: "cut-in-tcp-header", frame: tcpFrame(c4, s4, 1, 1, 0x10, 0)[:40]},
		{name: "arp", frame: append(make([]byte, 12), 0x08, 0x06, 0, 1)},
		{name: "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := parseTCPFrame(tt.frame)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if !ok {
				return
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRetransTracker feeds a flow with a retransmission, a partial
// retransmission, pure ACKs each way, a keepalive and a new connection on
// the same four-tuple, across the sequence number wrap.
func TestRetransTracker(t *testing.T) {
	c, s := netip.MustParseAddrPort("192.0.2.1:40000"), netip.MustParseAddrPort("192.0.2.2:80")
	var isn uint32 = 0xffff_fff0 // the data wraps around zero
	r := newRetransTracker()
	type frame struct {
		out   bool
		seq   uint32
		flags byte
		n     int
	}
	t0 := time.Unix(1_800_000_000, 0)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Millisecond) }
	for i, f := range []frame{
		{true, isn, 0x02, 0},         // SYN
		{false, 5000, 0x12, 0},       // SYN-ACK
		{true, isn + 1, 0x10, 0},     // ACK: no sequence space
		{true, isn + 1, 0x18, 100},   // data [isn+1, isn+101)
		{true, isn + 101, 0x18, 100}, // data [isn+101, isn+201)
		{false, 5001, 0x10, 0},       // ACK of the first
		{true, isn + 1, 0x18, 100},   // retransmission of the first
		{true, isn + 151, 0x18, 100}, // half old, half new: a retransmission
		{true, isn + 250, 0x10, 1},   // keepalive resending the last byte
		{true, 7000, 0x02, 0},        // a new connection: starts afresh
		{true, 7001, 0x18, 10},       // new data of the new connection
	} {
		src, dst := c, s
		if !f.out {
			src, dst = s, c
		}
		r.observe(tcpFrame(src, dst, f.seq, isn+1, f.flags, f.n), at(i), f.out)
	}
	type rx struct {
		Seq, End uint32
		Time     time.Time
		First    time.Time
	}
	var got []rx
	for _, x := range r.Retransmissions() {
		if x.Src != c || x.Dst != s {
			t.Errorf("retransmission %+v: wrong flow", x)
		}
		got = append(got, rx{Seq: x.Seq, End: x.End, Time: x.Time, First: x.First})
	}
	want := []rx{
		{Seq: isn + 1, End: isn + 101, Time: at(6), First: at(3)},
		{Seq: isn + 151, End: isn + 251, Time: at(7), First: at(4)},
		{Seq: isn + 250, End: isn + 251, Time: at(8), First: at(7)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("retransmissions (-want +got):\n%s", diff)
	}
	if got, want := r.Segments(), uint64(8); got != want {
		t.Errorf("Segments() = %d, want %d", got, want)
	}
	if seg, ok := r.Sent(c, s, at(10)); !ok || seg.Seq != 7001 || seg.End != 7011 {
		t.Errorf("Sent(at 10 ms) = %+v, %v; want [7001, 7011)", seg, ok)
	}
	if _, ok := r.Sent(c, s, at(3)); ok {
		t.Error("Sent found a segment of the connection that the new one replaced")
	}
	r2 := newRetransTracker()
	r2.observe(tcpFrame(s, c, 5001, isn+101, 0x10, 0), at(1), false)
	if seg, ok := r2.Received(c, s, at(1)); !ok || !seg.HasAck || seg.Ack != isn+101 {
		t.Errorf("Received(at 1 ms) = %+v, %v; want ACK %d", seg, ok, isn+101)
	}
}
