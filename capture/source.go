package capture

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// Frame is one captured frame.
type Frame struct {
	// Data holds the captured bytes. It is owned by the Source and valid
	// until the next ReadFrame.
	Data    []byte
	Link    LinkType
	WireLen int // length on the wire; Data may hold less (snap length)
	Time    time.Time
	// Dev is the device the frame was captured on, when the file tells
	// (a pcapng file's interface); 0 if unknown.
	Dev Device
}

// Source is a packet source.
type Source interface {
	// ReadFrame returns the next frame, or io.EOF after the last one.
	ReadFrame() (Frame, error)
}

// ProcessFrame is Process for a Frame.
func (e *Engine) ProcessFrame(f *Frame) {
	e.ProcessDev(f.Link, f.Data, f.WireLen, f.Time.UnixNano(), f.Dev)
}

// FileSource reads a pcap or pcapng file, in pure Go. It is not safe for
// concurrent use.
type FileSource struct {
	name string
	f    *os.File
	read func() ([]byte, gopacket.CaptureInfo, error)
	link LinkType // pcap: the file's link type; pcapng: per packet
	ng   bool
}

const (
	magicPcapng = 0x0a0d0d0a
)

// OpenFile opens a pcap or pcapng file, telling the two apart by their
// magic number.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture file: %w", err)
	}
	s, err := newFileSource(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func newFileSource(name string, f *os.File) (*FileSource, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	magic, err := br.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w: not a pcap or pcapng file", name, errShort(err))
	}
	s := &FileSource{name: name, f: f}
	switch binary.BigEndian.Uint32(magic) {
	case magicPcapng:
		r, err := pcapgo.NewNgReader(br, pcapgo.NgReaderOptions{WantMixedLinkType: true, SkipUnknownVersion: true})
		if err != nil {
			return nil, fmt.Errorf("read %s: pcapng header: %w", name, err)
		}
		s.ng = true
		s.read = r.ZeroCopyReadPacketData
	case 0xa1b2c3d4, 0xd4c3b2a1, 0xa1b23c4d, 0x4d3cb2a1:
		r, err := pcapgo.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read %s: pcap header: %w", name, err)
		}
		s.link = LinkType(r.LinkType())
		if !s.link.Supported() {
			return nil, fmt.Errorf("read %s: %w %s: go-metro decodes Ethernet, Linux cooked (SLL, SLL2), raw IP and BSD loopback captures", name, ErrLinkType, s.link)
		}
		s.read = r.ZeroCopyReadPacketData
	default:
		return nil, fmt.Errorf("read %s: magic %#08x: not a pcap or pcapng file", name, binary.BigEndian.Uint32(magic))
	}
	return s, nil
}

func errShort(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// ReadFrame returns the next frame, or io.EOF at the end of the file. A
// frame of a link type the decoder does not understand is still returned;
// the Engine counts it as a decode error.
func (s *FileSource) ReadFrame() (Frame, error) {
	data, ci, err := s.read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return Frame{}, io.EOF
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, fmt.Errorf("read %s: file ends inside a packet (truncated capture): %w", s.name, err)
		}
		return Frame{}, fmt.Errorf("read %s: %w", s.name, err)
	}
	link := s.link
	var dev Device
	if s.ng {
		if len(ci.AncillaryData) > 0 {
			if lt, ok := ci.AncillaryData[0].(layers.LinkType); ok {
				link = LinkType(lt)
			}
		}
		// pcapng numbers interfaces from 0; a Device's index 0 is unknown.
		dev = MakeDevice(uint32(ci.InterfaceIndex)+1, PacketHost)
	}
	return Frame{Data: data, Link: link, WireLen: ci.Length, Time: ci.Timestamp, Dev: dev}, nil
}

// Name returns the file's path.
func (s *FileSource) Name() string { return s.name }

// Close closes the file.
func (s *FileSource) Close() error { return s.f.Close() }
