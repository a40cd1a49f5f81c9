//go:build linux

package capture

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestLiveWorkers captures the same traffic at once with one socket and
// with two in a fanout group (each with its own engine): many
// connections, request/response and bulk, to two addresses of the peer.
// Per peer and method, the samples agree within 1 %, and Drain merges the
// two engines' stats of a peer into one.
func TestLiveWorkers(t *testing.T) {
	pair := testbed.NewVethPair(t)
	second := netip.MustParseAddr("192.0.2.3")
	if err := pair.Server.IP("addr", "add", second.String()+"/24", "dev", pair.ServerIf); err != nil {
		t.Fatal(err)
	}
	if err := pair.Client.IP("neigh", "replace", second.String(), "lladdr", pair.ServerMAC.String(), "dev", pair.ClientIf, "nud", "permanent"); err != nil {
		t.Fatal(err)
	}
	one, two := &methodCounts{}, &methodCounts{}
	l1, _ := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) { c.Engine.OnSample = one.add })
	l2, _ := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) { c.Workers = 2; c.Engine.OnSample = two.add })
	l1.Drain(nil)
	l2.Drain(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for _, dst := range []netip.Addr{pair.ServerAddr4, second} {
		p := pair.Path4()
		p.Dst = dst
		wg.Go(func() {
			errs <- testbed.ShortConnections(ctx, p, testbed.RequestResponseConfig{Count: 40})
		})
		wg.Go(func() {
			errs <- testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 100, Gap: 2 * time.Millisecond})
		})
		wg.Go(func() {
			errs <- testbed.BulkPaced(ctx, p, testbed.BulkConfig{Bytes: 2 << 20, PacingRate: 20e6 / 8})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	flushWait()
	for _, dst := range []netip.Addr{pair.ServerAddr4, second} {
		a, b := one.take(dst), two.take(dst)
		t.Logf("%v: samples per method (timestamp, seqack, handshake): 1 worker %v, 2 workers %v", dst, a, b)
		total := 0
		for m := range Method(NumMethods) {
			total += a[m]
			tol := max(a[m]/100, 1)
			if d := b[m] - a[m]; d > tol || d < -tol {
				t.Errorf("%v %s: %d samples with 2 workers, %d with 1: more than 1 %% apart", dst, m, b[m], a[m])
			}
		}
		if total < 100 {
			t.Errorf("%v: only %d samples; the test needs more", dst, total)
		}
	}
	// The merged drain has one record per peer, with every sample.
	d1, d2 := l1.Drain(nil), l2.Drain(nil)
	count := func(d []PeerStats) map[PeerKey]uint64 {
		m := map[PeerKey]uint64{}
		for _, p := range d {
			if _, dup := m[p.PeerKey]; dup {
				t.Errorf("drain has %v twice", p.PeerKey)
			}
			m[p.PeerKey] = p.Count
		}
		return m
	}
	c1, c2 := count(d1), count(d2)
	if len(c1) != len(c2) || len(c2) == 0 {
		t.Errorf("peers drained: 1 worker %v, 2 workers %v", c1, c2)
	}
	for k, n := range c1 {
		if m := c2[k]; m+m/100+1 < n || n+n/100+1 < m {
			t.Errorf("%v: %d samples drained with 1 worker, %d with 2", k, n, m)
		}
	}
	h := l2.Health()
	if h.KernelPackets == 0 || h.Stats.TCPPackets == 0 {
		t.Errorf("health of the 2-worker capture: %+v", h)
	}
}
