package testbed

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Do runs f on a locked OS thread that has entered the namespace, then
// returns the thread to its original namespace and unlocks it. If the thread
// cannot be returned, it stays locked, so that the Go runtime discards it when
// the calling goroutine exits, and Do reports the error.
//
// Sockets and TAP devices that f opens belong to the namespace for their whole
// life. Goroutines that f starts do not run in the namespace.
func (n *NetNS) Do(f func() error) (err error) {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open current netns: %w", err)
	}
	defer unix.Close(orig)
	target, err := unix.Open(n.Path(), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %q: %w", n.name, err)
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %q: %w", n.name, err)
	}
	defer func() {
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			err = errors.Join(err, fmt.Errorf("leave netns %q: %w", n.name, rerr))
			return // stay locked: the thread is in the wrong namespace
		}
		runtime.UnlockOSThread()
	}()
	return f()
}

// sweepStale deletes the namespaces of this package whose creating process
// no longer exists, such as those of a test binary killed by -timeout.
func sweepStale() {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), namePrefix)
		if !ok {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if unix.Kill(pid, 0) == unix.ESRCH {
			_ = runIP("netns", "delete", e.Name())
		}
	}
}
