package capture

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 16's recorded test: RTT samples through the whole flight, compared
// window by window with tshark's ack_rtt on the same packets.

// windowCaptures are the recorded transfers with a NAME.windows.tsv
// reference (testdata/README.md, "Per-window ack_rtt"): bulk through a
// bottleneck queue after the capture point, with and without TCP
// timestamps, and a scp-like upload. The local side is the client,
// 192.0.2.1.
var windowCaptures = []string{"bottleneck_ts_v4", "bottleneck_nots_v4", "upload_ts_v4"}

var windowLocal = netip.MustParseAddr("192.0.2.1")

// Thresholds of the issue: in every window in which tshark times at least
// windowMinAcks ACKs, go-metro's samples must number at least
// 1/windowMinShare of tshark's, and their median must be within
// windowMedianTol of tshark's.
const (
	windowMinAcks   = 20
	windowMinShare  = 4
	windowMedianTol = 0.10
)

// rttWindow is one line of NAME.windows.tsv: the ACKs to the local side
// that tshark times in [start, start+width) from the capture's first
// frame (width 0: the whole capture), and the median of their ack_rtt.
type rttWindow struct {
	width, start time.Duration
	acks         int
	median       time.Duration
}

// readWindows reads testdata/NAME.windows.tsv.
func readWindows(tb testing.TB, name string) []rttWindow {
	tb.Helper()
	file := filepath.Join("testdata", name+".windows.tsv")
	data, err := os.ReadFile(file)
	if err != nil {
		tb.Fatal(err)
	}
	var out []rttWindow
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			tb.Fatalf("%s: line %q: want 4 fields", file, line)
		}
		var w rttWindow
		if f[0] != "all" {
			msec, err := strconv.Atoi(f[0])
			if err != nil || msec <= 0 {
				tb.Fatalf("%s: line %q: bad width", file, line)
			}
			w.width = time.Duration(msec) * time.Millisecond
		}
		start, err1 := strconv.ParseFloat(f[1], 64)
		acks, err2 := strconv.Atoi(f[2])
		med, err3 := strconv.ParseFloat(f[3], 64)
		if err1 != nil || err2 != nil || err3 != nil {
			tb.Fatalf("%s: line %q: bad number", file, line)
		}
		// start is printed in seconds with 3 decimals: whole ms.
		w.start = time.Duration(math.Round(start*1e3)) * time.Millisecond
		w.acks = acks
		w.median = time.Duration(math.Round(med * 1e6))
		out = append(out, w)
	}
	if len(out) == 0 {
		tb.Fatalf("%s: no windows", file)
	}
	return out
}

// timedRTT is an RTT and the time, from the capture's first frame, of the
// ACK that completed it.
type timedRTT struct{ at, rtt time.Duration }

// inWindow returns the RTTs of the samples in w, by the time of their
// ACK: [start, start+width), or all of them for width 0.
func inWindow(samples []timedRTT, w rttWindow) []time.Duration {
	var out []time.Duration
	for _, s := range samples {
		if w.width == 0 || (s.at >= w.start && s.at < w.start+w.width) {
			out = append(out, s.rtt)
		}
	}
	return out
}

// windowMedian is the median as windows.tsv defines it: the middle value,
// or the mean of the two middle values for an even number; 0 for none.
func windowMedian(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// replayTimed replays testdata/NAME.pcap with every method and returns
// go-metro's samples and the time of every frame, both from the first
// frame (in file order, as windows.tsv counts).
func replayTimed(tb testing.TB, name string) (samples []timedRTT, frames []time.Duration) {
	tb.Helper()
	var first time.Time
	e := NewEngine(Config{
		Local: NewLocalSet([]netip.Addr{windowLocal}, nil),
		OnSample: func(s Sample) {
			if s.Local.Addr() != windowLocal {
				tb.Errorf("sample %+v: not of the local side", s)
			}
			samples = append(samples, timedRTT{s.Time.Sub(first), s.RTT})
		},
	})
	replayFile(tb, filepath.Join("testdata", name+".pcap"), e, func(f *Frame) {
		if len(frames) == 0 {
			first = f.Time
		}
		frames = append(frames, f.Time.Sub(first))
	})
	if st := e.Stats(); st.DecodeErrors != 0 || st.SamplesDiscarded != 0 {
		tb.Errorf("stats %v: want no decode errors or discarded samples", st)
	}
	return samples, frames
}

// tsharkTimed returns tshark's ack_rtt of the ACKs to the local side of
// NAME.pcap (NAME.ack_rtt.tsv), at the time of their frames.
func tsharkTimed(tb testing.TB, name string, frames []time.Duration) []timedRTT {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".ack_rtt.tsv"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []timedRTT
	for frame, w := range readAckRTT(tb, data) {
		if frame < 1 || frame > len(frames) {
			tb.Fatalf("%s.ack_rtt.tsv: frame %d beyond the capture's %d", name, frame, len(frames))
		}
		if w.dst == windowLocal {
			out = append(out, timedRTT{frames[frame-1], w.rtt})
		}
	}
	return out
}

// TestRecordedWindows replays the bottleneck and upload captures with
// every method, buckets go-metro's samples by the time of the ACK that
// completed them into the windows of NAME.windows.tsv (250 ms and 500 ms,
// laid end to end from the capture's first frame), and requires, in every
// window in which tshark times at least 20 ACKs to the local side, at
// least a quarter as many samples as tshark's ACKs and a median within
// 10 % of tshark's. It logs every window.
func TestRecordedWindows(t *testing.T) {
	for _, name := range windowCaptures {
		t.Run(name, func(t *testing.T) {
			refs := readWindows(t, name)
			samples, frames := replayTimed(t, name)

			// The test's own bucketing, applied to tshark's ack_rtt,
			// must give the reference: same windows, same start.
			ws := tsharkTimed(t, name, frames)
			for _, w := range refs {
				rtts := inWindow(ws, w)
				if med := windowMedian(rtts); len(rtts) != w.acks || (med-w.median).Abs() > time.Microsecond {
					t.Fatalf("window %s: %s.ack_rtt.tsv bucketed by this test gives %d ACKs, median %v; %s.windows.tsv says %d, %v",
						windowName(w), name, len(rtts), med, name, w.acks, w.median)
				}
			}

			var table strings.Builder
			fmt.Fprintf(&table, "%-6s %-7s %6s %10s %6s %10s %7s %8s\n",
				"window", "start", "tshark", "median", "ours", "median", "share", "median±")
			for _, w := range refs {
				rtts := inWindow(samples, w)
				med := windowMedian(rtts)
				share, dev := math.NaN(), math.NaN()
				if w.acks > 0 {
					share = float64(len(rtts)) / float64(w.acks)
				}
				if w.median > 0 && len(rtts) > 0 {
					dev = float64(med-w.median) / float64(w.median)
				}
				verdict := ""
				if w.width > 0 && w.acks >= windowMinAcks {
					if len(rtts)*windowMinShare < w.acks {
						verdict += " FEW"
						t.Errorf("window %s: go-metro has %d samples, tshark times %d ACKs: want at least %d (a quarter)",
							windowName(w), len(rtts), w.acks, (w.acks+windowMinShare-1)/windowMinShare)
					}
					if len(rtts) == 0 || math.Abs(dev) > windowMedianTol {
						verdict += " MEDIAN"
						lo := time.Duration(float64(w.median) * (1 - windowMedianTol))
						hi := time.Duration(float64(w.median) * (1 + windowMedianTol))
						t.Errorf("window %s: go-metro's median %v over %d samples, tshark's %v over %d ACKs: want within 10 %% [%v, %v]",
							windowName(w), med.Round(time.Microsecond), len(rtts), w.median.Round(time.Microsecond), w.acks,
							lo.Round(time.Microsecond), hi.Round(time.Microsecond))
					}
				}
				fmt.Fprintf(&table, "%-6s %-7s %6d %10s %6d %10s %6.0f%% %+7.1f%%%s\n",
					widthName(w), fmt.Sprintf("%.3fs", w.start.Seconds()), w.acks, fmtMS(w.median),
					len(rtts), fmtMS(med), 100*share, 100*dev, verdict)
			}
			t.Logf("%s: ACKs to the local side that tshark times and go-metro's samples, by window "+
				"(checked where tshark has at least %d: share at least 1/%d, median within %.0f %%):\n%s",
				name, windowMinAcks, windowMinShare, 100*windowMedianTol, table.String())
		})
	}
}

func widthName(w rttWindow) string {
	if w.width == 0 {
		return "all"
	}
	return strconv.Itoa(int(w.width.Milliseconds())) + "ms"
}

func windowName(w rttWindow) string {
	if w.width == 0 {
		return "all"
	}
	return fmt.Sprintf("%v at %.3f s", w.width, w.start.Seconds())
}

func fmtMS(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/1e6) }
