//go:build linux

package ring_test

import (
	"context"
	"testing"
	"time"

	"github.com/gopacket/gopacket/afpacket"

	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// Parameters of BenchmarkRead.
const (
	benchBlockSize    = ring.DefaultBlockSize
	benchNumBlocks    = 256 // 64 MiB: room for a whole fill
	benchBlockTimeout = 10 * time.Millisecond
	benchFillRate     = 1e6                    // frames per second
	benchFillTime     = 200 * time.Millisecond // 200,000 frames of 166 bytes: 48 MiB in the ring
)

// BenchmarkRead measures a reader's cost per frame: this package's ring
// against gopacket's afpacket (ZeroCopyReadPacketData, with the same
// TPACKET_V3 ring settings), on frames of TCP segments that a
// testbed.Blaster sends through a veth pair, untagged or with an 802.1Q
// tag that the receiving kernel strips into the frame's metadata. The
// timer is stopped while the blaster fills the ring, so an op is the
// reading of one frame from a ring whose blocks are all ready: the
// reader's own cost, with no wait in poll. Each frame's length, first
// byte and timestamp are read; the afpacket reader reads its VLAN tag
// from CaptureInfo.AncillaryData, where afpacket appends it.
//
// A fill takes about 0.3 s, so run it with a fixed count:
//
//	flock /tmp/gm-timing.lock go test -run '^$' -bench BenchmarkRead -benchtime 2000000x -count 5 ./capture/ring/
func BenchmarkRead(b *testing.B) {
	for _, shape := range []struct {
		name string
		vlan uint16
	}{{"untagged", 0}, {"vlan", 1000}} {
		for _, reader := range []string{"ring", "afpacket"} {
			b.Run(reader+"/"+shape.name, func(b *testing.B) {
				pair := testbed.NewVethPair(b)
				bl := testbed.NewBlaster(b, pair.Server, pair.ServerIf, testbed.BlastConfig{VLAN: shape.vlan})
				fill := func() {
					b.StopTimer()
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					if _, err := bl.Blast(ctx, benchFillRate, benchFillTime); err != nil {
						b.Fatal(err)
					}
					time.Sleep(3 * benchBlockTimeout) // the last block retires
					b.StartTimer()
				}
				b.ReportAllocs()
				var sum int64
				switch reader {
				case "ring":
					sum = benchRing(b, pair, fill)
				case "afpacket":
					sum = benchAfpacket(b, pair, fill)
				}
				if sum == 0 {
					b.Fatal("no frames read")
				}
			})
		}
	}
}

func benchRing(b *testing.B, pair *testbed.Pair, fill func()) int64 {
	r := openRing(b, pair.Client, ring.Config{Interface: pair.ClientIf, BlockSize: benchBlockSize,
		NumBlocks: benchNumBlocks, BlockTimeout: benchBlockTimeout})
	var blk *ring.Block
	var f ring.Frame
	var sum int64
	for b.Loop() {
		for blk == nil || !blk.Next(&f) {
			var err error
			switch blk, err = r.NextBlock(0); err {
			case nil:
			case ring.ErrTimeout:
				fill()
			default:
				b.Fatal(err)
			}
		}
		sum += int64(f.Len) + int64(f.Data[0]) + f.Time + int64(f.VLANTCI)
	}
	return sum
}

func benchAfpacket(b *testing.B, pair *testbed.Pair, fill func()) int64 {
	var tp *afpacket.TPacket
	err := pair.Client.Do(func() error {
		var err error
		tp, err = afpacket.NewTPacket(afpacket.OptInterface(pair.ClientIf), afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
			afpacket.OptFrameSize(ring.DefaultFrameSize), afpacket.OptBlockSize(benchBlockSize), afpacket.OptNumBlocks(benchNumBlocks),
			afpacket.OptBlockTimeout(benchBlockTimeout), afpacket.OptPollTimeout(0), afpacket.SocketRaw)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(tp.Close)
	var sum int64
	for b.Loop() {
		data, ci, err := tp.ZeroCopyReadPacketData()
		for err == afpacket.ErrTimeout {
			fill()
			data, ci, err = tp.ZeroCopyReadPacketData()
		}
		if err != nil {
			b.Fatal(err)
		}
		sum += int64(ci.Length) + int64(data[0]) + ci.Timestamp.UnixNano()
		for _, a := range ci.AncillaryData {
			if v, ok := a.(afpacket.AncillaryVLAN); ok {
				sum += int64(v.VLAN)
			}
		}
	}
	return sum
}
