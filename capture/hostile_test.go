package capture

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The hostile corpus is a committed set of crafted Ethernet frames, built
// here from the frame builders of builder_test.go, in
// testdata/hostile/hostile.pcap, with the list of the frames and what
// Decode makes of each in frames.tsv and README.md. TestHostileCorpus keeps
// the files and this code in step; after changing the frames, run
//
//	go test -run '^TestHostileCorpus$' ./capture/ -update-hostile
//
// or set GO_METRO_UPDATE_HOSTILE=1. The check package injects the frames
// into a live capture (check/faults_test.go).
var updateHostile = flag.Bool("update-hostile", false, "rewrite the hostile frame corpus in testdata/hostile")

const hostileDir = "testdata/hostile"

// hostileFrame is one frame of the corpus and the result Decode must give
// for it as a whole frame on the wire (wireLen = len(frame)).
type hostileFrame struct {
	name  string
	desc  string
	frame []byte
	want  error // nil, ErrNotTCP, ErrFragment, ErrTruncated or ErrMalformed
}

// hostileDecodeNames name Decode's results in frames.tsv and README.md.
var hostileDecodeNames = map[error]string{
	nil:          "ok",
	ErrNotTCP:    "not-tcp",
	ErrFragment:  "fragment",
	ErrTruncated: "truncated",
	ErrMalformed: "malformed",
}

// The MAC addresses of every frame: the destination belongs to no
// interface, so that a receiving host's IP stack drops the frames
// (PACKET_OTHERHOST) while packet sockets still see them; the live test
// writes each frame's index into the last two bytes of the source.
var (
	hostileDstMAC = []byte{0x02, 0, 0, 0, 0, 0xfe}
	hostileSrcMAC = []byte{0x02, 0xfe, 0, 0, 0, 0}
)

// hostileEther returns an Ethernet frame of the corpus with EtherType etype
// behind the given tags (TPID, VLAN ID), outermost first.
func hostileEther(etype uint16, payload []byte, tags ...[2]uint16) []byte {
	f := make([]byte, 0, 14+4*len(tags)+len(payload))
	f = append(f, hostileDstMAC...)
	f = append(f, hostileSrcMAC...)
	for _, t := range tags {
		f = binary.BigEndian.AppendUint16(f, t[0])
		f = binary.BigEndian.AppendUint16(f, t[1])
	}
	f = binary.BigEndian.AppendUint16(f, etype)
	return append(f, payload...)
}

// hostileEth returns ip in an Ethernet frame of the corpus, with the
// EtherType of its version.
func hostileEth(ip []byte, tags ...[2]uint16) []byte {
	return hostileEther(ethType(ip), ip, tags...)
}

// hostileOptWant is what Decode must make of one TCP option of kind with
// length byte n, where area bytes remain in the option list from its start
// (RFC 9293 section 3.2, RFC 7323, RFC 2018): single-byte kinds are always
// fine; any other needs a length of at least 2 that stays inside the list;
// the known kinds need their exact lengths; unknown kinds are skipped.
func hostileOptWant(kind byte, n, area int) error {
	if kind == 0 || kind == 1 {
		return nil
	}
	if n < 2 || n > area {
		return ErrMalformed
	}
	ok := true
	switch kind {
	case 2: // MSS
		ok = n == 4
	case 3: // window scale
		ok = n == 3
	case 4: // SACK permitted
		ok = n == 2
	case 5: // SACK: 1 to 4 blocks of 8 bytes
		ok = n >= 10 && (n-2)%8 == 0 && (n-2)/8 <= MaxSACKBlocks
	case 8: // timestamps
		ok = n == 10
	}
	if !ok {
		return ErrMalformed
	}
	return nil
}

// hostileOptKinds are the option kinds of the corpus besides EOL and NOP:
// the known ones, and unknown, obsolete or experimental ones.
var hostileOptKinds = []byte{2, 3, 4, 5, 8, 6, 7, 9, 19, 27, 28, 29, 30, 34, 69, 172, 253, 254, 255}

var hostileOptNames = map[byte]string{2: "mss", 3: "wscale", 4: "sackperm", 5: "sack", 8: "ts"}

func hostileOptName(k byte) string {
	if n, ok := hostileOptNames[k]; ok {
		return n
	}
	return "kind" + strconv.Itoa(int(k))
}

// hostileFrames returns the corpus, in order.
func hostileFrames(tb testing.TB) []hostileFrame {
	tb.Helper()
	var out []hostileFrame
	add := func(name, desc string, want error, frame []byte) {
		out = append(out, hostileFrame{name: name, desc: desc, frame: frame, want: want})
	}
	eth := hostileEth
	seg := func(v6 bool, s tseg) []byte { return buildIP(tb, decSeg(v6, s)) }
	ack := tseg{seq: 1000, ack: 2000, flags: FlagACK}
	withOpts := func(v6 bool, raw ...byte) []byte {
		s := ack
		s.rawOpts = raw
		return seg(v6, s)
	}
	// data4 and data6: 16 payload bytes with timestamps (TCP header 32
	// bytes): 68 and 88 bytes.
	data := tseg{seq: 1000, ack: 2000, flags: FlagACK | FlagPSH, payload: 16, ts: true, tsval: 7, tsecr: 9}
	data4, data6 := seg(false, data), seg(true, data)
	const tcp4, tcp6 = 20, 40 // TCP header offsets in data4 and data6

	// TCP options, in an IPv4 ACK. The list is padded with EOL (0) to a
	// multiple of 4 bytes.
	for _, k := range hostileOptKinds {
		n := hostileOptName(k)
		for _, l := range []int{0, 1, 2, 3} {
			add(fmt.Sprintf("opt-%s-len%d", n, l), fmt.Sprintf("option kind %d with length %d", k, l),
				hostileOptWant(k, l, 4), eth(withOpts(false, k, byte(l))))
		}
		add("opt-"+n+"-past-end-by-1", fmt.Sprintf("option kind %d with length 5 in a 4-byte option list", k),
			ErrMalformed, eth(withOpts(false, k, 5)))
		add("opt-"+n+"-past-end-255", fmt.Sprintf("option kind %d with length 255 in a 4-byte option list", k),
			ErrMalformed, eth(withOpts(false, k, 255)))
		add("opt-"+n+"-no-length", fmt.Sprintf("option kind %d in the last byte of the list, without its length byte", k),
			ErrMalformed, eth(withOpts(false, 1, 1, 1, k)))
	}
	for _, k := range hostileOptKinds[5:] {
		n := hostileOptName(k)
		add("opt-"+n+"-len6", fmt.Sprintf("unknown option kind %d of 6 bytes, then a timestamp option", k),
			nil, eth(withOpts(false, k, 6, 1, 2, 3, 4, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2)))
		add("opt-"+n+"-len40", fmt.Sprintf("unknown option kind %d filling the whole 40-byte list", k),
			nil, eth(withOpts(false, append([]byte{k, 40}, make([]byte, 38)...)...)))
	}
	for _, o := range []struct {
		name string
		want error
		raw  []byte
	}{
		{"opt-mss-len4", nil, []byte{2, 4, 5, 0xb4}},
		{"opt-mss-len5", ErrMalformed, []byte{2, 5, 5, 0xb4, 0}},
		{"opt-wscale-len4", ErrMalformed, []byte{3, 4, 14, 0}},
		{"opt-sackperm-len4", ErrMalformed, []byte{4, 4, 0, 0}},
		{"opt-sack-len10", nil, []byte{5, 10, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"opt-sack-len34", nil, append([]byte{5, 34}, make([]byte, 32)...)},
		{"opt-sack-len11", ErrMalformed, append([]byte{5, 11}, make([]byte, 9)...)},
		{"opt-sack-len42", ErrMalformed, append([]byte{5, 42}, make([]byte, 38)...)},
		{"opt-ts-len9", ErrMalformed, []byte{8, 9, 0, 0, 0, 1, 0, 0, 0}},
		{"opt-ts-len10", nil, []byte{8, 10, 0, 0, 0, 1, 0, 0, 0, 2}},
		{"opt-ts-len11", ErrMalformed, []byte{8, 11, 0, 0, 0, 1, 0, 0, 0, 2, 0}},
		{"opt-eol-then-garbage", nil, []byte{0, 0xff, 0xff, 0xff}},
		{"opt-eol-then-bad-ts", nil, []byte{0, 8, 3, 0}},
		{"opt-nop-x4", nil, []byte{1, 1, 1, 1}},
		{"opt-nop-x40", nil, bytes.Repeat([]byte{1}, 40)},
		{"opt-nop-then-eol", nil, []byte{1, 0, 0, 0}},
		{"opt-nop-then-mss-len0", ErrMalformed, []byte{1, 2, 0, 0}},
		{"opt-nop-then-kind99-past-end", ErrMalformed, []byte{1, 99, 40, 0}},
		{"opt-handshake-set", nil, []byte{2, 4, 5, 0xb4, 4, 2, 3, 3, 7, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0}},
		{"opt-ts-then-kind99-past-end", ErrMalformed, []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 99, 40}},
		{"opt-ts-then-kind-at-end", ErrMalformed, []byte{1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 1, 99}},
	} {
		add(o.name, fmt.Sprintf("option list % x", o.raw), o.want, eth(withOpts(false, o.raw...)))
	}
	add("opt-ipv6-ts-len10", "IPv6 ACK with a timestamp option", nil, eth(withOpts(true, 1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2)))
	add("opt-ipv6-ts-len9", "IPv6 ACK with a timestamp option of length 9", ErrMalformed, eth(withOpts(true, 8, 9, 0, 0, 0, 1, 0, 0, 0)))
	add("opt-ipv6-kind99-past-end", "IPv6 ACK with an unknown option of length 40 in a 4-byte list", ErrMalformed, eth(withOpts(true, 99, 40)))

	// TCP data offset.
	for d := range 5 {
		add(fmt.Sprintf("tcp-doff-%d", d), fmt.Sprintf("TCP data offset %d (%d bytes), below the 20-byte header", d, 4*d),
			ErrMalformed, eth(patched(data4, tcp4+12, byte(d<<4))))
	}
	add("tcp-doff-5-over-options", "data offset 5 on a segment with timestamps: the options count as payload", nil, eth(patched(data4, tcp4+12, 5<<4)))
	add("tcp-doff-6-cuts-option", "data offset 6 cuts a timestamp option after 4 of its 10 bytes", ErrMalformed,
		eth(patched(withOpts(false, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2), tcp4+12, 6<<4)))
	add("tcp-doff-15-past-ip-length", "data offset 15 (60 bytes) in a 48-byte segment", ErrMalformed, eth(patched(data4, tcp4+12, 15<<4)))
	add("tcp-doff-15-ipv6-past-ip-length", "IPv6: data offset 15 in a 48-byte segment", ErrMalformed, eth(patched(data6, tcp6+12, 15<<4)))
	add("tcp-doff-15-nops", "data offset 15 with 40 bytes of NOPs", nil, eth(withOpts(false, bytes.Repeat([]byte{1}, 40)...)))
	add("tcp-doff-15-past-frame", "data offset 15 inside the IP length, but the frame ends 40 bytes into the TCP header", ErrTruncated,
		eth(withOpts(false, bytes.Repeat([]byte{1}, 40)...))[:14+20+40])

	// IPv4 header length and total length.
	for ihl := range 5 {
		add(fmt.Sprintf("ipv4-ihl-%d", ihl), fmt.Sprintf("IPv4 header length %d (%d bytes), below 5", ihl, 4*ihl),
			ErrMalformed, eth(patched(data4, 0, 0x40|byte(ihl))))
	}
	add("ipv4-ihl-6-no-options", "IPv4 header length 6 without options: the TCP header is read 4 bytes late, with data offset 0", ErrMalformed,
		eth(patched(data4, 0, 0x46)))
	add("ipv4-ihl-6-options", "IPv4 with 4 bytes of options (NOPs)", nil, eth(withIPv4Options(data4, []byte{1, 1, 1, 1})))
	add("ipv4-ihl-15-options", "IPv4 with 40 bytes of options (NOPs), the most", nil, eth(withIPv4Options(data4, bytes.Repeat([]byte{1}, 40))))
	add("ipv4-ihl-15-total-40", "IPv4 header length 60 with total length 40", ErrMalformed, eth(patched(data4, 0, 0x4f, 0, 0, 40)))
	add("ipv4-ihl-15-past-frame", "IPv4 header length 60, the frame ends 40 bytes into the IP header", ErrTruncated,
		eth(patched(data4, 0, 0x4f, 0, 0, 200))[:14+40])
	for _, tl := range []struct {
		total uint16
		want  error
		what  string
	}{
		{0, nil, "0, as IPv4 BIG TCP sends: the length comes from the wire"},
		{1, ErrMalformed, "1, below the header"},
		{19, ErrMalformed, "19, below the header"},
		{20, ErrMalformed, "20: no room for a TCP header"},
		{39, ErrMalformed, "39: a 19-byte TCP header"},
		{40, ErrMalformed, "40: 20 bytes, less than the 32-byte TCP header"},
		{51, ErrMalformed, "51: one byte short of the TCP header"},
		{52, nil, "52: the TCP header without payload, the rest is padding"},
		{60, nil, "60, shorter than the frame, as with Ethernet padding"},
		{69, ErrMalformed, "69, one byte more than the frame on the wire"},
		{1500, ErrMalformed, "1500, more than the frame on the wire"},
		{65535, ErrMalformed, "65535, the largest, more than the frame on the wire"},
	} {
		add(fmt.Sprintf("ipv4-total-%d", tl.total), "IPv4 total length "+tl.what+" (the packet has 68 bytes)", tl.want,
			eth(patched(data4, 2, byte(tl.total>>8), byte(tl.total))))
	}
	for _, pl := range []struct {
		plen uint16
		want error
		what string
	}{
		{0, nil, "0, as a jumbogram or IPv6 BIG TCP: the length comes from the wire"},
		{19, ErrMalformed, "19: no room for a TCP header"},
		{31, ErrMalformed, "31: one byte short of the TCP header"},
		{32, nil, "32: the TCP header without payload, the rest is padding"},
		{49, ErrMalformed, "49, one byte more than the frame on the wire"},
		{65535, ErrMalformed, "65535, the largest, more than the frame on the wire"},
	} {
		add(fmt.Sprintf("ipv6-payload-length-%d", pl.plen), "IPv6 payload length "+pl.what+" (the payload has 48 bytes)", pl.want,
			eth(patched(data6, 4, byte(pl.plen>>8), byte(pl.plen))))
	}
	add("ipv4-type-ipv6-packet", "EtherType IPv4 on an IPv6 packet", ErrMalformed, hostileEther(etherTypeIPv4, data6))
	add("ipv6-type-ipv4-packet", "EtherType IPv6 on an IPv4 packet", ErrMalformed, hostileEther(etherTypeIPv6, data4))
	add("ipv4-version-0", "EtherType IPv4, IP version 0", ErrMalformed, eth(patched(data4, 0, 0x05)))
	add("ipv4-version-15", "EtherType IPv4, IP version 15", ErrMalformed, hostileEther(etherTypeIPv4, patched(data4, 0, 0xf5)))
	add("ipv4-first-fragment", "IPv4 first fragment (more fragments, offset 0)", nil, eth(patched(data4, 6, 0x20, 0)))
	add("ipv4-fragment-offset-1", "IPv4 fragment at offset 8: no TCP header", ErrFragment, eth(patched(data4, 6, 0, 1)))
	add("ipv4-fragment-offset-max", "IPv4 fragment at the largest offset", ErrFragment, eth(patched(data4, 6, 0x1f, 0xff)))

	// IPv6 extension headers: each kind, chains, loops and overruns.
	for _, x := range []struct {
		name string
		ext  ext6
	}{
		{"hop-by-hop", ipv6Opts(0, 1)},
		{"routing", ipv6Routing(1)},
		{"fragment-0", ipv6Frag(0, true)},
		{"destination", ipv6Opts(60, 1)},
		{"ah", ipv6AH()},
		{"mobility", ipv6Opts(135, 1)},
		{"hip", ipv6Opts(139, 1)},
		{"shim6", ipv6Opts(140, 1)},
	} {
		add("ipv6-ext-"+x.name, fmt.Sprintf("IPv6 with one extension header %d before TCP", x.ext.proto), nil, eth(withIPv6Ext(data6, x.ext)))
	}
	add("ipv6-ext-chain-6", "IPv6 hop-by-hop, destination, routing, fragment 0, AH, destination (32 bytes), TCP", nil,
		eth(withIPv6Ext(data6, ipv6Opts(0, 1), ipv6Opts(60, 1), ipv6Routing(1), ipv6Frag(0, false), ipv6AH(), ipv6Opts(60, 4))))
	for _, n := range []int{maxExtHdrs, maxExtHdrs + 1, 40, 150} {
		want := error(ErrMalformed)
		if n <= maxExtHdrs {
			want = nil
		}
		add(fmt.Sprintf("ipv6-loop-hop-by-hop-x%d", n), fmt.Sprintf("IPv6 hop-by-hop header whose next header is hop-by-hop again, %d times, then TCP", n),
			want, eth(withIPv6Ext(data6, repeatExt(ipv6Opts(0, 1), n)...)))
	}
	add("ipv6-loop-destination-x17", "17 destination options headers in a row", ErrMalformed, eth(withIPv6Ext(data6, repeatExt(ipv6Opts(60, 1), maxExtHdrs+1)...)))
	add("ipv6-loop-fragment-x17", "17 fragment headers (offset 0) in a row", ErrMalformed, eth(withIPv6Ext(data6, repeatExt(ipv6Frag(0, true), maxExtHdrs+1)...)))
	add("ipv6-loop-routing-x17", "17 routing headers in a row", ErrMalformed, eth(withIPv6Ext(data6, repeatExt(ipv6Routing(1), maxExtHdrs+1)...)))
	{
		// A hop-by-hop header whose next header is itself, and nothing after
		// it: the IP payload ends where the next header should start.
		ip := append([]byte(nil), data6[:40]...)
		ip[6] = 0
		ip = append(ip, 0, 0, 1, 4, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(ip[4:], 8)
		add("ipv6-loop-hop-by-hop-then-end", "a hop-by-hop header whose next header is hop-by-hop, and the packet ends", ErrTruncated, eth(ip))
	}
	hbh := withIPv6Ext(data6, ipv6Opts(0, 1))
	add("ipv6-hop-by-hop-len255-past-payload", "hop-by-hop header length 255 (2048 bytes) in a 56-byte payload", ErrMalformed, eth(patched(hbh, 41, 255)))
	add("ipv6-hop-by-hop-len255-past-frame", "hop-by-hop header length 255, payload length 65535, the frame ends first", ErrTruncated,
		eth(patched(patched(hbh, 41, 255), 4, 0xff, 0xff)))
	ah := withIPv6Ext(data6, ipv6AH())
	add("ipv6-ah-len255-past-payload", "AH length 255 (1028 bytes) in a 72-byte payload", ErrMalformed, eth(patched(ah, 41, 255)))
	add("ipv6-ah-len0", "AH length 0 (8 bytes): TCP is read from inside the AH, with data offset 0", ErrMalformed, eth(patched(ah, 41, 0)))
	add("ipv6-ext-past-payload-length", "hop-by-hop then destination options, payload length 12: the second header overruns it", ErrMalformed,
		eth(patched(withIPv6Ext(data6, ipv6Opts(0, 1), ipv6Opts(60, 1)), 4, 0, 12)))
	add("ipv6-ext-eats-tcp-header", "destination options header, payload length leaves 19 bytes for TCP", ErrMalformed,
		eth(patched(withIPv6Ext(data6, ipv6Opts(60, 1)), 4, 0, 8+19)))
	add("ipv6-fragment-header-cut", "the frame ends 4 bytes into a fragment header", ErrTruncated, eth(withIPv6Ext(data6, ipv6Frag(0, false))[:44]))
	add("ipv6-ext-length-byte-missing", "the frame ends 1 byte into a hop-by-hop header", ErrTruncated, eth(hbh[:41]))
	add("ipv6-fragment-offset-1", "IPv6 fragment header with offset 8: no TCP header", ErrFragment, eth(withIPv6Ext(data6, ipv6Frag(1, true))))
	add("ipv6-hop-by-hop-then-fragment-offset-185", "hop-by-hop, then a fragment at offset 1480", ErrFragment,
		eth(withIPv6Ext(data6, ipv6Opts(0, 1), ipv6Frag(185, false))))
	add("ipv6-no-next-header", "IPv6 next header 59 (none)", ErrNotTCP, eth(withProto(data6, 59)))
	add("ipv6-esp", "IPv6 ESP", ErrNotTCP, eth(withProto(data6, 50)))
	add("ipv6-next-header-253", "IPv6 next header 253 (experimental)", ErrNotTCP, eth(withProto(data6, 253)))
	add("ipv6-hop-by-hop-then-udp", "hop-by-hop header, then UDP", ErrNotTCP, eth(withIPv6Ext(withProto(data6, 17), ipv6Opts(0, 1))))

	// Stacked VLAN tags.
	tags := func(tpid uint16, n int) [][2]uint16 {
		t := make([][2]uint16, n)
		for i := range t {
			t[i] = [2]uint16{etherTypeVLAN, uint16(100 + i)}
		}
		if n > 1 {
			t[0][0] = tpid
		}
		return t
	}
	add("vlan-x1", "one 802.1Q tag", nil, eth(data4, tags(etherTypeVLAN, 1)...))
	add("vlan-x2-qinq", "802.1ad then 802.1Q", nil, eth(data4, tags(etherTypeQinQ, 2)...))
	add("vlan-x2-8100", "two 802.1Q tags", nil, eth(data4, tags(etherTypeVLAN, 2)...))
	add("vlan-x2-9100", "0x9100 then 802.1Q", nil, eth(data6, tags(etherTypeQinQ2, 2)...))
	add("vlan-x3", "802.1ad then two 802.1Q tags", nil, eth(data4, tags(etherTypeQinQ, 3)...))
	add("vlan-x8", "802.1ad then seven 802.1Q tags: the most Decode follows", nil, eth(data4, tags(etherTypeQinQ, 8)...))
	add("vlan-x8-ipv6", "eight tags, IPv6", nil, eth(data6, tags(etherTypeQinQ, 8)...))
	for _, n := range []int{9, 10, 16} {
		add(fmt.Sprintf("vlan-x%d", n), fmt.Sprintf("%d stacked tags", n), ErrMalformed, eth(data4, tags(etherTypeQinQ, n)...))
	}
	nine := make([][2]uint16, 9)
	for i := range nine {
		nine[i] = [2]uint16{etherTypeQinQ2, uint16(i + 1)}
	}
	add("vlan-x9-9100", "nine 0x9100 tags", ErrMalformed, eth(data4, nine...))
	add("vlan-arp", "one 802.1Q tag, then ARP", ErrNotTCP, hostileEther(0x0806, make([]byte, 28), tags(etherTypeVLAN, 1)...))
	vlan1 := eth(data4, tags(etherTypeVLAN, 1)...)
	add("vlan-cut-in-tag", "the frame ends 2 bytes into an 802.1Q tag", ErrTruncated, vlan1[:16])
	add("vlan-cut-after-tag", "the frame ends right after an 802.1Q tag", ErrTruncated, vlan1[:18])
	add("vlan-cut-2-after-tag", "the frame ends 2 bytes after an 802.1Q tag", ErrTruncated, vlan1[:20])

	// Zero and maximum ports, and other extreme header fields.
	for _, v6 := range []bool{false, true} {
		fam := map[bool]string{false: "ipv4", true: "ipv6"}[v6]
		for _, p := range [][2]uint16{{0, 0}, {0, 65535}, {65535, 0}, {65535, 65535}} {
			ip := seg(v6, ack)
			off := tcp4
			if v6 {
				off = tcp6
			}
			ip = patched(ip, off, byte(p[0]>>8), byte(p[0]), byte(p[1]>>8), byte(p[1]))
			add(fmt.Sprintf("ports-%s-%d-%d", fam, p[0], p[1]), fmt.Sprintf("%s ACK from port %d to port %d", fam, p[0], p[1]), nil, eth(ip))
		}
	}
	add("seq-ack-max", "sequence and acknowledgement numbers 0xffffffff", nil, eth(seg(false, tseg{seq: 0xffffffff, ack: 0xffffffff, flags: FlagACK})))
	add("flags-none", "no TCP flag set", nil, eth(seg(false, tseg{seq: 1, ack: 2})))
	add("flags-all", "every TCP flag set, SYN, FIN and RST together", nil, eth(seg(false, tseg{seq: 1, ack: 2, flags: 0xff, payload: 4})))
	add("window-0-urgent-max", "window 0, urgent pointer 0xffff", nil, eth(patched(seg(false, tseg{seq: 1, ack: 2, flags: FlagACK | FlagURG, win: 1}), tcp4+14, 0, 0, 0, 0, 0xff, 0xff)))
	big4 := seg(false, tseg{seq: 1, ack: 2, flags: FlagACK, payload: 1500 - 20 - 32, ts: true})
	add("ipv4-1514-bytes", "a full-size IPv4 frame (1514 bytes), longer than the snap length", nil, eth(big4))
	big6 := seg(true, tseg{seq: 1, ack: 2, flags: FlagACK, payload: 1500 - 40 - 32, ts: true})
	add("ipv6-1514-bytes", "a full-size IPv6 frame (1514 bytes)", nil, eth(big6))

	// Not TCP.
	add("arp", "ARP", ErrNotTCP, hostileEther(0x0806, make([]byte, 28)))
	add("lldp", "LLDP", ErrNotTCP, hostileEther(0x88cc, make([]byte, 32)))
	add("ieee8023-length", "an 802.3 frame: a length, not an EtherType", ErrNotTCP, hostileEther(0x0040, make([]byte, 64)))
	add("ipv4-udp", "IPv4 UDP", ErrNotTCP, eth(withProto(data4, 17)))
	add("ipv4-icmp", "IPv4 ICMP", ErrNotTCP, eth(withProto(data4, 1)))
	add("ipv4-proto-0", "IPv4 protocol 0", ErrNotTCP, eth(withProto(data4, 0)))
	add("ipv6-icmpv6", "IPv6 ICMPv6", ErrNotTCP, eth(withProto(data6, 58)))

	// Truncation at every byte of two full frames.
	full4 := withIPv4Options(seg(false, tseg{seq: 1, ack: 2, flags: FlagACK | FlagPSH, payload: 16, ts: true, tsval: 3, tsecr: 4,
		sack: []SACKBlock{{5, 6}, {7, 8}}}), []byte{0x94, 4, 0, 0})
	full6 := withIPv6Ext(seg(true, tseg{seq: 1, ack: 2, flags: FlagACK | FlagPSH, payload: 16, ts: true, tsval: 3, tsecr: 4,
		sack: []SACKBlock{{5, 6}, {7, 8}}}), ipv6Opts(0, 1))
	for _, f := range []struct {
		name   string
		frame  []byte
		layers []hostileLayer
	}{
		{"trunc-ipv4", eth(full4), []hostileLayer{{14, "the Ethernet header"}, {20, "the IPv4 header"}, {4, "the IPv4 options"},
			{20, "the TCP header"}, {32, "the TCP options"}, {16, "the payload"}}},
		{"trunc-ipv6", eth(full6), []hostileLayer{{14, "the Ethernet header"}, {40, "the IPv6 header"}, {8, "the hop-by-hop header"},
			{20, "the TCP header"}, {32, "the TCP options"}, {16, "the payload"}}},
	} {
		// Each cut frame is whole on the wire (wireLen = n): a cut inside
		// the headers leaves them truncated; a cut in the payload leaves an
		// IP length longer than the frame, which is malformed. (A capture
		// cut by the snap length keeps the longer wire length and decodes:
		// TestDecodeTruncated.)
		hdr := len(f.frame) - 16
		for n := range len(f.frame) {
			want := error(ErrTruncated)
			if n >= hdr {
				want = ErrMalformed
			}
			add(fmt.Sprintf("%s-at-%03d", f.name, n),
				fmt.Sprintf("the %d-byte frame cut after %d bytes: %s", len(f.frame), n, hostileWhere(f.layers, n)),
				want, slices.Clone(f.frame[:n]))
		}
	}
	names := map[string]bool{}
	for _, h := range out {
		if names[h.name] {
			tb.Fatalf("hostile frame name %q used twice", h.name)
		}
		names[h.name] = true
	}
	return out
}

// hostileLayer is a header of a frame, for describing where a cut falls.
type hostileLayer struct {
	n    int
	name string
}

// hostileWhere names where a cut after n bytes falls.
func hostileWhere(layers []hostileLayer, n int) string {
	off := 0
	for _, l := range layers {
		if n < off+l.n {
			if n == off {
				return "before " + l.name
			}
			return fmt.Sprintf("%d bytes into %s", n-off, l.name)
		}
		off += l.n
	}
	return "whole"
}

// hostileFiles renders the corpus as its three files.
func hostileFiles(tb testing.TB, frames []hostileFrame) map[string][]byte {
	tb.Helper()
	var pcap bytes.Buffer
	w := pcapgo.NewWriter(&pcap)
	if err := w.WriteFileHeader(65535, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	var tsv, table bytes.Buffer
	tsv.WriteString("# index\tname\tbytes\tdecode\tdescription\n")
	for i, f := range frames {
		ci := gopacket.CaptureInfo{Timestamp: t0.Add(time.Duration(i) * time.Millisecond), CaptureLength: len(f.frame), Length: len(f.frame)}
		if err := w.WritePacket(ci, f.frame); err != nil {
			tb.Fatal(err)
		}
		dec := hostileDecodeNames[f.want]
		fmt.Fprintf(&tsv, "%d\t%s\t%d\t%s\t%s\n", i, f.name, len(f.frame), dec, f.desc)
		fmt.Fprintf(&table, "| %d | `%s` | %d | %s | %s |\n", i, f.name, len(f.frame), dec, f.desc)
	}
	counts := map[string]int{}
	for _, f := range frames {
		counts[hostileDecodeNames[f.want]]++
	}
	readme := fmt.Sprintf(hostileReadme, len(frames), len(frames), counts["ok"], counts["not-tcp"], counts["fragment"],
		counts["truncated"], counts["malformed"], table.String())
	return map[string][]byte{
		"hostile.pcap": pcap.Bytes(),
		"frames.tsv":   tsv.Bytes(),
		"README.md":    []byte(readme),
	}
}

const hostileReadme = `# Hostile frames

` + "`hostile.pcap`" + ` holds %d crafted Ethernet frames: every TCP option kind
the decoder knows (0, 1, 2, 3, 4, 5, 8) and 14 it does not, with lengths
0 to 3, past the end of the option list and without a length byte; TCP data
offsets below 5 and past the packet; IPv4 header lengths below 5 and total
lengths too small and larger than the packet; IPv6 extension header chains,
loops (a header whose next header is itself, up to 150 times) and overruns;
stacked VLAN tags (1, 2, 3, 8, 9, 10, 16); zero and maximum ports; and two
full frames cut at every byte. (` + "`TestDecodeEveryOptionKind`" + ` decodes all 256
option kinds with every length from 0 to 41 without adding them here.)

They are generated by ` + "`hostileFrames`" + ` in capture/hostile_test.go
from the frame builders of the decoder tests. ` + "`TestHostileCorpus`" + ` keeps
these files and the code in step; after changing the frames, run

    go test -run '^TestHostileCorpus$' ./capture/ -update-hostile

(or set GO_METRO_UPDATE_HOSTILE=1). ` + "`frames.tsv`" + ` lists the frames in
order, as the table below does, for programs.

Every frame goes to 02:00:00:00:00:fe, an address no interface has, so
that a host receiving it drops it in its IP stack while packet sockets
still see it; its source is 02:fe:00:00:00:00.

## Where the frames are used

- ` + "`TestHostileDecode`" + ` (capture) decodes each frame, a copy of exactly its
  length so that a read past its end would panic, with its length as the
  wire length: the result must be the one listed. It decodes each without a
  wire length too, and feeds the corpus to an Engine; nothing may panic,
  and the Engine's decode errors must be the truncated and malformed
  frames.
- ` + "`TestFaultHostileCorpus`" + ` (check) injects every frame of 14 bytes or more
  (a packet socket cannot send less than an Ethernet header) into one end
  of a veth pair, with its index in the source address, and runs a live
  go_metro check on the other end. It predicts what reaches the capture:
  the receive path takes an outer 802.1Q or 802.1ad tag out of the frame
  (and drops such a frame shorter than 20 bytes), then the kernel filter of
  ` + "`capture.BuildFilter`" + ` must accept it (run in the VM of golang.org/x/net/bpf)
  and cuts it to the snap length. It checks the prediction against a second
  packet socket with the same filter, and requires the check's
  ` + "`go_metro.packets.decode_errors`" + ` to be the number of frames that reach the
  capture and fail to decode, its ` + "`go_metro.packets.received`" + ` the number that
  reach it, no panic and an OK service check.

The kernel filter keeps most of the invalid frames away from go-metro: it
passes TCP only, with at most two VLAN tags left in the frame, and it
drops a frame whose IP header it cannot read. The decoder sees the rest:
bad TCP options and data offsets, bad IPv4 header and total lengths, IPv6
extension header loops and overruns, and frames cut inside the TCP header.

## Decode results

Decode returns nil (ok) for a TCP segment, ErrNotTCP (not-tcp) or
ErrFragment (fragment) for a valid packet with nothing to time, and a
decode error, counted in ` + "`go_metro.packets.decode_errors`" + `, otherwise:
ErrTruncated (truncated) when a header runs past the captured bytes, and
ErrMalformed (malformed) when a header is inconsistent.

Decode takes the IP total length (IPv6 payload length) as the truth, since
a capture's snap length cuts most frames: a packet whose IP length is
larger than its frame decodes, and its payload length is the IP header's.

%d frames: %d ok, %d not-tcp, %d fragment, %d truncated, %d malformed.

| # | name | bytes | Decode | frame |
|---|---|---|---|---|
%s`

// TestHostileCorpus checks that the committed corpus is the one that
// hostileFrames builds, and rewrites it with -update-hostile.
func TestHostileCorpus(t *testing.T) {
	files := hostileFiles(t, hostileFrames(t))
	if *updateHostile || os.Getenv("GO_METRO_UPDATE_HOSTILE") == "1" {
		if err := os.MkdirAll(hostileDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(hostileDir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("wrote %d files to %s", len(files), hostileDir)
		return
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(hostileDir, name))
		if err != nil {
			t.Fatalf("%v: regenerate with: go test -run '^TestHostileCorpus$' ./capture/ -update-hostile", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s differs from what hostileFrames builds: regenerate with: go test -run '^TestHostileCorpus$' ./capture/ -update-hostile", hostileDir, name)
		}
	}
}

// hostileEntry is a line of frames.tsv.
type hostileEntry struct {
	name, decode string
	bytes        int
}

// readHostileTSV reads testdata/hostile/frames.tsv.
func readHostileTSV(tb testing.TB) []hostileEntry {
	tb.Helper()
	f, err := os.Open(filepath.Join(hostileDir, "frames.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var out []hostileEntry
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.HasPrefix(s.Text(), "#") {
			continue
		}
		cols := strings.Split(s.Text(), "\t")
		if len(cols) != 5 || cols[0] != strconv.Itoa(len(out)) {
			tb.Fatalf("frames.tsv line %q: want index %d and 5 columns", s.Text(), len(out))
		}
		n, err := strconv.Atoi(cols[2])
		if err != nil {
			tb.Fatalf("frames.tsv line %q: %v", s.Text(), err)
		}
		out = append(out, hostileEntry{name: cols[1], bytes: n, decode: cols[3]})
	}
	if err := s.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

// TestHostileDecode decodes every frame of the committed corpus and checks
// the result listed in frames.tsv; it feeds them to an Engine too.
func TestHostileDecode(t *testing.T) {
	entries := readHostileTSV(t)
	src, err := OpenFile(filepath.Join(hostileDir, "hostile.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	e, _ := newTestEngine(t, Config{}, decA4.Addr().String(), decA6.Addr().String())
	var wantErrors uint64
	for i := 0; ; i++ {
		f, err := src.ReadFrame()
		if errors.Is(err, io.EOF) {
			if i != len(entries) {
				t.Fatalf("%d frames in hostile.pcap, %d in frames.tsv", i, len(entries))
			}
			break
		}
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if i >= len(entries) {
			t.Fatalf("more frames in hostile.pcap than the %d of frames.tsv", len(entries))
		}
		en := entries[i]
		if f.Link != LinkEthernet || len(f.Data) != en.bytes || f.WireLen != en.bytes {
			t.Fatalf("frame %d %s: link %v, %d bytes of %d on the wire, want ETHERNET and %d", i, en.name, f.Link, len(f.Data), f.WireLen, en.bytes)
		}
		// A copy of exactly the frame's length: a read past it panics.
		data := slices.Clone(f.Data)
		var p Packet
		got := Decode(LinkEthernet, data, len(data), &p)
		if name := hostileDecodeNames[got]; name != en.decode {
			t.Errorf("frame %d %s: Decode = %v (%s), want %s", i, en.name, got, name, en.decode)
		}
		if IsDecodeError(got) {
			wantErrors++
		}
		_ = Decode(LinkEthernet, data, 0, &p)
		e.Process(LinkEthernet, data, len(data), f.Time)
	}
	if st := e.Stats(); st.DecodeErrors != wantErrors || st.Packets != uint64(len(entries)) {
		t.Errorf("engine: %d packets, %d decode errors; want %d and %d", st.Packets, st.DecodeErrors, len(entries), wantErrors)
	}
	t.Logf("%d frames, %d decode errors", len(entries), wantErrors)
}

// TestDecodeEveryOptionKind decodes each of the 256 option kinds with
// every length byte from 0 to 41 at the start of a 40-byte option list
// whose other bytes are zero (EOL), and checks the result against the
// rules of hostileOptWant.
func TestDecodeEveryOptionKind(t *testing.T) {
	var p Packet
	for k := range 256 {
		for n := range 42 {
			raw := make([]byte, 40)
			raw[0], raw[1] = byte(k), byte(n)
			frame := ethFrame(buildIP(t, decSeg(k%2 == 1, tseg{flags: FlagACK, rawOpts: raw})))
			want := hostileOptWant(byte(k), n, 40)
			if k == 1 && n >= 2 {
				// A NOP, then kind n whose length byte is 0.
				want = ErrMalformed
			}
			if got := Decode(LinkEthernet, frame, len(frame), &p); got != want {
				t.Errorf("option kind %d, length %d: Decode = %v, want %v", k, n, got, want)
			}
		}
	}
	// Sanity: the rules in a few words.
	got := []error{hostileOptWant(2, 4, 40), hostileOptWant(2, 3, 40), hostileOptWant(99, 41, 40), hostileOptWant(99, 2, 40)}
	if diff := cmp.Diff([]error{nil, ErrMalformed, ErrMalformed, nil}, got, cmp.Comparer(func(a, b error) bool { return a == b })); diff != "" {
		t.Errorf("hostileOptWant (-want +got):\n%s", diff)
	}
}

// TestPacketHoldsNoPayload checks that a decoded Packet cannot hold payload
// bytes (docs/security.md relies on it): its fields are numbers, flags,
// addresses and arrays of SACK blocks, with no slice, string, pointer, map
// or interface that could refer to the capture buffer.
func TestPacketHoldsNoPayload(t *testing.T) {
	scalar := func(k reflect.Kind) bool { return k == reflect.Bool || (k >= reflect.Uint8 && k <= reflect.Uint64) }
	addr, sack := reflect.TypeFor[netip.Addr](), reflect.TypeFor[SACKBlock]()
	for i := range sack.NumField() {
		if f := sack.Field(i); !scalar(f.Type.Kind()) {
			t.Errorf("SACKBlock.%s is a %v, want a number", f.Name, f.Type)
		}
	}
	typ := reflect.TypeFor[Packet]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		switch {
		case scalar(f.Type.Kind()), f.Type == addr:
		case f.Type.Kind() == reflect.Array && (f.Type.Elem() == sack || scalar(f.Type.Elem().Kind())):
		default:
			t.Errorf("Packet.%s is a %v: a Packet holds only numbers, flags, addresses and SACK blocks", f.Name, f.Type)
		}
	}
	t.Logf("a Packet takes %d bytes", unsafe.Sizeof(Packet{}))
}
