//go:build linux

package testbed_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/go-metro/go-metro/internal/testbed"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"
)

// openSniffer opens a packet socket that receives every frame of ifname in
// ns, with a receive timeout, and closes it at cleanup.
func openSniffer(t *testing.T, ns *testbed.NetNS, ifname string) int {
	t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20); err != nil {
		t.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		t.Fatal(err)
	}
	tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return fd
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// sniffed is a frame a sniffer received.
type sniffed struct {
	frame []byte
	out   bool   // sent by the host, rather than received
	vlan  uint16 // the VLAN ID of the tag the kernel took off, or 0
}

// sniff reads frames from fd until a read times out.
func sniff(t *testing.T, fd int) []sniffed {
	t.Helper()
	var frames []sniffed
	for {
		buf := make([]byte, 2048)
		oob := make([]byte, 256)
		n, oobn, _, from, err := unix.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			return frames
		}
		f := sniffed{frame: buf[:n]}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok {
			f.out = ll.Pkttype == unix.PACKET_OUTGOING
		}
		cmsgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cmsgs {
			if c.Header.Level == unix.SOL_PACKET && c.Header.Type == unix.PACKET_AUXDATA {
				aux := (*unix.TpacketAuxdata)(unsafe.Pointer(&c.Data[0]))
				if aux.Status&unix.TP_STATUS_VLAN_VALID != 0 {
					f.vlan = aux.Vlan_tci & 0xfff
				}
			}
		}
		frames = append(frames, f)
	}
}

// checksumOK reports whether the TCP checksum of a segment is right.
func checksumOK(src, dst netip.Addr, seg []byte) bool {
	var s uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			s += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			s += uint32(b[len(b)-1]) << 8
		}
	}
	add(src.AsSlice())
	add(dst.AsSlice())
	s += 6 + uint32(len(seg))
	add(seg)
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return s == 0xffff
}

// TestBlaster sends a few cycles of a small configuration across a veth
// pair and checks every frame that arrives: its checksums, and that each
// ACK acknowledges the data segment before it and echoes its TSval. It also
// checks that the receiving stack, to which the frames are not addressed,
// sends nothing back.
func TestBlaster(t *testing.T) {
	for _, tc := range []struct {
		name string
		v6   bool
		vlan uint16
	}{
		{name: "v4"},
		{name: "v6", v6: true},
		{name: "v4-vlan", vlan: 1234},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := testbed.NewVethPair(t)
			cfg := testbed.BlastConfig{Flows: 5, Window: 2, Payload: 77, VLAN: tc.vlan}
			if tc.v6 {
				cfg.Local, cfg.Remote = pair.ClientAddr6, pair.ServerAddr6
			}
			fd := openSniffer(t, pair.Client, pair.ClientIf)
			b := testbed.NewBlaster(t, pair.Server, pair.ServerIf, cfg)
			cfg = b.Config()
			res, err := b.Blast(context.Background(), 10000, 50*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			var frames [][]byte
			for _, f := range sniff(t, fd) {
				pkt := gopacket.NewPacket(f.frame, layers.LayerTypeEthernet, gopacket.Default)
				if pkt.Layer(layers.LayerTypeTCP) == nil {
					continue // the kernel's own frames, such as MLD reports
				}
				switch {
				case f.out:
					t.Fatalf("the receiver answered: %v", pkt)
				case f.vlan != tc.vlan:
					t.Fatalf("VLAN %d, want %d", f.vlan, tc.vlan)
				}
				frames = append(frames, f.frame)
			}
			type flowState struct {
				dataSeq, dataEnd, dataTS uint32
				data, acks               int
			}
			flows := map[uint16]*flowState{}
			got := 0
			for _, fr := range frames {
				pkt := gopacket.NewPacket(fr, layers.LayerTypeEthernet, gopacket.Default)
				tcp := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP)
				got++
				var src, dst netip.Addr
				if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
					src, dst = netip.AddrFrom4([4]byte(ip4.SrcIP)), netip.AddrFrom4([4]byte(ip4.DstIP))
					var s uint32
					for i := 0; i < 20; i += 2 {
						s += uint32(binary.BigEndian.Uint16(ip4.Contents[i:]))
					}
					for s > 0xffff {
						s = s>>16 + s&0xffff
					}
					if s != 0xffff {
						t.Fatalf("bad IPv4 header checksum in %x", fr)
					}
				} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
					src, dst = netip.AddrFrom16([16]byte(ip6.SrcIP)), netip.AddrFrom16([16]byte(ip6.DstIP))
				}
				if !checksumOK(src, dst, append(tcp.Contents, tcp.Payload...)) {
					t.Fatalf("bad TCP checksum in %x", fr)
				}
				var tsval, tsecr uint32
				for _, o := range tcp.Options {
					if o.OptionType == layers.TCPOptionKindTimestamps {
						tsval, tsecr = binary.BigEndian.Uint32(o.OptionData), binary.BigEndian.Uint32(o.OptionData[4:])
					}
				}
				if src == cfg.Local {
					f := flows[uint16(tcp.SrcPort)]
					if f == nil {
						f = &flowState{}
						flows[uint16(tcp.SrcPort)] = f
					}
					if len(tcp.Payload) != cfg.Payload || dst != cfg.Remote {
						t.Fatalf("data segment %v -> %v with %d bytes", src, dst, len(tcp.Payload))
					}
					if f.data > 0 && (tcp.Seq != f.dataEnd || tsval != f.dataTS+1) {
						t.Fatalf("port %d: seq %d TSval %d after segment ending %d with TSval %d", tcp.SrcPort, tcp.Seq, tsval, f.dataEnd, f.dataTS)
					}
					f.dataSeq, f.dataEnd, f.dataTS = tcp.Seq, tcp.Seq+uint32(cfg.Payload), tsval
					f.data++
					continue
				}
				f := flows[uint16(tcp.DstPort)]
				if f == nil || f.acks != f.data-1 {
					t.Fatalf("ACK on port %d without its data segment", tcp.DstPort)
				}
				if tcp.Ack != f.dataEnd || tsecr != f.dataTS || !tcp.ACK || len(tcp.Payload) != 0 {
					t.Fatalf("ACK %d TSecr %d, want %d and %d", tcp.Ack, tsecr, f.dataEnd, f.dataTS)
				}
				f.acks++
			}
			if uint64(got) != res.Frames {
				t.Errorf("received %d frames, sent %d", got, res.Frames)
			}
			if len(flows) != cfg.Flows {
				t.Errorf("%d flows, want %d", len(flows), cfg.Flows)
			}
			t.Logf("sent %d frames in %v", res.Frames, res.Elapsed)
		})
	}
}

// TestBlasterRate checks that a paced blast keeps its rate, and that a flat
// out one is faster.
func TestBlasterRate(t *testing.T) {
	pair := testbed.NewVethPair(t)
	b := testbed.NewBlaster(t, pair.Server, pair.ServerIf, testbed.BlastConfig{Affinity: []int{0}})
	ctx := context.Background()
	const rate = 50000
	res, err := b.Blast(ctx, rate, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r := res.Rate(); r < rate*0.95 || r > rate*1.05 {
		t.Errorf("paced at %d/s, sent %.0f/s (%d in %v)", rate, r, res.Frames, res.Elapsed)
	}
	flat, err := b.Blast(ctx, 0, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paced %.0f/s, flat out %.0f/s", res.Rate(), flat.Rate())
	if flat.Rate() < rate {
		t.Errorf("flat out %.0f/s, slower than paced %d/s", flat.Rate(), rate)
	}
	if got, want := b.Sent(), res.Frames+flat.Frames; got != want {
		t.Errorf("Sent() = %d, want %d", got, want)
	}
}

// TestBlasterConfig checks that a bad configuration is rejected with the
// bad value named.
func TestBlasterConfig(t *testing.T) {
	ns := testbed.NewNetNS(t)
	for _, tc := range []struct {
		name string
		cfg  testbed.BlastConfig
	}{
		{"mixed families", testbed.BlastConfig{Local: netip.MustParseAddr("2001:db8::1")}},
		{"payload", testbed.BlastConfig{Payload: 1449}},
		{"flows", testbed.BlastConfig{Flows: -1}},
		{"mac", testbed.BlastConfig{DstMAC: net.HardwareAddr{1, 2}}},
		{"vlan", testbed.BlastConfig{VLAN: 4095}},
		{"affinity", testbed.BlastConfig{Affinity: []int{-1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := testbed.OpenBlaster(ns, "lo", tc.cfg)
			if err == nil {
				b.Close()
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
	_, err := testbed.OpenBlaster(ns, "nope0", testbed.BlastConfig{})
	if err == nil || !strings.Contains(err.Error(), "nope0") {
		t.Errorf("missing interface: %v", err)
	}
}
