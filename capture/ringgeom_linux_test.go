package capture

import "testing"

// TestRingGeometry checks the blocks of each worker's ring: 1 MiB blocks
// when the ring has room for 8 of them, smaller ones down to 256 KiB
// otherwise, and the ring_size shared among the workers.
func TestRingGeometry(t *testing.T) {
	for _, c := range []struct {
		ring, workers, size, blocks int
	}{
		{DefaultRingSize, 1, 1 << 20, 8},
		{DefaultRingSize, 2, 512 << 10, 8},
		{DefaultRingSize, 4, 256 << 10, 8},
		{64 << 20, 1, 1 << 20, 64},
		{64 << 20, 2, 1 << 20, 32},
		{4 << 20, 1, 512 << 10, 8},
		{MinRingSize, 1, 256 << 10, 4},
		{MinRingSize, 2, 256 << 10, 4}, // at least 4 blocks, however small
		{MaxRingSize, 1, 1 << 20, 1024},
		{DefaultRingSize, 0, 1 << 20, 8},
	} {
		size, blocks := ringGeometry(c.ring, c.workers)
		if size != c.size || blocks != c.blocks {
			t.Errorf("ringGeometry(%d, %d) = %d blocks of %d bytes, want %d of %d", c.ring, c.workers, blocks, size, c.blocks, c.size)
		}
	}
}
