package capture

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
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

// fileReader reads the records of a pcap or pcapng file from r. It reads
// r in large blocks into its own buffer and returns each packet as a slice
// of that buffer, so that a packet costs no copy, no call through an
// interface and no allocation: the buffer grows only for a record larger
// than any before.
type fileReader struct {
	name string
	r    io.Reader
	buf  []byte // read buffer; buf[pos:end] is read but not consumed
	pos  int
	end  int
	err  error  // the error that ended the reads of r, kept
	off  int64  // bytes consumed: the offset of buf[pos] in the file
	n    uint64 // packets returned

	ng    bool
	order binary.ByteOrder
	be    bool // order is big-endian: u32 reads it without an interface call

	// The current packet, which next sets.
	data    []byte
	link    LinkType
	wireLen int
	sec     int64 // capture time: seconds and nanoseconds since the Unix epoch
	nsec    int64
	dev     Device

	// pcap
	nanos   bool
	snaplen uint32
	limit   uint32 // the longest record read

	// pcapng: the interfaces of the current section
	ifaces        []ngIface
	section       int    // sections seen
	skippedSimple uint64 // Simple Packet Blocks skipped: no timestamp
}

// readBufSize is the size of a fileReader's buffer, and of its reads: a
// few thousand packets of a capture cut to its headers, small enough to
// stay in the CPU's cache.
const readBufSize = 256 << 10

// ngIface is a pcapng interface: its link type and timestamp units.
type ngIface struct {
	link   LinkType
	div    uint64 // timestamp units per second
	offset int64  // seconds added to every timestamp
}

// setOrder sets the byte order of the file.
func (f *fileReader) setOrder(bigEndian bool) {
	f.be = bigEndian
	if bigEndian {
		f.order = binary.BigEndian
	} else {
		f.order = binary.LittleEndian
	}
}

// u32 reads a number in the file's byte order.
func (f *fileReader) u32(b []byte) uint32 {
	if f.be {
		return binary.BigEndian.Uint32(b)
	}
	return binary.LittleEndian.Uint32(b)
}

// read returns the number of bytes read from the file so far.
func (f *fileReader) read() int64 { return f.off + int64(f.end-f.pos) }

// fill makes at least n bytes readable at f.buf[f.pos:], reading more of
// the file, and reports whether it could: false when the file ends or a
// read fails first (see short). It moves the unread bytes to the start
// of the buffer, or to a larger one, when they would not fit: slices of
// the buffer taken before are then invalid.
func (f *fileReader) fill(n int) bool {
	if f.end-f.pos >= n {
		return true
	}
	if f.pos+n > len(f.buf) {
		if n > len(f.buf) {
			b := make([]byte, max(n, readBufSize))
			f.end = copy(b, f.buf[f.pos:f.end])
			f.buf = b
		} else {
			f.end = copy(f.buf, f.buf[f.pos:f.end])
		}
		f.pos = 0
	}
	for empty := 0; f.end-f.pos < n; {
		if f.err != nil {
			return false
		}
		m, err := f.r.Read(f.buf[f.end:])
		f.end += m
		switch {
		case err != nil:
			f.err = err
		case m > 0:
			empty = 0
		default:
			// As bufio.Reader: a reader that returns nothing 100 times
			// makes no progress.
			if empty++; empty == 100 {
				f.err = io.ErrNoProgress
			}
		}
	}
	return true
}

// consume moves past n bytes that fill made readable.
func (f *fileReader) consume(n int) {
	f.pos += n
	f.off += int64(n)
}

// short returns the error of a read that fill could not make: io.EOF when
// the file ends where a record could start (atBoundary) and no byte is
// left; that the file is cut short when it ends elsewhere; the read's
// error otherwise.
func (f *fileReader) short(atBoundary bool) error {
	switch {
	case errors.Is(f.err, io.EOF) && atBoundary && f.end == f.pos:
		return io.EOF
	case errors.Is(f.err, io.EOF), errors.Is(f.err, io.ErrUnexpectedEOF):
		return fmt.Errorf("read %s: %w (after %d complete packets, %d bytes into the file)", f.name, ErrCutShort, f.n, f.read())
	}
	return fmt.Errorf("read %s: %w", f.name, f.err)
}

// readFull reads len(p) bytes. A file that ends before them is cut short,
// unless it ends exactly where a record could start (atBoundary), which
// is the end of the file: io.EOF.
func (f *fileReader) readFull(p []byte, atBoundary bool) error {
	if !f.fill(len(p)) {
		return f.short(atBoundary)
	}
	copy(p, f.buf[f.pos:])
	f.consume(len(p))
	return nil
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
		f.setOrder(true)
	case magicPcapNano:
		f.setOrder(true)
		f.nanos = true
	case magicPcapMicroLE:
		f.setOrder(false)
	case magicPcapNanoLE:
		f.setOrder(false)
		f.nanos = true
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
	f.limit = min(max(f.snaplen, maxRecord), maxRecordHard)
	f.link = LinkType(f.order.Uint32(h[16:]) & 0xffff)
	if !f.link.Supported() {
		return fmt.Errorf("read %s: %w %s: go-metro decodes Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures", f.name, ErrLinkType, f.link)
	}
	return nil
}

// next reads the next packet into f.data, f.link, f.wireLen, f.sec,
// f.nsec and f.dev, or returns io.EOF at the end of the file. f.data is
// valid until the next call. It does not allocate, but to grow its
// buffer for a record larger than any before, or for an error.
func (f *fileReader) next() error {
	if f.ng {
		return f.nextNg()
	}
	if !f.fill(16) {
		return f.short(true)
	}
	h := f.buf[f.pos : f.pos+16]
	sec, frac := f.u32(h[0:]), f.u32(h[4:])
	incl, orig := f.u32(h[8:]), f.u32(h[12:])
	if incl > f.limit {
		return fmt.Errorf("read %s: packet %d, %d bytes into the file: %w: its captured length %d exceeds the largest packet of the file (%d bytes)", f.name, f.n+1, f.off, ErrCorrupt, incl, f.limit)
	}
	n := 16 + int(incl)
	if !f.fill(n) {
		return f.short(false)
	}
	f.data = f.buf[f.pos+16 : f.pos+n : f.pos+n]
	f.consume(n)
	f.sec, f.nsec = int64(sec), int64(frac)
	if !f.nanos {
		f.nsec *= 1000
	}
	f.wireLen = int(max(orig, incl))
	f.n++
	return nil
}

// readInterfaces reads the Interface Description Blocks that come next,
// so that an unsupported link type is refused when the file is opened,
// as in a pcap file.
func (f *fileReader) readInterfaces() error {
	for {
		if !f.fill(8) || f.u32(f.buf[f.pos:]) != ngInterface {
			return nil // anything else is for next
		}
		start, n := f.off, f.u32(f.buf[f.pos+4:])
		f.consume(8)
		body, err := f.readBlock(ngInterface, n, start, 8)
		if err != nil {
			return err
		}
		if err := f.readInterface(body, start); err != nil {
			return err
		}
	}
}

// nextNg reads the next packet of a pcapng file, as next.
func (f *fileReader) nextNg() error {
	for {
		start := f.off
		var h [8]byte
		if err := f.readFull(h[:], true); err != nil {
			return err
		}
		if binary.BigEndian.Uint32(h[:]) == ngSectionHeader {
			// A new section, which may change the byte order.
			if err := f.readSectionHeader(h[:], start); err != nil {
				return err
			}
			continue
		}
		typ := f.u32(h[0:])
		body, err := f.readBlock(typ, f.u32(h[4:]), start, 8)
		if err != nil {
			return err
		}
		switch typ {
		case ngInterface:
			if err := f.readInterface(body, start); err != nil {
				return err
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
		f.setOrder(true)
	case binary.LittleEndian.Uint32(h[4:]) == magicNgByteOrder:
		f.setOrder(false)
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
// returns the rest of its body, a slice of the read buffer. It is valid
// until the next read.
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
	rest := int(n) - read
	if !f.fill(rest) {
		return nil, f.short(false)
	}
	b := f.buf[f.pos : f.pos+rest : f.pos+rest]
	f.consume(rest)
	if trailer := f.u32(b[len(b)-4:]); trailer != n {
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

// ngPacket reads the packet of an Enhanced Packet Block or an obsolete
// Packet Block whose body is body, as next.
func (f *fileReader) ngPacket(typ uint32, body []byte, start int64) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("read %s: %s at offset %d: %w: "+format, append([]any{f.name, ngBlockName(typ), start, ErrCorrupt}, args...)...)
	}
	if len(body) < 20 {
		return bad("%d bytes, too short for a packet", len(body)+12)
	}
	var id uint32
	if typ == ngEnhancedPacket {
		id = f.u32(body[0:])
	} else {
		id = uint32(f.order.Uint16(body[0:]))
	}
	if uint64(id) >= uint64(len(f.ifaces)) {
		return bad("packet of interface %d, but section %d describes %d interfaces", id, f.section, len(f.ifaces))
	}
	ifc := &f.ifaces[id]
	ts := uint64(f.u32(body[4:]))<<32 | uint64(f.u32(body[8:]))
	caplen, orig := f.u32(body[12:]), f.u32(body[16:])
	if uint64(caplen) > uint64(len(body)-20) {
		return bad("captured length %d exceeds the %d bytes of the block's data", caplen, len(body)-20)
	}
	sec, rem := ts/ifc.div, ts%ifc.div
	hi, lo := bits.Mul64(rem, 1e9)
	nsec, _ := bits.Div64(hi, lo, ifc.div)
	f.n++
	f.data = body[20 : 20+caplen : 20+caplen]
	f.link = ifc.link
	f.wireLen = int(max(orig, caplen))
	f.sec, f.nsec = int64(sec)+ifc.offset, int64(nsec)
	// The interface tells copies of a segment captured on two of them
	// apart; interface ids count from 0, a Device's index 0 is unknown.
	f.dev = MakeDevice(id+1, PacketHost)
	return nil
}
