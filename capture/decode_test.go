package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The endpoints of the decoder's test segments: a is the client, b the
// server.
var (
	decA4 = netip.MustParseAddrPort("192.0.2.1:43210")
	decB4 = netip.MustParseAddrPort("198.51.100.7:443")
	decA6 = netip.MustParseAddrPort("[2001:db8::1]:43210")
	decB6 = netip.MustParseAddrPort("[2001:db8:ffff::7]:443")
)

// pktCmp compares Packets: netip.Addr is comparable but has unexported
// fields.
var pktCmp = cmp.Options{cmpopts.EquateComparable(netip.Addr{}), cmpopts.IgnoreUnexported(Packet{})}

// checkWords fails tb if the address words of p, which pktCmp leaves out,
// are not those of its addresses.
func checkWords(tb testing.TB, p *Packet) {
	tb.Helper()
	if wordsAddr(p.srcW) != p.Src.Unmap() || wordsAddr(p.dstW) != p.Dst.Unmap() {
		tb.Errorf("address words %x %x do not match %v %v", p.srcW, p.dstW, p.Src, p.Dst)
	}
}

// decSeg returns s between decA4 and decB4, or their IPv6 counterparts.
func decSeg(v6 bool, s tseg) tseg {
	s.src, s.dst = decA4, decB4
	if v6 {
		s.src, s.dst = decA6, decB6
	}
	return s
}

// decPkt returns p with the addresses and ports decSeg uses.
func decPkt(v6 bool, p Packet) Packet {
	a, b := decA4, decB4
	if v6 {
		a, b = decA6, decB6
	}
	p.Src, p.Dst = a.Addr(), b.Addr()
	p.SrcPort, p.DstPort = a.Port(), b.Port()
	return p
}

// decShape is a TCP segment to decode and the Packet it decodes to,
// addresses aside (decSeg and decPkt fill them in).
type decShape struct {
	name string
	seg  tseg
	want Packet
}

// decShapes are the TCP segments that every link framing is tested with.
var decShapes = []decShape{
	{
		name: "syn-mss-sackperm-ws-ts",
		seg:  tseg{seq: 1000, flags: FlagSYN, win: 64240, mss: 1460, sackPerm: true, hasWS: true, ws: 7, ts: true, tsval: 111},
		want: Packet{
			Seq: 1000, Flags: FlagSYN, Window: 64240,
			HasTS: true, HasMSS: true, HasWScale: true, SACKPermitted: true,
			TSval: 111, MSS: 1460, WScale: 7,
		},
	},
	{
		name: "synack-mss-ws",
		seg:  tseg{seq: 5000, ack: 1001, flags: FlagSYN | FlagACK, win: 65160, mss: 1440, hasWS: true, ws: 14},
		want: Packet{
			Seq: 5000, Ack: 1001, Flags: FlagSYN | FlagACK, Window: 65160,
			HasMSS: true, HasWScale: true, MSS: 1440, WScale: 14,
		},
	},
	{
		name: "data-ts",
		seg:  tseg{seq: 2000, ack: 3000, flags: FlagPSH | FlagACK, win: 502, payload: 100, ts: true, tsval: 0xdeadbeef, tsecr: 0x01020304},
		want: Packet{
			Seq: 2000, Ack: 3000, Flags: FlagPSH | FlagACK, Window: 502, PayloadLen: 100,
			HasTS: true, TSval: 0xdeadbeef, TSecr: 0x01020304,
		},
	},
	{
		name: "ack-no-options",
		seg:  tseg{seq: 0xfffffff0, ack: 0x7fffffff, flags: FlagACK, win: 1},
		want: Packet{Seq: 0xfffffff0, Ack: 0x7fffffff, Flags: FlagACK, Window: 1},
	},
	{
		name: "ack-ts-sack1",
		seg: tseg{seq: 10, ack: 20, flags: FlagACK, win: 300, ts: true, tsval: 1, tsecr: 2,
			sack: []SACKBlock{{100, 200}}},
		want: Packet{
			Seq: 10, Ack: 20, Flags: FlagACK, Window: 300, HasTS: true, TSval: 1, TSecr: 2,
			NumSACK: 1, SACK: [4]SACKBlock{{100, 200}},
		},
	},
	{
		name: "ack-ts-sack2",
		seg: tseg{seq: 10, ack: 20, flags: FlagACK, win: 300, ts: true, tsval: 1, tsecr: 2,
			sack: []SACKBlock{{100, 200}, {300, 400}}},
		want: Packet{
			Seq: 10, Ack: 20, Flags: FlagACK, Window: 300, HasTS: true, TSval: 1, TSecr: 2,
			NumSACK: 2, SACK: [4]SACKBlock{{100, 200}, {300, 400}},
		},
	},
	{
		name: "ack-ts-sack3",
		seg: tseg{seq: 10, ack: 20, flags: FlagACK, win: 300, ts: true, tsval: 1, tsecr: 2,
			sack: []SACKBlock{{100, 200}, {300, 400}, {0xfffffff0, 0x10}}},
		want: Packet{
			Seq: 10, Ack: 20, Flags: FlagACK, Window: 300, HasTS: true, TSval: 1, TSecr: 2,
			NumSACK: 3, SACK: [4]SACKBlock{{100, 200}, {300, 400}, {0xfffffff0, 0x10}},
		},
	},
	{
		name: "ack-sack4",
		seg: tseg{seq: 10, ack: 20, flags: FlagACK | FlagECE | FlagCWR, win: 300,
			sack: []SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}},
		want: Packet{
			Seq: 10, Ack: 20, Flags: FlagACK | FlagECE | FlagCWR, Window: 300,
			NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}},
		},
	},
	{
		name: "fin-ack-ts-payload",
		seg:  tseg{seq: 7, ack: 8, flags: FlagFIN | FlagACK | FlagURG, win: 9, payload: 1, ts: true, tsval: 10, tsecr: 11},
		want: Packet{
			Seq: 7, Ack: 8, Flags: FlagFIN | FlagACK | FlagURG, Window: 9, PayloadLen: 1,
			HasTS: true, TSval: 10, TSecr: 11,
		},
	},
	{
		name: "rst",
		seg:  tseg{seq: 12345, flags: FlagRST, win: 0},
		want: Packet{Seq: 12345, Flags: FlagRST, Window: 65535},
	},
}

// framing is one way to put an IP packet on a link.
type framing struct {
	name  string
	link  LinkType
	frame []byte
}

// framings returns ip in every link framing the decoder supports.
func framings(ip []byte) []framing {
	v6 := ip[0]>>4 == 6
	fs := []framing{
		{"eth", LinkEthernet, ethFrame(ip)},
		{"vlan", LinkEthernet, ethFrame(ip, 100)},
		{"qinq", LinkEthernet, ethFrame(ip, 200, 100)}, // 0x88a8 outer, 0x8100 inner
		{"qinq-9100", LinkEthernet, vlanEthFrame(ip, [2]uint16{etherTypeQinQ2, 300}, [2]uint16{etherTypeVLAN, 100})},
		{"vlan-x8", LinkEthernet, ethFrame(ip, 1, 2, 3, 4, 5, 6, 7, 8)},
		{"sll", LinkLinuxSLL, sllFrame(ip)},
		{"sll2", LinkLinuxSLL2, sll2Frame(ip)},
		{"raw", LinkRaw, ip},
	}
	if !v6 {
		return append(fs,
			framing{"ipv4", LinkIPv4, ip},
			framing{"null-le-af2", LinkNull, nullFrame(ip, 2, false)},
			framing{"null-be-af2", LinkNull, nullFrame(ip, 2, true)},
			framing{"loop-af2", LinkLoop, nullFrame(ip, 2, true)},
		)
	}
	fs = append(fs, framing{"ipv6", LinkIPv6, ip})
	for _, af := range []uint32{10, 24, 28, 30} {
		fs = append(fs,
			framing{fmt.Sprintf("null-le-af%d", af), LinkNull, nullFrame(ip, af, false)},
			framing{fmt.Sprintf("null-be-af%d", af), LinkNull, nullFrame(ip, af, true)},
			framing{fmt.Sprintf("loop-af%d", af), LinkLoop, nullFrame(ip, af, true)},
		)
	}
	return fs
}

// decodeFresh decodes into a zero Packet.
func decodeFresh(link LinkType, frame []byte, wireLen int) (Packet, error) {
	var p Packet
	err := Decode(link, frame, wireLen, &p)
	return p, err
}

func TestDecode(t *testing.T) {
	type testCase struct {
		name    string
		link    LinkType
		frame   []byte
		wireLen int
		want    Packet
	}
	var tests []testCase
	for _, v6 := range []bool{false, true} {
		ipName := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		for _, s := range decShapes {
			ip := buildIP(t, decSeg(v6, s.seg))
			for _, f := range framings(ip) {
				want := decPkt(v6, s.want)
				// Cooked captures tell the device: sllFrame and
				// sll2Frame (on interface 2) mark the frame outgoing.
				switch f.link {
				case LinkLinuxSLL:
					want.Dev = MakeDevice(0, PacketOutgoing)
				case LinkLinuxSLL2:
					want.Dev = MakeDevice(2, PacketOutgoing)
				}
				tests = append(tests, testCase{
					name:  f.name + "/" + ipName + "/" + s.name,
					link:  f.link,
					frame: f.frame,
					want:  want,
				})
			}
		}
	}

	data4 := buildIP(t, decSeg(false, decShapes[2].seg))
	data6 := buildIP(t, decSeg(true, decShapes[2].seg))
	wantData4 := decPkt(false, decShapes[2].want)
	wantData6 := decPkt(true, decShapes[2].want)
	// wantPayload returns want with another PayloadLen.
	wantPayload := func(want Packet, n uint32) Packet { want.PayloadLen = n; return want }

	tests = append(tests,
		testCase{
			name:  "eth/ipv4-options/data-ts",
			link:  LinkEthernet,
			frame: ethFrame(withIPv4Options(data4, []byte{1, 1, 0x94, 4, 0, 0, 0x07, 7, 4, 0, 0, 0, 0})), // NOP NOP router-alert record-route
			want:  wantData4,
		},
		testCase{
			name:  "raw/ipv4-max-ihl/data-ts",
			link:  LinkRaw,
			frame: withIPv4Options(data4, make([]byte, 40)),
			want:  wantData4,
		},
		testCase{
			name:  "raw/ipv4-first-fragment-mf/data-ts",
			link:  LinkRaw,
			frame: patched(data4, 6, 0x20, 0), // MF set, offset 0
			want:  wantData4,
		},
		testCase{
			name:  "eth/ipv4-ethernet-padding/ack",
			link:  LinkEthernet,
			frame: append(ethFrame(buildIP(t, decSeg(false, decShapes[3].seg))), make([]byte, 6)...),
			want:  decPkt(false, decShapes[3].want),
		},
		testCase{
			name:  "raw/ipv6-hop-by-hop/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, ipv6Opts(0, 1)),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-hop-by-hop-builder/data-ts",
			link:  LinkRaw,
			frame: buildIP(t, decSeg(true, tseg{seq: 2000, ack: 3000, flags: FlagPSH | FlagACK, win: 502, payload: 100, ts: true, tsval: 0xdeadbeef, tsecr: 0x01020304, ipv6ExtHopByHop: true})),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-routing/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, ipv6Routing(3)),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-destopts/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, ipv6Opts(60, 2)),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-fragment-offset0/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, ipv6Frag(0, true)),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-ah/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, ipv6AH()),
			want:  wantData6,
		},
		testCase{
			name: "eth/ipv6-full-chain/data-ts",
			link: LinkEthernet,
			frame: ethFrame(withIPv6Ext(data6, ipv6Opts(0, 1), ipv6Opts(60, 1), ipv6Routing(1),
				ipv6Frag(0, false), ipv6AH(), ipv6Opts(60, 4))),
			want: wantData6,
		},
		testCase{
			name:  "vlan/ipv6-mobility-hip-shim6/data-ts",
			link:  LinkEthernet,
			frame: ethFrame(withIPv6Ext(data6, ipv6Opts(135, 1), ipv6Opts(139, 2), ipv6Opts(140, 1)), 7),
			want:  wantData6,
		},
		testCase{
			name:  "raw/ipv6-16-extension-headers/data-ts",
			link:  LinkRaw,
			frame: withIPv6Ext(data6, repeatExt(ipv6Opts(60, 1), maxExtHdrs)...),
			want:  wantData6,
		},
		testCase{
			name:    "eth/ipv4-big-tcp/data-ts",
			link:    LinkEthernet,
			frame:   ethFrame(patched(data4, 2, 0, 0)),
			wireLen: 14 + len(data4),
			want:    wantData4,
		},
		testCase{
			// A BIG TCP super-packet cut by the snap length: only the wire
			// length tells the payload.
			name:    "eth/ipv4-big-tcp-snaplen/data-ts",
			link:    LinkEthernet,
			frame:   ethFrame(patched(data4, 2, 0, 0))[:128],
			wireLen: 14 + 20 + 32 + 150000,
			want:    wantPayload(wantData4, 150000),
		},
		testCase{
			name:    "vlan/ipv4-big-tcp-snaplen/data-ts",
			link:    LinkEthernet,
			frame:   ethFrame(patched(data4, 2, 0, 0), 42)[:96],
			wireLen: 18 + 20 + 32 + 70000,
			want:    wantPayload(wantData4, 70000),
		},
		testCase{
			name:    "raw/ipv6-jumbo/data-ts",
			link:    LinkRaw,
			frame:   patched(data6, 4, 0, 0)[:100],
			wireLen: 40 + 32 + 100000,
			want:    wantPayload(wantData6, 100000),
		},
		testCase{
			// With a length in the IP header, the wire length is not used.
			name:    "eth/ipv4-wirelen-ignored/data-ts",
			link:    LinkEthernet,
			frame:   ethFrame(data4),
			wireLen: 9000,
			want:    wantData4,
		},
		testCase{
			name:    "eth/ipv4-snaplen-cut/data-ts",
			link:    LinkEthernet,
			frame:   ethFrame(data4)[:14+20+32+1],
			wireLen: 14 + len(data4),
			want:    wantData4,
		},
	)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeFresh(tt.link, tt.frame, tt.wireLen)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, pktCmp); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
			checkWords(t, &got)

			// Decoding into a Packet that holds another segment gives the
			// same result: no option or field survives from it.
			dirty := Packet{
				Dev: MakeDevice(9, PacketHost),
				Src: netip.MustParseAddr("10.9.9.9"), SrcPort: 9, Seq: 9, Flags: 0xff, PayloadLen: 9,
				HasTS: true, HasMSS: true, HasWScale: true, SACKPermitted: true,
				TSval: 9, TSecr: 9, MSS: 9, WScale: 9, NumSACK: 4,
			}
			if err := Decode(tt.link, tt.frame, tt.wireLen, &dirty); err != nil {
				t.Fatalf("Decode into a used Packet: %v", err)
			}
			for i := dirty.NumSACK; i < MaxSACKBlocks; i++ {
				dirty.SACK[i] = SACKBlock{} // blocks past NumSACK are unspecified
			}
			if diff := cmp.Diff(tt.want, dirty, pktCmp); diff != "" {
				t.Errorf("Decode into a used Packet mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// repeatExt returns n copies of x.
func repeatExt(x ext6, n int) []ext6 {
	out := make([]ext6, n)
	for i := range out {
		out[i] = x
	}
	return out
}

func TestDecodeOptions(t *testing.T) {
	// base is the segment every case adds its raw options to; want is
	// what it decodes to without options.
	base := tseg{src: decA4, dst: decB4, seq: 100, ack: 200, flags: FlagACK, win: 1000}
	want := func(p Packet) Packet {
		p.Src, p.Dst, p.SrcPort, p.DstPort = decA4.Addr(), decB4.Addr(), decA4.Port(), decB4.Port()
		p.Seq, p.Ack, p.Flags, p.Window = 100, 200, FlagACK, 1000
		return p
	}
	ts := []byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	tests := []struct {
		name    string
		opts    []byte // padded with EOL to a multiple of 4 bytes
		want    Packet
		wantErr error
	}{
		{name: "none", opts: nil, want: want(Packet{})},
		{name: "nops-only", opts: []byte{1, 1, 1, 1, 1, 1, 1, 1}, want: want(Packet{})},
		{name: "eol-only", opts: []byte{0, 0, 0, 0}, want: want(Packet{})},
		{name: "mss", opts: []byte{2, 4, 0x05, 0xb4}, want: want(Packet{HasMSS: true, MSS: 1460})},
		{name: "wscale", opts: []byte{3, 3, 14}, want: want(Packet{HasWScale: true, WScale: 14})},
		{name: "sack-permitted", opts: []byte{4, 2}, want: want(Packet{SACKPermitted: true})},
		{name: "timestamps", opts: ts, want: want(Packet{HasTS: true, TSval: 1, TSecr: 2})},
		{
			name: "sack-1-block",
			opts: []byte{5, 10, 0, 0, 0, 1, 0, 0, 0, 2},
			want: want(Packet{NumSACK: 1, SACK: [4]SACKBlock{{1, 2}}}),
		},
		{
			name: "sack-4-blocks",
			opts: []byte{1, 1, 5, 34, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 0, 7, 0, 0, 0, 8},
			want: want(Packet{NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}),
		},
		{
			name: "eol-ends-list",
			opts: append([]byte{2, 4, 0x05, 0xb4, 0}, ts...),
			want: want(Packet{HasMSS: true, MSS: 1460}),
		},
		{
			name: "garbage-after-eol",
			opts: []byte{3, 3, 2, 0, 0xff, 0xff, 0xff, 0xff},
			want: want(Packet{HasWScale: true, WScale: 2}),
		},
		{
			name: "unknown-kinds-skipped",
			opts: []byte{30, 4, 0, 0, 34, 2, 253, 6, 0xf9, 0x89, 0, 0, 2, 4, 0x02, 0x18},
			want: want(Packet{HasMSS: true, MSS: 536}),
		},
		{
			name: "unknown-kind-length-3",
			opts: []byte{99, 3, 0, 4, 2},
			want: want(Packet{SACKPermitted: true}),
		},
		{
			name: "unknown-kind-fills-header",
			opts: append([]byte{99, 40}, make([]byte, 38)...),
			want: want(Packet{}),
		},
		{
			name: "later-timestamp-wins",
			opts: append(append([]byte{}, ts...), 8, 10, 0, 0, 0, 3, 0, 0, 0, 4),
			want: want(Packet{HasTS: true, TSval: 3, TSecr: 4}),
		},
		{
			name: "all-kinds-40-bytes",
			opts: []byte{2, 4, 0x23, 0x28, 4, 2, 3, 3, 9, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 5, 18, 0, 0, 0, 7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 10, 1, 1, 0},
			want: want(Packet{
				HasMSS: true, MSS: 9000, SACKPermitted: true, HasWScale: true, WScale: 9,
				HasTS: true, TSval: 5, TSecr: 6, NumSACK: 2, SACK: [4]SACKBlock{{7, 8}, {9, 10}},
			}),
		},

		{name: "timestamps-short-9", opts: []byte{8, 9, 0, 0, 0, 1, 0, 0, 0}, wantErr: ErrMalformed},
		{name: "timestamps-short-6", opts: []byte{8, 6, 0, 0, 0, 1}, wantErr: ErrMalformed},
		{name: "timestamps-long-11", opts: []byte{8, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0}, wantErr: ErrMalformed},
		{name: "timestamps-past-header-end", opts: []byte{1, 1, 8, 10, 0, 0, 0, 1}, wantErr: ErrMalformed},
		{name: "mss-length-2", opts: []byte{2, 2}, wantErr: ErrMalformed},
		{name: "mss-length-5", opts: []byte{2, 5, 0, 0, 0}, wantErr: ErrMalformed},
		{name: "mss-past-header-end", opts: []byte{1, 1, 1, 2}, wantErr: ErrMalformed},
		{name: "wscale-length-2", opts: []byte{3, 2}, wantErr: ErrMalformed},
		{name: "wscale-length-4", opts: []byte{3, 4, 7, 0}, wantErr: ErrMalformed},
		{name: "sack-length-2", opts: []byte{5, 2}, wantErr: ErrMalformed},
		{name: "sack-length-11", opts: []byte{5, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0}, wantErr: ErrMalformed},
		{name: "sack-5-blocks", opts: append([]byte{5, 42}, make([]byte, 38)...), wantErr: ErrMalformed},
		{name: "sack-past-header-end", opts: []byte{5, 18, 0, 0, 0, 1, 0, 0, 0, 2}, wantErr: ErrMalformed},
		{name: "unknown-past-header-end", opts: []byte{99, 41, 0, 0}, wantErr: ErrMalformed},
		{name: "kind-without-length-at-end", opts: []byte{1, 1, 1, 30}, wantErr: ErrMalformed},
	}
	// Lengths 0, 1 and 3 for every known kind and an unknown one.
	for _, k := range []struct {
		name string
		kind byte
	}{{"mss", 2}, {"wscale", 3}, {"sack-permitted", 4}, {"sack", 5}, {"timestamps", 8}, {"unknown", 99}} {
		for _, n := range []byte{0, 1, 3} {
			tc := struct {
				name    string
				opts    []byte
				want    Packet
				wantErr error
			}{name: fmt.Sprintf("%s-length-%d", k.name, n), opts: []byte{k.kind, n, 7, 0}, wantErr: ErrMalformed}
			switch {
			case n == 3 && k.kind == 3:
				tc.wantErr, tc.want = nil, want(Packet{HasWScale: true, WScale: 7})
			case n == 3 && k.kind == 99:
				tc.wantErr, tc.want = nil, want(Packet{})
			}
			tests = append(tests, tc)
		}
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base
			s.rawOpts = tt.opts
			got, err := decodeFresh(LinkIPv4, buildIP(t, s), 0)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode: got error %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tt.want, got, pktCmp); diff != "" {
				t.Errorf("Decode mismatch (-want +got):\n%s", diff)
			}
			checkWords(t, &got)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	v4 := buildIP(t, decSeg(false, decShapes[2].seg)) // data-ts: 20 + 32 + 100 bytes
	v6 := buildIP(t, decSeg(true, decShapes[2].seg))  // data-ts: 40 + 32 + 100 bytes
	ack4 := buildIP(t, decSeg(false, tseg{flags: FlagACK}))
	const tcp4, tcp6 = 20, 40 // offsets of the TCP headers in v4 and v6

	tests := []struct {
		name    string
		link    LinkType
		frame   []byte
		wireLen int
		wantErr error
	}{
		{name: "link-unknown-147", link: 147, frame: ethFrame(v4), wantErr: ErrLinkType},
		{name: "link-unknown-ffff", link: 0xffff, frame: v4, wantErr: ErrLinkType},
		{name: "link-unknown-empty", link: 2, frame: nil, wantErr: ErrLinkType},

		{name: "eth-arp", link: LinkEthernet, frame: rawEthFrame(0x0806, make([]byte, 28)), wantErr: ErrNotTCP},
		{name: "eth-8023-length", link: LinkEthernet, frame: rawEthFrame(0x0040, make([]byte, 64)), wantErr: ErrNotTCP},
		{name: "vlan-arp", link: LinkEthernet, frame: rawEthFrame(etherTypeVLAN, []byte{0, 5, 0x08, 0x06, 0, 0}), wantErr: ErrNotTCP},
		{name: "sll-arp", link: LinkLinuxSLL, frame: patched(sllFrame(v4), 14, 0x08, 0x06), wantErr: ErrNotTCP},
		{name: "sll2-arp", link: LinkLinuxSLL2, frame: patched(sll2Frame(v4), 0, 0x08, 0x06), wantErr: ErrNotTCP},
		{name: "null-af-unknown", link: LinkNull, frame: nullFrame(v4, 7, false), wantErr: ErrNotTCP},
		{name: "null-af-zero", link: LinkNull, frame: nullFrame(v4, 0, false), wantErr: ErrNotTCP},
		{name: "loop-af-little-endian", link: LinkLoop, frame: nullFrame(v4, 2, false), wantErr: ErrNotTCP},

		{name: "raw-version-5", link: LinkRaw, frame: patched(v4, 0, 0x55), wantErr: ErrMalformed},
		{name: "raw-version-0", link: LinkRaw, frame: patched(v4, 0, 0x05), wantErr: ErrMalformed},
		{name: "eth-ipv4-type-ipv6-packet", link: LinkEthernet, frame: rawEthFrame(etherTypeIPv4, v6), wantErr: ErrMalformed},
		{name: "eth-ipv6-type-ipv4-packet", link: LinkEthernet, frame: rawEthFrame(etherTypeIPv6, v4), wantErr: ErrMalformed},
		{name: "linkipv4-ipv6-packet", link: LinkIPv4, frame: v6, wantErr: ErrMalformed},
		{name: "linkipv6-ipv4-packet", link: LinkIPv6, frame: v4, wantErr: ErrMalformed},
		{name: "null-af-inet6-ipv4-packet", link: LinkNull, frame: nullFrame(v4, 30, false), wantErr: ErrMalformed},
		{name: "vlan-x9", link: LinkEthernet, frame: ethFrame(v4, 1, 2, 3, 4, 5, 6, 7, 8, 9), wantErr: ErrMalformed},
		{name: "vlan-x9-sll", link: LinkLinuxSLL, frame: vlanSLL(v4, 9), wantErr: ErrMalformed},
		{name: "vlan-x8-sll", link: LinkLinuxSLL, frame: vlanSLL(ack4, 8), wantErr: nil},

		{name: "ipv4-udp", link: LinkRaw, frame: withProto(v4, 17), wantErr: ErrNotTCP},
		{name: "ipv4-icmp", link: LinkEthernet, frame: ethFrame(withProto(v4, 1)), wantErr: ErrNotTCP},
		{name: "ipv4-gre", link: LinkIPv4, frame: withProto(v4, 47), wantErr: ErrNotTCP},
		{name: "ipv6-udp", link: LinkRaw, frame: withProto(v6, 17), wantErr: ErrNotTCP},
		{name: "ipv6-icmpv6", link: LinkEthernet, frame: ethFrame(withProto(v6, 58)), wantErr: ErrNotTCP},
		{name: "ipv6-no-next-header", link: LinkIPv6, frame: withProto(v6, 59), wantErr: ErrNotTCP},
		{name: "ipv6-esp", link: LinkIPv6, frame: withProto(v6, 50), wantErr: ErrNotTCP},
		{name: "ipv6-chain-to-udp", link: LinkRaw, frame: withIPv6Ext(withProto(v6, 17), ipv6Opts(0, 1), ipv6Frag(0, true)), wantErr: ErrNotTCP},

		{name: "ipv4-non-first-fragment", link: LinkRaw, frame: patched(v4, 6, 0x00, 0xb9), wantErr: ErrFragment},
		{name: "ipv4-non-first-fragment-mf", link: LinkRaw, frame: patched(v4, 6, 0x20, 0x01), wantErr: ErrFragment},
		{name: "ipv4-non-first-fragment-short", link: LinkRaw, frame: patched(v4, 6, 0x1f, 0xff)[:24], wantErr: ErrFragment},
		{name: "ipv6-non-first-fragment", link: LinkRaw, frame: withIPv6Ext(v6, ipv6Frag(185, false)), wantErr: ErrFragment},
		{name: "ipv6-non-first-fragment-after-hbh", link: LinkRaw, frame: withIPv6Ext(v6, ipv6Opts(0, 1), ipv6Frag(1, true)), wantErr: ErrFragment},

		{name: "ipv4-ihl-4", link: LinkRaw, frame: patched(v4, 0, 0x44), wantErr: ErrMalformed},
		{name: "ipv4-ihl-0", link: LinkRaw, frame: patched(v4, 0, 0x40), wantErr: ErrMalformed},
		{name: "ipv4-ihl-past-end", link: LinkRaw, frame: patched(v4, 0, 0x4f)[:40], wantErr: ErrTruncated},
		{name: "ipv4-total-below-ihl", link: LinkRaw, frame: patched(v4, 2, 0, 19), wantErr: ErrMalformed},
		{name: "ipv4-total-below-ihl-options", link: LinkRaw, frame: patched(withIPv4Options(v4, make([]byte, 8)), 2, 0, 27), wantErr: ErrMalformed},
		{name: "ipv4-total-below-ihl+20", link: LinkRaw, frame: patched(v4, 2, 0, 39), wantErr: ErrMalformed},
		{name: "ipv4-total-below-ihl+20-options", link: LinkRaw, frame: patched(withIPv4Options(v4, make([]byte, 4)), 2, 0, 43), wantErr: ErrMalformed},
		{name: "ipv4-total-zero-no-wirelen", link: LinkRaw, frame: patched(v4, 2, 0, 0), wantErr: ErrMalformed},
		{name: "ipv4-total-zero-short-wirelen", link: LinkEthernet, frame: ethFrame(patched(v4, 2, 0, 0)), wireLen: 14 + 39, wantErr: ErrMalformed},

		{name: "tcp-doff-4", link: LinkRaw, frame: patched(v4, tcp4+12, 0x40), wantErr: ErrMalformed},
		{name: "tcp-doff-0", link: LinkRaw, frame: patched(v6, tcp6+12, 0x00), wantErr: ErrMalformed},
		{name: "tcp-doff-past-ip-length", link: LinkRaw, frame: patched(ack4, tcp4+12, 0xf0), wantErr: ErrMalformed},
		{name: "tcp-doff-past-ip-length-v6", link: LinkRaw, frame: patched(v6, 4, 0, 30), wantErr: ErrMalformed},
		{name: "tcp-doff-past-packet-end", link: LinkRaw, frame: patched(v4, tcp4+12, 0xf0)[:tcp4+40], wantErr: ErrTruncated},
		{name: "tcp-header-past-ip-length", link: LinkRaw, frame: patched(v4, 2, 0, 20+19), wantErr: ErrMalformed},
		{name: "tcp-header-past-packet-end", link: LinkRaw, frame: v4[:tcp4+19], wantErr: ErrTruncated},
		{name: "tcp-options-malformed-via-eth", link: LinkEthernet, frame: ethFrame(buildIP(t, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{8, 1}}))), wantErr: ErrMalformed},
		{name: "tcp-options-malformed-via-ipv6", link: LinkIPv6, frame: buildIP(t, decSeg(true, tseg{flags: FlagACK, rawOpts: []byte{8, 6, 0, 0}})), wantErr: ErrMalformed},

		{name: "ipv6-payload-below-20", link: LinkRaw, frame: patched(v6, 4, 0, 19), wantErr: ErrMalformed},
		{name: "ipv6-payload-zero-no-wirelen", link: LinkRaw, frame: patched(v6, 4, 0, 0), wantErr: ErrMalformed},
		{name: "ipv6-payload-zero-wirelen-40", link: LinkRaw, frame: patched(v6, 4, 0, 0), wireLen: 40, wantErr: ErrMalformed},
		{name: "ipv6-hbh-past-payload-length", link: LinkRaw, frame: patched(withIPv6Ext(v6, ipv6Opts(0, 1)), 41, 255), wantErr: ErrMalformed},
		{name: "ipv6-routing-past-payload-length", link: LinkRaw, frame: patched(withIPv6Ext(v6, ipv6Opts(0, 1), ipv6Routing(1)), 4, 0, 12), wantErr: ErrMalformed},
		{name: "ipv6-ah-past-payload-length", link: LinkRaw, frame: patched(withIPv6Ext(v6, ipv6AH()), 4, 0, 20), wantErr: ErrMalformed},
		{name: "ipv6-fragment-past-payload-length", link: LinkRaw, frame: patched(withIPv6Ext(v6, ipv6Frag(0, true)), 4, 0, 7), wantErr: ErrMalformed},
		{name: "ipv6-ext-eats-tcp-header", link: LinkRaw, frame: patched(withIPv6Ext(v6, ipv6Opts(60, 1)), 4, 0, 8+19), wantErr: ErrMalformed},
		{name: "ipv6-hbh-past-packet-end", link: LinkRaw, frame: withIPv6Ext(v6, ipv6Opts(0, 16))[:40+100], wantErr: ErrTruncated},
		{name: "ipv6-hbh-length-byte-missing", link: LinkRaw, frame: withIPv6Ext(v6, ipv6Opts(0, 1))[:41], wantErr: ErrTruncated},
		{name: "ipv6-fragment-cut", link: LinkRaw, frame: withIPv6Ext(v6, ipv6Frag(0, false))[:47], wantErr: ErrTruncated},
		{name: "ipv6-ext-chain-over-limit", link: LinkRaw, frame: withIPv6Ext(v6, repeatExt(ipv6Opts(60, 1), maxExtHdrs+1)...), wantErr: ErrMalformed},
		{name: "ipv6-ext-chain-over-limit-mixed", link: LinkEthernet, frame: ethFrame(withIPv6Ext(v6, append(repeatExt(ipv6Frag(0, true), maxExtHdrs), ipv6Opts(0, 1))...)), wantErr: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Packet
			err := Decode(tt.link, tt.frame, tt.wireLen, &p)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Decode: got error %v, want %v", err, tt.wantErr)
			}
			wantDecodeErr := tt.wantErr == ErrTruncated || tt.wantErr == ErrMalformed || tt.wantErr == ErrLinkType
			if got := IsDecodeError(err); got != wantDecodeErr {
				t.Errorf("IsDecodeError(%v) = %v, want %v", err, got, wantDecodeErr)
			}
		})
	}
}

// vlanSLL returns ip in a Linux cooked v1 header followed by n 802.1Q tags.
func vlanSLL(ip []byte, n int) []byte {
	f := append([]byte(nil), sllFrame(ip)[:16]...)
	binary.BigEndian.PutUint16(f[14:], etherTypeVLAN)
	for i := range n {
		next := uint16(etherTypeVLAN)
		if i == n-1 {
			next = ethType(ip)
		}
		f = binary.BigEndian.AppendUint16(f, uint16(i+1))
		f = binary.BigEndian.AppendUint16(f, next)
	}
	return append(f, ip...)
}

// truncFrame is a valid frame and how many of its bytes are headers.
type truncFrame struct {
	name  string
	link  LinkType
	frame []byte
	hdr   int // link, IP and TCP headers: the rest is payload
}

// truncFrames returns valid frames of every framing, IPv4 and IPv6, with
// options, IPv4 options and IPv6 extension headers, and a payload.
func truncFrames(tb testing.TB) []truncFrame {
	tb.Helper()
	const payload = 48
	var out []truncFrame
	add := func(name string, ip []byte) {
		for _, f := range framings(ip) {
			out = append(out, truncFrame{name: f.name + "/" + name, link: f.link, frame: f.frame, hdr: len(f.frame) - payload})
		}
	}
	for _, v6 := range []bool{false, true} {
		ipName := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		full := buildIP(tb, decSeg(v6, tseg{seq: 1, ack: 2, flags: FlagACK | FlagPSH, payload: payload, ts: true, tsval: 3, tsecr: 4,
			sack: []SACKBlock{{5, 6}, {7, 8}}}))
		add(ipName+"-ts-sack2", full)
		add(ipName+"-no-options", buildIP(tb, decSeg(v6, tseg{seq: 1, ack: 2, flags: FlagACK, payload: payload})))
		if v6 {
			add(ipName+"-ext-chain", withIPv6Ext(full, ipv6Opts(0, 1), ipv6Routing(2), ipv6Frag(0, true), ipv6AH(), ipv6Opts(60, 1)))
		} else {
			add(ipName+"-ip-options", withIPv4Options(full, []byte{0x94, 4, 0, 0, 1, 1, 1, 0}))
		}
	}
	return out
}

func TestDecodeTruncated(t *testing.T) {
	for _, tf := range truncFrames(t) {
		t.Run(tf.name, func(t *testing.T) {
			want, err := decodeFresh(tf.link, tf.frame, 0)
			if err != nil {
				t.Fatalf("Decode of the whole frame: %v", err)
			}
			for _, wireLen := range []int{0, len(tf.frame)} {
				// Cuts inside the headers.
				for n := range tf.hdr {
					// A copy of exactly n bytes, so that a read past the
					// cut would panic rather than see the rest.
					cut := append([]byte(nil), tf.frame[:n]...)
					if _, err := decodeFresh(tf.link, cut, wireLen); err != ErrTruncated {
						t.Errorf("cut at %d of %d header bytes, wireLen %d: got error %v, want %v", n, tf.hdr, wireLen, err, ErrTruncated)
					}
				}
				// Cuts inside the payload decode as the whole frame does.
				for n := tf.hdr; n <= len(tf.frame); n++ {
					cut := append([]byte(nil), tf.frame[:n]...)
					got, err := decodeFresh(tf.link, cut, wireLen)
					if err != nil {
						t.Errorf("cut at %d (payload byte %d), wireLen %d: %v", n, n-tf.hdr, wireLen, err)
						continue
					}
					if diff := cmp.Diff(want, got, pktCmp); diff != "" {
						t.Errorf("cut at %d (payload byte %d), wireLen %d: mismatch (-want +got):\n%s", n, n-tf.hdr, wireLen, diff)
					}
				}
			}
		})
	}
}

func TestDecodeBigTCPTruncated(t *testing.T) {
	// An IPv4 BIG TCP super-packet (tot_len 0) cut by the snap length:
	// with the wire length it decodes at every cut past the headers, and
	// without it every cut is malformed or truncated.
	ip := patched(buildIP(t, decSeg(false, tseg{seq: 1, flags: FlagACK, payload: 64, ts: true, tsval: 5})), 2, 0, 0)
	frame := ethFrame(ip)
	const wire = 200000
	hdr := 14 + 20 + 32
	want := decPkt(false, Packet{Seq: 1, Flags: FlagACK, Window: 65535, PayloadLen: wire - uint32(hdr), HasTS: true, TSval: 5})
	for n := range len(frame) + 1 {
		cut := append([]byte(nil), frame[:n]...)
		got, err := decodeFresh(LinkEthernet, cut, wire)
		switch {
		case n < hdr && err != ErrTruncated:
			t.Errorf("cut at %d: got error %v, want %v", n, err, ErrTruncated)
		case n >= hdr && err != nil:
			t.Errorf("cut at %d: %v", n, err)
		case n >= hdr:
			if diff := cmp.Diff(want, got, pktCmp); diff != "" {
				t.Errorf("cut at %d: mismatch (-want +got):\n%s", n, diff)
			}
		}
		if _, err := decodeFresh(LinkEthernet, cut, 0); !IsDecodeError(err) {
			t.Errorf("cut at %d without wire length: got error %v, want a decode error", n, err)
		}
	}
}

func TestLinkTypeString(t *testing.T) {
	tests := []struct {
		name      string
		link      LinkType
		want      string
		supported bool
	}{
		{"null", LinkNull, "NULL", true},
		{"ethernet", LinkEthernet, "ETHERNET", true},
		{"raw", LinkRaw, "RAW", true},
		{"loop", LinkLoop, "LOOP", true},
		{"sll", LinkLinuxSLL, "LINUX_SLL", true},
		{"ipv4", LinkIPv4, "IPV4", true},
		{"ipv6", LinkIPv6, "IPV6", true},
		{"sll2", LinkLinuxSLL2, "LINUX_SLL2", true},
		{"ieee802_11", 105, "LINKTYPE_105", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.link.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
			if got := tt.link.Supported(); got != tt.supported {
				t.Errorf("Supported() = %v, want %v", got, tt.supported)
			}
		})
	}
}

func TestPacketSeqLen(t *testing.T) {
	tests := []struct {
		name string
		p    Packet
		want uint32
	}{
		{"pure-ack", Packet{Flags: FlagACK}, 0},
		{"data", Packet{Flags: FlagACK, PayloadLen: 100}, 100},
		{"syn", Packet{Flags: FlagSYN}, 1},
		{"fin-data", Packet{Flags: FlagFIN | FlagACK, PayloadLen: 10}, 11},
		{"syn-fin", Packet{Flags: FlagSYN | FlagFIN, PayloadLen: 1}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.SeqLen(); got != tt.want {
				t.Errorf("SeqLen() = %d, want %d", got, tt.want)
			}
		})
	}
}
