package testbed

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"
)

// Frame is a TCP segment that a [RetransTracker] saw, with its direction.
type Frame struct {
	Segment
	// Out says the host sent it; otherwise the host received it.
	Out bool
}

// maxFrames bounds the frames a tracker keeps for [RetransTracker.Reference]:
// about 120 MiB at most, far more than any test sends.
const maxFrames = 1 << 20

// RefMethod is the rule by which a [RefSample] pairs two frames.
type RefMethod uint8

// The reference's rules, one for each of go-metro's methods. They are
// written from the RFCs and from Wireshark's definition, not from
// go-metro's code.
const (
	// RefTimestamp times, for each ACK from the peer that advances the
	// highest ACK (SND.UNA) and echoes a TSval newer than the last one
	// timed, the segment the host sent that holds the peer's previous ACK
	// and carries that TSval: the segment whose TSval the peer recorded
	// (RFC 7323 §3.2 and §4.3: TS.Recent is taken from a segment with
	// SEG.SEQ <= Last.ACK.sent, on Linux the segment at rcv_wup), to the
	// ACK. Flows in which the host sends TCP timestamps, ACKs that carry
	// them.
	RefTimestamp RefMethod = iota
	// RefSeqAck times, for each ACK from the peer that advances the
	// highest ACK, the segment whose end it acknowledges exactly, as
	// Wireshark's tcp.analysis.ack_rtt does; with Karn's rule: no sample
	// if a byte between the previous ACK and this one was sent more than
	// once. Flows without timestamps.
	RefSeqAck
	// RefHandshake times the host's SYN to the SYN-ACK (a connection it
	// opens), or its SYN-ACK to the ACK that completes the handshake (a
	// connection it accepts). If the SYN or SYN-ACK was sent more than
	// once, the answer's TSecr must name the transmission it answers;
	// without timestamps there is no sample.
	RefHandshake

	numRefMethods = 3
)

// String returns "timestamp", "seqack" or "handshake", the names of
// go-metro's methods that the rules stand for.
func (m RefMethod) String() string {
	switch m {
	case RefTimestamp:
		return "timestamp"
	case RefSeqAck:
		return "seqack"
	case RefHandshake:
		return "handshake"
	}
	return fmt.Sprintf("RefMethod(%d)", uint8(m))
}

// RefSample is an RTT that the reference measured between two frames that
// crossed the tracker's interface, by their kernel timestamps.
type RefSample struct {
	// Local and Remote are the ends of the flow: Local is the host's.
	Local, Remote netip.AddrPort
	Method        RefMethod
	// Sent is the timestamp of the segment the host sent, Time that of the
	// segment that answered it; RTT is Time - Sent.
	Sent, Time time.Time
	RTT        time.Duration
}

// RefSamples is a list of reference samples, ordered by Time.
type RefSamples []RefSample

// Filter returns the samples for which keep returns true.
func (s RefSamples) Filter(keep func(RefSample) bool) RefSamples {
	var out RefSamples
	for _, x := range s {
		if keep(x) {
			out = append(out, x)
		}
	}
	return out
}

// Between returns the samples answered in [from, to].
func (s RefSamples) Between(from, to time.Time) RefSamples {
	return s.Filter(func(x RefSample) bool { return !x.Time.Before(from) && !x.Time.After(to) })
}

// To returns the samples of flows to the remote address.
func (s RefSamples) To(remote netip.Addr) RefSamples {
	return s.Filter(func(x RefSample) bool { return x.Remote.Addr() == remote })
}

// Method returns the samples of one rule.
func (s RefSamples) Method(m RefMethod) RefSamples {
	return s.Filter(func(x RefSample) bool { return x.Method == m })
}

// RTTs returns the samples' RTTs, in the samples' order.
func (s RefSamples) RTTs() []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.RTT
	}
	return out
}

// Quantile returns the q-quantile of the RTTs by the nearest-rank method
// (the value of rank ⌈q·n⌉), or 0 if there are none.
func (s RefSamples) Quantile(q float64) time.Duration { return Quantile(s.RTTs(), q) }

// Median returns the median RTT, Quantile(0.5).
func (s RefSamples) Median() time.Duration { return s.Quantile(0.5) }

// Counts returns the number of samples of each rule.
func (s RefSamples) Counts() map[RefMethod]int {
	out := map[RefMethod]int{}
	for _, x := range s {
		out[x.Method]++
	}
	return out
}

// Quantile returns the q-quantile of ds by the nearest-rank method (the
// value of rank ⌈q·n⌉, 1-based), or 0 for none. It does not modify ds.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[nearestRank(len(s), q)-1]
}

// nearestRank returns ⌈q·n⌉ within [1, n].
func nearestRank(n int, q float64) int {
	r := int(q*float64(n) + 0.999999)
	return min(max(r, 1), n)
}

// MedianRange returns the lowest and the highest median (Quantile(0.5))
// that a set of RTTs can have if it holds every RTT of in and any of
// maybe: the median over an interval whose bounds are only known within
// some slack, with in the samples certainly inside it and maybe those near
// its bounds. It returns 0, 0 if both are empty.
func MedianRange(in, maybe []time.Duration) (lo, hi time.Duration) {
	if len(in)+len(maybe) == 0 {
		return 0, 0
	}
	extra := slices.Clone(maybe)
	slices.Sort(extra)
	lo, hi = time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	// Of the sets with k of maybe, those with the k smallest have the
	// lowest median, and those with the k largest the highest.
	for k := range len(extra) + 1 {
		if len(in)+k == 0 {
			continue
		}
		lo = min(lo, Quantile(append(slices.Clone(in), extra[:k]...), 0.5))
		hi = max(hi, Quantile(append(slices.Clone(in), extra[len(extra)-k:]...), 0.5))
	}
	return lo, hi
}

// ReferenceSamples computes the reference samples of the frames of one
// interface: for every connection, the samples that the rules of
// [RefMethod] give, ordered by Time. Connections are told apart by their
// ends and by their SYN. The frames need not be in order.
func ReferenceSamples(frames []Frame) RefSamples {
	frames = slices.Clone(frames)
	slices.SortStableFunc(frames, func(a, b Frame) int { return a.Time.Compare(b.Time) })
	type key struct{ local, remote netip.AddrPort }
	conns := map[key]*refConn{}
	var out RefSamples
	for _, f := range frames {
		k := key{f.Src, f.Dst}
		if !f.Out {
			k = key{f.Dst, f.Src}
		}
		c := conns[k]
		if c == nil || c.newConnection(f) {
			c = &refConn{local: k.local, remote: k.remote}
			conns[k] = c
		}
		out = c.add(f, out)
	}
	slices.SortStableFunc(out, func(a, b RefSample) int { return a.Time.Compare(b.Time) })
	return out
}

// refConn is the reference's state for one connection.
type refConn struct {
	local, remote netip.AddrPort
	tsOut         bool // the host sends TCP timestamps

	// The handshake: the kind of SYN the host sent (hsActive for a SYN,
	// hsPassive for a SYN-ACK), its sequence number and its transmissions.
	hs     int
	hsSeq  uint32
	hsTx   []refTx
	hsDone bool

	sent       []refSeg // data segments not yet acknowledged, in send order
	una        uint32   // the highest ACK received, if unaOK
	unaOK      bool
	sndNxt     uint32 // the end of the highest segment sent, if sndNxtOK
	sndNxtOK   bool
	lastEcho   uint32 // the TSecr last timed, if lastEchoOK
	lastEchoOK bool
	synSeen    bool   // a SYN of this connection was seen, either way
	synSeq     uint32 // the sequence number of the first SYN seen
}

// The kinds of handshake of a refConn.
const (
	hsNone = iota
	hsActive
	hsPassive
)

type refTx struct {
	t     time.Time
	tsval uint32
	hasTS bool
}

type refSeg struct {
	seq, end uint32
	refTx
	resent bool // its bytes were sent more than once
}

// newConnection reports whether f opens a new connection on the ends of c:
// a SYN (without ACK) other than the one that opened c.
func (c *refConn) newConnection(f Frame) bool {
	return f.SYN && !f.HasAck && c.synSeen && f.Seq != c.synSeq
}

// add handles the next frame of the connection and appends the samples it
// completes to out.
func (c *refConn) add(f Frame, out RefSamples) RefSamples {
	if f.SYN && !f.HasAck && !c.synSeen {
		c.synSeen, c.synSeq = true, f.Seq
	}
	if f.RST {
		return out
	}
	if f.Out {
		c.addOut(f)
		return out
	}
	return c.addIn(f, out)
}

func (c *refConn) addOut(f Frame) {
	if f.HasTS {
		c.tsOut = true
	}
	tx := refTx{t: f.Time, tsval: f.TSval, hasTS: f.HasTS}
	if f.SYN {
		kind := hsActive
		if f.HasAck {
			kind = hsPassive
		}
		if c.hs != kind || c.hsSeq != f.Seq {
			c.hs, c.hsSeq, c.hsTx, c.hsDone = kind, f.Seq, nil, false
		}
		c.hsTx = append(c.hsTx, tx)
		if !c.sndNxtOK || seqBefore(c.sndNxt, f.End) {
			c.sndNxt, c.sndNxtOK = f.End, true
		}
		return
	}
	if f.End == f.Seq {
		return // a pure ACK occupies no sequence space
	}
	resent := c.sndNxtOK && seqBefore(f.Seq, c.sndNxt)
	if resent {
		for i := range c.sent {
			s := &c.sent[i]
			if seqBefore(s.seq, f.End) && seqBefore(f.Seq, s.end) {
				s.resent = true
			}
		}
	}
	c.sent = append(c.sent, refSeg{seq: f.Seq, end: f.End, refTx: tx, resent: resent})
	if !c.sndNxtOK || seqBefore(c.sndNxt, f.End) {
		c.sndNxt, c.sndNxtOK = f.End, true
	}
}

func (c *refConn) addIn(f Frame, out RefSamples) RefSamples {
	if !f.HasAck {
		return out
	}
	emit := func(m RefMethod, sent time.Time) {
		out = append(out, RefSample{Local: c.local, Remote: c.remote, Method: m, Sent: sent, Time: f.Time, RTT: f.Time.Sub(sent)})
	}
	if c.hs != hsNone && !c.hsDone && f.Ack == c.hsSeq+1 && f.SYN == (c.hs == hsActive) {
		c.hsDone = true
		if tx, ok := c.answered(f); ok {
			emit(RefHandshake, tx.t)
		}
	}
	if !c.unaOK {
		// The first ACK: the previous one, which the rules time from, is
		// unknown.
		c.una, c.unaOK = f.Ack, true
		c.dropAcked()
		return out
	}
	if !seqBefore(c.una, f.Ack) {
		return out // advances nothing
	}
	prev := c.una
	c.una = f.Ack
	switch {
	case c.tsOut && f.HasTS:
		if c.lastEchoOK && !seqBefore(c.lastEcho, f.TSecr) {
			break // that echo was timed, or is older
		}
		// The segment that holds the peer's previous ACK and carries the
		// echoed TSval; the latest one, if it was sent again with the
		// same TSval.
		for i := len(c.sent) - 1; i >= 0; i-- {
			s := c.sent[i]
			if s.hasTS && s.tsval == f.TSecr && !seqBefore(prev, s.seq) && seqBefore(prev, s.end) {
				emit(RefTimestamp, s.t)
				c.lastEcho, c.lastEchoOK = f.TSecr, true
				break
			}
		}
	default:
		var timed *refSeg
		ambiguous := false
		for i := range c.sent {
			s := &c.sent[i]
			if !seqBefore(s.seq, f.Ack) || !seqBefore(prev, s.end) {
				continue // outside [prev, ack)
			}
			if s.resent {
				ambiguous = true
			}
			if s.end == f.Ack {
				timed = s
			}
		}
		if timed != nil && !ambiguous {
			emit(RefSeqAck, timed.t)
		}
	}
	c.dropAcked()
	return out
}

// answered returns the transmission of the host's SYN or SYN-ACK that the
// answer f answers: the only one, or the one whose TSval f echoes.
func (c *refConn) answered(f Frame) (refTx, bool) {
	if len(c.hsTx) == 1 {
		return c.hsTx[0], true
	}
	if !f.HasTS {
		return refTx{}, false
	}
	var match []refTx
	for _, tx := range c.hsTx {
		if tx.hasTS && tx.tsval == f.TSecr {
			match = append(match, tx)
		}
	}
	if len(match) != 1 {
		return refTx{}, false
	}
	return match[0], true
}

// dropAcked forgets the segments that end at or below the highest ACK.
func (c *refConn) dropAcked() {
	c.sent = slices.DeleteFunc(c.sent, func(s refSeg) bool { return !seqBefore(c.una, s.end) })
}

// Frames returns the frames the tracker saw, in the order it read them, at
// most the first million.
func (r *RetransTracker) Frames() []Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames)
}

// Reference returns the reference samples of the frames the tracker saw
// (see [ReferenceSamples]). It fails if the tracker missed frames: its
// socket dropped some, or it kept its limit of a million.
func (r *RetransTracker) Reference() (RefSamples, error) {
	r.mu.Lock()
	full := r.framesFull
	frames := slices.Clone(r.frames)
	r.mu.Unlock()
	if full {
		return nil, fmt.Errorf("reference: the tracker kept only its first %d frames", maxFrames)
	}
	if d := r.Drops(); d > 0 {
		return nil, fmt.Errorf("reference: the tracker's socket dropped %d frames", d)
	}
	return ReferenceSamples(frames), nil
}

// Measured is a sample of the capture under test, for
// [RefSamples.Compare]: the time of the segment that ended it, its RTT,
// and its method by name ("timestamp", "seqack" or "handshake").
type Measured struct {
	Time   time.Time
	RTT    time.Duration
	Method string
}

// Comparison is how the samples of a capture under test compare with the
// reference's of the same traffic, ACK by ACK.
type Comparison struct {
	// Samples and Ref count the capture's samples and the reference's.
	Samples, Ref int
	// Agree says, for each of the capture's samples, that the reference
	// timed the same ACK by the same method and measured the same RTT;
	// Same are those RTTs, in order.
	Agree []bool
	Same  []time.Duration
	// Differ describes the samples whose RTT is not the reference's for
	// the same ACK.
	Differ []string
	// Fallback counts the timestamp samples that agree only within a
	// TSval tick (see Slack.Tick).
	Fallback int
}

// Slack is how far go-metro's timestamps of a frame may be from the
// reference's, for [RefSamples.Compare]: 0 where the capture and the
// reference read a device whose kernel timestamps they share to the
// nanosecond, as on a TAP device.
type Slack struct {
	// Sent is for the segments the host sent. A bridge and its port stamp
	// a frame the host sends once each, a few microseconds apart.
	Sent time.Duration
	// Answer is for the segments it received. A veth device stamps a frame
	// it receives from another namespace once per socket, as it reaches
	// each (the frame keeps the sender's departure time, which no packet
	// socket reads): a few hundred nanoseconds apart, more on a busy
	// machine.
	Answer time.Duration
	// Tick is how far apart, more than Sent, the segments that a
	// timestamp sample and the reference's time may have been sent: when
	// go-metro no longer holds the segment at the previous ACK (it keeps
	// only a sample of the segments in flight), it times the first one it
	// holds with the echoed TSval, as pping does. The stack stamps the
	// TSvals of such segments within one tick of its TSval clock, and the
	// device stamps them a little later each, as the machine lets it (13
	// µs more than the tick was seen on a busy machine): [TSvalSpread].
	Tick time.Duration
}

// TSvalTick is the tick of Linux's TCP timestamps clock.
const TSvalTick = time.Millisecond

// TSvalSpread bounds how far apart a device stamps two segments of one
// TSval: the tick, and as much again for the time between the stack's
// stamp and the device's.
const TSvalSpread = 2 * TSvalTick

// TapSlack is the Slack of a TAP device: one timestamp per frame, shared
// by every packet socket.
var TapSlack = Slack{Tick: TSvalSpread}

// VethSlack is the Slack of a veth device: its sent frames are stamped
// once, its received frames once per socket, at most a millisecond apart
// unless the machine stalls.
var VethSlack = Slack{Answer: time.Millisecond, Tick: TSvalSpread}

// BridgeSlack is the Slack of a bridge and its port, each of which stamps
// a frame the host sends.
var BridgeSlack = Slack{Sent: 50 * time.Microsecond, Tick: TSvalSpread}

// Compare pairs each sample with the reference's sample of the same ACK
// and method, if there is one: the one whose answering frame has the
// sample's timestamp, within slack.Answer, and of those the nearest, in
// the time of the answer plus that of the segment timed. They agree if
// their timed segments' timestamps are within slack.Sent, or for the
// timestamp method within slack.Sent plus slack.Tick (counted in
// Fallback when beyond slack.Sent).
func (s RefSamples) Compare(samples []Measured, slack Slack) Comparison {
	byMethod := map[string]RefSamples{}
	for _, r := range s {
		byMethod[r.Method.String()] = append(byMethod[r.Method.String()], r)
	}
	for _, rs := range byMethod {
		slices.SortFunc(rs, func(a, b RefSample) int { return a.Time.Compare(b.Time) })
	}
	c := Comparison{Samples: len(samples), Ref: len(s), Agree: make([]bool, len(samples))}
	for i, m := range samples {
		rs := byMethod[m.Method]
		sent := m.Time.Add(-m.RTT)
		j, _ := slices.BinarySearchFunc(rs, m.Time.Add(-slack.Answer), func(r RefSample, t time.Time) int { return r.Time.Compare(t) })
		best, bestD := -1, time.Duration(math.MaxInt64)
		for ; j < len(rs) && !rs[j].Time.After(m.Time.Add(slack.Answer)); j++ {
			if d := rs[j].Time.Sub(m.Time).Abs() + rs[j].Sent.Sub(sent).Abs(); d < bestD {
				best, bestD = j, d
			}
		}
		if best < 0 {
			continue
		}
		r := rs[best]
		off := r.Sent.Sub(sent).Abs()
		tick := time.Duration(0)
		if m.Method == RefTimestamp.String() {
			tick = slack.Tick
		}
		if off > slack.Sent+tick {
			c.Differ = append(c.Differ, fmt.Sprintf("%s sample %v at %s: the reference measured %v for the same ACK",
				m.Method, m.RTT, m.Time.Format("15:04:05.000000"), r.RTT))
			continue
		}
		if off > slack.Sent {
			c.Fallback++
		}
		c.Agree[i] = true
		c.Same = append(c.Same, r.RTT)
	}
	return c
}

// Covered reports whether the capture timed exactly the ACKs the reference
// timed, and measured each alike.
func (c Comparison) Covered() bool {
	return len(c.Same) == c.Samples && c.Samples == c.Ref
}

// String summarizes the comparison.
func (c Comparison) String() string {
	return fmt.Sprintf("%d samples, %d of the reference, %d of them of the same ACKs alike (%d within a TSval tick), %d unlike",
		c.Samples, c.Ref, len(c.Same), c.Fallback, len(c.Differ))
}

// Envelope returns the range in which every RTT statistic of go-metro's
// samples of the same traffic must lie, if each of them is one of the
// reference's: from the smallest of the reference's RTTs to the largest,
// widened by 1 % (the relative accuracy of go-metro's quantile sketch)
// and by slack (see [RefSamples.Compare]). It returns 0, 0 for none.
func (s RefSamples) Envelope(slack time.Duration) (lo, hi time.Duration) {
	if len(s) == 0 {
		return 0, 0
	}
	rtts := s.RTTs()
	lo, hi = slices.Min(rtts), slices.Max(rtts)
	return lo - lo/100 - slack, hi + hi/100 + slack
}
