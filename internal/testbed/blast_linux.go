//go:build linux

package testbed

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BlastConfig configures a [Blaster]. The zero value is valid: every zero
// field takes its documented default.
type BlastConfig struct {
	// Local and Remote are the ends of every flow: Local sends the data
	// segments and Remote the ACKs that echo them. Both must be of the same
	// family. The zero values mean 192.0.2.1 and 192.0.2.2, the client and
	// the server of a [Pair].
	Local, Remote netip.Addr
	// SrcMAC and DstMAC are the Ethernet addresses of every frame. The zero
	// values mean 02:00:00:00:00:02 (the server of a Pair) and
	// 02:00:00:00:00:fe, an address no interface has: the receiving host
	// marks the frames PACKET_OTHERHOST, so that packet sockets see them
	// and its IP stack drops them at once, without answering the segments
	// for which it has no socket.
	SrcMAC, DstMAC net.HardwareAddr
	// Flows is the number of TCP connections; 0 means 1000. Flow i runs
	// between Local port FirstPort+i and Remote port 443.
	Flows int
	// FirstPort is the Local port of the first flow; 0 means 10000.
	// Blasters that run at once on one path need flows of their own.
	FirstPort int
	// Payload is the size of each data segment; 0 means 100 bytes. It must
	// fit a 1500-byte MTU with the TCP timestamp option.
	Payload int
	// VLAN, if not 0, is the VLAN ID of an 802.1Q tag on every frame.
	VLAN uint16
	// Affinity, if not empty, lists the CPUs that the sending thread may
	// run on. Pinning each of several Blasters to a CPU of its own steadies
	// their rate.
	Affinity []int
	// Window is how many flows send their data segment before the ACKs of
	// those segments follow, so that about 2*Window frames separate a
	// segment from its ACK; 0 means 32.
	Window int
}

// Blaster defaults.
const (
	defaultBlastFlows     = 1000
	defaultBlastPayload   = 100
	defaultBlastFirstPort = 10000
	defaultBlastWindow    = 32
	blastBatch            = 64 // frames per sendmmsg
	blastMTU              = 1500
	maxCPUs               = 1024 // that a unix.CPUSet holds
)

func (c *BlastConfig) setDefaults() {
	if !c.Local.IsValid() {
		c.Local = netip.AddrFrom4([4]byte{192, 0, 2, 1})
	}
	if !c.Remote.IsValid() {
		c.Remote = netip.AddrFrom4([4]byte{192, 0, 2, 2})
	}
	if c.SrcMAC == nil {
		c.SrcMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	}
	if c.DstMAC == nil {
		c.DstMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	}
	if c.Flows == 0 {
		c.Flows = defaultBlastFlows
	}
	if c.FirstPort == 0 {
		c.FirstPort = defaultBlastFirstPort
	}
	if c.Payload == 0 {
		c.Payload = defaultBlastPayload
	}
	if c.Window == 0 {
		c.Window = defaultBlastWindow
	}
}

func (c *BlastConfig) validate() error {
	switch {
	case c.Local.Is4() != c.Remote.Is4():
		return fmt.Errorf("invalid addresses %v and %v: must be of the same family", c.Local, c.Remote)
	case len(c.SrcMAC) != 6 || len(c.DstMAC) != 6:
		return fmt.Errorf("invalid MAC addresses %v and %v: must be 6 bytes", c.SrcMAC, c.DstMAC)
	case c.Flows < 1 || c.FirstPort < 1 || c.FirstPort+c.Flows > 65536:
		return fmt.Errorf("invalid flows %d from port %d: must be at least 1, on ports between 1 and 65535", c.Flows, c.FirstPort)
	case c.Payload < 1 || c.Payload > blastMTU-ipHeaderLen(c.Local)-blastTCPLen:
		return fmt.Errorf("invalid payload %d: must be between 1 and %d bytes", c.Payload, blastMTU-ipHeaderLen(c.Local)-blastTCPLen)
	case c.VLAN > 4094:
		return fmt.Errorf("invalid VLAN %d: must be between 0 (untagged) and 4094", c.VLAN)
	case slices.ContainsFunc(c.Affinity, func(cpu int) bool { return cpu < 0 || cpu >= maxCPUs }):
		return fmt.Errorf("invalid affinity %v: CPUs are numbered from 0 to %d", c.Affinity, maxCPUs-1)
	case c.Window < 1:
		return fmt.Errorf("invalid window %d: must be at least 1", c.Window)
	}
	return nil
}

// Blaster sends prebuilt Ethernet frames of steady-state TCP traffic
// through a packet socket, at a set rate or as fast as it can: for each of
// its flows in turn, a data segment with TCP timestamps from Local to
// Remote, then the ACK of that segment, which echoes its TSval. Before each
// frame is sent, its sequence and acknowledgement numbers, timestamps and
// TCP checksum are rewritten from the flow's state, so that the traffic
// never repeats: every ACK acknowledges new data and echoes a new TSval, as
// a passive RTT monitor wants. The frames bypass the interface's queueing
// discipline.
//
// Its methods are not safe for concurrent use.
type Blaster struct {
	cfg    BlastConfig
	fd     int
	frames []blastFrame // one cycle, in send order
	flows  []blastFlow
	next   int    // index in frames of the next frame to send
	round  uint32 // cycles completed
	sent   uint64
}

// blastFlow is one connection's fixed state; what changes is derived from
// the round.
type blastFlow struct {
	isn, risn uint32 // initial sequence numbers of Local and Remote
	ts, rts   uint32 // initial TSvals of Local and Remote
}

// blastFrame is one prebuilt frame.
type blastFrame struct {
	buf  []byte
	flow int
	ack  bool   // an ACK from Remote, or else a data segment from Local
	tcp  int    // offset of the TCP header in buf
	sum  uint32 // checksum of the pseudo-header and segment, rewritten fields zeroed
}

// TCP header of a blast frame: 20 bytes and the timestamp option, padded
// by two NOPs as Linux sends it.
const blastTCPLen = 32

func ipHeaderLen(a netip.Addr) int {
	if a.Is4() {
		return 20
	}
	return 40
}

// OpenBlaster opens a packet socket on the interface ifname of ns and
// builds the frames that cfg describes. The caller must call Close; tests
// use [NewBlaster] instead.
func OpenBlaster(ns *NetNS, ifname string, cfg BlastConfig) (*Blaster, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("open blaster: %w", err)
	}
	fd := -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		// Protocol 0: the socket only sends, and receives nothing.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return fmt.Errorf("bind packet socket: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			unix.Close(fd)
			return fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("open blaster on %s in netns %q: %w", ifname, ns.Name(), err)
	}
	b := &Blaster{cfg: cfg, fd: fd}
	b.build()
	return b, nil
}

// NewBlaster opens a Blaster, as [OpenBlaster] does, and closes it when
// the test ends. It skips the test without privileges (see [RequireRoot]).
func NewBlaster(tb testing.TB, ns *NetNS, ifname string, cfg BlastConfig) *Blaster {
	tb.Helper()
	RequireRoot(tb)
	b, err := OpenBlaster(ns, ifname, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := b.Close(); err != nil {
			tb.Error(err)
		}
	})
	return b
}

// Config returns the configuration, defaults filled in.
func (b *Blaster) Config() BlastConfig { return b.cfg }

// Close closes the socket. It is idempotent.
func (b *Blaster) Close() error {
	if b.fd < 0 {
		return nil
	}
	err := unix.Close(b.fd)
	b.fd = -1
	if err != nil {
		return fmt.Errorf("close blaster: %w", err)
	}
	return nil
}

// build lays out one cycle of frames: the data segments of Window flows,
// then their ACKs, then the next Window flows.
func (b *Blaster) build() {
	c := &b.cfg
	b.flows = make([]blastFlow, c.Flows)
	x := uint32(0x9e3779b9)
	rnd := func() uint32 { // xorshift: fixed, varied initial numbers
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		return x
	}
	for i := range b.flows {
		b.flows[i] = blastFlow{isn: rnd(), risn: rnd(), ts: rnd(), rts: rnd()}
	}
	for lo := 0; lo < c.Flows; lo += c.Window {
		hi := min(lo+c.Window, c.Flows)
		for _, ack := range []bool{false, true} {
			for i := lo; i < hi; i++ {
				b.frames = append(b.frames, b.frame(i, ack))
			}
		}
	}
}

// frame builds the frame of flow i, its rewritten fields zero.
func (b *Blaster) frame(i int, ack bool) blastFrame {
	c := &b.cfg
	src, dst := c.Local, c.Remote
	sport, dport := uint16(c.FirstPort+i), uint16(443)
	payload := c.Payload
	flags := byte(0x18) // PSH, ACK
	if ack {
		src, dst = dst, src
		sport, dport = dport, sport
		payload = 0
		flags = 0x10 // ACK
	}
	ethLen := 14
	if c.VLAN != 0 {
		ethLen = 18
	}
	ipLen := ipHeaderLen(src)
	tcpOff := ethLen + ipLen
	buf := make([]byte, tcpOff+blastTCPLen+payload)
	copy(buf[0:6], c.DstMAC)
	copy(buf[6:12], c.SrcMAC)
	if c.VLAN != 0 {
		binary.BigEndian.PutUint16(buf[12:], 0x8100)
		binary.BigEndian.PutUint16(buf[14:], c.VLAN)
	}
	etherType := buf[ethLen-2 : ethLen]
	segLen := blastTCPLen + payload
	ip := buf[ethLen:tcpOff]
	if src.Is4() {
		binary.BigEndian.PutUint16(etherType, 0x0800)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+segLen))
		binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
		ip[8], ip[9] = 64, 6
		s4, d4 := src.As4(), dst.As4()
		copy(ip[12:16], s4[:])
		copy(ip[16:20], d4[:])
		binary.BigEndian.PutUint16(ip[10:], ^fold(sum16(ip)))
	} else {
		binary.BigEndian.PutUint16(etherType, 0x86dd)
		ip[0] = 0x60
		binary.BigEndian.PutUint16(ip[4:], uint16(segLen))
		ip[6], ip[7] = 6, 64
		s16, d16 := src.As16(), dst.As16()
		copy(ip[8:24], s16[:])
		copy(ip[24:40], d16[:])
	}
	tcp := buf[tcpOff:]
	binary.BigEndian.PutUint16(tcp[0:], sport)
	binary.BigEndian.PutUint16(tcp[2:], dport)
	tcp[12] = blastTCPLen / 4 << 4
	tcp[13] = flags
	binary.BigEndian.PutUint16(tcp[14:], 502) // window
	copy(tcp[20:24], []byte{1, 1, 8, 10})     // NOP, NOP, timestamps
	for j := range payload {
		tcp[blastTCPLen+j] = byte(j)
	}
	// Pseudo-header, then the segment with its rewritten fields zero.
	s := sum16(src.AsSlice()) + sum16(dst.AsSlice()) + 6 + uint32(segLen)
	s += sum16(tcp)
	return blastFrame{buf: buf, flow: i, ack: ack, tcp: tcpOff, sum: s}
}

// sum16 adds b as big-endian 16-bit words, padding an odd byte with zero.
func sum16(b []byte) uint32 {
	var s uint32
	for len(b) >= 2 {
		s += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	return s
}

// fold folds a 32-bit sum of 16-bit words to 16 bits, with end-around
// carry.
func fold(s uint32) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// rewrite sets the changing fields of f for the given round: the data
// segment of round r carries the r-th payload-sized block and TSval ts+r;
// its ACK acknowledges that block and echoes that TSval.
func (b *Blaster) rewrite(f *blastFrame, r uint32) {
	fl := &b.flows[f.flow]
	l := uint32(b.cfg.Payload)
	var seq, ack, tsval, tsecr uint32
	if f.ack {
		seq, ack, tsval, tsecr = fl.risn, fl.isn+(r+1)*l, fl.rts+r, fl.ts+r
	} else {
		seq, ack, tsval, tsecr = fl.isn+r*l, fl.risn, fl.ts+r, fl.rts+r
	}
	tcp := f.buf[f.tcp:]
	binary.BigEndian.PutUint32(tcp[4:], seq)
	binary.BigEndian.PutUint32(tcp[8:], ack)
	binary.BigEndian.PutUint32(tcp[24:], tsval)
	binary.BigEndian.PutUint32(tcp[28:], tsecr)
	s := f.sum
	for _, v := range [4]uint32{seq, ack, tsval, tsecr} {
		s += v>>16 + v&0xffff
	}
	binary.BigEndian.PutUint16(tcp[16:], ^fold(s))
}

// BlastResult is what a call of [Blaster.Blast] sent.
type BlastResult struct {
	Frames  uint64        // frames the kernel accepted
	Elapsed time.Duration // from the first send to the last one's return
}

// Rate returns the frames sent per second.
func (r BlastResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Frames) / r.Elapsed.Seconds()
}

// Sent returns the number of frames sent since the Blaster opened.
func (b *Blaster) Sent() uint64 { return b.sent }

// Blast sends frames for d, or until ctx is done, at rate frames per
// second, or as fast as one thread can when rate is 0, and returns what it
// sent. It sends batches of 64 frames with sendmmsg, on a locked OS thread
// that sleeps with clock_nanosleep until each batch is due when paced; a
// sender that falls behind catches up at full speed, so that the mean rate
// holds. Each call continues the traffic where the previous one stopped.
func (b *Blaster) Blast(ctx context.Context, rate float64, d time.Duration) (BlastResult, error) {
	if b.fd < 0 {
		return BlastResult{}, errors.New("blast: blaster is closed")
	}
	if rate < 0 {
		return BlastResult{}, fmt.Errorf("blast: invalid rate %v: must be 0 (flat out) or positive", rate)
	}
	type result struct {
		res BlastResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread gets a 1 ns timer slack and the affinity, and is
		// never unlocked: the runtime discards it when this goroutine
		// exits.
		runtime.LockOSThread()
		setPreciseTimers()
		if len(b.cfg.Affinity) > 0 {
			var set unix.CPUSet
			for _, cpu := range b.cfg.Affinity {
				set.Set(cpu)
			}
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				done <- result{err: fmt.Errorf("blast: pin to CPUs %v: %w", b.cfg.Affinity, err)}
				return
			}
		}
		res, err := b.blast(ctx, rate, d)
		done <- result{res, err}
	}()
	r := <-done
	return r.res, r.err
}

func (b *Blaster) blast(ctx context.Context, rate float64, d time.Duration) (BlastResult, error) {
	// A batch must not hold a frame twice: the second rewrite would
	// overwrite the first before it is sent. On the heap, the headers
	// cannot move while the kernel reads them.
	batch := min(blastBatch, len(b.frames))
	msgs := make([]unix.Mmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	var sent uint64
	for i := range msgs {
		msgs[i].Hdr.Iov = &iovs[i]
		msgs[i].Hdr.SetIovlen(1)
	}
	start := monoNow()
	end := start + monoTime(d)
	var err error
	for n := 0; ; n++ {
		now := monoNow()
		if now >= end || (n%64 == 0 && ctx.Err() != nil) {
			break
		}
		if rate > 0 {
			// When this batch is due: the time of its first frame.
			due := start + monoTime(float64(sent)/rate*1e9)
			if due > now {
				sleepUntil(min(due, end))
				continue
			}
		}
		for i := range batch {
			f := &b.frames[b.next]
			b.rewrite(f, b.round)
			iovs[i].Base = &f.buf[0]
			iovs[i].SetLen(len(f.buf))
			b.next++
			if b.next == len(b.frames) {
				b.next = 0
				b.round++
			}
		}
		var k int
		k, err = sendmmsg(b.fd, msgs)
		sent += uint64(k)
		if err != nil {
			break
		}
	}
	res := BlastResult{Frames: sent, Elapsed: time.Duration(monoNow() - start)}
	b.sent += sent
	if err != nil {
		return res, fmt.Errorf("blast: send: %w", err)
	}
	return res, nil
}

// sendmmsg sends msgs on fd, retrying partial sends and EINTR, and returns
// how many were sent. ENOBUFS, a full device queue, waits briefly and
// retries.
func sendmmsg(fd int, msgs []unix.Mmsghdr) (int, error) {
	sent := 0
	for sent < len(msgs) {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&msgs[sent])), uintptr(len(msgs)-sent), 0, 0, 0)
		switch errno {
		case 0:
			sent += int(r)
		case unix.EINTR:
		case unix.ENOBUFS, unix.EAGAIN:
			sleepUntil(monoNow() + monoTime(10*time.Microsecond))
		default:
			return sent, errno
		}
	}
	runtime.KeepAlive(msgs)
	return sent, nil
}
