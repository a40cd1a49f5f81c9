package ring

import (
	"encoding/binary"
	"testing"
)

// BenchmarkBlock walks a 256 KiB block full of frames, as the kernel lays
// them out, per frame shape: the walker's cost without a socket. It
// reports ns/frame; an op is one block.
func BenchmarkBlock(b *testing.B) {
	shapes := []struct {
		name string
		f    testFrame
	}{
		// A TCP data segment of 100 bytes with timestamps, as
		// testbed.Blaster sends them: 166 bytes.
		{"eth-166B", testFrame{data: ethFrame(0x0800, 166, 0), protocol: 0x0800, ifindex: 2}},
		{"vlan-166B", testFrame{data: ethFrame(0x0800, 166, 0), protocol: 0x0800, ifindex: 2, status: tpStatusVLANValid | tpStatusVLANTPIDValid, tci: 100, tpid: 0x8100}},
		{"eth-1514B", testFrame{data: ethFrame(0x0800, 1514, 0), protocol: 0x0800, ifindex: 2}},
	}
	for _, s := range shapes {
		b.Run(s.name, func(b *testing.B) {
			const size = DefaultBlockSize
			per := align(s.f.macOffset()+len(s.f.data), 8)
			frames := make([]testFrame, (size-blockHdrLen)/per)
			for i := range frames {
				frames[i] = s.f
				frames[i].nsec = uint32(i)
			}
			buf := buildBlock(b, size, frames...)
			var blk Block
			var f Frame
			sum := 0
			b.ReportAllocs()
			for b.Loop() {
				blk.reset(buf)
				for blk.Next(&f) {
					sum += int(binary.BigEndian.Uint16(f.Data[12:])) + f.Len
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(frames)), "ns/frame")
			if sum == 0 {
				b.Fatal("no frames")
			}
		})
	}
}
