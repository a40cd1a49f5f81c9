//go:build !linux

package ring

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/net/bpf"
)

// Ring is an AF_PACKET socket with a TPACKET_V3 ring; it exists on Linux
// only. Elsewhere Open returns an error and the methods do nothing.
type Ring struct{}

// Open returns an error wrapping ErrNotSupported: packet rings need Linux.
func Open(cfg Config) (*Ring, error) {
	return nil, fmt.Errorf("open packet ring on %q: %w on %s", cfg.Interface, ErrNotSupported, runtime.GOOS)
}

// NextBlock returns ErrClosed.
func (r *Ring) NextBlock(timeout time.Duration) (*Block, error) { return nil, ErrClosed }

// ReadBlock returns ErrClosed.
func (r *Ring) ReadBlock(timeout time.Duration, fn func(f *Frame)) (int, error) {
	return 0, ErrClosed
}

// ReadStats returns ErrClosed.
func (r *Ring) ReadStats(c *Counters) error { return ErrClosed }

// SetFilter returns ErrClosed.
func (r *Ring) SetFilter(prog []bpf.RawInstruction) error { return ErrClosed }

// Ifindex returns 0.
func (r *Ring) Ifindex() int { return 0 }

// FanoutGroup returns 0.
func (r *Ring) FanoutGroup() uint16 { return 0 }

// Shutdown does nothing.
func (r *Ring) Shutdown() {}

// Close does nothing.
func (r *Ring) Close() error { return nil }

func (r *Ring) release() {}
