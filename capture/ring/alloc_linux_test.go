//go:build linux

package ring_test

import (
	"testing"
	"time"

	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// TestNoAllocs reads a live ring in steady state, none of it allocating:
// NextBlock with a block ready, the walk and Release; ReadBlock with a
// closure; ReadStats; and NextBlock timing out on an empty ring. The
// frames are VLAN-tagged, whose tag gopacket's afpacket appends to an
// allocated slice for every frame.
func TestNoAllocs(t *testing.T) {
	pair := testbed.NewVethPair(t)
	// Three frames of 1000 bytes fill a 4 KiB block: each run of
	// AllocsPerRun reads one block, and the ring holds them all.
	const runs = 20
	cfg := ring.Config{Interface: pair.ServerIf, BlockSize: 4096, NumBlocks: 128, BlockTimeout: time.Millisecond,
		Filter: etherFilter(t, etherTest, 0xffff)}
	r := openRing(t, pair.Server, cfg)
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	for i := range 3 * 2 * (runs + 2) {
		inject(tagged(frame(pair.ServerMAC, pair.ClientMAC, etherTest, uint32(i), 1000), [2]uint16{0x8100, 5}))
	}
	time.Sleep(20 * time.Millisecond) // the last block retires

	var f ring.Frame
	frames, tagged := 0, 0
	allocs := testing.AllocsPerRun(runs, func() {
		b, err := r.NextBlock(time.Second)
		if err != nil {
			t.Fatal(err)
		}
		for b.Next(&f) {
			frames++
			if f.VLAN {
				tagged++
			}
		}
		b.Release()
	})
	if allocs != 0 || frames == 0 || tagged != frames {
		t.Errorf("NextBlock, Next, Release: %v allocations per block (%d frames, %d tagged); want 0, tagged frames", allocs, frames, tagged)
	}
	frames = 0
	allocs = testing.AllocsPerRun(runs, func() {
		if _, err := r.ReadBlock(time.Second, func(*ring.Frame) { frames++ }); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 || frames == 0 {
		t.Errorf("ReadBlock: %v allocations per block (%d frames), want 0", allocs, frames)
	}
	var c ring.Counters
	if allocs := testing.AllocsPerRun(runs, func() {
		if err := r.ReadStats(&c); err != nil {
			t.Fatal(err)
		}
	}); allocs != 0 {
		t.Errorf("ReadStats: %v allocations, want 0", allocs)
	}
	for { // empty the ring
		if _, err := r.NextBlock(10 * time.Millisecond); err == ring.ErrTimeout {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	for _, timeout := range []time.Duration{0, time.Millisecond} {
		if allocs := testing.AllocsPerRun(runs, func() {
			if _, err := r.NextBlock(timeout); err != ring.ErrTimeout {
				t.Fatalf("NextBlock: %v, want ErrTimeout", err)
			}
		}); allocs != 0 {
			t.Errorf("NextBlock(%v) timing out: %v allocations, want 0", timeout, allocs)
		}
	}
}
