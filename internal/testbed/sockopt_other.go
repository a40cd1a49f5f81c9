//go:build !linux

package testbed

import (
	"fmt"
	"runtime"
	"syscall"
)

func receiveBufferControl(int) func(string, string, syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return fmt.Errorf("set SO_RCVBUF: %w on %s", ErrNotSupported, runtime.GOOS)
	}
}

func congestionControlControl(string) func(string, string, syscall.RawConn) error {
	return func(string, string, syscall.RawConn) error {
		return fmt.Errorf("set TCP_CONGESTION: %w on %s", ErrNotSupported, runtime.GOOS)
	}
}
