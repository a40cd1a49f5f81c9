package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"time"
)

// The pcap and pcapng file formats, read in pure Go: libpcap's savefile
// format (https://www.tcpdump.org/manpages/pcap-savefile.5.txt) and
// pcapng (draft-ietf-opsawg-pcapng). Every length comes from the file, so
// each is checked before it is used, and an error names the packet or
// block at fault and its offset in the file.

// ErrCutShort is wrapped by the error of a capture file that ends inside a
// packet record or block: the file was cut (a capture killed while it
// wrote, a copy in progress). The packets before it were read.
var ErrCutShort = errors.New("the file appears to have been cut short in the middle of a packet")

// ErrCorrupt is wrapped by the error of a capture file whose structure is
// inconsistent: a length that does not fit, an unknown interface.
var ErrCorrupt = errors.New("corrupt capture file")

const (
	// maxRecord is the longest packet record read: libpcap's largest
	// snap length, or the file's own when larger, up to maxRecordHard.
	maxRecord     = 262144
	maxRecordHard = 16 << 20
	// maxBlock is the longest pcapng block read, as in Wireshark.
	maxBlock = 16 << 20
)

// pcap file magic numbers, as read in big-endian order.
const (
	magicPcapMicro   = 0xa1b2c3d4
	magicPcapNano    = 0xa1b23c4d
	magicPcapMicroLE = 0xd4c3b2a1
	magicPcapNanoLE  = 0x4d3cb2a1
	magicPcapng      = 0x0a0d0d0a
	magicNgByteOrder = 0x1a2b3c4d
)

// pcapng block types.
const (
	ngSectionHeader     = 0x0a0d0d0a
	ngInterface         = 0x00000001
	ngObsoletePacket    = 0x00000002
	ngSimplePacket      = 0x00000003
	ngEnhancedPacket    = 0x00000006
	ngOptionEnd         = 0
	ngOptionTSResol     = 9
	ngOptionTSOffset    = 14
	ngSupportedMajorVer = 1
)

// ngBlockName names a pcapng block type, for errors.
func ngBlockName(t uint32) string {
	switch t {
	case ngSectionHeader:
		return "Section Header Block"
	case ngInterface:
		return "Interface Description Block"
	case ngObsoletePacket:
		return "Packet Block"
	case ngSimplePacket:
		return "Simple Packet Block"
	case 4:
		return "Name Resolution Block"
	case 5:
		return "Interface Statistics Block"
	case ngEnhancedPacket:
		return "Enhanced Packet Block"
	case 0x0a:
		return "Decryption Secrets Block"
	}
	return fmt.Sprintf("block of type %#x", t)
}

// fileReader reads the records of a pcap or pcapng file from r.
type fileReader struct {
	name string
	r    *bufio.Reader
	off  int64  // bytes read so far
	buf  []byte // the current packet or block; reused
	n    uint64 // packets returned

	ng    bool
	order binary.ByteOrder

	// pcap
	link    LinkType
	nanos   bool
	snaplen uint32

	// pcapng: the interfaces of the current section
	ifaces        []ngIface
	section       int    // sections seen
	skippedSimple uint64 // Simple Packet Blocks skipped: no timestamp
}

// ngIface is a pcapng interface: its link type and timestamp units.
type ngIface struct {
	link   LinkType
	div    uint64 // timestamp units per second
	offset int64  // seconds added to every timestamp
}

// readFull reads len(p) bytes. A file that ends before them is cut short,
// unless it ends exactly where a record could start (atBoundary), which
// is the end of the file: io.EOF.
func (f *fileReader) readFull(p []byte, atBoundary bool) error {
	n, err := io.ReadFull(f.r, p)
	f.off += int64(n)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF) && atBoundary:
		return io.EOF
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("read %s: %w (after %d complete packets, %d bytes into the file)", f.name, ErrCutShort, f.n, f.off)
	}
	return fmt.Errorf("read %s: %w", f.name, err)
}

// grow returns f.buf with length n.
func (f *fileReader) grow(n int) []byte {
	if cap(f.buf) < n {
		f.buf = make([]byte, n)
	}
	return f.buf[:n]
}

// open reads the file header, or for pcapng the first Section Header
// Block, after the 4 bytes of magic already in magic.
func (f *fileReader) open(magic [4]byte) error {
	switch binary.BigEndian.Uint32(magic[:]) {
	case magicPcapng:
		f.ng = true
		if err := f.readSectionHeader(magic[:], f.off-4); err != nil {
			return err
		}
		return f.readInterfaces()
	case magicPcapMicro:
		f.order = binary.BigEndian
	case magicPcapNano:
		f.order, f.nanos = binary.BigEndian, true
	case magicPcapMicroLE:
		f.order = binary.LittleEndian
	case magicPcapNanoLE:
		f.order, f.nanos = binary.LittleEndian, true
	default:
		return fmt.Errorf("read %s: magic %#08x: not a pcap or pcapng file", f.name, binary.BigEndian.Uint32(magic[:]))
	}
	var h [20]byte
	if err := f.readFull(h[:], false); err != nil {
		return err
	}
	if major := f.order.Uint16(h[0:]); major != 2 {
		return fmt.Errorf("read %s: pcap version %d.%d: unsupported; go-metro reads version 2", f.name, major, f.order.Uint16(h[2:]))
	}
	f.snaplen = f.order.Uint32(h[12:])
	f.link = LinkType(f.order.Uint32(h[16:]) & 0xffff)
	if !f.link.Supported() {
		return fmt.Errorf("read %s: %w %s: go-metro decodes Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures", f.name, ErrLinkType, f.link)
	}
	return nil
}

// next returns the next packet, or io.EOF at the end of the file. Its data
// is valid until the next call.
func (f *fileReader) next() (Frame, error) {
	if f.ng {
		return f.nextNg()
	}
	var h [16]byte
	if err := f.readFull(h[:], true); err != nil {
		return Frame{}, err
	}
	sec, frac := f.order.Uint32(h[0:]), f.order.Uint32(h[4:])
	incl, orig := f.order.Uint32(h[8:]), f.order.Uint32(h[12:])
	limit := min(max(f.snaplen, maxRecord), maxRecordHard)
	if incl > limit {
		return Frame{}, fmt.Errorf("read %s: packet %d, %d bytes into the file: %w: its captured length %d exceeds the largest packet of the file (%d bytes)", f.name, f.n+1, f.off-16, ErrCorrupt, incl, limit)
	}
	data := f.grow(int(incl))
	if err := f.readFull(data, false); err != nil {
		return Frame{}, err
	}
	nsec := int64(frac)
	if !f.nanos {
		nsec *= 1000
	}
	f.n++
	return Frame{Data: data, Link: f.link, WireLen: int(max(orig, incl)), Time: time.Unix(int64(sec), nsec).UTC()}, nil
}

// readInterfaces reads the Interface Description Blocks that come next,
// so that an unsupported link type is refused when the file is opened,
// as in a pcap file.
func (f *fileReader) readInterfaces() error {
	for {
		h, err := f.r.Peek(8)
		if err != nil || f.order.Uint32(h) != ngInterface {
			return nil // anything else is for next
		}
		start, n := f.off, f.order.Uint32(h[4:])
		if _, err := f.r.Discard(8); err != nil {
			return err
		}
		f.off += 8
		body, err := f.readBlock(ngInterface, n, start, 8)
		if err != nil {
			return err
		}
		if err := f.readInterface(body, start); err != nil {
			return err
		}
	}
}

// nextNg returns the next packet of a pcapng file.
func (f *fileReader) nextNg() (Frame, error) {
	for {
		start := f.off
		var h [8]byte
		if err := f.readFull(h[:], true); err != nil {
			return Frame{}, err
		}
		if binary.BigEndian.Uint32(h[:]) == ngSectionHeader {
			// A new section, which may change the byte order.
			if err := f.readSectionHeader(h[:], start); err != nil {
				return Frame{}, err
			}
			continue
		}
		typ := f.order.Uint32(h[0:])
		body, err := f.readBlock(typ, f.order.Uint32(h[4:]), start, 8)
		if err != nil {
			return Frame{}, err
		}
		switch typ {
		case ngInterface:
			if err := f.readInterface(body, start); err != nil {
				return Frame{}, err
			}
		case ngSimplePacket:
			// No interface, no timestamp: no RTT can come from it.
			f.skippedSimple++
		case ngEnhancedPacket, ngObsoletePacket:
			return f.ngPacket(typ, body, start)
		}
	}
}

// readSectionHeader reads a Section Header Block that starts at start and
// of which head, its first 4 or 8 bytes, is read.
func (f *fileReader) readSectionHeader(head []byte, start int64) error {
	var b [12]byte
	copy(b[:], head)
	if err := f.readFull(b[len(head):], false); err != nil {
		return err
	}
	h := b[4:]
	switch {
	case binary.BigEndian.Uint32(h[4:]) == magicNgByteOrder:
		f.order = binary.BigEndian
	case binary.LittleEndian.Uint32(h[4:]) == magicNgByteOrder:
		f.order = binary.LittleEndian
	default:
		return fmt.Errorf("read %s: Section Header Block at offset %d: %w: byte-order magic %#08x, want 0x1a2b3c4d", f.name, start, ErrCorrupt, binary.BigEndian.Uint32(h[4:]))
	}
	n := f.order.Uint32(h[0:])
	body, err := f.readBlock(ngSectionHeader, n, start, 12)
	if err != nil {
		return err
	}
	f.section++
	if len(body) < 12 {
		return fmt.Errorf("read %s: Section Header Block at offset %d: %w: %d bytes, too short for its version", f.name, start, ErrCorrupt, n)
	}
	if major, minor := f.order.Uint16(body[0:]), f.order.Uint16(body[2:]); major != ngSupportedMajorVer {
		return fmt.Errorf("read %s: section %d, at offset %d, has pcapng version %d.%d: unsupported; go-metro reads version 1 (convert the file with editcap -F pcapng)", f.name, f.section, start, major, minor)
	}
	f.ifaces = f.ifaces[:0]
	return nil
}

// readBlock reads the rest of a block of type typ and total length n that
// starts at start, of which read bytes are read, checks its lengths, and
// returns the rest of its body. It is valid until the next read.
func (f *fileReader) readBlock(typ, n uint32, start int64, read int) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("read %s: %s at offset %d: %w: "+format, append([]any{f.name, ngBlockName(typ), start, ErrCorrupt}, args...)...)
	}
	switch {
	case n < uint32(read)+4 || n%4 != 0:
		return nil, bad("invalid block length %d: this block has at least %d bytes, in multiples of 4", n, read+4)
	case n > maxBlock:
		return nil, bad("block length %d exceeds the %d bytes of the largest block read", n, maxBlock)
	}
	b := f.grow(int(n) - read)
	if err := f.readFull(b, false); err != nil {
		return nil, err
	}
	if trailer := f.order.Uint32(b[len(b)-4:]); trailer != n {
		return nil, bad("its trailing length %d differs from its leading length %d", trailer, n)
	}
	return b[:len(b)-4], nil
}

// readInterface adds the interface that the body of an Interface
// Description Block at start describes.
func (f *fileReader) readInterface(body []byte, start int64) error {
	if len(body) < 8 {
		return fmt.Errorf("read %s: Interface Description Block at offset %d: %w: %d bytes, too short", f.name, start, ErrCorrupt, len(body)+12)
	}
	ifc := ngIface{link: LinkType(f.order.Uint16(body[0:])), div: 1_000_000}
	id := len(f.ifaces)
	if !ifc.link.Supported() {
		return fmt.Errorf("read %s: interface %d of section %d (Interface Description Block at offset %d): %w %s: go-metro decodes Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures",
			f.name, id, f.section, start, ErrLinkType, ifc.link)
	}
	for opts := body[8:]; len(opts) >= 4; {
		code, n := f.order.Uint16(opts[0:]), int(f.order.Uint16(opts[2:]))
		if code == ngOptionEnd {
			break
		}
		padded := (n + 3) &^ 3
		if 4+padded > len(opts) {
			return fmt.Errorf("read %s: Interface Description Block at offset %d: %w: option %d of %d bytes runs past the block", f.name, start, ErrCorrupt, code, n)
		}
		v := opts[4 : 4+n]
		switch {
		case code == ngOptionTSResol && n >= 1:
			r := v[0]
			exp := uint(r & 0x7f)
			switch {
			case r&0x80 != 0 && exp <= 63:
				ifc.div = 1 << exp
			case r&0x80 == 0 && exp <= 19:
				ifc.div = 1
				for range exp {
					ifc.div *= 10
				}
			default:
				return fmt.Errorf("read %s: Interface Description Block at offset %d: %w: timestamp resolution %#x is finer than 1 in 2^64", f.name, start, ErrCorrupt, r)
			}
		case code == ngOptionTSOffset && n >= 8:
			ifc.offset = int64(f.order.Uint64(v))
		}
		opts = opts[4+padded:]
	}
	f.ifaces = append(f.ifaces, ifc)
	return nil
}

// ngPacket returns the packet of an Enhanced Packet Block or an obsolete
// Packet Block whose body is body.
func (f *fileReader) ngPacket(typ uint32, body []byte, start int64) (Frame, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("read %s: %s at offset %d: %w: "+format, append([]any{f.name, ngBlockName(typ), start, ErrCorrupt}, args...)...)
	}
	if len(body) < 20 {
		return Frame{}, bad("%d bytes, too short for a packet", len(body)+12)
	}
	var id int
	if typ == ngEnhancedPacket {
		id = int(f.order.Uint32(body[0:]))
	} else {
		id = int(f.order.Uint16(body[0:]))
	}
	if id >= len(f.ifaces) {
		return Frame{}, bad("packet of interface %d, but section %d describes %d interfaces", id, f.section, len(f.ifaces))
	}
	ifc := f.ifaces[id]
	ts := uint64(f.order.Uint32(body[4:]))<<32 | uint64(f.order.Uint32(body[8:]))
	caplen, orig := f.order.Uint32(body[12:]), f.order.Uint32(body[16:])
	if uint64(caplen) > uint64(len(body)-20) {
		return Frame{}, bad("captured length %d exceeds the %d bytes of the block's data", caplen, len(body)-20)
	}
	sec, rem := ts/ifc.div, ts%ifc.div
	hi, lo := bits.Mul64(rem, 1e9)
	nsec, _ := bits.Div64(hi, lo, ifc.div)
	f.n++
	return Frame{
		Data:    body[20 : 20+caplen],
		Link:    ifc.link,
		WireLen: int(max(orig, caplen)),
		Time:    time.Unix(int64(sec)+ifc.offset, int64(nsec)).UTC(),
		// The interface tells copies of a segment captured on two of
		// them apart; interface ids count from 0, a Device's index 0 is
		// unknown.
		Dev: MakeDevice(uint32(id)+1, PacketHost),
	}, nil
}
