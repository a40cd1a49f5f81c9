package capture_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/internal/testbed"
)

func parseAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// interfaceAddrsIn calls InterfaceAddrs inside ns.
func interfaceAddrsIn(t *testing.T, ns *testbed.NetNS, name string) ([]netip.Addr, error) {
	t.Helper()
	var addrs []netip.Addr
	var err error
	if derr := ns.Do(func() error {
		addrs, err = capture.InterfaceAddrs(name)
		return nil
	}); derr != nil {
		t.Fatal(derr)
	}
	return addrs, err
}

func TestInterfaceAddrsNetns(t *testing.T) {
	p := testbed.NewVethPair(t)
	// The kernel adds the link-local address when the link comes up:
	// wait for it. The MAC 02:00:00:00:00:01 makes it fe80::ff:fe00:1.
	want := parseAddrs("192.0.2.1", "2001:db8::1", "fe80::ff:fe00:1")
	var got []netip.Addr
	for deadline := time.Now().Add(3 * time.Second); ; {
		var err error
		got, err = interfaceAddrsIn(t, p.Client, p.ClientIf)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("InterfaceAddrs(%q) (-want +got):\n%s", p.ClientIf, diff)
	}

	t.Run("any", func(t *testing.T) {
		got, err := interfaceAddrsIn(t, p.Client, "any")
		if err != nil {
			t.Fatal(err)
		}
		want := append(parseAddrs("127.0.0.1", "::1"), want...)
		slices.SortFunc(want, netip.Addr.Compare)
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("InterfaceAddrs(any) (-want +got):\n%s", diff)
		}
	})

	t.Run("missing", func(t *testing.T) {
		_, err := interfaceAddrsIn(t, p.Client, "veth9")
		if err == nil || !strings.Contains(err.Error(), `"veth9"`) {
			t.Fatalf("InterfaceAddrs(veth9) error = %v, want one naming veth9", err)
		}
		// The interface of the other namespace is not visible here.
		if err := p.Server.IP("link", "add", "veth7", "type", "veth", "peer", "name", "veth8"); err != nil {
			t.Fatal(err)
		}
		if _, err := interfaceAddrsIn(t, p.Client, "veth7"); err == nil {
			t.Error("InterfaceAddrs found veth7 of the other namespace")
		}
	})
}

func TestInterfaceAddrsLoopbackOnly(t *testing.T) {
	ns := testbed.NewNetNS(t)
	got, err := interfaceAddrsIn(t, ns, "any")
	if err != nil {
		t.Fatal(err)
	}
	want := parseAddrs("127.0.0.1", "::1")
	if _, err := os.Stat("/proc/sys/net/ipv6"); err != nil {
		want = want[:1] // IPv6 disabled in the kernel
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("InterfaceAddrs(any) in a new namespace (-want +got):\n%s", diff)
	}
}

// watcher runs WatchAddrs in a namespace and counts its notifications.
type watcher struct {
	t      *testing.T
	notes  chan struct{}
	cancel context.CancelFunc
	done   chan error
}

// startWatcher starts WatchAddrs in ns and waits until it sees changes, so
// that no change made afterwards can precede its subscription.
func startWatcher(t *testing.T, ns *testbed.NetNS) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	w := &watcher{t: t, notes: make(chan struct{}, 64), cancel: cancel, done: make(chan error, 1)}
	go func() {
		w.done <- ns.Do(func() error {
			return capture.WatchAddrs(ctx, func() {
				select {
				case w.notes <- struct{}{}:
				default:
					t.Error("notification channel full")
				}
			})
		})
	}()
	t.Cleanup(func() { w.stop() })
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("WatchAddrs reported no change while addresses were added for 10 s")
		}
		addr := fmt.Sprintf("198.51.100.%d/32", i+1)
		if err := ns.IP("addr", "add", addr, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		if err := ns.IP("addr", "del", addr, "dev", "lo"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-w.notes:
			w.quiesce()
			return w
		case err := <-w.done:
			t.Fatalf("WatchAddrs returned early: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// quiesce waits until no notification arrives for 300 ms, and drops those
// that did.
func (w *watcher) quiesce() {
	for {
		select {
		case <-w.notes:
		case <-time.After(300 * time.Millisecond):
			return
		}
	}
}

// expectNote runs the ip command args in ns and fails the test unless a
// notification follows within a second.
func (w *watcher) expectNote(ns *testbed.NetNS, args ...string) {
	w.t.Helper()
	start := time.Now()
	if err := ns.IP(args...); err != nil {
		w.t.Fatal(err)
	}
	select {
	case <-w.notes:
		w.t.Logf("ip %s: notified after %v", strings.Join(args, " "), time.Since(start).Round(time.Millisecond))
	case <-time.After(time.Second):
		w.t.Errorf("ip %s: no notification within 1 s", strings.Join(args, " "))
	}
	w.quiesce()
}

// stop cancels WatchAddrs and returns how long it took to return.
func (w *watcher) stop() time.Duration {
	start := time.Now()
	w.cancel()
	select {
	case err, ok := <-w.done:
		if ok {
			close(w.done)
			if err != nil {
				w.t.Errorf("WatchAddrs: %v", err)
			}
		}
	case <-time.After(5 * time.Second):
		w.t.Fatal("WatchAddrs did not return within 5 s of cancellation")
	}
	return time.Since(start)
}

func TestWatchAddrs(t *testing.T) {
	p := testbed.NewVethPair(t)
	ns, dev := p.Client, p.ClientIf
	before := runtime.NumGoroutine()
	w := startWatcher(t, ns)

	w.expectNote(ns, "addr", "add", "192.0.2.11/24", "dev", dev)
	w.expectNote(ns, "addr", "add", "2001:db8::11/64", "dev", dev, "nodad")
	w.expectNote(ns, "addr", "del", "192.0.2.11/24", "dev", dev)
	w.expectNote(ns, "link", "set", "dev", dev, "down")
	w.expectNote(ns, "link", "set", "dev", dev, "up")
	w.expectNote(ns, "link", "add", "veth1", "type", "veth", "peer", "name", "veth2")

	t.Run("burst", func(t *testing.T) {
		// 20 changes in a few milliseconds make one notification, or two
		// if they straddle the end of the 100 ms window.
		var batch strings.Builder
		for i := range 20 {
			fmt.Fprintf(&batch, "addr add 203.0.113.%d/32 dev lo\n", i+1)
		}
		file := t.TempDir() + "/batch"
		if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := ns.IP("-batch", file); err != nil {
			t.Fatal(err)
		}
		n := 0
		for timeout := time.After(time.Second); ; {
			select {
			case <-w.notes:
				n++
				continue
			case <-timeout:
			}
			break
		}
		if n < 1 || n > 2 {
			t.Errorf("a burst of 20 changes made %d notifications, want 1 or 2", n)
		}
	})

	// Not in a subtest, whose goroutine would count.
	if d := w.stop(); d > 250*time.Millisecond {
		t.Errorf("WatchAddrs returned %v after cancellation, want under 100 ms", d)
	} else {
		t.Logf("WatchAddrs returned %v after cancellation", d)
	}
	var n int
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n = runtime.NumGoroutine(); n <= before {
			return
		}
	}
	t.Errorf("%d goroutines after WatchAddrs returned, %d before it started", n, before)
}

func TestWatchAddrsCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	done := make(chan error, 1)
	go func() { done <- capture.WatchAddrs(ctx, func() { t.Error("notified") }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("WatchAddrs with a canceled context = %v, want nil", err)
		}
	case <-time.After(time.Second):
		t.Fatal("WatchAddrs with a canceled context did not return")
	}
}
