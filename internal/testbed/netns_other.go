//go:build !linux

package testbed

import (
	"fmt"
	"runtime"
)

// Do runs f inside the namespace; it needs Linux.
func (n *NetNS) Do(f func() error) error {
	return fmt.Errorf("enter netns %q: %w on %s", n.name, ErrNotSupported, runtime.GOOS)
}

func sweepStale() {}
