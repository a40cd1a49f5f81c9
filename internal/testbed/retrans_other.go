//go:build !linux

package testbed

import (
	"fmt"
	"runtime"
	"time"
)

type trackerSocket struct{}

func (s *trackerSocket) open(ns *NetNS, ifname string, _ func([]byte, time.Time, bool)) error {
	return fmt.Errorf("track retransmissions on %q: %w on %s", ifname, ErrNotSupported, runtime.GOOS)
}

func (s *trackerSocket) drops() uint64 { return 0 }
func (s *trackerSocket) close() error  { return nil }
