//go:build linux

package check_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"go.uber.org/goleak"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

// These tests drive a live check, capturing on a veth pair in network
// namespaces, through faults: hostile frames, panics in the capture's
// goroutines, many configure/run/cancel cycles, a full ring, an interface
// deleted and created again, a capability lost and regained, and an
// interface that never appears. The last two and the least-privilege test
// run the check in a child process: this test binary again, as uid 65534
// with CAP_NET_RAW alone (see faultChild).

// faultRunMax is how long a Run may take, whatever the capture's state: it
// runs on a worker of the Agent shared with other checks. The first Run of
// a check also waits for the capture to open, up to the check's StartWait
// (runLimit), which these tests raise to 2 s: on a busy machine opening
// the socket alone can take 100 ms.
const faultRunMax = 100 * time.Millisecond

// runLimit is how long a Run of c may take: faultRunMax, plus c's
// StartWait (50 ms if 0) for its first Run, which first is.
func runLimit(c *check.Check, first bool) time.Duration {
	if !first {
		return faultRunMax
	}
	wait := c.StartWait
	if wait == 0 {
		wait = 50 * time.Millisecond
	}
	return wait + faultRunMax
}

// faultLiveCheck configures a check on iface in ns, with the extra
// instance YAML, whose capture is a capture.Live with the check's own
// configuration changed by mod (if not nil). It cancels the check when the
// test ends, and returns it with a function that returns the Live once
// the first Run has made it.
func faultLiveCheck(t *testing.T, ns *testbed.NetNS, iface, extra string, mod func(*capture.LiveConfig)) (*check.Check, func() *capture.Live) {
	t.Helper()
	inst := fmt.Sprintf("interface: %s\nnetns: %s\n%s", iface, ns.Path(), extra)
	c := configure(t, inst, "")
	// The default 50 ms for the socket to open can run out on a loaded
	// machine, making the first run WARNING "capture is starting".
	c.StartWait = 2 * time.Second
	var live atomic.Pointer[capture.Live]
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		if mod != nil {
			mod(&cfg)
		}
		l, err := capture.NewLive(cfg)
		if err != nil {
			return nil, err
		}
		live.Store(l)
		return l, nil
	}
	t.Cleanup(c.Cancel)
	return c, func() *capture.Live {
		t.Helper()
		l := live.Load()
		if l == nil {
			t.Fatal("no live capture yet")
		}
		return l
	}
}

// faultRun runs c once, checks that the Run took less than faultRunMax,
// and returns its service check.
func faultRun(t *testing.T, c *check.Check, rec *check.Recorder) check.ServiceCheckResult {
	t.Helper()
	first := len(rec.Batches()) == 0
	start := time.Now()
	err := c.Run(rec)
	if d, limit := time.Since(start), runLimit(c, first); d > limit {
		t.Errorf("Run took %v, want under %v", d, limit)
	}
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return canCapture(t, rec.Last())
}

// faultRunUntil runs c every 50 ms until its service check satisfies ok,
// for at most d, and returns that service check and the distinct states
// seen before it, in order.
func faultRunUntil(t *testing.T, c *check.Check, rec *check.Recorder, d time.Duration, what string, ok func(check.ServiceCheckResult) bool) (check.ServiceCheckResult, []string) {
	t.Helper()
	var seen []string
	for deadline := time.Now().Add(d); ; {
		sc := faultRun(t, c, rec)
		if s := sc.Status.String(); len(seen) == 0 || seen[len(seen)-1] != s {
			seen = append(seen, s)
		}
		if ok(sc) {
			return sc, seen
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: states %v, last %v %q", d, what, seen, sc.Status, sc.Message)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// faultIsOK reports whether sc is OK.
func faultIsOK(sc check.ServiceCheckResult) bool { return sc.Status == servicecheck.ServiceCheckOK }

// faultCount returns the value of the one series of metric in b.
func faultCount(t *testing.T, b check.Batch, metric string) float64 {
	t.Helper()
	s := b.Find(metric)
	if len(s) != 1 {
		t.Fatalf("%s: %d series, want 1", metric, len(s))
	}
	return s[0].Points[0][1]
}

// faultSamples returns the RTT samples that b reports.
func faultSamples(b check.Batch) float64 {
	var n float64
	for _, s := range b.Find(check.MetricRTTSamples) {
		n += s.Points[0][1]
	}
	return n
}

// faultTraffic runs request/response traffic over path.
func faultTraffic(t *testing.T, path testbed.Path, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// A gap between requests, so that each is timed.
	if err := testbed.RequestResponse(ctx, path, testbed.RequestResponseConfig{Count: n, Gap: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The kernel hands over a partly filled ring block after 64 ms, and
	// the capture reads its counters every 250 ms.
	time.Sleep(300 * time.Millisecond)
}

// faultObserver opens a packet socket on ifname in ns with the filter prog,
// as the capture's, to see which frames the kernel passes. It is created
// with protocol 0 and bound after the filter is attached, so that every
// frame read went through the filter.
func faultObserver(t *testing.T, ns *testbed.NetNS, ifname string, prog []bpf.RawInstruction) int {
	t.Helper()
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		filter := make([]unix.SockFilter, len(prog))
		for i, r := range prog {
			filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
		}
		fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fprog); err != nil {
			return fmt.Errorf("attach filter: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: testbed.Htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if fd >= 0 {
		t.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		t.Fatalf("open the observing packet socket on %s in %s: %v", ifname, ns, err)
	}
	return fd
}

// faultObserved is a frame read by faultObserver: the captured bytes and
// the length of the frame before the filter cut it.
type faultObserved struct {
	data    []byte
	origLen int
}

// faultReadObserved reads the corpus frames, by their index in the source
// address, from the observing socket fd until it has want of them and none
// came for 200 ms, or for at most 5 s.
func faultReadObserved(t *testing.T, fd, want int) map[int]faultObserved {
	t.Helper()
	got := map[int]faultObserved{}
	buf := make([]byte, 65536)
	oob := make([]byte, unix.CmsgSpace(20)) // struct tpacket_auxdata
	quiet := time.Time{}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, 0)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			if len(got) >= want {
				if quiet.IsZero() {
					quiet = time.Now()
				} else if time.Since(quiet) > 200*time.Millisecond {
					return got
				}
			}
			continue
		case err != nil:
			t.Fatalf("read the observing socket: %v", err)
		}
		quiet = time.Time{}
		data := slices.Clone(buf[:n])
		if len(data) < 12 || !bytes.Equal(data[6:10], []byte{0x02, 0xfe, 0, 0}) {
			continue // not a corpus frame
		}
		i := int(binary.BigEndian.Uint16(data[10:12]))
		o := faultObserved{data: data, origLen: n}
		msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			if m.Header.Level == unix.SOL_PACKET && m.Header.Type == unix.PACKET_AUXDATA && len(m.Data) >= 8 {
				o.origLen = int(binary.NativeEndian.Uint32(m.Data[4:8])) // tp_len
			}
		}
		if _, dup := got[i]; dup {
			t.Errorf("frame %d observed twice", i)
		}
		got[i] = o
	}
	t.Logf("gave up reading the observing socket after 5 s, with %d of %d frames", len(got), want)
	return got
}

// faultReceived returns the frame that packet sockets on the receiving end
// of a veth see of frame, before their filter: the receive path
// (__netif_receive_skb_core, skb_vlan_untag) takes an outer 802.1Q or
// 802.1ad tag out of the frame into its metadata, and drops the frame if
// fewer than 6 bytes follow the Ethernet header then. ok is false for a
// frame dropped before packet sockets.
func faultReceived(frame []byte) (view []byte, ok bool) {
	if len(frame) < 14 {
		return nil, false
	}
	if tpid := binary.BigEndian.Uint16(frame[12:14]); tpid == 0x8100 || tpid == 0x88a8 {
		if len(frame) < 14+6 {
			return nil, false
		}
		return append(frame[:12:12], frame[16:]...), true
	}
	return frame, true
}

// faultHostileNames returns the names of the frames of the hostile corpus,
// from its frames.tsv.
func faultHostileNames(t *testing.T, n int) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "capture", "testdata", "hostile", "frames.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) < 2 {
			t.Fatalf("frames.tsv: bad line %q", line)
		}
		names = append(names, cols[1])
	}
	if len(names) != n {
		t.Fatalf("frames.tsv lists %d frames, hostile.pcap has %d", len(names), n)
	}
	return names
}

// TestFaultHostileCorpus injects every frame of the hostile corpus
// (capture/testdata/hostile) into one end of a veth pair while a live check
// captures on the other end. It predicts which frames reach the capture
// (faultReceived, then the capture's kernel filter run in the VM of
// golang.org/x/net/bpf), checks the prediction against a second packet
// socket with the same filter, and requires the check to report as decode
// errors exactly the frames that reach it and fail to decode, and to
// stay up and OK.
func TestFaultHostileCorpus(t *testing.T) {
	pair := testbed.NewVethPair(t)
	frames := loadPCAP(t, filepath.Join("hostile", "hostile.pcap"))
	names := faultHostileNames(t, len(frames))
	c, live := faultLiveCheck(t, pair.Server, pair.ServerIf, "", nil)
	rec := newRecorder(t)
	if sc := faultRun(t, c, rec); !faultIsOK(sc) {
		t.Fatalf("first run: %v %q, want OK", sc.Status, sc.Message)
	}
	waitFor(t, 3*time.Second, "capturing", func() bool { return live().Health().State == capture.StateCapturing })

	snaplen := c.Config().Capture.Snaplen
	if snaplen == 0 {
		snaplen = capture.DefaultSnaplen
	}
	prog, err := capture.BuildFilter(capture.FilterEthernet, nil, uint32(snaplen))
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatal("the kernel filter does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatal(err)
	}
	obs := faultObserver(t, pair.Server, pair.ServerIf, prog)
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)

	type verdict struct{ pass, decodeError bool }
	want := map[int]verdict{}
	var sent, wantPass, wantErrors int
	for i, f := range frames {
		if len(f.Data) < 14 {
			continue // a packet socket cannot send less than an Ethernet header
		}
		frame := slices.Clone(f.Data)
		binary.BigEndian.PutUint16(frame[10:12], uint16(i)) // the index, in the source address
		var v verdict
		if view, ok := faultReceived(frame); ok {
			n, err := vm.Run(view)
			if err != nil {
				t.Fatalf("frame %d %s: filter VM: %v", i, names[i], err)
			}
			if n > 0 {
				v.pass = true
				var p capture.Packet
				v.decodeError = capture.IsDecodeError(capture.Decode(capture.LinkEthernet, view[:min(n, len(view))], len(view), &p))
			}
		}
		want[i] = v
		if v.pass {
			wantPass++
		}
		if v.decodeError {
			wantErrors++
		}
		inject(frame)
		if sent++; sent%32 == 0 {
			time.Sleep(time.Millisecond) // let the receive queue drain
		}
	}
	t.Logf("%d frames, %d sent, %d predicted to reach the capture, %d of them decode errors", len(frames), sent, wantPass, wantErrors)

	// The kernel's verdict, seen by the observing socket.
	observed := faultReadObserved(t, obs, wantPass)
	var obsErrors int
	for i, v := range want {
		o, got := observed[i]
		if got != v.pass {
			t.Errorf("frame %d %s: reached a packet socket %v, predicted %v", i, names[i], got, v.pass)
			continue
		}
		if !got {
			continue
		}
		var p capture.Packet
		if capture.IsDecodeError(capture.Decode(capture.LinkEthernet, o.data, o.origLen, &p)) {
			obsErrors++
			if !v.decodeError {
				t.Errorf("frame %d %s: a decode error as received, not as predicted", i, names[i])
			}
		} else if v.decodeError {
			t.Errorf("frame %d %s: decodes as received, predicted a decode error", i, names[i])
		}
	}
	if len(observed) != wantPass || obsErrors != wantErrors {
		t.Errorf("the observing socket got %d frames with %d decode errors, predicted %d and %d", len(observed), obsErrors, wantPass, wantErrors)
	}

	// The check's count.
	waitFor(t, 5*time.Second, "the capture to process the frames", func() bool {
		h := live().Health()
		return h.Stats.Packets >= uint64(wantPass) && h.KernelPackets >= uint64(wantPass)
	})
	sc := faultRun(t, c, rec)
	b := rec.Last()
	h := live().Health()
	if got := faultCount(t, b, check.MetricDecodeErrors); got != float64(wantErrors) {
		t.Errorf("%s = %v, want %d", check.MetricDecodeErrors, got, wantErrors)
	}
	if got := faultCount(t, b, check.MetricPacketsReceived); got != float64(wantPass) {
		t.Errorf("%s = %v, want %d", check.MetricPacketsReceived, got, wantPass)
	}
	if h.Stats.DecodeErrors != uint64(wantErrors) || h.Stats.Packets != uint64(wantPass) || h.Panics != 0 {
		t.Errorf("health: %d packets, %d decode errors, %d panics; want %d, %d and 0", h.Stats.Packets, h.Stats.DecodeErrors, h.Panics, wantPass, wantErrors)
	}
	if !faultIsOK(sc) {
		t.Errorf("service check %v %q, want OK", sc.Status, sc.Message)
	}
}

// faultPanicResolver resolves every host to addr, but its first lookup
// waits for gate to close and then panics.
type faultPanicResolver struct {
	addr  netip.Addr
	gate  chan struct{}
	calls atomic.Int32
}

const faultPanicValue = "injected by TestFaultPanic"

func (r *faultPanicResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		panic(faultPanicValue)
	}
	return []netip.Addr{r.addr}, nil
}

// TestFaultPanic injects a panic into the packet goroutine (through the
// engine's OnSample callback) and into the resolver goroutine (through a
// Resolver), once the capture runs. The process stays up; the next run is
// CRITICAL with the panic; the goroutine restarts after its backoff; the
// capture goes on, and a later run is OK with RTT samples.
func TestFaultPanic(t *testing.T) {
	tests := []struct {
		name      string
		goroutine string
		hosts     bool
	}{
		{name: "packet-goroutine", goroutine: "capture"},
		{name: "resolver-goroutine", goroutine: "resolver", hosts: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pair := testbed.NewVethPair(t)
			var (
				armed    atomic.Bool
				panicked atomic.Int64 // when the packet goroutine panicked, in Unix ns
			)
			resolver := &faultPanicResolver{addr: pair.ServerAddr4, gate: make(chan struct{})}
			extra := ""
			if tt.hosts {
				extra = "hosts: [server.test]"
			}
			c, live := faultLiveCheck(t, pair.Client, pair.ClientIf, extra, func(cfg *capture.LiveConfig) {
				cfg.Resolver = resolver
				cfg.Engine.OnSample = func(capture.Sample) {
					if tt.goroutine == "capture" && armed.CompareAndSwap(true, false) {
						panicked.Store(time.Now().UnixNano())
						panic(faultPanicValue)
					}
				}
			})
			t.Cleanup(func() {
				select {
				case <-resolver.gate:
				default:
					close(resolver.gate)
				}
			})
			rec := newRecorder(t)
			faultRun(t, c, rec)
			waitFor(t, 3*time.Second, "capturing", func() bool { return live().Health().State == capture.StateCapturing })

			armed.Store(true)
			if tt.goroutine == "capture" {
				faultTraffic(t, pair.Path4(), 3)
			} else {
				close(resolver.gate)
			}
			// Panics counts first, then LastError and the state change.
			waitFor(t, 5*time.Second, "the panic", func() bool {
				h := live().Health()
				return h.Panics == 1 && h.LastError != nil && strings.Contains(h.LastError.Error(), faultPanicValue)
			})
			h := live().Health()
			if tt.goroutine == "resolver" && h.State != capture.StateCapturing {
				t.Errorf("state %v after a panic of the resolver goroutine, want capturing: the socket is still open", h.State)
			}
			if tt.goroutine == "capture" {
				// The goroutine restarts after a backoff of 100 ms.
				waitFor(t, 3*time.Second, "capture to resume", func() bool { return live().Health().State == capture.StateCapturing })
				if d := time.Since(time.Unix(0, panicked.Load())); d < 100*time.Millisecond {
					t.Errorf("the packet goroutine was capturing again %v after its panic, want a backoff of 100 ms", d)
				}
			}

			sc := faultRun(t, c, rec)
			for _, want := range []string{tt.goroutine + " goroutine panicked", faultPanicValue, "restarts by itself with backoff", "please report"} {
				if !strings.Contains(sc.Message, want) {
					t.Errorf("message %q lacks %q", sc.Message, want)
				}
			}
			if sc.Status != servicecheck.ServiceCheckCritical {
				t.Errorf("run after the panic: %v, want CRITICAL", sc.Status)
			}
			t.Logf("run after the panic: %v %.200q...", sc.Status, sc.Message)

			// Capture goes on; the resolver goroutine, restarted, resolves
			// server.test and the filter follows.
			if tt.hosts {
				waitFor(t, 5*time.Second, "server.test to resolve", func() bool {
					return slices.Contains(live().Peers().Prefixes(), netip.PrefixFrom(pair.ServerAddr4, 32))
				})
				time.Sleep(300 * time.Millisecond) // the capture installs the new filter within 250 ms
			}
			faultTraffic(t, pair.Path4(), 5)
			_, seen := faultRunUntil(t, c, rec, 3*time.Second, "OK", faultIsOK)
			b := rec.Last()
			if n := faultSamples(b); n == 0 {
				t.Errorf("no RTT samples after the recovered panic (states %v)", seen)
			}
			if tt.hosts && len(b.Find(check.MetricRTT, "dst:server.test")) != 1 {
				t.Errorf("no %s series with dst:server.test", check.MetricRTT)
			}
			if h := live().Health(); h.Panics != 1 {
				t.Errorf("%d panics, want 1", h.Panics)
			}
		})
	}
}

// TestFaultCycles configures, runs and cancels a live check 1000 times
// (8 at a time, as the Agent's workers might), each capture opening its
// socket, and checks that no goroutine and no file descriptor is left.
func TestFaultCycles(t *testing.T) {
	const cycles, workers = 1000, 8
	pair := testbed.NewVethPair(t)
	inst := fmt.Sprintf("interface: %s\nnetns: %s\nring_size: %d", pair.ClientIf, pair.Client.Path(), capture.MinRingSize)
	var failures atomic.Int32
	cycle := func() {
		c := &check.Check{StartWait: 2 * time.Second}
		if err := c.Configure([]byte(inst), nil); err != nil {
			t.Error(err)
			return
		}
		rec := &check.Recorder{}
		err := c.Run(rec)
		c.Cancel()
		sc := rec.Last().ServiceChecks
		if err != nil || len(sc) != 1 || sc[0].Status != servicecheck.ServiceCheckOK {
			if failures.Add(1) <= 3 {
				t.Errorf("cycle: Run() = %v, service checks %+v, want OK: the capture did not open", err, sc)
			}
		}
	}
	cycle() // once, so that what the runtime starts lazily counts as before
	before := goleak.IgnoreCurrent()
	fds := faultFDs(t)
	start := time.Now()
	var wg sync.WaitGroup
	var next atomic.Int32
	for range workers {
		wg.Go(func() {
			for next.Add(1) <= cycles {
				cycle()
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d cycles in %v (%v each, %d at a time)", cycles, elapsed, elapsed/cycles, workers)
	if err := goleak.Find(before); err != nil {
		t.Errorf("goroutines left after %d cycles: %v", cycles, err)
	}
	if after := faultFDs(t); len(after) > len(fds) {
		var extra []string
		for fd, target := range after {
			if _, ok := fds[fd]; !ok {
				extra = append(extra, fd+" -> "+target)
			}
		}
		slices.Sort(extra)
		t.Errorf("%d file descriptors before the cycles, %d after; new: %v", len(fds), len(after), extra)
	}
}

// faultFDs returns this process's open file descriptors and what they
// point to.
func faultFDs(t *testing.T) map[string]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(ents))
	for _, e := range ents {
		target, _ := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		out[e.Name()] = target
	}
	return out
}

// TestFaultRingOverflow stalls the packet goroutine on its first sample
// while a packet generator floods the smallest ring: the run after is
// WARNING with the drops and go_metro.packets.dropped counts them; runs
// stay fast while the goroutine is stalled; the run after that is OK.
func TestFaultRingOverflow(t *testing.T) {
	pair := testbed.NewVethPair(t)
	stall := make(chan struct{})
	var once, release sync.Once
	unstall := func() { release.Do(func() { close(stall) }) }
	c, live := faultLiveCheck(t, pair.Client, pair.ClientIf, fmt.Sprintf("ring_size: %d", capture.MinRingSize), func(cfg *capture.LiveConfig) {
		cfg.Engine.OnSample = func(capture.Sample) { once.Do(func() { <-stall }) }
	})
	t.Cleanup(unstall) // before the check's Cancel, registered earlier
	rec := newRecorder(t)
	if sc := faultRun(t, c, rec); !faultIsOK(sc) {
		t.Fatalf("first run: %v %q, want OK", sc.Status, sc.Message)
	}
	waitFor(t, 3*time.Second, "capturing", func() bool { return live().Health().State == capture.StateCapturing })

	// The blaster's flows run from the client's address, local to the
	// capture, so that its ACKs yield samples: the first one stalls the
	// packet goroutine.
	bl := testbed.NewBlaster(t, pair.Server, pair.ServerIf, testbed.BlastConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := bl.Blast(ctx, 0, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sent %d frames at %.0f/s", res.Frames, res.Rate())
	for range 3 { // stalled: runs stay fast
		faultRun(t, c, rec)
	}
	unstall()
	waitFor(t, 5*time.Second, "the kernel's drop counter", func() bool { return live().Health().KernelDrops > 0 })
	sc := faultRun(t, c, rec)
	b := rec.Last()
	dropped, h := faultCount(t, b, check.MetricPacketsDropped), live().Health()
	t.Logf("%s = %v, kernel packets %d, drops %d; service check %v %q", check.MetricPacketsDropped, dropped, h.KernelPackets, h.KernelDrops, sc.Status, sc.Message)
	if dropped <= 0 {
		t.Errorf("%s = %v, want more than 0", check.MetricPacketsDropped, dropped)
	}
	if sc.Status != servicecheck.ServiceCheckWarning {
		t.Errorf("service check %v, want WARNING", sc.Status)
	}
	for _, want := range []string{"the kernel dropped", "capture ring was full", fmt.Sprintf("raise `ring_size` (now %d bytes)", capture.MinRingSize)} {
		if !strings.Contains(sc.Message, want) {
			t.Errorf("message %q lacks %q", sc.Message, want)
		}
	}
	if w := fmt.Sprint(c.Warnings()); !strings.Contains(w, "ring was full") {
		t.Errorf("Warnings() = %s, want the drops", w)
	}
	// No more drops: OK again.
	time.Sleep(300 * time.Millisecond)
	if sc := faultRun(t, c, rec); !faultIsOK(sc) {
		t.Errorf("run without drops: %v %q, want OK", sc.Status, sc.Message)
	}
	if d := faultCount(t, rec.Last(), check.MetricPacketsDropped); d != 0 {
		t.Errorf("run without drops: %s = %v, want 0", check.MetricPacketsDropped, d)
	}
}

// TestFaultInterfaceRecreated deletes the captured interface and creates
// it again: the check is CRITICAL naming the cause while it is gone, then
// OK with samples, without a restart.
func TestFaultInterfaceRecreated(t *testing.T) {
	pair := testbed.NewVethPair(t)
	c, _ := faultLiveCheck(t, pair.Client, pair.ClientIf, "", func(cfg *capture.LiveConfig) { cfg.MaxBackoff = 200 * time.Millisecond })
	rec := newRecorder(t)
	faultRunUntil(t, c, rec, 3*time.Second, "OK", faultIsOK)
	if err := pair.Client.IP("link", "del", pair.ClientIf); err != nil {
		t.Fatal(err)
	}
	sc, seen := faultRunUntil(t, c, rec, 5*time.Second, "CRITICAL naming the missing interface", func(sc check.ServiceCheckResult) bool {
		return sc.Status == servicecheck.ServiceCheckCritical && strings.Contains(sc.Message, "no such network interface")
	})
	t.Logf("while deleted: %v %q (states %v)", sc.Status, sc.Message, seen)
	if !strings.Contains(sc.Message, pair.ClientIf) {
		t.Errorf("message %q does not name %s", sc.Message, pair.ClientIf)
	}
	if err := pair.Recreate(); err != nil {
		t.Fatal(err)
	}
	_, seen = faultRunUntil(t, c, rec, 5*time.Second, "OK", faultIsOK)
	t.Logf("after recreating: states %v", seen)
	faultTraffic(t, pair.Path4(), 5)
	if sc := faultRun(t, c, rec); !faultIsOK(sc) || faultSamples(rec.Last()) == 0 {
		t.Errorf("run with traffic after recreating: %v %q, %v samples; want OK with samples", sc.Status, sc.Message, faultSamples(rec.Last()))
	}
}

// faultHangingResolver never answers.
type faultHangingResolver struct{}

func (faultHangingResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestFaultRunLatency runs checks whose capture cannot start or cannot
// find its peers, with the production backoff, beside a healthy one, as
// the Agent's scheduler would, and checks that every Run, the first and
// the later ones, returns within faultRunMax, and that the failing captures
// retry with backoff rather than spin.
func TestFaultRunLatency(t *testing.T) {
	pair := testbed.NewVethPair(t)
	empty := testbed.NewNetNS(t)
	type instance struct {
		name     string
		c        *check.Check
		live     func() *capture.Live
		status   servicecheck.ServiceCheckStatus
		message  string
		failures bool // the capture keeps failing to open
	}
	newInstance := func(name string, ns *testbed.NetNS, iface, extra string, status servicecheck.ServiceCheckStatus, message string, failures bool) *instance {
		c, live := faultLiveCheck(t, ns, iface, extra, func(cfg *capture.LiveConfig) { cfg.Resolver = faultHangingResolver{} })
		c.StartWait = 0 // the default: the Agent's
		return &instance{name, c, live, status, message, failures}
	}
	instances := []*instance{
		newInstance("interface-never-appears", empty, "gm-never0", "", servicecheck.ServiceCheckCritical, "gm-never0", true),
		newInstance("hosts-never-resolve", pair.Client, pair.ClientIf, "hosts: [db.invalid]", servicecheck.ServiceCheckWarning, "db.invalid", false),
		newInstance("healthy", pair.Client, pair.ClientIf, "", servicecheck.ServiceCheckOK, "", false),
	}
	{
		// A namespace path that does not exist.
		c := configure(t, "interface: eth0\nnetns: /run/netns/gm-never-"+strconv.Itoa(os.Getpid()), "")
		var live atomic.Pointer[capture.Live]
		c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
			l, err := capture.NewLive(cfg)
			live.Store(l)
			return l, err
		}
		t.Cleanup(c.Cancel)
		instances = append(instances, &instance{"netns-missing", c, live.Load, servicecheck.ServiceCheckCritical, "gm-never-", true})
	}
	rec := newRecorder(t)
	var slowest time.Duration
	start := time.Now()
	for i := range 30 {
		for _, in := range instances {
			t0 := time.Now()
			err := in.c.Run(rec)
			d := time.Since(t0)
			slowest = max(slowest, d)
			if limit := runLimit(in.c, i == 0); d > limit {
				t.Errorf("%s: run %d took %v, want under %v", in.name, i, d, limit)
			}
			if err != nil {
				t.Fatalf("%s: run %d: %v", in.name, i, err)
			}
			if i < 10 {
				continue // the capture opens, and a host resolves or times out
			}
			sc := canCapture(t, rec.Last())
			if sc.Status != in.status || !strings.Contains(sc.Message, in.message) {
				t.Errorf("%s: run %d: %v %q, want %v naming %q", in.name, i, sc.Status, sc.Message, in.status, in.message)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	t.Logf("slowest of %d runs: %v", 30*len(instances), slowest)
	for _, in := range instances {
		h := in.live().Health()
		if in.failures {
			// With a backoff from 100 ms doubling, at most about
			// log2(elapsed/100ms)+1 attempts.
			if h.Failures < 2 || h.Failures > 7 {
				t.Errorf("%s: %d failures in %v, want 2 to 7: the capture retries with backoff", in.name, h.Failures, elapsed)
			}
			t.Logf("%s: %d failures in %v: %v", in.name, h.Failures, elapsed, h.LastError)
		}
	}
}

// The child processes of TestFaultPermissionLoss and TestFaultLeastPrivilege
// are this test binary again, run by `ip netns exec NAME setpriv ...` inside
// the client namespace of a veth pair (entering a namespace needs
// CAP_SYS_ADMIN, which the child must not have), as uid 65534 with
// CAP_NET_RAW alone, in its permitted, effective, inheritable, ambient and
// bounding sets, and no_new_privs, as packaging/go-metro.service runs the
// daemon. faultChildEnv tells the child which part to play. The child
// reports on standard output, in lines that start with faultChildPrefix,
// and waits for the parent's steps on standard input.
const (
	faultChildEnv    = "GO_METRO_FAULT_CHILD"
	faultChildPrefix = "gm-child: "
)

// faultChild is a running child process.
type faultChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string   // its reports, closed at the end of its output
	exited chan struct{} // closed when it has exited; then waitErr is set
	// waitErr is what cmd.Wait returned.
	waitErr error

	mu  sync.Mutex
	out bytes.Buffer // everything the child wrote
}

// startFaultChild runs exe -test.run=^test$ in ns as uid 65534 with
// CAP_NET_RAW alone, playing role.
func startFaultChild(t *testing.T, exe string, ns *testbed.NetNS, test, role string) *faultChild {
	t.Helper()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// ip netns exec execs setpriv, which execs the test binary: the
	// context kills the child itself.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name(), setpriv,
		"--reuid=65534", "--regid=65534", "--clear-groups",
		"--inh-caps=-all,+net_raw", "--ambient-caps=-all,+net_raw", "--bounding-set=-all,+net_raw", "--no-new-privs",
		exe, "-test.run=^"+test+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), faultChildEnv+"="+role)
	cmd.Dir = filepath.Dir(exe)
	ch := &faultChild{t: t, cmd: cmd, lines: make(chan string, 100), exited: make(chan struct{})}
	ch.stdin, err = cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &faultLockedWriter{ch}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s := bufio.NewScanner(stdout)
		for s.Scan() {
			ch.mu.Lock()
			ch.out.WriteString(s.Text() + "\n")
			ch.mu.Unlock()
			if l, ok := strings.CutPrefix(s.Text(), faultChildPrefix); ok {
				select {
				case ch.lines <- l:
				default: // nobody reads after a failure: keep going, to reach Wait
				}
			}
		}
		close(ch.lines)
		// Wait closes the pipe: only once everything is read.
		ch.waitErr = cmd.Wait()
		close(ch.exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-ch.exited:
		case <-time.After(10 * time.Second):
			t.Error("the child did not end within 10 s of being killed")
		}
		if t.Failed() {
			t.Logf("child output:\n%s", ch.output())
		}
	})
	return ch
}

type faultLockedWriter struct{ ch *faultChild }

func (w *faultLockedWriter) Write(p []byte) (int, error) {
	w.ch.mu.Lock()
	defer w.ch.mu.Unlock()
	return w.ch.out.Write(p)
}

func (ch *faultChild) output() string {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.out.String()
}

// expect returns the rest of the child's next report, which must start
// with word, within d.
func (ch *faultChild) expect(word string, d time.Duration) string {
	ch.t.Helper()
	select {
	case l, ok := <-ch.lines:
		if !ok {
			ch.t.Fatalf("the child ended before reporting %q", word)
		}
		rest, found := strings.CutPrefix(l, word)
		if !found || (rest != "" && rest[0] != ' ') {
			ch.t.Fatalf("the child reported %q, want %q", l, word)
		}
		return strings.TrimPrefix(rest, " ")
	case <-time.After(d):
		ch.t.Fatalf("the child did not report %q within %v", word, d)
	}
	return ""
}

// send tells the child to go on with step.
func (ch *faultChild) send(step string) {
	ch.t.Helper()
	if _, err := io.WriteString(ch.stdin, step+"\n"); err != nil {
		ch.t.Fatalf("tell the child %q: %v", step, err)
	}
}

// wait waits for the child to pass.
func (ch *faultChild) wait() {
	ch.t.Helper()
	select {
	case <-ch.exited:
		if ch.waitErr != nil || !strings.Contains(ch.output(), "\nPASS\n") {
			ch.t.Fatalf("child: %v", ch.waitErr)
		}
	case <-time.After(10 * time.Second):
		ch.t.Fatal("the child did not end within 10 s")
	}
}

// faultSay reports to the parent.
func faultSay(format string, args ...any) {
	fmt.Printf(faultChildPrefix+format+"\n", args...)
}

// faultAwait waits for the parent's step, read from in.
func faultAwait(t *testing.T, in *bufio.Scanner, step string) {
	t.Helper()
	if !in.Scan() {
		t.Fatalf("waiting for %q: standard input closed", step)
	}
	if got := in.Text(); got != step {
		t.Fatalf("waiting for %q, got %q", step, got)
	}
}

// faultCaps returns the capability sets of this process, as
// /proc/self/status shows them, and those of each of its threads.
func faultCaps(t *testing.T) (proc map[string]string, threads []map[string]string) {
	t.Helper()
	read := func(path string) map[string]string {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for line := range strings.Lines(string(data)) {
			k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
			if ok && (strings.HasPrefix(k, "Cap") || k == "Uid" || k == "Gid" || k == "NoNewPrivs" || k == "Groups") {
				m[k] = strings.Join(strings.Fields(v), " ")
			}
		}
		return m
	}
	proc = read("/proc/self/status")
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		threads = append(threads, read(filepath.Join("/proc/self/task", task.Name(), "status")))
	}
	return proc, threads
}

// faultThreadsEff summarises the effective sets of the threads:
// "threads=N eff=X" when all are X, or the list.
func faultThreadsEff(threads []map[string]string) string {
	var effs []string
	for _, th := range threads {
		effs = append(effs, th["CapEff"])
	}
	u := slices.Compact(slices.Sorted(slices.Values(effs)))
	if len(u) == 1 {
		return fmt.Sprintf("threads=%d eff=%s", len(effs), u[0])
	}
	return fmt.Sprintf("threads=%d eff=mixed:%s", len(effs), strings.Join(effs, ","))
}

// faultSetNetRaw raises or drops CAP_NET_RAW in the effective set of every
// thread of the process, keeping it permitted. capset(2) changes only the
// calling thread, and the socket may be opened on any thread: hence
// syscall.AllThreadsSyscall, which needs a binary without cgo.
func faultSetNetRaw(on bool) error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("capget: %w", err)
	}
	bit := uint32(1) << unix.CAP_NET_RAW
	if on {
		data[0].Effective |= bit
	} else {
		data[0].Effective &^= bit
	}
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_CAPSET, uintptr(unsafe.Pointer(&hdr)), uintptr(unsafe.Pointer(&data[0])), 0)
	if errno != 0 {
		return fmt.Errorf("capset on all threads: %w", errno)
	}
	return nil
}

// faultChildCheck configures the check that the children run, on veth0 of
// the namespace they were started in.
func faultChildCheck(t *testing.T) *check.Check {
	t.Helper()
	c := configure(t, fmt.Sprintf("interface: veth0\nring_size: %d", capture.MinRingSize), "")
	c.StartWait = 2 * time.Second
	c.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		cfg.MaxBackoff = 200 * time.Millisecond
		return capture.NewLive(cfg)
	}
	return c
}

// faultChildRunUntil is faultRunUntil for a child: it reports a timeout
// instead of failing, so that the parent sees it.
func faultChildRunUntil(c *check.Check, rec *check.Recorder, d time.Duration, ok func(check.ServiceCheckResult) bool) (check.ServiceCheckResult, bool) {
	var sc check.ServiceCheckResult
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		first := len(rec.Batches()) == 0
		start := time.Now()
		_ = c.Run(rec)
		if d := time.Since(start); d > runLimit(c, first) {
			faultSay("slow-run %v", d)
		}
		if scs := rec.Last().ServiceChecks; len(scs) == 1 {
			sc = scs[0]
		}
		if ok(sc) {
			return sc, true
		}
	}
	return sc, false
}

// faultBuildNoCgo builds this package's test binary without cgo, which
// syscall.AllThreadsSyscall needs (a binary that links cgo, as any -race
// binary does, gets ENOTSUP), where uid 65534 can run it.
func faultBuildNoCgo(t *testing.T) string {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the go command is needed to build a test binary without cgo: %v", err)
		}
		t.Skipf("the go command is needed to build a test binary without cgo: %v", err)
	}
	exe := filepath.Join(testbed.UnprivilegedDir(t), "check-nocgo.test")
	start := time.Now()
	cmd := exec.Command(gotool, "test", "-c", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go test -c with CGO_ENABLED=0: %v\n%s", err, out)
	}
	t.Logf("built the test binary without cgo in %v", time.Since(start).Round(time.Millisecond))
	return exe
}

// TestFaultPermissionLoss runs the check in a child process as uid 65534
// with CAP_NET_RAW alone. Once it captures, the child drops CAP_NET_RAW
// from the effective set of all its threads, keeping it permitted; the
// parent deletes and creates the interface again, so that the capture must
// reopen its socket, and the check turns CRITICAL naming CAP_NET_RAW. The
// child then raises the capability again, and the check is OK and times
// traffic.
func TestFaultPermissionLoss(t *testing.T) {
	if os.Getenv(faultChildEnv) == "permission-loss" {
		faultPermissionLossChild(t)
		return
	}
	pair := testbed.NewVethPair(t)
	exe := faultBuildNoCgo(t)
	ch := startFaultChild(t, exe, pair.Client, "TestFaultPermissionLoss", "permission-loss")
	caps := ch.expect("caps", 10*time.Second)
	t.Logf("child: %s", caps)
	if !strings.Contains(caps, "uid=65534 ") || !strings.Contains(caps, "eff=0000000000002000") {
		t.Fatalf("child capabilities %q: want uid 65534 with CAP_NET_RAW effective", caps)
	}
	ch.expect("status OK", 10*time.Second)

	dropped := ch.expect("dropped", 5*time.Second)
	t.Logf("child dropped CAP_NET_RAW: %s", dropped)
	if !strings.Contains(dropped, "eff=0000000000000000") || strings.Contains(dropped, "mixed") {
		t.Fatalf("child threads after the drop: %s, want every effective set empty", dropped)
	}
	if err := pair.Client.IP("link", "del", pair.ClientIf); err != nil {
		t.Fatal(err)
	}
	if err := pair.Recreate(); err != nil {
		t.Fatal(err)
	}
	ch.send("recreated")
	msg, err := strconv.Unquote(ch.expect("critical", 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child without CAP_NET_RAW: CRITICAL %q", msg)
	for _, want := range []string{"capture on veth0: operation not permitted", "grant CAP_NET_RAW", "setcap cap_net_raw+ep"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}

	raised := ch.expect("raised", 5*time.Second)
	if !strings.Contains(raised, "eff=0000000000002000") || strings.Contains(raised, "mixed") {
		t.Fatalf("child threads after raising: %s, want every effective set CAP_NET_RAW", raised)
	}
	ch.expect("status OK", 10*time.Second)
	ch.expect("ready", 5*time.Second)
	faultTraffic(t, pair.Path4(), 5)
	ch.send("traffic")
	samples := ch.expect("samples", 5*time.Second)
	t.Logf("child after regaining CAP_NET_RAW: %s", samples)
	if n, _, _ := strings.Cut(samples, " "); n == "0" || !strings.Contains(samples, "status=OK") {
		t.Errorf("child: %s, want samples and OK", samples)
	}
	ch.wait()
}

func faultPermissionLossChild(t *testing.T) {
	in := bufio.NewScanner(os.Stdin)
	proc, threads := faultCaps(t)
	faultSay("caps uid=%s eff=%s prm=%s amb=%s bnd=%s %s", proc["Uid"], proc["CapEff"], proc["CapPrm"], proc["CapAmb"], proc["CapBnd"], faultThreadsEff(threads))
	c := faultChildCheck(t)
	defer c.Cancel()
	rec := newRecorder(t)
	sc, ok := faultChildRunUntil(c, rec, 5*time.Second, faultIsOK)
	faultSay("status %s %q", sc.Status, sc.Message)
	if !ok {
		return
	}
	if err := faultSetNetRaw(false); err != nil {
		faultSay("error %v", err)
		t.Fatal(err)
	}
	_, threads = faultCaps(t)
	faultSay("dropped %s", faultThreadsEff(threads))
	faultAwait(t, in, "recreated")
	sc, ok = faultChildRunUntil(c, rec, 8*time.Second, func(sc check.ServiceCheckResult) bool {
		return sc.Status == servicecheck.ServiceCheckCritical && strings.Contains(sc.Message, "CAP_NET_RAW")
	})
	if !ok {
		faultSay("timeout %s %q", sc.Status, sc.Message)
		return
	}
	faultSay("critical %q", sc.Message)
	if err := faultSetNetRaw(true); err != nil {
		faultSay("error %v", err)
		t.Fatal(err)
	}
	_, threads = faultCaps(t)
	faultSay("raised %s", faultThreadsEff(threads))
	sc, _ = faultChildRunUntil(c, rec, 8*time.Second, faultIsOK)
	faultSay("status %s %q", sc.Status, sc.Message)
	faultSay("ready")
	faultAwait(t, in, "traffic")
	faultChildSamples(c, rec)
}

// faultChildSamples runs the check once and reports its samples and
// status.
func faultChildSamples(c *check.Check, rec *check.Recorder) {
	err := c.Run(rec)
	b := rec.Last()
	status := "none"
	if len(b.ServiceChecks) == 1 {
		status = b.ServiceChecks[0].Status.String()
	}
	var rtt []string
	for _, s := range b.Find(check.MetricRTT) {
		rtt = append(rtt, fmt.Sprintf("%.3fms", s.Points[0][1]))
	}
	faultSay("samples %.0f status=%s rtt=%s err=%v", faultSamples(b), status, strings.Join(rtt, ","), err)
}

// TestFaultLeastPrivilege runs the check in a child process as uid 65534
// with CAP_NET_RAW alone (no root, no other capability, no_new_privs),
// inside the client namespace of a veth pair, and checks that it captures
// the traffic the parent runs, with RTT samples and an OK service check.
func TestFaultLeastPrivilege(t *testing.T) {
	if os.Getenv(faultChildEnv) == "least-privilege" {
		faultLeastPrivilegeChild(t)
		return
	}
	pair := testbed.NewVethPair(t)
	ch := startFaultChild(t, testbed.CopyTestBinary(t, "check.test"), pair.Client, "TestFaultLeastPrivilege", "least-privilege")
	caps := ch.expect("caps", 10*time.Second)
	t.Logf("child: %s", caps)
	for _, want := range []string{"uid=65534 65534 65534 65534", "eff=0000000000002000", "prm=0000000000002000", "amb=0000000000002000",
		"bnd=0000000000002000", "nnp=1", "threads="} {
		if !strings.Contains(caps, want) {
			t.Errorf("child capabilities %q lack %q", caps, want)
		}
	}
	ch.expect("ready", 10*time.Second)
	faultTraffic(t, pair.Path4(), 10)
	faultTraffic(t, pair.Path6(), 10)
	ch.send("traffic")
	got := ch.expect("samples", 5*time.Second)
	t.Logf("unprivileged check: %s", got)
	if n, _, _ := strings.Cut(got, " "); n == "0" || !strings.Contains(got, "status=OK") || !strings.Contains(got, "err=<nil>") {
		t.Errorf("child: %s, want samples, OK and no error", got)
	}
	if strings.Count(strings.SplitN(got, "rtt=", 2)[1], "ms") != 2 {
		t.Errorf("child: %s, want an RTT series for each of the two peers", got)
	}
	ch.wait()
}

func faultLeastPrivilegeChild(t *testing.T) {
	in := bufio.NewScanner(os.Stdin)
	proc, threads := faultCaps(t)
	faultSay("caps uid=%s eff=%s prm=%s inh=%s amb=%s bnd=%s nnp=%s groups=%q %s", proc["Uid"], proc["CapEff"], proc["CapPrm"], proc["CapInh"],
		proc["CapAmb"], proc["CapBnd"], proc["NoNewPrivs"], proc["Groups"], faultThreadsEff(threads))
	c := faultChildCheck(t)
	defer c.Cancel()
	rec := newRecorder(t)
	sc, ok := faultChildRunUntil(c, rec, 5*time.Second, faultIsOK)
	if !ok {
		faultSay("timeout %s %q", sc.Status, sc.Message)
		return
	}
	faultSay("ready")
	faultAwait(t, in, "traffic")
	faultChildSamples(c, rec)
}
