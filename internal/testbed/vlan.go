package testbed

import (
	"encoding/binary"
	"slices"
)

// PriorityTagPCP is the priority code point of the 802.1Q tag that a
// [DelayLine] with VLANPriorityTag inserts.
const PriorityTagPCP = 5

// etherTypeVLAN is the TPID of an 802.1Q tag.
const etherTypeVLAN = 0x8100

// copyFrame returns a copy of the Ethernet frame b, with an 802.1Q priority
// tag (VLAN ID 0, priority PriorityTagPCP) after its MAC addresses if d
// inserts them. It allocates.
func (d *direction) copyFrame(b []byte) []byte {
	if !d.priorityTag || len(b) < 14 {
		return slices.Clone(b)
	}
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:12]...)
	out = binary.BigEndian.AppendUint16(out, etherTypeVLAN)
	out = binary.BigEndian.AppendUint16(out, PriorityTagPCP<<13) // VID 0
	return append(out, b[12:]...)
}
