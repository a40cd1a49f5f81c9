package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

// testFrame is a frame for buildBlock, with the metadata the kernel writes.
type testFrame struct {
	data     []byte
	wireLen  uint32 // tp_len; 0 means len(data)
	sec      uint32
	nsec     uint32
	status   uint32 // tp_status bits besides TP_STATUS_USER
	tci      uint32
	tpid     uint16
	protocol uint16
	ifindex  int32
	pktType  uint8
	dgram    bool // data starts at the network header, as on SOCK_DGRAM
}

// macOffset returns tp_mac as the kernel sets it (tpacket_rcv) for a
// 14-byte link-layer header on SOCK_RAW, and on SOCK_DGRAM.
func (f testFrame) macOffset() int {
	if f.dgram {
		return align(frameHdrLen, 16) + 16
	}
	return align(frameHdrLen+16, 16) - 14
}

func align(n, a int) int { return (n + a - 1) &^ (a - 1) }

// buildBlock lays out frames in a block of size bytes as the kernel does:
// the block header, then each frame at an 8-byte-aligned offset (its
// tpacket3_hdr, sockaddr_ll and data), the last with tp_next_offset 0.
func buildBlock(tb testing.TB, size int, frames ...testFrame) []byte {
	tb.Helper()
	b := make([]byte, size)
	off := blockHdrLen
	prev := -1
	for _, f := range frames {
		mac := f.macOffset()
		if off+mac+len(f.data) > size {
			tb.Fatalf("frames overflow the %d-byte block", size)
		}
		h := b[off:]
		if prev >= 0 {
			ne.PutUint32(b[prev+offNextOffset:], uint32(off-prev))
		}
		wire := f.wireLen
		if wire == 0 {
			wire = uint32(len(f.data))
		}
		ne.PutUint32(h[offSec:], f.sec)
		ne.PutUint32(h[offNsec:], f.nsec)
		ne.PutUint32(h[offSnaplen:], uint32(len(f.data)))
		ne.PutUint32(h[offLen:], wire)
		ne.PutUint32(h[offStatus:], tpStatusUser|f.status)
		ne.PutUint16(h[offMac:], uint16(mac))
		ne.PutUint16(h[offMac+2:], uint16(mac+14)) // tp_net
		ne.PutUint32(h[offVLANTCI:], f.tci)
		ne.PutUint16(h[offVLANTPID:], f.tpid)
		ne.PutUint16(h[offSLL:], 17) // AF_PACKET
		binary.BigEndian.PutUint16(h[offProtocol:], f.protocol)
		ne.PutUint32(h[offIfindex:], uint32(f.ifindex))
		ne.PutUint16(h[offSLL+8:], 1) // ARPHRD_ETHER
		h[offPktType] = f.pktType
		h[offPktType+1] = 6 // sll_halen
		copy(h[mac:], f.data)
		prev = off
		off = align(off+mac+len(f.data), 8)
	}
	ne.PutUint32(b[0:], 3)           // TPACKET_V3
	ne.PutUint32(b[4:], blockHdrLen) // offset_to_priv
	ne.PutUint32(b[offBlockStatus:], tpStatusUser)
	ne.PutUint32(b[offNumPkts:], uint32(len(frames)))
	ne.PutUint32(b[offFirstPkt:], blockHdrLen)
	ne.PutUint32(b[offBlockLen:], uint32(min(off, size)))
	ne.PutUint64(b[offSeq:], 7)
	return b
}

// frameAt returns the offset of frame i of a block built by buildBlock.
func frameAt(b []byte, i int) int {
	off := int(ne.Uint32(b[offFirstPkt:]))
	for ; i > 0; i-- {
		off += int(ne.Uint32(b[off+offNextOffset:]))
	}
	return off
}

// ethFrame returns an Ethernet frame of n bytes with EtherType typ, its
// bytes after the header counting up from seed.
func ethFrame(typ uint16, n int, seed byte) []byte {
	b := make([]byte, n)
	copy(b, []byte{0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01})
	binary.BigEndian.PutUint16(b[12:], typ)
	for i := 14; i < n; i++ {
		b[i] = seed + byte(i)
	}
	return b
}

// walk returns the frames of the block in buf, each Data copied, and the
// walk's error.
func walk(buf []byte) ([]Frame, error) {
	var b Block
	b.reset(buf)
	var out []Frame
	var f Frame
	for b.Next(&f) {
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
	return out, b.Err()
}

func TestBlockWalk(t *testing.T) {
	ipv4 := ethFrame(0x0800, 120, 1)
	ipv6 := ethFrame(0x86dd, 1514, 2)
	arp := ethFrame(0x0806, 42, 3)
	tests := []struct {
		name   string
		frames []testFrame
		want   []Frame
	}{
		{"empty", nil, nil},
		{
			name:   "one",
			frames: []testFrame{{data: ipv4, sec: 1_700_000_000, nsec: 123_456_789, protocol: 0x0800, ifindex: 4, pktType: 0}},
			want:   []Frame{{Data: ipv4, Len: 120, Time: 1_700_000_000_123_456_789, Ifindex: 4, Protocol: 0x0800, PktType: PacketHost}},
		},
		{
			name:   "truncated-outgoing",
			frames: []testFrame{{data: ipv6[:96], wireLen: 1514, sec: 2, nsec: 5, protocol: 0x86dd, ifindex: 1, pktType: 4}},
			want:   []Frame{{Data: ipv6[:96], Len: 1514, Time: 2e9 + 5, Ifindex: 1, Protocol: 0x86dd, PktType: PacketOutgoing}},
		},
		{
			name: "vlan",
			frames: []testFrame{
				{data: ipv4, sec: 3, status: tpStatusVLANValid | tpStatusVLANTPIDValid, tci: 0xa064, tpid: 0x88a8, protocol: 0x0800, ifindex: 2, pktType: 3},
				{data: arp, sec: 3, nsec: 1, status: tpStatusVLANValid, tci: 0x0005, tpid: 0x1234, protocol: 0x0806, ifindex: 2, pktType: 1},
				{data: arp, sec: 3, nsec: 2, tci: 0x0fff, tpid: 0x8100, protocol: 0x0806, ifindex: 2, pktType: 2},
			},
			want: []Frame{
				{Data: ipv4, Len: 120, Time: 3e9, Ifindex: 2, Protocol: 0x0800, PktType: PacketOtherHost, VLAN: true, VLANTCI: 0xa064, VLANTPID: 0x88a8},
				// TPID not valid: 802.1Q is assumed.
				{Data: arp, Len: 42, Time: 3e9 + 1, Ifindex: 2, Protocol: 0x0806, PktType: PacketBroadcast, VLAN: true, VLANTCI: 5, VLANTPID: 0x8100},
				// VLAN not valid: the fields are ignored.
				{Data: arp, Len: 42, Time: 3e9 + 2, Ifindex: 2, Protocol: 0x0806, PktType: PacketMulticast},
			},
		},
		{
			name: "dgram",
			frames: []testFrame{
				{data: ipv4[14:], sec: 9, protocol: 0x0800, ifindex: -1, pktType: 0, dgram: true},
				{data: ipv6[14:], sec: 9, protocol: 0x86dd, ifindex: 7, pktType: 4, dgram: true},
			},
			want: []Frame{
				{Data: ipv4[14:], Len: 106, Time: 9e9, Ifindex: -1, Protocol: 0x0800},
				{Data: ipv6[14:], Len: 1500, Time: 9e9, Ifindex: 7, Protocol: 0x86dd, PktType: PacketOutgoing},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := buildBlock(t, 8192, tt.frames...)
			got, err := walk(buf)
			if err != nil {
				t.Fatalf("walk: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			var b Block
			b.reset(buf)
			if b.NumFrames() != len(tt.frames) || b.Seq() != 7 {
				t.Errorf("NumFrames %d, Seq %d; want %d, 7", b.NumFrames(), b.Seq(), len(tt.frames))
			}
		})
	}
}

// TestBlockZeroCopy checks that Data points into the block, and that its
// capacity ends with it, so that an append cannot write into the ring.
func TestBlockZeroCopy(t *testing.T) {
	data := ethFrame(0x0800, 100, 0)
	buf := buildBlock(t, 4096, testFrame{data: data}, testFrame{data: data})
	var b Block
	b.reset(buf)
	var f Frame
	for i := 0; b.Next(&f); i++ {
		want := frameAt(buf, i) + testFrame{}.macOffset()
		if got := int(uintptr(unsafe.Pointer(unsafe.SliceData(f.Data))) - uintptr(unsafe.Pointer(&buf[0]))); got != want {
			t.Errorf("frame %d: Data at offset %d of the block, want %d", i, got, want)
		}
		if cap(f.Data) != len(f.Data) {
			t.Errorf("frame %d: cap(Data) %d, want len(Data) %d", i, cap(f.Data), len(f.Data))
		}
	}
	b.Release() // a block outside a ring: does nothing
	if b.Next(&f) {
		t.Error("Next after Release returned a frame")
	}
}

// TestBlockMalformed corrupts a block of three good frames in each way the
// walker checks: it must yield the good frames before the fault and stop,
// with ErrMalformedBlock.
func TestBlockMalformed(t *testing.T) {
	data := ethFrame(0x0800, 200, 0)
	good := []testFrame{{data: data}, {data: data}, {data: data}}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { ne.PutUint32(b[off:], v); return b }
	}
	frame32 := func(i, field int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { ne.PutUint32(b[frameAt(b, i)+field:], v); return b }
	}
	frame16 := func(i, field int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { ne.PutUint16(b[frameAt(b, i)+field:], v); return b }
	}
	tests := []struct {
		name    string
		corrupt func([]byte) []byte
		frames  int // good frames before the fault
		err     error
	}{
		{"intact", func(b []byte) []byte { return b }, 3, nil},
		{"shorter-than-header", func(b []byte) []byte { return b[:blockHdrLen-1] }, 0, ErrMalformedBlock},
		{"header-only", func(b []byte) []byte { return b[:blockHdrLen] }, 0, ErrMalformedBlock},
		{"blk_len-past-end", put32(offBlockLen, 1<<20), 0, ErrMalformedBlock},
		{"blk_len-max", put32(offBlockLen, 0xffffffff), 0, ErrMalformedBlock},
		{"first-inside-header", put32(offFirstPkt, blockHdrLen-8), 0, ErrMalformedBlock},
		{"first-past-blk_len", put32(offFirstPkt, 4000), 0, ErrMalformedBlock},
		{"first-header-cut-by-blk_len", put32(offBlockLen, blockHdrLen+frameHdrLen-1), 0, ErrMalformedBlock},
		{"num_pkts-more", put32(offNumPkts, 4), 3, ErrMalformedBlock},
		{"num_pkts-max", put32(offNumPkts, 0xffffffff), 3, ErrMalformedBlock},
		{"num_pkts-fewer", put32(offNumPkts, 2), 2, nil},
		{"mac-inside-header", frame16(1, offMac, frameHdrLen-1), 1, ErrMalformedBlock},
		{"mac-past-block", frame16(2, offMac, 0xffff), 2, ErrMalformedBlock},
		{"snaplen-past-block", frame32(0, offSnaplen, 4000), 0, ErrMalformedBlock},
		{"snaplen-max", frame32(1, offSnaplen, 0xffffffff), 1, ErrMalformedBlock},
		{"next-zero-mid-block", frame32(0, offNextOffset, 0), 1, ErrMalformedBlock},
		{"next-into-own-data", frame32(0, offNextOffset, 100), 1, ErrMalformedBlock},
		{"next-past-block", frame32(1, offNextOffset, 1<<20), 2, ErrMalformedBlock},
		{"next-max", frame32(0, offNextOffset, 0xffffffff), 1, ErrMalformedBlock},
		{"next-header-cut", func(b []byte) []byte {
			// The third frame's header would end one byte past blk_len.
			off1 := frameAt(b, 1)
			ne.PutUint32(b[off1+offNextOffset:], ne.Uint32(b[offBlockLen:])-uint32(off1)-frameHdrLen+1)
			return b
		}, 2, ErrMalformedBlock},
		{"last-next-ignored", frame32(2, offNextOffset, 0xffffffff), 3, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			buf := tt.corrupt(buildBlock(t, 4096, good...))
			got, err := walk(buf)
			if len(got) != tt.frames || !errors.Is(err, tt.err) {
				t.Fatalf("%d frames, error %v; want %d, %v", len(got), err, tt.frames, tt.err)
			}
			for i, f := range got {
				if !bytes.Equal(f.Data, data) {
					t.Errorf("frame %d: data differs", i)
				}
			}
		})
	}
}

func TestBlockNoAllocs(t *testing.T) {
	var frames []testFrame
	for i := range 20 {
		frames = append(frames, testFrame{data: ethFrame(0x0800, 100, byte(i)), status: tpStatusVLANValid, tci: 5})
	}
	buf := buildBlock(t, 8192, frames...)
	var b Block
	var f Frame
	n := 0
	allocs := testing.AllocsPerRun(100, func() {
		b.reset(buf)
		for b.Next(&f) {
			n += len(f.Data)
		}
		b.Release()
	})
	if allocs != 0 {
		t.Errorf("%v allocations per block of %d frames, want 0", allocs, len(frames))
	}
}

func TestCountersWrap(t *testing.T) {
	const max32 = 1<<32 - 1
	// Reads of the kernel's counters, each what happened since the
	// previous read, across two sockets: the second opened after the
	// first closed.
	reads := [][3]uint32{
		{max32 - 10, max32 - 20, 1},
		{11, 21, 0}, // the totals cross 2^32 here
		{max32, max32, max32},
		{0, 0, 0},
		{5, 1, 0}, // a new socket: its counts start from 0 again
	}
	var c Counters
	var prev Counters
	for i, r := range reads {
		c.add(r[0], r[1], r[2])
		if c.Packets < prev.Packets || c.Drops < prev.Drops || c.Freezes < prev.Freezes {
			t.Fatalf("read %d: counters went backwards: %+v after %+v", i, c, prev)
		}
		prev = c
	}
	want := Counters{Packets: 1<<32 + max32 + 5, Drops: 1<<32 + max32 + 1, Freezes: max32 + 1}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Errorf("counters (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		mod  func(*Config)
		err  string // "" for valid
	}{
		{"defaults", func(*Config) {}, ""},
		{"any", func(c *Config) { c.Interface = Any }, ""},
		{"no-interface", func(c *Config) { c.Interface = "" }, `invalid Interface ""`},
		{"long-interface", func(c *Config) { c.Interface = "abcdefghijklmnop" }, `invalid Interface "abcdefghijklmnop"`},
		{"block-not-page", func(c *Config) { c.BlockSize = 6000 }, "invalid BlockSize 6000: must be a positive multiple of the page size (4096)"},
		{"block-negative", func(c *Config) { c.BlockSize = -4096 }, "invalid BlockSize -4096"},
		{"blocks-negative", func(c *Config) { c.NumBlocks = -1 }, "invalid NumBlocks -1"},
		{"ring-too-large", func(c *Config) { c.NumBlocks = 4097 }, "invalid NumBlocks 4097: must be at least 1, for a ring of at most 1073741824 bytes"},
		{"ring-1GiB", func(c *Config) { c.NumBlocks = 4096 }, ""},
		{"block-1GiB", func(c *Config) { c.BlockSize, c.NumBlocks = 1<<30, 1 }, ""},
		{"2GiB", func(c *Config) { c.BlockSize, c.NumBlocks = 1<<30, 2 }, "invalid NumBlocks 2"},
		{"frame-small", func(c *Config) { c.FrameSize = 64 }, "invalid FrameSize 64: must be a multiple of 16 between 80 and BlockSize (262144)"},
		{"frame-unaligned", func(c *Config) { c.FrameSize = 1000 }, "invalid FrameSize 1000"},
		{"frame-over-block", func(c *Config) { c.FrameSize = 1 << 20 }, "invalid FrameSize 1048576"},
		{"timeout-negative", func(c *Config) { c.BlockTimeout = -1 }, "invalid BlockTimeout -1ns: must be between 1ms and 1m5.535s"},
		{"timeout-long", func(c *Config) { c.BlockTimeout = 66e9 }, "invalid BlockTimeout 1m6s"},
		{"timeout-sub-ms", func(c *Config) { c.BlockTimeout = 1 }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Interface: "eth0"}
			tt.mod(&c)
			err := c.withDefaults().validate(4096)
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("validate: %v, want nil", err)
			case tt.err != "" && (err == nil || !bytes.HasPrefix([]byte(err.Error()), []byte(tt.err))):
				t.Errorf("validate: %v, want an error starting %q", err, tt.err)
			}
		})
	}
	if got := (Config{BlockTimeout: 1}).blockTimeoutMillis(); got != 1 {
		t.Errorf("a 1 ns block timeout is %d ms, want 1 (rounded up)", got)
	}
	if got := (Config{}).withDefaults(); got.BlockSize != DefaultBlockSize || got.NumBlocks != DefaultNumBlocks ||
		got.FrameSize != DefaultFrameSize || got.BlockTimeout != DefaultBlockTimeout || got.BlockSize*got.NumBlocks != 8<<20 {
		t.Errorf("defaults %+v, want an 8 MiB ring of 256 KiB blocks", got)
	}
}

func TestPacketTypeString(t *testing.T) {
	for typ, want := range map[PacketType]string{PacketHost: "HOST", PacketOutgoing: "OUTGOING", 9: "PacketType(9)"} {
		if got := fmt.Sprint(typ); got != want {
			t.Errorf("%d: %q, want %q", uint8(typ), got, want)
		}
	}
}
