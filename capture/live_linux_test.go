//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
	"go.uber.org/goleak"
)

// sampleLog collects the samples a Live capture emits.
type sampleLog struct {
	mu      sync.Mutex
	samples []Sample
}

func (s *sampleLog) add(x Sample) {
	s.mu.Lock()
	s.samples = append(s.samples, x)
	s.mu.Unlock()
}

// take returns and forgets the samples so far.
func (s *sampleLog) take() []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.samples
	s.samples = nil
	return out
}

// startLive starts a Live capture on the client side of a test bed and
// stops it at cleanup.
func startLive(t *testing.T, ns *testbed.NetNS, iface string, mod func(*LiveConfig)) (*Live, *sampleLog) {
	t.Helper()
	log := &sampleLog{}
	cfg := LiveConfig{Interface: iface, Netns: ns.Path(), MaxBackoff: 200 * time.Millisecond}
	if mod != nil {
		mod(&cfg)
	}
	cfg.Engine.OnSample = chainSample(cfg.Engine.OnSample, log.add)
	l, err := NewLive(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	waitFor(t, 5*time.Second, "capturing", func() bool { return l.Health().State == StateCapturing })
	return l, log
}

func chainSample(a, b func(Sample)) func(Sample) {
	if a == nil {
		return b
	}
	return func(s Sample) { a(s); b(s) }
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// flushWait lets the kernel hand over its partly filled ring block (it
// retires one after 64 ms) and the capture goroutine process it.
func flushWait() { time.Sleep(250 * time.Millisecond) }

// within reports whether got is within max(0.5 ms, 3 %) of want.
func within(got, want time.Duration) bool {
	tol := max(500*time.Microsecond, want*3/100)
	d := got - want
	return d >= -tol && d <= tol
}

type trafficPattern struct {
	name string
	run  func(ctx context.Context, p testbed.Path) error
}

var livePatterns = []trafficPattern{
	{"bulk", func(ctx context.Context, p testbed.Path) error { return testbed.Bulk(ctx, p, 256<<10) }},
	{"reqresp", func(ctx context.Context, p testbed.Path) error {
		return testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 30, Gap: 5 * time.Millisecond})
	}},
	{"short-conns", func(ctx context.Context, p testbed.Path) error {
		return testbed.ShortConnections(ctx, p, testbed.RequestResponseConfig{Count: 20})
	}},
}

// sparsePatterns are the live patterns that never have many segments in
// flight: go-metro times every ACK of them, as the reference does.
var sparsePatterns = map[string]bool{"reqresp": true, "short-conns": true}

// TestLiveRTT runs real TCP traffic across a veth pair and across the TAP
// delay line, over IPv4 and IPv6, and compares each sample with the
// reference from the same frames: a packet socket of its own on the same
// interface (testbed.RetransTracker) sees every frame with the kernel
// timestamp the capture reads. Every sample must be the reference's sample
// of the same ACK, to the nanosecond (on a veth device, which stamps a
// frame it receives once per socket, see testbed.VethSlack); on
// request/response and short
// connections, the samples must be exactly the reference's; and the median
// must be within max(0.5 ms, 3 %) of the reference's median of the same
// ACKs. In a bulk transfer go-metro times a subset of the ACKs by design
// (at most MaxTimedSegments segments at once, one per TSval tick).
func TestLiveRTT(t *testing.T) {
	testbed.RequireRoot(t)
	for _, topo := range []string{"veth", "delayline-5ms"} {
		t.Run(topo, func(t *testing.T) {
			var pair *testbed.Pair
			slack := testbed.TapSlack // a TAP device stamps each frame once
			if topo == "veth" {
				pair = testbed.NewVethPair(t)
				slack = testbed.VethSlack
			} else {
				dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
					ClientToServer: testbed.Impairment{Delay: 5 * time.Millisecond},
					ServerToClient: testbed.Impairment{Delay: 5 * time.Millisecond},
				})
				pair = &dl.Pair
			}
			tracker := testbed.TrackRetransmissions(t, pair.Client, pair.ClientIf)
			l, log := startLive(t, pair.Client, pair.ClientIf, nil)
			for _, path := range []testbed.Path{pair.Path4(), pair.Path6()} {
				fam := "v4"
				if path.Dst.Is6() {
					fam = "v6"
				}
				for _, pat := range livePatterns {
					t.Run(fam+"/"+pat.name, func(t *testing.T) {
						log.take()
						start := time.Now()
						ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
						defer cancel()
						if err := pat.run(ctx, path); err != nil {
							t.Fatal(err)
						}
						flushWait()
						ref, err := tracker.Reference()
						if err != nil {
							t.Fatal(err)
						}
						ref = ref.To(path.Dst).Between(start, time.Now())
						var ms []testbed.Measured
						methods := map[Method]int{}
						for _, s := range log.take() {
							if s.Remote.Addr() == path.Dst {
								ms = append(ms, testbed.Measured{Time: s.Time, RTT: s.RTT, Method: s.Method.String()})
								methods[s.Method]++
							}
						}
						if len(ms) == 0 {
							t.Fatalf("no samples (health %+v)", l.Health())
						}
						c := ref.Compare(ms, slack)
						var rtts []time.Duration
						for _, m := range ms {
							rtts = append(rtts, m.RTT)
						}
						med, refMed := testbed.Quantile(rtts, 0.5), testbed.Quantile(c.Same, 0.5)
						t.Logf("%d samples %v, median %v; reference %d samples %v, median %v (same ACKs: %v); %v",
							len(ms), methods, med, len(ref), ref.Counts(), ref.Median(), refMed, c)
						for _, why := range c.Differ {
							t.Errorf("unlike the reference: %s", why)
						}
						if sparsePatterns[pat.name] && !c.Covered() {
							t.Errorf("%v: want the samples of every ACK the reference timed, and no other", c)
						}
						if len(c.Same) == 0 || !within(med, refMed) {
							t.Errorf("median %v not within max(0.5ms, 3%%) of the reference's %v for the same ACKs", med, refMed)
						}
					})
				}
			}
			h := l.Health()
			if h.KernelPackets == 0 {
				t.Errorf("kernel packet counter still 0 after traffic: %+v", h)
			}
			if h.Stats.DecodeErrors != 0 {
				t.Errorf("decode errors %d", h.Stats.DecodeErrors)
			}
		})
	}
}

// TestLiveKernelDrops stalls the capture goroutine while traffic fills the
// smallest ring, and checks that the kernel's drop counter is read.
func TestLiveKernelDrops(t *testing.T) {
	pair := testbed.NewVethPair(t)
	var once sync.Once
	stall := make(chan struct{})
	l, _ := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) {
		c.RingSize = MinRingSize
		c.Engine.OnSample = func(Sample) { once.Do(func() { <-stall }) }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Some 40,000 small packets: ten times what the smallest ring holds.
	if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 10000}); err != nil {
		close(stall)
		t.Fatal(err)
	}
	close(stall)
	flushWait()
	waitFor(t, 3*time.Second, "kernel counters", func() bool {
		h := l.Health()
		return h.KernelPackets > 0 && h.KernelDrops > 0
	})
	h := l.Health()
	t.Logf("kernel packets %d, drops %d", h.KernelPackets, h.KernelDrops)
}

// TestLiveInterfaceRecreated deletes the captured interface and creates it
// again, and checks that capture resumes without a restart; likewise for
// down and up.
func TestLiveInterfaceRecreated(t *testing.T) {
	pair := testbed.NewVethPair(t)
	l, log := startLive(t, pair.Client, pair.ClientIf, nil)
	traffic := func() {
		t.Helper()
		log.take()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 5}); err != nil {
			t.Fatal(err)
		}
		flushWait()
		if n := len(log.take()); n == 0 {
			t.Fatalf("no samples after traffic (health %+v)", l.Health())
		}
	}
	traffic()

	// Down and up.
	if err := pair.Client.IP("link", "set", pair.ClientIf, "down"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "failure on link down", func() bool { return l.Health().LastError != nil })
	if err := pair.Client.IP("link", "set", pair.ClientIf, "up"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "capture to resume", func() bool { return l.Health().State == StateCapturing })
	time.Sleep(2 * time.Second) // the veth peer comes up, IPv4 needs no DAD
	traffic()

	// Delete and recreate.
	if err := pair.Client.IP("link", "del", pair.ClientIf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "missing interface", func() bool {
		h := l.Health()
		return h.State == StateRetrying && errors.Is(h.LastError, ErrNoInterface)
	})
	t.Logf("while deleted: %v", l.Health().LastError)
	if err := pair.Recreate(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "capture to resume", func() bool { return l.Health().State == StateCapturing })
	traffic()
}

// TestLiveMissingInterface starts on an interface that does not exist yet.
func TestLiveMissingInterface(t *testing.T) {
	testbed.RequireRoot(t)
	ns := testbed.NewNetNS(t)
	l, err := NewLive(LiveConfig{Interface: "gm-late0", Netns: ns.Path(), MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	waitFor(t, 3*time.Second, "missing interface error", func() bool { return errors.Is(l.Health().LastError, ErrNoInterface) })
	msg := l.Health().LastError.Error()
	if !strings.Contains(msg, "gm-late0") || !strings.Contains(msg, "retrying") {
		t.Errorf("error %q should name the interface and say it retries", msg)
	}
	if err := ns.IP("link", "add", "gm-late0", "type", "veth", "peer", "name", "gm-late1"); err != nil {
		t.Fatal(err)
	}
	if err := ns.IP("link", "set", "gm-late0", "up"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "capture on the new interface", func() bool { return l.Health().State == StateCapturing })
}

// TestLivePanicRecovered injects a panic on the packet goroutine and checks
// that it is reported and capture goes on.
func TestLivePanicRecovered(t *testing.T) {
	pair := testbed.NewVethPair(t)
	var once sync.Once
	l, log := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) {
		c.Engine.OnSample = func(Sample) { once.Do(func() { panic("injected by the test") }) }
	})
	failures := l.Health().Failures
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 5}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "panic report", func() bool { return l.Health().Panics == 1 })
	h := l.Health()
	if h.LastError == nil || !strings.Contains(h.LastError.Error(), "injected by the test") {
		t.Errorf("last error %v should carry the panic", h.LastError)
	}
	// The panic came in the middle of a ring block, which is a batch of
	// the engine and holds the lock that Drain takes: it must have been
	// given back.
	drained := make(chan struct{})
	go func() {
		l.Drain(nil)
		close(drained)
	}()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
		t.Fatal("Drain blocked after a panic inside a ring block")
	}
	// The attempt that panicked closes its socket, counts as a failure,
	// and the capture reopens: until then it may still say capturing.
	waitFor(t, 5*time.Second, "capture to resume", func() bool {
		h := l.Health()
		return h.Failures > failures && h.State == StateCapturing
	})
	log.take()
	if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 5}); err != nil {
		t.Fatal(err)
	}
	// The ring hands over its block within 64 ms; a busy machine may
	// take longer to process it.
	var n int
	waitFor(t, 5*time.Second, "samples after the recovered panic", func() bool {
		n += len(log.take())
		return n > 0
	})
}

// TestLiveStop checks that Stop ends every goroutine within a second and
// releases the socket.
func TestLiveStop(t *testing.T) {
	pair := testbed.NewVethPair(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	l, err := NewLive(LiveConfig{Interface: pair.ClientIf, Netns: pair.Client.Path(),
		Peers: PeerSpec{Hosts: []string{"peer.invalid"}}, Resolver: fakeSlowResolver{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "capturing", func() bool { return l.Health().State == StateCapturing })
	fds := countFDs(t)
	start := time.Now()
	l.Stop()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Stop took %v, want under 1 s", d)
	}
	if after := countFDs(t); after >= fds {
		t.Errorf("open file descriptors %d before Stop, %d after: the socket was not released", fds, after)
	}
}

type fakeSlowResolver struct{}

func (fakeSlowResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestLivePermissionDenied runs capture in a process without CAP_NET_RAW
// (the test binary again, as uid 65534 with no capabilities) and checks
// the error names the capability and the setcap command.
func TestLivePermissionDenied(t *testing.T) {
	if os.Getenv("GO_METRO_PERM_CHILD") == "1" {
		l, err := NewLive(LiveConfig{Interface: "lo"})
		if err != nil {
			fmt.Println("NewLive:", err)
			os.Exit(3)
		}
		err = l.open()
		fmt.Printf("errors.Is(ErrPermission)=%v\n%v\n", errors.Is(err, ErrPermission), err)
		os.Exit(0)
	}
	testbed.RequireRoot(t)
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Fatalf("setpriv (util-linux) is needed: %v", err)
	}
	exe := testbed.CopyTestBinary(t, "capture.test")
	dir := filepath.Dir(exe)
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		exe, "-test.run=^TestLivePermissionDenied$")
	cmd.Env = append(os.Environ(), "GO_METRO_PERM_CHILD=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("unprivileged capture: %s", got)
	for _, want := range []string{"errors.Is(ErrPermission)=true", "capture on lo: operation not permitted", "grant CAP_NET_RAW (setcap cap_net_raw+ep ", "or run as root"} {
		if !strings.Contains(got, want) {
			t.Errorf("child output lacks %q", want)
		}
	}
}

// TestLiveLocalAddrs checks the local set follows the interface's
// addresses, plus the configured extra ones.
func TestLiveLocalAddrs(t *testing.T) {
	pair := testbed.NewVethPair(t)
	l, _ := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) { c.Local = []string{"198.51.100.0/24"} })
	local := l.local()
	for _, a := range []netip.Addr{pair.ClientAddr4, pair.ClientAddr6, netip.MustParseAddr("198.51.100.9")} {
		if !local.Contains(a) {
			t.Errorf("local set %v lacks %v", local, a)
		}
	}
	if local.Contains(pair.ServerAddr4) {
		t.Errorf("local set %v has the server's address", local)
	}
	extra := netip.MustParseAddr("192.0.2.77")
	if err := pair.Client.IP("addr", "add", extra.String()+"/32", "dev", pair.ClientIf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "new address in the local set", func() bool { return l.local().Contains(extra) })
}

// TestLivePeersAllLocal checks a peer list of only local addresses is
// rejected, as go-metro does.
func TestLivePeersAllLocal(t *testing.T) {
	pair := testbed.NewVethPair(t)
	l, err := NewLive(LiveConfig{Interface: pair.ClientIf, Netns: pair.Client.Path(), Peers: PeerSpec{IPs: []string{pair.ClientAddr4.String()}}})
	if err != nil {
		t.Fatal(err)
	}
	err = l.Start()
	if err == nil {
		l.Stop()
		t.Fatal("Start accepted a peer list of local addresses only")
	}
	if !strings.Contains(err.Error(), "all local addresses") {
		t.Errorf("error %q", err)
	}
}

// TestLivePeerFilter checks that only the configured peers are captured.
func TestLivePeerFilter(t *testing.T) {
	pair := testbed.NewVethPair(t)
	l, log := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) {
		c.Peers = PeerSpec{IPs: []string{pair.ServerAddr6.String()}}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []testbed.Path{pair.Path4(), pair.Path6()} {
		if err := testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 5}); err != nil {
			t.Fatal(err)
		}
	}
	flushWait()
	remotes := map[netip.Addr]int{}
	for _, s := range log.take() {
		remotes[s.Remote.Addr()]++
	}
	if remotes[pair.ServerAddr6] == 0 || remotes[pair.ServerAddr4] != 0 {
		t.Errorf("samples per remote %v: want only %v", remotes, pair.ServerAddr6)
	}
	if got := l.Peers().Tag(pair.ServerAddr6); got != pair.ServerAddr6.String() {
		t.Errorf("tag %q", got)
	}
}

// TestLiveAnyAndConcurrent captures on "any" and, at the same time, with
// two instances on the same named interface: each sees the traffic.
func TestLiveAnyAndConcurrent(t *testing.T) {
	pair := testbed.NewVethPair(t)
	_, logAny := startLive(t, pair.Client, "any", nil)
	_, logA := startLive(t, pair.Client, pair.ClientIf, nil)
	_, logB := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) { c.Engine.Methods = Methods(0).With(MethodSeqAck) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, p := range []testbed.Path{pair.Path4(), pair.Path6()} {
		if err := testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 10}); err != nil {
			t.Fatal(err)
		}
	}
	flushWait()
	for name, log := range map[string]*sampleLog{"any": logAny, "iface-a": logA, "iface-b": logB} {
		remotes := map[netip.Addr]int{}
		for _, s := range log.take() {
			remotes[s.Remote.Addr()]++
		}
		if remotes[pair.ServerAddr4] == 0 || remotes[pair.ServerAddr6] == 0 {
			t.Errorf("%s: samples per remote %v: want both server addresses", name, remotes)
		}
	}
}

// open opens the capture's sockets once and closes them, for tests of the
// errors of opening.
func (l *Live) open() error {
	link, fl, err := l.device()
	if err != nil {
		return err
	}
	prog, err := l.filterProg(fl)
	if err != nil {
		return err
	}
	rings, err := l.openRings(link, prog)
	for _, r := range rings {
		r.Close()
	}
	return err
}
