//go:build !linux

package main

import (
	"fmt"
	"runtime"

	"github.com/go-metro/go-metro/capture"
)

// defaultRouteInterface returns an error wrapping capture.ErrNotSupported:
// it reads Linux's /proc/net/route.
func defaultRouteInterface() (string, error) {
	return "", fmt.Errorf("find the default-route interface: %w on %s; pass --interface", capture.ErrNotSupported, runtime.GOOS)
}
