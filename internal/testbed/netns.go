package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// namePrefix starts the name of every namespace this package creates. The
// full name is namePrefix, the creating process ID, a dash and random hex, so
// that a later process can tell which namespaces are stale.
const namePrefix = "gm-"

// NetNS is a named network namespace, as created by `ip netns add`. Its
// methods are safe for concurrent use.
type NetNS struct {
	name      string
	closeOnce sync.Once
	closeErr  error
}

// CreateNetNS creates a new network namespace with a unique name and its
// loopback interface up. The caller must call Close to delete it; tests use
// [NewNetNS] instead.
func CreateNetNS() (*NetNS, error) {
	name := fmt.Sprintf("%s%d-%s", namePrefix, os.Getpid(), randomHex(3))
	live.add(name)
	if err := runIP("netns", "add", name); err != nil {
		live.remove(name)
		return nil, fmt.Errorf("create netns %q: %w", name, err)
	}
	ns := &NetNS{name: name}
	if err := ns.IP("link", "set", "lo", "up"); err != nil {
		return nil, errors.Join(err, ns.Close())
	}
	return ns, nil
}

// NewNetNS creates a network namespace for the test, as [CreateNetNS] does,
// and deletes it when the test ends. It skips the test without privileges
// (see [RequireRoot]).
func NewNetNS(tb testing.TB) *NetNS {
	tb.Helper()
	RequireRoot(tb)
	ns, err := CreateNetNS()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := ns.Close(); err != nil {
			tb.Error(err)
		}
	})
	return ns
}

// Name returns the name of the namespace, as `ip netns list` shows it.
func (n *NetNS) Name() string { return n.name }

// Path returns the file that holds the namespace, for setns(2).
func (n *NetNS) Path() string { return "/run/netns/" + n.name }

// String returns the name of the namespace, or "<nil>".
func (n *NetNS) String() string {
	if n == nil {
		return "<nil>"
	}
	return n.name
}

// Close deletes the namespace. Sockets opened inside it keep it alive, without
// a name, until they are closed. Close is idempotent.
func (n *NetNS) Close() error {
	n.closeOnce.Do(func() {
		if !live.has(n.name) {
			return // deleted on an interrupt
		}
		if err := runIP("netns", "delete", n.name); err != nil {
			n.closeErr = fmt.Errorf("delete netns %q: %w", n.name, err)
			return
		}
		live.remove(n.name)
	})
	return n.closeErr
}

// IP runs `ip -n NAME args...`, for example ns.IP("link", "set", "tap0", "up").
func (n *NetNS) IP(args ...string) error {
	return runIP(append([]string{"-n", n.name}, args...)...)
}

// Command returns a command that runs name with args inside the namespace,
// through `ip netns exec`. The context kills the command itself, since ip
// execs it rather than forking.
func (n *NetNS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// SetSysctl writes value to a sysctl of the namespace, for example
// SetSysctl("net.ipv4.tcp_timestamps", "0"). A key that contains a slash is
// taken as a path below /proc/sys, for interface names that contain dots.
func (n *NetNS) SetSysctl(key, value string) error {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	path = "/proc/sys/" + path
	err := n.Do(func() error {
		return os.WriteFile(path, []byte(value), 0)
	})
	if err != nil {
		return fmt.Errorf("set sysctl %s=%s in netns %q: %w", key, value, n.name, err)
	}
	return nil
}

// Sysctl reads a sysctl of the namespace; key is as for SetSysctl. The value
// has its trailing newline removed.
func (n *NetNS) Sysctl(key string) (string, error) {
	path := key
	if !strings.Contains(key, "/") {
		path = strings.ReplaceAll(key, ".", "/")
	}
	var b []byte
	err := n.Do(func() error {
		var err error
		b, err = os.ReadFile("/proc/sys/" + path)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("read sysctl %s in netns %q: %w", key, n.name, err)
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

// Listen is [net.ListenConfig.Listen] inside the namespace. The listener
// stays in the namespace after Listen returns.
func (n *NetNS) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = new(net.ListenConfig).Listen(ctx, network, address)
		return err
	})
	return ln, err
}

// ListenPacket is [net.ListenConfig.ListenPacket] inside the namespace.
func (n *NetNS) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.Do(func() error {
		var err error
		c, err = new(net.ListenConfig).ListenPacket(ctx, network, address)
		return err
	})
	return c, err
}

// Dial is [net.Dialer.DialContext] inside the namespace. address must be a
// literal IP address and port, because a host name would be resolved on other
// threads, outside the namespace.
func (n *NetNS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return n.dial(ctx, new(net.Dialer), network, address)
}

// dial is Dial with the dialer d.
func (n *NetNS) dial(ctx context.Context, d *net.Dialer, network, address string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// runIP runs the ip command of iproute2 and returns its output in the error.
func runIP(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("run ip: %w: install iproute2", err)
		}
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux
	return hex.EncodeToString(b)
}

// live tracks the namespaces this process created and has not deleted, so
// that an interrupt can delete them. It is process-wide on purpose, as
// signals are.
var live = &registry{names: map[string]struct{}{}}

type registry struct {
	mu       sync.Mutex
	names    map[string]struct{}
	watching bool
}

// add records a namespace, and on the first call starts watching for
// interrupts and deletes namespaces left behind by dead processes.
func (r *registry) add(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names[name] = struct{}{}
	if r.watching {
		return
	}
	r.watching = true
	sweepStale()
	// A signal that the process ignores, as a background job of a shell
	// ignores SIGINT, stays ignored.
	var sigs []os.Signal
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGTERM} {
		if !signal.Ignored(sig) {
			sigs = append(sigs, sig)
		}
	}
	if len(sigs) == 0 {
		return
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go r.cleanupOn(ch)
}

func (r *registry) has(name string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.names[name]
	return ok
}

func (r *registry) remove(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.names, name)
}

// cleanupOn deletes all live namespaces when a signal arrives, then raises
// the signal again with its previous handling, which by default ends the
// process.
func (r *registry) cleanupOn(ch chan os.Signal) {
	sig := <-ch
	r.mu.Lock()
	for name := range r.names {
		_ = runIP("netns", "delete", name)
		delete(r.names, name)
	}
	signal.Stop(ch)
	r.watching = false
	r.mu.Unlock()
	if p, err := os.FindProcess(os.Getpid()); err == nil {
		_ = p.Signal(sig)
	}
}
