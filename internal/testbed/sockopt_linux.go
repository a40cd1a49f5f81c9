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
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		})
		if err == nil {
			err = serr
		}
		if err != nil {
			return fmt.Errorf("set SO_RCVBUF %d: %w", n, err)
		}
		return nil
	}
}
