package testbed

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// RequireTool skips the test if the command name is missing, with a hint
// to install the Debian package pkg; when the environment variable CI is
// "true", it fails the test instead, as [RequireRoot] does.
func RequireTool(tb testing.TB, name, pkg string) {
	tb.Helper()
	problem := ""
	if _, err := exec.LookPath(name); err != nil {
		problem = fmt.Sprintf("%s is missing: install it (apt-get install %s)", name, pkg)
	}
	guard(tb, problem, os.Getenv("CI") == "true")
}

// TcpdumpListening reads tcpdump's standard error from lines up to its
// "listening on" line, which it prints once it captures, and returns what
// it read, trimmed, and whether it got there.
func TcpdumpListening(lines *bufio.Scanner) (string, bool) {
	var head strings.Builder
	for lines.Scan() {
		head.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "listening on") {
			return strings.TrimSpace(head.String()), true
		}
	}
	return strings.TrimSpace(head.String()), false
}

// StartTcpdump records the TCP frames that cross the interface ifname of
// ns into a pcap file in a temporary directory of the test, with tcpdump
// (snap length 128, nanosecond timestamps: the kernel's, the same that
// every packet socket on the interface reads), and returns a function that
// stops it and returns the file's path. It waits until tcpdump captures.
// Cleanup stops it if the test did not.
func StartTcpdump(tb testing.TB, ns *NetNS, ifname string) (stop func() string) {
	tb.Helper()
	RequireRoot(tb)
	RequireTool(tb, "tcpdump", "tcpdump")
	file := filepath.Join(tb.TempDir(), ifname+".pcap")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-s", "128", "--time-stamp-precision=nano", "-w", file, "tcp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		tb.Fatalf("start tcpdump: %v", err)
	}
	head, ok := TcpdumpListening(bufio.NewScanner(stderr))
	if !ok {
		cancel()
		_ = cmd.Wait()
		tb.Fatalf("start tcpdump on %s in netns %q: %s", ifname, ns.Name(), head)
	}
	tail := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stderr)
		tail <- string(b)
	}()
	stopped := false
	stopFn := func() string {
		if stopped {
			return file
		}
		stopped = true
		defer cancel()
		_ = cmd.Process.Signal(os.Interrupt)
		summary := <-tail
		if err := cmd.Wait(); err != nil {
			tb.Errorf("tcpdump on %s: %v: %s", ifname, err, summary)
		}
		return file
	}
	tb.Cleanup(func() { stopFn() })
	return stopFn
}

// AckRTT is one ACK for which Wireshark computed tcp.analysis.ack_rtt: the
// time from the segment whose end it acknowledges exactly.
type AckRTT struct {
	// Number is the frame's number in the file, from 1; Time its timestamp.
	Number int
	Time   time.Time
	// Dst is the ACK's destination: the host whose segment was timed.
	Dst netip.Addr
	RTT time.Duration
}

// TsharkAckRTT runs tshark on a capture file and returns every ACK that
// has a tcp.analysis.ack_rtt, in frame order. It fails the test if tshark
// fails, and skips it (fails it under CI=true) if tshark is missing.
func TsharkAckRTT(tb testing.TB, pcap string) []AckRTT {
	tb.Helper()
	RequireTool(tb, "tshark", "tshark")
	args := []string{"-r", pcap, "-Y", "tcp.analysis.ack_rtt", "-T", "fields",
		"-e", "frame.number", "-e", "frame.time_epoch", "-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.analysis.ack_rtt"}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		tb.Fatalf("tshark %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr))
	}
	acks, err := parseAckRTT(out)
	if err != nil {
		tb.Fatal(err)
	}
	return acks
}

// parseAckRTT parses TsharkAckRTT's fields: number, epoch time, IPv4 and
// IPv6 destination, ack_rtt in seconds.
func parseAckRTT(out []byte) ([]AckRTT, error) {
	var acks []AckRTT
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 5 {
			return nil, fmt.Errorf("tshark line %q: want 5 fields", sc.Text())
		}
		n, err := strconv.Atoi(f[0])
		if err != nil {
			return nil, fmt.Errorf("tshark line %q: %w", sc.Text(), err)
		}
		at, err := parseEpoch(f[1])
		if err != nil {
			return nil, fmt.Errorf("tshark line %q: %w", sc.Text(), err)
		}
		dst, err := netip.ParseAddr(f[2] + f[3])
		if err != nil {
			return nil, fmt.Errorf("tshark line %q: %w", sc.Text(), err)
		}
		sec, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			return nil, fmt.Errorf("tshark line %q: %w", sc.Text(), err)
		}
		acks = append(acks, AckRTT{Number: n, Time: at, Dst: dst, RTT: time.Duration(math.Round(sec * 1e9))})
	}
	return acks, sc.Err()
}

// parseEpoch parses seconds since the epoch with up to nine decimals,
// exactly.
func parseEpoch(s string) (time.Time, error) {
	sec, frac, _ := strings.Cut(s, ".")
	secs, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
	}
	if len(frac) > 9 {
		return time.Time{}, fmt.Errorf("parse time %q: more than nine decimals", s)
	}
	var ns int64
	if frac != "" {
		ns, err = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
		if err != nil {
			return time.Time{}, fmt.Errorf("parse time %q: %w", s, err)
		}
	}
	return time.Unix(secs, ns), nil
}
