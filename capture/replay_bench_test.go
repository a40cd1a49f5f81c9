//go:build linux || darwin

package capture

import (
	"bufio"
	"container/heap"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

// The replay benchmark writes a capture of bulk TCP traffic, as
// tcpdump -s 128 would record it on the sending host, and measures in one
// run the CPU time per packet of go-metro's replay path and of a bare read
// of the same file with gopacket's pcapgo, so that the speed of the
// machine cancels out of their ratio.

// Shape of the replay benchmark's capture.
const (
	replayPackets = 2_000_000
	replayFlows   = 1000
	replaySnaplen = 128
	replayMSS     = 1448
	// replayCycle is the time in which each flow sends two data segments
	// and receives the ACK of both: 200 packets per second per flow,
	// 200,000 in all, so the capture spans 10 s.
	replayCycle = 15 * time.Millisecond
	// replayRounds is how many times each of the two reads runs,
	// interleaved; the medians count.
	replayRounds = 5
)

// replayLocal is the sending host of the replay benchmark's capture.
var replayLocal = netip.MustParseAddr("10.0.0.1")

// replayFlow is one bulk flow of the generated capture.
type replayFlow struct {
	data, ack []byte // frame templates: a data segment cut to the snap length, a pure ACK
	rtt       int64  // base round-trip time, ns
	next      int64  // capture time of the flow's next packet, Unix ns
	step      int    // 0, 1: the first and second data segment of a cycle; 2: the ACK
	cycle     int64  // start of the current cycle
	seq, ack0 uint32 // next sequence number to send; the peer's sequence number
	tsLocal   uint32 // TSval clock bases, ms
	tsRemote  uint32
	echo      uint32 // TSval the next ACK echoes (TS.Recent at the peer)
}

// replayQueue orders flows by the time of their next packet.
type replayQueue []*replayFlow

func (q replayQueue) Len() int           { return len(q) }
func (q replayQueue) Less(i, j int) bool { return q[i].next < q[j].next }
func (q replayQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *replayQueue) Push(x any)        { *q = append(*q, x.(*replayFlow)) }
func (q *replayQueue) Pop() any {
	old := *q
	f := old[len(old)-1]
	*q = old[:len(old)-1]
	return f
}

// writeBulkCapture writes a pcap file of replayPackets packets of
// replayFlows concurrent bulk flows from replayLocal, one to each of as
// many remote hosts, to path, and returns path. Each flow sends
// 1448-byte segments with TCP timestamps and the peer ACKs every second
// one a round-trip time (2 to 5 ms, and a random part of up to 10 %)
// later, echoing the TSval of the first segment it had not acknowledged,
// as RFC 7323 has it. The frames are cut to a snap length of 128 bytes
// and timestamped in microseconds, as tcpdump -s 128 writes them.
func writeBulkCapture(tb testing.TB, path string) string {
	tb.Helper()
	start := t0.UnixNano()
	rng := rand.New(rand.NewPCG(1, 2))
	q := make(replayQueue, 0, replayFlows)
	for i := range replayFlows {
		local := netip.AddrPortFrom(replayLocal, uint16(40000+i))
		remote := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i / 250), byte(i%250 + 1)}), 5201)
		data := ethFrame(buildIP(tb, tseg{src: local, dst: remote, flags: FlagACK, payload: replayMSS, ts: true, win: 502}))
		f := &replayFlow{
			data:     data[:replaySnaplen],
			ack:      ethFrame(buildIP(tb, tseg{src: remote, dst: local, flags: FlagACK, ts: true, win: 1000})),
			rtt:      int64(2+i%4) * int64(time.Millisecond),
			seq:      rng.Uint32(),
			ack0:     rng.Uint32(),
			tsLocal:  rng.Uint32(),
			tsRemote: rng.Uint32(),
		}
		// The flows' cycles are spread over the cycle time.
		f.cycle = start + int64(replayCycle)*int64(i)/replayFlows + rng.Int64N(int64(10*time.Microsecond))
		f.next = f.cycle
		q = append(q, f)
	}
	heap.Init(&q)

	out, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	w := pcapgo.NewWriter(bw)
	if err := w.WriteFileHeader(replaySnaplen, layers.LinkTypeEthernet); err != nil {
		tb.Fatal(err)
	}
	const tcp = 14 + 20 // offset of the TCP header in the frames
	for range replayPackets {
		f := q[0]
		t := f.next
		ms := uint32((t - start) / int64(time.Millisecond))
		var frame []byte
		wire := 0
		switch f.step {
		case 0, 1:
			frame, wire = f.data, 14+20+32+replayMSS
			tsval := f.tsLocal + ms
			if f.step == 0 {
				f.echo = tsval
			}
			binary.BigEndian.PutUint32(frame[tcp+4:], f.seq)
			binary.BigEndian.PutUint32(frame[tcp+8:], f.ack0)
			binary.BigEndian.PutUint32(frame[tcp+24:], tsval)
			binary.BigEndian.PutUint32(frame[tcp+28:], f.tsRemote+ms)
			f.seq += replayMSS
		case 2:
			frame = f.ack
			wire = len(frame)
			binary.BigEndian.PutUint32(frame[tcp+4:], f.ack0)
			binary.BigEndian.PutUint32(frame[tcp+8:], f.seq)
			binary.BigEndian.PutUint32(frame[tcp+24:], f.tsRemote+ms)
			binary.BigEndian.PutUint32(frame[tcp+28:], f.echo)
		}
		ci := gopacket.CaptureInfo{Timestamp: time.Unix(0, t), CaptureLength: len(frame), Length: wire}
		if err := w.WritePacket(ci, frame); err != nil {
			tb.Fatal(err)
		}
		// The second data segment goes half a cycle after the first, its
		// ACK a round trip later.
		switch f.step {
		case 0:
			f.step, f.next = 1, f.cycle+int64(replayCycle)/2
		case 1:
			f.step, f.next = 2, t+f.rtt+rng.Int64N(f.rtt/10)
		case 2:
			f.cycle += int64(replayCycle)
			f.step, f.next = 0, f.cycle
		}
		heap.Fix(&q, 0)
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := out.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

// cpuTime returns the CPU time, user and system, of the process so far:
// every thread's, the garbage collector's included.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs fn, which returns how many packets it read, and returns
// its CPU time per packet in ns and its heap allocations per packet. It
// collects garbage first, so that no phase pays for another's.
func measure(tb testing.TB, fn func() int) (ns, allocs float64) {
	tb.Helper()
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	c0 := cpuTime(tb)
	n := fn()
	c1 := cpuTime(tb)
	runtime.ReadMemStats(&m1)
	if n != replayPackets {
		tb.Fatalf("read %d packets, want %d", n, replayPackets)
	}
	return float64(c1-c0) / float64(n), float64(m1.Mallocs-m0.Mallocs) / float64(n)
}

// bareRead reads the file with pcapgo's ZeroCopyReadPacketData and does
// nothing else, and returns the number of packets.
func bareRead(tb testing.TB, path string) int {
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		tb.Fatal(err)
	}
	n := 0
	for {
		_, _, err := r.ZeroCopyReadPacketData()
		if err == io.EOF {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
}

// fileRead reads the file with go-metro's FileSource as the replay does,
// and does nothing else, and returns the number of packets.
func fileRead(tb testing.TB, path string) int {
	s, err := OpenFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	n := 0
	for {
		_, _, _, _, _, err := s.ReadFrameNano()
		if err == io.EOF {
			return n
		}
		if err != nil {
			tb.Fatal(err)
		}
		n++
	}
}

// replayRead runs the file through an Engine as go-metro replay does
// with --local, without printing, and returns the number of packets.
func replayRead(tb testing.TB, path string) int {
	e := NewEngine(Config{Local: NewLocalSet([]netip.Addr{replayLocal}, nil)})
	s, err := OpenFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	e.BeginBatch() // as go-metro replay does
	for {
		data, link, wireLen, t, dev, err := s.ReadFrameNano()
		if err == io.EOF {
			break
		}
		if err != nil {
			tb.Fatal(err)
		}
		e.ProcessDev(link, data, wireLen, t, dev)
	}
	e.EndBatch()
	peers := e.Drain(nil)
	st := e.Stats()
	// Every ACK gives a timestamp and a seq/ack sample.
	if st.DecodeErrors != 0 || len(peers) != replayFlows || st.Samples < replayPackets/3-replayFlows {
		tb.Fatalf("replay: %d peers, stats %+v", len(peers), st)
	}
	return int(st.Packets)
}

// BenchmarkReplay measures the CPU time per packet of go-metro's replay
// path (FileSource.ReadFrameNano and Engine.ProcessDev for every frame, a
// Drain at the end, as go-metro replay --local does without printing) on
// a capture of 2,000,000 packets of 1,000 bulk flows, and of a bare pcapgo
// read of the same file (NewReader and ZeroCopyReadPacketData, nothing
// else; pcapgo reads through a bufio.Reader of 4 KiB), interleaved
// replayRounds times, and reports the medians and their ratio, the goal
// of which is at most 2. It reports as well the read alone with
// FileSource (read-ns/pkt), to tell the engine's part from the reader's.
// CPU time is the process's user and system time (getrusage), so that
// the time spent waiting for the CPU of a shared machine is not counted;
// the file is in the page cache after being written. Run it once:
//
//	go test -run='^$' -bench=BenchmarkReplay -benchtime=1x ./capture/
func BenchmarkReplay(b *testing.B) {
	path := writeBulkCapture(b, filepath.Join(b.TempDir(), "bulk.pcap"))
	b.ReportAllocs()
	var bare, read, replay, allocs []float64
	for b.Loop() {
		bare, read, replay, allocs = bare[:0], read[:0], replay[:0], allocs[:0]
		for range replayRounds {
			ns, _ := measure(b, func() int { return bareRead(b, path) })
			bare = append(bare, ns)
			ns, a := measure(b, func() int { return replayRead(b, path) })
			replay, allocs = append(replay, ns), append(allocs, a)
			ns, _ = measure(b, func() int { return fileRead(b, path) })
			read = append(read, ns)
		}
	}
	g, p := medianOf(replay), medianOf(bare)
	b.ReportMetric(g, "replay-ns/pkt")
	b.ReportMetric(p, "pcapgo-ns/pkt")
	b.ReportMetric(g/p, "x-pcapgo")
	b.ReportMetric(medianOf(allocs), "replay-allocs/pkt")
	// The file reading part of the replay alone.
	b.ReportMetric(medianOf(read), "read-ns/pkt")
	b.Logf("rounds: go-metro %.0f ns, of which FileSource %.0f ns; pcapgo %.0f ns", replay, read, bare)
	fmt.Printf("replay CPU per packet: go-metro %.0f ns, bare pcapgo read %.0f ns (%.2f times)\n", g, p, g/p)
}
