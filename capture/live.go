package capture

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Live capture defaults and bounds.
const (
	// MinSnaplen is the smallest snap length that holds the largest headers
	// the decoder reads: Linux cooked v2 (20 bytes) or Ethernet with two
	// VLAN tags (22), IPv6 (40) and TCP with full options (60), rounded up.
	MinSnaplen = 128
	// MaxSnaplen is the largest snap length accepted.
	MaxSnaplen = 65535
	// DefaultSnaplen leaves room for IPv6 extension headers.
	DefaultSnaplen = 256
	// DefaultRingSize is the default size of the kernel ring that buffers
	// packets between the kernel and the capture goroutine: about 40,000
	// packets at the default snap length.
	DefaultRingSize = 8 << 20
	// MinRingSize and MaxRingSize bound the ring_size setting.
	MinRingSize = 1 << 20
	MaxRingSize = 1 << 30
	// DefaultAddrRefresh is how often local addresses are re-read even
	// without a change notification.
	DefaultAddrRefresh = time.Minute
	// DefaultResolveEvery is how often host names are re-resolved.
	DefaultResolveEvery = 5 * time.Minute
	// DefaultHealthyAfter is how long a capture attempt that reads no
	// packet must run without error before it counts as healthy, which
	// resets the reopening backoff to 100 ms.
	DefaultHealthyAfter = 5 * time.Second
)

// MaxWorkers is the most sockets a Live capture shares in a fanout group.
const MaxWorkers = 64

// Live capture errors. Errors returned or reported by Live wrap them, so
// that errors.Is tells the cause.
var (
	// ErrPermission: the process may not open a packet socket.
	ErrPermission = errors.New("operation not permitted")
	// ErrCaptureStopped: the capture was stopped.
	ErrCaptureStopped = errors.New("capture stopped")
	// ErrNotNetns: the netns path is not a network namespace.
	ErrNotNetns = errors.New("not a network namespace")
)

// LiveConfig configures a Live capture.
type LiveConfig struct {
	// Interface is the interface name, or "any" for all interfaces.
	Interface string
	// Netns, if set, is the path of the network namespace to capture in
	// (for example /run/netns/NAME or /proc/PID/ns/net).
	Netns string
	// Snaplen is how many bytes of each packet are captured; 0 means
	// DefaultSnaplen.
	Snaplen int
	// RingSize is the kernel ring size in bytes; 0 means DefaultRingSize.
	RingSize int
	// Peers restricts capture to these addresses, prefixes and host names;
	// empty means all peers.
	Peers PeerSpec
	// Local lists extra local addresses or prefixes, added to the
	// interface's own.
	Local []string
	// Engine configures the flow table and the estimators. Its Local field
	// is ignored: Live manages the local set.
	Engine Config
	// Resolver resolves Peers.Hosts; nil means net.DefaultResolver.
	Resolver Resolver
	// AddrRefresh and ResolveEvery set how often local addresses are
	// re-read and host names re-resolved; 0 means the defaults.
	AddrRefresh, ResolveEvery time.Duration
	// MaxBackoff caps the delay between attempts to (re)open the capture;
	// 0 means 30 s.
	MaxBackoff time.Duration
	// Workers is how many sockets share the capture in one PACKET_FANOUT
	// group, each read by its own goroutine into its own Engine (the
	// workers setting); 0 means 1. The kernel's symmetric flow hash sends
	// both directions of a connection to one socket. Each worker has the
	// Engine's caps (MaxFlows, MaxPeers) and 1/Workers of RingSize.
	Workers int
	// HealthyAfter is how long an attempt must run without error, if it
	// reads no packet, to count as healthy and reset the backoff; 0 means
	// DefaultHealthyAfter.
	HealthyAfter time.Duration
}

func (c *LiveConfig) setDefaults() {
	if c.Snaplen == 0 {
		c.Snaplen = DefaultSnaplen
	}
	if c.RingSize == 0 {
		c.RingSize = DefaultRingSize
	}
	if c.AddrRefresh <= 0 {
		c.AddrRefresh = DefaultAddrRefresh
	}
	if c.ResolveEvery <= 0 {
		c.ResolveEvery = DefaultResolveEvery
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.HealthyAfter <= 0 {
		c.HealthyAfter = DefaultHealthyAfter
	}
}

// Validate checks the configuration and returns an error naming the bad
// setting, its value and what is allowed.
func (c *LiveConfig) Validate() error {
	if err := validInterfaceName(c.Interface); err != nil {
		return err
	}
	if c.Netns != "" {
		if err := validateNetns(c.Netns); err != nil {
			return err
		}
	}
	if c.Snaplen != 0 && (c.Snaplen < MinSnaplen || c.Snaplen > MaxSnaplen) {
		return fmt.Errorf("invalid `snaplen` %d: must be between %d and %d (the headers go-metro decodes need %d bytes)", c.Snaplen, MinSnaplen, MaxSnaplen, MinSnaplen)
	}
	if c.RingSize != 0 && (c.RingSize < MinRingSize || c.RingSize > MaxRingSize) {
		return fmt.Errorf("invalid `ring_size` %d: must be between %d (1 MiB) and %d (1 GiB) bytes", c.RingSize, MinRingSize, MaxRingSize)
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		return fmt.Errorf("invalid `workers` %d: must be between 1 and %d sockets", c.Workers, MaxWorkers)
	}
	for _, s := range c.Local {
		if _, _, err := ParseAddrOrPrefix(s); err != nil {
			return fmt.Errorf("invalid `local_ips` entry: %w", err)
		}
	}
	return nil
}

// validInterfaceName returns an error for a name that no Linux interface
// can have (the kernel's dev_valid_name): empty, longer than 15 bytes,
// "." or "..", or with '/', ':' or whitespace.
func validInterfaceName(name string) error {
	switch {
	case name == "":
		return errors.New("invalid `interface` \"\": name an interface such as eth0, or any for all interfaces")
	case len(name) > maxIfNameLen:
		return fmt.Errorf("invalid `interface` %q: %d bytes, and a Linux interface name has at most %d", name, len(name), maxIfNameLen)
	case name == "." || name == "..":
		return fmt.Errorf("invalid `interface` %q: not an interface name", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) }):
		return fmt.Errorf("invalid `interface` %q: a Linux interface name has no '/', ':' or whitespace", name)
	}
	return nil
}

// maxIfNameLen is the longest interface name, IFNAMSIZ less its NUL.
const maxIfNameLen = 15

// State is where a Live capture stands.
type State int

// The states of a Live capture.
const (
	StateStopped   State = iota // not started, or stopped
	StateStarting               // opening the socket for the first time
	StateCapturing              // reading packets
	StateRetrying               // failed; will try again after a backoff
)

var stateNames = [...]string{"stopped", "starting", "capturing", "retrying"}

// String returns the state's name.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Health is a snapshot of a Live capture's state and counters.
type Health struct {
	State State
	// Stats are the engine's counters.
	Stats Stats
	// KernelPackets and KernelDrops are the kernel's counters
	// (PACKET_STATISTICS) of packets that passed the filter, dropped ones
	// included, and of packets it dropped because the ring was full,
	// summed over every socket this capture opened.
	KernelPackets, KernelDrops uint64
	// LocalAddrs is the number of local addresses and prefixes in use.
	LocalAddrs int
	// Unresolved lists host names that have no address.
	Unresolved []string
	// LastError is the most recent failure, and LastErrorTime its time;
	// Failures counts failures since the capture was last healthy: it
	// read a packet, or ran without error for HealthyAfter.
	LastError     error
	LastErrorTime time.Time
	Failures      int
	// Panics counts panics recovered in the capture's goroutines.
	Panics uint64
	// Warnings are non-fatal problems, such as hosts that did not resolve.
	Warnings []string
}

// resetFlows forgets every flow; the capture goroutine calls it after a
// recovered panic, which may have left the table half-updated. Counters
// and per-peer stats are kept. Call it from the packet goroutine.
func (e *Engine) resetFlows() {
	t := e.flows
	clear(t.slots)
	t.n = 0
	t.open, t.closed = flowList{}, flowList{}
	t.free = nil
	t.pool = segPool{max: t.pool.max}
	t.changed = true
	e.publishFlows()
}
