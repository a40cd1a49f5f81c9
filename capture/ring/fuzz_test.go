package ring

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"
)

// updateFuzzCorpus rewrites the committed seed corpus under testdata/fuzz
// from fuzzBlockSeeds:
//
//	go test -run '^TestFuzzSeedCorpus$' ./capture/ring/ -update-fuzz-corpus
var updateFuzzCorpus = flag.Bool("update-fuzz-corpus", false, "rewrite the fuzz seed corpus in testdata/fuzz")

// fuzzSeed is a named seed: its corpus file name says what it is, since
// the corpus file format has no comments.
type fuzzSeed struct {
	name, desc string
	block      []byte
}

// fuzzBlockSeeds returns FuzzBlock's seeds: blocks laid out as the kernel
// lays them out, and the corruptions that TestBlockMalformed checks.
func fuzzBlockSeeds(tb testing.TB) []fuzzSeed {
	tb.Helper()
	var seeds []fuzzSeed
	add := func(name, desc string, b []byte) { seeds = append(seeds, fuzzSeed{name, desc, b}) }
	// Blocks of 1 KiB keep the seeds small; the walker reads only up to
	// blk_len.
	const size = 1024
	v4 := ethFrame(0x0800, 74, 1)
	v6 := ethFrame(0x86dd, 94, 2)
	three := func() []byte {
		return buildBlock(tb, size,
			testFrame{data: v4, sec: 1_700_000_000, nsec: 1, protocol: 0x0800, ifindex: 2},
			testFrame{data: v6, sec: 1_700_000_000, nsec: 2, status: tpStatusVLANValid | tpStatusVLANTPIDValid, tci: 0x2064, tpid: 0x88a8, protocol: 0x86dd, ifindex: 2, pktType: 4},
			testFrame{data: v4[:60], wireLen: 1514, sec: 1_700_000_000, nsec: 3, status: tpStatusVLANValid, tci: 5, protocol: 0x0800, ifindex: 3, pktType: 3})
	}
	at := func(b []byte, i, field int, v uint32) []byte { ne.PutUint32(b[frameAt(b, i)+field:], v); return b }
	at16 := func(b []byte, i, field int, v uint16) []byte { ne.PutUint16(b[frameAt(b, i)+field:], v); return b }
	hdr := func(b []byte, field int, v uint32) []byte { ne.PutUint32(b[field:], v); return b }

	add("one-eth-ipv4", "one Ethernet IPv4 frame on SOCK_RAW", buildBlock(tb, size, testFrame{data: v4, sec: 1, protocol: 0x0800, ifindex: 2}))
	add("three-vlan-truncated", "three frames: untagged; 802.1ad tag stripped, outgoing; 802.1Q tag without TPID, cut to 60 of 1514 bytes", three())
	add("dgram-two", "two SOCK_DGRAM frames (data from the network header)", buildBlock(tb, size,
		testFrame{data: v4[14:], protocol: 0x0800, dgram: true}, testFrame{data: v6[14:], protocol: 0x86dd, pktType: 4, dgram: true}))
	add("empty", "a block with no frames (retired by its timeout)", buildBlock(tb, size))
	add("short-header", "47 bytes: shorter than the block header", three()[:blockHdrLen-1])
	add("blk-len-past-end", "blk_len larger than the block", hdr(three(), offBlockLen, 1<<20))
	add("first-inside-header", "offset_to_first_pkt inside the block header", hdr(three(), offFirstPkt, 8))
	add("num-pkts-max", "num_pkts 2^32-1 for three frames", hdr(three(), offNumPkts, 0xffffffff))
	add("mac-inside-header", "the second frame's tp_mac inside its own header", at16(three(), 1, offMac, 20))
	add("mac-past-block", "the third frame's tp_mac past the block", at16(three(), 2, offMac, 0xffff))
	add("snaplen-max", "the first frame's tp_snaplen 2^32-1", at(three(), 0, offSnaplen, 0xffffffff))
	add("next-zero-mid-block", "the first frame's tp_next_offset 0 with frames left", at(three(), 0, offNextOffset, 0))
	add("next-into-own-data", "the first frame's tp_next_offset inside its own data", at(three(), 0, offNextOffset, frameHdrLen+8))
	add("next-max", "the second frame's tp_next_offset 2^32-1", at(three(), 1, offNextOffset, 0xffffffff))
	return seeds
}

// FuzzBlock walks arbitrary bytes as a block: the walker must not panic
// or read outside them, and must yield no more frames than the block says
// it holds or than fit in it, each with its data inside the block.
func FuzzBlock(f *testing.F) {
	for _, s := range fuzzBlockSeeds(f) {
		f.Add(s.block)
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var b Block
		b.reset(buf)
		var fr Frame
		n := 0
		for b.Next(&fr) {
			n++
			if n > len(buf)/frameHdrLen {
				t.Fatalf("frame %d of a %d-byte block: more than fit", n, len(buf))
			}
			if cap(fr.Data) != len(fr.Data) {
				t.Fatalf("frame %d: cap(Data) %d beyond len %d", n, cap(fr.Data), len(fr.Data))
			}
			if len(fr.Data) == 0 {
				continue
			}
			off := int(uintptr(unsafe.Pointer(unsafe.SliceData(fr.Data))) - uintptr(unsafe.Pointer(unsafe.SliceData(buf))))
			if off < blockHdrLen+frameHdrLen || off+len(fr.Data) > len(buf) {
				t.Fatalf("frame %d: Data at [%d, %d) of a %d-byte block", n, off, off+len(fr.Data), len(buf))
			}
		}
		if n > b.NumFrames() {
			t.Fatalf("%d frames from a block of %d", n, b.NumFrames())
		}
		if b.Err() == nil && n != b.NumFrames() {
			t.Fatalf("%d frames from a block of %d, and no error", n, b.NumFrames())
		}
	})
}

const corpusReadmeHead = `# Fuzz seed corpus

The files under FuzzBlock/ are seeds in the ` + "`go test fuzz v1`" + ` format,
which allows no comments: each file is named for what it holds, and this
list says more. Each is a TPACKET_V3 block of at most 1 KiB in
little-endian byte order, generated by fuzzBlockSeeds in
capture/ring/fuzz_test.go, which also passes them to f.Add;
TestFuzzSeedCorpus keeps the files, this list and the code in step. After
changing the seeds, run

    go test -run '^TestFuzzSeedCorpus$' ./capture/ring/ -update-fuzz-corpus

To fuzz for a while:

    go test -run '^$' -fuzz '^FuzzBlock$' -fuzztime 5m ./capture/ring/

When fuzzing finds a failing input, ` + "`go test`" + ` saves it here under a hex
hash; add it to the seeds under a name that says what it is, so that it
stays a named regression test.

## FuzzBlock

`

// TestFuzzSeedCorpus checks that the committed seed corpus holds every
// seed of fuzzBlockSeeds; with -update-fuzz-corpus it rewrites the corpus
// and its README.
func TestFuzzSeedCorpus(t *testing.T) {
	if ne.Uint16([]byte{1, 0}) != 1 && !*updateFuzzCorpus {
		t.Skip("the committed seeds are little-endian blocks; this host is big-endian")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzBlock")
	var readme strings.Builder
	readme.WriteString(corpusReadmeHead)
	for _, s := range fuzzBlockSeeds(t) {
		fmt.Fprintf(&readme, "- `%s`: %s\n", s.name, s.desc)
		want := []byte(fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s.block))
		path := filepath.Join(dir, s.name)
		if *updateFuzzCorpus {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s: %v (run with -update-fuzz-corpus)", s.name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("seed %s differs from fuzzBlockSeeds (run with -update-fuzz-corpus)", s.name)
		}
	}
	path := filepath.Join("testdata", "fuzz", "README.md")
	if *updateFuzzCorpus {
		if err := os.WriteFile(path, []byte(readme.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil || string(got) != readme.String() {
		t.Errorf("%s is out of date (run with -update-fuzz-corpus): %v", path, err)
	}
}
