//go:build linux

package capture

import (
	"net/netip"
	"testing"
	"time"

	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// TestNoAllocsLive reads real rings into Engines as a Live capture's
// workers do (ring.NextBlock, processBlock, Release), over crafted TCP
// flows injected on a veth pair, and checks that a block allocates
// nothing in steady state: VLAN-tagged frames (whose tag gopacket's
// afpacket appended to an allocated slice for every packet), and two
// sockets in a fanout group, each with its own engine.
func TestNoAllocsLive(t *testing.T) {
	local, remote := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2")
	for _, tc := range []struct {
		name    string
		vlan    bool
		workers int
	}{
		{name: "vlan", vlan: true, workers: 1},
		{name: "fanout", workers: 2},
		{name: "fanout-vlan", vlan: true, workers: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pair := testbed.NewVethPair(t)
			inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
			prog, err := BuildFilter(FilterEthernet, nil, DefaultSnaplen)
			if err != nil {
				t.Fatal(err)
			}
			var rings []*ring.Ring
			var engines []*Engine
			for i := range tc.workers {
				cfg := ring.Config{Interface: pair.ServerIf, Filter: prog, BlockSize: 4096, NumBlocks: 512, BlockTimeout: time.Millisecond}
				if tc.workers > 1 {
					cfg.Fanout = ring.FanoutNew
					if i > 0 {
						cfg.Fanout, cfg.FanoutGroup = ring.FanoutJoin, rings[0].FanoutGroup()
					}
				}
				var r *ring.Ring
				if err := pair.Server.Do(func() error {
					var err error
					r, err = ring.Open(cfg)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { r.Close() })
				rings = append(rings, r)
				engines = append(engines, NewEngine(Config{Local: NewLocalSet([]netip.Addr{local}, nil)}))
			}
			// 16 connections, each a data segment of the local side and
			// the peer's ACK of it, over and over.
			const conns, rounds = 16, 150
			seq := make([]uint32, conns)
			for r := range rounds {
				for c := range conns {
					lp, rp := uint16(40000+c), uint16(443)
					out := buildIP(t, tseg{src: netip.AddrPortFrom(local, lp), dst: netip.AddrPortFrom(remote, rp),
						seq: seq[c], ack: 1, flags: FlagACK | FlagPSH, payload: 100, ts: true, tsval: uint32(r + 1), tsecr: 1})
					seq[c] += 100
					in := buildIP(t, tseg{src: netip.AddrPortFrom(remote, rp), dst: netip.AddrPortFrom(local, lp),
						seq: 1, ack: seq[c], flags: FlagACK, ts: true, tsval: 1, tsecr: uint32(r + 1)})
					for _, ip := range [][]byte{out, in} {
						var f []byte
						if tc.vlan {
							f = ethFrame(ip, 5)
						} else {
							f = ethFrame(ip)
						}
						copy(f[0:6], pair.ServerMAC)
						copy(f[6:12], pair.ClientMAC)
						inject(f)
					}
				}
			}
			time.Sleep(20 * time.Millisecond) // the last blocks retire
			var f ring.Frame
			var frames, blocks int
			readBlock := func(i int) bool {
				blk, err := rings[i].NextBlock(0)
				if err == ring.ErrTimeout {
					return false
				}
				if err != nil {
					t.Fatal(err)
				}
				frames += blk.NumFrames()
				blocks++
				processBlock(engines[i], LinkEthernet, blk, &f)
				blk.Release()
				return true
			}
			// Warm up: the flows, peers and sketch bins come into being.
			for range 20 {
				for i := range rings {
					readBlock(i)
				}
			}
			run := 0
			allocs := testing.AllocsPerRun(50, func() {
				for tries := 0; tries < len(rings); tries++ {
					run++
					if readBlock(run % len(rings)) {
						return
					}
				}
				t.Fatal("the rings ran out of blocks")
			})
			var samples uint64
			for _, e := range engines {
				samples += e.Stats().Samples
			}
			t.Logf("%d frames in %d blocks over %d sockets: %d samples; %v allocations per block", frames, blocks, len(rings), samples, allocs)
			if allocs != 0 || samples == 0 {
				t.Errorf("reading a block into an engine: %v allocations, want 0; %d samples, want some", allocs, samples)
			}
			if tc.workers > 1 {
				for i, e := range engines {
					if e.Stats().TCPPackets == 0 {
						t.Errorf("socket %d of the fanout group received nothing", i)
					}
				}
			}
		})
	}
}
