package capture_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"

	"github.com/go-metro/go-metro/capture"
)

// The tests run the filters in the VM of golang.org/x/net/bpf, which does
// not implement the kernel's ancillary loads: FilterNetwork programs run
// with their load of the protocol replaced by a constant (fltVM), and on
// real sockets in filter_linux_test.go.

// fltPacket describes an IP packet for the filter tests.
type fltPacket struct {
	src, dst string
	proto    byte   // transport protocol: 6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, other: 8 zero bytes
	exts     []byte // IPv6 extension headers before the transport header, 8 bytes each
	fragOff  uint16 // IPv4 fragment offset, in 8-byte units; the packet is then a non-first fragment
	payload  int    // bytes after the transport header
}

// tcp is a TCP segment without payload from src to dst.
func tcp(src, dst string) fltPacket { return fltPacket{src: src, dst: dst, proto: 6} }

// ip returns the packet's bytes.
func (p fltPacket) ip() []byte {
	src, dst := netip.MustParseAddr(p.src), netip.MustParseAddr(p.dst)
	var l4 []byte
	switch p.proto {
	case 6:
		l4 = make([]byte, 20)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 443)
		binary.BigEndian.PutUint32(l4[4:], 1000)
		binary.BigEndian.PutUint32(l4[8:], 2000)
		l4[12] = 5 << 4
		l4[13] = 0x18 // PSH, ACK
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case 17:
		l4 = make([]byte, 8)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 53)
		binary.BigEndian.PutUint16(l4[4:], uint16(8+p.payload))
	case 1:
		l4 = []byte{8, 0, 0, 0, 0, 1, 0, 1} // echo request
	case 58:
		l4 = []byte{128, 0, 0, 0, 0, 1, 0, 1} // echo request
	default:
		l4 = make([]byte, 8)
	}
	l4 = append(l4, make([]byte, p.payload)...)
	if src.Is4() {
		h := make([]byte, 20, 20+len(l4))
		h[0] = 0x45
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(l4)))
		binary.BigEndian.PutUint16(h[4:], 0x1234)
		if p.fragOff != 0 {
			binary.BigEndian.PutUint16(h[6:], p.fragOff)
		} else {
			h[6] = 0x40 // DF
		}
		h[8] = 64
		h[9] = p.proto
		s, d := src.As4(), dst.As4()
		copy(h[12:], s[:])
		copy(h[16:], d[:])
		var sum uint32
		for i := 0; i < 20; i += 2 {
			sum += uint32(binary.BigEndian.Uint16(h[i:]))
		}
		sum = sum>>16 + sum&0xffff
		sum += sum >> 16
		binary.BigEndian.PutUint16(h[10:], ^uint16(sum))
		return append(h, l4...)
	}
	h := make([]byte, 40, 40+8*len(p.exts)+len(l4))
	h[0] = 0x60
	binary.BigEndian.PutUint16(h[4:], uint16(8*len(p.exts)+len(l4)))
	h[7] = 64
	s, d := src.As16(), dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	nh := &h[6]
	for _, x := range p.exts {
		*nh = x
		e := []byte{0, 0, 1, 4, 0, 0, 0, 0} // header length 0 (8 bytes), PadN
		switch x {
		case 43: // routing type 2, segments left 0
			e = []byte{0, 0, 2, 0, 0, 0, 0, 0}
		case 44: // atomic fragment: offset 0, no more fragments
			e = []byte{0, 0, 0, 0, 0, 0, 0x12, 0x34}
		}
		h = append(h, e...)
		nh = &h[len(h)-8]
	}
	*nh = p.proto
	return append(h, l4...)
}

// fltMAC is the source address of the test frames, and fltDstMAC their
// destination.
var (
	fltMAC    = net.HardwareAddr{0x02, 0xfe, 0, 0, 0, 0}
	fltDstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
)

// fltEther returns an Ethernet frame from src with EtherType etype behind
// one tag per TPID in tpids (VLAN ID 100, 101...), outermost first.
func fltEther(src net.HardwareAddr, etype uint16, payload []byte, tpids ...uint16) []byte {
	f := make([]byte, 0, 14+4*len(tpids)+len(payload))
	f = append(f, fltDstMAC...)
	f = append(f, src...)
	for i, tpid := range tpids {
		f = binary.BigEndian.AppendUint16(f, tpid)
		f = binary.BigEndian.AppendUint16(f, uint16(100+i))
	}
	f = binary.BigEndian.AppendUint16(f, etype)
	return append(f, payload...)
}

// frame returns the packet in an Ethernet frame from src, behind tags.
func (p fltPacket) frame(src net.HardwareAddr, tpids ...uint16) []byte {
	return fltEther(src, p.etherType(), p.ip(), tpids...)
}

func (p fltPacket) etherType() uint16 {
	if netip.MustParseAddr(p.src).Is4() {
		return 0x0800
	}
	return 0x86dd
}

// fltARP is an ARP request for 192.0.2.2 from 192.0.2.1.
var fltARP = []byte{
	0, 1, 8, 0, 6, 4, 0, 1, // Ethernet, IPv4, request
	0x02, 0xfe, 0, 0, 0, 0, 192, 0, 2, 1,
	0, 0, 0, 0, 0, 0, 192, 0, 2, 2,
}

// fltVM returns a VM that runs prog. For FilterNetwork it replaces the
// load of the packet's protocol with the constant proto.
func fltVM(tb testing.TB, prog []bpf.RawInstruction, proto uint16) *bpf.VM {
	tb.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		tb.Fatalf("filter does not disassemble:\n%s", fltListing(ins))
	}
	for i, in := range ins {
		if in == (bpf.LoadExtension{Num: bpf.ExtProto}) {
			ins[i] = bpf.LoadConstant{Dst: bpf.RegA, Val: uint32(proto)}
		}
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		tb.Fatalf("load filter into the VM: %v", err)
	}
	return vm
}

func fltListing(ins []bpf.Instruction) string {
	var b strings.Builder
	for i, in := range ins {
		fmt.Fprintf(&b, "%4d %v\n", i, in)
	}
	return b.String()
}

// fltRun returns the number of bytes the filter vm keeps of frame: its
// result, capped at the frame's length as the kernel does.
func fltRun(tb testing.TB, vm *bpf.VM, frame []byte) int {
	tb.Helper()
	n, err := vm.Run(frame)
	if err != nil {
		tb.Fatalf("run filter: %v", err)
	}
	return min(n, len(frame))
}

func mustBuild(tb testing.TB, link capture.FilterLink, peers []netip.Prefix, snaplen uint32) []bpf.RawInstruction {
	tb.Helper()
	prog, err := capture.BuildFilter(link, peers, snaplen)
	if err != nil {
		tb.Fatalf("BuildFilter(%v, %d peers, %d): %v", link, len(peers), snaplen, err)
	}
	return prog
}

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		if strings.Contains(p, "/") {
			out[i] = netip.MustParsePrefix(p)
		} else {
			a := netip.MustParseAddr(p)
			out[i] = netip.PrefixFrom(a, a.BitLen())
		}
	}
	return out
}

// fltCase is a frame and whether the filter should keep it.
type fltCase struct {
	name  string
	frame []byte
	pass  bool
}

// protocolCases are frames for a filter without peers.
func protocolCases(src net.HardwareAddr) []fltCase {
	const a4, b4 = "192.0.2.1", "198.51.100.7"
	const a6, b6 = "2001:db8::1", "2001:db8:ffff::7"
	return []fltCase{
		{name: "ipv4 tcp", frame: tcp(a4, b4).frame(src), pass: true},
		{name: "ipv6 tcp", frame: tcp(a6, b6).frame(src), pass: true},
		{name: "ipv4 tcp with payload", frame: fltPacket{src: a4, dst: b4, proto: 6, payload: 200}.frame(src), pass: true},
		{name: "ipv4 udp", frame: fltPacket{src: a4, dst: b4, proto: 17, payload: 20}.frame(src)},
		{name: "ipv6 udp", frame: fltPacket{src: a6, dst: b6, proto: 17, payload: 20}.frame(src)},
		{name: "ipv4 icmp", frame: fltPacket{src: a4, dst: b4, proto: 1, payload: 20}.frame(src)},
		{name: "ipv6 icmpv6", frame: fltPacket{src: a6, dst: b6, proto: 58, payload: 20}.frame(src)},
		{name: "arp", frame: fltEther(src, 0x0806, fltARP)},
		{name: "ipv4 tcp first fragment", frame: fltPacket{src: a4, dst: b4, proto: 6, fragOff: 0x2000}.frame(src), pass: true},
		{name: "ipv4 tcp later fragment", frame: fltPacket{src: a4, dst: b4, proto: 6, fragOff: 0x2000 | 185}.frame(src)},
		{name: "802.1q ipv4 tcp", frame: tcp(a4, b4).frame(src, 0x8100), pass: true},
		{name: "802.1q ipv6 tcp", frame: tcp(a6, b6).frame(src, 0x8100), pass: true},
		{name: "802.1q ipv4 udp", frame: fltPacket{src: a4, dst: b4, proto: 17}.frame(src, 0x8100)},
		{name: "802.1q arp", frame: fltEther(src, 0x0806, fltARP, 0x8100)},
		{name: "802.1ad ipv4 tcp", frame: tcp(a4, b4).frame(src, 0x88a8), pass: true},
		{name: "qinq ipv4 tcp", frame: tcp(a4, b4).frame(src, 0x88a8, 0x8100), pass: true},
		{name: "qinq ipv6 tcp", frame: tcp(a6, b6).frame(src, 0x88a8, 0x8100), pass: true},
		{name: "qinq ipv6 udp", frame: fltPacket{src: a6, dst: b6, proto: 17}.frame(src, 0x88a8, 0x8100)},
		{name: "qinq 0x9100 ipv4 tcp", frame: tcp(a4, b4).frame(src, 0x9100, 0x8100), pass: true},
		{name: "three in-band tags ipv4 tcp", frame: tcp(a4, b4).frame(src, 0x9100, 0x9100, 0x8100)},
		{name: "ipv6 hop-by-hop tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{0}}.frame(src), pass: true},
		{name: "ipv6 routing tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{43}}.frame(src), pass: true},
		{name: "ipv6 fragment tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{44}}.frame(src), pass: true},
		{name: "ipv6 destination options tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{60}}.frame(src), pass: true},
		{name: "ipv6 hop-by-hop destination options tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{0, 60}}.frame(src), pass: true},
		{name: "qinq ipv6 hop-by-hop tcp", frame: fltPacket{src: a6, dst: b6, proto: 6, exts: []byte{0}}.frame(src, 0x88a8, 0x8100), pass: true},
		{name: "ipv6 hop-by-hop icmpv6 (mld)", frame: fltPacket{src: a6, dst: b6, proto: 58, exts: []byte{0}}.frame(src)},
		{name: "ipv6 fragment udp", frame: fltPacket{src: a6, dst: b6, proto: 17, exts: []byte{44}}.frame(src)},
		// Behind two extension headers the filter stops looking: Decode drops it.
		{name: "ipv6 hop-by-hop routing udp (left to userspace)", frame: fltPacket{src: a6, dst: b6, proto: 17, exts: []byte{0, 43}}.frame(src), pass: true},
		{name: "ipv6 esp", frame: fltPacket{src: a6, dst: b6, proto: 50}.frame(src)},
		{name: "ipv6 no next header", frame: fltPacket{src: a6, dst: b6, proto: 59}.frame(src)},
		{name: "ipv4 tcp header cut", frame: tcp(a4, b4).frame(src)[:14+8]},
		{name: "ethernet header only", frame: fltEther(src, 0x0800, nil)},
	}
}

func TestBuildFilterEthernet(t *testing.T) {
	vm := fltVM(t, mustBuild(t, capture.FilterEthernet, nil, 65535), 0)
	for _, tc := range protocolCases(fltMAC) {
		t.Run(tc.name, func(t *testing.T) {
			want := 0
			if tc.pass {
				want = len(tc.frame)
			}
			if diff := cmp.Diff(want, fltRun(t, vm, tc.frame)); diff != "" {
				t.Errorf("kept bytes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildFilterNetwork runs FilterNetwork programs with the protocol
// that the kernel would give: the EtherType, and for a frame with an
// in-band tag left, that tag's TPID, with the data starting at its TCI.
func TestBuildFilterNetwork(t *testing.T) {
	prog := mustBuild(t, capture.FilterNetwork, prefixes("192.0.2.0/24", "2001:db8::/64"), 65535)
	tests := []struct {
		name  string
		proto uint16
		data  []byte
		pass  bool
	}{
		{name: "ipv4 tcp", proto: 0x0800, data: tcp("192.0.2.1", "198.51.100.7").ip(), pass: true},
		{name: "ipv6 tcp", proto: 0x86dd, data: tcp("2001:db8:ffff::7", "2001:db8::1").ip(), pass: true},
		{name: "ipv4 tcp not a peer", proto: 0x0800, data: tcp("192.0.3.1", "198.51.100.7").ip()},
		{name: "ipv4 udp", proto: 0x0800, data: fltPacket{src: "192.0.2.1", dst: "198.51.100.7", proto: 17}.ip()},
		{name: "ipv6 hop-by-hop tcp", proto: 0x86dd, data: fltPacket{src: "2001:db8::1", dst: "2001:db8:1::1", proto: 6, exts: []byte{0}}.ip(), pass: true},
		{name: "arp", proto: 0x0806, data: fltARP},
		{name: "tag in band ipv4 tcp", proto: 0x8100, data: tcp("192.0.2.1", "198.51.100.7").frame(fltMAC, 0x8100)[14:]},
		{name: "tag in band ipv6 tcp", proto: 0x88a8, data: tcp("2001:db8::1", "2001:db8:1::1").frame(fltMAC, 0x88a8)[14:]},
		{name: "0x9100 tag in band ipv4 tcp", proto: 0x9100, data: tcp("192.0.2.1", "198.51.100.7").frame(fltMAC, 0x9100)[14:]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := 0
			if tc.pass {
				want = len(tc.data)
			}
			got := fltRun(t, fltVM(t, prog, tc.proto), tc.data)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("kept bytes (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBuildFilterPeers(t *testing.T) {
	tests := []struct {
		name  string
		peers []string
		pkt   fltPacket
		tpids []uint16
		pass  bool
	}{
		{name: "v4 /24 source", peers: []string{"192.0.2.0/24"}, pkt: tcp("192.0.2.77", "198.51.100.7"), pass: true},
		{name: "v4 /24 destination", peers: []string{"192.0.2.0/24"}, pkt: tcp("198.51.100.7", "192.0.2.255"), pass: true},
		{name: "v4 /24 neither", peers: []string{"192.0.2.0/24"}, pkt: tcp("192.0.3.1", "198.51.100.7")},
		{name: "v4 /24 udp", peers: []string{"192.0.2.0/24"}, pkt: fltPacket{src: "192.0.2.1", dst: "192.0.2.2", proto: 17}},
		{name: "v4 /24 drops ipv6", peers: []string{"192.0.2.0/24"}, pkt: tcp("2001:db8::1", "2001:db8::2")},
		{name: "v4 /24 802.1q", peers: []string{"192.0.2.0/24"}, pkt: tcp("198.51.100.7", "192.0.2.9"), tpids: []uint16{0x8100}, pass: true},
		{name: "v4 /24 qinq neither", peers: []string{"192.0.2.0/24"}, pkt: tcp("198.51.100.7", "198.51.100.8"), tpids: []uint16{0x88a8, 0x8100}},
		{name: "v4 /32 source", peers: []string{"192.0.2.7"}, pkt: tcp("192.0.2.7", "198.51.100.7"), pass: true},
		{name: "v4 /32 destination", peers: []string{"192.0.2.7/32"}, pkt: tcp("198.51.100.7", "192.0.2.7"), pass: true},
		{name: "v4 /32 neighbor", peers: []string{"192.0.2.7"}, pkt: tcp("192.0.2.6", "192.0.2.8")},
		{name: "v4 /0", peers: []string{"0.0.0.0/0"}, pkt: tcp("203.0.113.1", "198.51.100.7"), pass: true},
		{name: "v4 /0 drops ipv6", peers: []string{"0.0.0.0/0"}, pkt: tcp("2001:db8::1", "2001:db8::2")},
		{name: "v4 mapped prefix", peers: []string{"::ffff:192.0.2.0/120"}, pkt: tcp("198.51.100.7", "192.0.2.9"), pass: true},
		{name: "v6 /64 source", peers: []string{"2001:db8:1:2::/64"}, pkt: tcp("2001:db8:1:2:ffff::1", "2001:db8::2"), pass: true},
		{name: "v6 /64 destination", peers: []string{"2001:db8:1:2::/64"}, pkt: tcp("2001:db8::2", "2001:db8:1:2::1"), pass: true},
		{name: "v6 /64 neighbor", peers: []string{"2001:db8:1:2::/64"}, pkt: tcp("2001:db8:1:3::1", "2001:db8:1::2")},
		{name: "v6 /64 drops ipv4", peers: []string{"2001:db8:1:2::/64"}, pkt: tcp("192.0.2.1", "192.0.2.2")},
		{name: "v6 /128 source", peers: []string{"2001:db8::5"}, pkt: tcp("2001:db8::5", "2001:db8:ffff::1"), pass: true},
		{name: "v6 /128 destination", peers: []string{"2001:db8::5/128"}, pkt: tcp("2001:db8:ffff::1", "2001:db8::5"), pass: true},
		{name: "v6 /128 neighbor", peers: []string{"2001:db8::5"}, pkt: tcp("2001:db8::4", "2001:db8::6")},
		{name: "v6 /128 hop-by-hop", peers: []string{"2001:db8::5"}, pkt: fltPacket{src: "2001:db8::5", dst: "2001:db8::6", proto: 6, exts: []byte{0}}, pass: true},
		{name: "v6 /128 hop-by-hop neighbor", peers: []string{"2001:db8::5"}, pkt: fltPacket{src: "2001:db8::4", dst: "2001:db8::6", proto: 6, exts: []byte{0}}},
		{name: "v6 /128 qinq", peers: []string{"2001:db8::5"}, pkt: tcp("2001:db8:ffff::1", "2001:db8::5"), tpids: []uint16{0x88a8, 0x8100}, pass: true},
		{name: "v6 /127 odd bits", peers: []string{"2001:db8::4/127"}, pkt: tcp("2001:db8::5", "2001:db8:ffff::1"), pass: true},
		{name: "v6 /33", peers: []string{"2001:db8:8000::/33"}, pkt: tcp("2001:db8:ffff::1", "2001:db9::1"), pass: true},
		{name: "v6 /33 other half", peers: []string{"2001:db8:8000::/33"}, pkt: tcp("2001:db8:7fff::1", "2001:db9::1")},
		{name: "mixed v4 source", peers: mixedPeers, pkt: tcp("10.200.1.1", "198.51.100.7"), pass: true},
		{name: "mixed v4 /32", peers: mixedPeers, pkt: tcp("198.51.100.7", "192.0.2.7"), pass: true},
		{name: "mixed v4 miss", peers: mixedPeers, pkt: tcp("192.0.2.8", "11.0.0.1")},
		{name: "mixed v6 /48", peers: mixedPeers, pkt: tcp("2001:db8:ffff::1", "2001:db8:1:ffff::1"), pass: true},
		{name: "mixed v6 /128", peers: mixedPeers, pkt: tcp("2001:db8::5", "2001:db8:ffff::1"), pass: true},
		{name: "mixed v6 miss", peers: mixedPeers, pkt: tcp("2001:db8::6", "2001:db8:2::1")},
		{name: "nested prefixes", peers: []string{"10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16"}, pkt: tcp("10.2.0.1", "192.0.2.1"), pass: true},
		{name: "nested prefixes miss", peers: []string{"10.1.2.0/24", "10.0.0.0/8", "10.1.0.0/16"}, pkt: tcp("11.2.0.1", "192.0.2.1")},
		{name: "duplicate prefixes", peers: []string{"192.0.2.7", "192.0.2.7/32", "192.0.2.7"}, pkt: tcp("192.0.2.7", "192.0.2.1"), pass: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := tc.pkt.frame(fltMAC, tc.tpids...)
			vm := fltVM(t, mustBuild(t, capture.FilterEthernet, prefixes(tc.peers...), 65535), 0)
			want := 0
			if tc.pass {
				want = len(frame)
			}
			if diff := cmp.Diff(want, fltRun(t, vm, frame)); diff != "" {
				t.Errorf("kept bytes (-want +got):\n%s", diff)
			}
		})
	}
}

var mixedPeers = []string{"10.0.0.0/8", "192.0.2.7", "2001:db8:1::/48", "2001:db8::5", "203.0.113.0/25"}

func TestBuildFilterSnaplen(t *testing.T) {
	tests := []struct {
		name    string
		snaplen uint32
		frame   []byte
	}{
		{name: "cut", snaplen: 128, frame: fltPacket{src: "192.0.2.1", dst: "192.0.2.2", proto: 6, payload: 1000}.frame(fltMAC)},
		{name: "shorter than snaplen", snaplen: 128, frame: tcp("192.0.2.1", "192.0.2.2").frame(fltMAC)},
		{name: "exactly snaplen", snaplen: 54, frame: tcp("192.0.2.1", "192.0.2.2").frame(fltMAC)},
		{name: "ipv6 cut", snaplen: 64, frame: fltPacket{src: "2001:db8::1", dst: "2001:db8::2", proto: 6, payload: 100}.frame(fltMAC, 0x8100)},
		{name: "large snaplen", snaplen: 65535, frame: fltPacket{src: "2001:db8::1", dst: "2001:db8::2", proto: 6, payload: 9000}.frame(fltMAC)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, peers := range [][]netip.Prefix{nil, prefixes("192.0.2.1", "2001:db8::1")} {
				vm := fltVM(t, mustBuild(t, capture.FilterEthernet, peers, tc.snaplen), 0)
				n, err := vm.Run(tc.frame)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(int(tc.snaplen), n); diff != "" {
					t.Errorf("%d peers: filter result (-want +got):\n%s", len(peers), diff)
				}
				if diff := cmp.Diff(min(int(tc.snaplen), len(tc.frame)), fltRun(t, vm, tc.frame)); diff != "" {
					t.Errorf("%d peers: kept bytes (-want +got):\n%s", len(peers), diff)
				}
			}
		})
	}
}

// TestBuildFilterPeersRandom checks the filter against netip.Prefix.Contains
// for random prefix lists of every length, and addresses in, next to and
// outside them.
func TestBuildFilterPeersRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var outcomes [2]int // dropped, kept
	for i := range 300 {
		peers := randomPrefixes(r, 1+r.IntN(30))
		vm := fltVM(t, mustBuild(t, capture.FilterEthernet, peers, 65535), 0)
		for range 50 {
			src, dst := probeAddr(r, peers), randomAddr(r, false)
			if src.Is6() {
				dst = randomAddr(r, true)
			}
			if r.IntN(2) == 0 {
				src, dst = dst, src
			}
			if r.IntN(4) == 0 { // both probes, when of one family
				if a := probeAddr(r, peers); a.Is4() == src.Is4() {
					src = a
				}
			}
			frame := tcp(src.String(), dst.String()).frame(fltMAC)
			want := 0
			if contains(peers, src) || contains(peers, dst) {
				want = len(frame)
			}
			got := fltRun(t, vm, frame)
			if got != want {
				t.Fatalf("list %d, %v -> %v with peers %v: kept %d bytes, want %d", i, src, dst, peers, got, want)
			}
			outcomes[min(got, 1)]++
		}
	}
	t.Logf("%d frames dropped, %d kept", outcomes[0], outcomes[1])
	if outcomes[0] < 2000 || outcomes[1] < 2000 {
		t.Errorf("%d frames dropped and %d kept: the probes should do more of both", outcomes[0], outcomes[1])
	}
}

// randomPrefixes returns n prefixes of random lengths, around a few random
// addresses so that they share leading bits and nest.
func randomPrefixes(r *rand.Rand, n int) []netip.Prefix {
	bases := []netip.Addr{randomAddr(r, false), randomAddr(r, false), randomAddr(r, true), randomAddr(r, true)}
	out := make([]netip.Prefix, n)
	for i := range out {
		a := flipBits(r, bases[r.IntN(len(bases))], 1+r.IntN(3))
		// Any length, mostly long ones, and single addresses.
		bits := a.BitLen() - r.IntN(1+r.IntN(a.BitLen()+1))
		if r.IntN(3) == 0 {
			bits = a.BitLen()
		}
		out[i] = netip.PrefixFrom(a, bits)
	}
	return out
}

func randomAddr(r *rand.Rand, v6 bool) netip.Addr {
	if !v6 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], r.Uint32())
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], r.Uint64())
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	return netip.AddrFrom16(b)
}

// flipBits returns a with n random bits inverted.
func flipBits(r *rand.Rand, a netip.Addr, n int) netip.Addr {
	b := a.AsSlice()
	for range n {
		bit := r.IntN(len(b) * 8)
		b[bit/8] ^= 0x80 >> (bit % 8)
	}
	out, _ := netip.AddrFromSlice(b)
	return out
}

// probeAddr returns an address inside, at the edge of or near one of
// peers, or a random one.
func probeAddr(r *rand.Rand, peers []netip.Prefix) netip.Addr {
	p := peers[r.IntN(len(peers))]
	a := p.Masked().Addr()
	b := a.AsSlice()
	switch r.IntN(5) {
	case 0:
		return a
	case 1:
		return flipBits(r, a, 1)
	case 2: // the last address of the prefix
		for bit := p.Bits(); bit < len(b)*8; bit++ {
			b[bit/8] |= 0x80 >> (bit % 8)
		}
		out, _ := netip.AddrFromSlice(b)
		return out
	case 3: // in the sibling prefix
		if bit := p.Bits() - 1; bit >= 0 {
			b[bit/8] ^= 0x80 >> (bit % 8)
		}
		out, _ := netip.AddrFromSlice(b)
		return out
	}
	return randomAddr(r, a.Is6())
}

func contains(peers []netip.Prefix, a netip.Addr) bool {
	for _, p := range peers {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// largePeerLists are long peer lists of different shapes.
func largePeerLists() []struct {
	name  string
	peers []netip.Prefix
} {
	gen := func(n int, f func(i int) netip.Prefix) []netip.Prefix {
		out := make([]netip.Prefix, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	r := rand.New(rand.NewPCG(3, 5))
	return []struct {
		name  string
		peers []netip.Prefix
	}{
		{name: "500 ipv6 /128 in one /64", peers: gen(500, func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0xbe, 0xef, 14: byte(i >> 8), 15: byte(i)}), 128)
		})},
		{name: "500 ipv6 /64 in one /32", peers: gen(500, func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(i >> 8), 7: byte(i)}), 64)
		})},
		{name: "500 ipv6 /128 in 50 /48", peers: gen(500, func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 5: byte(i % 50), 15: byte(i)}), 128)
		})},
		{name: "600 ipv6 /128 in two /64", peers: gen(600, func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 7: byte(i % 2), 14: byte(i >> 8), 15: byte(i)}), 128)
		})},
		{name: "250 random ipv6 /128", peers: gen(250, func(int) netip.Prefix {
			return netip.PrefixFrom(randomAddr(r, true), 128)
		})},
		{name: "2000 ipv4 /32", peers: gen(2000, func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 32)
		})},
		{name: "1000 random ipv4 of random length", peers: gen(1000, func(int) netip.Prefix {
			return netip.PrefixFrom(randomAddr(r, false), 8+r.IntN(25))
		})},
	}
}

func TestBuildFilterLargePeerLists(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range largePeerLists() {
		t.Run(tc.name, func(t *testing.T) {
			prog := mustBuild(t, capture.FilterEthernet, tc.peers, 256)
			t.Logf("%d instructions", len(prog))
			if len(prog) > capture.MaxFilterInstructions {
				t.Fatalf("%d instructions, the limit is %d", len(prog), capture.MaxFilterInstructions)
			}
			vm := fltVM(t, prog, 0)
			other := "198.51.100.1"
			if tc.peers[0].Addr().Is6() {
				other = "2001:db8:ffff::1"
			}
			for _, p := range tc.peers {
				a := p.Addr().String()
				for _, pkt := range []fltPacket{tcp(a, other), tcp(other, a)} {
					if got := fltRun(t, vm, pkt.frame(fltMAC)); got == 0 {
						t.Fatalf("%s -> %s dropped, want kept", pkt.src, pkt.dst)
					}
				}
			}
			for range 2000 {
				a := probeAddr(r, tc.peers)
				pkt := tcp(a.String(), other)
				want := contains(tc.peers, a) || contains(tc.peers, netip.MustParseAddr(other))
				if got := fltRun(t, vm, pkt.frame(fltMAC)) > 0; got != want {
					t.Fatalf("%s -> %s kept = %v, want %v", pkt.src, pkt.dst, got, want)
				}
			}
		})
	}
}

func TestBuildFilterSizes(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for _, n := range []int{0, 1, 10, 100, 500} {
		v4 := make([]netip.Prefix, n)
		v6 := make([]netip.Prefix, n)
		for i := range n {
			v4[i] = netip.PrefixFrom(randomAddr(r, false), 32)
			v6[i] = netip.PrefixFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 12: byte(r.Uint32()), 13: byte(r.Uint32()), 14: byte(i >> 8), 15: byte(i)}), 128)
		}
		for _, link := range []capture.FilterLink{capture.FilterEthernet, capture.FilterNetwork} {
			p4 := mustBuild(t, link, v4, 256)
			p6 := mustBuild(t, link, v6, 256)
			t.Logf("%v, %3d peers: %4d instructions for random IPv4 /32, %4d for IPv6 /128 in one /64", link, n, len(p4), len(p6))
			// About 2 instructions per peer, plus the protocol checks.
			if limit := 80 + 2*n + 2*n/100; len(p4) > limit || len(p6) > limit+20 {
				t.Errorf("%v, %d peers: %d and %d instructions, want at most %d and %d", link, n, len(p4), len(p6), limit, limit+20)
			}
		}
	}
}

func TestBuildFilterTooManyPeers(t *testing.T) {
	r := rand.New(rand.NewPCG(4, 4))
	peers := make([]netip.Prefix, 500)
	for i := range peers {
		peers[i] = netip.PrefixFrom(randomAddr(r, true), 128)
	}
	_, err := capture.BuildFilter(capture.FilterEthernet, peers, 256)
	if !errors.Is(err, capture.ErrFilterTooLarge) {
		t.Fatalf("500 random IPv6 addresses: error %v, want one that wraps ErrFilterTooLarge", err)
	}
	for _, want := range []string{"too many peers for the kernel filter: 500 prefixes need", "the limit is 4096", "`ips`"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestBuildFilterErrors(t *testing.T) {
	tests := []struct {
		name    string
		link    capture.FilterLink
		peers   []netip.Prefix
		snaplen uint32
		want    string
	}{
		{name: "zero snaplen", snaplen: 0, want: "build kernel filter: invalid snap length 0: must be at least 1"},
		{name: "unknown link", link: 7, snaplen: 128, want: "build kernel filter: unknown link FilterLink(7)"},
		{name: "invalid prefix", peers: []netip.Prefix{{}}, snaplen: 128, want: `build kernel filter: invalid peer prefix "invalid Prefix"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prog, err := capture.BuildFilter(tc.link, tc.peers, tc.snaplen)
			if err == nil {
				t.Fatalf("got a program of %d instructions, want error %q", len(prog), tc.want)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}
