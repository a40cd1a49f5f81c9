package ring

import "encoding/binary"

// Layout of a TPACKET_V3 block, from linux/if_packet.h. Every field is in
// the host's byte order except sll_protocol, which is big-endian.
const (
	// struct tpacket_block_desc: version, offset_to_priv, then struct
	// tpacket_hdr_v1.
	offBlockStatus = 8  // block_status
	offNumPkts     = 12 // num_pkts
	offFirstPkt    = 16 // offset_to_first_pkt
	offBlockLen    = 20 // blk_len: bytes used, from the start of the block
	offSeq         = 24 // seq_num
	blockHdrLen    = 48 // sizeof(struct tpacket_block_desc)

	// struct tpacket3_hdr, at the start of each frame.
	offNextOffset = 0  // tp_next_offset: from this frame to the next; 0 for the last
	offSec        = 4  // tp_sec
	offNsec       = 8  // tp_nsec
	offSnaplen    = 12 // tp_snaplen
	offLen        = 16 // tp_len
	offStatus     = 20 // tp_status
	offMac        = 24 // tp_mac: from the frame header to the data
	offVLANTCI    = 32 // hv1.tp_vlan_tci
	offVLANTPID   = 36 // hv1.tp_vlan_tpid

	// struct sockaddr_ll, at TPACKET_ALIGN(sizeof(struct tpacket3_hdr)).
	offSLL      = 48
	offProtocol = offSLL + 2  // sll_protocol, big-endian
	offIfindex  = offSLL + 4  // sll_ifindex
	offPktType  = offSLL + 10 // sll_pkttype
	sllLen      = 20
	// frameHdrLen is TPACKET3_HDRLEN: the headers before a frame's data.
	frameHdrLen = offSLL + sllLen
)

// Status bits, from linux/if_packet.h.
const (
	tpStatusKernel        = 0x0  // block_status: the kernel owns the block
	tpStatusUser          = 0x1  // block_status: the reader owns the block
	tpStatusVLANValid     = 0x10 // tp_status: tp_vlan_tci is valid
	tpStatusVLANTPIDValid = 0x40 // tp_status: tp_vlan_tpid is valid
	etherTypeVLAN         = 0x8100
)

var ne = binary.NativeEndian

// Block is a block of the ring that the kernel handed over: a batch of
// frames that Next walks in order. It belongs to the Ring that returned
// it, and its frames are valid until Release. It does not allocate; it is
// not safe for concurrent use.
type Block struct {
	buf  []byte // the block up to blk_len
	r    *Ring  // the ring it belongs to, nil for a block parsed from bytes
	next int    // offset in buf of the next frame
	left uint32 // frames still to walk
	num  uint32 // num_pkts
	seq  uint64 // seq_num
	err  error
}

// reset makes b walk the block in buf. It checks the block header; Next
// checks each frame.
func (b *Block) reset(buf []byte) {
	r := b.r
	*b = Block{r: r}
	if len(buf) < blockHdrLen {
		b.err = ErrMalformedBlock
		return
	}
	b.num = ne.Uint32(buf[offNumPkts:])
	b.seq = ne.Uint64(buf[offSeq:])
	if b.num == 0 {
		return
	}
	first := uint64(ne.Uint32(buf[offFirstPkt:]))
	used := uint64(ne.Uint32(buf[offBlockLen:]))
	if used > uint64(len(buf)) || first < blockHdrLen || first > used {
		b.err = ErrMalformedBlock
		return
	}
	b.buf = buf[:used]
	b.next = int(first)
	b.left = b.num
}

// Next fills f with the block's next frame and reports whether there was
// one. It returns false at the end of the block, and at a frame that does
// not fit in the block, after which Err reports ErrMalformedBlock.
// f.Data points into the ring, valid until Release. Next does not
// allocate.
func (b *Block) Next(f *Frame) bool {
	if b.left == 0 {
		return false
	}
	off := b.next
	if off > len(b.buf)-frameHdrLen {
		b.malformed()
		return false
	}
	h := b.buf[off:]
	mac := uint64(ne.Uint16(h[offMac:]))
	end := mac + uint64(ne.Uint32(h[offSnaplen:]))
	if mac < frameHdrLen || end > uint64(len(h)) {
		b.malformed()
		return false
	}
	b.left--
	if b.left > 0 {
		// The next frame starts after this one's data, and its header
		// fits in the block: Next checks it then.
		step := uint64(ne.Uint32(h[offNextOffset:]))
		if step < end || step > uint64(len(h)) {
			b.malformed() // this frame is good; the walk ends after it
		} else {
			b.next = off + int(step)
		}
	}
	// Field by field: a composite literal would be built on the stack
	// and copied.
	f.Data = h[mac:end:end]
	f.Len = int(ne.Uint32(h[offLen:]))
	f.Time = int64(ne.Uint32(h[offSec:]))*1e9 + int64(ne.Uint32(h[offNsec:]))
	f.Ifindex = int(int32(ne.Uint32(h[offIfindex:])))
	f.Protocol = binary.BigEndian.Uint16(h[offProtocol:])
	f.PktType = PacketType(h[offPktType])
	f.VLAN, f.VLANTCI, f.VLANTPID = false, 0, 0
	if status := ne.Uint32(h[offStatus:]); status&tpStatusVLANValid != 0 {
		f.VLAN = true
		f.VLANTCI = uint16(ne.Uint32(h[offVLANTCI:]))
		f.VLANTPID = etherTypeVLAN
		if status&tpStatusVLANTPIDValid != 0 {
			f.VLANTPID = ne.Uint16(h[offVLANTPID:])
		}
	}
	return true
}

// malformed ends the walk with ErrMalformedBlock.
func (b *Block) malformed() {
	b.left = 0
	b.err = ErrMalformedBlock
}

// Err returns ErrMalformedBlock if the walk ended early at a frame that
// does not fit in the block, or nil. The frames before it were good.
func (b *Block) Err() error { return b.err }

// NumFrames returns the number of frames the block says it holds
// (num_pkts). Next yields fewer if the block is malformed.
func (b *Block) NumFrames() int { return int(b.num) }

// Seq returns the block's sequence number (seq_num), which the kernel
// increments for every block it hands over, starting at 1.
func (b *Block) Seq() uint64 { return b.seq }

// Release gives the block back to the kernel, which may then write new
// frames over it: the frames' Data must no longer be used. Releasing
// twice, or a block of a closed ring, does nothing.
func (b *Block) Release() {
	b.left = 0
	if b.r != nil {
		b.r.release()
	}
}
