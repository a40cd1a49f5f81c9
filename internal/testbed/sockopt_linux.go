//go:build linux

package testbed

import (
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// receiveBufferControl returns a net.ListenConfig.Control function that sets
// SO_RCVBUF to n bytes (which the kernel doubles for its overhead) before
// the socket listens, so that the connections it accepts inherit it and
// their window scale is chosen for it.
func receiveBufferControl(n int) func(network, address string, c syscall.RawConn) error {
	return sockoptControl(fmt.Sprintf("SO_RCVBUF %d", n), func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
	})
}

// congestionControlControl returns a net.Dialer.Control function that sets
// the congestion control of the socket (TCP_CONGESTION) to name. Root may
// choose any algorithm the kernel has, even one that
// net.ipv4.tcp_allowed_congestion_control leaves out, while a namespace's
// default is limited to those.
func congestionControlControl(name string) func(network, address string, c syscall.RawConn) error {
	return sockoptControl(fmt.Sprintf("TCP_CONGESTION %q", name), func(fd int) error {
		return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
	})
}

// sockoptControl returns a Control function that calls set with the
// socket's descriptor; what names the option for errors.
func sockoptControl(what string, set func(fd int) error) func(network, address string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) { serr = set(int(fd)) })
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("set %s: %w", what, err)
		}
		return nil
	}
}
