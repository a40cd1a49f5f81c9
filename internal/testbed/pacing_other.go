//go:build !linux

package testbed

import (
	"fmt"
	"net"
	"runtime"
)

func setMaxPacingRate(*net.TCPConn, uint64) error {
	return fmt.Errorf("set SO_MAX_PACING_RATE: %w on %s", ErrNotSupported, runtime.GOOS)
}
