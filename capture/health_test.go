package capture

import (
	"cmp"
	"net/netip"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// Tests of the loss and failure counts (issue 13) on crafted exchanges.
// The local side is rttLocal (192.0.2.1:40000) and the peer rttRemote
// (198.51.100.7:443) unless a test says otherwise; without service tags
// all their connections are one series, healthPeer.
//
// What counts (TCPCounts):
//   - Retransmits: segments the local side sends again, that is sequence
//     space it already sent (a SYN and a FIN included), except keepalives
//     (at most 1 byte at SND.UNA-1, wholly acknowledged; a zero-window
//     probe is one) and copies of a segment that #9's copy rule
//     recognises (another device, or an exact copy at once). Tail-loss
//     probes and spurious retransmissions count, as tshark counts them.
//   - Opened: completed handshakes, counted when the SYN-ACK of our SYN
//     arrives (outbound) or when the peer's ACK of our SYN-ACK arrives
//     (inbound), once per connection.
//   - Refused: our SYN answered by a RST that acknowledges it (ACK of our
//     ISN+1).
//   - Timeouts: our SYN without a SYN-ACK (or refusal) within SYNTimeout
//     of its first transmission, once per connection however often it
//     was resent. The expiry sweep finds them; it runs every second of
//     the engine clock, so the tests call Expire at a chosen time before
//     the drain. A SYN-ACK after the timeout was counted does not undo it
//     (the connect did wait that long), and the handshake it completes
//     counts as opened.
//   - ResetsLocal, ResetsRemote: a RST on an established connection, by
//     its sender, once per connection. A RST during the handshake is a
//     refusal (or nothing), not a reset. A connection first seen after
//     its handshake (go-metro started later) is established.
//   - ZeroWindows: the peer's segments with a zero window field that are
//     not SYN, FIN or RST (tshark's tcp.analysis.zero_window).

// healthPeer is the series of the connections between rttLocal and
// rttRemote.
var healthPeer = AddrPeer(netip.MustParseAddrPort(rttLocal).Addr(), netip.MustParseAddrPort(rttRemote).Addr())

// zeroWin returns s advertising a zero window.
func zeroWin(s tseg) tseg {
	s.zeroWin = true
	return s
}

// segRSTACK is a RST with ACK, as Linux sends to refuse a SYN (seq 0, ack
// ISN+1, window 0) or to abort a connection.
func segRSTACK(seq, ack uint32) tseg { return tseg{seq: seq, ack: ack, flags: FlagRST | FlagACK} }

// segRST is a RST without ACK.
func segRST(seq uint32) tseg { return tseg{seq: seq, flags: FlagRST} }

// segFIN is a FIN with ACK and no data.
func segFIN(seq, ack uint32) tseg { return tseg{seq: seq, ack: ack, flags: FlagFIN | FlagACK} }

// refusal is Linux's answer to a SYN for ISN isn on a closed port.
func refusal(isn uint32) tseg { return zeroWin(segRSTACK(0, isn+1)) }

// drainCounts drains e and returns the TCP counts of every series that has
// any.
func drainCounts(e *Engine) map[PeerKey]TCPCounts {
	out := map[PeerKey]TCPCounts{}
	for _, st := range e.Drain(nil) {
		if st.TCP.IsZero() {
			continue
		}
		c := out[st.PeerKey]
		c.add(&st.TCP)
		out[st.PeerKey] = c
	}
	return out
}

// checkCounts drains e and requires healthPeer's counts to be want and
// no other series to have counts.
func checkCounts(t *testing.T, e *Engine, want TCPCounts) {
	t.Helper()
	got := drainCounts(e)
	if diff := gocmp.Diff(want, got[healthPeer]); diff != "" {
		t.Errorf("TCP counts of %v (-want +got):\n%s", healthPeer.Remote, diff)
	}
	for k, c := range got {
		if k != healthPeer {
			t.Errorf("unexpected counts for series %+v: %+v", k, c)
		}
	}
}

// healthCase is a crafted exchange between rttLocal and rttRemote and the
// counts it must give in one drain.
type healthCase struct {
	name  string
	cfg   Config
	steps []step
	// expire, if not 0, runs the expiry sweep at t0+expire after the
	// steps, before the drain: timeouts are found by the sweep.
	expire time.Duration
	want   TCPCounts
}

func runHealthCases(t *testing.T, cases []healthCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, tc.cfg, "192.0.2.1")
			newConn(t, e, rttLocal, rttRemote).play(tc.steps)
			if tc.expire != 0 {
				e.Expire(t0.Add(tc.expire))
			}
			checkCounts(t, e, tc.want)
		})
	}
}

// cstep is a step of one of several connections.
type cstep struct {
	c *conn
	step
}

// onConn returns steps as steps of c.
func onConn(c *conn, steps []step) []cstep {
	out := make([]cstep, len(steps))
	for i, s := range steps {
		out[i] = cstep{c, s}
	}
	return out
}

// playAll plays the steps of several connections in time order (the
// given order for steps at the same time).
func playAll(lists ...[]cstep) {
	var all []cstep
	for _, l := range lists {
		all = append(all, l...)
	}
	slices.SortStableFunc(all, func(a, b cstep) int { return cmp.Compare(a.at, b.at) })
	for _, s := range all {
		s.c.play([]step{s.step})
	}
}

// synAt is the local side's SYN of script sc sent at at.
func (sc rttScript) synAt(at time.Duration) step {
	return stepOut(at, sc.tsOpt(segSYN(sc.lisn), sc.lts.at(at), 0))
}

// unansweredSYN is a connect whose SYN is sent at each of ats and never
// answered.
func (sc rttScript) unansweredSYN(ats ...time.Duration) []step {
	var steps []step
	for _, at := range ats {
		steps = append(steps, sc.synAt(at))
	}
	return steps
}

// synAckAt is the peer's SYN-ACK at at, echoing the SYN sent at echo, and
// the local side's ACK at once.
func (sc rttScript) synAckAt(at, echo time.Duration) []step {
	return []step{
		stepIn(at, sc.tsOpt(segSYNACK(sc.risn, sc.lisn+1), sc.rts.at(at), sc.lts.at(echo))),
		stepOut(at, sc.tsOpt(segACK(sc.lisn+1, sc.risn+1), sc.lts.at(at), sc.rts.at(at))),
	}
}

// Linux's SYN retransmissions: the first SYN and 3 more.
var synTimes = []time.Duration{0, ms(1000), ms(3000), ms(7000)}

func TestHealthRefused(t *testing.T) {
	nots, ts := script(false), script(true)
	refused := func(sc rttScript) []step {
		return []step{sc.synAt(0), stepIn(ms(10), refusal(sc.lisn))}
	}
	runHealthCases(t, []healthCase{
		{name: "syn-rst", steps: refused(nots), want: TCPCounts{Refused: 1}},
		{name: "syn-rst/ts", steps: refused(ts), want: TCPCounts{Refused: 1}},
		{
			// The SYN sent again is a retransmission; the connect is
			// refused once.
			name:  "after-resent-syn",
			steps: []step{nots.synAt(0), nots.synAt(ms(1000)), stepIn(ms(1010), refusal(lISN))},
			want:  TCPCounts{Refused: 1, Retransmits: 1},
		},
		{
			// A second connect from the same port, with a new ISN, is a
			// new connection, not a retransmission: refused twice.
			name: "two-connects-same-ports",
			steps: []step{
				nots.synAt(0), stepIn(ms(10), refusal(lISN)),
				stepOut(ms(500), segSYN(lISN+70_000)), stepIn(ms(510), refusal(lISN+70_000)),
			},
			want: TCPCounts{Refused: 2},
		},
		{
			// A RST that does not acknowledge our SYN does not answer
			// it (RFC 9293 3.10.7.3): no refusal, and no reset.
			name:  "rst-acks-something-else",
			steps: []step{nots.synAt(0), stepIn(ms(10), zeroWin(segRSTACK(0, lISN+2)))},
			want:  TCPCounts{},
		},
		{
			name:  "rst-without-ack",
			steps: []step{nots.synAt(0), stepIn(ms(10), segRST(0))},
			want:  TCPCounts{},
		},
		{
			// The peer's SYN refused by the local side: not our SYN.
			name:  "inbound-refused-by-us",
			steps: []step{stepIn(0, segSYN(rISN)), stepOut(ms(0.05), zeroWin(segRSTACK(0, rISN+1)))},
			want:  TCPCounts{},
		},
	})
}

func TestHealthTimeouts(t *testing.T) {
	nots, ts := script(false), script(true)
	runHealthCases(t, []healthCase{
		{
			// Sent 4 times, at 0, 1, 3 and 7 s: one timeout, found by
			// the sweep at 10.5 s, 10 s after the FIRST SYN (measured
			// from the last one it would be 17 s).
			name: "resent-3-times", steps: nots.unansweredSYN(synTimes...), expire: ms(10_500),
			want: TCPCounts{Timeouts: 1, Retransmits: 3},
		},
		{
			name: "resent-3-times/ts", steps: ts.unansweredSYN(synTimes...), expire: ms(10_500),
			want: TCPCounts{Timeouts: 1, Retransmits: 3},
		},
		{
			name: "not-yet", steps: nots.unansweredSYN(synTimes...), expire: ms(9_500),
			want: TCPCounts{Retransmits: 3},
		},
		{
			name: "syn-timeout-setting", cfg: Config{SYNTimeout: 2 * time.Second},
			steps: nots.unansweredSYN(0, ms(1000)), expire: ms(2_500),
			want: TCPCounts{Timeouts: 1, Retransmits: 1},
		},
		{
			name:  "answered-within-timeout",
			steps: concat(ts.unansweredSYN(synTimes...), ts.synAckAt(ms(7_010), ms(7_000))),
			// Well beyond the timeout: the answered SYN never counts.
			expire: 30 * time.Second,
			want:   TCPCounts{Opened: 1, Retransmits: 3},
		},
		{
			name:   "refused-within-timeout",
			steps:  []step{nots.synAt(0), nots.synAt(ms(1000)), stepIn(ms(1010), refusal(lISN))},
			expire: 30 * time.Second,
			want:   TCPCounts{Refused: 1, Retransmits: 1},
		},
		{
			// Timeouts are the local side's SYNs only: the SYN-ACKs of
			// an inbound handshake that the peer never completes are
			// retransmissions, not a timeout.
			name: "inbound-unacknowledged",
			steps: []step{
				stepIn(0, segSYN(rISN)),
				stepOut(ms(0.05), segSYNACK(lISN, rISN+1)),
				stepOut(ms(1000), segSYNACK(lISN, rISN+1)),
				stepOut(ms(3000), segSYNACK(lISN, rISN+1)),
			},
			expire: 30 * time.Second,
			want:   TCPCounts{Retransmits: 2},
		},
	})
}

// TestHealthTimeoutStages drains a connect that times out at each stage:
// nothing before SYNTimeout from the first SYN, exactly one timeout
// after it, nothing more later, and a late SYN-ACK counts as opened
// without undoing the timeout.
func TestHealthTimeoutStages(t *testing.T) {
	for _, ts := range []bool{false, true} {
		name := "no-ts"
		if ts {
			name = "ts"
		}
		t.Run(name, func(t *testing.T) {
			sc := script(ts)
			e, _ := newTestEngine(t, Config{}, "192.0.2.1")
			c := newConn(t, e, rttLocal, rttRemote)
			c.play(sc.unansweredSYN(synTimes...))
			e.Expire(t0.Add(ms(9_900)))
			t.Log("at 9.9 s")
			checkCounts(t, e, TCPCounts{Retransmits: 3})
			e.Expire(t0.Add(ms(10_100)))
			t.Log("at 10.1 s")
			checkCounts(t, e, TCPCounts{Timeouts: 1})
			e.Expire(t0.Add(ms(14_000)))
			t.Log("at 14 s")
			checkCounts(t, e, TCPCounts{})
			// Linux's fifth SYN, at 15 s, is answered.
			c.play(concat([]step{sc.synAt(ms(15_000))}, sc.synAckAt(ms(15_020), ms(15_000))))
			e.Expire(t0.Add(ms(40_000)))
			t.Log("after a SYN-ACK at 15 s")
			checkCounts(t, e, TCPCounts{Opened: 1, Retransmits: 1})
		})
	}
}

// TestHealthTimeoutPerConnection makes 5 connects at once whose SYNs are
// never answered and one that is: 5 timeouts.
func TestHealthTimeoutPerConnection(t *testing.T) {
	e, _ := newTestEngine(t, Config{}, "192.0.2.1")
	var lists [][]cstep
	for i := range 5 {
		sc := script(true)
		sc.lisn += uint32(i) * 1_000_000
		c := newConn(t, e, netip.AddrPortFrom(healthPeer.Local, uint16(41000+i)).String(), rttRemote)
		var steps []step
		for _, at := range synTimes {
			steps = append(steps, sc.synAt(at+time.Duration(i)*time.Millisecond))
		}
		lists = append(lists, onConn(c, steps))
	}
	ok := newConn(t, e, "192.0.2.1:42000", rttRemote)
	lists = append(lists, onConn(ok, script(true).activeOpen(ms(20))))
	playAll(lists...)
	e.Expire(t0.Add(ms(10_500)))
	checkCounts(t, e, TCPCounts{Timeouts: 5, Opened: 1, Retransmits: 15})
}

func TestHealthOpened(t *testing.T) {
	nots, ts := script(false), script(true)
	// synAckRepeated: the peer did not get our ACK and sends its SYN-ACK
	// again; we ACK again (no sequence space: not a retransmission).
	synAckRepeated := concat(nots.activeOpen(ms(20)), []step{
		stepIn(ms(1020), segSYNACK(rISN, lISN+1)),
		stepOut(ms(1020), segACK(lISN+1, rISN+1)),
	})
	// synAckResent: the local side accepts, its first SYN-ACK is lost,
	// the peer sends its SYN again at 1 s and the local side its SYN-ACK
	// again, which the peer acknowledges.
	synAckResent := []step{
		stepIn(0, segSYN(rISN)),
		stepOut(ms(0.05), segSYNACK(lISN, rISN+1)),
		stepIn(ms(1000), segSYN(rISN)),
		stepOut(ms(1000.05), segSYNACK(lISN, rISN+1)),
		stepIn(ms(1020.05), segACK(rISN+1, lISN+1)),
	}
	runHealthCases(t, []healthCase{
		{name: "active", steps: nots.activeOpen(ms(20)), want: TCPCounts{Opened: 1}},
		{name: "active/ts", steps: ts.activeOpen(ms(20)), want: TCPCounts{Opened: 1}},
		{name: "passive", steps: nots.passiveOpen(ms(20)), want: TCPCounts{Opened: 1}},
		{name: "passive/ts", steps: ts.passiveOpen(ms(20)), want: TCPCounts{Opened: 1}},
		{
			// The peer's first data segment acknowledges our SYN-ACK.
			name: "passive/ack-on-data",
			steps: []step{
				stepIn(0, segSYN(rISN)),
				stepOut(ms(0.05), segSYNACK(lISN, rISN+1)),
				stepIn(ms(20.05), segData(rISN+1, lISN+1, reqLen)),
			},
			want: TCPCounts{Opened: 1},
		},
		{
			// Half open: never completed.
			name:  "passive/no-ack",
			steps: []step{stepIn(0, segSYN(rISN)), stepOut(ms(0.05), segSYNACK(lISN, rISN+1))},
			want:  TCPCounts{},
		},
		{
			name:  "active/syn-resent",
			steps: concat(nots.unansweredSYN(0, ms(1000)), nots.synAckAt(ms(1020), ms(1000))),
			want:  TCPCounts{Opened: 1, Retransmits: 1},
		},
		{name: "active/syn-ack-repeated", steps: synAckRepeated, want: TCPCounts{Opened: 1}},
		{name: "passive/syn-ack-resent", steps: synAckResent, want: TCPCounts{Opened: 1, Retransmits: 1}},
		{
			// A connection first seen after its handshake: nothing
			// opened in the capture.
			name:  "mid-flow",
			steps: nots.requests(ms(20), ms(100), ms(200)),
			want:  TCPCounts{},
		},
	})
}

func TestHealthResets(t *testing.T) {
	nots := script(false)
	// established is a connection with one request and response; lNext
	// and rNext are the next sequence numbers of each side.
	established := concat(nots.activeOpen(ms(20)), nots.requests(ms(20), ms(100)))
	lNext, rNext := lISN+1+reqLen, rISN+1+respLen
	runHealthCases(t, []healthCase{
		{
			name:  "remote",
			steps: append(slices.Clone(established), stepIn(ms(200), segRSTACK(rNext, lNext))),
			want:  TCPCounts{Opened: 1, ResetsRemote: 1},
		},
		{
			name:  "remote/no-ack-flag",
			steps: append(slices.Clone(established), stepIn(ms(200), segRST(rNext))),
			want:  TCPCounts{Opened: 1, ResetsRemote: 1},
		},
		{
			name:  "local",
			steps: append(slices.Clone(established), stepOut(ms(200), segRSTACK(lNext, rNext))),
			want:  TCPCounts{Opened: 1, ResetsLocal: 1},
		},
		{
			// Once per connection: after the first RST it is no longer
			// established.
			name: "remote/twice",
			steps: append(slices.Clone(established),
				stepIn(ms(200), segRSTACK(rNext, lNext)),
				stepIn(ms(210), segRST(rNext))),
			want: TCPCounts{Opened: 1, ResetsRemote: 1},
		},
		{
			// A connection that began before the capture is established
			// all the same: its RST is a reset.
			name:  "remote/mid-flow",
			steps: append(nots.requests(ms(20), ms(100)), stepIn(ms(200), segRSTACK(rNext, lNext))),
			want:  TCPCounts{ResetsRemote: 1},
		},
		{
			// A RST answering our SYN is a refusal, not a reset.
			name:  "during-active-handshake",
			steps: []step{nots.synAt(0), stepIn(ms(10), refusal(lISN))},
			want:  TCPCounts{Refused: 1},
		},
		{
			// The peer aborts its own handshake: neither a reset (not
			// established) nor a refusal (not our SYN).
			name: "during-passive-handshake",
			steps: []step{
				stepIn(0, segSYN(rISN)),
				stepOut(ms(0.05), segSYNACK(lISN, rISN+1)),
				stepIn(ms(20.05), segRST(rISN+1)),
			},
			want: TCPCounts{},
		},
	})
}

func TestHealthZeroWindows(t *testing.T) {
	nots := script(false)
	// established: 4 segments sent and acknowledged; una is SND.UNA.
	established := concat(nots.activeOpen(ms(20)), nots.bulk(ms(100), ms(1), ms(20), 4))
	una := lISN + 1 + 4*mss
	with := func(steps ...step) []step { return concat(established, steps) }
	runHealthCases(t, []healthCase{
		{
			name:  "peer-ack",
			steps: with(stepIn(ms(150), zeroWin(segACK(rISN+1, una)))),
			want:  TCPCounts{Opened: 1, ZeroWindows: 1},
		},
		{
			// As in zero_window_v4: the zero-window ACK, our probe (no
			// data at SND.UNA-1: not a retransmission), the peer's
			// answer (a zero window again), a second probe it does not
			// answer, and the window update.
			name: "peer-probe-answers",
			steps: with(
				stepIn(ms(150), zeroWin(segACK(rISN+1, una))),
				stepOut(ms(370), segACK(una-1, rISN+1)),
				stepIn(ms(380), zeroWin(segACK(rISN+1, una))),
				stepOut(ms(830), segACK(una-1, rISN+1)),
				stepIn(ms(1050), segACK(rISN+1, una)),
			),
			want: TCPCounts{Opened: 1, ZeroWindows: 2},
		},
		{
			name:  "peer-data",
			steps: with(stepIn(ms(150), zeroWin(segData(rISN+1, una, 100)))),
			want:  TCPCounts{Opened: 1, ZeroWindows: 1},
		},
		{
			// The local side's own zero window is not counted.
			name:  "local",
			steps: with(stepOut(ms(150), zeroWin(segACK(una, rISN+1)))),
			want:  TCPCounts{Opened: 1},
		},
		{
			name:  "peer-fin",
			steps: with(stepIn(ms(150), zeroWin(segFIN(rISN+1, una)))),
			want:  TCPCounts{Opened: 1},
		},
		{
			name:  "peer-rst",
			steps: with(stepIn(ms(150), zeroWin(segRSTACK(rISN+1, una)))),
			want:  TCPCounts{Opened: 1, ResetsRemote: 1},
		},
		{
			name: "peer-syn-ack",
			steps: []step{
				nots.synAt(0),
				stepIn(ms(20), zeroWin(segSYNACK(rISN, lISN+1))),
				stepOut(ms(20), segACK(lISN+1, rISN+1)),
			},
			want: TCPCounts{Opened: 1},
		},
		{
			// Every frame seen on two devices, 3 µs apart: each count
			// once.
			name:  "seen-on-two-devices",
			steps: withCopies(with(stepIn(ms(150), zeroWin(segACK(rISN+1, una)))), 3*time.Microsecond, brOut, portOut, portIn, brIn),
			want:  TCPCounts{Opened: 1, ZeroWindows: 1},
		},
	})
}

func TestHealthRetransmits(t *testing.T) {
	nots, ts := script(false), script(true)
	open := nots.activeOpen(ms(20))
	seg := func(sc rttScript, i int, at time.Duration) step { return stepOut(at, sc.bulkSeg(i, at)) }
	ack := func(sc rttScript, n int, at time.Duration) step {
		return stepIn(at, sc.bulkAck(n, at, sc.lts.at(at-ms(20))))
	}
	// rto: the first segment sent again 300 ms later.
	rto := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{seg(sc, 0, ms(100)), seg(sc, 0, ms(400)), ack(sc, 1, ms(420))})
	}
	// wrap: a script whose sequence numbers wrap after 4 segments.
	wrap := nots
	wrap.lisn = 1<<32 - 1 - 4*mss - 500
	// reqresp: a connection with three requests and responses; una and
	// rNext are then the next sequence numbers of each side.
	reqresp := concat(open, nots.requests(ms(20), ms(100), ms(150), ms(200)))
	una, rNext := lISN+1+3*reqLen, rISN+1+3*respLen
	// tail: 4 segments; the peer acknowledges 3 at once, and the local
	// side sends the last one again 40 ms (2 RTTs) after it, a tail-loss
	// probe.
	tail := concat(open, []step{
		seg(nots, 0, ms(100)), seg(nots, 1, ms(101)), seg(nots, 2, ms(102)), seg(nots, 3, ms(103)),
		ack(nots, 3, ms(122)),
		seg(nots, 3, ms(143)),
	})
	dsack := SACKBlock{Left: lISN + 1 + 3*mss, Right: lISN + 1 + 4*mss}
	runHealthCases(t, []healthCase{
		{name: "rto", steps: rto(nots), want: TCPCounts{Opened: 1, Retransmits: 1}},
		{name: "rto/ts", steps: rto(ts), want: TCPCounts{Opened: 1, Retransmits: 1}},
		{
			name:  "twice",
			steps: concat(open, []step{seg(nots, 0, ms(100)), seg(nots, 0, ms(400)), seg(nots, 0, ms(1000)), ack(nots, 1, ms(1020))}),
			want:  TCPCounts{Opened: 1, Retransmits: 2},
		},
		{
			// Half old, half new sequence space.
			name: "partial-overlap",
			steps: concat(open, []step{
				seg(nots, 0, ms(100)),
				stepOut(ms(400), segData(lISN+1+mss/2, rISN+1, mss)),
				stepIn(ms(420), segACK(rISN+1, lISN+1+mss+mss/2)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// Two segments sent again as one.
			name: "repacketized",
			steps: concat(open, []step{
				seg(nots, 0, ms(100)), seg(nots, 1, ms(101)),
				stepOut(ms(400), segData(lISN+1, rISN+1, 2*mss)),
				ack(nots, 2, ms(420)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{name: "new-data", steps: concat(open, nots.bulk(ms(100), ms(1), ms(20), 10)), want: TCPCounts{Opened: 1}},
		{
			name:  "wrap/new-data",
			steps: concat(wrap.activeOpen(ms(20)), wrap.bulk(ms(100), ms(1), ms(20), 10)),
			want:  TCPCounts{Opened: 1},
		},
		{
			// The segment across the wrap, sent again.
			name: "wrap/resent",
			steps: concat(wrap.activeOpen(ms(20)), []step{
				seg(wrap, 3, ms(100)), // [ISN+1+3000, ISN+1+4000): before the wrap
				seg(wrap, 4, ms(101)), // crosses it
				seg(wrap, 5, ms(102)),
				seg(wrap, 4, ms(400)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// The same segment again on the same device is a
			// retransmission.
			name: "same-device",
			steps: onDevices(concat(open, []step{seg(nots, 0, ms(100)), seg(nots, 0, ms(300)), ack(nots, 1, ms(320))}),
				brOut, brIn),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// A copy of a segment 3 µs later, seen on two devices, is
			// not a retransmission.
			name:  "copy-on-second-device",
			steps: withCopies(reqresp, 3*time.Microsecond, brOut, portOut, portIn, brIn),
			want:  TCPCounts{Opened: 1},
		},
		{
			// Nor is an exact copy 3 µs later from an unknown device.
			name:  "copy-unknown-device",
			steps: withCopies(reqresp, 3*time.Microsecond, 0, 0, 0, 0),
			want:  TCPCounts{Opened: 1},
		},
		{
			// ...but 2 ms later it is a retransmission.
			name: "unknown-device-2ms",
			steps: concat(open, []step{
				stepOut(ms(100), segData(lISN+1, rISN+1, reqLen)),
				stepOut(ms(102), segData(lISN+1, rISN+1, reqLen)),
				stepIn(ms(122), segACK(rISN+1, lISN+1+reqLen)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// Linux's keepalives: no data, at SND.UNA-1, answered by
			// an ACK.
			name: "keepalive",
			steps: concat(reqresp, []step{
				stepOut(ms(10_200), segACK(una-1, rNext)),
				stepIn(ms(10_220), segACK(rNext, una)),
				stepOut(ms(20_220), segACK(una-1, rNext)),
				stepIn(ms(20_240), segACK(rNext, una)),
			}),
			want: TCPCounts{Opened: 1},
		},
		{
			// BSD's and Windows' keepalives: 1 byte at SND.UNA-1,
			// already acknowledged.
			name: "keepalive/one-byte",
			steps: concat(reqresp, []step{
				stepOut(ms(10_200), tseg{seq: una - 1, ack: rNext, flags: FlagACK, payload: 1}),
				stepIn(ms(10_220), segACK(rNext, una)),
				stepOut(ms(20_220), tseg{seq: una - 1, ack: rNext, flags: FlagACK, payload: 1}),
				stepIn(ms(20_240), segACK(rNext, una)),
			}),
			want: TCPCounts{Opened: 1},
		},
		{
			// Data already acknowledged, sent again (a spurious RTO
			// racing the ACK): more than a keepalive's byte.
			name:  "acknowledged-data-again",
			steps: concat(reqresp, []step{stepOut(ms(300), segData(lISN+1+2*reqLen, rNext, reqLen))}),
			want:  TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// A tail-loss probe: the last segment was lost; its probe
			// is acknowledged.
			name:  "tail-loss-probe",
			steps: concat(tail, []step{ack(nots, 4, ms(163))}),
			want:  TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// A spurious tail-loss probe: the last segment was only
			// late to be acknowledged; the peer's D-SACK reports the
			// probe as a duplicate. It counts, as tshark counts it.
			name: "spurious-tail-loss-probe",
			steps: concat(tail, []step{
				ack(nots, 4, ms(150)),
				stepIn(ms(163), withSACK(segACK(rISN+1, lISN+1+4*mss), dsack)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			name: "fin",
			steps: concat(open, []step{
				stepOut(ms(100), segFIN(lISN+1, rISN+1)),
				stepOut(ms(400), segFIN(lISN+1, rISN+1)),
				stepIn(ms(420), segACK(rISN+1, lISN+2)),
			}),
			want: TCPCounts{Opened: 1, Retransmits: 1},
		},
		{
			// The peer's retransmissions are not the local side's; our
			// duplicate ACK carries no sequence space.
			name: "peer-retransmission",
			steps: concat(reqresp, []step{
				stepIn(ms(400), segData(rISN+1+2*respLen, una, respLen)),
				stepOut(ms(400), segACK(una, rNext)),
			}),
			want: TCPCounts{Opened: 1},
		},
	})
}

// TestHealthNoTCPCounts checks that NoTCPCounts (tcp_health: false) turns
// every count off, and that the same exchange gives counts without it.
func TestHealthNoTCPCounts(t *testing.T) {
	local := healthPeer.Local
	other := netip.MustParseAddr("198.51.100.8")
	otherPeer := AddrPeer(local, other)
	run := func(t *testing.T, cfg Config) *Engine {
		e, _ := newTestEngine(t, cfg, "192.0.2.1")
		sc := script(true)
		// To healthPeer: a handshake, a retransmission, a zero window
		// and a reset by the peer.
		c1 := newConn(t, e, rttLocal, rttRemote)
		una := lISN + 1 + 2*mss
		s1 := concat(sc.activeOpen(ms(20)), sc.bulk(ms(100), ms(1), ms(20), 2), []step{
			stepOut(ms(300), sc.bulkSeg(1, ms(300))),
			stepIn(ms(320), zeroWin(segACK(rISN+1, una))),
			stepIn(ms(400), segRSTACK(rISN+1, una)),
		})
		// To the other peer: a refused connect and one that times out.
		c2 := newConn(t, e, "192.0.2.1:40002", "198.51.100.8:9")
		c3 := newConn(t, e, "192.0.2.1:40003", "198.51.100.8:5001")
		s2 := []step{sc.synAt(ms(10)), stepIn(ms(20), refusal(lISN))}
		s3 := sc.unansweredSYN(ms(30), ms(1030))
		playAll(onConn(c1, s1), onConn(c2, s2), onConn(c3, s3))
		e.Expire(t0.Add(12 * time.Second))
		return e
	}
	t.Run("on", func(t *testing.T) {
		got := drainCounts(run(t, Config{}))
		want := map[PeerKey]TCPCounts{
			healthPeer: {Opened: 1, Retransmits: 1, ZeroWindows: 1, ResetsRemote: 1},
			otherPeer:  {Refused: 1, Timeouts: 1, Retransmits: 1},
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("TCP counts by series (-want +got):\n%s", diff)
		}
	})
	t.Run("off", func(t *testing.T) {
		stats := run(t, Config{NoTCPCounts: true}).Drain(nil)
		for _, st := range stats {
			if !st.TCP.IsZero() {
				t.Errorf("%v: TCP counts %+v with NoTCPCounts, want none", st.Remote, st.TCP)
			}
			if st.Count == 0 {
				// Without counts, the peer with only failed connects
				// has nothing to report.
				t.Errorf("%v: drained without samples or counts", st.Remote)
			}
		}
		if len(stats) != 1 || stats[0].PeerKey != healthPeer {
			t.Errorf("drained %d series, want only %v with its samples", len(stats), healthPeer.Remote)
		}
	})
}

// TestHealthCountsWithoutSamples checks that a peer with counts and no
// samples is drained, with Count 0, once.
func TestHealthCountsWithoutSamples(t *testing.T) {
	e, _ := newTestEngine(t, Config{}, "192.0.2.1")
	sc := script(false)
	newConn(t, e, rttLocal, rttRemote).play([]step{sc.synAt(0), stepIn(ms(10), refusal(lISN))})
	stats := e.Drain(nil)
	if len(stats) != 1 {
		t.Fatalf("drained %d series, want 1 (%v with a refused connect): %+v", len(stats), healthPeer.Remote, stats)
	}
	st := stats[0]
	if st.PeerKey != healthPeer || st.Count != 0 || st.TCP != (TCPCounts{Refused: 1}) {
		t.Errorf("drained %+v: want %v with Count 0 and TCP {Refused: 1}", st, healthPeer.Remote)
	}
	if len(st.Buckets) != 0 || st.P50 != 0 || st.Max != 0 {
		t.Errorf("RTT fields of a series without samples: P50 %v, Max %v, %d buckets; want zero", st.P50, st.Max, len(st.Buckets))
	}
	if again := e.Drain(nil); len(again) != 0 {
		t.Errorf("second drain: %+v, want nothing (the counts were drained)", again)
	}
}

// TestHealthPeerFilter checks that counts follow the peer filter, like
// samples: a refused connect to a peer outside it is not counted.
func TestHealthPeerFilter(t *testing.T) {
	e, _ := newTestEngine(t, Config{}, "192.0.2.1")
	pr, err := NewPeerResolver(PeerSpec{IPs: []string{healthPeer.Remote.String()}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.SetPeerFilter(pr.Static())
	sc := script(false)
	in := newConn(t, e, rttLocal, rttRemote)
	outRefused := newConn(t, e, "192.0.2.1:40001", "198.51.100.8:443")
	outTimedOut := newConn(t, e, "192.0.2.1:40002", "198.51.100.8:443")
	refused := []step{sc.synAt(0), stepIn(ms(10), refusal(lISN))}
	playAll(onConn(in, refused), onConn(outRefused, refused), onConn(outTimedOut, sc.unansweredSYN(ms(100), ms(1100))))
	e.Expire(t0.Add(12 * time.Second))
	checkCounts(t, e, TCPCounts{Refused: 1})
}

// TestHealthServiceTags checks that counts carry the series' direction
// and service port when service tags are on.
func TestHealthServiceTags(t *testing.T) {
	e, _ := newTestEngine(t, Config{ServiceTags: true}, "192.0.2.1")
	nots := script(false)
	refused := newConn(t, e, "192.0.2.1:40001", "198.51.100.7:9")
	timedOut := newConn(t, e, "192.0.2.1:40002", "198.51.100.7:5001")
	inbound := newConn(t, e, "192.0.2.1:443", "198.51.100.7:50000")
	playAll(
		onConn(refused, []step{nots.synAt(0), stepIn(ms(10), refusal(lISN))}),
		onConn(timedOut, nots.unansweredSYN(ms(20))),
		onConn(inbound, nots.passiveOpen(ms(20))),
	)
	e.Expire(t0.Add(11 * time.Second))
	key := func(dir Direction, port uint32) PeerKey {
		k := healthPeer
		k.Dir, k.Port = dir, port
		return k
	}
	want := map[PeerKey]TCPCounts{
		key(DirOutbound, 9):    {Refused: 1},
		key(DirOutbound, 5001): {Timeouts: 1},
		key(DirInbound, 443):   {Opened: 1},
	}
	if diff := gocmp.Diff(want, drainCounts(e)); diff != "" {
		t.Errorf("TCP counts by series (-want +got):\n%s", diff)
	}
}
