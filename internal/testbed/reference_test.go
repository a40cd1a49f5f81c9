package testbed

import (
	"bufio"
	"bytes"
	"maps"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	refLocal  = netip.MustParseAddrPort("192.0.2.1:40000")
	refRemote = netip.MustParseAddrPort("192.0.2.2:80")
	refT0     = time.Unix(1_800_000_000, 0)
)

// fr builds a frame at ms milliseconds: out from the host, or in from the
// peer. A negative tsval means no timestamps option.
type fr struct {
	ms       float64
	out      bool
	flags    string // any of "S" (SYN), "A" (ACK), "R" (RST)
	seq, len uint32
	ack      uint32
	tsval    int64
	tsecr    uint32
}

func (f fr) frame() Frame {
	s := Segment{Time: refT0.Add(time.Duration(f.ms * float64(time.Millisecond))), Src: refRemote, Dst: refLocal, Seq: f.seq, End: f.seq + f.len}
	if f.out {
		s.Src, s.Dst = refLocal, refRemote
	}
	if strings.Contains(f.flags, "S") {
		s.SYN = true
		s.End++
	}
	s.RST = strings.Contains(f.flags, "R")
	if strings.Contains(f.flags, "A") {
		s.Ack, s.HasAck = f.ack, true
	}
	if f.tsval >= 0 {
		s.TSval, s.TSecr, s.HasTS = uint32(f.tsval), f.tsecr, true
	}
	return Frame{Segment: s, Out: f.out}
}

type refWant struct {
	method RefMethod
	rtt    float64 // ms
}

func TestReferenceSamples(t *testing.T) {
	const noTS = -1
	// A connection the host opens, ISN 1000 (data from 1001), peer ISN 5000.
	open := []fr{
		{ms: 0, out: true, flags: "S", seq: 1000, tsval: noTS},
		{ms: 10, flags: "SA", seq: 5000, ack: 1001, tsval: noTS},
		{ms: 10.1, out: true, flags: "A", seq: 1001, ack: 5001, tsval: noTS},
	}
	openTS := []fr{
		{ms: 0, out: true, flags: "S", seq: 1000, tsval: 100},
		{ms: 10, flags: "SA", seq: 5000, ack: 1001, tsval: 900, tsecr: 100},
		{ms: 10.1, out: true, flags: "A", seq: 1001, ack: 5001, tsval: 110, tsecr: 900},
	}
	tests := []struct {
		name   string
		frames []fr
		want   []refWant
	}{
		{
			name:   "handshake",
			frames: open,
			want:   []refWant{{RefHandshake, 10}},
		},
		{
			name: "handshake-passive",
			frames: []fr{
				{ms: 0, flags: "S", seq: 5000, tsval: noTS},
				{ms: 0.1, out: true, flags: "SA", seq: 1000, ack: 5001, tsval: noTS},
				{ms: 10.1, flags: "A", seq: 5001, ack: 1001, tsval: noTS},
			},
			want: []refWant{{RefHandshake, 10}},
		},
		{
			name: "syn-resent-without-timestamps",
			frames: []fr{
				{ms: 0, out: true, flags: "S", seq: 1000, tsval: noTS},
				{ms: 1000, out: true, flags: "S", seq: 1000, tsval: noTS},
				{ms: 1010, flags: "SA", seq: 5000, ack: 1001, tsval: noTS},
			},
		},
		{
			name: "syn-resent-echo-names-the-first",
			frames: []fr{
				{ms: 0, out: true, flags: "S", seq: 1000, tsval: 100},
				{ms: 1000, out: true, flags: "S", seq: 1000, tsval: 1100},
				{ms: 1050, flags: "SA", seq: 5000, ack: 1001, tsval: 900, tsecr: 100},
			},
			want: []refWant{{RefHandshake, 1050}},
		},
		{
			name: "seqack-exact-end",
			frames: append(slices.Clone(open),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 20.3, out: true, flags: "A", seq: 1101, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 30.3, flags: "A", seq: 5001, ack: 1201, tsval: noTS},
				fr{ms: 30.4, flags: "A", seq: 5001, ack: 1201, tsval: noTS}, // duplicate
			),
			want: []refWant{{RefHandshake, 10}, {RefSeqAck, 10}},
		},
		{
			name: "seqack-no-exact-end",
			frames: append(slices.Clone(open),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 30, flags: "A", seq: 5001, ack: 1051, tsval: noTS},
			),
			want: []refWant{{RefHandshake, 10}},
		},
		{
			name: "seqack-karn",
			frames: append(slices.Clone(open),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 20.3, out: true, flags: "A", seq: 1101, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 40, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS}, // resent
				fr{ms: 50, flags: "A", seq: 5001, ack: 1201, tsval: noTS},                      // covers it
				fr{ms: 60, out: true, flags: "A", seq: 1201, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 70, flags: "A", seq: 5001, ack: 1301, tsval: noTS},
			),
			want: []refWant{{RefHandshake, 10}, {RefSeqAck, 10}},
		},
		{
			name: "timestamp-from-the-segment-at-the-previous-ack",
			// Two segments in the same TSval tick, acknowledged together:
			// the peer echoes the first (at its previous ACK, 1001).
			frames: append(slices.Clone(openTS),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: 120, tsecr: 900},
				fr{ms: 20.3, out: true, flags: "A", seq: 1101, len: 100, ack: 5001, tsval: 120, tsecr: 900},
				fr{ms: 30.3, flags: "A", seq: 5001, ack: 1201, tsval: 910, tsecr: 120},
				// The next two segments, still in tick 120: the echo was
				// timed already.
				fr{ms: 20.6, out: true, flags: "A", seq: 1201, len: 100, ack: 5001, tsval: 120, tsecr: 900},
				fr{ms: 20.9, out: true, flags: "A", seq: 1301, len: 100, ack: 5001, tsval: 121, tsecr: 900},
				fr{ms: 30.9, flags: "A", seq: 5001, ack: 1401, tsval: 911, tsecr: 120},
				// Then a new tick, at the previous ACK 1401.
				fr{ms: 40, out: true, flags: "A", seq: 1401, len: 100, ack: 5001, tsval: 140, tsecr: 911},
				fr{ms: 50.5, flags: "A", seq: 5001, ack: 1501, tsval: 921, tsecr: 140},
			),
			want: []refWant{{RefHandshake, 10}, {RefTimestamp, 10.3}, {RefTimestamp, 10.5}},
		},
		{
			name: "timestamp-echo-that-advances-nothing",
			// RFC 7323 §4: an echo in an ACK that acknowledges nothing new
			// (here the answer to a pure ACK) is no sample; the ACK of the
			// data that follows, with the same echo, is.
			frames: append(slices.Clone(openTS),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 0, ack: 5001, tsval: 130, tsecr: 900},
				fr{ms: 20.1, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: 130, tsecr: 900},
				fr{ms: 20.3, flags: "A", seq: 5001, ack: 1001, tsval: 920, tsecr: 130},
				fr{ms: 20.5, flags: "A", seq: 5001, ack: 1101, tsval: 921, tsecr: 130},
			),
			want: []refWant{{RefHandshake, 10}, {RefTimestamp, 0.4}},
		},
		{
			name: "rst-is-no-answer",
			frames: append(slices.Clone(open),
				fr{ms: 20, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				fr{ms: 30, flags: "RA", seq: 5001, ack: 1101, tsval: noTS},
			),
			want: []refWant{{RefHandshake, 10}},
		},
		{
			name: "new-connection-on-the-same-ends",
			frames: append(slices.Clone(open),
				fr{ms: 100, out: true, flags: "S", seq: 9000, tsval: noTS},
				fr{ms: 105, flags: "SA", seq: 7000, ack: 9001, tsval: noTS},
			),
			want: []refWant{{RefHandshake, 10}, {RefHandshake, 5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var frames []Frame
			for _, f := range tt.frames {
				frames = append(frames, f.frame())
			}
			var got []refWant
			for _, s := range ReferenceSamples(frames) {
				if s.Local != refLocal || s.Remote != refRemote || s.Time.Sub(s.Sent) != s.RTT {
					t.Errorf("sample %+v: wrong ends or RTT", s)
				}
				got = append(got, refWant{s.Method, math.Round(float64(s.RTT)/1e3) / 1e3})
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(refWant{})); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMedianRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		in := make([]time.Duration, rng.IntN(6))
		maybe := make([]time.Duration, rng.IntN(6))
		for _, s := range [][]time.Duration{in, maybe} {
			for i := range s {
				s[i] = time.Duration(rng.IntN(20))
			}
		}
		lo, hi := MedianRange(in, maybe)
		// Every set of in and some of maybe.
		var wantLo, wantHi time.Duration = math.MaxInt64, math.MinInt64
		for mask := range 1 << len(maybe) {
			s := slices.Clone(in)
			for i, d := range maybe {
				if mask&(1<<i) != 0 {
					s = append(s, d)
				}
			}
			if len(s) == 0 {
				continue
			}
			m := Quantile(s, 0.5)
			wantLo, wantHi = min(wantLo, m), max(wantHi, m)
		}
		if len(in)+len(maybe) == 0 {
			wantLo, wantHi = 0, 0
		}
		if lo != wantLo || hi != wantHi {
			t.Errorf("MedianRange(%v, %v) = [%v, %v], want [%v, %v]", in, maybe, lo, hi, wantLo, wantHi)
		}
	}
}

func TestQuantile(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3, 10, 9, 8, 7, 6}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.95, 10}, {0.9, 9}, {0, 1}, {1, 10}} {
		if got := Quantile(ds, tt.q); got != tt.want {
			t.Errorf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if got := Quantile(nil, 0.5); got != 0 {
		t.Errorf("Quantile(nil) = %v", got)
	}
}

func TestParseEpoch(t *testing.T) {
	for in, want := range map[string]time.Time{
		"1700000000.123456789": time.Unix(1700000000, 123456789),
		"1700000000.5":         time.Unix(1700000000, 500000000),
		"1700000000":           time.Unix(1700000000, 0),
	} {
		got, err := parseEpoch(in)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseEpoch(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"x.1", "1.1234567890", "1.x"} {
		if _, err := parseEpoch(in); err == nil {
			t.Errorf("parseEpoch(%q): no error", in)
		}
	}
}

// recordedDir holds the captures recorded over the delay line, with
// tshark's ack_rtt of each.
const recordedDir = "../../capture/testdata"

// TestReferenceRecorded checks the reference against Wireshark on the
// recorded captures: every seqack and handshake sample is tshark's
// tcp.analysis.ack_rtt for the same ACK, and but for the ACKs of bytes the
// host sent twice (karnUntimed), every ack_rtt of an ACK to the local side
// is a sample, and every timestamp sample is at least the ack_rtt of its
// ACK, as it times the segment at the previous ACK, which was sent no
// later than the one the ACK ends.
func TestReferenceRecorded(t *testing.T) {
	tsvs, err := filepath.Glob(filepath.Join(recordedDir, "*.ack_rtt.tsv"))
	if err != nil || len(tsvs) == 0 {
		t.Fatalf("no recorded captures in %s: %v", recordedDir, err)
	}
	for _, tsv := range tsvs {
		name := strings.TrimSuffix(filepath.Base(tsv), ".ack_rtt.tsv")
		t.Run(name, func(t *testing.T) {
			pcap := filepath.Join(recordedDir, name+".pcap")
			local := firstSYNSource(t, pcap)
			frames, numbers, err := ReadPcap(pcap, local)
			if err != nil {
				t.Fatal(err)
			}
			byNumber := map[int]Frame{}
			for i, f := range frames {
				byNumber[numbers[i]] = f
			}
			checkAgainstTshark(t, ReferenceSamples(frames), local, readRecordedAckRTT(t, tsv), byNumber)
		})
	}
}

// checkAgainstTshark compares reference samples with tshark's ack_rtt by
// frame number; frames maps a frame's number to the frame. Every seqack
// and handshake sample is tshark's ack_rtt on the same ACK. Unless Karn's
// rule leaves an ACK untimed (karnUntimed: it covers bytes the host sent
// twice, which tshark still times from their first transmission), every
// ack_rtt to local is a sample if its flow has no timestamps, or if it is
// the SYN-ACK, and a timestamp sample is at least the ack_rtt of its ACK.
func checkAgainstTshark(t *testing.T, ref RefSamples, local netip.Addr, acks map[int]AckRTT, frames map[int]Frame) {
	t.Helper()
	if len(ref) == 0 {
		t.Fatal("no reference samples")
	}
	untimed := karnUntimed(frames)
	number := map[int64]int{}
	tsFlow := map[netip.AddrPort]bool{}
	for n, f := range frames {
		number[f.Time.UnixNano()] = n
		if f.Out && f.HasTS {
			tsFlow[f.Src] = true
		}
	}
	sampled := map[int]bool{}
	for _, s := range ref {
		n, ok := number[s.Time.UnixNano()]
		if !ok {
			t.Errorf("%s sample %v: no frame at its time", s.Method, s.RTT)
			continue
		}
		sampled[n] = true
		a, ok := acks[n]
		if s.Method == RefTimestamp {
			if !untimed[n] && ok && s.RTT < a.RTT {
				t.Errorf("frame %d: timestamp sample %v is less than ack_rtt %v", n, s.RTT, a.RTT)
			}
			continue
		}
		if untimed[n] {
			t.Errorf("frame %d: %s sample %v on an ACK of bytes sent twice", n, s.Method, s.RTT)
			continue
		}
		if !ok {
			t.Errorf("frame %d: %s sample %v, no ack_rtt", n, s.Method, s.RTT)
			continue
		}
		if a.Dst != local || (s.RTT-a.RTT).Abs() > time.Microsecond {
			t.Errorf("frame %d: %s sample %v, ack_rtt %v to %v", n, s.Method, s.RTT, a.RTT, a.Dst)
		}
	}
	toLocal, excused := 0, 0
	for n, a := range acks {
		if a.Dst != local {
			continue
		}
		toLocal++
		if untimed[n] {
			excused++
			continue
		}
		f := frames[n]
		if !sampled[n] && (!tsFlow[f.Dst] || f.SYN) {
			t.Errorf("frame %d: ack_rtt %v, no reference sample", n, a.RTT)
		}
	}
	t.Logf("reference samples %v; tshark has ack_rtt on %d ACKs to %v, %d of them of bytes sent twice", ref.Counts(), toLocal, local, excused)
}

// karnUntimed returns the numbers of the ACKs to the host that Karn's rule
// leaves untimed: those that advance the highest ACK of their flow over a
// byte (SYN and FIN included) that the host had sent more than once by
// then. It is written apart from the reference's own rules, from the
// frames alone.
func karnUntimed(frames map[int]Frame) map[int]bool {
	numbers := slices.Collect(maps.Keys(frames))
	slices.SortFunc(numbers, func(a, b int) int { return frames[a].Time.Compare(frames[b].Time) })
	type span struct{ seq, end uint32 }
	type conn struct {
		sent   bool
		isn    uint32 // the first sequence number sent
		next   uint32 // the end of the highest segment sent
		una    uint32 // the highest ACK received, or the first sequence number sent
		resent []span // the ranges sent again
	}
	type key struct{ local, remote netip.AddrPort }
	conns := map[key]*conn{}
	out := map[int]bool{}
	for _, n := range numbers {
		f := frames[n]
		k := key{f.Src, f.Dst}
		if !f.Out {
			k = key{f.Dst, f.Src}
		}
		c := conns[k]
		if c == nil || (f.Out && f.SYN && (!c.sent || f.Seq != c.isn)) {
			c = &conn{} // a new connection on the 4-tuple
			conns[k] = c
		}
		if f.Out {
			if f.End == f.Seq {
				continue
			}
			if !c.sent {
				c.sent, c.isn, c.next, c.una = true, f.Seq, f.End, f.Seq
				continue
			}
			if seqBefore(f.Seq, c.next) {
				c.resent = append(c.resent, span{f.Seq, min32seq(f.End, c.next)})
			}
			if seqBefore(c.next, f.End) {
				c.next = f.End
			}
			continue
		}
		if !f.HasAck || !c.sent || !seqBefore(c.una, f.Ack) {
			continue
		}
		for _, r := range c.resent {
			if seqBefore(r.seq, f.Ack) && seqBefore(c.una, r.end) {
				out[n] = true
			}
		}
		c.una = f.Ack
	}
	return out
}

// min32seq returns the earlier of two sequence numbers.
func min32seq(a, b uint32) uint32 {
	if seqBefore(a, b) {
		return a
	}
	return b
}

// firstSYNSource returns the source address of the first SYN of a pcap.
func firstSYNSource(t *testing.T, pcap string) netip.Addr {
	t.Helper()
	frames, _, err := ReadPcap(pcap, netip.Addr{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if f.SYN && !f.HasAck {
			return f.Src.Addr()
		}
	}
	t.Fatalf("%s: no SYN", pcap)
	return netip.Addr{}
}

// readRecordedAckRTT reads a committed .ack_rtt.tsv: frame number, IPv4
// and IPv6 destination, ack_rtt in seconds.
func readRecordedAckRTT(t *testing.T, path string) map[int]AckRTT {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]AckRTT{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			t.Fatalf("%s: line %q: want 4 fields", path, sc.Text())
		}
		n, err1 := strconv.Atoi(f[0])
		dst, err2 := netip.ParseAddr(f[1] + f[2])
		sec, err3 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			t.Fatalf("%s: line %q: %v %v %v", path, sc.Text(), err1, err2, err3)
		}
		out[n] = AckRTT{Number: n, Dst: dst, RTT: time.Duration(math.Round(sec * 1e9))}
	}
	return out
}

// TestKarnUntimed checks the ACKs that the tshark cross-check excuses: an
// ACK is untimed when it advances over a byte the host sent twice before
// it, and only then.
func TestKarnUntimed(t *testing.T) {
	const noTS = -1
	tests := []struct {
		name    string
		frames  []fr
		untimed []int // indexes in frames
	}{
		{
			// The case that made TestReferenceAgreesWithTshark flaky under
			// a busy core: a tail-loss probe resends the FIN segment, and
			// tshark times its ACK from the first transmission.
			name: "tail-loss-probe",
			frames: []fr{
				{ms: 0, out: true, flags: "A", seq: 1001, len: 1000, ack: 5001, tsval: noTS},
				{ms: 0.1, out: true, flags: "A", seq: 2001, len: 64, ack: 5001, tsval: noTS},
				{ms: 10, flags: "A", seq: 5001, ack: 2001, tsval: noTS},
				{ms: 16, out: true, flags: "A", seq: 2001, len: 64, ack: 5001, tsval: noTS},
				{ms: 19, flags: "A", seq: 5001, ack: 2065, tsval: noTS},
			},
			untimed: []int{4},
		},
		{
			// A resent segment below the one an ACK ends still leaves it
			// untimed; the next ACK, past the resent bytes, is timed.
			name: "resent-below",
			frames: []fr{
				{ms: 0, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 0.1, out: true, flags: "A", seq: 1101, len: 100, ack: 5001, tsval: noTS},
				{ms: 5, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 10, flags: "A", seq: 5001, ack: 1201, tsval: noTS},
				{ms: 11, out: true, flags: "A", seq: 1201, len: 100, ack: 5001, tsval: noTS},
				{ms: 21, flags: "A", seq: 5001, ack: 1301, tsval: noTS},
			},
			untimed: []int{3},
		},
		{
			// Bytes resent only after the ACK that covered them change
			// nothing; a duplicate ACK advances nothing.
			name: "resent-after-ack",
			frames: []fr{
				{ms: 0, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 10, flags: "A", seq: 5001, ack: 1101, tsval: noTS},
				{ms: 11, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 12, out: true, flags: "A", seq: 1101, len: 100, ack: 5001, tsval: noTS},
				{ms: 21, flags: "A", seq: 5001, ack: 1101, tsval: noTS},
				{ms: 22, flags: "A", seq: 5001, ack: 1201, tsval: noTS},
			},
		},
		{
			name: "syn-resent",
			frames: []fr{
				{ms: 0, out: true, flags: "S", seq: 1000, tsval: noTS},
				{ms: 1000, out: true, flags: "S", seq: 1000, tsval: noTS},
				{ms: 1010, flags: "SA", seq: 5000, ack: 1001, tsval: noTS},
				{ms: 1010.1, out: true, flags: "A", seq: 1001, len: 10, ack: 5001, tsval: noTS},
				{ms: 1020, flags: "A", seq: 5001, ack: 1011, tsval: noTS},
			},
			untimed: []int{2},
		},
		{
			// A new SYN with another ISN is a new connection on the
			// 4-tuple: what the old one resent does not count.
			name: "new-connection",
			frames: []fr{
				{ms: 0, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 5, out: true, flags: "A", seq: 1001, len: 100, ack: 5001, tsval: noTS},
				{ms: 100, out: true, flags: "S", seq: 1000, tsval: noTS},
				{ms: 110, flags: "SA", seq: 7000, ack: 1001, tsval: noTS},
				{ms: 110.1, out: true, flags: "A", seq: 1001, len: 100, ack: 7001, tsval: noTS},
				{ms: 120, flags: "A", seq: 7001, ack: 1101, tsval: noTS},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames := map[int]Frame{}
			for i, f := range tc.frames {
				frames[i] = f.frame()
			}
			var got []int
			for n := range karnUntimed(frames) {
				got = append(got, n)
			}
			slices.Sort(got)
			if diff := cmp.Diff(tc.untimed, got); diff != "" {
				t.Errorf("untimed ACKs (-want +got):\n%s", diff)
			}
		})
	}
}
