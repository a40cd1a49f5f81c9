package capture

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

// TestFileSourceNoAllocs checks that reading a packet of a pcap or pcapng
// file, with ReadFrame or ReadFrameNano, does not allocate.
func TestFileSourceNoAllocs(t *testing.T) {
	const records = 4000
	frame := ethFrame(buildIP(t, tseg{flags: FlagACK, ts: true}))
	le := binary.LittleEndian
	pcap := le.AppendUint32(nil, magicPcapMicro)
	pcap = le.AppendUint16(pcap, 2)
	pcap = le.AppendUint16(pcap, 4)
	pcap = le.AppendUint64(pcap, 0)
	pcap = le.AppendUint32(pcap, 128)
	pcap = le.AppendUint32(pcap, uint32(LinkEthernet))
	// pcapng: a section, an interface, Enhanced Packet Blocks.
	block := func(b []byte, typ uint32, body []byte) []byte {
		n := uint32(12 + len(body))
		b = le.AppendUint32(le.AppendUint32(b, typ), n)
		return le.AppendUint32(append(b, body...), n)
	}
	ng := block(nil, ngSectionHeader, le.AppendUint64(le.AppendUint32(le.AppendUint32(nil, magicNgByteOrder), 1), ^uint64(0)))
	ng = block(ng, ngInterface, le.AppendUint32(le.AppendUint32(nil, uint32(LinkEthernet)), 0))
	padded := append(bytes.Clone(frame), make([]byte, (4-len(frame)%4)%4)...)
	for i := range records {
		pcap = le.AppendUint32(pcap, uint32(i))
		pcap = le.AppendUint32(pcap, 5)
		pcap = le.AppendUint32(pcap, uint32(len(frame)))
		pcap = le.AppendUint32(pcap, uint32(len(frame)))
		pcap = append(pcap, frame...)
		body := le.AppendUint32(nil, 0)
		body = le.AppendUint32(le.AppendUint32(body, uint32(i)), 5) // high, low words
		body = le.AppendUint32(body, uint32(len(frame)))
		body = le.AppendUint32(body, uint32(len(frame)))
		ng = block(ng, ngEnhancedPacket, append(body, padded...))
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{{"pcap", pcap}, {"pcapng", ng}} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewFileSource("test", bytes.NewReader(tt.data))
			if err != nil {
				t.Fatal(err)
			}
			var last int64
			allocs := testing.AllocsPerRun(records/20-1, func() {
				for range 10 {
					data, _, wireLen, ts, _, err := s.ReadFrameNano()
					if err != nil || len(data) != len(frame) || wireLen != len(frame) || ts <= last {
						t.Fatalf("frame of %d bytes, wire %d, at %d after %d: %v", len(data), wireLen, ts, last, err)
					}
					last = ts
					f, err := s.ReadFrame()
					if err != nil || f.Time.UnixNano() <= last {
						t.Fatalf("frame at %v after %v: %v", f.Time, time.Unix(0, last), err)
					}
					last = f.Time.UnixNano()
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocs per 20 frames, want 0", allocs)
			}
		})
	}
}
