package capture

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"time"
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

// FileSource reads a pcap or pcapng file, in pure Go. A file that ends
// inside a packet returns the packets before it, then an error wrapping
// ErrCutShort. Frames of a link type the decoder does not understand are
// refused when the file, or the pcapng interface, is read. It is not safe
// for concurrent use.
type FileSource struct {
	name string
	c    io.Closer // of the reader, or nil
	f    fileReader
}

// OpenFile opens a pcap or pcapng file, telling the two apart by their
// magic number. A gzip-compressed file is read as it is.
func OpenFile(path string) (*FileSource, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open capture file: %w", err)
	}
	s, err := NewFileSource(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

// NewFileSource reads a pcap or pcapng capture from r, such as standard
// input, and reads its header; name names it in errors. Close closes r
// when it is an io.Closer, but not when NewFileSource fails.
func NewFileSource(name string, r io.Reader) (*FileSource, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if m, err := br.Peek(2); err == nil && m[0] == 0x1f && m[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("read %s: gzip: %w", name, err)
		}
		br = bufio.NewReaderSize(gz, 1<<16)
	}
	s := &FileSource{name: name, f: fileReader{name: name, r: br, buf: make([]byte, readBufSize)}}
	var magic [4]byte
	if err := s.f.readFull(magic[:], false); err != nil {
		return nil, fmt.Errorf("read %s: %d bytes: not a pcap or pcapng file", name, s.f.read())
	}
	if err := s.f.open(magic); err != nil {
		return nil, err
	}
	s.c, _ = r.(io.Closer)
	return s, nil
}

// ReadFrame returns the next frame, or io.EOF at the end of the file.
// The frame's data is valid until the next call.
func (s *FileSource) ReadFrame() (Frame, error) {
	f := &s.f
	if err := f.next(); err != nil {
		return Frame{}, err
	}
	return Frame{Data: f.data, Link: f.link, WireLen: f.wireLen, Time: time.Unix(f.sec, f.nsec).UTC(), Dev: f.dev}, nil
}

// ReadFrameNano is ReadFrame for a caller that needs the capture time in
// Unix nanoseconds, as Engine.ProcessDev takes it, such as a replay: it
// returns the frame's parts, t in place of Frame.Time, and builds no
// time.Time. data is valid until the next call. It does not allocate (but
// for an error, or to grow its buffer for a packet larger than any
// before).
func (s *FileSource) ReadFrameNano() (data []byte, link LinkType, wireLen int, t int64, dev Device, err error) {
	f := &s.f
	if err := f.next(); err != nil {
		return nil, 0, 0, 0, 0, err
	}
	return f.data, f.link, f.wireLen, f.sec*1e9 + f.nsec, f.dev, nil
}

// Warnings returns what the source skipped so far, for the user.
func (s *FileSource) Warnings() []string {
	if n := s.f.skippedSimple; n > 0 {
		return []string{fmt.Sprintf("%s: skipped %d Simple Packet Blocks: they carry no timestamp, so no RTT can be taken from them", s.name, n)}
	}
	return nil
}

// Packets returns how many packets ReadFrame returned.
func (s *FileSource) Packets() uint64 { return s.f.n }

// Name returns the file's path.
func (s *FileSource) Name() string { return s.name }

// Close closes the file.
func (s *FileSource) Close() error {
	if s.c == nil {
		return nil
	}
	return s.c.Close()
}
