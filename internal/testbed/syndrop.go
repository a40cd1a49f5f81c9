package testbed

import "encoding/binary"

// EtherTypes, IP protocol numbers and TCP flags that synDstPort reads.
const (
	etherTypeIPv4  = 0x0800
	etherTypeIPv6  = 0x86dd
	etherTypeQinQ  = 0x88a8
	ipProtoTCP     = 6
	tcpFlagSYN     = 0x02
	tcpFlagACK     = 0x10
	maxVLANTags    = 2
	maxIPv6Headers = 8
)

// synDstPort returns the destination port of the Ethernet frame b if it
// carries a TCP connection request: SYN set, ACK clear, in IPv4 or IPv6,
// behind up to two VLAN tags and, for IPv6, up to eight extension headers.
// A fragment other than the first carries no TCP header and is not one. It
// reads b in place, does not allocate, and returns false on a truncated or
// malformed frame.
func synDstPort(b []byte) (port uint16, ok bool) {
	if len(b) < 14 {
		return 0, false
	}
	etherType, off := binary.BigEndian.Uint16(b[12:]), 14
	for range maxVLANTags {
		if etherType != etherTypeVLAN && etherType != etherTypeQinQ {
			break
		}
		if len(b) < off+4 {
			return 0, false
		}
		etherType, off = binary.BigEndian.Uint16(b[off+2:]), off+4
	}
	var tcp []byte
	switch etherType {
	case etherTypeIPv4:
		tcp = ipv4Payload(b[off:])
	case etherTypeIPv6:
		tcp = ipv6Payload(b[off:])
	}
	if len(tcp) < 14 || tcp[13]&(tcpFlagSYN|tcpFlagACK) != tcpFlagSYN {
		return 0, false
	}
	return binary.BigEndian.Uint16(tcp[2:]), true
}

// ipv4Payload returns the TCP header and what follows of the IPv4 packet
// ip, or nil if it carries no TCP header.
func ipv4Payload(ip []byte) []byte {
	if len(ip) < 20 || ip[0]>>4 != 4 || ip[9] != ipProtoTCP {
		return nil
	}
	if binary.BigEndian.Uint16(ip[6:])&0x1fff != 0 { // not the first fragment
		return nil
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 || len(ip) < ihl {
		return nil
	}
	return ip[ihl:]
}

// ipv6Payload returns the TCP header and what follows of the IPv6 packet
// ip, past its extension headers, or nil if it carries no TCP header.
func ipv6Payload(ip []byte) []byte {
	if len(ip) < 40 || ip[0]>>4 != 6 {
		return nil
	}
	next, rest := ip[6], ip[40:]
	for range maxIPv6Headers {
		var n int
		switch next {
		case ipProtoTCP:
			return rest
		case 0, 43, 60: // hop-by-hop, routing, destination options
			if len(rest) < 2 {
				return nil
			}
			n = (int(rest[1]) + 1) * 8
		case 44: // fragment
			if len(rest) < 8 || binary.BigEndian.Uint16(rest[2:])&0xfff8 != 0 {
				return nil
			}
			n = 8
		case 51: // authentication header
			if len(rest) < 2 {
				return nil
			}
			n = (int(rest[1]) + 2) * 4
		default:
			return nil
		}
		if len(rest) < n {
			return nil
		}
		next, rest = rest[0], rest[n:]
	}
	return nil
}

// dropSYN reports whether the frame b is a SYN that the direction drops for
// Impairment.DropSYNToPort, and counts it if so.
func (d *direction) dropSYN(b []byte) bool {
	if d.im.DropSYNToPort == 0 {
		return false
	}
	if port, ok := synDstPort(b); !ok || port != d.im.DropSYNToPort {
		return false
	}
	d.synDropped.Add(1)
	return true
}
