//go:build !linux

package capture

import (
	"fmt"
	"runtime"
)

// Live captures packets live; it is implemented on Linux only.
type Live struct{}

// NewLive returns an error wrapping ErrNotSupported: live capture needs
// Linux's AF_PACKET.
func NewLive(cfg LiveConfig) (*Live, error) {
	return nil, fmt.Errorf("live capture: %w on %s", ErrNotSupported, runtime.GOOS)
}

// Start returns an error wrapping ErrNotSupported.
func (l *Live) Start() error {
	return fmt.Errorf("live capture: %w on %s", ErrNotSupported, runtime.GOOS)
}

// Stop does nothing.
func (l *Live) Stop() {}

// Drain returns dst.
func (l *Live) Drain(dst []PeerStats) []PeerStats { return dst }

// Peers returns nil.
func (l *Live) Peers() *Peers { return nil }

// Health reports a stopped capture.
func (l *Live) Health() Health { return Health{} }

// validateNetns does nothing: live capture needs Linux.
func validateNetns(string) error { return nil }
