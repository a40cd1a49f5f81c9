package capture

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// sampleCmp compares Samples: netip.AddrPort has unexported fields.
var sampleCmp = cmpopts.EquateComparable(netip.AddrPort{})

// TestIncomingOnly checks that traffic the local side only receives (a
// one-way capture, or a scan answered by nothing) creates no flow and no
// sample.
func TestIncomingOnly(t *testing.T) {
	sc := script(true)
	var steps []step
	for _, s := range concat(sc.activeOpen(ms(20)), sc.requests(ms(20), ms(100), ms(200))) {
		if s.in {
			steps = append(steps, s)
		}
	}
	steps = append(steps,
		stepIn(ms(300), segSYN(rISN+9)),
		stepIn(ms(301), tseg{seq: rISN + 9, flags: FlagRST}),
		stepIn(ms(302), tseg{seq: rISN + 10, ack: lISN, flags: FlagFIN | FlagACK}),
	)
	e, rec := newTestEngine(t, Config{}, "192.0.2.1")
	newConn(t, e, rttLocal, rttRemote).play(steps)
	want := Stats{Packets: uint64(len(steps)), TCPPackets: uint64(len(steps))}
	if diff := cmp.Diff(want, e.Stats()); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if len(rec.samples) != 0 {
		t.Errorf("samples = %+v, want none", rec.samples)
	}
}

// TestBothLocal checks traffic between two local addresses (loopback, or
// two containers on the host): each side is timed on its own flow, as the
// sender of its segments.
func TestBothLocal(t *testing.T) {
	client := netip.MustParseAddrPort("127.0.0.1:40000")
	server := netip.MustParseAddrPort("127.0.0.2:8080")
	us := func(n float64) time.Duration { return time.Duration(n * float64(time.Microsecond)) }
	tests := []struct {
		name  string
		ts    bool
		cfg   Config
		want  []Sample
		peers []PeerStats
	}{
		{
			name: "no-ts",
			want: []Sample{
				{Time: t0.Add(us(50)), Local: client, Remote: server, Method: MethodHandshake, RTT: us(50)},
				{Time: t0.Add(us(100)), Local: server, Remote: client, Method: MethodHandshake, RTT: us(50)},
				{Time: t0.Add(us(1200)), Local: client, Remote: server, Method: MethodSeqAck, RTT: us(200)},
				{Time: t0.Add(us(1300)), Local: server, Remote: client, Method: MethodSeqAck, RTT: us(100)},
			},
		},
		{
			name: "ts",
			ts:   true,
			want: []Sample{
				{Time: t0.Add(us(50)), Local: client, Remote: server, Method: MethodHandshake, RTT: us(50)},
				{Time: t0.Add(us(100)), Local: server, Remote: client, Method: MethodHandshake, RTT: us(50)},
				{Time: t0.Add(us(1200)), Local: client, Remote: server, Method: MethodTimestamp, RTT: us(200)},
				{Time: t0.Add(us(1300)), Local: server, Remote: client, Method: MethodTimestamp, RTT: us(100)},
			},
		},
		{
			name: "seqack-only",
			cfg:  Config{Methods: onlySeqAck},
			want: []Sample{
				{Time: t0.Add(us(50)), Local: client, Remote: server, Method: MethodSeqAck, RTT: us(50)},
				{Time: t0.Add(us(100)), Local: server, Remote: client, Method: MethodSeqAck, RTT: us(50)},
				{Time: t0.Add(us(1200)), Local: client, Remote: server, Method: MethodSeqAck, RTT: us(200)},
				{Time: t0.Add(us(1300)), Local: server, Remote: client, Method: MethodSeqAck, RTT: us(100)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sc := rttScript{lisn: lISN, risn: rISN, ts: tc.ts, lts: 100, rts: 900_000}
			steps := []step{
				stepOut(0, sc.tsOpt(segSYN(lISN), 100, 0)),
				stepIn(us(50), sc.tsOpt(segSYNACK(rISN, lISN+1), 900, 100)),
				stepOut(us(100), sc.tsOpt(segACK(lISN+1, rISN+1), 100, 900)),
				stepOut(us(1000), sc.tsOpt(segData(lISN+1, rISN+1, reqLen), 101, 900)),
				stepIn(us(1200), sc.tsOpt(segData(rISN+1, lISN+1+reqLen, respLen), 901, 101)),
				stepOut(us(1300), sc.tsOpt(segACK(lISN+1+reqLen, rISN+1+respLen), 101, 901)),
			}
			e, rec := newTestEngine(t, tc.cfg, "127.0.0.0/8")
			newConn(t, e, client.String(), server.String()).play(steps)
			if diff := cmp.Diff(tc.want, rec.samples, sampleCmp); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
			if got := e.Stats(); got.Flows != 2 || got.Peers != 2 {
				t.Errorf("Stats: %d flows, %d peers; want 2 and 2", got.Flows, got.Peers)
			}
			peers := sortStats(e.Drain(nil))
			if len(peers) != 2 ||
				peers[0].PeerKey != AddrPeer(client.Addr(), server.Addr()) || peers[0].Count != 2 ||
				peers[1].PeerKey != AddrPeer(server.Addr(), client.Addr()) || peers[1].Count != 2 {
				t.Errorf("drain = %+v, want the client and the server side, 2 samples each", peers)
			}
		})
	}
}

// TestSampleFields checks what OnSample receives, for IPv4 and IPv6.
func TestSampleFields(t *testing.T) {
	tests := []struct {
		name, local, remote string
	}{
		{"ipv4", "192.0.2.1:40000", "198.51.100.7:443"},
		{"ipv6", "[2001:db8::1]:40000", "[2001:db8:ffff::7]:443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newTestEngine(t, Config{}, netip.MustParseAddrPort(tc.local).Addr().String())
			sc := script(true)
			newConn(t, e, tc.local, tc.remote).play(concat(sc.activeOpen(ms(20)), sc.requests(ms(30), ms(100))))
			l, r := netip.MustParseAddrPort(tc.local), netip.MustParseAddrPort(tc.remote)
			want := []Sample{
				{Time: t0.Add(ms(20)), Local: l, Remote: r, Method: MethodHandshake, RTT: ms(20)},
				{Time: t0.Add(ms(130)), Local: l, Remote: r, Method: MethodTimestamp, RTT: ms(30)},
			}
			if diff := cmp.Diff(want, rec.samples, sampleCmp); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

// TestStats checks the Engine's counters over a mix of frames.
func TestStats(t *testing.T) {
	e, rec := newTestEngine(t, Config{MaxRTT: 25 * time.Millisecond}, "192.0.2.1")
	sc := script(false)
	c := newConn(t, e, rttLocal, rttRemote)
	// 3 + 2×3 TCP frames; samples: handshake 20 ms, 20 ms, and 30 ms
	// (above MaxRTT: discarded).
	c.play(concat(sc.activeOpen(ms(20)), sc.requests(ms(20), ms(100)), sc.requests(ms(30), ms(100), ms(200))[3:]))
	// A second flow, to another peer, closed at once.
	d := newConn(t, e, "192.0.2.1:40001", "198.51.100.8:443")
	d.play([]step{stepOut(ms(300), segSYN(lISN)), stepOut(ms(301), tseg{seq: lISN + 1, flags: FlagRST})})

	ip := buildIP(t, tseg{src: c.local, dst: c.remote, seq: 1, ack: 1, flags: FlagACK})
	udp := append([]byte(nil), ip...)
	udp[9] = 17
	arp := ethFrame(make([]byte, 28))
	arp[12], arp[13] = 0x08, 0x06
	frames := []struct {
		link LinkType
		data []byte
	}{
		{LinkEthernet, ethFrame(ip)[:30]},  // truncated IP header: decode error
		{LinkType(147), ethFrame(ip)},      // unsupported link type: decode error
		{LinkEthernet, ethFrame(udp)},      // not TCP: neither
		{LinkRaw, ip},                      // raw IP: a TCP packet (a duplicate ACK)
		{LinkEthernet, ethFrame(ip, 7, 8)}, // QinQ: a TCP packet, an exact copy of the previous one
		{LinkEthernet, []byte{1, 2, 3}},    // truncated Ethernet header
		{LinkEthernet, arp},                // ARP: neither
	}
	for _, f := range frames {
		e.Process(f.link, f.data, 0, t0.Add(ms(400)))
	}
	want := Stats{
		Packets:          9 + 2 + uint64(len(frames)),
		TCPPackets:       9 + 2 + 2,
		DecodeErrors:     3,
		Flows:            2,
		FlowsCreated:     2,
		Samples:          2,
		SamplesDiscarded: 1,
		Peers:            1,
		Copies:           1,
	}
	got := e.Stats()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Stats (-want +got):\n%s", diff)
	}
	if len(rec.samples) != 2 {
		t.Errorf("OnSample called %d times, want 2 (discarded samples are not passed on)", len(rec.samples))
	}
	const wantString = "packets=18 tcp=13 decode_errors=3 flows=2 evicted=0 samples=2 discarded=1"
	if s := got.String(); s != wantString {
		t.Errorf("String() = %q, want %q", s, wantString)
	}
}

// TestSetLocal checks that the set of local addresses can be replaced
// while capturing, and that an Engine without one tracks nothing.
func TestSetLocal(t *testing.T) {
	sc := script(false)
	e, rec := newTestEngine(t, Config{}, "192.0.2.99")
	c := newConn(t, e, rttLocal, rttRemote)
	c.play(sc.requests(ms(20), ms(100)))
	if st := e.Stats(); st.FlowsCreated != 0 || len(rec.samples) != 0 {
		t.Fatalf("before SetLocal: %d flows created, %d samples; want none", st.FlowsCreated, len(rec.samples))
	}
	ls, err := ParseLocalSet("192.0.2.0/24")
	if err != nil {
		t.Fatal(err)
	}
	e.SetLocal(ls)
	if e.Local() != ls {
		t.Errorf("Local() = %v, want %v", e.Local(), ls)
	}
	c.play(sc.requests(ms(20), ms(100), ms(200))[3:])
	if diff := cmp.Diff([]msample{sa20}, rec.got()); diff != "" {
		t.Errorf("samples after SetLocal (-want +got):\n%s", diff)
	}

	t.Run("no-local-set", func(t *testing.T) {
		e := NewEngine(Config{})
		newConn(t, e, rttLocal, rttRemote).play(concat(sc.activeOpen(ms(20)), sc.requests(ms(20), ms(100))))
		if st := e.Stats(); st.TCPPackets != 6 || st.FlowsCreated != 0 || st.Samples != 0 {
			t.Errorf("Stats = %+v, want 6 TCP packets and nothing else", st)
		}
	})
}

// TestMethodsDefault checks that the zero Methods enables every estimator.
func TestMethodsDefault(t *testing.T) {
	for _, m := range []Methods{0, AllMethods} {
		e := NewEngine(Config{Methods: m})
		if e.methods != AllMethods {
			t.Errorf("Config{Methods: %v}: methods %v, want %v", m, e.methods, AllMethods)
		}
	}
}
