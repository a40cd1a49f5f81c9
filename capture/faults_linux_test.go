//go:build linux

package capture

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// faultResolver resolves every host to addr. Its first lookup, or every
// lookup when always is set, waits for gate to close and then panics.
type faultResolver struct {
	addr   netip.Addr
	gate   chan struct{}
	always bool
	calls  atomic.Int32
}

func (r *faultResolver) LookupNetIP(ctx context.Context, _, _ string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 || r.always {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		panic("injected into a lookup by the test")
	}
	return []netip.Addr{r.addr}, nil
}

// TestLiveResolverPanicRecovered makes the resolver panic once the socket
// is open. PeerResolver.Resolve runs lookups on goroutines of its own,
// where a panic used to end the process; now it is reported as a panic of
// the resolver goroutine, which restarts after its backoff and resolves
// the host, while the capture, whose socket stayed open, stays capturing.
func TestLiveResolverPanicRecovered(t *testing.T) {
	pair := testbed.NewVethPair(t)
	r := &faultResolver{addr: pair.ServerAddr4, gate: make(chan struct{})}
	l, log := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) {
		c.Peers = PeerSpec{Hosts: []string{"server.test"}}
		c.Resolver = r
	})
	close(r.gate)
	// Panics counts first, then LastError.
	waitFor(t, 3*time.Second, "the panic", func() bool {
		h := l.Health()
		return h.Panics == 1 && h.LastError != nil && strings.Contains(h.LastError.Error(), "injected into a lookup")
	})
	h := l.Health()
	if h.State != StateCapturing {
		t.Errorf("state %v after the resolver panicked, want capturing: the socket is still open", h.State)
	}
	for _, want := range []string{"capture on veth0: resolver goroutine panicked", `lookup of "server.test"`, "injected into a lookup", "(recovered; restarting it)"} {
		if h.LastError == nil || !strings.Contains(h.LastError.Error(), want) {
			t.Errorf("last error %v lacks %q", h.LastError, want)
		}
	}
	waitFor(t, 3*time.Second, "server.test to resolve", func() bool {
		return slices.Equal(l.Peers().Prefixes(), []netip.Prefix{netip.PrefixFrom(pair.ServerAddr4, 32)})
	})
	if n := r.calls.Load(); n != 2 {
		t.Errorf("%d lookups, want 2: the one that panicked and the one after the restart", n)
	}
	flushWait() // the capture installs the new filter within 250 ms
	log.take()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 5, Gap: 2 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	// The ring hands over its block within 64 ms; a busy machine may
	// take longer to process it.
	var n int
	waitFor(t, 5*time.Second, "samples of server.test after the recovered panic", func() bool {
		n += len(log.take())
		return n > 0
	})
	if h := l.Health(); h.State != StateCapturing || h.Panics != 1 {
		t.Errorf("state %v, %d panics; want capturing and 1", h.State, h.Panics)
	}
}

// TestLivePanicBackoff makes every run of a goroutine panic: the packet
// goroutine on every sample while traffic flows, and the resolver on every
// lookup. Each restarts after a backoff that doubles from 100 ms, so that
// over 1.6 s there are at most 5 panics, not hundreds.
func TestLivePanicBackoff(t *testing.T) {
	for _, name := range []string{"capture", "resolver"} {
		t.Run(name, func(t *testing.T) {
			pair := testbed.NewVethPair(t)
			r := &faultResolver{addr: pair.ServerAddr4, gate: make(chan struct{}), always: true}
			var armed atomic.Bool
			l, _ := startLive(t, pair.Client, pair.ClientIf, func(c *LiveConfig) {
				c.MaxBackoff = 5 * time.Second
				c.Engine.OnSample = func(Sample) {
					if armed.Load() {
						panic("injected on the packet goroutine by the test")
					}
				}
				if name == "resolver" {
					c.Peers = PeerSpec{Hosts: []string{"server.test"}}
					c.Resolver = r
				}
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if name == "resolver" {
				close(r.gate)
				time.Sleep(1600 * time.Millisecond)
			} else {
				armed.Store(true)
				for time.Since(start) < 1600*time.Millisecond {
					if err := testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 3, Gap: 2 * time.Millisecond}); err != nil {
						t.Fatal(err)
					}
				}
			}
			h := l.Health()
			t.Logf("%d panics in %v", h.Panics, time.Since(start).Round(time.Millisecond))
			// Restarts at about 0.1, 0.3, 0.7 and 1.5 s.
			if h.Panics < 2 || h.Panics > 5 {
				t.Errorf("%d panics in 1.6 s, want 2 to 5: a restart after a backoff doubling from 100 ms", h.Panics)
			}
			if name == "resolver" && h.State != StateCapturing {
				t.Errorf("state %v, want capturing", h.State)
			}
		})
	}
}

// TestLiveBackoffUnhealthy opens a capture that opens but never works: on
// a down interface the socket binds and the first read fails; with a tiny
// net.core.optmem_max the kernel filter does not attach. Such an attempt
// is not healthy, so the backoff keeps doubling from 100 ms (attempts at
// about 0, 0.1, 0.3, 0.7, 1.5 and 3.1 s) instead of reopening, and
// allocating a ring, every 100 ms; Failures counts every attempt.
func TestLiveBackoffUnhealthy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*testbed.Pair) error
		want  string
	}{
		{"interface-down", func(p *testbed.Pair) error { return p.Client.IP("link", "set", p.ClientIf, "down") },
			"the interface went down or was removed"},
		{"filter-refused", func(p *testbed.Pair) error { return p.Client.SetSysctl("net.core.optmem_max", "64") },
			"attach kernel filter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := testbed.NewVethPair(t)
			if err := tc.setup(pair); err != nil {
				t.Fatal(err)
			}
			l, err := NewLive(LiveConfig{Interface: pair.ClientIf, Netns: pair.Client.Path()})
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Start(); err != nil {
				t.Fatal(err)
			}
			defer l.Stop()
			time.Sleep(3200 * time.Millisecond)
			h := l.Health()
			t.Logf("after 3.2 s: %d failures, state %v, last error %v", h.Failures, h.State, h.LastError)
			if h.Failures < 4 || h.Failures > 7 {
				t.Errorf("%d failed attempts in 3.2 s, want 4 to 7: a backoff doubling from 100 ms", h.Failures)
			}
			if h.LastError == nil || !strings.Contains(h.LastError.Error(), tc.want) {
				t.Errorf("last error %v, want one that says %q", h.LastError, tc.want)
			}
		})
	}
}

// TestLiveHealthyAfterQuiet brings a down interface up, with no traffic:
// the attempt that opens then reads nothing, and counts as healthy once
// it has run HealthyAfter without error, which clears Failures and resets
// the backoff.
func TestLiveHealthyAfterQuiet(t *testing.T) {
	pair := testbed.NewVethPair(t)
	if err := pair.Client.IP("link", "set", pair.ClientIf, "down"); err != nil {
		t.Fatal(err)
	}
	l, err := NewLive(LiveConfig{Interface: pair.ClientIf, Netns: pair.Client.Path(), MaxBackoff: 200 * time.Millisecond, HealthyAfter: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	defer l.Stop()
	waitFor(t, 3*time.Second, "failed attempts", func() bool { return l.Health().Failures >= 3 })
	if err := pair.Client.IP("link", "set", pair.ClientIf, "up"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "capturing", func() bool { return l.Health().State == StateCapturing })
	if h := l.Health(); h.Failures == 0 {
		t.Errorf("failures cleared at once on open, before the attempt was healthy")
	}
	waitFor(t, 3*time.Second, "a healthy attempt", func() bool {
		h := l.Health()
		return h.State == StateCapturing && h.Failures == 0
	})
}
