// Package ring reads frames from a Linux AF_PACKET socket through a
// TPACKET_V3 memory-mapped ring, block by block, as libpcap does.
//
// It knows frames and blocks, not TCP: a [Frame] is the captured bytes and
// the kernel's metadata (wire length, timestamp, VLAN tag stripped by the
// kernel, interface index, packet type, protocol). Decoding is the caller's.
//
// # Reading
//
// [Open] creates the socket, maps the ring, attaches the caller's classic
// BPF filter (which also sets the snap length: the filter's return value
// is how many bytes of a frame the kernel keeps) and binds, in that order:
// the socket is created with protocol 0, so it receives nothing until the
// bind with ETH_P_ALL that comes after the filter, and the ring never holds
// an unfiltered frame (libpcap binds first, and filters in userspace what
// came before its filter). A socket that joins a PACKET_FANOUT group binds
// with a filter that rejects everything, joins, and then attaches the
// caller's filter, so that it holds no frame that the group did not route
// to it. TestFilter and TestFanoutJoinUnderLoad open sockets while frames
// flood the interface, and fail with the other orders.
//
// [Ring.NextBlock] waits for the next block the kernel hands over (a block
// is handed over when it fills up, or when its retire timeout runs out
// with at least one frame in it), [Block.Next] walks its frames, and
// [Block.Release] gives the block back to the kernel. A caller can thus do
// its housekeeping once per block instead of once per frame.
// [Ring.ReadBlock] does the three steps with a callback.
//
// # Buffer ownership
//
// Frame.Data points into the ring: no copy is made, and it is valid until
// the block is released (by [Block.Release], the next [Ring.NextBlock], or
// [Ring.Close]); after that the kernel writes new frames over it. Copy what
// must outlive the block.
//
// # Allocation
//
// Reading allocates nothing in steady state: not per frame, not per block,
// not on a poll timeout ([ErrTimeout] is returned as is), not to read the
// kernel counters. Open and the errors other than ErrTimeout and
// [ErrClosed] allocate.
//
// # Robustness
//
// The ring is shared with the kernel and treated as untrusted input: the
// block walker checks every offset and length against the block before it
// reads, never reads out of bounds and never panics. A block whose layout
// is inconsistent ends the walk at the last good frame, and [Block.Err]
// reports [ErrMalformedBlock]. FuzzBlock fuzzes the walker.
//
// # Concurrency
//
// One goroutine reads: it calls NextBlock, walks the block and releases it,
// and calls Close. [Ring.Shutdown], [Ring.ReadStats] and [Ring.SetFilter]
// are safe to call from any goroutine at any time, Close included;
// Shutdown wakes a reader blocked in NextBlock at once (through an
// eventfd), so that another goroutine can stop the reader without waiting
// for a poll timeout.
//
// # Kernel counters
//
// The kernel's PACKET_STATISTICS counters are 32-bit and reset on every
// read: each read returns what happened since the previous one.
// [Ring.ReadStats] adds those deltas into a [Counters] of 64-bit totals,
// which the caller keeps across the sockets it reopens, so that the totals
// never wrap and never go backwards.
//
// Everything but the block walker needs Linux; elsewhere [Open] returns an
// error wrapping [ErrNotSupported].
package ring
