package main

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// twoPeerFrames returns Ethernet frames of 203.0.113.1 opening a
// connection to each of two peers and exchanging a request and response
// with each: RTT 5 ms to 198.51.100.1 and 7 ms to 198.51.100.2.
func twoPeerFrames(t *testing.T) ([][]byte, []time.Time) {
	t.Helper()
	type pkt struct {
		at       time.Duration
		out      bool
		peer     int
		syn, ack bool
		seq, an  uint32
		payload  int
	}
	var pkts []pkt
	for i, rtt := range []time.Duration{5 * time.Millisecond, 7 * time.Millisecond} {
		base := time.Duration(i) * 100 * time.Millisecond
		pkts = append(pkts,
			pkt{at: base, out: true, peer: i, syn: true, seq: 100},
			pkt{at: base + rtt, peer: i, syn: true, ack: true, seq: 900, an: 101},
			pkt{at: base + rtt, out: true, peer: i, ack: true, seq: 101, an: 901},
			pkt{at: base + rtt + time.Millisecond, out: true, peer: i, ack: true, seq: 101, an: 901, payload: 50},
			pkt{at: base + 2*rtt + time.Millisecond, peer: i, ack: true, seq: 901, an: 151, payload: 80},
		)
	}
	local := net.IP{203, 0, 113, 1}
	peers := []net.IP{{198, 51, 100, 1}, {198, 51, 100, 2}}
	start := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	var frames [][]byte
	var times []time.Time
	for _, p := range pkts {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: peers[p.peer], DstIP: local}
		tcp := &layers.TCP{SrcPort: 80, DstPort: layers.TCPPort(40000 + p.peer), Seq: p.seq, Ack: p.an, SYN: p.syn, ACK: p.ack, Window: 65535}
		if p.out {
			ip.SrcIP, ip.DstIP = local, peers[p.peer]
			tcp.SrcPort, tcp.DstPort = tcp.DstPort, tcp.SrcPort
		}
		tcp.SetNetworkLayerForChecksum(ip)
		eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
		buf := gopacket.NewSerializeBuffer()
		err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
			eth, ip, tcp, gopacket.Payload(make([]byte, p.payload)))
		if err != nil {
			t.Fatal(err)
		}
		frames = append(frames, buf.Bytes())
		times = append(times, start.Add(p.at))
	}
	return frames, times
}

func writeTwoPeerCapture(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	frames, times := twoPeerFrames(t)
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
}

func writeTwoPeerCaptureNg(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := pcapgo.NewNgWriter(f, layers.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	frames, times := twoPeerFrames(t)
	for i, fr := range frames {
		ci := gopacket.CaptureInfo{Timestamp: times[i], CaptureLength: len(fr), Length: len(fr)}
		if err := w.WritePacket(ci, fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}
