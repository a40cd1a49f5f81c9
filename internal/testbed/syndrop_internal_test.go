package testbed

import (
	"math/rand/v2"
	"net"
	"slices"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// synFrame describes a crafted frame for TestSynDstPort.
type synFrame struct {
	ipv6     bool
	vlanTags int
	syn, ack bool
	udp      bool
	fragOff  uint16 // IPv4 fragment offset, in 8-byte units
	ipv6Frag bool   // an IPv6 fragment header before TCP
	hopByHop bool   // an IPv6 hop-by-hop options header before TCP
	dstPort  uint16
}

// craft serializes f with gopacket, an implementation independent of
// synDstPort.
func (f synFrame) craft(t *testing.T) []byte {
	t.Helper()
	eth := &layers.Ethernet{
		SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1},
		DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2},
	}
	ls := []gopacket.SerializableLayer{eth}
	inner := &eth.EthernetType
	for i := range f.vlanTags {
		*inner = layers.EthernetTypeDot1Q
		if i == 0 && f.vlanTags > 1 {
			*inner = layers.EthernetTypeQinQ
		}
		tag := &layers.Dot1Q{VLANIdentifier: uint16(10 + i)}
		ls = append(ls, tag)
		inner = &tag.Type
	}
	var nl gopacket.NetworkLayer
	if f.ipv6 {
		*inner = layers.EthernetTypeIPv6
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP,
			SrcIP: net.ParseIP("2001:db8::1"), DstIP: net.ParseIP("2001:db8::2")}
		nl = ip
		ls = append(ls, ip)
		if f.hopByHop {
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := &layers.IPv6HopByHop{}
			hbh.NextHeader = layers.IPProtocolTCP
			hbh.Options = []*layers.IPv6HopByHopOption{{OptionType: 1, OptionLength: 4, OptionData: make([]byte, 4)}}
			ls = append(ls, hbh)
		}
		if f.ipv6Frag {
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			ls = append(ls, &layers.IPv6Fragment{NextHeader: layers.IPProtocolTCP, Identification: 1})
		}
	} else {
		*inner = layers.EthernetTypeIPv4
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, FragOffset: f.fragOff,
			SrcIP: net.IPv4(192, 0, 2, 1), DstIP: net.IPv4(192, 0, 2, 2)}
		nl = ip
		ls = append(ls, ip)
		if f.udp {
			ip.Protocol = layers.IPProtocolUDP
		}
	}
	if f.udp {
		udp := &layers.UDP{SrcPort: 40000, DstPort: layers.UDPPort(f.dstPort)}
		_ = udp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, udp)
	} else {
		tcp := &layers.TCP{SrcPort: 40000, DstPort: layers.TCPPort(f.dstPort), Seq: 1, SYN: f.syn, ACK: f.ack, Window: 64240,
			Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 0xb4}}}}
		_ = tcp.SetNetworkLayerForChecksum(nl)
		ls = append(ls, tcp)
	}
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestSynDstPort(t *testing.T) {
	tests := []struct {
		name     string
		frame    synFrame
		wantPort uint16
		wantOK   bool
	}{
		{name: "ipv4-syn", frame: synFrame{syn: true, dstPort: 5001}, wantPort: 5001, wantOK: true},
		{name: "ipv6-syn", frame: synFrame{ipv6: true, syn: true, dstPort: 443}, wantPort: 443, wantOK: true},
		{name: "ipv4-vlan-syn", frame: synFrame{vlanTags: 1, syn: true, dstPort: 80}, wantPort: 80, wantOK: true},
		{name: "ipv6-qinq-syn", frame: synFrame{ipv6: true, vlanTags: 2, syn: true, dstPort: 80}, wantPort: 80, wantOK: true},
		{name: "ipv6-hop-by-hop-syn", frame: synFrame{ipv6: true, hopByHop: true, syn: true, dstPort: 22}, wantPort: 22, wantOK: true},
		{name: "ipv6-first-fragment-syn", frame: synFrame{ipv6: true, ipv6Frag: true, syn: true, dstPort: 22}, wantPort: 22, wantOK: true},
		{name: "ipv4-syn-ack", frame: synFrame{syn: true, ack: true, dstPort: 5001}},
		{name: "ipv6-syn-ack", frame: synFrame{ipv6: true, syn: true, ack: true, dstPort: 5001}},
		{name: "ipv4-ack", frame: synFrame{ack: true, dstPort: 5001}},
		{name: "ipv4-later-fragment", frame: synFrame{syn: true, fragOff: 10, dstPort: 5001}},
		{name: "ipv4-udp", frame: synFrame{udp: true, dstPort: 5001}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.frame.craft(t)
			port, ok := synDstPort(b)
			if port != tt.wantPort || ok != tt.wantOK {
				t.Errorf("synDstPort = %d, %v; want %d, %v", port, ok, tt.wantPort, tt.wantOK)
			}
			// No prefix of the frame panics, and none too short to hold
			// the TCP flags of the smallest frame is taken for a SYN.
			for n := range len(b) {
				if _, ok := synDstPort(b[:n]); ok && n < 14+20+14 {
					t.Errorf("synDstPort of the first %d bytes = ok", n)
				}
			}
		})
	}
}

func TestSynDstPortNoAllocs(t *testing.T) {
	b := synFrame{ipv6: true, hopByHop: true, syn: true, dstPort: 22}.craft(t)
	if n := testing.AllocsPerRun(100, func() { _, _ = synDstPort(b) }); n != 0 {
		t.Errorf("synDstPort allocates %v times", n)
	}
}

// TestDirectionDropsSYN checks the counter and that dropped SYNs draw
// nothing from the random generator.
func TestDirectionDropsSYN(t *testing.T) {
	syn := synFrame{syn: true, dstPort: 5001}.craft(t)
	other := synFrame{syn: true, dstPort: 5002}.craft(t)
	im := Impairment{Loss: 0.5, DropSYNToPort: 5001}
	a := newDirection(im, 3, 1, 16)
	b := newDirection(Impairment{Loss: 0.5}, 3, 1, 16)
	for i := range 1000 {
		if i%3 == 0 {
			if !a.dropSYN(syn) {
				t.Fatalf("frame %d: SYN to port 5001 not dropped", i)
			}
			continue
		}
		if a.dropSYN(other) {
			t.Fatalf("frame %d: SYN to port 5002 dropped", i)
		}
		_, la := a.admit(monoTime(i))
		_, lb := b.admit(monoTime(i))
		if la != lb {
			t.Fatalf("frame %d: a dropped SYN changed the fate of the next frame", i)
		}
	}
	if got := a.stats().SYNDropped; got != 334 {
		t.Errorf("SYNDropped = %d, want 334", got)
	}
	if b.dropSYN(syn) {
		t.Error("a direction without DropSYNToPort dropped a SYN")
	}
}

// TestSynDstPortMutated feeds synDstPort crafted frames with random bytes
// changed: it must never panic.
func TestSynDstPortMutated(t *testing.T) {
	seeds := [][]byte{
		synFrame{syn: true, dstPort: 1}.craft(t),
		synFrame{ipv6: true, vlanTags: 2, hopByHop: true, ipv6Frag: true, syn: true, dstPort: 1}.craft(t),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := slices.Clone(seeds[rng.IntN(len(seeds))])
		for range 1 + rng.IntN(4) {
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		_, _ = synDstPort(b[:rng.IntN(len(b)+1)])
	}
}
