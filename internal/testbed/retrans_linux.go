//go:build linux

package testbed

import (
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// trackerSnap is how much of each frame the tracker reads: Ethernet, IPv6
// and TCP with full options fit.
const trackerSnap = 14 + 40 + 60

// trackerRcvBuf is the receive buffer of the tracker's socket, large
// enough to ride out a stall of its goroutine during a fast transfer.
const trackerRcvBuf = 32 << 20

// trackerSocket is a packet socket bound to one interface, read by one
// goroutine with kernel timestamps.
type trackerSocket struct {
	fd       int
	ifindex  int
	wg       sync.WaitGroup
	stopping atomic.Bool
	dropped  atomic.Uint64
}

func (s *trackerSocket) open(ns *NetNS, ifname string, handle func(frame []byte, t time.Time, outgoing bool)) error {
	s.fd = -1
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		proto := int(htons(unix.ETH_P_ALL))
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return fmt.Errorf("open packet socket: %w", err)
		}
		setup := func() error {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, trackerRcvBuf); err != nil {
				return fmt.Errorf("set SO_RCVBUFFORCE: %w", err)
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
				return fmt.Errorf("set SO_TIMESTAMPNS: %w", err)
			}
			// A read timeout lets the goroutine notice Close.
			tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return fmt.Errorf("set SO_RCVTIMEO: %w", err)
			}
			return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
		}
		if err := setup(); err != nil {
			unix.Close(fd)
			return err
		}
		s.fd, s.ifindex = fd, ifi.Index
		return nil
	})
	if err != nil {
		return fmt.Errorf("track retransmissions on %q in netns %q: %w", ifname, ns.Name(), err)
	}
	s.wg.Go(func() { s.loop(handle) })
	return nil
}

func (s *trackerSocket) loop(handle func(frame []byte, t time.Time, outgoing bool)) {
	buf := make([]byte, trackerSnap)
	oob := make([]byte, unix.CmsgSpace(64))
	for !s.stopping.Load() {
		n, oobn, _, from, err := unix.Recvmsg(s.fd, buf, oob, 0)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			continue
		case err != nil:
			return
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Ifindex != s.ifindex || ll.Pkttype == unix.PACKET_OTHERHOST {
			continue
		}
		t, ok := cmsgTime(oob[:oobn])
		if !ok {
			continue
		}
		handle(buf[:n], t, ll.Pkttype == unix.PACKET_OUTGOING)
	}
}

// cmsgTime returns the SCM_TIMESTAMPNS of a control message.
func cmsgTime(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_TIMESTAMPNS {
			continue
		}
		// A struct timespec of two longs.
		switch d := m.Data; len(d) {
		case 16:
			return time.Unix(int64(binary.NativeEndian.Uint64(d)), int64(binary.NativeEndian.Uint64(d[8:]))), true
		case 8:
			return time.Unix(int64(int32(binary.NativeEndian.Uint32(d))), int64(int32(binary.NativeEndian.Uint32(d[4:])))), true
		}
	}
	return time.Time{}, false
}

func (s *trackerSocket) drops() uint64 {
	if s.fd >= 0 && !s.stopping.Load() {
		if st, err := unix.GetsockoptTpacketStats(s.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			s.dropped.Add(uint64(st.Drops))
		}
	}
	return s.dropped.Load()
}

func (s *trackerSocket) close() error {
	s.drops()
	s.stopping.Store(true)
	s.wg.Wait()
	if err := unix.Close(s.fd); err != nil {
		return fmt.Errorf("close retransmission tracker: %w", err)
	}
	return nil
}

// htons converts a short from host to network byte order.
func htons(v uint16) uint16 { return v<<8 | v>>8 }
