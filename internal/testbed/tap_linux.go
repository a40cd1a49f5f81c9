package testbed

import (
	"errors"
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// tapPair holds the two TAP devices of a delay line and what wakes its
// goroutines for closing.
type tapPair struct {
	client, server *tapDev
	wakeFd         int // eventfd, readable once closing
	stopped        chan struct{}
	wakeOnce       sync.Once
}

// tapDev is a TAP device opened without packet information, in non-blocking
// mode: one read or write is one Ethernet frame.
type tapDev struct {
	fd     int
	wakeFd int
}

// openTAPPair creates a TAP device in each namespace. A TAP device belongs to
// the network namespace of the thread that sets it up (TUNSETIFF), so each is
// opened from inside its namespace; it then stays there, whichever thread
// reads or writes it.
func openTAPPair(clientNS *NetNS, clientIf string, serverNS *NetNS, serverIf string) (*tapPair, error) {
	wakeFd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("create eventfd: %w", err)
	}
	tp := &tapPair{wakeFd: wakeFd, stopped: make(chan struct{})}
	cfd, err := openTAP(clientNS, clientIf)
	if err != nil {
		unix.Close(wakeFd)
		return nil, err
	}
	sfd, err := openTAP(serverNS, serverIf)
	if err != nil {
		unix.Close(cfd)
		unix.Close(wakeFd)
		return nil, err
	}
	tp.client = &tapDev{fd: cfd, wakeFd: wakeFd}
	tp.server = &tapDev{fd: sfd, wakeFd: wakeFd}
	return tp, nil
}

func openTAP(ns *NetNS, name string) (int, error) {
	fd := -1
	err := ns.Do(func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("set up TAP device: %w", err)
		}
		return nil
	})
	if err != nil {
		return -1, fmt.Errorf("create TAP %q in netns %q: %w", name, ns.Name(), err)
	}
	return fd, nil
}

// wake makes every blocked read return and closes stopped. It is idempotent.
func (tp *tapPair) wake() {
	tp.wakeOnce.Do(func() {
		close(tp.stopped)
		var one = [8]byte{1}
		_, _ = unix.Write(tp.wakeFd, one[:])
	})
}

// close closes both devices, which deletes them, once the goroutines that
// use them have exited.
func (tp *tapPair) close() error {
	return errors.Join(unix.Close(tp.client.fd), unix.Close(tp.server.fd), unix.Close(tp.wakeFd))
}

// errWoken is returned by read after wake.
var errWoken = errors.New("woken for closing")

// read reads one frame into buf, waiting in poll(2) for one to arrive. It
// returns errWoken once the pair is closing.
func (t *tapDev) read(buf []byte) (int, error) {
	fds := []unix.PollFd{
		{Fd: int32(t.fd), Events: unix.POLLIN},
		{Fd: int32(t.wakeFd), Events: unix.POLLIN},
	}
	for {
		n, err := unix.Read(t.fd, buf)
		switch {
		case err == nil:
			return n, nil
		case err == unix.EINTR:
			continue
		case err != unix.EAGAIN:
			return 0, err
		}
		if _, err := unix.Poll(fds, -1); err != nil && err != unix.EINTR {
			return 0, err
		}
		if fds[1].Revents != 0 {
			return 0, errWoken
		}
	}
}

// write writes one frame.
func (t *tapDev) write(b []byte) error {
	for {
		_, err := unix.Write(t.fd, b)
		if err != unix.EINTR {
			return err
		}
	}
}

// monoNow reads CLOCK_MONOTONIC.
func monoNow() monoTime {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return monoTime(ts.Nano())
}

// sleepUntil sleeps until CLOCK_MONOTONIC reaches t.
func sleepUntil(t monoTime) {
	ts := unix.NsecToTimespec(int64(t))
	for unix.ClockNanosleep(unix.CLOCK_MONOTONIC, unix.TIMER_ABSTIME, &ts, nil) == unix.EINTR {
	}
}

// setPreciseTimers sets the timer slack of the calling thread to 1 ns, from
// the default 50 µs. The caller must have locked its OS thread.
func setPreciseTimers() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}
