package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gopacket/gopacket/pcapgo"
)

// reference is a tshark analysis of a capture NAME.pcap, written next to it
// as NAME.SUFFIX.tsv: the fields of the frames that match the display
// filter, one frame a line, tab-separated.
type reference struct {
	suffix string
	filter string
	fields []string
}

// ackRTT is tshark's ack_rtt of every ACK, which the capture tests compare
// go-metro's samples with.
var ackRTT = reference{"ack_rtt", "tcp.analysis.ack_rtt",
	[]string{"frame.number", "ip.dst", "ipv6.dst", "tcp.analysis.ack_rtt"}}

// eventFields are the fields of the event references: the frame, its time
// from the first frame, its ends, and its TCP flags.
var eventFields = []string{"frame.number", "frame.time_relative",
	"ip.src", "ipv6.src", "tcp.srcport", "ip.dst", "ipv6.dst", "tcp.dstport", "tcp.flags"}

// eventReferences list the frames that go-metro's TCP health counters
// count, as tshark classifies them.
var eventReferences = []reference{
	{"retrans", "tcp.analysis.retransmission || tcp.analysis.fast_retransmission", eventFields},
	{"out_of_order", "tcp.analysis.out_of_order", eventFields},
	{"zero_window", "tcp.analysis.zero_window", eventFields},
	{"rst", "tcp.flags.reset == 1", eventFields},
	{"syn", "tcp.flags.syn == 1", eventFields},
}

// command returns the tshark command that writes the reference of pcap to
// its standard output.
func (r reference) command(pcap string) []string {
	cmd := []string{"tshark", "-r", pcap, "-Y", r.filter, "-T", "fields"}
	for _, f := range r.fields {
		cmd = append(cmd, "-e", f)
	}
	return cmd
}

// localAddr returns the address of the local side of sc's capture: the
// client address of every testbed.Pair.
func localAddr(sc scenario) netip.Addr {
	if sc.ipv6 {
		return netip.MustParseAddr("2001:db8::1")
	}
	return netip.MustParseAddr("192.0.2.1")
}

// writeReferences writes the tshark references of sc's capture in dir,
// and its per-window ack_rtt summary if sc has one.
func writeReferences(dir string, sc scenario) error {
	pcap := filepath.Join(dir, sc.file)
	name := strings.TrimSuffix(sc.file, ".pcap")
	refs := []reference{ackRTT}
	if sc.events {
		refs = append(refs, eventReferences...)
	}
	for _, r := range refs {
		argv := r.command(pcap)
		var stderr bytes.Buffer
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, bytes.TrimSpace(stderr.Bytes()))
		}
		if err := os.WriteFile(filepath.Join(dir, name+"."+r.suffix+".tsv"), out, 0o644); err != nil {
			return err
		}
	}
	if !sc.windows {
		return nil
	}
	times, err := frameTimes(pcap)
	if err != nil {
		return err
	}
	tsv, err := os.ReadFile(filepath.Join(dir, name+"."+ackRTT.suffix+".tsv"))
	if err != nil {
		return err
	}
	ws, err := ackWindows(times, tsv, localAddr(sc), 250*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name+".windows.tsv"), formatWindows(ws), 0o644)
}

// ackWindow summarizes tshark's ack_rtt over the ACKs to the local side in
// one window of a capture: [start, start+width) from its first frame.
type ackWindow struct {
	width, start time.Duration // width 0: the whole capture
	acks         int
	median       time.Duration
}

// ackWindows returns, for windows of each width laid end to end from the
// first frame to the last, then for the whole capture, the number of ACKs
// to local that tshark's ack_rtt times (tsv, as ackRTT writes it) and the
// median of their ack_rtt (the mean of the two middle values for an even
// number). times[i] is the time of frame i+1 from the first frame.
func ackWindows(times []time.Duration, tsv []byte, local netip.Addr, widths ...time.Duration) ([]ackWindow, error) {
	type sample struct{ at, rtt time.Duration }
	var samples []sample
	sc := bufio.NewScanner(bytes.NewReader(tsv))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("ack_rtt line %q: want 4 fields", sc.Text())
		}
		frame, err := strconv.Atoi(f[0])
		if err != nil || frame < 1 || frame > len(times) {
			return nil, fmt.Errorf("ack_rtt line %q: frame number not in the capture of %d frames", sc.Text(), len(times))
		}
		dst, err := netip.ParseAddr(f[1] + f[2])
		if err != nil {
			return nil, fmt.Errorf("ack_rtt line %q: %w", sc.Text(), err)
		}
		sec, err := strconv.ParseFloat(f[3], 64)
		if err != nil {
			return nil, fmt.Errorf("ack_rtt line %q: %w", sc.Text(), err)
		}
		if dst == local {
			samples = append(samples, sample{times[frame-1], time.Duration(math.Round(sec * 1e9))})
		}
	}
	if len(times) == 0 {
		return nil, errors.New("empty capture")
	}
	summarize := func(width, start, end time.Duration) ackWindow {
		var rtts []time.Duration
		for _, s := range samples {
			if s.at >= start && s.at < end {
				rtts = append(rtts, s.rtt)
			}
		}
		return ackWindow{width: width, start: start, acks: len(rtts), median: median(rtts)}
	}
	last := times[len(times)-1]
	var ws []ackWindow
	for _, w := range widths {
		for start := time.Duration(0); start <= last; start += w {
			ws = append(ws, summarize(w, start, start+w))
		}
	}
	return append(ws, summarize(0, 0, last+1)), nil
}

// median returns the median of ds, the mean of the two middle values for an
// even number, or 0 if ds is empty. It sorts ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// formatWindows writes ws as the TSV that capture/testdata's README
// describes.
func formatWindows(ws []ackWindow) []byte {
	var b bytes.Buffer
	b.WriteString("# window_ms\tstart_s\tacks\tmedian_ack_rtt_ms\n")
	for _, w := range ws {
		width := "all"
		if w.width > 0 {
			width = strconv.FormatInt(w.width.Milliseconds(), 10)
		}
		fmt.Fprintf(&b, "%s\t%.3f\t%d\t%.6f\n", width, w.start.Seconds(), w.acks, float64(w.median)/1e6)
	}
	return b.Bytes()
}

// frameTimes returns the time of each frame of a pcap file from its first
// frame.
func frameTimes(file string) ([]time.Duration, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := pcapgo.NewReader(bufio.NewReader(f))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	var times []time.Duration
	var first time.Time
	for {
		_, ci, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			return times, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if len(times) == 0 {
			first = ci.Timestamp
		}
		times = append(times, ci.Timestamp.Sub(first))
	}
}

// trimPCAP copies the frames of the pcap file src stamped less than keep
// after its first frame to dst, with the same header, and returns how many
// it copied. With keep 0, src must be dst, and it counts the frames.
func trimPCAP(src, dst string, keep time.Duration) (int, error) {
	if keep == 0 {
		if src != dst {
			return 0, errors.New("trim pcap: keep 0 needs src == dst")
		}
		times, err := frameTimes(src)
		return len(times), err
	}
	in, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	r, err := pcapgo.NewReader(bufio.NewReader(in))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", src, err)
	}
	out, err := os.Create(dst)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(out)
	w := pcapgo.NewWriterNanos(bw)
	if err := w.WriteFileHeader(r.Snaplen(), r.LinkType()); err != nil {
		return 0, errors.Join(err, out.Close())
	}
	n := 0
	var first time.Time // of the first frame
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, errors.Join(fmt.Errorf("read %s: %w", src, err), out.Close())
		}
		if n == 0 {
			first = ci.Timestamp
		}
		if ci.Timestamp.Sub(first) >= keep {
			continue // the kernel stamps a few frames out of order, by microseconds
		}
		if err := w.WritePacket(ci, data); err != nil {
			return 0, errors.Join(err, out.Close())
		}
		n++
	}
	if err := bw.Flush(); err != nil {
		return 0, errors.Join(err, out.Close())
	}
	return n, out.Close()
}
