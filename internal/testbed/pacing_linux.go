//go:build linux

package testbed

import (
	"fmt"
	"math"
	"net"

	"golang.org/x/sys/unix"
)

// setMaxPacingRate caps the rate at which the kernel sends on c, in bytes per
// second, with SO_MAX_PACING_RATE. Since Linux 4.13 TCP paces the socket
// itself when the qdisc does not (no fq needed).
func setMaxPacingRate(c *net.TCPConn, rate uint64) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return fmt.Errorf("set SO_MAX_PACING_RATE: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MAX_PACING_RATE, int(min(rate, math.MaxUint32)))
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set SO_MAX_PACING_RATE %d: %w", rate, err)
	}
	return nil
}
