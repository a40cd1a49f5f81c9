//go:build linux

package ring_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/go-metro/go-metro/capture/ring"
	"github.com/go-metro/go-metro/internal/testbed"
)

// These tests capture on veth pairs and loopback devices in network
// namespaces of their own (internal/testbed). Frames that a test injects
// carry EtherType etherTest, which no protocol of the kernel handles, so
// that the frames the namespaces' own stacks send (IPv6 neighbor
// discovery, for example) are easy to leave out.

// EtherTypes of injected frames: 0x88b5 and 0x88b6 are IEEE 802's "local
// experimental" types.
const (
	etherTest  = 0x88b5
	etherOther = 0x88b6
)

// testConfig returns a Config for ifname with small blocks and a short
// block timeout, so that frames reach the reader within milliseconds.
func testConfig(ifname string) ring.Config {
	return ring.Config{Interface: ifname, BlockSize: 64 << 10, NumBlocks: 16, BlockTimeout: 2 * time.Millisecond}
}

// openRing opens a ring in ns, as the caller's capture code would (the
// socket belongs to the namespace of the thread that creates it), and
// closes it when the test ends.
func openRing(tb testing.TB, ns *testbed.NetNS, cfg ring.Config) *ring.Ring {
	tb.Helper()
	r, err := tryOpen(ns, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := r.Close(); err != nil {
			tb.Error(err)
		}
	})
	return r
}

func tryOpen(ns *testbed.NetNS, cfg ring.Config) (*ring.Ring, error) {
	var r *ring.Ring
	err := ns.Do(func() error {
		var err error
		r, err = ring.Open(cfg)
		return err
	})
	return r, err
}

// ifindex returns the index of ifname in ns.
func ifindex(tb testing.TB, ns *testbed.NetNS, ifname string) int {
	tb.Helper()
	idx := 0
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err == nil {
			idx = ifi.Index
		}
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return idx
}

// frame returns an Ethernet frame of n bytes from src to dst with EtherType
// typ, whose payload starts with id and counts up after it.
func frame(dst, src net.HardwareAddr, typ uint16, id uint32, n int) []byte {
	b := make([]byte, n)
	copy(b, dst)
	copy(b[6:], src)
	binary.BigEndian.PutUint16(b[12:], typ)
	binary.BigEndian.PutUint32(b[14:], id)
	for i := 18; i < n; i++ {
		b[i] = byte(i)
	}
	return b
}

// tagged returns b with 802.1Q-style tags (TPID, TCI) inserted after its
// MAC addresses, outermost first.
func tagged(b []byte, tags ...[2]uint16) []byte {
	out := slices.Clone(b[:12])
	for _, t := range tags {
		out = binary.BigEndian.AppendUint16(out, t[0])
		out = binary.BigEndian.AppendUint16(out, t[1])
	}
	return append(out, b[12:]...)
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// readFrames reads r until done reports true for the frames kept so far,
// or d passes, and returns copies of the frames keep accepts (all if keep
// is nil).
func readFrames(tb testing.TB, r *ring.Ring, d time.Duration, keep func(*ring.Frame) bool, done func([]ring.Frame) bool) []ring.Frame {
	tb.Helper()
	var out []ring.Frame
	var f ring.Frame
	for deadline := time.Now().Add(d); time.Now().Before(deadline); {
		b, err := r.NextBlock(10 * time.Millisecond)
		if errors.Is(err, ring.ErrTimeout) {
			if done != nil && done(out) {
				return out
			}
			continue
		}
		if err != nil {
			tb.Fatalf("NextBlock: %v", err)
		}
		for b.Next(&f) {
			if keep == nil || keep(&f) {
				f.Data = bytes.Clone(f.Data)
				out = append(out, f)
			}
		}
		if err := b.Err(); err != nil {
			tb.Errorf("block %d: %v", b.Seq(), err)
		}
		b.Release()
		if done != nil && done(out) {
			return out
		}
	}
	return out
}

// collect reads r on a goroutine of its own, copying every frame, until
// the returned function is called and a read then times out; that
// function returns the frames and the first read error other than
// ErrTimeout.
func collect(r *ring.Ring) (stop func() ([]ring.Frame, error)) {
	var stopping atomic.Bool
	type result struct {
		frames []ring.Frame
		err    error
	}
	done := make(chan result, 1)
	go func() {
		var out []ring.Frame
		var f ring.Frame
		for {
			b, err := r.NextBlock(20 * time.Millisecond)
			switch {
			case err == ring.ErrTimeout && stopping.Load():
				done <- result{out, nil}
				return
			case err == ring.ErrTimeout:
				continue
			case err != nil:
				done <- result{out, err}
				return
			}
			for b.Next(&f) {
				f.Data = bytes.Clone(f.Data)
				out = append(out, f)
			}
			err = b.Err()
			b.Release()
			if err != nil {
				done <- result{out, err}
				return
			}
		}
	}()
	return func() ([]ring.Frame, error) {
		stopping.Store(true)
		res := <-done
		return res.frames, res.err
	}
}

// protocol returns a keep function for readFrames that accepts the frames
// of EtherType typ.
func protocol(typ uint16) func(*ring.Frame) bool {
	return func(f *ring.Frame) bool { return f.Protocol == typ }
}

// count returns a done function for readFrames: n frames.
func count(n int) func([]ring.Frame) bool {
	return func(fs []ring.Frame) bool { return len(fs) >= n }
}

// TestReceive injects frames of several sizes and addresses into a veth
// pair and reads them at the other end, on SOCK_RAW and SOCK_DGRAM
// sockets: each arrives once, whole, with its length, a timestamp between
// the moments before and after it was sent, the receiving interface's
// index, its EtherType and the packet type its destination address gives.
func TestReceive(t *testing.T) {
	pair := testbed.NewVethPair(t)
	raw := openRing(t, pair.Server, testConfig(pair.ServerIf))
	dcfg := testConfig(pair.ServerIf)
	dcfg.Dgram = true
	dgram := openRing(t, pair.Server, dcfg)
	idx := ifindex(t, pair.Server, pair.ServerIf)
	if raw.Ifindex() != idx || dgram.Ifindex() != idx {
		t.Errorf("Ifindex %d and %d, want %d", raw.Ifindex(), dgram.Ifindex(), idx)
	}
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	other := net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	sent := []struct {
		frame []byte
		typ   ring.PacketType
	}{
		{frame(pair.ServerMAC, pair.ClientMAC, etherTest, 1, 60), ring.PacketHost},
		{frame(pair.ServerMAC, pair.ClientMAC, etherTest, 2, 1000), ring.PacketHost},
		{frame(pair.ServerMAC, pair.ClientMAC, etherTest, 3, 1514), ring.PacketHost},
		{frame(other, pair.ClientMAC, etherTest, 4, 100), ring.PacketOtherHost},
		{frame(broadcast, pair.ClientMAC, etherTest, 5, 100), ring.PacketBroadcast},
	}
	before := time.Now().UnixNano()
	for _, s := range sent {
		inject(s.frame)
	}
	after := time.Now().UnixNano()
	for _, sock := range []struct {
		name  string
		r     *ring.Ring
		strip int // bytes of link-layer header the socket strips
	}{{"raw", raw, 0}, {"dgram", dgram, 14}} {
		t.Run(sock.name, func(t *testing.T) {
			got := readFrames(t, sock.r, 2*time.Second, protocol(etherTest), count(len(sent)))
			if len(got) != len(sent) {
				t.Fatalf("%d frames, want %d", len(got), len(sent))
			}
			for i, s := range sent {
				f := got[i]
				if f.Time < before || f.Time > after {
					t.Errorf("frame %d: time %d outside the injection, [%d, %d]", i, f.Time, before, after)
				}
				want := ring.Frame{Data: s.frame[sock.strip:], Len: len(s.frame) - sock.strip, Time: f.Time,
					Ifindex: idx, Protocol: etherTest, PktType: s.typ}
				if diff := cmp.Diff(want, f); diff != "" {
					t.Errorf("frame %d (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestLoopbackPacketTypes sends a UDP datagram on a loopback device: a
// packet socket sees it twice, sent (PacketOutgoing) and received
// (PacketHost), so that a caller can drop one of the copies.
func TestLoopbackPacketTypes(t *testing.T) {
	ns := testbed.NewNetNS(t)
	r := openRing(t, ns, testConfig("lo"))
	if got := ifindex(t, ns, "lo"); r.Ifindex() != got {
		t.Errorf("Ifindex %d, want %d", r.Ifindex(), got)
	}
	payload := []byte("ring loopback test")
	sendUDP(t, ns, payload)
	got := readFrames(t, r, 2*time.Second, func(f *ring.Frame) bool { return bytes.HasSuffix(f.Data, payload) }, count(2))
	if len(got) != 2 {
		t.Fatalf("%d copies of the datagram, want 2", len(got))
	}
	types := []ring.PacketType{got[0].PktType, got[1].PktType}
	if !slices.Equal(types, []ring.PacketType{ring.PacketOutgoing, ring.PacketHost}) {
		t.Errorf("packet types %v, want [OUTGOING HOST]", types)
	}
	if !bytes.Equal(got[0].Data, got[1].Data) || got[0].Protocol != unix.ETH_P_IP {
		t.Errorf("the copies differ, or are not IPv4 (EtherType %#x)", got[0].Protocol)
	}
}

// sendUDP sends a datagram with payload over the loopback device of ns,
// to a socket that receives it, so that no ICMP error follows.
func sendUDP(tb testing.TB, ns *testbed.NetNS, payload []byte) {
	tb.Helper()
	ln, err := ns.ListenPacket(context.Background(), "udp4", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	err = ns.Do(func() error {
		c, err := net.Dial("udp4", ln.LocalAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write(payload)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	buf := make([]byte, len(payload)+1)
	if err := ln.SetReadDeadline(time.Now().Add(2 * time.Second)); err != nil {
		tb.Fatal(err)
	}
	if n, _, err := ln.ReadFrom(buf); err != nil || !bytes.Equal(buf[:n], payload) {
		tb.Fatalf("receive the datagram: %d bytes, %v", n, err)
	}
}

// TestAnyInterface captures on Any with SOCK_DGRAM: frames from the veth
// and from the loopback device arrive on the one socket, each with the
// index of its own interface.
func TestAnyInterface(t *testing.T) {
	pair := testbed.NewVethPair(t)
	cfg := testConfig(ring.Any)
	cfg.Dgram = true
	r := openRing(t, pair.Server, cfg)
	if r.Ifindex() != 0 {
		t.Errorf("Ifindex %d on any, want 0", r.Ifindex())
	}
	veth, lo := ifindex(t, pair.Server, pair.ServerIf), ifindex(t, pair.Server, "lo")
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, 1, 100))
	payload := []byte("ring any test")
	sendUDP(t, pair.Server, payload)
	got := readFrames(t, r, 2*time.Second, func(f *ring.Frame) bool {
		return f.Protocol == etherTest || bytes.HasSuffix(f.Data, payload)
	}, count(3))
	var summary [][2]int // interface index, packet type
	for _, f := range got {
		summary = append(summary, [2]int{f.Ifindex, int(f.PktType)})
	}
	want := [][2]int{{veth, int(ring.PacketHost)}, {lo, int(ring.PacketOutgoing)}, {lo, int(ring.PacketHost)}}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("(interface index, packet type) of the frames (-want +got):\n%s", diff)
	}
	if len(got) > 0 && !bytes.Equal(got[0].Data, frame(pair.ServerMAC, pair.ClientMAC, etherTest, 1, 100)[14:]) {
		t.Errorf("the veth frame's data on SOCK_DGRAM is not the frame without its Ethernet header")
	}
}

// TestVLAN injects tagged frames into a veth pair. The receiving side's
// kernel strips the outer tag (802.1Q or 802.1ad) into the metadata, which
// the ring reports with TP_STATUS_VLAN_VALID: the data has no tag, the
// length does not count it, and Protocol is the EtherType after it. The
// inner tag of a QinQ frame stays in the data. The sending side's packet
// socket sees the frame as sent, with its tags in the data.
func TestVLAN(t *testing.T) {
	pair := testbed.NewVethPair(t)
	rx := openRing(t, pair.Server, testConfig(pair.ServerIf))
	tx := openRing(t, pair.Client, testConfig(pair.ClientIf))
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	plain := frame(pair.ServerMAC, pair.ClientMAC, etherTest, 1, 200)
	tests := []struct {
		name     string
		tags     [][2]uint16
		tci      uint16
		tpid     uint16
		data     []byte // as received
		protocol uint16
	}{
		{"8021q", [][2]uint16{{0x8100, 0x6005}}, 0x6005, 0x8100, plain, etherTest},
		{"8021q-vid0-priority", [][2]uint16{{0x8100, 0xa000}}, 0xa000, 0x8100, plain, etherTest},
		{"8021ad", [][2]uint16{{0x88a8, 0x0007}}, 0x0007, 0x88a8, plain, etherTest},
		{"qinq", [][2]uint16{{0x88a8, 0x0064}, {0x8100, 0x00c8}}, 0x0064, 0x88a8, tagged(plain, [2]uint16{0x8100, 0x00c8}), 0x8100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sent := tagged(plain, tt.tags...)
			inject(sent)
			keep := func(f *ring.Frame) bool { return bytes.HasSuffix(f.Data, plain[14:]) }
			got := readFrames(t, rx, 2*time.Second, keep, count(1))
			if len(got) != 1 {
				t.Fatalf("received %d frames, want 1", len(got))
			}
			want := ring.Frame{Data: tt.data, Len: len(tt.data), Time: got[0].Time, Ifindex: rx.Ifindex(),
				Protocol: tt.protocol, PktType: ring.PacketHost, VLAN: true, VLANTCI: tt.tci, VLANTPID: tt.tpid}
			if diff := cmp.Diff(want, got[0]); diff != "" {
				t.Errorf("received frame (-want +got):\n%s", diff)
			}
			out := readFrames(t, tx, 2*time.Second, keep, count(1))
			if len(out) != 1 {
				t.Fatalf("the sender saw %d frames, want 1", len(out))
			}
			wantOut := ring.Frame{Data: sent, Len: len(sent), Time: out[0].Time, Ifindex: tx.Ifindex(),
				Protocol: tt.tags[0][0], PktType: ring.PacketOutgoing}
			if diff := cmp.Diff(wantOut, out[0]); diff != "" {
				t.Errorf("sent frame (-want +got):\n%s", diff)
			}
		})
	}
}

// etherFilter returns a filter that keeps the first snap bytes of the
// frames of EtherType typ and drops the others.
func etherFilter(tb testing.TB, typ uint16, snap uint32) []bpf.RawInstruction {
	tb.Helper()
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: uint32(typ), SkipTrue: 1},
		bpf.RetConstant{Val: snap},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return prog
}

// flood sends frame out of ifname in ns as fast as it can, from a
// goroutine, until the returned function is called; that function returns
// how many frames were sent. Each frame carries its number, from 1, in
// its first four bytes after the Ethernet header.
func flood(tb testing.TB, ns *testbed.NetNS, ifname string, frame []byte) (stop func() int) {
	tb.Helper()
	idx := ifindex(tb, ns, ifname)
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	sa := &unix.SockaddrLinklayer{Protocol: testbed.Htons(binary.BigEndian.Uint16(frame[12:])), Ifindex: idx, Halen: 6}
	copy(sa.Addr[:], frame)
	var quit atomic.Bool
	var sent atomic.Int64
	done := make(chan struct{})
	buf := slices.Clone(frame)
	go func() {
		defer close(done)
		for !quit.Load() {
			binary.BigEndian.PutUint32(buf[14:], uint32(sent.Load()+1))
			if unix.Sendto(fd, buf, 0, sa) == nil {
				sent.Add(1)
			}
		}
	}()
	stopped := false
	stop = func() int {
		if !stopped {
			stopped = true
			quit.Store(true)
			<-done
			unix.Close(fd)
		}
		return int(sent.Load())
	}
	tb.Cleanup(func() { stop() })
	return stop
}

// TestFilter checks the kernel filter: it drops the frames it rejects and
// cuts the others to its snap length; SetFilter replaces it. Frames of
// the rejected type flood the interface all along, also while each of ten
// sockets opens: none may reach a ring, which shows that the filter is in
// place before the socket receives anything.
func TestFilter(t *testing.T) {
	pair := testbed.NewVethPair(t)
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	stop := flood(t, pair.Client, pair.ClientIf, frame(pair.ServerMAC, pair.ClientMAC, etherOther, 0, 100))
	cfg := testConfig(pair.ServerIf)
	cfg.Filter = etherFilter(t, etherTest, 64)
	for i := range 10 {
		r, err := tryOpen(pair.Server, cfg)
		if err != nil {
			t.Fatal(err)
		}
		inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, uint32(i), 300))
		got := readFrames(t, r, 2*time.Second, nil, func(fs []ring.Frame) bool {
			return slices.ContainsFunc(fs, func(f ring.Frame) bool { return f.Protocol == etherTest })
		})
		var c ring.Counters
		if err := r.ReadStats(&c); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		for _, f := range got {
			if f.Protocol != etherTest {
				t.Fatalf("socket %d: a frame of EtherType %#x passed the filter (%d frames read, kernel counters %+v)", i, f.Protocol, len(got), c)
			}
			if len(f.Data) != 64 || f.Len != 300 {
				t.Errorf("socket %d: %d of %d bytes, want 64 of 300", i, len(f.Data), f.Len)
			}
		}
		if len(got) != 1 {
			t.Errorf("socket %d: %d frames, want 1", i, len(got))
		}
	}
	if n := stop(); n < 1000 {
		t.Errorf("the flood sent only %d frames: the test shows little", n)
	} else {
		t.Logf("%d frames of the filtered type sent while the sockets opened and read", n)
	}
	r := openRing(t, pair.Server, cfg)
	if err := r.SetFilter(etherFilter(t, etherOther, 1500)); err != nil {
		t.Fatal(err)
	}
	readFrames(t, r, 50*time.Millisecond, nil, nil) // what the old filter kept
	inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, 100, 300))
	inject(frame(pair.ServerMAC, pair.ClientMAC, etherOther, 101, 300))
	got := readFrames(t, r, 2*time.Second, nil, count(1))
	if len(got) != 1 || got[0].Protocol != etherOther || len(got[0].Data) != 300 {
		t.Errorf("after SetFilter: %d frames (first %+v), want the one of EtherType %#x, whole", len(got), got, etherOther)
	}
	if err := r.SetFilter(nil); err != nil {
		t.Fatal(err)
	}
	inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, 102, 300))
	got = readFrames(t, r, 2*time.Second, protocol(etherTest), count(1))
	if len(got) != 1 {
		t.Errorf("without a filter: %d frames of EtherType %#x, want 1", len(got), etherTest)
	}
}

// TestReadStats reads the kernel counters: the frames a filter kept, and
// those dropped when the ring was full, which the kernel counts in
// Packets too. The counters of a reopened socket add to those of the
// closed one.
func TestReadStats(t *testing.T) {
	pair := testbed.NewVethPair(t)
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	// Two blocks of 8 KiB hold 14 frames of 1000 bytes (1088 with headers).
	cfg := ring.Config{Interface: pair.ServerIf, BlockSize: 8 << 10, NumBlocks: 2, BlockTimeout: time.Millisecond,
		Filter: etherFilter(t, etherTest, 0xffff)}
	var c ring.Counters
	total := 0
	for round := range 2 {
		r := openRing(t, pair.Server, cfg)
		const sent = 50
		for i := range sent {
			inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, uint32(i), 1000))
		}
		got := readFrames(t, r, 200*time.Millisecond, nil, nil)
		before := c
		if err := r.ReadStats(&c); err != nil {
			t.Fatal(err)
		}
		d := ring.Counters{Packets: c.Packets - before.Packets, Drops: c.Drops - before.Drops, Freezes: c.Freezes - before.Freezes}
		t.Logf("round %d: read %d frames; kernel counters %+v", round, len(got), d)
		if d.Packets != sent || d.Packets != uint64(len(got))+d.Drops || d.Drops == 0 || d.Freezes == 0 {
			t.Errorf("round %d: read %d frames of %d, counters %+v: want Packets = %d = frames read + Drops, and drops and freezes",
				round, len(got), sent, d, sent)
		}
		total += sent
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.ReadStats(&c); !errors.Is(err, ring.ErrClosed) {
			t.Errorf("ReadStats after Close: %v, want ErrClosed", err)
		}
	}
	if c.Packets != uint64(total) {
		t.Errorf("Packets %d over two sockets, want %d", c.Packets, total)
	}
}

// tcpFilter keeps the IPv4 TCP frames of an Ethernet device, whole.
func tcpFilter(tb testing.TB) []bpf.RawInstruction {
	tb.Helper()
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.ETH_P_IP, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 23, Size: 1},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_TCP, SkipTrue: 1},
		bpf.RetConstant{Val: 0xffff},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		tb.Fatal(err)
	}
	return prog
}

// flowOf returns the connection of an Ethernet IPv4 TCP frame, its two
// ends in a fixed order, and whether the frame goes from the first end to
// the second.
func flowOf(b []byte) (flow [2]netip.AddrPort, forward bool) {
	ip := b[14:]
	tcp := ip[int(ip[0]&0xf)*4:]
	src := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[12:16])), binary.BigEndian.Uint16(tcp[0:]))
	dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte(ip[16:20])), binary.BigEndian.Uint16(tcp[2:]))
	if src.Compare(dst) < 0 {
		return [2]netip.AddrPort{src, dst}, true
	}
	return [2]netip.AddrPort{dst, src}, false
}

// TestFanout opens two sockets in one fanout group and a third outside it
// on the client side of a veth pair, and runs 32 TCP connections: the two
// share the frames that the third sees, each frame on exactly one of
// them, and each connection, both directions, on one of them.
func TestFanout(t *testing.T) {
	pair := testbed.NewVethPair(t)
	cfg := testConfig(pair.ClientIf)
	cfg.Filter = tcpFilter(t)
	ref := openRing(t, pair.Client, cfg)
	cfg.Fanout = ring.FanoutNew
	a := openRing(t, pair.Client, cfg)
	cfg.Fanout, cfg.FanoutGroup = ring.FanoutJoin, a.FanoutGroup()
	b := openRing(t, pair.Client, cfg)
	if b.FanoutGroup() != a.FanoutGroup() {
		t.Fatalf("fanout groups %d and %d, want one", a.FanoutGroup(), b.FanoutGroup())
	}
	t.Logf("fanout group %d", a.FanoutGroup())
	// A socket that asks for a new group gets one of its own.
	cfg.Fanout = ring.FanoutNew
	if c := openRing(t, pair.Client, cfg); c.FanoutGroup() == a.FanoutGroup() {
		t.Errorf("FanoutNew gave group %d, which exists", c.FanoutGroup())
	}
	var stops []func() ([]ring.Frame, error)
	for _, r := range []*ring.Ring{ref, a, b} {
		stops = append(stops, collect(r))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const conns = 32
	if err := testbed.ShortConnections(ctx, pair.Path4(), testbed.RequestResponseConfig{Count: conns}); err != nil {
		t.Fatal(err)
	}
	var frames [3][]ring.Frame
	for i, r := range []*ring.Ring{ref, a, b} {
		var err error
		if frames[i], err = stops[i](); err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		var c ring.Counters
		if err := r.ReadStats(&c); err != nil || c.Drops != 0 {
			t.Fatalf("socket %d: counters %+v, %v: want no drops", i, c, err)
		}
	}
	t.Logf("frames: %d outside the group, %d and %d in it", len(frames[0]), len(frames[1]), len(frames[2]))
	// Every frame is in exactly one of the group's sockets.
	seen := make(map[string]int)
	for _, f := range frames[0] {
		seen[string(f.Data)]++
	}
	for _, fs := range frames[1:] {
		for _, f := range fs {
			seen[string(f.Data)]--
		}
	}
	for data, n := range seen {
		if n != 0 {
			flow, _ := flowOf([]byte(data))
			t.Errorf("a frame of %v: seen %d more times outside the group than in it", flow, n)
		}
	}
	// Every connection, both directions, is on one socket.
	owner := make(map[[2]netip.AddrPort]int)
	dirs := make(map[[2]netip.AddrPort][2]bool)
	for i, fs := range frames[1:] {
		for _, f := range fs {
			flow, fwd := flowOf(f.Data)
			if o, ok := owner[flow]; ok && o != i {
				t.Errorf("connection %v: frames on both sockets of the group", flow)
			}
			owner[flow] = i
			d := dirs[flow]
			if fwd {
				d[0] = true
			} else {
				d[1] = true
			}
			dirs[flow] = d
		}
	}
	perSocket := [2]int{}
	for flow, o := range owner {
		perSocket[o]++
		if dirs[flow] != [2]bool{true, true} {
			t.Errorf("connection %v: one direction only", flow)
		}
	}
	if len(owner) != conns || perSocket[0] == 0 || perSocket[1] == 0 {
		t.Errorf("%d connections, %v per socket: want %d, on both sockets", len(owner), perSocket, conns)
	}
}

// readUntilError reads r on a goroutine of its own, waiting for blocks
// without a timeout and releasing them, until NextBlock fails; it sends
// the error on the channel it returns.
func readUntilError(r *ring.Ring) <-chan error {
	errc := make(chan error, 1)
	go func() {
		for {
			b, err := r.NextBlock(-1)
			if err != nil {
				errc <- err
				return
			}
			b.Release()
		}
	}()
	return errc
}

// TestFanoutJoinUnderLoad joins sockets to a fanout group while frames
// flood the interface: no frame may reach two sockets, as one would if a
// socket received frames on its own before it joined the group.
func TestFanoutJoinUnderLoad(t *testing.T) {
	pair := testbed.NewVethPair(t)
	cfg := testConfig(pair.ServerIf)
	cfg.Filter = etherFilter(t, etherOther, 64)
	cfg.Fanout = ring.FanoutNew
	a := openRing(t, pair.Server, cfg)
	cfg.Fanout, cfg.FanoutGroup = ring.FanoutJoin, a.FanoutGroup()
	stops := []func() ([]ring.Frame, error){collect(a)}
	stop := flood(t, pair.Client, pair.ClientIf, frame(pair.ServerMAC, pair.ClientMAC, etherOther, 0, 100))
	for range 10 {
		stops = append(stops, collect(openRing(t, pair.Server, cfg)))
		time.Sleep(2 * time.Millisecond)
	}
	sent := stop()
	seen := make(map[uint32]int) // frame number: the socket that got it
	for i, stop := range stops {
		got, err := stop()
		if err != nil {
			t.Fatalf("socket %d: %v", i, err)
		}
		for _, f := range got {
			id := binary.BigEndian.Uint32(f.Data[14:])
			if j, dup := seen[id]; dup {
				t.Fatalf("frame %d reached sockets %d and %d", id, j, i)
			}
			seen[id] = i
		}
		t.Logf("socket %d: %d frames", i, len(got))
	}
	t.Logf("%d frames sent, %d received once each", sent, len(seen))
	if len(seen) < sent/2 {
		t.Errorf("%d of %d frames received: the test shows little", len(seen), sent)
	}
}

// TestInterfaceDown takes the interface down while a reader waits without
// a timeout: NextBlock returns ErrInterfaceDown, and once the interface is
// back up the same socket receives again. A socket opened while the
// interface is down fails with ErrInterfaceDown.
func TestInterfaceDown(t *testing.T) {
	pair := testbed.NewVethPair(t)
	r := openRing(t, pair.Server, testConfig(pair.ServerIf))
	errc := readUntilError(r)
	time.Sleep(50 * time.Millisecond) // let it wait
	if err := pair.Server.IP("link", "set", pair.ServerIf, "down"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ring.ErrInterfaceDown) || !errors.Is(err, unix.ENETDOWN) {
			t.Fatalf("NextBlock: %v, want ErrInterfaceDown and ENETDOWN", err)
		}
		t.Logf("NextBlock: %v", err)
	case <-time.After(5 * time.Second):
		r.Shutdown()
		t.Fatal("NextBlock still waits 5 s after the interface went down")
	}
	if _, err := tryOpen(pair.Server, testConfig(pair.ServerIf)); !errors.Is(err, ring.ErrInterfaceDown) {
		t.Errorf("Open on a down interface: %v, want ErrInterfaceDown", err)
	} else {
		t.Logf("Open: %v", err)
	}
	if err := pair.Server.IP("link", "set", pair.ServerIf, "up"); err != nil {
		t.Fatal(err)
	}
	inject := testbed.NewInjector(t, pair.Client, pair.ClientIf)
	inject(frame(pair.ServerMAC, pair.ClientMAC, etherTest, 1, 100))
	if got := readFrames(t, r, 2*time.Second, protocol(etherTest), count(1)); len(got) != 1 {
		t.Errorf("%d frames after the interface came back up, want 1", len(got))
	}
}

// TestInterfaceRemoved deletes the interface while a reader waits without
// a timeout: NextBlock returns ErrInterfaceDown, and does not hang.
func TestInterfaceRemoved(t *testing.T) {
	pair := testbed.NewVethPair(t)
	r := openRing(t, pair.Server, testConfig(pair.ServerIf))
	errc := readUntilError(r)
	time.Sleep(50 * time.Millisecond)
	if err := pair.Client.IP("link", "del", pair.ClientIf); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ring.ErrInterfaceDown) {
			t.Fatalf("NextBlock: %v, want ErrInterfaceDown", err)
		}
		t.Logf("NextBlock: %v", err)
	case <-time.After(5 * time.Second):
		r.Shutdown()
		t.Fatal("NextBlock still waits 5 s after the interface was removed")
	}
	if _, err := tryOpen(pair.Server, testConfig(pair.ServerIf)); !errors.Is(err, ring.ErrNoInterface) {
		t.Errorf("Open on the removed interface: %v, want ErrNoInterface", err)
	}
}

// TestShutdown stops a reader that waits without a timeout from another
// goroutine; then Close releases the ring, and every method after it
// fails with ErrClosed or does nothing.
func TestShutdown(t *testing.T) {
	ns := testbed.NewNetNS(t)
	r, err := tryOpen(ns, testConfig("lo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	start := time.Now()
	if _, err := r.NextBlock(20 * time.Millisecond); err != ring.ErrTimeout {
		t.Fatalf("NextBlock on an idle ring: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d < 20*time.Millisecond {
		t.Errorf("NextBlock(20ms) timed out after %v", d)
	}
	if _, err := r.NextBlock(0); err != ring.ErrTimeout {
		t.Fatalf("NextBlock(0) on an idle ring: %v, want ErrTimeout", err)
	}
	errc := readUntilError(r)
	time.Sleep(50 * time.Millisecond)
	r.Shutdown()
	select {
	case err := <-errc:
		if err != ring.ErrClosed {
			t.Errorf("NextBlock after Shutdown: %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("NextBlock still waits 5 s after Shutdown")
	}
	r.Shutdown()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	r.Shutdown()
	if _, err := r.NextBlock(0); err != ring.ErrClosed {
		t.Errorf("NextBlock after Close: %v, want ErrClosed", err)
	}
	if _, err := r.ReadBlock(0, func(*ring.Frame) {}); err != ring.ErrClosed {
		t.Errorf("ReadBlock after Close: %v, want ErrClosed", err)
	}
	if err := r.SetFilter(nil); err != ring.ErrClosed {
		t.Errorf("SetFilter after Close: %v, want ErrClosed", err)
	}
}

// TestCloseHeldBlock closes a ring whose reader holds a block: Close
// releases it, and the block's later Release does nothing.
func TestCloseHeldBlock(t *testing.T) {
	ns := testbed.NewNetNS(t)
	r, err := tryOpen(ns, testConfig("lo"))
	if err != nil {
		t.Fatal(err)
	}
	sendUDP(t, ns, []byte("x"))
	b, err := r.NextBlock(2 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var f ring.Frame
	if b.Next(&f) {
		t.Error("Next returned a frame of a block of a closed ring")
	}
	b.Release()
}

// TestOpenErrors checks the errors of Open that need no traffic.
func TestOpenErrors(t *testing.T) {
	ns := testbed.NewNetNS(t)
	if _, err := tryOpen(ns, ring.Config{Interface: "nonexistent0"}); !errors.Is(err, ring.ErrNoInterface) || !errors.Is(err, unix.ENODEV) {
		t.Errorf("Open on a missing interface: %v, want ErrNoInterface", err)
	} else {
		t.Logf("Open: %v", err)
	}
	if _, err := tryOpen(ns, ring.Config{Interface: "lo", BlockSize: 1000}); err == nil {
		t.Error("Open with a bad BlockSize succeeded")
	}
	cfg := testConfig("lo")
	cfg.Fanout = ring.FanoutNew
	r := openRing(t, ns, cfg)
	cfg.Fanout, cfg.FanoutGroup, cfg.Interface = ring.FanoutJoin, r.FanoutGroup(), ring.Any
	if _, err := tryOpen(ns, cfg); !errors.Is(err, unix.EINVAL) {
		t.Errorf("joining the group of another interface: %v, want EINVAL", err)
	} else {
		t.Logf("Open: %v", err)
	}
}
