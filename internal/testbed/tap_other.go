//go:build !linux

package testbed

import (
	"errors"
	"fmt"
	"runtime"
	"time"
)

type tapPair struct {
	client, server *tapDev
	stopped        chan struct{}
}

type tapDev struct{}

func openTAPPair(*NetNS, string, *NetNS, string) (*tapPair, error) {
	return nil, fmt.Errorf("create TAP devices: %w on %s", ErrNotSupported, runtime.GOOS)
}

func (tp *tapPair) wake()        {}
func (tp *tapPair) close() error { return nil }

func (t *tapDev) read([]byte) (int, error) { return 0, errors.ErrUnsupported }
func (t *tapDev) write([]byte) error       { return errors.ErrUnsupported }

var start = time.Now()

func monoNow() monoTime     { return monoTime(time.Since(start)) }
func sleepUntil(t monoTime) { time.Sleep(time.Duration(t - monoNow())) }
func setPreciseTimers()     {}
