//go:build linux

package ring_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/net/bpf"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// Example reads eth0 until another goroutine calls Shutdown: the frames of
// each block, then housekeeping once per block or poll timeout.
func Example() {
	// Keep the first 256 bytes of every frame: the filter sets the snap
	// length.
	prog, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 256}})
	if err != nil {
		log.Fatal(err)
	}
	r, err := ring.Open(ring.Config{Interface: "eth0", Filter: prog})
	if errors.Is(err, ring.ErrPermission) {
		log.Fatalf("%v: grant CAP_NET_RAW (setcap cap_net_raw+ep BINARY) or run as root", err)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()
	time.AfterFunc(10*time.Second, r.Shutdown) // from another goroutine

	var counters ring.Counters // keep it across reopened sockets
	var f ring.Frame
	frames := 0
	for {
		b, err := r.NextBlock(100 * time.Millisecond)
		switch {
		case err == ring.ErrTimeout:
		case err != nil: // ErrClosed after Shutdown; ErrInterfaceDown: reopen
			fmt.Println(frames, "frames;", counters.Drops, "dropped;", err)
			return
		default:
			for b.Next(&f) {
				frames++ // f.Data is valid until Release
			}
			b.Release()
		}
		_ = r.ReadStats(&counters) // housekeeping, once per block at most
	}
}

// TestEngineAdapter feeds what a ring on the client side of a veth pair
// reads to a capture.Engine, with the filter the engine's live capture
// builds, as capture/live_linux.go would: the request/response traffic
// gives RTT samples of the server.
func TestEngineAdapter(t *testing.T) {
	pair := testbed.NewVethPair(t)
	prog, err := capture.BuildFilter(capture.FilterEthernet, nil, capture.DefaultSnaplen)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(pair.ClientIf)
	cfg.Filter = prog
	r := openRing(t, pair.Client, cfg)
	e := capture.NewEngine(capture.Config{Local: capture.NewLocalSet([]netip.Addr{pair.ClientAddr4}, nil)})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- testbed.RequestResponse(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: 20, Gap: time.Millisecond})
	}()
	var errTraffic error
	for running := true; running; {
		select {
		case errTraffic = <-done:
			running = false
		default:
		}
		_, err := r.ReadBlock(10*time.Millisecond, func(f *ring.Frame) {
			e.ProcessNano(capture.LinkEthernet, f.Data, f.Len, f.Time)
		})
		if err != nil && err != ring.ErrTimeout {
			t.Fatal(err)
		}
	}
	if errTraffic != nil {
		t.Fatal(errTraffic)
	}
	for { // the last blocks
		if _, err := r.ReadBlock(50*time.Millisecond, func(f *ring.Frame) {
			e.ProcessNano(capture.LinkEthernet, f.Data, f.Len, f.Time)
		}); err == ring.ErrTimeout {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var samples uint64
	for _, p := range e.Drain(nil) {
		if p.Remote.Addr() == pair.ServerAddr4 {
			samples += p.Count
		}
	}
	t.Logf("engine stats %+v, %d samples of %v", e.Stats(), samples, pair.ServerAddr4)
	if samples < 20 {
		t.Errorf("%d samples of the server, want at least 20 (one per request)", samples)
	}
}
