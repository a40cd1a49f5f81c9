package capture

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Devices of the copy tests: a bridge and its port, on which AF_PACKET on
// "any" sees every segment of a host talking to its containers twice, and
// lo, on which it sees every segment sent and received.
var (
	brOut   = MakeDevice(5, PacketOutgoing)
	portOut = MakeDevice(6, PacketOutgoing)
	portIn  = MakeDevice(6, PacketHost)
	brIn    = MakeDevice(5, PacketHost)
	loOut   = MakeDevice(1, PacketOutgoing)
	loIn    = MakeDevice(1, PacketHost)
)

// onDevices returns steps with the outgoing ones captured on out and the
// incoming ones on in.
func onDevices(steps []step, out, in Device) []step {
	steps = slices.Clone(steps)
	for i := range steps {
		if steps[i].in {
			steps[i].dev = in
		} else {
			steps[i].dev = out
		}
	}
	return steps
}

// withCopies returns steps with a copy of every segment after lag, as
// AF_PACKET delivers it from a second device: outgoing segments copied
// from out1 to out2 and incoming ones from in1 to in2 (the lower device
// sees the incoming segment first). A lag longer than the gap between
// segments puts copies after later segments, as a queue on the lower
// device does.
func withCopies(steps []step, lag time.Duration, out1, out2, in1, in2 Device) []step {
	var all []step
	for _, s := range steps {
		first, copy := s, s
		first.dev, copy.dev = out1, out2
		if s.in {
			first.dev, copy.dev = in1, in2
		}
		copy.at += lag
		all = append(all, first, copy)
	}
	return byTime(all)
}

// TestCopies checks that a segment seen twice counts once: the samples of
// an exchange whose every frame comes twice equal those of the exchange
// seen once, and copies are counted in Stats.Copies.
func TestCopies(t *testing.T) {
	nots, ts := script(false), script(true)
	starts := make([]time.Duration, 50)
	for i := range starts {
		starts[i] = ms(100) + time.Duration(i)*ms(50)
	}
	// 1 handshake and 50 requests: the review's flow without timestamps,
	// which gave 1 sample instead of 51 when each frame came twice 3 µs
	// apart.
	reqresp := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), sc.requests(ms(20), starts...))
	}
	bulk := func(sc rttScript) []step {
		return concat(sc.activeOpen(ms(20)), sc.bulk(ms(100), ms(2), ms(20), 40))
	}
	tests := []struct {
		name   string
		cfg    Config
		steps  []step // seen once
		copies func([]step) []step
	}{
		{
			name: "unknown-device/3us/no-ts", steps: reqresp(nots),
			copies: func(s []step) []step { return withCopies(s, 3*time.Microsecond, 0, 0, 0, 0) },
		},
		{
			name: "unknown-device/3us/ts", steps: reqresp(ts),
			copies: func(s []step) []step { return withCopies(s, 3*time.Microsecond, 0, 0, 0, 0) },
		},
		{
			name: "unknown-device/3us/bulk-no-ts", steps: bulk(nots),
			copies: func(s []step) []step { return withCopies(s, 3*time.Microsecond, 0, 0, 0, 0) },
		},
		{
			name: "bridge/3us/no-ts", steps: reqresp(nots),
			copies: func(s []step) []step { return withCopies(s, 3*time.Microsecond, brOut, portOut, portIn, brIn) },
		},
		{
			// The port's queue holds the copies of outgoing segments
			// for 5 ms: 2 later segments come first.
			name: "bridge/queued/bulk-no-ts", steps: bulk(nots),
			copies: func(s []step) []step { return withCopies(s, ms(5), brOut, portOut, portIn, brIn) },
		},
		{
			name: "bridge/queued/bulk-ts", steps: bulk(ts),
			copies: func(s []step) []step { return withCopies(s, ms(5), brOut, portOut, portIn, brIn) },
		},
		{
			// lo: every segment outgoing, then incoming, on one
			// interface.
			name: "lo/no-ts", steps: reqresp(nots),
			copies: func(s []step) []step { return withCopies(s, time.Microsecond, loOut, loIn, loOut, loIn) },
		},
		{
			name: "lo/seqack-only", cfg: Config{Methods: onlySeqAck}, steps: reqresp(ts),
			copies: func(s []step) []step { return withCopies(s, time.Microsecond, loOut, loIn, loOut, loIn) },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			once, recOnce := newTestEngine(t, tc.cfg, "192.0.2.1")
			newConn(t, once, rttLocal, rttRemote).play(tc.steps)
			twice, recTwice := newTestEngine(t, tc.cfg, "192.0.2.1")
			newConn(t, twice, rttLocal, rttRemote).play(tc.copies(tc.steps))
			if len(recOnce.samples) < 20 {
				t.Fatalf("the exchange seen once gives %d samples; the test needs more", len(recOnce.samples))
			}
			if diff := cmp.Diff(recOnce.got(), recTwice.got(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("samples with copies differ from those seen once (-once +twice):\n%s", diff)
			}
			st := twice.Stats()
			if st.Copies != uint64(len(tc.steps)) || st.SamplesDiscarded != 0 {
				t.Errorf("Stats: %d copies, %d discarded; want %d copies, none discarded", st.Copies, st.SamplesDiscarded, len(tc.steps))
			}
		})
	}
}

// TestCopiesAreNotRetransmissions checks what is and is not a copy.
func TestCopiesAreNotRetransmissions(t *testing.T) {
	nots := script(false)
	data := func(at time.Duration, dev Device) step {
		s := stepOut(at, segData(lISN+1, rISN+1, reqLen))
		s.dev = dev
		return s
	}
	ack := func(at time.Duration, dev Device) step {
		s := stepIn(at, segACK(rISN+1, lISN+1+reqLen))
		s.dev = dev
		return s
	}
	open := onDevices(nots.activeOpen(ms(20)), brOut, brIn)
	tests := []struct {
		name  string
		steps []step
		want  []msample
	}{
		{
			// The handshake is timed from the SYN's first copy.
			name: "syn-copy",
			steps: []step{
				{at: 0, seg: segSYN(lISN), dev: brOut},
				{at: 3 * time.Microsecond, seg: segSYN(lISN), dev: portOut},
				{at: ms(20), in: true, seg: segSYNACK(rISN, lISN+1), dev: portIn},
				{at: ms(20) + 3*time.Microsecond, in: true, seg: segSYNACK(rISN, lISN+1), dev: brIn},
			},
			want: []msample{hs20},
		},
		{
			// The same segment again on the same device is a
			// retransmission: Karn's rule withholds the sample.
			name:  "same-device-retransmission",
			steps: append(slices.Clone(open), data(ms(100), brOut), data(ms(300), brOut), ack(ms(320), brIn)),
			want:  []msample{hs20},
		},
		{
			name:  "other-device-copy",
			steps: append(slices.Clone(open), data(ms(100), brOut), data(ms(100.003), portOut), ack(ms(120), brIn)),
			want:  []msample{hs20, sa20},
		},
		{
			// Without a device, an exact copy 3 µs later is a copy...
			name: "unknown-device-copy",
			steps: concat(nots.activeOpen(ms(20)), []step{
				stepOut(ms(100), segData(lISN+1, rISN+1, reqLen)),
				stepOut(ms(100.003), segData(lISN+1, rISN+1, reqLen)),
				stepIn(ms(120), segACK(rISN+1, lISN+1+reqLen)),
			}),
			want: []msample{hs20, sa20},
		},
		{
			// ...but 2 ms later, beyond the copy window, a
			// retransmission.
			name: "unknown-device-retransmission",
			steps: concat(nots.activeOpen(ms(20)), []step{
				stepOut(ms(100), segData(lISN+1, rISN+1, reqLen)),
				stepOut(ms(102), segData(lISN+1, rISN+1, reqLen)),
				stepIn(ms(122), segACK(rISN+1, lISN+1+reqLen)),
			}),
			want: []msample{hs20},
		},
		{
			// A flow that moves to another device for good (a route
			// change) is timed there after a second of silence.
			name:  "device-change",
			steps: append(slices.Clone(open), data(ms(2000), portOut), ack(ms(2020), portIn)),
			want:  []msample{hs20, sa20},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newTestEngine(t, Config{}, "192.0.2.1")
			newConn(t, e, rttLocal, rttRemote).play(tc.steps)
			if diff := cmp.Diff(tc.want, rec.got(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEchoAdvancesUna is the review's HTTP/2 download: on a 400 µs path,
// the local side acknowledges data with a pure ACK and 100 µs later sends
// a data segment (a WINDOW_UPDATE) with the same TSval, in the same 1 ms
// tick. The peer answers the pure ACK at once with more data, echoing that
// TSval with the same acknowledgement number; 100 µs later comes its ACK
// of the data segment. RFC 7323 takes an echo only from an ACK that
// advances SND.UNA: every sample is 400 µs.
func TestEchoAdvancesUna(t *testing.T) {
	const rtt = 400 * time.Microsecond
	var steps []step
	lseq, rseq := lISN+1, rISN+1
	tsL, tsR := uint32(1000), uint32(5000)
	at := ms(10)
	for range 20 {
		// The peer's data arrives; the local side ACKs it at once...
		steps = append(steps,
			stepIn(at, withTS(segData(rseq, lseq, 1000), tsR, tsL-1)),
			stepOut(at, withTS(segACK(lseq, rseq+1000), tsL, tsR)))
		rseq += 1000
		// ...and sends a window update 100 µs later, same TSval.
		steps = append(steps, stepOut(at+100*time.Microsecond, withTS(segData(lseq, rseq, 13), tsL, tsR)))
		// The peer's answer to the pure ACK: more data, echoing tsL,
		// acknowledging nothing new.
		steps = append(steps, stepIn(at+rtt, withTS(segData(rseq, lseq, 1000), tsR+1, tsL)))
		rseq += 1000
		// Its ACK of the window update, 400 µs after it was sent.
		steps = append(steps, stepIn(at+100*time.Microsecond+rtt, withTS(segACK(rseq, lseq+13), tsR+1, tsL)))
		lseq += 13
		// The local side acknowledges the data.
		steps = append(steps, stepOut(at+100*time.Microsecond+rtt, withTS(segACK(lseq, rseq), tsL+1, tsR+1)))
		at += ms(5)
		tsL += 5
		tsR += 5
	}
	e, rec := newTestEngine(t, Config{Methods: onlyTS}, "192.0.2.1")
	newConn(t, e, rttLocal, rttRemote).play(steps)
	got := rec.got()
	if len(got) != 20 {
		t.Errorf("%d samples, want 20 (one per window update)", len(got))
	}
	for _, s := range got {
		if s.RTT != rtt {
			t.Fatalf("samples %v, want all %v", got, rtt)
		}
	}
}

// TestHandshakeKarn is the review's retransmitted SYN: TSval 100 at 0 s,
// again with TSval 1100 at 1 s, and a SYN-ACK at 1.05 s. Only its echo
// says which SYN it answers; without timestamps nothing does.
func TestHandshakeKarn(t *testing.T) {
	syns := func(ts bool) []step {
		s := []step{stepOut(0, segSYN(lISN)), stepOut(ms(1000), segSYN(lISN))}
		if ts {
			s[0].seg = withTS(s[0].seg, 100, 0)
			s[1].seg = withTS(s[1].seg, 1100, 0)
		}
		return s
	}
	synAck := func(echo uint32) step {
		s := segSYNACK(rISN, lISN+1)
		if echo != 0 {
			s = withTS(s, 7, echo)
		}
		return stepIn(ms(1050), s)
	}
	passive := func(echo uint32) []step {
		return []step{
			stepIn(0, withTS(segSYN(rISN), 7, 0)),
			stepOut(ms(0.05), withTS(segSYNACK(lISN, rISN+1), 100, 7)),
			stepIn(ms(1000), withTS(segSYN(rISN), 1007, 0)),
			stepOut(ms(1000.05), withTS(segSYNACK(lISN, rISN+1), 1100, 1007)),
			stepIn(ms(1020.05), withTS(segACK(rISN+1, lISN+1), 1010, echo)),
		}
	}
	runRTTCases(t, []rttCase{
		{name: "answers-first", steps: append(syns(true), synAck(100)), want: []msample{{MethodHandshake, ms(1050)}}},
		{name: "answers-second", steps: append(syns(true), synAck(1100)), want: []msample{{MethodHandshake, ms(50)}}},
		{name: "echoes-neither", steps: append(syns(true), synAck(555)), want: nil},
		{name: "no-ts", steps: append(syns(false), synAck(0)), want: nil},
		{
			name: "third-transmission-answered-second",
			steps: append(syns(true),
				stepOut(ms(3000), withTS(segSYN(lISN), 3100, 0)),
				stepIn(ms(3040), withTS(segSYNACK(rISN, lISN+1), 7, 1100))),
			want: nil, // neither the first nor the latest: no record of its time
		},
		{name: "passive/answers-second", steps: passive(1100), want: []msample{{MethodHandshake, ms(20)}}},
		{name: "passive/answers-first", steps: passive(100), want: []msample{{MethodHandshake, ms(1020)}}},
	})
}

// TestEchoOfZero checks that a TSecr of 0, which no record matches, does
// not drop the records of TSvals at or above 2^31 (which compare below 0):
// the next echo still finds its segment.
func TestEchoOfZero(t *testing.T) {
	const tsv = uint32(3_000_000_000)
	steps := concat(script(false).activeOpen(ms(20)), []step{
		stepOut(ms(100), withTS(segData(lISN+1, rISN+1, reqLen), tsv, 9)),
		stepIn(ms(110), withTS(segData(rISN+1, lISN+1, 10), 10, 0)), // echoes nothing
		stepIn(ms(120), withTS(segACK(rISN+11, lISN+1+reqLen), 11, tsv)),
	})
	e, rec := newTestEngine(t, Config{Methods: onlyTS}, "192.0.2.1")
	newConn(t, e, rttLocal, rttRemote).play(steps)
	if diff := cmp.Diff([]msample{ts20}, rec.got()); diff != "" {
		t.Errorf("samples (-want +got):\n%s", diff)
	}
}

// TestClockStep drives the engine's clocks by hand: the wall clock that
// stamps packets steps while the monotonic one runs on.
func TestClockStep(t *testing.T) {
	const sec = int64(time.Second)
	wall0, mono0 := t0.UnixNano(), int64(1000*sec)
	type exchange struct {
		sent, acked int64 // capture times (wall)
		advance     [][2]int64
	}
	t.Run("forward-step-discards-straddling-sample", func(t *testing.T) {
		e, rec := newTestEngine(t, Config{Methods: onlySeqAck}, "192.0.2.1")
		c := newConn(t, e, rttLocal, rttRemote)
		e.Advance(wall0, mono0)
		c.play(onDevices(script(false).activeOpen(ms(20)), 0, 0)) // at t0: 1 sample
		c.play([]step{stepOut(ms(100), segData(lISN+1, rISN+1, reqLen))})
		// The wall clock jumps 30 s ahead at mono +150 ms; the next
		// Advance sees it.
		e.Advance(wall0+int64(ms(150))+30*sec, mono0+int64(ms(150)))
		c.play([]step{stepIn(30*time.Second+ms(120), segACK(rISN+1, lISN+1+reqLen))})
		// Samples completed in the same block as the detection, even
		// between two packets sent after the step, are discarded too.
		c.play([]step{
			stepOut(30*time.Second+ms(130), segData(lISN+1+reqLen, rISN+1, reqLen)),
			stepIn(30*time.Second+ms(140), segACK(rISN+1, lISN+1+2*reqLen)),
		})
		// After the next Advance, exchanges are timed again.
		e.Advance(wall0+int64(ms(400))+30*sec, mono0+int64(ms(400)))
		c.play([]step{
			stepOut(30*time.Second+ms(400), segData(lISN+1+2*reqLen, rISN+1, reqLen)),
			stepIn(30*time.Second+ms(420), segACK(rISN+1, lISN+1+3*reqLen)),
		})
		if diff := cmp.Diff([]msample{sa20, sa20}, rec.got()); diff != "" {
			t.Errorf("samples (-want +got):\n%s", diff)
		}
		st := e.Stats()
		if st.ClockSteps != 1 || st.SamplesDiscarded != 2 {
			t.Errorf("Stats: %d clock steps, %d samples discarded; want 1 and 2", st.ClockSteps, st.SamplesDiscarded)
		}
	})
	t.Run("expiry-on-monotonic-clock", func(t *testing.T) {
		e, _ := newTestEngine(t, Config{IdleTTL: 10 * time.Second}, "192.0.2.1")
		c := newConn(t, e, rttLocal, rttRemote)
		e.Advance(wall0, mono0)
		c.play(script(false).activeOpen(ms(20)))
		// The wall clock steps back an hour (a VM restore): packets are
		// stamped in the past, but 5 s go by on the monotonic clock, less
		// than idle_ttl: the flow and its peer stay.
		for i := int64(1); i <= 5; i++ {
			e.Advance(wall0-3600*sec+i*sec, mono0+i*sec)
		}
		c.play([]step{stepOut(-time.Hour+5*time.Second, segData(lISN+1, rISN+1, reqLen))})
		if st := e.Stats(); st.Flows != 1 || st.Peers != 1 || st.FlowsExpired != 0 {
			t.Errorf("after a step back of an hour: %v, peers %d; want the flow and peer kept", st, st.Peers)
		}
		// The wall clock steps forward a day: nothing expires early...
		e.Advance(wall0+86400*sec, mono0+6*sec)
		if st := e.Stats(); st.Flows != 1 || st.FlowsExpired != 0 {
			t.Errorf("after a step forward of a day: %v; want the flow kept", st)
		}
		// ...but idle_ttl of monotonic time after its last packet, it
		// does (the peer once its stats are drained).
		e.Drain(nil)
		e.Advance(wall0+86400*sec+10*sec, mono0+16*sec)
		if st := e.Stats(); st.Flows != 0 || st.FlowsExpired != 1 || st.Peers != 0 {
			t.Errorf("idle_ttl after the last packet: %v, peers %d; want all expired", st, st.Peers)
		}
	})
	_ = exchange{}
}

// TestHostGroups checks that the addresses of one host name are one
// series: samples to either address merge into one PeerStats tagged with
// the name, with counts added and min and max combined.
func TestHostGroups(t *testing.T) {
	res := mapResolver{"db.example": {netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("198.51.100.8")}}
	pr, err := NewPeerResolver(PeerSpec{Hosts: []string{"db.example"}, IPs: []string{"198.51.100.9"}}, res)
	if err != nil {
		t.Fatal(err)
	}
	peers, warnings := pr.Resolve(t.Context())
	if len(warnings) > 0 {
		t.Fatal(warnings)
	}
	e, _ := newTestEngine(t, Config{}, "192.0.2.1")
	e.SetNames(peers)
	sc := script(false)
	newConn(t, e, "192.0.2.1:40000", "198.51.100.7:5432").play(concat(sc.activeOpen(ms(10)), sc.requests(ms(10), ms(100))))
	newConn(t, e, "192.0.2.1:40001", "198.51.100.8:5432").play(concat(sc.activeOpen(ms(30)), sc.requests(ms(30), ms(100))))
	newConn(t, e, "192.0.2.1:40002", "198.51.100.9:5432").play(sc.activeOpen(ms(5)))
	got := e.Drain(nil)
	slices.SortFunc(got, func(a, b PeerStats) int { return a.PeerKey.Compare(b.PeerKey) })
	local := netip.MustParseAddr("192.0.2.1")
	if len(got) != 2 ||
		got[0].PeerKey != (PeerKey{Local: local, Remote: Remote{Host: "db.example"}}) || got[0].Count != 4 ||
		got[0].Min != ms(10) || got[0].Max != ms(30) ||
		got[1].PeerKey != AddrPeer(local, netip.MustParseAddr("198.51.100.9")) || got[1].Count != 1 {
		t.Errorf("drained %+v; want db.example with 4 samples from 10 to 30 ms, and 198.51.100.9 with 1", got)
	}
	if got[0].Remote.String() != "db.example" || got[1].Remote.String() != "198.51.100.9" {
		t.Errorf("dst tags %q and %q", got[0].Remote.String(), got[1].Remote.String())
	}
}

// mapResolver resolves host names from a map.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, fmt.Errorf("lookup %s: no such host", host)
}
