//go:build linux

package capture

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
	gocmp "github.com/google/go-cmp/cmp"
)

// requireTools fails the test in CI, and skips it elsewhere, when one of
// the tools it compares with is missing.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		testbed.RequireTool(t, tool, tool)
	}
}

// startTcpdump records the TCP frames of ifname in ns to file, as the
// recorder of testdata does, and returns once tcpdump listens. stop ends
// it; it fails the test if tcpdump's kernel buffer dropped frames, since
// the reference would then miss frames that go-metro saw.
func startTcpdump(t *testing.T, ns *testbed.NetNS, ifname, file string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := ns.Command(ctx, "tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-B", "8192", "-s", "128", "--time-stamp-precision=nano", "-w", file, "tcp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start tcpdump: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			_ = cmd.Wait()
		}
	})
	if head, ok := testbed.TcpdumpListening(bufio.NewScanner(stderr)); !ok {
		t.Fatalf("start tcpdump: %s", head)
	}
	tail := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stderr)
		tail <- string(b)
	}()
	return func() {
		t.Helper()
		stopped = true
		defer cancel()
		_ = cmd.Process.Signal(os.Interrupt)
		summary := <-tail
		if err := cmd.Wait(); err != nil {
			t.Fatalf("tcpdump: %v: %s", err, summary)
		}
		if m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(summary); m == nil || m[1] != "0" {
			t.Fatalf("tcpdump dropped frames or printed no count (%q): the reference is incomplete; run again on a less busy machine", strings.TrimSpace(summary))
		}
	}
}

// tsharkCount returns how many frames of pcap match the display filter.
func tsharkCount(t *testing.T, pcap, filter string) uint64 {
	t.Helper()
	cmd := exec.Command("tshark", "-r", pcap, "-Y", filter, "-T", "fields", "-e", "frame.number")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", shellJoin(cmd.Args), err)
	}
	return uint64(strings.Count(string(out), "\n"))
}

// TestLiveHealth counts connection failures, resets, zero windows and
// retransmissions with a Live capture on the client's TAP device of a
// delay line (5 ms each way) that drops every SYN to one port, with
// SYNTimeout shortened to 2 s. Each phase records the same interface with
// tcpdump at the same time; tshark's analysis of that recording is the
// reference for the retransmissions (retransmission, fast retransmission
// or out of order, from the client: see health_tshark_test.go) and the
// zero windows (from the server). The other counts are known from the
// traffic.
func TestLiveHealth(t *testing.T) {
	testbed.RequireRoot(t)
	requireTools(t, "tcpdump", "tshark")
	const (
		closedPort  = 9    // nobody listens: connects are refused
		droppedPort = 5001 // the delay line drops the SYNs: connects time out
		synTimeout  = 2 * time.Second
	)
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: 5 * time.Millisecond, DropSYNToPort: droppedPort},
		ServerToClient: testbed.Impairment{Delay: 5 * time.Millisecond},
	})
	l, _ := startLive(t, dl.Client, dl.ClientIf, func(c *LiveConfig) { c.Engine.SYNTimeout = synTimeout })
	path := dl.Path4()
	client, server := dl.ClientAddr4, dl.ServerAddr4
	retransFilter := fmt.Sprintf("ip.src==%v && (tcp.analysis.retransmission || tcp.analysis.fast_retransmission || tcp.analysis.out_of_order)", client)
	zeroWindowFilter := fmt.Sprintf("ip.src==%v && ip.dst==%v && tcp.analysis.zero_window", server, client)

	tests := []struct {
		name    string
		traffic func(ctx context.Context) error
		// wait is how long to let go-metro count after the traffic:
		// the ring's partly filled block retires after 64 ms, and the
		// live engine's expiry sweep, which finds timeouts, runs every
		// second of the monotonic clock.
		wait time.Duration
		// want are the counts known from the traffic; Retransmits and
		// ZeroWindows come from tshark.
		want TCPCounts
		// zeroWindows requires tshark to see zero windows.
		zeroWindows bool
	}{
		{
			name: "refused",
			traffic: func(ctx context.Context) error {
				for i, err := range testbed.Connects(ctx, dl.Client, netip.AddrPortFrom(server, closedPort), 5, 2*time.Second) {
					if !errors.Is(err, syscall.ECONNREFUSED) {
						return fmt.Errorf("connect %d to closed port %d: %v, want connection refused", i+1, closedPort, err)
					}
				}
				return nil
			},
			wait: 500 * time.Millisecond,
			want: TCPCounts{Refused: 5},
		},
		{
			// The connects give up SYNTimeout + 1 s after their first
			// SYN; go-metro is drained 2 s later.
			name: "timeouts",
			traffic: func(ctx context.Context) error {
				for i, err := range testbed.Connects(ctx, dl.Client, netip.AddrPortFrom(server, droppedPort), 5, synTimeout+time.Second) {
					var to interface{ Timeout() bool }
					if !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &to) && to.Timeout()) {
						return fmt.Errorf("connect %d to port %d, whose SYNs are dropped: %v, want a timeout", i+1, droppedPort, err)
					}
				}
				return nil
			},
			wait: 2 * time.Second,
			want: TCPCounts{Timeouts: 5},
		},
		{
			name: "resets-by-server",
			traffic: func(ctx context.Context) error {
				return testbed.Resets(ctx, path, testbed.ResetsConfig{Count: 5, Gap: 20 * time.Millisecond})
			},
			wait: 500 * time.Millisecond,
			want: TCPCounts{Opened: 5, ResetsRemote: 5},
		},
		{
			name: "resets-by-client",
			traffic: func(ctx context.Context) error {
				return testbed.Resets(ctx, path, testbed.ResetsConfig{Count: 3, Gap: 20 * time.Millisecond, ByClient: true})
			},
			wait: 500 * time.Millisecond,
			want: TCPCounts{Opened: 3, ResetsLocal: 3},
		},
		{
			// The server (SO_RCVBUF 16 KiB) stops reading for 1 s
			// after 64 KiB, twice: its window closes, the client
			// probes it.
			name: "zero-window",
			traffic: func(ctx context.Context) error {
				return testbed.StallingReader(ctx, path, testbed.StallingReaderConfig{
					Bytes: 192 << 10, ReceiveBuffer: 16 << 10, ReadBetween: 64 << 10, Stalls: 2, Stall: time.Second})
			},
			wait:        500 * time.Millisecond,
			want:        TCPCounts{Opened: 1},
			zeroWindows: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pcap := filepath.Join(t.TempDir(), tc.name+".pcap")
			stop := startTcpdump(t, dl.Client, dl.ClientIf, pcap)
			l.Drain(nil) // forget what earlier phases left
			before := l.Health().KernelDrops
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := tc.traffic(ctx); err != nil {
				stop()
				t.Fatal(err)
			}
			time.Sleep(tc.wait)
			stop()
			var got TCPCounts
			for _, st := range l.Drain(nil) {
				if st.Local == client && st.Remote.Addr() == server {
					got.add(&st.TCP)
				} else if !st.TCP.IsZero() {
					t.Errorf("counts for an unexpected series %+v: %+v", st.PeerKey, st.TCP)
				}
			}
			if drops := l.Health().KernelDrops - before; drops != 0 {
				t.Fatalf("the kernel dropped %d frames of go-metro's capture: its counts are incomplete; run again on a less busy machine", drops)
			}
			want := tc.want
			want.Retransmits = tsharkCount(t, pcap, retransFilter)
			want.ZeroWindows = tsharkCount(t, pcap, zeroWindowFilter)
			t.Logf("go-metro %+v", got)
			t.Logf("expected %+v (Retransmits and ZeroWindows: tshark on tcpdump's recording of %s)", want, dl.ClientIf)
			if tc.zeroWindows && want.ZeroWindows == 0 {
				t.Fatalf("tshark sees no zero window from %v: the stalling reader did not stall (%s)", server, strconv.Quote(zeroWindowFilter))
			}
			if diff := gocmp.Diff(want, got); diff != "" {
				t.Errorf("TCP counts of %v (-want +go-metro):\n%s", server, diff)
			}
		})
	}
}
