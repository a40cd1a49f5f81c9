package capture_test

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/go-metro/go-metro/capture"
)

// readAll reads every frame of a capture held in data, copying each, and
// returns them with the error that ended the read (nil at the end).
func readAll(t *testing.T, data []byte) ([]capture.Frame, *capture.FileSource, error) {
	t.Helper()
	s, err := capture.NewFileSource("test.pcap", bytes.NewReader(data))
	if err != nil {
		return nil, nil, err
	}
	var frames []capture.Frame
	for {
		f, err := s.ReadFrame()
		if err == io.EOF {
			return frames, s, nil
		}
		if err != nil {
			return frames, s, err
		}
		f.Data = bytes.Clone(f.Data)
		frames = append(frames, f)
	}
}

// TestFileSourceMatchesGopacket reads every committed capture with
// FileSource and with gopacket's pcapgo, and as pcapng written by pcapgo
// and gzip-compressed: the frames must be the same.
func TestFileSourceMatchesGopacket(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("testdata", "*.pcap"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no captures: %v", err)
	}
	paths = append(paths, filepath.Join("testdata", "hostile", "hostile.pcap"))
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := pcapgo.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			var want []capture.Frame
			var ng bytes.Buffer
			w, err := pcapgo.NewNgWriterInterface(&ng, pcapgo.NgInterface{LinkType: r.LinkType(), SnapLength: r.Snaplen(), TimestampResolution: 9}, pcapgo.DefaultNgWriterOptions)
			if err != nil {
				t.Fatal(err)
			}
			for {
				d, ci, err := r.ReadPacketData()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				want = append(want, capture.Frame{Data: d, Link: capture.LinkType(r.LinkType()), WireLen: ci.Length, Time: ci.Timestamp})
				if err := w.WritePacket(ci, d); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(data)
			zw.Close()
			for name, in := range map[string][]byte{"pcap": data, "pcapng": ng.Bytes(), "pcap.gz": gz.Bytes()} {
				got, _, err := readAll(t, in)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				w := want
				if name == "pcapng" {
					// pcapng tells the interface: the first, index 1.
					w = slices.Clone(want)
					for i := range w {
						w[i].Dev = capture.MakeDevice(1, capture.PacketHost)
					}
				}
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("%s: frames (-gopacket +FileSource):\n%s", name, diff)
				}
			}
		})
	}
}

// Builders of capture files, byte by byte.

var le = binary.LittleEndian

// byteOrder is binary.LittleEndian or binary.BigEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

func pcapHeader(link uint32) []byte {
	b := le.AppendUint32(nil, 0xa1b2c3d4)
	b = le.AppendUint16(b, 2)
	b = le.AppendUint16(b, 4)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 0)
	b = le.AppendUint32(b, 65535)
	return le.AppendUint32(b, link)
}

func pcapRecord(sec, usec uint32, data []byte) []byte {
	b := le.AppendUint32(nil, sec)
	b = le.AppendUint32(b, usec)
	b = le.AppendUint32(b, uint32(len(data)))
	b = le.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// ngBlock is a pcapng block of type typ with body, padded, in order.
func ngBlock(order byteOrder, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	n := uint32(12 + len(body))
	b := order.AppendUint32(nil, typ)
	b = order.AppendUint32(b, n)
	b = append(b, body...)
	return order.AppendUint32(b, n)
}

func ngSection(order byteOrder, major, minor uint16) []byte {
	body := order.AppendUint32(nil, 0x1a2b3c4d)
	body = order.AppendUint16(body, major)
	body = order.AppendUint16(body, minor)
	body = order.AppendUint64(body, ^uint64(0))
	return ngBlock(order, 0x0a0d0d0a, body)
}

// ngInterface is an Interface Description Block; tsresol 0 means none.
func ngInterface(order byteOrder, link uint16, tsresol byte, tsoffset int64) []byte {
	body := order.AppendUint16(nil, link)
	body = order.AppendUint16(body, 0)
	body = order.AppendUint32(body, 0)
	if tsresol != 0 {
		body = order.AppendUint16(body, 9)
		body = order.AppendUint16(body, 1)
		body = append(body, tsresol, 0, 0, 0)
	}
	if tsoffset != 0 {
		body = order.AppendUint16(body, 14)
		body = order.AppendUint16(body, 8)
		body = order.AppendUint64(body, uint64(tsoffset))
	}
	body = order.AppendUint32(body, 0) // end of options
	return ngBlock(order, 1, body)
}

func ngEnhanced(order byteOrder, iface uint32, ts uint64, data []byte) []byte {
	body := order.AppendUint32(nil, iface)
	body = order.AppendUint32(body, uint32(ts>>32))
	body = order.AppendUint32(body, uint32(ts))
	body = order.AppendUint32(body, uint32(len(data)))
	body = order.AppendUint32(body, uint32(len(data)))
	return ngBlock(order, 6, append(body, data...))
}

func ngSimple(order byteOrder, data []byte) []byte {
	return ngBlock(order, 3, append(order.AppendUint32(nil, uint32(len(data))), data...))
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestFileSourceGood reads well-formed files that exercise the formats:
// both byte orders, several sections, timestamp resolutions and offsets,
// blocks go-metro skips, and a pcapng with the old Packet Block.
func TestFileSourceGood(t *testing.T) {
	be := binary.BigEndian
	pkt := []byte{1, 2, 3, 4, 5}
	at := func(sec, nsec int64) time.Time { return time.Unix(sec, nsec).UTC() }
	frame := func(link capture.LinkType, t time.Time) capture.Frame {
		return capture.Frame{Data: pkt, Link: link, WireLen: len(pkt), Time: t}
	}
	// ngFrame is a frame of a pcapng file, which tells its interface.
	ngFrame := func(link capture.LinkType, t time.Time, iface uint32) capture.Frame {
		f := frame(link, t)
		f.Dev = capture.MakeDevice(iface+1, capture.PacketHost)
		return f
	}
	for _, tt := range []struct {
		name string
		data []byte
		want []capture.Frame
	}{
		{"pcap", cat(pcapHeader(1), pcapRecord(10, 5, pkt), pcapRecord(11, 6, pkt)),
			[]capture.Frame{frame(capture.LinkEthernet, at(10, 5000)), frame(capture.LinkEthernet, at(11, 6000))}},
		{"pcapng little-endian, microseconds", cat(ngSection(le, 1, 0), ngInterface(le, 1, 0, 0), ngEnhanced(le, 0, 10_000_005, pkt)),
			[]capture.Frame{ngFrame(capture.LinkEthernet, at(10, 5000), 0)}},
		{"pcapng big-endian, nanoseconds", cat(ngSection(be, 1, 0), ngInterface(be, 101, 9, 0), ngEnhanced(be, 0, 10_000_000_005, pkt)),
			[]capture.Frame{ngFrame(capture.LinkRaw, at(10, 5), 0)}},
		{"pcapng binary resolution and offset", cat(ngSection(le, 1, 0), ngInterface(le, 1, 0x80|10, 100), ngEnhanced(le, 0, 1024*3+512, pkt)),
			[]capture.Frame{ngFrame(capture.LinkEthernet, at(103, 500_000_000), 0)}},
		{"pcapng two sections, two byte orders, two interfaces", cat(
			ngSection(le, 1, 0), ngInterface(le, 1, 0, 0), ngInterface(le, 276, 9, 0), ngEnhanced(le, 1, 7, pkt),
			ngBlock(le, 5, make([]byte, 12)), // interface statistics: skipped
			ngSection(be, 1, 2), ngInterface(be, 113, 0, 0), ngBlock(be, 4, make([]byte, 4)), ngEnhanced(be, 0, 2_000_000, pkt)),
			[]capture.Frame{ngFrame(capture.LinkLinuxSLL2, at(0, 7), 1), ngFrame(capture.LinkLinuxSLL, at(2, 0), 0)}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, s, err := readAll(t, tt.data)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
			if w := s.Warnings(); len(w) > 0 {
				t.Errorf("warnings %q", w)
			}
		})
	}
}

// TestFileSourceBad reads damaged and unsupported files. Each gives the
// frames before the damage, then an error that says what is wrong and
// where: a file cut short wraps ErrCutShort, a length that does not fit
// wraps ErrCorrupt and names the block, an unknown link type or version
// is refused, and Simple Packet Blocks, which have no timestamp, are
// skipped with a warning rather than timed at 0.
func TestFileSourceBad(t *testing.T) {
	pkt := []byte{1, 2, 3, 4, 5}
	good := cat(pcapHeader(1), pcapRecord(10, 0, pkt), pcapRecord(11, 0, pkt))
	ngGood := cat(ngSection(le, 1, 0), ngInterface(le, 1, 0, 0), ngEnhanced(le, 0, 1, pkt), ngEnhanced(le, 0, 2, pkt))
	huge := cat(pcapHeader(1), le.AppendUint32(le.AppendUint32(le.AppendUint32(le.AppendUint32(nil, 1), 0), 1<<30), 1<<30))
	corruptLen := func(n uint32) []byte {
		b := cat(ngGood, ngEnhanced(le, 0, 3, pkt))
		le.PutUint32(b[len(ngGood)+4:], n)
		return b
	}
	trailer := cat(ngGood, ngEnhanced(le, 0, 3, pkt))
	le.PutUint32(trailer[len(trailer)-4:], 36)
	for _, tt := range []struct {
		name     string
		data     []byte
		frames   int
		open     bool  // the error comes when the file is opened
		is       error // errors.Is the error, if set
		want     string
		warnings []string
	}{
		{name: "pcap cut inside the last record", data: good[:len(good)-2], frames: 1, is: capture.ErrCutShort,
			want: "read test.pcap: the file appears to have been cut short in the middle of a packet (after 1 complete packets, 64 bytes into the file)"},
		{name: "pcap cut right after a record header", data: good[:len(good)-len(pkt)], frames: 1, is: capture.ErrCutShort,
			want: "cut short in the middle of a packet (after 1 complete packets, 61 bytes into the file)"},
		{name: "pcap cut inside a record header", data: good[:len(good)-len(pkt)-3], frames: 1, is: capture.ErrCutShort},
		{name: "pcap cut inside the file header", data: good[:10], open: true, is: capture.ErrCutShort},
		{name: "pcap record longer than any packet", data: huge, is: capture.ErrCorrupt,
			want: "read test.pcap: packet 1, 24 bytes into the file: corrupt capture file: its captured length 1073741824 exceeds the largest packet of the file (262144 bytes)"},
		{name: "pcap unsupported link type", data: cat(pcapHeader(147), pcapRecord(1, 0, pkt)), open: true, is: capture.ErrLinkType,
			want: "read test.pcap: unsupported link type LINKTYPE_147: go-metro decodes Ethernet"},
		{name: "pcap version 3", data: func() []byte { b := bytes.Clone(good); le.PutUint16(b[4:], 3); return b }(), open: true,
			want: "read test.pcap: pcap version 3.4: unsupported; go-metro reads version 2"},
		{name: "empty file", data: nil, open: true, want: "read test.pcap: 0 bytes: not a pcap or pcapng file"},
		{name: "not a capture", data: []byte("hello, world"), open: true, want: "read test.pcap: magic 0x68656c6c: not a pcap or pcapng file"},

		{name: "pcapng cut inside a block", data: ngGood[:len(ngGood)-6], frames: 1, is: capture.ErrCutShort},
		{name: "pcapng cut right after a block header", data: cat(ngGood, ngEnhanced(le, 0, 3, pkt)[:8]), frames: 2, is: capture.ErrCutShort},
		{name: "pcapng block length too small", data: corruptLen(8), frames: 2, is: capture.ErrCorrupt,
			want: "read test.pcap: Enhanced Packet Block at offset 132: corrupt capture file: invalid block length 8: this block has at least 12 bytes, in multiples of 4"},
		{name: "pcapng block length not a multiple of 4", data: corruptLen(45), frames: 2, is: capture.ErrCorrupt,
			want: "Enhanced Packet Block at offset 132: corrupt capture file: invalid block length 45"},
		{name: "pcapng block length huge", data: corruptLen(0xfffffff0), frames: 2, is: capture.ErrCorrupt,
			want: "Enhanced Packet Block at offset 132: corrupt capture file: block length 4294967280 exceeds the 16777216 bytes of the largest block read"},
		{name: "pcapng trailing length differs", data: trailer, frames: 2, is: capture.ErrCorrupt,
			want: "Enhanced Packet Block at offset 132: corrupt capture file: its trailing length 36 differs from its leading length 40"},
		{name: "pcapng captured length beyond the block", data: func() []byte {
			b := cat(ngGood, ngEnhanced(le, 0, 3, pkt))
			le.PutUint32(b[len(ngGood)+20:], 100)
			return b
		}(), frames: 2, is: capture.ErrCorrupt, want: "Enhanced Packet Block at offset 132: corrupt capture file: captured length 100 exceeds the 8 bytes of the block's data"},
		{name: "pcapng unknown interface", data: cat(ngGood, ngEnhanced(le, 3, 3, pkt)), frames: 2, is: capture.ErrCorrupt,
			want: "Enhanced Packet Block at offset 132: corrupt capture file: packet of interface 3, but section 1 describes 1 interfaces"},
		{name: "pcapng unsupported link type", data: cat(ngSection(le, 1, 0), ngInterface(le, 147, 0, 0), ngEnhanced(le, 0, 1, pkt)), open: true, is: capture.ErrLinkType,
			want: "read test.pcap: interface 0 of section 1 (Interface Description Block at offset 28): unsupported link type LINKTYPE_147: go-metro decodes Ethernet"},
		{name: "pcapng unsupported link type in a later interface", data: cat(ngGood, ngInterface(le, 147, 0, 0), ngEnhanced(le, 1, 3, pkt)), frames: 2, is: capture.ErrLinkType,
			want: "read test.pcap: interface 1 of section 1 (Interface Description Block at offset 132): unsupported link type LINKTYPE_147"},
		{name: "pcapng unknown section version", data: cat(ngSection(le, 2, 0), ngInterface(le, 1, 0, 0), ngEnhanced(le, 0, 1, pkt)), open: true,
			want: "read test.pcap: section 1, at offset 0, has pcapng version 2.0: unsupported; go-metro reads version 1"},
		{name: "pcapng second section of an unknown version", data: cat(ngGood, ngSection(le, 2, 0), ngInterface(le, 1, 0, 0), ngEnhanced(le, 0, 1, pkt)), frames: 2,
			want: "read test.pcap: section 2, at offset 132, has pcapng version 2.0: unsupported"},
		{name: "pcapng bad byte-order magic", data: func() []byte { b := bytes.Clone(ngGood); le.PutUint32(b[8:], 0x12345678); return b }(), open: true, is: capture.ErrCorrupt,
			want: "Section Header Block at offset 0: corrupt capture file: byte-order magic 0x78563412, want 0x1a2b3c4d"},
		{name: "pcapng Simple Packet Blocks", data: cat(ngGood, ngSimple(le, pkt), ngSimple(le, pkt), ngEnhanced(le, 0, 3, pkt)), frames: 3,
			warnings: []string{"test.pcap: skipped 2 Simple Packet Blocks: they carry no timestamp, so no RTT can be taken from them"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			frames, s, err := readAll(t, tt.data)
			if tt.open != (s == nil) {
				t.Errorf("error when opening: %v, want %v", s == nil, tt.open)
			}
			if len(frames) != tt.frames {
				t.Errorf("%d frames, want %d", len(frames), tt.frames)
			}
			switch {
			case tt.want == "" && tt.is == nil && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("error %v, want %q", err, tt.want)
			case tt.is != nil && !errors.Is(err, tt.is):
				t.Errorf("error %v, want one wrapping %v", err, tt.is)
			}
			if errors.Is(err, capture.ErrCutShort) && errors.Is(err, capture.ErrCorrupt) {
				t.Errorf("error %v is both cut short and corrupt", err)
			}
			for _, f := range frames {
				if f.Time.IsZero() || f.Time.Year() < 1970 {
					t.Errorf("frame at %v", f.Time)
				}
			}
			if s != nil {
				if diff := cmp.Diff(tt.warnings, s.Warnings()); diff != "" {
					t.Errorf("warnings (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestFileSourceOpenFile checks OpenFile on a file written by pcapgo.
func TestFileSourceOpenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(128, layers.LinkTypeLinuxSLL); err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.UTC)
	if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: ts, CaptureLength: 3, Length: 300}, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fr, err := s.ReadFrame()
	if err != nil {
		t.Fatal(err)
	}
	want := capture.Frame{Data: []byte{1, 2, 3}, Link: capture.LinkLinuxSLL, WireLen: 300, Time: ts}
	if diff := cmp.Diff(want, fr); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	if _, err := s.ReadFrame(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
	if s.Packets() != 1 || s.Name() != path {
		t.Errorf("Packets %d, Name %q", s.Packets(), s.Name())
	}
}

// FuzzFileSource reads arbitrary bytes as a capture file: it must never
// panic, hang or return a frame longer than its wire length, and every
// error but the end of the file must say what is wrong.
func FuzzFileSource(f *testing.F) {
	pkt := []byte{1, 2, 3, 4, 5}
	f.Add(cat(pcapHeader(1), pcapRecord(10, 5, pkt), pcapRecord(11, 6, pkt)))
	f.Add(cat(ngSection(le, 1, 0), ngInterface(le, 1, 0x80|10, 100), ngEnhanced(le, 0, 7, pkt), ngSimple(le, pkt)))
	f.Add(cat(ngSection(binary.BigEndian, 1, 0), ngInterface(binary.BigEndian, 276, 9, 0), ngEnhanced(binary.BigEndian, 0, 7, pkt)))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := capture.NewFileSource("fuzz", bytes.NewReader(data))
		if err != nil {
			return
		}
		for range len(data) + 1 { // each frame consumes at least 12 bytes
			fr, err := s.ReadFrame()
			if err != nil {
				if err != io.EOF && !strings.HasPrefix(err.Error(), "read fuzz: ") {
					t.Fatalf("error %q does not name the file", err)
				}
				return
			}
			if len(fr.Data) > fr.WireLen {
				t.Fatalf("%d bytes of a %d-byte packet", len(fr.Data), fr.WireLen)
			}
			if !fr.Link.Supported() {
				t.Fatalf("frame of unsupported link type %v", fr.Link)
			}
		}
		t.Fatal("more frames than bytes")
	})
}

// readAllFrom is readAll for a reader.
func readAllFrom(t *testing.T, r io.Reader) ([]capture.Frame, error) {
	t.Helper()
	s, err := capture.NewFileSource("test.pcap", r)
	if err != nil {
		return nil, err
	}
	var frames []capture.Frame
	for {
		f, err := s.ReadFrame()
		if err == io.EOF {
			return frames, nil
		}
		if err != nil {
			return frames, err
		}
		f.Data = bytes.Clone(f.Data)
		frames = append(frames, f)
	}
}

// zeroReader returns nothing, and no error, forever.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

// TestFileSourceReads reads captures with records larger than the read
// buffer through readers that return a byte at a time, half of what is
// asked, or their last bytes with io.EOF: the frames must be those of a
// plain read, the same with ReadFrameNano. A read that fails, or makes
// no progress, ends with its error, which names the file.
func TestFileSourceReads(t *testing.T) {
	pkt := []byte{1, 2, 3, 4, 5}
	big := bytes.Repeat([]byte{7}, 600<<10) // larger than the read buffer
	huge := bytes.Repeat([]byte{8}, 900<<10)
	hdr := pcapHeader(1)
	le.PutUint32(hdr[16:], 1<<20) // snap length
	pcap := cat(hdr, pcapRecord(1, 0, pkt), pcapRecord(2, 0, big), pcapRecord(3, 0, pkt), pcapRecord(4, 0, huge), pcapRecord(5, 0, pkt))
	ng := cat(ngSection(le, 1, 0), ngInterface(le, 1, 0, 0), ngEnhanced(le, 0, 1, pkt), ngEnhanced(le, 0, 2, big),
		ngSection(binary.BigEndian, 1, 0), ngInterface(binary.BigEndian, 1, 9, 0), ngEnhanced(binary.BigEndian, 0, 3, huge), ngEnhanced(binary.BigEndian, 0, 4, pkt))
	for _, tt := range []struct {
		name string
		data []byte
		n    int
	}{{"pcap", pcap, 5}, {"pcapng", ng, 4}} {
		t.Run(tt.name, func(t *testing.T) {
			want, _, err := readAll(t, tt.data)
			if err != nil || len(want) != tt.n {
				t.Fatalf("%d frames, want %d: %v", len(want), tt.n, err)
			}
			for name, r := range map[string]io.Reader{
				"one byte": iotest.OneByteReader(bytes.NewReader(tt.data)),
				"half":     iotest.HalfReader(bytes.NewReader(tt.data)),
				"data+EOF": iotest.DataErrReader(bytes.NewReader(tt.data)),
			} {
				got, err := readAllFrom(t, r)
				if err != nil {
					t.Errorf("%s: %v", name, err)
				}
				// cmp.Diff would compare the large records byte by byte,
				// through reflection.
				if diff := cmp.Diff(want, got, cmp.Comparer(bytes.Equal)); diff != "" {
					t.Errorf("%s: frames (-plain +got):\n%s", name, diff)
				}
			}
			s, err := capture.NewFileSource("test.pcap", bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				data, link, wireLen, ts, dev, err := s.ReadFrameNano()
				if err == io.EOF && i == len(want) {
					break
				}
				if err != nil || i == len(want) {
					t.Fatalf("ReadFrameNano %d: %v", i, err)
				}
				w := want[i]
				if !bytes.Equal(data, w.Data) || link != w.Link || wireLen != w.WireLen || ts != w.Time.UnixNano() || dev != w.Dev {
					t.Errorf("ReadFrameNano %d: %d bytes, %v, %d, %d, %v; ReadFrame %d bytes, %v, %d, %v, %v", i, len(data), link, wireLen, ts, dev, len(w.Data), w.Link, w.WireLen, w.Time, w.Dev)
				}
			}

			boom := errors.New("boom")
			cut := len(tt.data) - 3
			got, err := readAllFrom(t, io.MultiReader(bytes.NewReader(tt.data[:cut]), iotest.ErrReader(boom)))
			if !errors.Is(err, boom) || errors.Is(err, capture.ErrCutShort) || !strings.HasPrefix(err.Error(), "read test.pcap: ") {
				t.Errorf("read error: %v, want one wrapping %v", err, boom)
			}
			if len(got) != len(want)-1 {
				t.Errorf("read error: %d frames, want %d", len(got), len(want)-1)
			}
			got, err = readAllFrom(t, io.MultiReader(bytes.NewReader(tt.data[:cut]), zeroReader{}))
			if !errors.Is(err, io.ErrNoProgress) || len(got) != len(want)-1 {
				t.Errorf("no progress: %d frames, %v", len(got), err)
			}
		})
	}
}
