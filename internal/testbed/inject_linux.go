package testbed

import (
	"encoding/binary"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// Htons converts v to network byte order, as packet sockets take their
// protocol numbers.
func Htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// NewInjector returns a function that sends raw Ethernet frames out of
// ifname in ns through a packet socket, which is closed when the test
// ends. The function fails the test when a frame cannot be sent.
func NewInjector(tb testing.TB, ns *NetNS, ifname string) func(frame []byte) {
	tb.Helper()
	fd, ifindex := -1, 0
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		ifindex = ifi.Index
		// Protocol 0: the socket only sends.
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if fd >= 0 {
		tb.Cleanup(func() { unix.Close(fd) })
	}
	if err != nil {
		tb.Fatalf("open a packet socket to inject frames on %s in %s: %v", ifname, ns, err)
	}
	return func(frame []byte) {
		tb.Helper()
		if len(frame) < 14 {
			tb.Fatalf("inject a frame of %d bytes: shorter than an Ethernet header", len(frame))
		}
		sa := &unix.SockaddrLinklayer{Protocol: Htons(binary.BigEndian.Uint16(frame[12:14])), Ifindex: ifindex, Halen: 6}
		copy(sa.Addr[:], frame[:6])
		if err := unix.Sendto(fd, frame, 0, sa); err != nil {
			tb.Fatalf("inject a frame of %d bytes: %v", len(frame), err)
		}
	}
}
