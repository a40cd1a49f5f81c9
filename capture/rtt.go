package capture

import (
	"fmt"
	"strings"
	"time"
)

// Method is the estimator that produced an RTT sample.
type Method uint8

// The RTT estimators. See timeOutgoing and timeIncoming for what each one
// times.
const (
	// MethodTimestamp pairs a segment's TSval with the peer's TSecr echo
	// (RFC 7323).
	MethodTimestamp Method = iota
	// MethodSeqAck pairs a segment's end with the ACK that covers it
	// exactly, never for retransmitted data (Karn's rule). It is used for
	// flows without TCP timestamps, or when MethodTimestamp is disabled.
	MethodSeqAck
	// MethodHandshake times SYN to SYN-ACK for connections the host opens,
	// and SYN-ACK to the completing ACK for connections it accepts.
	MethodHandshake

	// NumMethods is the number of methods.
	NumMethods = 3
)

var methodNames = [NumMethods]string{"timestamp", "seqack", "handshake"}

// String returns the method's name as used in config and output.
func (m Method) String() string {
	if int(m) < NumMethods {
		return methodNames[m]
	}
	return "method(" + fmt.Sprint(uint8(m)) + ")"
}

// ParseMethod parses a method name: timestamp, seqack or handshake.
func ParseMethod(s string) (Method, error) {
	for i, n := range methodNames {
		if s == n {
			return Method(i), nil
		}
	}
	return 0, fmt.Errorf("unknown RTT method %q: must be one of %s", s, strings.Join(methodNames[:], ", "))
}

// Methods is a set of estimators, one bit per Method. The zero value is the
// empty set.
type Methods uint8

// AllMethods enables every estimator.
const AllMethods Methods = 1<<NumMethods - 1

// Has reports whether m is in the set.
func (s Methods) Has(m Method) bool { return s&(1<<m) != 0 }

// With returns the set with m added.
func (s Methods) With(m Method) Methods { return s | 1<<m }

// String lists the set's methods, comma-separated.
func (s Methods) String() string {
	var parts []string
	for m := range Method(NumMethods) {
		if s.Has(m) {
			parts = append(parts, m.String())
		}
	}
	return strings.Join(parts, ",")
}

// Timed segments. A flow records the segments the local side sends, so
// that the ACK or echo that answers one can be timed. It holds inlineSegs
// records itself; while it carries a larger flight it borrows room for
// MaxTimedSegments from an engine-wide pool (segPool), and gives it back
// when the flight shrinks to half the inline room. When the records are
// full, they are thinned (see thin) so that they keep spanning the whole
// flight: samples come from every part of it, not only its first
// segments, which were sent before a queue built up.
const (
	inlineSegs = 16
	// MaxTimedSegments is the most segments one flow times at once.
	MaxTimedSegments = 128
)

// seg is one timed outgoing segment.
type seg struct {
	t        int64  // capture time, Unix ns
	seq, end uint32 // sequence space [seq, end)
	tsval    uint32
	hasTS    bool
	first    bool  // the first segment sent with its TSval
	retrans  bool  // overlapped by a later retransmission: never sampled (Karn)
	epoch    uint8 // the engine's clock epoch when it was sent
}

// segExt is the room a flow borrows for a large flight.
type segExt [MaxTimedSegments]seg

// segPool lends segExts to the flows of one engine, at most max at once,
// and keeps the returned ones for reuse. A nil pool lends none. It is
// owned by the packet goroutine.
type segPool struct {
	free  []*segExt
	inUse int
	max   int
}

// get returns room for a large flight, or nil when max are lent.
func (p *segPool) get() *segExt {
	if p == nil || p.inUse >= p.max {
		return nil
	}
	p.inUse++
	if n := len(p.free); n > 0 {
		x := p.free[n-1]
		p.free = p.free[:n-1]
		return x
	}
	return new(segExt)
}

// put takes back room that get lent.
func (p *segPool) put(x *segExt) {
	p.inUse--
	p.free = append(p.free, x)
}

// Sequence-space and TSval comparisons, wrap-aware (RFC 1982 style).
func seqLT(a, b uint32) bool  { return int32(a-b) < 0 }
func seqLEQ(a, b uint32) bool { return int32(a-b) <= 0 }
func seqGT(a, b uint32) bool  { return int32(a-b) > 0 }

// rttState is a flow's estimator state: the local side's timed segments
// and what is known of the exchange. It lives inside flow.
type rttState struct {
	ext *segExt // borrowed room while the flight is large; the records are there then
	rttVars
	inl [inlineSegs]seg

	// The padding starts hsFirst at a cache line of the flow, the last,
	// which it shares with the flow's list links and SYN entry: a SYN
	// writes all of them (TestFlowLayout).
	_ [24]byte

	// hsFirst and hsLast are the first and most recent transmissions of
	// the handshake being timed (rttVars.hs). Each handshake sets both
	// before they are read, so reset leaves them: they lie past the
	// records, in a line of the flow that other packets do not read.
	hsFirst, hsLast hsTx
}

// rttVars is the part of rttState that reset clears.
type rttVars struct {
	// The fields every segment reads, in one cache line (the
	// handshake's transmissions are in rttState, after the records).
	nseg uint8

	sndNxtOK   bool // sndNxt holds the end of the highest segment sent
	prevAckOK  bool // prevAck holds the highest ACK received
	lastEchoOK bool // lastEcho holds the last TSecr that gave a sample
	tsOut      bool // the local side sends TCP timestamps
	rexmit     bool // retransmitted data [rxLo, rxHi) is not yet acknowledged
	tsMaxOK    bool // tsMax holds the highest TSval the local side sent

	// established: the connection is open (its handshake completed, or it
	// carried data when the capture began), so that a RST resets it.
	established bool
	// synTimedOut: the local side's SYN has been counted as timed out; a
	// late SYN-ACK still opens the connection.
	synTimedOut bool

	// hs is the handshake being timed: hsNone, hsActive (our SYN sent) or
	// hsPassive (our SYN-ACK sent); hsSeq is its ISN. hsResent says it
	// was sent more than once (rttState.hsFirst and hsLast).
	hs       uint8
	hsResent bool

	// thinAll and thinFirst are how far the thresholds of the segments
	// recorded (see rank) lie below allRanks: for all segments, and for
	// the first of each TSval. Zero records every segment.
	thinAll, thinFirst uint16

	tsMax                     uint32
	sndNxt, prevAck, lastEcho uint32
	rxLo, rxHi                uint32
	hsSeq                     uint32
}

// hsTx is one transmission of a SYN or SYN-ACK.
type hsTx struct {
	t     int64 // capture time
	tsval uint32
	hasTS bool
	epoch uint8
}

// reset returns r to its zero state, with tsOut set as given, and gives
// borrowed room back to pool. It leaves the inline records and the
// handshake's transmissions as they are: only the first nseg records are
// ever read, the transmissions only after a handshake set them, and
// writing them would touch 7 cold cache lines for every new flow of a SYN
// flood.
func (r *rttState) reset(tsOut bool, pool *segPool) {
	if r.ext != nil {
		pool.put(r.ext)
		r.ext = nil
	}
	r.rttVars = rttVars{tsOut: tsOut}
}

// recs returns the timed segments, in the order they were sent.
func (r *rttState) recs() []seg {
	if r.ext != nil {
		return r.ext[:r.nseg]
	}
	return r.inl[:r.nseg]
}

// room returns the storage of the records, whole.
func (r *rttState) room() []seg {
	if r.ext != nil {
		return r.ext[:]
	}
	return r.inl[:]
}

// Records of a large flight. Each segment has a pseudo-random rank, a
// hash of its sequence number and capture time. A flow records a segment
// only if its rank is below the flow's threshold, at first above every
// rank. When all room is full, thin lowers the threshold by a quarter and
// drops the records ranked above it: the records are then those segments
// of the flight whose rank is below the threshold, a uniform sample of the
// whole flight, however large, rather than its first segments, and about
// as many as the room holds. A rank, not a fixed stride, which delayed ACKs
// (one for every second segment) would meet on the wrong parity every
// time. With timestamps, the first segment sent with each TSval, which an
// echo of that TSval is timed from when the segment at the previous ACK is
// not recorded, has its own threshold, lowered only when the records are
// mostly such first segments. The thresholds rise again, by half of what
// they lack, each time the flight shrinks below a quarter of the room, and
// return to recording every segment once no record is left.

// rank returns the pseudo-random rank of a segment.
func rank(seq uint32, t int64) uint16 {
	h := uint64(seq)*0x9e3779b97f4a7c15 ^ uint64(t)*0xc2b2ae3d27d4eb4f
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	return uint16(h >> 48)
}

// allRanks is the threshold that records every segment.
const allRanks = 1 << 16

// wants reports whether a segment, the first of its TSval or not, is
// recorded at the current thresholds.
func (r *rttState) wants(seq uint32, t int64, first bool) bool {
	thr := r.threshold(first)
	return thr >= allRanks || uint32(rank(seq, t)) < thr
}

// threshold returns the threshold for first segments of a TSval, or for
// the others. The zero value of thinAll and thinFirst means allRanks.
func (r *rttState) threshold(first bool) uint32 {
	lack := r.thinAll
	if first {
		lack = r.thinFirst
	}
	return allRanks - uint32(lack)
}

// push appends a record: in borrowed room when the inline room is full,
// after thinning the records when all room is full.
func (r *rttState) push(s seg, pool *segPool) {
	if int(r.nseg) == len(r.room()) && r.ext == nil {
		if x := pool.get(); x != nil {
			copy(x[:], r.inl[:r.nseg])
			r.ext = x
		}
	}
	if int(r.nseg) == len(r.room()) {
		r.thin()
	}
	r.room()[r.nseg] = s
	r.nseg++
}

// shrink raises the thresholds of the segments recorded while the flight
// is below a quarter of the room (back to recording every segment once no
// record is left), and moves the records back inline,
// giving the borrowed room back, once it fits in half the inline room.
func (r *rttState) shrink(pool *segPool) {
	switch {
	case r.nseg == 0:
		r.thinAll, r.thinFirst = 0, 0 // the flight is over
	case int(r.nseg) < len(r.room())/4:
		r.thinAll -= r.thinAll / 2
		r.thinFirst -= r.thinFirst / 2
	}
	if r.ext != nil && r.nseg <= inlineSegs/2 {
		copy(r.inl[:], r.ext[:r.nseg])
		pool.put(r.ext)
		r.ext = nil
	}
}

// thin lowers the threshold of a full store by a quarter and drops the
// records ranked above it. With timestamps, it thins only the records
// that are not the first of their TSval, unless they are fewer than a
// quarter.
func (r *rttState) thin() {
	l := r.recs()
	others := 0
	for i := range l {
		if !l[i].first {
			others++
		}
	}
	firsts := others < len(l)/4
	for {
		thrAll := r.threshold(false) * 3 / 4
		r.thinAll = uint16(allRanks - thrAll)
		thrFirst := r.threshold(true)
		if firsts {
			thrFirst = thrFirst * 3 / 4
			r.thinFirst = uint16(allRanks - thrFirst)
		}
		k := uint8(0)
		for i := range l {
			s := &l[i]
			thr := thrAll
			if s.first {
				thr = thrFirst
			}
			if uint32(rank(s.seq, s.t)) < thr {
				l[k] = *s
				k++
			}
		}
		r.nseg = k
		if int(k) < len(l) || thrAll < 16 {
			return // room for the new record
		}
	}
}

const (
	hsNone = iota
	hsActive
	hsPassive
)

// event is what a segment tells of the connection, for the TCP counts;
// several may be set at once.
type event uint8

const (
	evRetransmit  event = 1 << iota // the local side sent sequence space again
	evActiveOpen                    // the first SYN of a connection the local side opens
	evOpened                        // the handshake completed
	evRefused                       // the local side's SYN was answered by RST
	evResetLocal                    // the local side reset an established connection
	evResetRemote                   // the peer reset an established connection
	evZeroWindow                    // the peer advertised a zero receive window
)

// sampleFunc receives an estimator's raw sample: the RTT in ns (possibly
// negative when capture time went backwards), the method, and the clock
// epoch of the segment it timed, so that a sample across a clock step is
// discarded.
type sampleFunc func(rtt int64, m Method, epoch uint8)

// timeOutgoing handles a segment sent by the local side, at capture time t
// in clock epoch epoch.
func (r *rttState) timeOutgoing(p *Packet, t int64, epoch uint8, methods Methods, pool *segPool) (ev event) {
	if p.Flags&FlagRST != 0 {
		if r.established {
			ev = evResetLocal
		}
		r.established = false
		return ev
	}
	if r.hs == hsNone && p.Flags&(FlagACK|FlagSYN) == FlagACK {
		r.established = true // a connection picked up after its handshake
	}
	firstTS := false // the first segment sent with its TSval
	if p.HasTS {
		r.tsOut = true
		if !r.tsMaxOK || seqGT(p.TSval, r.tsMax) {
			r.tsMax, r.tsMaxOK = p.TSval, true
			firstTS = true
		}
	}
	n := p.SeqLen()
	if p.Flags&FlagSYN != 0 {
		kind := uint8(hsActive)
		if p.Flags&FlagACK != 0 {
			kind = hsPassive
		}
		tx := hsTx{t: t, tsval: p.TSval, hasTS: p.HasTS, epoch: epoch}
		if r.hs != kind || r.hsSeq != p.Seq {
			// A new connection on this 4-tuple, or the first SYN: start
			// afresh.
			r.reset(p.HasTS, pool)
			if p.HasTS {
				r.tsMax, r.tsMaxOK = p.TSval, true
			}
			r.hs, r.hsSeq, r.hsFirst = kind, p.Seq, tx
			if kind == hsActive {
				ev |= evActiveOpen
			}
		} else {
			// A retransmission: which one the answer is to, only its
			// echo can tell (Karn's rule for the handshake).
			r.hsResent = true
			ev |= evRetransmit
		}
		r.hsLast = tx
		if methods.Has(MethodHandshake) {
			// The handshake estimator times it; the others start after it.
			r.sndNxt, r.sndNxtOK = p.Seq+n, true
			return ev
		}
	}
	if n == 0 {
		return ev // pure ACK: nothing to be acknowledged
	}
	end := p.Seq + n
	retrans := r.sndNxtOK && seqLT(p.Seq, r.sndNxt)
	if retrans && p.Flags&FlagSYN == 0 && !(n <= 1 && p.Flags&FlagFIN == 0 && p.Seq == r.sndNxt-1) {
		// Sequence space sent again; a keepalive, one byte or none at
		// the last byte sent, is not (as tshark sees it).
		ev |= evRetransmit
	}
	if retrans {
		// Only resent bytes not yet acknowledged make a later ACK
		// ambiguous. Bytes the peer already acknowledged (a 1-byte
		// keepalive resends the last one) are covered by no ACK that
		// advances, so they must not suppress the next sample.
		lo := p.Seq
		if r.prevAckOK && seqLT(lo, r.prevAck) {
			lo = r.prevAck
		}
		switch {
		case !seqLT(lo, end):
			// All acknowledged already: nothing ambiguous.
		case !r.rexmit:
			r.rexmit, r.rxLo, r.rxHi = true, lo, end
		default:
			if seqLT(lo, r.rxLo) {
				r.rxLo = lo
			}
			if seqGT(end, r.rxHi) {
				r.rxHi = end
			}
		}
		l := r.recs()
		for i := range l {
			s := &l[i]
			if seqLT(s.seq, end) && seqGT(s.end, p.Seq) {
				s.retrans = true
			}
		}
	}
	if !r.sndNxtOK || seqGT(end, r.sndNxt) {
		r.sndNxt, r.sndNxtOK = end, true
	}
	useTS := methods.Has(MethodTimestamp) && p.HasTS
	if retrans && !useTS {
		return ev // Karn: a retransmission is never timed by sequence numbers
	}
	if useTS && r.lastEchoOK && seqLEQ(p.TSval, r.lastEcho) {
		return ev // that TSval was already echoed and sampled
	}
	if int(r.nseg) == len(r.room()) {
		// Records that end more than 2^31 bytes behind the highest
		// segment sent, because the ACKs that covered them were not
		// captured while the sender moved on, look ahead of every ACK
		// to come until the sequence space wraps once more: without
		// timestamps to drop them, they would hold every slot.
		r.drop(func(s *seg) bool { return seqGT(s.end, r.sndNxt) })
	}
	if !r.wants(p.Seq, t, firstTS && useTS) {
		return ev // a large flight: not recorded at this level of thinning
	}
	r.push(seg{seq: p.Seq, end: end, tsval: p.TSval, t: t, hasTS: p.HasTS, first: firstTS && useTS, retrans: retrans && !useTS, epoch: epoch}, pool)
	return ev
}

// timeIncoming handles a segment the local side received, at capture time
// t, and calls emit for each sample it gives.
func (r *rttState) timeIncoming(p *Packet, t int64, methods Methods, emit sampleFunc, pool *segPool) (ev event) {
	if p.Flags&FlagRST != 0 {
		switch {
		case r.hs == hsActive && p.Flags&FlagACK != 0 && p.Ack == r.hsSeq+1:
			ev = evRefused
			r.hs = hsNone
		case r.established:
			ev = evResetRemote
		}
		r.established = false
		return ev
	}
	if p.Window == 0 && p.Flags&(FlagSYN|FlagFIN) == 0 {
		ev |= evZeroWindow
	}
	if p.Flags&FlagACK == 0 {
		return ev
	}
	ack := p.Ack
	if r.hs != hsNone && ack == r.hsSeq+1 {
		synAck := p.Flags&FlagSYN != 0
		if (r.hs == hsActive && synAck) || (r.hs == hsPassive && !synAck) {
			if methods.Has(MethodHandshake) {
				if tx, ok := r.answered(p); ok {
					emit(t-tx.t, MethodHandshake, tx.epoch)
				}
			}
			r.hs = hsNone
			r.established = true
			ev |= evOpened
		}
	} else if r.hs == hsNone && p.Flags&FlagSYN == 0 {
		r.established = true // a connection picked up after its handshake
	}
	// RFC 7323 §4 (RTTM): an echo is a sample only from an ACK that
	// advances SND.UNA; one that acknowledges nothing new may echo a pure
	// ACK or a window update sent with the same TSval as a data segment.
	advances := r.advances(ack)
	switch {
	case methods.Has(MethodTimestamp) && p.HasTS && r.tsOut:
		if advances {
			r.matchEcho(p.TSecr, t, emit)
		}
	case methods.Has(MethodSeqAck):
		r.matchAck(ack, t, emit)
	}
	// Drop what this ACK covers cumulatively, and records left more than
	// 2^31 bytes behind (see timeOutgoing), which look ahead of it.
	if !r.prevAckOK || seqGT(ack, r.prevAck) {
		r.prevAck, r.prevAckOK = ack, true
		r.drop(func(s *seg) bool { return seqLEQ(s.end, ack) || r.sndNxtOK && seqGT(s.end, r.sndNxt) })
	}
	r.shrink(pool)
	return ev
}

// advances reports whether ack acknowledges something new: beyond the
// previous ACK or, before the first one, a byte of a timed segment.
func (r *rttState) advances(ack uint32) bool {
	if r.prevAckOK {
		return seqGT(ack, r.prevAck)
	}
	for _, s := range r.recs() {
		if seqLT(s.seq, ack) {
			return true
		}
	}
	return false
}

// matchEcho times the segment a TSecr echoes. By RFC 7323 §4.3 the peer
// echoes the TSval of the segment that started at its last acknowledgement
// (Linux: the segment at rcv_wup). Several segments share a TSval when the
// sender's clock ticks slower than it sends (1 ms on Linux), so the sample
// is timed from the record that starts at the previous ACK (or, for a
// TSO/GSO super-segment, holds it), which removes that tick of error; only
// when no ACK has been seen yet (the first one of a capture) is the first
// segment with that TSval used.
func (r *rttState) matchEcho(ecr uint32, t int64, emit sampleFunc) {
	if r.lastEchoOK && seqLEQ(ecr, r.lastEcho) {
		return // only the first match of an echo counts
	}
	if ecr == 0 || !r.tsMaxOK || seqGT(ecr, r.tsMax) {
		// 0 is no echo (RFC 7323 §3.2: the TSecr of a segment without
		// one), and an echo of a TSval never sent is bogus: neither may
		// drop the records of the TSvals sent.
		return
	}
	l := r.recs()
	match, first := -1, -1
	for i := range l {
		s := &l[i]
		if !s.hasTS || s.tsval != ecr {
			continue
		}
		if first < 0 {
			first = i
		}
		// The record that holds the previous ACK (RFC 7323 §4.3: SEG.SEQ
		// <= Last.ACK.sent). With wire-sized records it starts there; a
		// TSO/GSO super-segment, captured before the NIC splits it, can
		// hold the previous ACK, and then the echo is its TSval.
		if r.prevAckOK && seqLEQ(s.seq, r.prevAck) && seqLT(r.prevAck, s.end) {
			match = i
			break
		}
	}
	if match < 0 {
		// Without the segment at the previous ACK (none seen yet, not
		// captured, or thinned away), the first segment sent with the
		// echoed TSval, as pping does: late by less than one tick of the
		// sender's TSval clock.
		match = first
	}
	if match < 0 {
		// Records older than the echo can never be echoed again.
		r.drop(func(s *seg) bool { return s.hasTS && seqLT(s.tsval, ecr) })
		return
	}
	emit(t-l[match].t, MethodTimestamp, l[match].epoch)
	r.lastEcho, r.lastEchoOK = ecr, true
	r.drop(func(s *seg) bool { return s.hasTS && seqLEQ(s.tsval, ecr) })
}

// matchAck times the segment whose end an ACK covers exactly, unless the
// ACK acknowledges retransmitted data (Karn's rule), and agrees with
// Wireshark's tcp.analysis.ack_rtt on every sample it gives.
func (r *rttState) matchAck(ack uint32, t int64, emit sampleFunc) {
	if r.prevAckOK && !seqGT(ack, r.prevAck) {
		return // duplicate or old ACK
	}
	if r.rexmit && seqGT(ack, r.rxLo) {
		// This ACK covers retransmitted bytes: its timing is ambiguous.
		if seqLEQ(r.rxHi, ack) {
			r.rexmit = false
		} else {
			r.rxLo = ack
		}
		return
	}
	l := r.recs()
	for i := range l {
		s := &l[i]
		if s.end == ack && !s.retrans {
			emit(t-s.t, MethodSeqAck, s.epoch)
			return
		}
	}
}

// answered returns the transmission of the SYN or SYN-ACK that p, the
// segment that completes the handshake, answers. Before a retransmission
// there is only one. After one, only the echo of timestamps tells which
// (Karn's rule): without it, or when it echoes neither the first nor the
// latest transmission, there is no sample.
func (r *rttState) answered(p *Packet) (hsTx, bool) {
	if !r.hsResent {
		return r.hsFirst, true
	}
	if !p.HasTS || p.TSecr == 0 || r.hsFirst.hasTS && r.hsFirst.tsval == r.hsLast.tsval {
		return hsTx{}, false
	}
	switch {
	case r.hsLast.hasTS && p.TSecr == r.hsLast.tsval:
		return r.hsLast, true
	case r.hsFirst.hasTS && p.TSecr == r.hsFirst.tsval:
		return r.hsFirst, true
	}
	return hsTx{}, false
}

// drop removes the timed segments for which gone returns true, keeping
// the others in order.
func (r *rttState) drop(gone func(*seg) bool) {
	l := r.recs()
	k := uint8(0)
	for i := range l {
		if gone(&l[i]) {
			continue
		}
		l[k] = l[i]
		k++
	}
	r.nseg = k
}

// SanityMaxRTT is the default upper bound on a plausible RTT; longer
// samples are discarded and counted.
const SanityMaxRTT = 60 * time.Second
