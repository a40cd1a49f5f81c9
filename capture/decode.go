package capture

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strconv"
)

// LinkType is a pcap LINKTYPE_ value: the framing in front of the IP header.
type LinkType uint16

// The link types the decoder understands. Values are those of the pcap
// LINKTYPE_ registry, so a pcap file's link type can be used as it is.
const (
	LinkNull      LinkType = 0   // BSD loopback: 4-byte AF value in the capturing host's byte order
	LinkEthernet  LinkType = 1   // Ethernet II, with any number of 802.1Q/802.1ad tags
	LinkRaw       LinkType = 101 // raw IPv4 or IPv6 (TUN devices)
	LinkLoop      LinkType = 108 // OpenBSD loopback: 4-byte AF value in network byte order
	LinkLinuxSLL  LinkType = 113 // Linux cooked capture v1
	LinkIPv4      LinkType = 228 // raw IPv4
	LinkIPv6      LinkType = 229 // raw IPv6
	LinkLinuxSLL2 LinkType = 276 // Linux cooked capture v2
)

// String returns the pcap name of the link type.
func (l LinkType) String() string {
	switch l {
	case LinkNull:
		return "NULL"
	case LinkEthernet:
		return "ETHERNET"
	case LinkRaw:
		return "RAW"
	case LinkLoop:
		return "LOOP"
	case LinkLinuxSLL:
		return "LINUX_SLL"
	case LinkIPv4:
		return "IPV4"
	case LinkIPv6:
		return "IPV6"
	case LinkLinuxSLL2:
		return "LINUX_SLL2"
	}
	return "LINKTYPE_" + strconv.Itoa(int(l))
}

// Supported reports whether the decoder understands the link type.
func (l LinkType) Supported() bool {
	switch l {
	case LinkNull, LinkEthernet, LinkRaw, LinkLoop, LinkLinuxSLL, LinkIPv4, LinkIPv6, LinkLinuxSLL2:
		return true
	}
	return false
}

// Decode errors. ErrNotTCP and ErrFragment mark packets that are valid but
// carry nothing to time; the others are decode errors.
var (
	// ErrNotTCP: the packet is valid but not TCP over IPv4 or IPv6.
	ErrNotTCP = errors.New("not TCP over IP")
	// ErrFragment: a non-first IP fragment, which has no TCP header.
	ErrFragment = errors.New("IP fragment")
	// ErrTruncated: a header runs past the captured bytes (snap length too small or a cut packet).
	ErrTruncated = errors.New("truncated header")
	// ErrMalformed: a header or TCP option is inconsistent with itself or with the packet.
	ErrMalformed = errors.New("malformed header")
	// ErrLinkType: the link type is not one the decoder understands.
	ErrLinkType = errors.New("unsupported link type")
)

// IsDecodeError reports whether err, returned by Decode, counts as a decode
// error (as opposed to a valid packet that is simply not timed).
func IsDecodeError(err error) bool {
	return err == ErrTruncated || err == ErrMalformed || err == ErrLinkType
}

// TCP flags, as in the TCP header's flags byte.
const (
	FlagFIN = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// MaxSACKBlocks is the number of SACK blocks a TCP option can hold.
const MaxSACKBlocks = 4

// SACKBlock is one selective acknowledgement block: [Left, Right).
type SACKBlock struct{ Left, Right uint32 }

// Device identifies where a frame was captured: the interface index and
// the packet type (PACKET_HOST, PACKET_OUTGOING and so on) of a Linux
// packet socket or a Linux cooked capture. The zero value means unknown.
// Two copies of one segment that the kernel delivers from two devices (a
// bridge and its port, a bond and its slave, the outgoing and incoming
// sides of lo) have different Devices. It is comparable.
type Device uint64

// Linux packet types (sll_pkttype).
const (
	PacketHost      = 0 // to this host
	PacketBroadcast = 1
	PacketMulticast = 2
	PacketOtherHost = 3 // to another host, seen in promiscuous mode or on a bridge port
	PacketOutgoing  = 4 // sent by this host
)

const deviceKnown = 1 << 63

// MakeDevice returns the Device of interface index ifindex (0 if unknown)
// and packet type pktType.
func MakeDevice(ifindex uint32, pktType uint8) Device {
	return Device(deviceKnown | uint64(ifindex)<<8 | uint64(pktType))
}

// Known reports whether the packet type is known.
func (d Device) Known() bool { return d&deviceKnown != 0 }

// Index returns the interface index, or 0 if unknown.
func (d Device) Index() uint32 { return uint32(d >> 8) }

// PktType returns the packet type; meaningful only if Known.
func (d Device) PktType() uint8 { return uint8(d) }

// Packet is a decoded TCP segment. The zero value is an empty packet. It
// holds copies, not references, of everything it took from the capture
// buffer, so it stays valid after the buffer is reused.
type Packet struct {
	// Dev is where the frame was captured, when its link header tells
	// (Linux cooked captures): the packet type always, the interface
	// index in version 2. Decode leaves it zero for other link types.
	Dev              Device
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	// PayloadLen is the TCP payload length on the wire, from the IP
	// header; the captured bytes may hold less of it.
	PayloadLen uint32

	// TCP options. The Has fields say which were present.
	HasTS, HasMSS, HasWScale, SACKPermitted bool
	TSval, TSecr                            uint32
	MSS                                     uint16
	WScale                                  uint8
	NumSACK                                 uint8
	SACK                                    [MaxSACKBlocks]SACKBlock

	// srcW and dstW are Src and Dst as the two big-endian halves of their
	// 16-byte form (IPv4 mapped into IPv6), for the flow table's key.
	srcW, dstW [2]uint64
}

// mapped4 is the low half of an IPv4-mapped IPv6 address but the IPv4
// address itself (::ffff:0.0.0.0).
const mapped4 = 0xffff << 32

// Has reports whether all the flags in f are set.
func (p *Packet) Has(f uint8) bool { return p.Flags&f == f }

// SeqLen is the sequence space the segment consumes: payload plus one for
// SYN and one for FIN.
func (p *Packet) SeqLen() uint32 {
	n := p.PayloadLen
	if p.Flags&FlagSYN != 0 {
		n++
	}
	if p.Flags&FlagFIN != 0 {
		n++
	}
	return n
}

const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeVLAN  = 0x8100
	etherTypeQinQ  = 0x88a8
	etherTypeQinQ2 = 0x9100 // pre-standard QinQ

	maxVLANTags = 8  // more stacked tags than this is treated as malformed
	maxExtHdrs  = 16 // IPv6 extension headers followed before giving up

	protoTCP = 6
)

// Decode parses one captured frame of link type link into p. wireLen is the
// frame's length on the wire (0 if unknown); it is used only when the IP
// header gives no length, as with IPv4 BIG TCP. Decode does not allocate,
// never panics, and does not keep data. It returns nil for a TCP segment,
// ErrNotTCP or ErrFragment for a valid packet with nothing to time, and a
// decode error otherwise (see IsDecodeError).
func Decode(link LinkType, data []byte, wireLen int, p *Packet) error {
	p.Dev = 0
	off := len(data) - wireLen // captured minus wire: <= 0 when cut by snaplen
	var err error
	var ethType uint16
	switch link {
	case LinkEthernet:
		if len(data) < 14 {
			return ErrTruncated
		}
		ethType = binary.BigEndian.Uint16(data[12:14])
		data = data[14:]
	case LinkLinuxSLL:
		if len(data) < 16 {
			return ErrTruncated
		}
		p.Dev = MakeDevice(0, uint8(binary.BigEndian.Uint16(data[0:2])))
		ethType = binary.BigEndian.Uint16(data[14:16])
		data = data[16:]
	case LinkLinuxSLL2:
		if len(data) < 20 {
			return ErrTruncated
		}
		p.Dev = MakeDevice(binary.BigEndian.Uint32(data[4:8]), data[10])
		ethType = binary.BigEndian.Uint16(data[0:2])
		data = data[20:]
	case LinkNull, LinkLoop:
		if len(data) < 4 {
			return ErrTruncated
		}
		var af uint32
		if link == LinkLoop {
			af = binary.BigEndian.Uint32(data)
		} else {
			// Host byte order of the capturing machine: AF values are
			// small, so whichever order gives a small value is right.
			af = binary.LittleEndian.Uint32(data)
			if af > 0xffff {
				af = binary.BigEndian.Uint32(data)
			}
		}
		data = data[4:]
		switch af {
		case 2: // AF_INET everywhere
			ethType = etherTypeIPv4
		case 10, 24, 28, 30: // AF_INET6: Linux, NetBSD/OpenBSD, FreeBSD, Darwin
			ethType = etherTypeIPv6
		default:
			return ErrNotTCP
		}
	case LinkRaw:
		if len(data) < 1 {
			return ErrTruncated
		}
		switch data[0] >> 4 {
		case 4:
			ethType = etherTypeIPv4
		case 6:
			ethType = etherTypeIPv6
		default:
			return ErrMalformed
		}
	case LinkIPv4:
		ethType = etherTypeIPv4
	case LinkIPv6:
		ethType = etherTypeIPv6
	default:
		return ErrLinkType
	}
	// 802.1Q / 802.1ad tags: Ethernet and cooked captures may carry them.
	for tags := 0; ethType == etherTypeVLAN || ethType == etherTypeQinQ || ethType == etherTypeQinQ2; tags++ {
		if tags == maxVLANTags {
			return ErrMalformed
		}
		if len(data) < 4 {
			return ErrTruncated
		}
		ethType = binary.BigEndian.Uint16(data[2:4])
		data = data[4:]
	}
	// ipWire is how many bytes of the IP packet were on the wire, when the
	// capture length tells it; used only when the IP header gives 0.
	ipWire := -1
	if wireLen > 0 {
		ipWire = len(data) - off
	}
	switch ethType {
	case etherTypeIPv4:
		err = decodeIPv4(data, ipWire, p)
	case etherTypeIPv6:
		err = decodeIPv6(data, ipWire, p)
	default:
		return ErrNotTCP
	}
	return err
}

func decodeIPv4(b []byte, wire int, p *Packet) error {
	if len(b) < 20 {
		return ErrTruncated
	}
	if b[0]>>4 != 4 {
		return ErrMalformed
	}
	ihl := int(b[0]&0x0f) * 4
	if ihl < 20 {
		return ErrMalformed
	}
	total := int(binary.BigEndian.Uint16(b[2:4]))
	if total == 0 && wire > 0 {
		// IPv4 BIG TCP (GSO over 64 KiB) leaves tot_len 0: use the wire length.
		total = wire
	}
	if total < ihl {
		return ErrMalformed
	}
	if len(b) < ihl {
		return ErrTruncated
	}
	if binary.BigEndian.Uint16(b[6:8])&0x1fff != 0 {
		return ErrFragment
	}
	if b[9] != protoTCP {
		return ErrNotTCP
	}
	p.Src = netip.AddrFrom4([4]byte(b[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(b[16:20]))
	p.srcW = [2]uint64{0, mapped4 | uint64(binary.BigEndian.Uint32(b[12:16]))}
	p.dstW = [2]uint64{0, mapped4 | uint64(binary.BigEndian.Uint32(b[16:20]))}
	err := decodeTCP(b[ihl:], total-ihl, p)
	if err == nil && wire > 0 && total > wire {
		return ErrMalformed // the packet claims more bytes than the wire carried
	}
	return err
}

func decodeIPv6(b []byte, wire int, p *Packet) error {
	if len(b) < 40 {
		return ErrTruncated
	}
	if b[0]>>4 != 6 {
		return ErrMalformed
	}
	plen := int(binary.BigEndian.Uint16(b[4:6]))
	if plen == 0 && wire > 40 {
		// Jumbogram or IPv6 BIG TCP: use the wire length.
		plen = wire - 40
	}
	// The packet must not claim more bytes than the wire carried; checked
	// once the headers decoded, so that a cut header reads as truncated.
	lies := wire > 0 && 40+plen > wire
	next := b[6]
	src := [16]byte(b[8:24])
	dst := [16]byte(b[24:40])
	b = b[40:]
	// Walk the extension headers. Each one advances at least 8 bytes, so
	// the walk ends; maxExtHdrs bounds it anyway.
	for i := 0; ; i++ {
		var n int
		switch next {
		case protoTCP:
			p.Src = netip.AddrFrom16(src)
			p.Dst = netip.AddrFrom16(dst)
			p.srcW = [2]uint64{binary.BigEndian.Uint64(src[:8]), binary.BigEndian.Uint64(src[8:])}
			p.dstW = [2]uint64{binary.BigEndian.Uint64(dst[:8]), binary.BigEndian.Uint64(dst[8:])}
			err := decodeTCP(b, plen, p)
			if err == nil && lies {
				return ErrMalformed
			}
			return err
		case 0, 43, 60, 135, 139, 140: // hop-by-hop, routing, destination, mobility, HIP, shim6
			if len(b) < 2 {
				return ErrTruncated
			}
			n = (int(b[1]) + 1) * 8
		case 44: // fragment
			if len(b) < 8 {
				return ErrTruncated
			}
			if binary.BigEndian.Uint16(b[2:4])&0xfff8 != 0 {
				return ErrFragment
			}
			n = 8
		case 51: // authentication header: length in 4-octet units, minus 2
			if len(b) < 2 {
				return ErrTruncated
			}
			n = (int(b[1]) + 2) * 4
		default: // ESP, no next header, or another protocol
			return ErrNotTCP
		}
		if i == maxExtHdrs {
			return ErrMalformed // maxExtHdrs headers followed already: this one is too many
		}
		if n > plen {
			return ErrMalformed
		}
		if len(b) < n {
			return ErrTruncated
		}
		next = b[0]
		b = b[n:]
		plen -= n
	}
}

// decodeTCP decodes the TCP header in b; segLen is the TCP segment length
// (header and payload) that the IP header declares.
func decodeTCP(b []byte, segLen int, p *Packet) error {
	if segLen < 20 {
		return ErrMalformed
	}
	if len(b) < 20 {
		return ErrTruncated
	}
	doff := int(b[12]>>4) * 4
	if doff < 20 || doff > segLen {
		return ErrMalformed
	}
	if len(b) < doff {
		return ErrTruncated
	}
	p.SrcPort = binary.BigEndian.Uint16(b[0:2])
	p.DstPort = binary.BigEndian.Uint16(b[2:4])
	p.Seq = binary.BigEndian.Uint32(b[4:8])
	p.Ack = binary.BigEndian.Uint32(b[8:12])
	p.Flags = b[13]
	p.Window = binary.BigEndian.Uint16(b[14:16])
	p.PayloadLen = uint32(segLen - doff)
	return decodeOptions(b[20:doff], p)
}

// decodeOptions parses TCP options. A known option with the wrong length,
// or any option whose length is below 2 or runs past the header, makes the
// packet malformed.
func decodeOptions(o []byte, p *Packet) error {
	p.HasTS, p.HasMSS, p.HasWScale, p.SACKPermitted = false, false, false, false
	p.TSval, p.TSecr, p.MSS, p.WScale, p.NumSACK = 0, 0, 0, 0, 0
	for len(o) > 0 {
		kind := o[0]
		switch kind {
		case 0: // end of option list
			return nil
		case 1: // no-operation
			o = o[1:]
			continue
		}
		if len(o) < 2 {
			return ErrMalformed
		}
		n := int(o[1])
		if n < 2 || n > len(o) {
			return ErrMalformed
		}
		switch kind {
		case 2: // MSS
			if n != 4 {
				return ErrMalformed
			}
			p.HasMSS, p.MSS = true, binary.BigEndian.Uint16(o[2:4])
		case 3: // window scale
			if n != 3 {
				return ErrMalformed
			}
			p.HasWScale, p.WScale = true, o[2]
		case 4: // SACK permitted
			if n != 2 {
				return ErrMalformed
			}
			p.SACKPermitted = true
		case 5: // SACK blocks
			if (n-2)%8 != 0 || n == 2 || (n-2)/8 > MaxSACKBlocks {
				return ErrMalformed
			}
			k := (n - 2) / 8
			for i := range k {
				blk := o[2+8*i : 10+8*i]
				p.SACK[i] = SACKBlock{binary.BigEndian.Uint32(blk[0:4]), binary.BigEndian.Uint32(blk[4:8])}
			}
			p.NumSACK = uint8(k)
		case 8: // timestamps
			if n != 10 {
				return ErrMalformed
			}
			p.HasTS = true
			p.TSval = binary.BigEndian.Uint32(o[2:6])
			p.TSecr = binary.BigEndian.Uint32(o[6:10])
		}
		o = o[n:]
	}
	return nil
}
