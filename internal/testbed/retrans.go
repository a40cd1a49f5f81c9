package testbed

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// Segment is a TCP segment that a [RetransTracker] saw cross its interface.
type Segment struct {
	// Time is the kernel's timestamp of the frame: the one every packet
	// socket on the interface reads, go-metro's capture included, to the
	// nanosecond.
	Time time.Time
	// Src and Dst are the ends of the segment: for a segment the host sent,
	// Src is the host's.
	Src, Dst netip.AddrPort
	// Seq and End delimit its sequence range [Seq, End), SYN and FIN
	// included; Ack is its acknowledgement number, if HasAck.
	Seq, End, Ack uint32
	HasAck        bool
	// SYN and RST say the SYN and RST flags are set.
	SYN, RST bool
	// TSval and TSecr are its TCP timestamps (RFC 7323), if HasTS.
	TSval, TSecr uint32
	HasTS        bool
}

// Retransmission is a TCP segment that the host sent again: its sequence
// range starts below the highest sequence number its flow had sent before.
type Retransmission struct {
	Segment
	// First is the timestamp of the first transmission of the byte at
	// Seq, or the zero Time if the tracker did not see it.
	First time.Time
}

// RetransTracker watches the TCP segments that cross one interface, with
// a packet socket of its own, and notes per flow the retransmissions among
// the segments the host sends, independently of go-metro: it shares none
// of its code, only the kernel's timestamps, which lets a test find the
// very frames that a go-metro sample timed. Its methods are safe for
// concurrent use.
type RetransTracker struct {
	sock trackerSocket // the platform's packet socket

	mu       sync.Mutex
	flows    map[retransKey]*retransFlow
	rexmits  []Retransmission
	segments uint64
	closed   bool
	// frames are every TCP frame seen, for Reference, up to maxFrames.
	frames     []Frame
	framesFull bool
}

// retransKey is a flow, named from the host's side.
type retransKey struct{ local, remote netip.AddrPort }

// retransFlow is what the tracker knows of one flow: the end of the
// highest segment sent, the first transmission of each range of new data
// in sequence order, and the segments each way by timestamp.
type retransFlow struct {
	isn      uint32 // the sequence number of the SYN, if hasISN
	hasISN   bool
	sndNxt   uint32
	sent     []sentRange
	out, in  map[int64]Segment // by Unix ns
	overflow bool              // out or in reached maxSegments
}

type sentRange struct {
	seq, end uint32
	t        time.Time
}

// maxSegments bounds what the tracker keeps per flow and direction, so
// that a long transfer cannot exhaust memory; beyond it, segments are
// still checked for retransmission but not kept for Sent and Received.
const maxSegments = 1 << 18

// TrackRetransmissions starts a tracker on the interface ifname of ns for
// the test, and closes it when the test ends. It skips the test without
// privileges (see [RequireRoot]).
func TrackRetransmissions(tb testing.TB, ns *NetNS, ifname string) *RetransTracker {
	tb.Helper()
	RequireRoot(tb)
	r, err := OpenRetransTracker(ns, ifname)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
	})
	return r
}

// OpenRetransTracker starts a tracker on the interface ifname of ns. The
// caller must call Close.
func OpenRetransTracker(ns *NetNS, ifname string) (*RetransTracker, error) {
	r := newRetransTracker()
	if err := r.sock.open(ns, ifname, r.observe); err != nil {
		return nil, err
	}
	return r, nil
}

func newRetransTracker() *RetransTracker {
	return &RetransTracker{flows: make(map[retransKey]*retransFlow)}
}

// Close stops the tracker and waits for its goroutine to exit. What it saw
// stays readable. Close is idempotent.
func (r *RetransTracker) Close() error {
	r.mu.Lock()
	closed := r.closed
	r.closed = true
	r.mu.Unlock()
	if closed {
		return nil
	}
	return r.sock.close()
}

// Drops returns how many frames the kernel dropped because the tracker
// did not read them in time; if it is not 0, retransmissions may be
// missing.
func (r *RetransTracker) Drops() uint64 { return r.sock.drops() }

// Retransmissions returns the retransmissions seen so far, in the order
// they were sent.
func (r *RetransTracker) Retransmissions() []Retransmission {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rexmits)
}

// Segments returns how many segments that occupy sequence space (data,
// SYN or FIN) the host sent, retransmissions included.
func (r *RetransTracker) Segments() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.segments
}

// Sent returns the segment that the host sent from local to remote with
// the timestamp t, if the tracker saw one.
func (r *RetransTracker) Sent(local, remote netip.AddrPort, t time.Time) (Segment, bool) {
	return r.lookup(local, remote, t, false)
}

// Received returns the segment that the host received from remote for
// local with the timestamp t, if the tracker saw one.
func (r *RetransTracker) Received(local, remote netip.AddrPort, t time.Time) (Segment, bool) {
	return r.lookup(local, remote, t, true)
}

func (r *RetransTracker) lookup(local, remote netip.AddrPort, t time.Time, in bool) (Segment, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.flows[retransKey{local, remote}]
	if f == nil {
		return Segment{}, false
	}
	m := f.out
	if in {
		m = f.in
	}
	s, ok := m[t.UnixNano()]
	return s, ok
}

// observe handles one Ethernet frame with its kernel timestamp; outgoing
// says the host sent it. frame is not retained; it may be cut short after
// the TCP header.
func (r *RetransTracker) observe(frame []byte, t time.Time, outgoing bool) {
	seg, ok := parseTCPFrame(frame)
	if !ok {
		return
	}
	seg.Time = t
	k := retransKey{seg.Src, seg.Dst}
	if !outgoing {
		k = retransKey{seg.Dst, seg.Src}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.frames) < maxFrames {
		r.frames = append(r.frames, Frame{Segment: seg, Out: outgoing})
	} else {
		r.framesFull = true
	}
	f := r.flows[k]
	if outgoing && seg.SYN && f != nil && (!f.hasISN || seg.Seq != f.isn) {
		f = nil // a new connection on the same four-tuple
	}
	if f == nil {
		f = &retransFlow{out: make(map[int64]Segment), in: make(map[int64]Segment)}
		r.flows[k] = f
	}
	keep := f.out
	if !outgoing {
		keep = f.in
	}
	if len(keep) < maxSegments {
		keep[t.UnixNano()] = seg
	} else {
		f.overflow = true
	}
	if !outgoing || seg.End == seg.Seq {
		return
	}
	r.segments++
	if len(f.sent) == 0 && !f.hasISN {
		// The first segment of the flow that occupies sequence space.
		f.isn, f.hasISN, f.sndNxt = seg.Seq, seg.SYN, seg.Seq
	}
	if seqBefore(seg.Seq, f.sndNxt) {
		r.rexmits = append(r.rexmits, Retransmission{Segment: seg, First: f.firstSent(seg.Seq)})
	}
	if seqBefore(f.sndNxt, seg.End) {
		if len(f.sent) < maxSegments {
			lo := f.sndNxt
			if seqBefore(lo, seg.Seq) {
				lo = seg.Seq
			}
			f.sent = append(f.sent, sentRange{seq: lo, end: seg.End, t: t})
		}
		f.sndNxt = seg.End
	}
}

// firstSent returns when the byte at seq was first sent, or the zero Time.
func (f *retransFlow) firstSent(seq uint32) time.Time {
	// f.sent is in sequence order and spans far less than 2^31, so
	// wrap-aware comparisons order it.
	i, found := slices.BinarySearchFunc(f.sent, seq, func(s sentRange, seq uint32) int {
		switch {
		case seqBefore(seq, s.seq):
			return 1
		case !seqBefore(seq, s.end):
			return -1
		}
		return 0
	})
	if !found {
		return time.Time{}
	}
	return f.sent[i].t
}

// seqBefore compares sequence numbers with wrap-around (RFC 1982).
func seqBefore(a, b uint32) bool { return int32(a-b) < 0 }

// parseTCPFrame reads the TCP segment of an Ethernet frame carrying IPv4,
// or IPv6 without extension headers. The frame may be cut short after the
// TCP header: the payload length comes from the IP header. It reports
// false for anything else, including IPv4 fragments and frames cut short
// before the end of the TCP header.
func parseTCPFrame(b []byte) (Segment, bool) {
	const (
		ethLen    = 14
		protoTCP  = 6
		flagFIN   = 0x01
		flagSYN   = 0x02
		flagRST   = 0x04
		flagACK   = 0x10
		etherIPv4 = 0x0800
		etherIPv6 = 0x86dd
	)
	var s Segment
	if len(b) < ethLen {
		return s, false
	}
	ip := b[ethLen:]
	var tcp []byte
	var srcIP, dstIP netip.Addr
	var tcpLen int // header and payload, from the IP header
	switch binary.BigEndian.Uint16(b[12:14]) {
	case etherIPv4:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return s, false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:4]))
		if ip[9] != protoTCP || ihl < 20 || total < ihl || len(ip) < ihl ||
			binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 { // MF or fragment offset
			return s, false
		}
		srcIP = netip.AddrFrom4([4]byte(ip[12:16]))
		dstIP = netip.AddrFrom4([4]byte(ip[16:20]))
		tcp, tcpLen = ip[ihl:], total-ihl
	case etherIPv6:
		if len(ip) < 40 || ip[0]>>4 != 6 || ip[6] != protoTCP {
			return s, false
		}
		srcIP = netip.AddrFrom16([16]byte(ip[8:24]))
		dstIP = netip.AddrFrom16([16]byte(ip[24:40]))
		tcp, tcpLen = ip[40:], int(binary.BigEndian.Uint16(ip[4:6]))
	default:
		return s, false
	}
	if len(tcp) < 20 {
		return s, false
	}
	off := int(tcp[12]>>4) * 4
	if off < 20 || off > len(tcp) || off > tcpLen {
		return s, false
	}
	flags := tcp[13]
	s.Src = netip.AddrPortFrom(srcIP, binary.BigEndian.Uint16(tcp[0:2]))
	s.Dst = netip.AddrPortFrom(dstIP, binary.BigEndian.Uint16(tcp[2:4]))
	s.Seq = binary.BigEndian.Uint32(tcp[4:8])
	n := uint32(tcpLen - off)
	if flags&flagSYN != 0 {
		n++
		s.SYN = true
	}
	if flags&flagFIN != 0 {
		n++
	}
	s.RST = flags&flagRST != 0
	s.End = s.Seq + n
	if flags&flagACK != 0 {
		s.Ack, s.HasAck = binary.BigEndian.Uint32(tcp[8:12]), true
	}
	s.TSval, s.TSecr, s.HasTS = tcpTimestamps(tcp[20:off])
	return s, true
}

// tcpTimestamps returns the TSval and TSecr of the timestamps option, if
// the options hold one.
func tcpTimestamps(opts []byte) (tsval, tsecr uint32, ok bool) {
	const (
		optEnd       = 0
		optNOP       = 1
		optTimestamp = 8
	)
	for len(opts) > 0 {
		switch opts[0] {
		case optEnd:
			return 0, 0, false
		case optNOP:
			opts = opts[1:]
			continue
		}
		if len(opts) < 2 || opts[1] < 2 || int(opts[1]) > len(opts) {
			return 0, 0, false
		}
		if opts[0] == optTimestamp && opts[1] == 10 {
			return binary.BigEndian.Uint32(opts[2:6]), binary.BigEndian.Uint32(opts[6:10]), true
		}
		opts = opts[opts[1]:]
	}
	return 0, 0, false
}
