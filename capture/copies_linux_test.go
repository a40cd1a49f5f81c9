//go:build linux

package capture

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// stackedHost is a host whose segments cross stacked devices, as a host
// running containers does: in namespace Host, a bridge br0 (10.9.0.1)
// whose port vh0 is a veth into namespace Ctr (10.9.0.2); a macvlan mv0
// (10.8.0.1) on vm0, a veth into namespace Mac (10.8.0.2); and lo.
type stackedHost struct {
	Host, Ctr, Mac *testbed.NetNS
}

func newStackedHost(t *testing.T) *stackedHost {
	t.Helper()
	h := &stackedHost{Host: testbed.NewNetNS(t), Ctr: testbed.NewNetNS(t), Mac: testbed.NewNetNS(t)}
	run := func(ns *testbed.NetNS, args ...string) {
		t.Helper()
		if err := ns.IP(args...); err != nil {
			t.Fatal(err)
		}
	}
	run(h.Host, "link", "add", "br0", "type", "bridge")
	run(h.Host, "addr", "add", "10.9.0.1/24", "dev", "br0")
	run(h.Host, "link", "set", "br0", "up")
	run(h.Host, "link", "add", "vh0", "type", "veth", "peer", "name", "vc0", "netns", h.Ctr.Name())
	run(h.Host, "link", "set", "vh0", "master", "br0", "up")
	run(h.Ctr, "addr", "add", "10.9.0.2/24", "dev", "vc0")
	run(h.Ctr, "link", "set", "vc0", "up")

	run(h.Host, "link", "add", "vm0", "type", "veth", "peer", "name", "vp0", "netns", h.Mac.Name())
	run(h.Host, "link", "set", "vm0", "up")
	run(h.Host, "link", "add", "mv0", "link", "vm0", "type", "macvlan", "mode", "bridge")
	run(h.Host, "addr", "add", "10.8.0.1/24", "dev", "mv0")
	run(h.Host, "link", "set", "mv0", "up")
	run(h.Mac, "addr", "add", "10.8.0.2/24", "dev", "vp0")
	run(h.Mac, "link", "set", "vp0", "up")
	// lo's 64 KiB MTU makes a bulk transfer a few huge segments.
	run(h.Host, "link", "set", "lo", "mtu", "1500")
	return h
}

// methodCounts counts samples per remote address and method.
type methodCounts struct {
	mu sync.Mutex
	n  map[netip.Addr]*[NumMethods]int
}

func (c *methodCounts) add(s Sample) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[netip.Addr]*[NumMethods]int{}
	}
	a := c.n[s.Remote.Addr()]
	if a == nil {
		a = new([NumMethods]int)
		c.n[s.Remote.Addr()] = a
	}
	a[s.Method]++
}

func (c *methodCounts) take(remote netip.Addr) [NumMethods]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out [NumMethods]int
	if a := c.n[remote]; a != nil {
		out = *a
		delete(c.n, remote)
	}
	return out
}

// TestLiveCopies captures the same traffic at once on "any", where every
// segment comes once per device it crosses, and on the single device it
// crosses last (br0, mv0, lo): per method, the samples on "any" must be
// within 5 % of those on the single device, with and without TCP
// timestamps. Before go-metro knew copies, "any" gave a handful.
func TestLiveCopies(t *testing.T) {
	h := newStackedHost(t)
	any := &methodCounts{}
	startLive(t, h.Host, "any", func(c *LiveConfig) { c.Engine.OnSample = any.add })
	single := map[string]*methodCounts{}
	for _, dev := range []string{"br0", "mv0", "lo"} {
		single[dev] = &methodCounts{}
		startLive(t, h.Host, dev, func(c *LiveConfig) { c.Engine.OnSample = single[dev].add })
	}
	paths := []struct {
		name, dev string
		path      testbed.Path
		sides     int // local sides of each connection
	}{
		{"bridge", "br0", testbed.Path{Client: h.Host, Server: h.Ctr, Dst: netip.MustParseAddr("10.9.0.2")}, 1},
		{"macvlan", "mv0", testbed.Path{Client: h.Host, Server: h.Mac, Dst: netip.MustParseAddr("10.8.0.2")}, 1},
		{"lo", "lo", testbed.Path{Client: h.Host, Server: h.Host, Dst: netip.MustParseAddr("127.0.0.1")}, 2},
	}
	patterns := []trafficPattern{
		{"reqresp", func(ctx context.Context, p testbed.Path) error {
			return testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 50, Gap: 2 * time.Millisecond})
		}},
		// The review's 20 Mbit/s transfer, for half a second.
		{"bulk-20mbit", func(ctx context.Context, p testbed.Path) error {
			return testbed.BulkPaced(ctx, p, testbed.BulkConfig{Bytes: 20e6 / 8 / 2, PacingRate: 20e6 / 8})
		}},
	}
	for _, tsOn := range []bool{true, false} {
		ts := map[bool]string{true: "ts", false: "no-ts"}[tsOn]
		for _, ns := range []*testbed.NetNS{h.Host, h.Ctr, h.Mac} {
			if err := ns.SetSysctl("net.ipv4.tcp_timestamps", map[bool]string{true: "1", false: "0"}[tsOn]); err != nil {
				t.Fatal(err)
			}
		}
		for _, p := range paths {
			for _, pat := range patterns {
				t.Run(fmt.Sprintf("%s/%s/%s", ts, p.name, pat.name), func(t *testing.T) {
					any.take(p.path.Dst)
					single[p.dev].take(p.path.Dst)
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := pat.run(ctx, p.path); err != nil {
						t.Fatal(err)
					}
					flushWait()
					got, want := any.take(p.path.Dst), single[p.dev].take(p.path.Dst)
					t.Logf("samples per method (timestamp, seqack, handshake): any %v, %s %v", got, p.dev, want)
					total := 0
					for m := range Method(NumMethods) {
						total += want[m]
						tol := max(want[m]*5/100, 1) // at least one: a handshake counts 1 or 2
						if d := got[m] - want[m]; d > tol || d < -tol {
							t.Errorf("%s: %d samples on any, %d on %s: more than 5 %% apart", m, got[m], want[m], p.dev)
						}
					}
					if total < 20 {
						t.Errorf("only %d samples on %s: the test needs traffic that gives more", total, p.dev)
					}
					// Each request is timed by its response, on each local
					// side: the single device too must see every segment
					// once (on lo, the kernel filter drops the outgoing
					// copy).
					if pat.name == "reqresp" && total < 50*p.sides {
						t.Errorf("%d samples on %s for 50 requests on %d local sides", total, p.dev, p.sides)
					}
				})
			}
		}
	}
}
