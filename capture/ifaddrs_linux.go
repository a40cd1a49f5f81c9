package capture

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// watchDebounce is how long WatchAddrs gathers a burst of changes before it
// calls notify once for all of them.
const watchDebounce = 100 * time.Millisecond

// WatchAddrs calls notify when an address is added to or removed from an
// interface, or when a link appears, disappears or changes state, until ctx
// is done; then it closes its socket and returns nil within a few
// milliseconds. It watches the network namespace of the calling thread
// when it starts.
//
// notify is called on the goroutine that runs WatchAddrs, at most once per
// 100 ms burst of changes and about 100 ms after its first change; it
// should refresh the addresses with [InterfaceAddrs] and return. Changes
// that occur while it runs are kept by the kernel and reported after it
// returns; if they overflow the socket buffer, notify is still called.
// Callers should also refresh on a timer, since nothing guarantees that
// every change is seen.
//
// WatchAddrs returns an error if it cannot open or read its rtnetlink
// socket. It starts no goroutine that outlives it.
func WatchAddrs(ctx context.Context, notify func()) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open rtnetlink socket to watch addresses: %w", err)
	}
	defer unix.Close(fd)
	sa := &unix.SockaddrNetlink{
		Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR,
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("subscribe to rtnetlink address and link changes: %w", err)
	}

	// The eventfd wakes up poll when ctx is done. The function that writes
	// it must have finished before the eventfd is closed, or it could write
	// to a reused descriptor.
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("create eventfd to watch addresses: %w", err)
	}
	defer unix.Close(wake)
	woken := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(woken)
		var one [8]byte
		binary.NativeEndian.PutUint64(one[:], 1)
		_, _ = unix.Write(wake, one[:])
	})
	defer func() {
		if !stop() {
			<-woken
		}
	}()

	buf := make([]byte, 32<<10)
	fds := []unix.PollFd{
		{Fd: int32(fd), Events: unix.POLLIN},
		{Fd: int32(wake), Events: unix.POLLIN},
	}
	var due time.Time // when to call notify; zero if no change is pending
	for ctx.Err() == nil {
		timeout := -1
		if !due.IsZero() {
			left := time.Until(due)
			if left <= 0 {
				due = time.Time{}
				notify()
				continue
			}
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if _, err := unix.Poll(fds, timeout); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("wait for rtnetlink messages: %w", err)
		}
		if fds[1].Revents != 0 {
			break
		}
		if fds[0].Revents == 0 {
			continue
		}
		changed, err := drainNetlink(fd, buf)
		if err != nil {
			return err
		}
		if changed && due.IsZero() {
			due = time.Now().Add(watchDebounce)
		}
	}
	return nil
}

// drainNetlink reads every message waiting on the rtnetlink socket fd and
// reports whether any came from the kernel. Since the socket only joined
// the address and link groups, any such message is a change. A socket
// buffer overrun (ENOBUFS) lost messages, so it counts as a change too.
func drainNetlink(fd int, buf []byte) (changed bool, err error) {
	for {
		_, from, err := unix.Recvfrom(fd, buf, unix.MSG_DONTWAIT)
		switch {
		case err == nil:
			if sa, ok := from.(*unix.SockaddrNetlink); ok && sa.Pid == 0 {
				changed = true
			}
		case errors.Is(err, unix.EAGAIN):
			return changed, nil
		case errors.Is(err, unix.ENOBUFS):
			changed = true
		case errors.Is(err, unix.EINTR):
		default:
			return changed, fmt.Errorf("read rtnetlink messages: %w", err)
		}
	}
}
