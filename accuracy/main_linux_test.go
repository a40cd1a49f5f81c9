//go:build linux

package accuracy_test

import (
	"os"
	"runtime"
	"testing"
)

// TestMain runs the tests with more Ps than CPUs, so that the delay line,
// which forwards the frames of the reference path from this process, keeps
// its configured delay while the process is busy. The delay line's writers
// sleep in clock_nanosleep and then need a P to write the frame; with
// GOMAXPROCS at the number of CPUs, a writer that wakes while the traffic
// generators, the capture and the race detector hold every P waits up to
// the scheduler's 10 ms time slice, and the path is longer than ping
// measured it. With spare Ps it runs at once, and the kernel shares the
// CPUs among the threads. (With the race detector at GOMAXPROCS=2, 26 of
// 250 samples of a slow sender on a 20 ms path were 1 to 8 ms long;
// tcpdump on both TAP devices showed the delay line releasing those frames
// late, and go-metro's samples matching the wire. At GOMAXPROCS=8, none
// of 250 were.) The capture under test timestamps packets in the kernel,
// so this does not change what it measures.
func TestMain(m *testing.M) {
	runtime.GOMAXPROCS(max(8, 2*runtime.NumCPU()))
	os.Exit(m.Run())
}
