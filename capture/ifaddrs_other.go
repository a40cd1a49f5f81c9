//go:build !linux

package capture

import (
	"context"
	"fmt"
	"runtime"
)

// WatchAddrs watches address and link changes; it needs Linux, and
// elsewhere returns an error that wraps [ErrNotSupported] at once. Callers
// then rely on their periodic refresh alone.
func WatchAddrs(ctx context.Context, notify func()) error {
	return fmt.Errorf("watch address changes: %w on %s", ErrNotSupported, runtime.GOOS)
}
