package capture

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fuzzOptionsSeeds returns FuzzOptions' seeds: the option lists that real
// stacks send, and the hostile and malformed shapes around them. Each is
// the bytes between the fixed TCP header and the data offset.
func fuzzOptionsSeeds(tb testing.TB) []fuzzSeed {
	tb.Helper()
	var seeds []fuzzSeed
	add := func(name, desc string, o ...byte) {
		seeds = append(seeds, fuzzSeed{name: name, desc: desc, data: o})
	}
	ts := func(tsval, tsecr uint32) []byte {
		o := []byte{8, 10}
		o = binary.BigEndian.AppendUint32(o, tsval)
		return binary.BigEndian.AppendUint32(o, tsecr)
	}
	sack := func(blocks ...SACKBlock) []byte {
		o := []byte{5, byte(2 + 8*len(blocks))}
		for _, b := range blocks {
			o = binary.BigEndian.AppendUint32(o, b.Left)
			o = binary.BigEndian.AppendUint32(o, b.Right)
		}
		return o
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	nop2 := []byte{1, 1}
	blocks := []SACKBlock{{1000, 2448}, {5000, 6448}, {9000, 10448}, {0xfffffc00, 0x200}}

	add("linux-syn", "Linux SYN: MSS 1460, SACK-permitted, timestamps, NOP, window scale 7",
		cat([]byte{2, 4, 5, 0xb4, 4, 2}, ts(0x12345678, 0), []byte{1, 3, 3, 7})...)
	add("bsd-syn", "BSD/macOS SYN: MSS, NOP, WS 6, NOP, NOP, timestamps, SACK-permitted, EOL, EOL",
		cat([]byte{2, 4, 5, 0xb4, 1, 3, 3, 6}, nop2, ts(1, 0), []byte{4, 2, 0, 0})...)
	add("windows-syn", "Windows SYN: MSS, NOP, WS 8, NOP, NOP, SACK-permitted (no timestamps)",
		2, 4, 5, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2)
	add("ts-only", "NOP, NOP, timestamps: a data segment or ACK", cat(nop2, ts(0xfffffff0, 0x7fffffff))...)
	add("ts-sack1", "NOP, NOP, timestamps, NOP, NOP, 1 SACK block", cat(nop2, ts(7, 8), nop2, sack(blocks[:1]...))...)
	add("ts-sack3", "NOP, NOP, timestamps, NOP, NOP, 3 SACK blocks: 40 bytes, the most a header holds",
		cat(nop2, ts(7, 8), nop2, sack(blocks[:3]...))...)
	add("sack4", "NOP, NOP, 4 SACK blocks, the last wrapping past 2^32", cat(nop2, sack(blocks...))...)
	add("empty", "no options")
	add("eol-then-garbage", "EOL, then bytes that would be malformed options: ignored", 0, 2, 0, 8, 3, 0xff)
	add("nops-40", "40 NOPs", bytes.Repeat([]byte{1}, 40)...)
	add("mss-twice", "two MSS options: the last one wins", 2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18)
	add("ts-twice", "two timestamp options: the last one wins", cat(ts(1, 2), ts(3, 4))...)
	add("sack-then-sack", "4 SACK blocks, then 1: NumSACK is 1", cat(sack(blocks...), sack(blocks[3]))...)
	add("unknown-kinds", "MD5 signature (19), MPTCP (30), TCP Fast Open cookie (34), experimental (254), kind 255: skipped",
		cat([]byte{19, 18}, make([]byte, 16), []byte{30, 4, 0, 0, 34, 10}, make([]byte, 8), []byte{254, 4, 0xf9, 0x89, 255, 2})...)
	add("unknown-max-len", "an unknown option of length 255 that fills the buffer", cat([]byte{200, 255}, make([]byte, 253))...)
	add("ws-shift-255", "window scale shift 255 (RFC 7323 caps it at 14; the decoder keeps it)", 3, 3, 255)
	add("lone-kind", "MSS kind as the last byte, without a length: ErrMalformed", 1, 1, 2)
	add("len0", "an option of length 0: ErrMalformed", 99, 0, 1, 1)
	add("len1", "an option of length 1: ErrMalformed", 99, 1, 1, 1)
	add("len-past-end", "an option whose length runs past the buffer: ErrMalformed", 99, 41, 0, 0)
	add("mss-len3", "MSS of length 3: ErrMalformed", 2, 3, 5, 1)
	add("mss-len5", "MSS of length 5: ErrMalformed", 2, 5, 5, 0xb4, 0)
	add("ws-len4", "window scale of length 4: ErrMalformed", 3, 4, 7, 0)
	add("sackperm-len3", "SACK-permitted of length 3: ErrMalformed", 4, 3, 0)
	add("sack-len2", "SACK with no block: ErrMalformed", 5, 2, 1, 1)
	add("sack-len11", "SACK of length 11 (not 2 + 8k): ErrMalformed", cat([]byte{5, 11}, make([]byte, 9))...)
	add("sack5", "5 SACK blocks (length 42, only possible past a real header): ErrMalformed",
		cat([]byte{5, 42}, make([]byte, 40))...)
	add("ts-len9", "timestamps of length 9: ErrMalformed", 8, 9, 0, 0, 0, 1, 0, 0, 0)
	add("ts-cut", "timestamps cut 2 bytes short of its length: ErrMalformed", 1, 1, 8, 10, 0, 0, 0, 1, 0, 0)
	add("valid-then-malformed", "MSS and timestamps, then an option of length 0: ErrMalformed",
		cat([]byte{2, 4, 5, 0xb4}, ts(5, 6), []byte{99, 0})...)
	for i := range seeds {
		seeds[i].data = bytes.Clone(seeds[i].data) // a nil seed and an empty one are the same corpus entry
		if seeds[i].data == nil {
			seeds[i].data = []byte{}
		}
	}
	return seeds
}

// FuzzOptions feeds arbitrary bytes to decodeOptions as a TCP header's
// option list. It must not panic, must fail only with ErrMalformed, must
// reset every option field (so nothing leaks from the previous packet),
// and must agree with refOptions, a plain reading of RFC 9293 §3.1 and
// RFC 7323 written separately from it. Where the bytes fit a real header,
// Decode of a whole segment carrying them must agree too.
func FuzzOptions(f *testing.F) {
	for _, s := range fuzzOptionsSeeds(f) {
		f.Add(s.data)
	}
	f.Fuzz(func(t *testing.T, o []byte) {
		orig := bytes.Clone(o)
		// Start from a packet full of another segment's options.
		p := Packet{
			HasTS: true, HasMSS: true, HasWScale: true, SACKPermitted: true,
			TSval: 1, TSecr: 2, MSS: 3, WScale: 4, NumSACK: MaxSACKBlocks,
			SACK: [MaxSACKBlocks]SACKBlock{{5, 6}, {7, 8}, {9, 10}, {11, 12}},
		}
		err := decodeOptions(o, &p)
		if !bytes.Equal(o, orig) {
			t.Fatalf("decodeOptions changed its input")
		}
		if err != nil && err != ErrMalformed {
			t.Fatalf("decodeOptions: unexpected error %v", err)
		}
		if p.NumSACK > MaxSACKBlocks {
			t.Fatalf("NumSACK %d > %d", p.NumSACK, MaxSACKBlocks)
		}
		if (!p.HasTS && (p.TSval != 0 || p.TSecr != 0)) || (!p.HasMSS && p.MSS != 0) || (!p.HasWScale && p.WScale != 0) {
			t.Fatalf("option values without their option: %+v", optFields(&p))
		}
		want, wantErr := refOptions(o)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("decodeOptions error %v, refOptions error %v", err, wantErr)
		}
		if err == nil {
			if diff := cmp.Diff(want, optFields(&p)); diff != "" {
				t.Fatalf("decodeOptions disagrees with refOptions (-want +got):\n%s", diff)
			}
		}

		// The same bytes as a whole segment's options, when they fit a
		// header: Decode gives the same fields, or ErrMalformed.
		if len(o) > 40 || len(o)%4 != 0 {
			return
		}
		s := decSeg(false, tseg{flags: FlagACK, rawOpts: o})
		frame := buildIP(t, s)
		var q Packet
		derr := Decode(LinkRaw, frame, 0, &q)
		switch {
		case err != nil && derr != ErrMalformed:
			t.Fatalf("Decode of a segment with these options: %v, want %v", derr, ErrMalformed)
		case err == nil && derr != nil:
			t.Fatalf("Decode of a segment with these options: %v", derr)
		case err == nil:
			if diff := cmp.Diff(optFields(&p), optFields(&q)); diff != "" {
				t.Fatalf("Decode disagrees with decodeOptions (-want +got):\n%s", diff)
			}
		}
	})
}

// optFieldSet is the part of a Packet that the options give, with only
// the SACK blocks that NumSACK counts.
type optFieldSet struct {
	HasTS, HasMSS, HasWScale, SACKPermitted bool
	TSval, TSecr                            uint32
	MSS                                     uint16
	WScale                                  uint8
	SACK                                    []SACKBlock
}

func optFields(p *Packet) optFieldSet {
	return optFieldSet{
		HasTS: p.HasTS, HasMSS: p.HasMSS, HasWScale: p.HasWScale, SACKPermitted: p.SACKPermitted,
		TSval: p.TSval, TSecr: p.TSecr, MSS: p.MSS, WScale: p.WScale,
		SACK: append([]SACKBlock{}, p.SACK[:min(int(p.NumSACK), MaxSACKBlocks)]...),
	}
}

// errRefOptions is refOptions' error: any malformed list.
var errRefOptions = ErrMalformed

// refOptions parses a TCP option list the long way, by index, as the
// FuzzOptions oracle: EOL ends the list, NOP is one byte, every other
// option is kind, length (at least 2, within the list) and value; MSS,
// window scale, SACK-permitted, SACK and timestamps must have their RFC
// lengths, SACK at most 4 blocks; a later option of a kind replaces an
// earlier one.
func refOptions(o []byte) (optFieldSet, error) {
	out := optFieldSet{SACK: []SACKBlock{}}
	want := map[byte]func(n int) bool{
		2: func(n int) bool { return n == 4 },
		3: func(n int) bool { return n == 3 },
		4: func(n int) bool { return n == 2 },
		5: func(n int) bool { return n >= 10 && n <= 2+8*MaxSACKBlocks && (n-2)%8 == 0 },
		8: func(n int) bool { return n == 10 },
	}
	i := 0
	for i < len(o) {
		if o[i] == 0 {
			break
		}
		if o[i] == 1 {
			i++
			continue
		}
		if i+1 >= len(o) {
			return optFieldSet{}, errRefOptions
		}
		kind, n := o[i], int(o[i+1])
		if n < 2 || i+n > len(o) {
			return optFieldSet{}, errRefOptions
		}
		if ok, known := want[kind]; known && !ok(n) {
			return optFieldSet{}, errRefOptions
		}
		v := o[i+2 : i+n]
		switch kind {
		case 2:
			out.HasMSS, out.MSS = true, uint16(v[0])<<8|uint16(v[1])
		case 3:
			out.HasWScale, out.WScale = true, v[0]
		case 4:
			out.SACKPermitted = true
		case 5:
			out.SACK = out.SACK[:0]
			for j := 0; j < len(v); j += 8 {
				out.SACK = append(out.SACK, SACKBlock{
					Left:  uint32(v[j])<<24 | uint32(v[j+1])<<16 | uint32(v[j+2])<<8 | uint32(v[j+3]),
					Right: uint32(v[j+4])<<24 | uint32(v[j+5])<<16 | uint32(v[j+6])<<8 | uint32(v[j+7]),
				})
			}
		case 8:
			out.HasTS = true
			out.TSval = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
			out.TSecr = uint32(v[4])<<24 | uint32(v[5])<<16 | uint32(v[6])<<8 | uint32(v[7])
		}
		i += n
	}
	return out, nil
}

// TestFuzzOptionsSeeds checks that each FuzzOptions seed decodes as its
// description says: ErrMalformed where it names it, cleanly otherwise.
func TestFuzzOptionsSeeds(t *testing.T) {
	for _, s := range fuzzOptionsSeeds(t) {
		t.Run(s.name, func(t *testing.T) {
			var p Packet
			err := decodeOptions(s.data, &p)
			if wantErr := strings.Contains(s.desc, "ErrMalformed"); wantErr != (err == ErrMalformed) || (!wantErr && err != nil) {
				t.Errorf("decodeOptions(%x) = %v; description: %s", s.data, err, s.desc)
			}
		})
	}
}
