package capture

import (
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// The endpoints, initial sequence numbers and segment sizes of the
// estimator tests. The local side is the one being monitored.
const (
	rttLocal  = "192.0.2.1:40000"
	rttRemote = "198.51.100.7:443"

	lISN uint32 = 1_000_000
	rISN uint32 = 5_000_000

	mss     = 1000 // bulk segment size
	reqLen  = 100  // request size
	respLen = 500  // response size
)

// ms returns f milliseconds, rounded to the nanosecond.
func ms(f float64) time.Duration { return time.Duration(math.Round(f * float64(time.Millisecond))) }

func segSYN(seq uint32) tseg { return tseg{seq: seq, flags: FlagSYN, mss: 1460} }

func segSYNACK(seq, ack uint32) tseg {
	return tseg{seq: seq, ack: ack, flags: FlagSYN | FlagACK, mss: 1460}
}

func segACK(seq, ack uint32) tseg { return tseg{seq: seq, ack: ack, flags: FlagACK} }

func segData(seq, ack uint32, n int) tseg {
	return tseg{seq: seq, ack: ack, flags: FlagPSH | FlagACK, payload: n}
}

// withSACK returns s with SACK blocks.
func withSACK(s tseg, blocks ...SACKBlock) tseg {
	s.sack = blocks
	return s
}

// rttScript is a scripted connection: its initial sequence numbers and,
// when ts is set, the TSval clocks of both sides. Its methods return the
// steps of common exchanges, timed so that the expected RTTs are exact.
type rttScript struct {
	lisn, risn uint32
	ts         bool
	lts, rts   tsClock
}

// script returns the default connection: lISN and rISN, timestamps if ts.
func script(ts bool) rttScript {
	return rttScript{lisn: lISN, risn: rISN, ts: ts, lts: 100, rts: 900_000}
}

// tsOpt returns s with the timestamp option when the script uses it.
func (sc rttScript) tsOpt(s tseg, val, ecr uint32) tseg {
	if sc.ts {
		s.ts, s.tsval, s.tsecr = true, val, ecr
	}
	return s
}

// activeOpen is a handshake the local side opens: SYN at 0, the SYN-ACK
// rtt later and the ACK at once.
func (sc rttScript) activeOpen(rtt time.Duration) []step {
	return []step{
		stepOut(0, sc.tsOpt(segSYN(sc.lisn), sc.lts.at(0), 0)),
		stepIn(rtt, sc.tsOpt(segSYNACK(sc.risn, sc.lisn+1), sc.rts.at(rtt/2), sc.lts.at(0))),
		stepOut(rtt, sc.tsOpt(segACK(sc.lisn+1, sc.risn+1), sc.lts.at(rtt), sc.rts.at(rtt/2))),
	}
}

// passiveOpen is a handshake the local side accepts: the peer's SYN at 0,
// the SYN-ACK 50 µs later and the peer's ACK rtt after that.
func (sc rttScript) passiveOpen(rtt time.Duration) []step {
	sa := ms(0.05)
	return []step{
		stepIn(0, sc.tsOpt(segSYN(sc.risn), sc.rts.at(0), 0)),
		stepOut(sa, sc.tsOpt(segSYNACK(sc.lisn, sc.risn+1), sc.lts.at(sa), sc.rts.at(0))),
		stepIn(sa+rtt, sc.tsOpt(segACK(sc.risn+1, sc.lisn+1), sc.rts.at(sa+rtt/2), sc.lts.at(sa))),
	}
}

// bulkSeg returns the i-th bulk data segment (mss bytes) sent at time at.
func (sc rttScript) bulkSeg(i int, at time.Duration) tseg {
	return sc.tsOpt(segData(sc.lisn+1+uint32(i*mss), sc.risn+1, mss), sc.lts.at(at), sc.rts.at(at))
}

// bulkAck returns the peer's ACK of the first n bulk segments at time at,
// echoing echo.
func (sc rttScript) bulkAck(n int, at time.Duration, echo uint32) tseg {
	return sc.tsOpt(segACK(sc.risn+1, sc.lisn+1+uint32(n*mss)), sc.rts.at(at), echo)
}

// bulk sends n segments of mss bytes, from start, gap apart. The peer
// acknowledges every second segment (delayed ACKs) as soon as it arrives,
// rtt after it was sent, and echoes, as RFC 7323 §4.3 and Linux do, the
// TSval of the segment that starts at its previous ACK: the first segment
// of the pair.
func (sc rttScript) bulk(start, gap, rtt time.Duration, n int) []step {
	var out, in []step
	for i := range n {
		out = append(out, stepOut(start+time.Duration(i)*gap, sc.bulkSeg(i, start+time.Duration(i)*gap)))
	}
	for k := 0; 2*k < n; k++ {
		last := min(2*k+1, n-1)
		at := start + time.Duration(last)*gap + rtt
		echo := sc.lts.at(start + time.Duration(2*k)*gap)
		in = append(in, stepIn(at, sc.bulkAck(last+1, at, echo)))
	}
	return byTime(out, in)
}

// requests is the client side of request/response: a request of reqLen
// bytes at each of starts, answered rtt later by a response of respLen
// bytes, which the local side acknowledges at once.
func (sc rttScript) requests(rtt time.Duration, starts ...time.Duration) []step {
	var steps []step
	for i, at := range starts {
		lseq := sc.lisn + 1 + uint32(i*reqLen)
		rseq := sc.risn + 1 + uint32(i*respLen)
		steps = append(steps,
			stepOut(at, sc.tsOpt(segData(lseq, rseq, reqLen), sc.lts.at(at), sc.rts.at(at))),
			stepIn(at+rtt, sc.tsOpt(segData(rseq, lseq+reqLen, respLen), sc.rts.at(at+rtt/2), sc.lts.at(at))),
			stepOut(at+rtt, sc.tsOpt(segACK(lseq+reqLen, rseq+respLen), sc.lts.at(at+rtt), sc.rts.at(at+rtt/2))),
		)
	}
	return steps
}

// responses is the server side of request/response: the peer's request at
// each of starts, the local response 1 ms later, and the peer's ACK of it
// rtt after that.
func (sc rttScript) responses(rtt time.Duration, starts ...time.Duration) []step {
	var steps []step
	prevResp := ms(0.05) // the SYN-ACK: the first request echoes it
	for i, at := range starts {
		rseq := sc.risn + 1 + uint32(i*reqLen)
		lseq := sc.lisn + 1 + uint32(i*respLen)
		resp := at + time.Millisecond
		steps = append(steps,
			stepIn(at, sc.tsOpt(segData(rseq, lseq, reqLen), sc.rts.at(at), sc.lts.at(prevResp))),
			stepOut(resp, sc.tsOpt(segData(lseq, rseq+reqLen, respLen), sc.lts.at(resp), sc.rts.at(at))),
			stepIn(resp+rtt, sc.tsOpt(segACK(rseq+reqLen, lseq+respLen), sc.rts.at(resp+rtt/2), sc.lts.at(resp))),
		)
		prevResp = resp
	}
	return steps
}

// concat joins step lists in order.
func concat(lists ...[]step) []step {
	var all []step
	for _, l := range lists {
		all = append(all, l...)
	}
	return all
}

// repeat returns n copies of s.
func repeat(n int, s msample) []msample { return slices.Repeat([]msample{s}, n) }

// Methods sets used by the tests.
const (
	onlyTS        = Methods(1 << MethodTimestamp)
	onlySeqAck    = Methods(1 << MethodSeqAck)
	onlyHandshake = Methods(1 << MethodHandshake)
	tsAndSeqAck   = onlyTS | onlySeqAck
)

// rttCase is an estimator test: a scripted exchange and the samples it
// must give, in order.
type rttCase struct {
	name          string
	cfg           Config
	local, remote string // rttLocal and rttRemote when empty
	steps         []step
	want          []msample
	wantDiscarded uint64
}

func runRTTCases(t *testing.T, cases []rttCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local, remote := tc.local, tc.remote
			if local == "" {
				local, remote = rttLocal, rttRemote
			}
			e, rec := newTestEngine(t, tc.cfg, netip.MustParseAddrPort(local).Addr().String())
			newConn(t, e, local, remote).play(tc.steps)
			if diff := cmp.Diff(tc.want, rec.got(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
			st := e.Stats()
			if st.Samples != uint64(len(tc.want)) || st.SamplesDiscarded != tc.wantDiscarded {
				t.Errorf("Stats: Samples=%d SamplesDiscarded=%d, want %d and %d",
					st.Samples, st.SamplesDiscarded, len(tc.want), tc.wantDiscarded)
			}
		})
	}
}

var (
	hs20 = msample{MethodHandshake, 20 * time.Millisecond}
	ts20 = msample{MethodTimestamp, 20 * time.Millisecond}
	sa20 = msample{MethodSeqAck, 20 * time.Millisecond}
)

func TestHandshake(t *testing.T) {
	ts, nots := script(true), script(false)
	// synRetrans sends the SYN three times, 1 s and 2 s apart; the SYN-ACK
	// comes 20 ms after the last one and echoes it.
	synRetrans := func(sc rttScript) []step {
		return []step{
			stepOut(0, sc.tsOpt(segSYN(sc.lisn), sc.lts.at(0), 0)),
			stepOut(ms(1000), sc.tsOpt(segSYN(sc.lisn), sc.lts.at(ms(1000)), 0)),
			stepOut(ms(3000), sc.tsOpt(segSYN(sc.lisn), sc.lts.at(ms(3000)), 0)),
			stepIn(ms(3020), sc.tsOpt(segSYNACK(sc.risn, sc.lisn+1), sc.rts.at(ms(3010)), sc.lts.at(ms(3000)))),
			stepOut(ms(3020), sc.tsOpt(segACK(sc.lisn+1, sc.risn+1), sc.lts.at(ms(3020)), sc.rts.at(ms(3010)))),
		}
	}
	// synAckRetrans: the local side accepts, its first SYN-ACK is lost, the
	// peer sends its SYN again at 1 s and the local side its SYN-ACK again.
	synAckRetrans := func(sc rttScript) []step {
		return []step{
			stepIn(0, sc.tsOpt(segSYN(sc.risn), sc.rts.at(0), 0)),
			stepOut(ms(0.05), sc.tsOpt(segSYNACK(sc.lisn, sc.risn+1), sc.lts.at(0), sc.rts.at(0))),
			stepIn(ms(1000), sc.tsOpt(segSYN(sc.risn), sc.rts.at(ms(1000)), 0)),
			stepOut(ms(1000.05), sc.tsOpt(segSYNACK(sc.lisn, sc.risn+1), sc.lts.at(ms(1000)), sc.rts.at(ms(1000)))),
			stepIn(ms(1020.05), sc.tsOpt(segACK(sc.risn+1, sc.lisn+1), sc.rts.at(ms(1010)), sc.lts.at(ms(1000)))),
		}
	}
	runRTTCases(t, []rttCase{
		{name: "active", steps: ts.activeOpen(ms(20)), want: []msample{hs20}},
		{name: "active/no-ts", steps: nots.activeOpen(ms(20)), want: []msample{hs20}},
		{
			// Without the handshake method, the SYN is timed by the
			// others, once.
			name: "active/timestamp-only", cfg: Config{Methods: onlyTS},
			steps: ts.activeOpen(ms(20)), want: []msample{ts20},
		},
		{
			name: "active/timestamp+seqack", cfg: Config{Methods: tsAndSeqAck},
			steps: ts.activeOpen(ms(20)), want: []msample{ts20},
		},
		{
			name: "active/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: ts.activeOpen(ms(20)), want: []msample{sa20},
		},
		{
			name: "active/seqack-only/no-ts", cfg: Config{Methods: onlySeqAck},
			steps: nots.activeOpen(ms(20)), want: []msample{sa20},
		},
		{
			name: "active/timestamp-only/no-ts", cfg: Config{Methods: onlyTS},
			steps: nots.activeOpen(ms(20)), want: nil,
		},
		{name: "passive", steps: ts.passiveOpen(ms(20)), want: []msample{hs20}},
		{name: "passive/no-ts", steps: nots.passiveOpen(ms(20)), want: []msample{hs20}},
		{
			name: "passive/timestamp-only", cfg: Config{Methods: onlyTS},
			steps: ts.passiveOpen(ms(20)), want: []msample{ts20},
		},
		{
			name: "passive/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: nots.passiveOpen(ms(20)), want: []msample{sa20},
		},
		{
			// The peer's bare ACK is lost; its first request completes
			// the handshake.
			name: "passive/completed-by-data",
			steps: []step{
				stepIn(0, segSYN(rISN)),
				stepOut(ms(0.05), segSYNACK(lISN, rISN+1)),
				stepIn(ms(20.05), segData(rISN+1, lISN+1, reqLen)),
			},
			want: []msample{hs20},
		},
		{
			name: "passive/handshake-only", cfg: Config{Methods: onlyHandshake},
			steps: concat(ts.passiveOpen(ms(20)), ts.responses(ms(20), ms(100))), want: []msample{hs20},
		},
		{
			// Only the most recent SYN is timed.
			name: "syn-retransmitted", steps: synRetrans(ts), want: []msample{hs20},
		},
		{
			// Karn: without timestamps nothing tells which SYN the
			// SYN-ACK answers.
			name: "syn-retransmitted/no-ts", steps: synRetrans(nots), want: nil,
		},
		{
			// The SYN-ACK echoes the last SYN's TSval.
			name: "syn-retransmitted/timestamp-only", cfg: Config{Methods: onlyTS},
			steps: synRetrans(ts), want: []msample{ts20},
		},
		{
			// Karn: the SYN-ACK acknowledges a retransmitted SYN.
			name: "syn-retransmitted/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: synRetrans(nots), want: nil,
		},
		{
			// The SYN-ACK answers the first SYN, as its echo shows: the
			// timestamp estimator times it from that SYN.
			name: "syn-retransmitted/timestamp-only/answer-to-first", cfg: Config{Methods: onlyTS},
			steps: []step{
				stepOut(0, withTS(segSYN(lISN), 100, 0)),
				stepOut(ms(1000), withTS(segSYN(lISN), 1100, 0)),
				stepIn(ms(1005), withTS(segSYNACK(rISN, lISN+1), 7, 100)),
			},
			want: []msample{{MethodTimestamp, ms(1005)}},
		},
		{name: "syn-ack-retransmitted", steps: synAckRetrans(ts), want: []msample{hs20}},
		{name: "syn-ack-retransmitted/no-ts", steps: synAckRetrans(nots), want: nil},
		{
			name: "syn-ack-retransmitted/timestamp-only", cfg: Config{Methods: onlyTS},
			steps: synAckRetrans(ts), want: []msample{ts20},
		},
		{
			name: "syn-ack-retransmitted/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: synAckRetrans(nots), want: nil,
		},
		{
			// A second SYN-ACK from the peer (its retransmission) gives no
			// second sample.
			name: "duplicate-syn-ack",
			steps: concat(ts.activeOpen(ms(20)), []step{
				stepIn(ms(25), ts.tsOpt(segSYNACK(rISN, lISN+1), ts.rts.at(ms(15)), ts.lts.at(0))),
			}),
			want: []msample{hs20},
		},
		{
			// An RST in answer to the SYN is no sample.
			name: "syn-answered-by-rst",
			steps: []step{
				stepOut(0, segSYN(lISN)),
				stepIn(ms(20), tseg{seq: 0, ack: lISN + 1, flags: FlagRST | FlagACK}),
			},
			want: nil,
		},
	})
}

// withTS returns s with the timestamp option.
func withTS(s tseg, val, ecr uint32) tseg {
	s.ts, s.tsval, s.tsecr = true, val, ecr
	return s
}

func TestBulk(t *testing.T) {
	ts, nots := script(true), script(false)
	// Twelve segments from 20.75 ms, 0.25 ms apart, while the TSval clock
	// ticks every millisecond: TSvals 120, 121 ×4, 122 ×4, 123 ×3. The peer
	// acknowledges every second segment 20 ms after it was sent and echoes
	// the first segment of each pair (segments 0, 2, 4...).
	//
	// The true RTT of each echoed segment is 20.25 ms: 20 ms of path plus
	// the 0.25 ms the peer waited for the pair's second segment. Pairs 1,
	// 3 and 5 echo a TSval that an earlier segment (the previous pair's
	// second) already carried: timing from the first segment with that
	// TSval would give 20.5 ms; the record at the previous ACK gives the
	// true 20.25 ms. Pairs 2 and 4 echo a TSval already sampled: no
	// sample. Without timestamps, each ACK exactly covers its pair's
	// second segment, sent 20 ms earlier (as Wireshark's ack_rtt).
	bulk := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), sc.bulk(ms(20.75), ms(0.25), ms(20), 12))
	}
	ts2025 := msample{MethodTimestamp, ms(20.25)}
	// gso is bulk as a sender with TSO/GSO captures it: four super-segments
	// of 3 MSS each, 1 ms apart, each with one TSval (120-123). On the
	// wire they are MSS-sized segments, which the peer acknowledges every
	// second one, 20 ms after their super-segment was sent, echoing the
	// TSval of the segment that holds its previous ACK (RFC 7323 §4.3:
	// SEG.SEQ <= Last.ACK.sent). ACKs at 2, 6, 8 and 12 MSS echo new TSvals
	// (super-segments 0-3); the ACKs at 6 and 12 MSS follow ACKs that fell
	// inside super-segments 1 and 3 (at 4 and 10 MSS). Without
	// timestamps, only the ACKs at 6 and 12 MSS end a super-segment.
	gso := func(sc rttScript) []step {
		steps := sc.activeOpen(ms(20))
		sendAt := func(k int) time.Duration { return ms(20.75) + time.Duration(k)*time.Millisecond }
		for k := range 4 {
			s := sc.bulkSeg(3*k, sendAt(k))
			s.payload = 3 * mss
			steps = append(steps, stepOut(sendAt(k), s))
		}
		for j := 1; j <= 6; j++ {
			at := sendAt((2*j-1)/3) + ms(20)
			echo := sc.lts.at(sendAt(2 * (j - 1) / 3))
			steps = append(steps, stepIn(at, sc.bulkAck(2*j, at, echo)))
		}
		return byTime(steps)
	}
	runRTTCases(t, []rttCase{
		{
			name: "ts/gso", steps: gso(ts),
			want: append([]msample{hs20}, repeat(4, ts20)...),
		},
		{
			name: "no-ts/gso", steps: gso(nots),
			want: append([]msample{hs20}, repeat(2, sa20)...),
		},
		{
			name: "ts/delayed-ack/shared-tsval", steps: bulk(ts),
			want: append([]msample{hs20}, repeat(4, ts2025)...),
		},
		{
			name: "no-ts/delayed-ack", steps: bulk(nots),
			want: append([]msample{hs20}, repeat(6, sa20)...),
		},
		{
			// A timestamp flow timed by sequence numbers alone: the SYN
			// too, since the handshake method is off.
			name: "ts/seqack-only", cfg: Config{Methods: onlySeqAck}, steps: bulk(ts),
			want: repeat(7, sa20),
		},
		{
			name: "ts/timestamp-only", cfg: Config{Methods: onlyTS}, steps: bulk(ts),
			want: append([]msample{ts20}, repeat(4, ts2025)...),
		},
		{
			// A timestamp flow is timed by timestamps only, never by both.
			name: "ts/timestamp+seqack", cfg: Config{Methods: tsAndSeqAck}, steps: bulk(ts),
			want: append([]msample{ts20}, repeat(4, ts2025)...),
		},
		{name: "ts/handshake-only", cfg: Config{Methods: onlyHandshake}, steps: bulk(ts), want: []msample{hs20}},
		{
			name: "no-ts/timestamp-only", cfg: Config{Methods: onlyTS}, steps: bulk(nots), want: nil,
		},
		{
			// Segments 1 ms apart: each has its own TSval, and each echo
			// names the pair's first segment, sent 1 ms before the second.
			name:  "ts/distinct-tsvals",
			steps: concat(ts.activeOpen(ms(20)), ts.bulk(ms(21), ms(1), ms(20), 8)),
			want:  append([]msample{hs20}, repeat(4, msample{MethodTimestamp, ms(21)})...),
		},
		{
			// Capture starts mid-flow: no handshake, no ACK seen before the
			// first echo, so the first record with the echoed TSval is
			// used.
			name:  "ts/mid-flow",
			steps: ts.bulk(ms(20.75), ms(0.25), ms(20), 12),
			want:  repeat(4, ts2025),
		},
	})
}

func TestRequestResponse(t *testing.T) {
	ts, nots := script(true), script(false)
	starts := []time.Duration{ms(100), ms(1100), ms(2100), ms(2150)}
	// keepalive is a 1-byte keepalive (Windows and some middleboxes send
	// one) at 600 ms: the last byte already acknowledged, sent again,
	// answered by a duplicate ACK that echoes it.
	keepalive := func(sc rttScript) []step {
		end := sc.lisn + 1 + reqLen
		return []step{
			stepOut(ms(600), sc.tsOpt(segData(end-1, sc.risn+1+respLen, 1), sc.lts.at(ms(600)), sc.rts.at(ms(110)))),
			stepIn(ms(620), sc.tsOpt(segACK(sc.risn+1+respLen, end), sc.rts.at(ms(610)), sc.lts.at(ms(600)))),
		}
	}
	runRTTCases(t, []rttCase{
		{
			name:  "client/ts",
			steps: concat(ts.activeOpen(ms(20)), ts.requests(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(4, ts20)...),
		},
		{
			name:  "client/no-ts",
			steps: concat(nots.activeOpen(ms(20)), nots.requests(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(4, sa20)...),
		},
		{
			name: "client/ts/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: concat(ts.activeOpen(ms(20)), ts.requests(ms(20), starts...)),
			want:  repeat(5, sa20),
		},
		{
			name:  "server/ts",
			steps: concat(ts.passiveOpen(ms(20)), ts.responses(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(4, ts20)...),
		},
		{
			name:  "server/no-ts",
			steps: concat(nots.passiveOpen(ms(20)), nots.responses(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(4, sa20)...),
		},
		{
			// A LAN peer answers in 0.1 ms, and requests go 0.3 ms apart:
			// all three carry one TSval. Only the first echo of a TSval
			// gives a sample; sequence numbers time all three.
			name:  "client/ts/sub-tick",
			steps: concat(ts.activeOpen(ms(0.1)), ts.requests(ms(0.1), ms(100), ms(100.3), ms(100.6))),
			want:  []msample{{MethodHandshake, ms(0.1)}, {MethodTimestamp, ms(0.1)}},
		},
		{
			name:  "client/no-ts/sub-tick",
			steps: concat(nots.activeOpen(ms(0.1)), nots.requests(ms(0.1), ms(100), ms(100.3), ms(100.6))),
			want:  append([]msample{{MethodHandshake, ms(0.1)}}, repeat(3, msample{MethodSeqAck, ms(0.1)})...),
		},
		{
			// The keepalive resends an acknowledged byte: the next
			// request's ACK covers no unacknowledged retransmitted byte,
			// so Karn's rule does not apply to it.
			name:  "client/no-ts/keepalive",
			steps: byTime(nots.activeOpen(ms(20)), nots.requests(ms(20), starts...), keepalive(nots)),
			want:  append([]msample{hs20}, repeat(4, sa20)...),
		},
		{
			// The keepalive's echo names a segment that starts before the
			// previous ACK: no sample, and none lost after it.
			name:  "client/ts/keepalive",
			steps: byTime(ts.activeOpen(ms(20)), ts.requests(ms(20), starts...), keepalive(ts)),
			want:  append([]msample{hs20}, repeat(4, ts20)...),
		},
	})
}

func TestRetransmissions(t *testing.T) {
	ts, nots := script(true), script(false)
	seg := func(sc rttScript, i int, at time.Duration) step { return stepOut(at, sc.bulkSeg(i, at)) }
	// fastRetransmit: segments 0-2 at 100, 101, 102 ms; segment 1 is lost.
	// The peer acknowledges 0, then sends a duplicate ACK with a SACK block
	// for 2; segment 1 is resent at 300 ms and the ACK of all three comes
	// at 320 ms, echoing the retransmission's TSval (it starts at the
	// peer's last ACK). Segment 3 follows at 400 ms.
	fastRetransmit := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)), seg(sc, 1, ms(101)), seg(sc, 2, ms(102)),
			stepIn(ms(120), sc.bulkAck(1, ms(120), sc.lts.at(ms(100)))),
			stepIn(ms(122), withSACK(sc.bulkAck(1, ms(122), sc.lts.at(ms(100))),
				SACKBlock{lISN + 1 + 2*mss, lISN + 1 + 3*mss})),
			seg(sc, 1, ms(300)),
			stepIn(ms(320), sc.bulkAck(3, ms(320), sc.lts.at(ms(300)))),
			seg(sc, 3, ms(400)),
			stepIn(ms(420), sc.bulkAck(4, ms(420), sc.lts.at(ms(400)))),
		})
	}
	// rto: the only segment outstanding is resent at 300 ms and acknowledged
	// at 320 ms; the next one goes at 400 ms.
	rto := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)),
			seg(sc, 0, ms(300)),
			stepIn(ms(320), sc.bulkAck(1, ms(320), sc.lts.at(ms(300)))),
			seg(sc, 1, ms(400)),
			stepIn(ms(420), sc.bulkAck(2, ms(420), sc.lts.at(ms(400)))),
		})
	}
	// spurious: segment 0 is resent at 110 ms although it arrived; the ACK
	// of the original comes at 120 ms echoing it, then a D-SACK duplicate
	// ACK for the copy, echoing the copy.
	spurious := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)),
			seg(sc, 0, ms(110)),
			stepIn(ms(120), sc.bulkAck(1, ms(120), sc.lts.at(ms(100)))),
			stepIn(ms(130), withSACK(sc.bulkAck(1, ms(130), sc.lts.at(ms(110))), SACKBlock{lISN + 1, lISN + 1 + mss})),
			seg(sc, 1, ms(200)),
			stepIn(ms(220), sc.bulkAck(2, ms(220), sc.lts.at(ms(200)))),
		})
	}
	runRTTCases(t, []rttCase{
		{
			// The ACK at 320 ms covers retransmitted bytes: no sample
			// (Wireshark would time it from segment 2: 218 ms).
			name: "fast-retransmit/no-ts", steps: fastRetransmit(nots),
			want: []msample{hs20, sa20, sa20},
		},
		{
			// The retransmission's new TSval times it correctly.
			name: "fast-retransmit/ts", steps: fastRetransmit(ts),
			want: []msample{hs20, ts20, ts20, ts20},
		},
		{
			name: "fast-retransmit/ts/seqack-only", cfg: Config{Methods: onlySeqAck}, steps: fastRetransmit(ts),
			want: []msample{sa20, sa20, sa20},
		},
		{
			// Wireshark would time the ACK from the original: 220 ms.
			name: "rto/no-ts", steps: rto(nots), want: []msample{hs20, sa20},
		},
		{name: "rto/ts", steps: rto(ts), want: []msample{hs20, ts20, ts20}},
		{
			// The ACK may answer either copy: no sample.
			name: "spurious/no-ts", steps: spurious(nots), want: []msample{hs20, sa20},
		},
		{
			// The echo says which copy the ACK answers: the original.
			name: "spurious/ts", steps: spurious(ts), want: []msample{hs20, ts20, ts20},
		},
	})
}

func TestWrap(t *testing.T) {
	// Sequence numbers wrap during the bulk transfer (4 KiB before 2^32).
	seqWrap := func(ts bool) rttScript {
		sc := script(ts)
		sc.lisn, sc.risn = 0xffff_f000, 0xffff_fff0
		return sc
	}
	// The ISN is 2^32-1: the SYN ends at 0.
	isnMax := script(false)
	isnMax.lisn, isnMax.risn = 0xffff_ffff, 0xffff_ffff
	// Both TSval clocks wrap between the first and second request.
	tsWrap := script(true)
	tsWrap.lts, tsWrap.rts = 0xffff_ffff-150, 0xffff_ffff-120
	starts := []time.Duration{ms(100), ms(1100), ms(2100)}
	runRTTCases(t, []rttCase{
		{
			name:  "seq/no-ts",
			steps: concat(seqWrap(false).activeOpen(ms(20)), seqWrap(false).bulk(ms(21), ms(1), ms(20), 10)),
			want:  append([]msample{hs20}, repeat(5, sa20)...),
		},
		{
			name:  "seq/ts",
			steps: concat(seqWrap(true).activeOpen(ms(20)), seqWrap(true).bulk(ms(21), ms(1), ms(20), 10)),
			want:  append([]msample{hs20}, repeat(5, msample{MethodTimestamp, ms(21)})...),
		},
		{
			name:  "isn-max/no-ts",
			steps: concat(isnMax.activeOpen(ms(20)), isnMax.requests(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(3, sa20)...),
		},
		{
			name: "isn-max/seqack-only", cfg: Config{Methods: onlySeqAck},
			steps: concat(isnMax.activeOpen(ms(20)), isnMax.requests(ms(20), starts...)),
			want:  repeat(4, sa20),
		},
		{
			name:  "tsval",
			steps: concat(tsWrap.activeOpen(ms(20)), tsWrap.requests(ms(20), starts...)),
			want:  append([]msample{hs20}, repeat(3, ts20)...),
		},
		{
			name: "tsval/timestamp-only", cfg: Config{Methods: onlyTS},
			steps: concat(tsWrap.activeOpen(ms(20)), tsWrap.requests(ms(20), starts...)),
			want:  repeat(4, ts20),
		},
	})
}

func TestReorderingAndDuplicates(t *testing.T) {
	ts, nots := script(true), script(false)
	seg := func(sc rttScript, i int, at time.Duration) step { return stepOut(at, sc.bulkSeg(i, at)) }
	// reordered: segments 0-2 at 100, 100.1 and 100.2 ms; segment 0 is
	// delayed and arrives after 1. The peer sends a duplicate ACK with a
	// SACK block for 1, then ACKs 0-1 when 0 arrives (20.05 ms after 1 was
	// sent) and 2. The echo of the ACK of 0-1 names segment 0 (the one at
	// the peer's last ACK).
	reordered := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)), seg(sc, 1, ms(100.1)), seg(sc, 2, ms(100.2)),
			stepIn(ms(120.1), withSACK(sc.bulkAck(0, ms(120.1), sc.lts.at(ms(20))), SACKBlock{lISN + 1 + mss, lISN + 1 + 2*mss})),
			stepIn(ms(120.15), sc.bulkAck(2, ms(120.15), sc.lts.at(ms(100)))),
			stepIn(ms(120.2), sc.bulkAck(3, ms(120.2), sc.lts.at(ms(100.2)))),
		})
	}
	// ackReordered: the ACKs of segments 0 and 1 arrive in the wrong order.
	// Segments are 1 ms apart, so each has its own TSval.
	ackReordered := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)), seg(sc, 1, ms(101)),
			stepIn(ms(121), sc.bulkAck(2, ms(121), sc.lts.at(ms(101)))),
			stepIn(ms(121.5), sc.bulkAck(1, ms(121.5), sc.lts.at(ms(100)))),
		})
	}
	// duplicated: every ACK of a request/response exchange is captured
	// twice, as on a capture of both legs of a bridge.
	duplicated := func(sc rttScript) []step {
		var steps []step
		for _, s := range concat(sc.activeOpen(ms(20)), sc.requests(ms(20), ms(100), ms(200))) {
			steps = append(steps, s)
			if s.in {
				s.at += ms(0.01)
				steps = append(steps, s)
			}
		}
		return steps
	}
	// sackEdge: segments 0-3; 1 is lost. SACK blocks whose right edges are
	// exactly the ends of segments 2 and 3 time nothing; only cumulative
	// ACKs do.
	sackEdge := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)), seg(sc, 1, ms(101)), seg(sc, 2, ms(102)), seg(sc, 3, ms(103)),
			stepIn(ms(120), sc.bulkAck(1, ms(120), sc.lts.at(ms(100)))),
			stepIn(ms(122), withSACK(sc.bulkAck(1, ms(122), sc.lts.at(ms(100))), SACKBlock{lISN + 1 + 2*mss, lISN + 1 + 3*mss})),
			stepIn(ms(123), withSACK(sc.bulkAck(1, ms(123), sc.lts.at(ms(100))), SACKBlock{lISN + 1 + 2*mss, lISN + 1 + 4*mss})),
		})
	}
	runRTTCases(t, []rttCase{
		{
			// As Wireshark's ack_rtt: each cumulative ACK from the segment
			// whose end it covers; the duplicate ACK gives nothing.
			name: "data/no-ts", steps: reordered(nots),
			want: []msample{hs20, {MethodSeqAck, ms(20.05)}, sa20},
		},
		{
			name: "data/ts", steps: reordered(ts),
			// All three segments carry one TSval, so the ACK of segment 2
			// echoes a TSval already sampled.
			want: []msample{hs20, {MethodTimestamp, ms(20.15)}},
		},
		{
			name: "acks/no-ts", steps: ackReordered(nots),
			want: []msample{hs20, sa20},
		},
		{
			// The first ACK to arrive echoes segment 1, which starts at an
			// ACK not seen yet: it is timed from the first segment sent
			// with that TSval, segment 1 itself; the older ACK then echoes
			// a record already dropped.
			name: "acks/ts", steps: ackReordered(ts),
			want: []msample{hs20, ts20},
		},
		{
			name: "duplicate-acks/no-ts", steps: duplicated(nots),
			want: []msample{hs20, sa20, sa20},
		},
		{
			name: "duplicate-acks/ts", steps: duplicated(ts),
			want: []msample{hs20, ts20, ts20},
		},
		{name: "sack/no-ts", steps: sackEdge(nots), want: []msample{hs20, sa20}},
		{name: "sack/ts", steps: sackEdge(ts), want: []msample{hs20, ts20}},
	})
}

func TestIPv6(t *testing.T) {
	const local, remote = "[2001:db8::1]:40000", "[2001:db8:ffff::7]:443"
	hopByHop := func(steps []step) []step {
		for i := range steps {
			steps[i].seg.ipv6ExtHopByHop = true
		}
		return steps
	}
	ts, nots := script(true), script(false)
	starts := []time.Duration{ms(100), ms(1100)}
	runRTTCases(t, []rttCase{
		{
			name: "ts", local: local, remote: remote,
			steps: concat(ts.activeOpen(ms(20)), ts.requests(ms(20), starts...)),
			want:  []msample{hs20, ts20, ts20},
		},
		{
			name: "no-ts", local: local, remote: remote,
			steps: concat(nots.activeOpen(ms(20)), nots.requests(ms(20), starts...)),
			want:  []msample{hs20, sa20, sa20},
		},
		{
			name: "server/hop-by-hop", local: local, remote: remote,
			steps: hopByHop(concat(ts.passiveOpen(ms(20)), ts.responses(ms(20), starts...))),
			want:  []msample{hs20, ts20, ts20},
		},
		{
			name: "bulk/ts", local: local, remote: remote,
			steps: concat(ts.activeOpen(ms(20)), ts.bulk(ms(20.75), ms(0.25), ms(20), 12)),
			want:  append([]msample{hs20}, repeat(4, msample{MethodTimestamp, ms(20.25)})...),
		},
	})
}

// TestMaxTimedSegments checks the records of a large flight: n segments
// gap apart, each acknowledged on its own 20 ms after it was sent (each ACK
// echoes its segment). Up to MaxTimedSegments in flight, every segment is
// timed; beyond, the records are thinned, and the samples still come from
// every part of the flight, not only its first segments.
func TestMaxTimedSegments(t *testing.T) {
	flight := func(sc rttScript, n int, gap time.Duration) []step {
		var steps []step
		sendAt := func(i int) time.Duration { return ms(100) + time.Duration(i)*gap }
		for i := range n {
			steps = append(steps, stepOut(sendAt(i), sc.bulkSeg(i, sendAt(i))))
			at := sendAt(i) + ms(20)
			steps = append(steps, stepIn(at, sc.bulkAck(i+1, at, sc.lts.at(sendAt(i)))))
		}
		return byTime(script(sc.ts).activeOpen(ms(20)), steps)
	}
	tests := []struct {
		name       string
		ts         bool
		n          int
		gap        time.Duration
		noRoom     bool // the pool lends no room beyond the inline records
		minSamples int
	}{
		// 0.1 ms apart, 200 in flight: the borrowed room of 64 records,
		// thinned.
		{name: "no-ts/all-timed", n: MaxTimedSegments, gap: ms(0.1), minSamples: MaxTimedSegments},
		{name: "no-ts/thinned", n: 1000, gap: ms(0.1), minSamples: 1000 / 4},
		{name: "no-ts/thinned-inline-only", n: 1000, gap: ms(0.1), noRoom: true, minSamples: 1000 / 32},
		// 1 ms apart, a TSval each: 20 in flight, all timed.
		{name: "ts/all-timed", ts: true, n: 200, gap: ms(1), minSamples: 200},
		// 0.25 ms apart, four segments per TSval: one sample per TSval
		// (each echo is sampled once).
		{name: "ts/thinned", ts: true, n: 1000, gap: ms(0.25), minSamples: 250 * 3 / 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newTestEngine(t, Config{}, "192.0.2.1")
			if tc.noRoom {
				e.flows.pool.max = 0
			}
			newConn(t, e, rttLocal, rttRemote).play(flight(script(tc.ts), tc.n, tc.gap))
			var got []Sample
			for _, s := range rec.samples {
				if s.Method != MethodHandshake {
					got = append(got, s)
				}
			}
			if len(got) < tc.minSamples {
				t.Errorf("%d samples of %d segments, want at least %d", len(got), tc.n, tc.minSamples)
			}
			// Spread over the flight: samples in each quarter of it.
			start, span := t0.Add(ms(120)), time.Duration(tc.n)*tc.gap
			var quarters [4]int
			for _, s := range got {
				q := min(int(4*s.Time.Sub(start)/span), 3)
				quarters[max(q, 0)]++
				if s.RTT != ms(20) && !(tc.ts && s.RTT >= ms(20) && s.RTT < ms(21)) {
					t.Fatalf("sample %v at %v, want 20 ms (with timestamps, less than a TSval tick more)", s.RTT, s.Time)
				}
			}
			for i, n := range quarters {
				if n < tc.minSamples/8 {
					t.Errorf("samples per quarter of the flight %v: quarter %d has too few", quarters, i+1)
				}
			}
			t.Logf("%d samples of %d segments; per quarter of the flight %v", len(got), tc.n, quarters)
		})
	}
}

func TestSampleDiscards(t *testing.T) {
	nots, ts := script(false), script(true)
	seg := func(sc rttScript, i int, at time.Duration) step { return stepOut(at, sc.bulkSeg(i, at)) }
	// late: segment 0 at 100 ms is acknowledged at ack; segment 1 at next
	// is acknowledged 20 ms later.
	late := func(sc rttScript, ack, next time.Duration) []step {
		return concat(sc.activeOpen(ms(20)), []step{
			seg(sc, 0, ms(100)),
			stepIn(ack, sc.bulkAck(1, ack, sc.lts.at(ms(100)))),
			seg(sc, 1, next),
			stepIn(next+ms(20), sc.bulkAck(2, next+ms(20), sc.lts.at(next))),
		})
	}
	runRTTCases(t, []rttCase{
		{
			// The capture clock steps back 5 ms before the ACK arrives.
			name: "time-backwards/no-ts", steps: late(nots, ms(95), ms(200)),
			want: []msample{hs20, sa20}, wantDiscarded: 1,
		},
		{
			name: "time-backwards/ts", steps: late(ts, ms(95), ms(200)),
			want: []msample{hs20, ts20}, wantDiscarded: 1,
		},
		{
			name: "zero-rtt-kept", steps: late(nots, ms(100), ms(200)),
			want: []msample{hs20, {MethodSeqAck, 0}, sa20},
		},
		{
			name: "above-max-rtt", cfg: Config{MaxRTT: time.Second},
			steps: late(nots, ms(100)+time.Second+1, ms(2000)),
			want:  []msample{hs20, sa20}, wantDiscarded: 1,
		},
		{
			name: "at-max-rtt-kept", cfg: Config{MaxRTT: time.Second},
			steps: late(ts, ms(100)+time.Second, ms(2000)),
			want:  []msample{hs20, {MethodTimestamp, time.Second}, ts20},
		},
		{
			name: "above-default-max-rtt", steps: late(nots, ms(100)+SanityMaxRTT+1, 70*time.Second),
			want: []msample{hs20, sa20}, wantDiscarded: 1,
		},
		{
			name: "handshake-above-max-rtt", cfg: Config{MaxRTT: 10 * time.Millisecond},
			steps: nots.activeOpen(ms(20)), wantDiscarded: 1,
		},
	})
}
