package capture

import (
	"bufio"
	"bytes"
	"errors"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
)

// healthCaptures are the recorded captures with tshark references of
// retransmissions, zero windows, RSTs and SYNs (testdata/README.md,
// "Congestion and TCP health references"). In each, the local side is the
// client, healthCaptureLocal.
var healthCaptures = []string{
	"lossy_ts_v4", "lossy_nots_v4", "upload_ts_v4", "zero_window_v4", "failures_v4",
	"bottleneck_ts_v4", "bottleneck_nots_v4",
}

var healthCaptureLocal = netip.MustParseAddr("192.0.2.1")

// healthRefFilters are the display filters of the NAME.SUFFIX.tsv
// references, by SUFFIX.
var healthRefFilters = []struct{ suffix, filter string }{
	{"retrans", "tcp.analysis.retransmission || tcp.analysis.fast_retransmission"},
	{"out_of_order", "tcp.analysis.out_of_order"},
	{"zero_window", "tcp.analysis.zero_window"},
	{"rst", "tcp.flags.reset == 1"},
	{"syn", "tcp.flags.syn == 1"},
}

// healthRefCommand is the exact command that wrote testdata/NAME.SUFFIX.tsv
// (tshark 4.0.17, Debian 12).
func healthRefCommand(pcap, filter string) []string {
	return []string{"tshark", "-r", pcap, "-Y", filter, "-T", "fields",
		"-e", "frame.number", "-e", "frame.time_relative", "-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport",
		"-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport", "-e", "tcp.flags"}
}

// tsharkFrame is one line of a NAME.SUFFIX.tsv reference.
type tsharkFrame struct {
	frame    int
	at       time.Duration // since the first frame
	src, dst netip.AddrPort
	flags    uint16
}

// TCP flags in tshark's tcp.flags.
const (
	tsFIN = 0x01
	tsSYN = 0x02
	tsRST = 0x04
	tsACK = 0x10
)

// readHealthRef reads testdata/NAME.SUFFIX.tsv.
func readHealthRef(tb testing.TB, name, suffix string) []tsharkFrame {
	tb.Helper()
	file := filepath.Join("testdata", name+"."+suffix+".tsv")
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var out []tsharkFrame
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 9 {
			tb.Fatalf("%s: line %q: want 9 fields", file, sc.Text())
		}
		var r tsharkFrame
		var errs []error
		var err error
		r.frame, err = strconv.Atoi(f[0])
		errs = append(errs, err)
		sec, err := strconv.ParseFloat(f[1], 64)
		errs = append(errs, err)
		r.at = time.Duration(math.Round(sec * 1e9))
		src, err := netip.ParseAddr(f[2] + f[3])
		errs = append(errs, err)
		sport, err := strconv.ParseUint(f[4], 10, 16)
		errs = append(errs, err)
		dst, err := netip.ParseAddr(f[5] + f[6])
		errs = append(errs, err)
		dport, err := strconv.ParseUint(f[7], 10, 16)
		errs = append(errs, err)
		flags, err := strconv.ParseUint(strings.TrimPrefix(f[8], "0x"), 16, 16)
		errs = append(errs, err)
		if err := errors.Join(errs...); err != nil {
			tb.Fatalf("%s: line %q: %v", file, sc.Text(), err)
		}
		r.src, r.dst = netip.AddrPortFrom(src, uint16(sport)), netip.AddrPortFrom(dst, uint16(dport))
		r.flags = uint16(flags)
		out = append(out, r)
	}
	return out
}

// healthRef is what tshark's references say a capture's counts are.
type healthRef struct {
	want TCPCounts
	// retrans and outOfOrder are the frames from the local side that
	// tshark calls retransmissions and out of order.
	retrans, outOfOrder int
}

// connKey is a connection: its local and remote endpoints.
type connKey struct{ local, remote netip.AddrPort }

// healthReference derives a capture's counts from its tshark references,
// as go-metro defines them (see health_test.go), for a replay followed by
// an expiry sweep long after the last frame:
//   - retransmits: the local side's frames that tshark calls
//     retransmissions or fast retransmissions, plus those it calls out of
//     order. tshark calls a segment sent again within a round trip of the
//     flow's highest segment "out of order" rather than a retransmission;
//     nothing is reordered before the capture point at the sender, so on
//     these captures every out-of-order frame from the local side is a
//     retransmission (testdata/README.md).
//   - zero windows: the peer's frames that tshark calls zero windows.
//   - opened: connections whose SYN from the local side a SYN-ACK
//     answered (the captures have no inbound handshake, whose completion
//     syn.tsv cannot tell).
//   - refused: a RST with ACK from the peer on a connection whose SYN
//     from the local side had no SYN-ACK.
//   - timeouts: SYNs from the local side that neither a SYN-ACK nor a
//     refusal answered within synTimeout of the first.
//   - resets: a RST on an established connection (after its SYN-ACK, or
//     with no SYN in the capture), by its sender, once per connection.
func healthReference(tb testing.TB, name string, synTimeout time.Duration) healthRef {
	tb.Helper()
	local := healthCaptureLocal
	var ref healthRef
	retrans := map[int]bool{}
	for _, f := range readHealthRef(tb, name, "retrans") {
		if f.src.Addr() == local {
			retrans[f.frame] = true
			ref.retrans++
		}
	}
	for _, f := range readHealthRef(tb, name, "out_of_order") {
		if f.src.Addr() == local && !retrans[f.frame] {
			retrans[f.frame] = true
			ref.outOfOrder++
		}
	}
	ref.want.Retransmits = uint64(len(retrans))
	for _, f := range readHealthRef(tb, name, "zero_window") {
		if f.dst.Addr() == local && f.src.Addr() != local {
			ref.want.ZeroWindows++
		}
	}

	key := func(f tsharkFrame) connKey {
		if f.src.Addr() == local {
			return connKey{f.src, f.dst}
		}
		return connKey{f.dst, f.src}
	}
	type conn struct {
		syn, synAck   bool
		firstSYN      time.Duration
		synAckFrame   int
		answeredAt    time.Duration // the SYN-ACK's or refusal's time
		answered      bool
		resetL, reset bool
	}
	conns := map[connKey]*conn{}
	get := func(k connKey) *conn {
		if conns[k] == nil {
			conns[k] = &conn{}
		}
		return conns[k]
	}
	for _, f := range readHealthRef(tb, name, "syn") {
		c := get(key(f))
		fromLocal := f.src.Addr() == local
		switch {
		case fromLocal && f.flags&(tsSYN|tsACK) == tsSYN:
			if !c.syn {
				c.syn, c.firstSYN = true, f.at
			}
		case !fromLocal && f.flags&(tsSYN|tsACK) == tsSYN|tsACK:
			if !c.synAck {
				c.synAck, c.synAckFrame = true, f.frame
				if !c.answered {
					c.answered, c.answeredAt = true, f.at
				}
			}
		default:
			tb.Fatalf("%s: frame %d (flags %#x from %v) is an inbound handshake, whose completion syn.tsv cannot tell: the reference needs more", name, f.frame, f.flags, f.src)
		}
	}
	for _, f := range readHealthRef(tb, name, "rst") {
		k := key(f)
		c := conns[k]
		established := c == nil || (c.synAck && c.synAckFrame < f.frame)
		fromLocal := f.src.Addr() == local
		switch {
		case established && fromLocal:
			if c == nil {
				c = get(k)
			}
			if !c.resetL && !c.reset {
				c.resetL = true
				ref.want.ResetsLocal++
			}
		case established:
			if c == nil {
				c = get(k)
			}
			if !c.resetL && !c.reset {
				c.reset = true
				ref.want.ResetsRemote++
			}
		case !fromLocal && c.syn && f.flags&tsACK != 0:
			ref.want.Refused++
			if !c.answered {
				c.answered, c.answeredAt = true, f.at
			}
		}
	}
	for _, c := range conns {
		if !c.syn {
			continue
		}
		if c.synAck {
			ref.want.Opened++
		}
		if !c.answered || c.answeredAt-c.firstSYN > synTimeout {
			ref.want.Timeouts++
		}
	}
	return ref
}

// replayCounts replays testdata/NAME.pcap with every method and returns
// the TCP counts of every series of the local side, added up. If sweep is
// not 0, it runs the expiry sweep at the last frame's time + sweep before
// the drain.
//
// Timeouts are found by the engine's expiry sweep, which runs every
// second of the engine clock (capture time in a replay): a SYN left
// unanswered near the end of a capture times out only once a sweep runs
// SYNTimeout after it, hence the Expire at the last frame's time +
// SYNTimeout + 1 s before the final Drain (afterSYNTimeout).
func replayCounts(tb testing.TB, name string, cfg Config, sweep time.Duration) TCPCounts {
	tb.Helper()
	cfg.Local = NewLocalSet([]netip.Addr{healthCaptureLocal}, nil)
	e := NewEngine(cfg)
	var last time.Time
	replayFile(tb, filepath.Join("testdata", name+".pcap"), e, func(f *Frame) {
		if f.Time.After(last) {
			last = f.Time
		}
	})
	if sweep != 0 {
		e.Expire(last.Add(sweep))
	}
	var got TCPCounts
	for _, st := range e.Drain(nil) {
		if st.Local != healthCaptureLocal {
			tb.Errorf("series %+v: local address is not %v", st.PeerKey, healthCaptureLocal)
		}
		got.add(&st.TCP)
	}
	if st := e.Stats(); st.DecodeErrors != 0 {
		tb.Errorf("%d decode errors", st.DecodeErrors)
	}
	return got
}

// afterSYNTimeout is the sweep after the last frame that times out every
// SYN still unanswered with cfg.
func afterSYNTimeout(cfg Config) time.Duration {
	return orDefault(cfg.SYNTimeout, DefaultSYNTimeout) + time.Second
}

// TestHealthTshark replays the recorded captures and compares every count
// with what tshark's references on the same frames say (healthReference):
// retransmits within 3 % (exact for fewer than 34), the others exactly.
func TestHealthTshark(t *testing.T) {
	for _, name := range healthCaptures {
		t.Run(name, func(t *testing.T) {
			ref := healthReference(t, name, DefaultSYNTimeout)
			got := replayCounts(t, name, Config{}, afterSYNTimeout(Config{}))
			t.Logf("retransmits: go-metro %d, tshark %d (%d retransmission or fast_retransmission, %d out_of_order) from the local side",
				got.Retransmits, ref.want.Retransmits, ref.retrans, ref.outOfOrder)
			t.Logf("go-metro %+v", got)
			t.Logf("tshark   %+v", ref.want)
			w, g := float64(ref.want.Retransmits), float64(got.Retransmits)
			if math.Abs(g-w) > 0.03*w {
				t.Errorf("retransmits from the local side: go-metro %d, tshark %d (%d retransmission or fast_retransmission + %d out_of_order): want within 3 %%",
					got.Retransmits, ref.want.Retransmits, ref.retrans, ref.outOfOrder)
			}
			exact, wantExact := got, ref.want
			exact.Retransmits, wantExact.Retransmits = 0, 0
			if diff := gocmp.Diff(wantExact, exact); diff != "" {
				t.Errorf("counts other than retransmits (-tshark +go-metro):\n%s", diff)
			}
		})
	}
}

// TestHealthTsharkFailures pins what pcaps.md says failures_v4 holds, so
// that healthReference cannot drift from it: 5 connects refused, 5 timed
// out (their SYNs sent 7 times each, over 7.1 s, and abandoned at 11 s),
// 5 connections reset by the server and 3 by the client, 8 opened.
func TestHealthTsharkFailures(t *testing.T) {
	ref := healthReference(t, "failures_v4", DefaultSYNTimeout)
	want := TCPCounts{Retransmits: 30, Opened: 8, Refused: 5, Timeouts: 5, ResetsLocal: 3, ResetsRemote: 5}
	if diff := gocmp.Diff(want, ref.want); diff != "" {
		t.Fatalf("tshark's references of failures_v4 do not say what pcaps.md says (-pcaps.md +references):\n%s", diff)
	}
	got := replayCounts(t, "failures_v4", Config{}, afterSYNTimeout(Config{}))
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("failures_v4 with syn_timeout 10 s (-want +go-metro):\n%s", diff)
	}
}

// TestHealthTsharkSYNTimeout checks syn_timeout on failures_v4, whose
// 5 unanswered connects first sent their SYN at 0.158 s and last at
// 7.28 s, and whose last frame is at 11.49 s. The replay's own sweeps, every
// second of capture time, run up to 11.16 s (the first frame after
// 7.28 s): more than 10 s after the first SYNs, less than 12 s. A sweep 2 s
// after the last frame, at 13.49 s, is more than 12 s after the first
// SYNs (but not after the last ones) and less than 20 s.
func TestHealthTsharkSYNTimeout(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		sweep time.Duration // after the last frame; 0: none
		want  uint64
	}{
		{name: "10s/replay-sweeps-only", cfg: Config{}, want: 5},
		{name: "12s/replay-sweeps-only", cfg: Config{SYNTimeout: 12 * time.Second}, want: 0},
		{name: "12s/swept-at-13.49s", cfg: Config{SYNTimeout: 12 * time.Second}, sweep: 2 * time.Second, want: 5},
		{name: "20s/swept-at-13.49s", cfg: Config{SYNTimeout: 20 * time.Second}, sweep: 2 * time.Second, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := replayCounts(t, "failures_v4", tc.cfg, tc.sweep)
			if got.Timeouts != tc.want {
				t.Errorf("%d timeouts, want %d (counts %+v)", got.Timeouts, tc.want, got)
			}
		})
	}
}

// TestHealthTsharkReferences checks, where tshark is installed (always in
// CI), that the committed references are what tshark prints. Instead of
// the five commands of testdata/README.md per capture (each tshark start
// costs seconds), it runs one per capture that prints the same fields and
// the fields the filters test, and keeps the lines each filter would.
func TestHealthTsharkReferences(t *testing.T) {
	if _, err := exec.LookPath("tshark"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tshark is missing: CI must install it (apt-get install tshark)")
		}
		t.Skip("tshark not installed: the committed references are used as they are")
	}
	// The filters' fields, after the 9 fields of the references; an
	// analysis flag prints 1 when set, tcp.flags.* print 0 or 1.
	tests := []string{"tcp.analysis.retransmission", "tcp.analysis.fast_retransmission",
		"tcp.analysis.out_of_order", "tcp.analysis.zero_window", "tcp.flags.reset", "tcp.flags.syn"}
	keep := map[string]func(f []string) bool{
		"retrans":      func(f []string) bool { return f[0] == "1" || f[1] == "1" },
		"out_of_order": func(f []string) bool { return f[2] == "1" },
		"zero_window":  func(f []string) bool { return f[3] == "1" },
		"rst":          func(f []string) bool { return f[4] == "1" },
		"syn":          func(f []string) bool { return f[5] == "1" },
	}
	for _, name := range healthCaptures {
		t.Run(name, func(t *testing.T) {
			pcap := filepath.Join("testdata", name+".pcap")
			cmd := healthRefCommand(pcap, "tcp")
			for _, f := range tests {
				cmd = append(cmd, "-e", f)
			}
			out, err := exec.Command(cmd[0], cmd[1:]...).Output()
			if err != nil {
				t.Fatalf("%s: %v", shellJoin(cmd), err)
			}
			got := map[string]*bytes.Buffer{}
			for _, r := range healthRefFilters {
				got[r.suffix] = &bytes.Buffer{}
			}
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				f := strings.Split(sc.Text(), "\t")
				if len(f) != 9+len(tests) {
					t.Fatalf("tshark line %q: want %d fields", sc.Text(), 9+len(tests))
				}
				for _, r := range healthRefFilters {
					if keep[r.suffix](f[9:]) {
						got[r.suffix].WriteString(strings.Join(f[:9], "\t") + "\n")
					}
				}
			}
			for _, r := range healthRefFilters {
				want, err := os.ReadFile(filepath.Join("testdata", name+"."+r.suffix+".tsv"))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got[r.suffix].Bytes(), want) {
					cmd := healthRefCommand(pcap, r.filter)
					t.Errorf("tshark output differs from testdata/%s.%s.tsv: regenerate it with %s > testdata/%s.%s.tsv",
						name, r.suffix, shellJoin(cmd), name, r.suffix)
				}
			}
		})
	}
}

// shellJoin joins a command's words for a shell, quoting those with
// spaces or shell characters.
func shellJoin(cmd []string) string {
	words := make([]string, len(cmd))
	for i, w := range cmd {
		if strings.ContainsAny(w, " |&=<>") {
			w = "'" + w + "'"
		}
		words[i] = w
	}
	return strings.Join(words, " ")
}
