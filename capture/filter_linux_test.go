package capture_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/internal/testbed"
)

// These tests attach the filters to AF_PACKET sockets on the server end of
// a veth pair and inject frames, or run real traffic, from the client end.
//
// What the kernel does with VLAN tags on a veth (checked by
// TestFilterSocket through rxView): the receive path
// (__netif_receive_skb_core, skb_vlan_untag) moves the outer tag into the
// packet's metadata when its TPID is 802.1Q (0x8100) or 802.1ad (0x88a8),
// before any packet socket sees the frame, whether or not a VLAN device
// exists. So a single-tagged frame reaches the filter untagged; of a QinQ
// frame only the inner tag is left in band, and SOCK_DGRAM then reports
// that tag's TPID as protocol, with the data starting at its TCI. A 0x9100
// tag is never taken out. PACKET_AUXDATA reports the tag that was taken.
//
// SOCK_DGRAM has a twist: when a tag is left in band, the filter sees its
// TPID as protocol (SKF_AD_PROTOCOL) and data that starts at its TCI, but
// recvmsg reports the protocol behind the tags as sll_protocol (Linux 6.11
// and later), so userspace cannot find the network header. FilterNetwork
// drops such frames.

// filterSnaplen is the snap length of the socket tests: shorter than some
// of the frames.
const filterSnaplen = 96

// socketType returns the packet socket type whose framing link is.
func socketType(link capture.FilterLink) int {
	if link == capture.FilterNetwork {
		return unix.SOCK_DGRAM
	}
	return unix.SOCK_RAW
}

// openFilteredSocket opens a packet socket of link's type on ifname in ns,
// with prog attached, and closes it when the test ends. The socket is
// created with protocol 0, so that nothing is queued to it before bind:
// every packet read from it went through the filter.
func openFilteredSocket(t *testing.T, ns *testbed.NetNS, ifname string, link capture.FilterLink, prog []bpf.RawInstruction) int {
	t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, socketType(link)|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		filter := make([]unix.SockFilter, len(prog))
		for i, r := range prog {
			filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fmt.Errorf("attach filter of %d instructions: %w", len(prog), err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return fmt.Errorf("set PACKET_AUXDATA: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20); err != nil {
			return fmt.Errorf("set SO_RCVBUFFORCE: %w", err)
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("set SO_RCVTIMEO: %w", err)
		}
		sa := &unix.SockaddrLinklayer{Protocol: testbed.Htons(unix.ETH_P_ALL), Ifindex: ifi.Index}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		return nil
	})
	if fd >= 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatalf("%s socket on %s in netns %s: %v", link, ifname, ns, err)
	}
	return fd
}

// sizeofAuxdata is the size of struct tpacket_auxdata.
const sizeofAuxdata = 20

// rxFrame is a frame read from a packet socket, as the tests compare it.
type rxFrame struct {
	Data    []byte
	Proto   uint16 // sll_protocol
	OrigLen int    // tp_len: the length before the snap length cut the frame
	// VLAN is set if the kernel took a tag out of the frame: its TCI and TPID.
	VLAN      bool
	TCI, TPID uint16

	src    net.HardwareAddr // sll_addr, or the Ethernet source for SOCK_RAW
	inBand uint16           // rxView: the TPID of the first tag left in band, or 0
}

// cmpRxFrame compares the exported fields of rxFrames.
var cmpRxFrame = cmpopts.IgnoreUnexported(rxFrame{})

// readFrames reads frames from fd until done returns true and no frame
// has come for 100 ms, or for at most 5 seconds. done nil means true. The
// source address of a frame is that of sll_addr, or of the Ethernet header
// for SOCK_RAW.
func readFrames(t *testing.T, fd, sockType int, done func([]rxFrame) bool) []rxFrame {
	t.Helper()
	var frames []rxFrame
	buf := make([]byte, 65536)
	oob := make([]byte, unix.CmsgSpace(sizeofAuxdata))
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			if done == nil || done(frames) {
				return frames
			}
			continue
		case err != nil:
			t.Fatalf("read packet socket: %v", err)
		}
		f := rxFrame{Data: append([]byte(nil), buf[:n]...)}
		if sll, ok := from.(*unix.SockaddrLinklayer); ok {
			f.Proto = testbed.Htons(sll.Protocol)
			f.src = net.HardwareAddr(append([]byte(nil), sll.Addr[:sll.Halen]...))
		}
		if sockType == unix.SOCK_RAW && len(f.Data) >= 12 {
			f.src = net.HardwareAddr(f.Data[6:12:12])
		}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatalf("parse control messages: %v", err)
		}
		for _, m := range msgs {
			if m.Header.Level != unix.SOL_PACKET || m.Header.Type != unix.PACKET_AUXDATA || len(m.Data) < sizeofAuxdata {
				continue
			}
			// struct tpacket_auxdata: status, len, snaplen (u32), mac,
			// net, vlan_tci, vlan_tpid (u16).
			status := binary.NativeEndian.Uint32(m.Data[0:])
			f.OrigLen = int(binary.NativeEndian.Uint32(m.Data[4:]))
			if status&unix.TP_STATUS_VLAN_VALID != 0 {
				f.VLAN = true
				f.TCI = binary.NativeEndian.Uint16(m.Data[16:])
				f.TPID = binary.NativeEndian.Uint16(m.Data[18:])
			}
		}
		frames = append(frames, f)
	}
	t.Logf("gave up reading after 5 s, with %d frames", len(frames))
	return frames
}

// rxView returns what a packet socket of link on the receiving end of a
// veth reads of frame, before the snap length cuts it: an outer 802.1Q or
// 802.1ad tag goes into the metadata (see the comment at the top).
func rxView(frame []byte, link capture.FilterLink) rxFrame {
	var f rxFrame
	if tpid := binary.BigEndian.Uint16(frame[12:14]); len(frame) >= 18 && (tpid == 0x8100 || tpid == 0x88a8) {
		f.VLAN, f.TPID, f.TCI = true, tpid, binary.BigEndian.Uint16(frame[14:16])
		frame = append(frame[:12:12], frame[16:]...)
	}
	f.Proto = binary.BigEndian.Uint16(frame[12:14])
	switch f.Proto {
	case 0x8100, 0x88a8, 0x9100:
		f.inBand = f.Proto
	}
	f.Data = frame
	if link == capture.FilterNetwork {
		f.Data = frame[14:]
	}
	f.OrigLen = len(f.Data)
	f.Data = f.Data[:min(len(f.Data), filterSnaplen)]
	return f
}

// caseMAC is the source address of the frame of case i; the kernel's own
// frames never have it.
func caseMAC(i int) net.HardwareAddr {
	return net.HardwareAddr{0x02, 0xfe, 0, 0, byte(i >> 8), byte(i)}
}

// caseIndex returns i if mac is caseMAC(i).
func caseIndex(mac net.HardwareAddr) (int, bool) {
	if len(mac) != 6 || mac[0] != 0x02 || mac[1] != 0xfe || mac[2] != 0 || mac[3] != 0 {
		return 0, false
	}
	return int(mac[4])<<8 | int(mac[5]), true
}

// socketPeerCases are frames for a filter whose peers are 203.0.113.0/24
// and 2001:db8:beef::/64, or only 203.0.113.7 and 2001:db8:beef::7.
func socketPeerCases() []fltCase {
	const peer4, peer6 = "203.0.113.7", "2001:db8:beef::7"
	const other4, other6 = "198.51.100.7", "2001:db8:ffff::7"
	return []fltCase{
		{name: "ipv4 peer source", frame: tcp(peer4, other4).frame(fltMAC), pass: true},
		{name: "ipv4 peer destination", frame: fltPacket{src: other4, dst: peer4, proto: 6, payload: 200}.frame(fltMAC), pass: true},
		{name: "ipv4 neither", frame: tcp(other4, "198.51.100.8").frame(fltMAC)},
		{name: "ipv4 peer udp", frame: fltPacket{src: peer4, dst: other4, proto: 17}.frame(fltMAC)},
		{name: "ipv4 peer 802.1q", frame: tcp(other4, peer4).frame(fltMAC, 0x8100), pass: true},
		{name: "ipv4 peer qinq", frame: tcp(other4, peer4).frame(fltMAC, 0x88a8, 0x8100), pass: true},
		{name: "ipv4 neither qinq", frame: tcp(other4, other4).frame(fltMAC, 0x88a8, 0x8100)},
		{name: "ipv6 peer source", frame: tcp(peer6, other6).frame(fltMAC), pass: true},
		{name: "ipv6 peer destination", frame: fltPacket{src: other6, dst: peer6, proto: 6, payload: 200}.frame(fltMAC), pass: true},
		{name: "ipv6 neither", frame: tcp(other6, "2001:db8:ffff::8").frame(fltMAC)},
		{name: "ipv6 peer hop-by-hop", frame: fltPacket{src: other6, dst: peer6, proto: 6, exts: []byte{0}}.frame(fltMAC), pass: true},
		{name: "ipv6 neither hop-by-hop", frame: fltPacket{src: other6, dst: other6, proto: 6, exts: []byte{0}}.frame(fltMAC)},
		{name: "ipv6 peer qinq", frame: tcp(peer6, other6).frame(fltMAC, 0x88a8, 0x8100), pass: true},
		{name: "ipv6 peer icmpv6", frame: fltPacket{src: peer6, dst: other6, proto: 58}.frame(fltMAC)},
	}
}

func TestFilterSocket(t *testing.T) {
	testbed.RequireRoot(t)
	p := testbed.NewVethPair(t)
	inject := testbed.NewInjector(t, p.Client, p.ClientIf)

	large := func(name string) []netip.Prefix {
		for _, l := range largePeerLists() {
			if l.name == name {
				return l.peers
			}
		}
		t.Fatalf("no peer list %q", name)
		return nil
	}
	sets := []struct {
		name  string
		peers []netip.Prefix
		cases []fltCase
	}{
		{name: "no peers", cases: protocolCases(fltMAC)},
		{name: "prefixes", peers: prefixes("203.0.113.0/24", "2001:db8:beef::/64"), cases: socketPeerCases()},
		{name: "addresses", peers: prefixes("203.0.113.7", "2001:db8:beef::7"), cases: socketPeerCases()},
		{name: "500 ipv6 /128 in one /64", peers: large("500 ipv6 /128 in one /64"), cases: []fltCase{
			{name: "last peer", frame: tcp("2001:db8:ffff::7", "2001:db8:beef::1f3").frame(fltMAC), pass: true},
			{name: "first peer qinq", frame: tcp("2001:db8:beef::", "2001:db8:ffff::7").frame(fltMAC, 0x88a8, 0x8100), pass: true},
			{name: "next to the last peer", frame: tcp("2001:db8:ffff::7", "2001:db8:beef::1f4").frame(fltMAC)},
			{name: "ipv4", frame: tcp("203.0.113.7", "198.51.100.7").frame(fltMAC)},
		}},
		{name: "2000 ipv4 /32", peers: large("2000 ipv4 /32"), cases: []fltCase{
			{name: "last peer", frame: tcp("198.51.100.7", "10.0.7.207").frame(fltMAC), pass: true},
			{name: "next to the last peer", frame: tcp("198.51.100.7", "10.0.7.208").frame(fltMAC)},
		}},
	}
	for _, link := range []capture.FilterLink{capture.FilterEthernet, capture.FilterNetwork} {
		for _, set := range sets {
			t.Run(link.String()+"/"+set.name, func(t *testing.T) {
				prog := mustBuild(t, link, set.peers, filterSnaplen)
				fd := openFilteredSocket(t, p.Server, p.ServerIf, link, prog)

				wantKept := make(map[string]bool)
				want := make(map[int]rxFrame) // by case
				for i, c := range set.cases {
					frame := append([]byte(nil), c.frame...)
					copy(frame[6:12], caseMAC(i))
					inject(frame)
					view := rxView(frame, link)
					// FilterNetwork keeps only frames without a tag left in band.
					pass := c.pass && (link == capture.FilterEthernet || view.inBand == 0)
					wantKept[c.name] = pass
					if pass {
						want[i] = view
					}
				}
				got := make(map[int]rxFrame)
				gotKept := make(map[string]bool)
				for _, c := range set.cases {
					gotKept[c.name] = false
				}
				frames := readFrames(t, fd, socketType(link), func(fs []rxFrame) bool {
					n := 0
					for _, f := range fs {
						if _, ok := caseIndex(f.src); ok {
							n++
						}
					}
					return n >= len(want)
				})
				for _, f := range frames {
					i, ok := caseIndex(f.src)
					switch {
					case !ok:
						t.Logf("ignored a frame not injected by the test, from %v: % x", f.src, f.Data[:min(len(f.Data), 64)])
						continue
					case i >= len(set.cases):
						t.Errorf("received a frame of unknown case %d", i)
						continue
					}
					if _, dup := got[i]; dup {
						t.Errorf("%s: received twice", set.cases[i].name)
					}
					got[i] = f
					gotKept[set.cases[i].name] = true
				}
				if diff := cmp.Diff(wantKept, gotKept); diff != "" {
					t.Errorf("frames kept by the filter (-want +got):\n%s", diff)
				}
				for i, w := range want {
					if g, ok := got[i]; ok {
						if diff := cmp.Diff(w, g, cmpRxFrame); diff != "" {
							t.Errorf("%s: frame read (-want +got):\n%s", set.cases[i].name, diff)
						}
					}
				}
			})
		}
	}
}

// TestFilterSocketTraffic runs TCP, UDP and ICMP traffic between the
// namespaces and checks that only TCP, and only to the peers, reaches a
// filtered socket.
func TestFilterSocketTraffic(t *testing.T) {
	testbed.RequireRoot(t)
	p := testbed.NewVethPair(t)
	tests := []struct {
		name         string
		peers        []netip.Prefix
		want4, want6 bool
	}{
		{name: "no peers", want4: true, want6: true},
		{name: "server ipv6 address", peers: []netip.Prefix{netip.PrefixFrom(p.ServerAddr6, 128)}, want6: true},
		{name: "client ipv4 subnet", peers: []netip.Prefix{netip.PrefixFrom(p.ClientAddr4, 24).Masked()}, want4: true},
	}
	for _, link := range []capture.FilterLink{capture.FilterEthernet, capture.FilterNetwork} {
		for _, tc := range tests {
			t.Run(link.String()+"/"+tc.name, func(t *testing.T) {
				fd := openFilteredSocket(t, p.Server, p.ServerIf, link, mustBuild(t, link, tc.peers, 256))
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				defer cancel()
				for _, path := range []testbed.Path{p.Path4(), p.Path6()} {
					if err := testbed.RequestResponse(ctx, path, testbed.RequestResponseConfig{Count: 3}); err != nil {
						t.Fatal(err)
					}
					sendUDP(ctx, t, path, 5)
					testbed.Ping(t, path.Client, path.Dst, 3)
				}

				decodeLink := capture.LinkEthernet
				if link == capture.FilterNetwork {
					decodeLink = capture.LinkRaw
				}
				var n4, n6 int
				for _, f := range readFrames(t, fd, socketType(link), nil) {
					var pkt capture.Packet
					if err := capture.Decode(decodeLink, f.Data, f.OrigLen, &pkt); err != nil {
						t.Errorf("a frame that is not a TCP segment passed: %v: % x", err, f.Data[:min(len(f.Data), 64)])
						continue
					}
					if pkt.Src.Is4() {
						n4++
					} else {
						n6++
					}
				}
				t.Logf("%d IPv4 and %d IPv6 TCP segments", n4, n6)
				// RequestResponse exchanges at least 3 requests and responses,
				// a handshake and a close: 10 segments or more.
				if tc.want4 && n4 < 10 || !tc.want4 && n4 > 0 {
					t.Errorf("%d IPv4 TCP segments, want %s", n4, map[bool]string{true: "10 or more", false: "none"}[tc.want4])
				}
				if tc.want6 && n6 < 10 || !tc.want6 && n6 > 0 {
					t.Errorf("%d IPv6 TCP segments, want %s", n6, map[bool]string{true: "10 or more", false: "none"}[tc.want6])
				}
			})
		}
	}
}

// sendUDP sends n datagrams from the client to the server of path and
// waits until the server has them all.
func sendUDP(ctx context.Context, t *testing.T, path testbed.Path, n int) {
	t.Helper()
	srv, err := path.Server.ListenPacket(ctx, "udp", netip.AddrPortFrom(path.Dst, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	c, err := path.Client.Dial(ctx, "udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		if _, err := c.Write([]byte("not tcp")); err != nil {
			t.Fatalf("send udp: %v", err)
		}
	}
	if err := srv.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	for i := range n {
		if _, _, err := srv.ReadFrom(buf); err != nil {
			t.Fatalf("receive udp datagram %d of %d: %v", i+1, n, err)
		}
	}
}
