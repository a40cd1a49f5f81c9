package testbed_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestDelayLineDropSYN connects through a delay line that drops the SYNs to
// one port: the connect to that port times out, the one to another port
// succeeds and carries data.
func TestDelayLineDropSYN(t *testing.T) {
	const dropped, open = 5001, 5002
	const dialTimeout = 1500 * time.Millisecond // the client resends its SYN once, at 1 s
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: time.Millisecond, DropSYNToPort: dropped},
		ServerToClient: testbed.Impairment{Delay: time.Millisecond},
	})
	for _, dst := range []netip.Addr{dl.ServerAddr4, dl.ServerAddr6} {
		t.Run(dst.String(), func(t *testing.T) {
			// Both ports listen, so that only the delay line can keep a
			// connect from completing.
			for _, port := range []int{dropped, open} {
				ln, err := dl.Server.Listen(t.Context(), "tcp", net.JoinHostPort(dst.String(), strconv.Itoa(port)))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						go func() {
							defer c.Close()
							buf := make([]byte, 64)
							if n, err := c.Read(buf); err == nil {
								_, _ = c.Write(buf[:n])
							}
						}()
					}
				}()
			}
			ctx, cancel := context.WithTimeout(t.Context(), dialTimeout)
			defer cancel()
			c, err := dl.Client.Dial(ctx, "tcp", net.JoinHostPort(dst.String(), strconv.Itoa(open)))
			if err != nil {
				t.Fatalf("connect to open port %d: %v", open, err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Read(make([]byte, 4)); err != nil {
				t.Fatalf("echo from open port %d: %v", open, err)
			}

			before, _ := dl.Stats()
			ctx, cancel = context.WithTimeout(t.Context(), dialTimeout)
			defer cancel()
			start := time.Now()
			d, err := dl.Client.Dial(ctx, "tcp", net.JoinHostPort(dst.String(), strconv.Itoa(dropped)))
			if err == nil {
				d.Close()
				t.Fatalf("connect to port %d with dropped SYNs succeeded", dropped)
			}
			if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("connect to port %d: %v, want a timeout", dropped, err)
			}
			after, _ := dl.Stats()
			// The first SYN and its retransmission 1 s later.
			if got := after.SYNDropped - before.SYNDropped; got < 2 {
				t.Errorf("%v of connecting: %d SYNs dropped, want at least 2", time.Since(start), got)
			}
		})
	}
	c2s, s2c := dl.Stats()
	t.Logf("client->server %+v", c2s)
	if s2c.SYNDropped != 0 {
		t.Errorf("server->client dropped %d SYNs without DropSYNToPort", s2c.SYNDropped)
	}
}

// TestDelayLineBottleneck sends a bulk transfer through a bottleneck queue
// behind the delay line: it cannot be faster than the queue's rate, all of
// it passes the queue, and pings across take longer while it fills the
// queue (a wide sanity check).
func TestDelayLineBottleneck(t *testing.T) {
	const (
		oneWay = 5 * time.Millisecond
		rate   = 20_000_000 // bits per second
		bytes  = 5 << 20
	)
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: oneWay},
		ServerToClient: testbed.Impairment{Delay: oneWay},
		Bottleneck:     testbed.Bottleneck{Rate: rate},
	})
	idle := testbed.Ping(t, dl.Client, dl.ServerAddr4, 10)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- testbed.Bulk(ctx, dl.Path4(), bytes) }()
	time.Sleep(300 * time.Millisecond)
	busy := testbed.Ping(t, dl.Client, dl.ServerAddr4, 20)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	st, err := dl.BottleneckStats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ping idle %v, during the transfer %v; %d bytes in %v; queue %+v", idle, busy, bytes, elapsed, st)

	// The queue passes at most a bucket more than its rate allows: the
	// payload alone takes this long, without any header.
	if least := time.Duration((bytes - testbed.DefaultBottleneckBurst) * 8 * int64(time.Second) / rate); elapsed < least {
		t.Errorf("%d bytes took %v, faster than the %d bit/s queue allows (%v)", bytes, elapsed, rate, least)
	}
	if st.Bytes < bytes {
		t.Errorf("%d bytes left the queue, less than the %d bytes sent", st.Bytes, bytes)
	}
	if busy < idle+5*time.Millisecond {
		t.Errorf("median ping %v during the transfer, want at least 5ms above %v when idle", busy, idle)
	}
}

// TestAddIngressBottleneckCleanup adds and removes a bottleneck twice on the
// same interface: removing leaves nothing behind that would make the second
// add fail.
func TestAddIngressBottleneckCleanup(t *testing.T) {
	p := testbed.NewVethPair(t)
	for range 2 {
		if err := p.Server.AddIngressBottleneck(p.ServerIf, testbed.Bottleneck{Rate: 1e6}); err != nil {
			t.Fatal(err)
		}
		if _, err := p.Server.IngressBottleneckStats(p.ServerIf); err != nil {
			t.Fatal(err)
		}
		if err := p.Server.RemoveIngressBottleneck(p.ServerIf); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.Server.IngressBottleneckStats(p.ServerIf); err == nil {
		t.Error("statistics of a removed bottleneck")
	}
	if err := p.Server.RemoveIngressBottleneck(p.ServerIf); err != nil {
		t.Errorf("removing twice: %v", err)
	}
}
