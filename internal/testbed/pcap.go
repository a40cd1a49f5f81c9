package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"
)

// ReadPcap reads the TCP segments of a classic pcap file of Ethernet frames
// (link type 1, microsecond or nanosecond timestamps, either byte order),
// such as tcpdump writes, for [ReferenceSamples]: a frame whose source
// address is local is one the host sent. numbers holds the 1-based number
// of each frame in the file, as tshark numbers them; frames that are not
// TCP over IPv4 or IPv6 are left out.
func ReadPcap(path string, local netip.Addr) (frames []Frame, numbers []int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read pcap: %w", err)
	}
	defer f.Close()
	var hdr [24]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil {
		return nil, nil, fmt.Errorf("read pcap %s: header: %w", path, err)
	}
	var bo binary.ByteOrder
	var nano bool
	switch m := binary.LittleEndian.Uint32(hdr[:4]); m {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo, nano = binary.LittleEndian, m == 0xa1b23c4d
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo, nano = binary.BigEndian, m == 0x4d3cb2a1
	default:
		return nil, nil, fmt.Errorf("read pcap %s: magic %#x: not a classic pcap file", path, m)
	}
	if lt := bo.Uint32(hdr[20:24]) & 0xffff; lt != 1 {
		return nil, nil, fmt.Errorf("read pcap %s: link type %d, want 1 (Ethernet)", path, lt)
	}
	var rec [16]byte
	buf := make([]byte, 0, 1<<16)
	for n := 1; ; n++ {
		if _, err := io.ReadFull(f, rec[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return frames, numbers, nil
			}
			return nil, nil, fmt.Errorf("read pcap %s: frame %d: %w", path, n, err)
		}
		caplen := bo.Uint32(rec[8:12])
		if caplen > 1<<18 {
			return nil, nil, fmt.Errorf("read pcap %s: frame %d: length %d", path, n, caplen)
		}
		buf = buf[:caplen]
		if _, err := io.ReadFull(f, buf); err != nil {
			return nil, nil, fmt.Errorf("read pcap %s: frame %d: %w", path, n, err)
		}
		frac := time.Duration(bo.Uint32(rec[4:8]))
		if !nano {
			frac *= time.Microsecond
		}
		seg, ok := parseTCPFrame(buf)
		if !ok {
			continue
		}
		seg.Time = time.Unix(int64(bo.Uint32(rec[0:4])), int64(frac))
		frames = append(frames, Frame{Segment: seg, Out: seg.Src.Addr() == local})
		numbers = append(numbers, n)
	}
}
