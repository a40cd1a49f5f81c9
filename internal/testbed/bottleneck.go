package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Defaults of the zero fields of a [Bottleneck]: tc's "burst 32kbit limit
// 600000".
const (
	DefaultBottleneckBurst = 32 << 10 / 8
	DefaultBottleneckLimit = 600_000
)

// minBottleneckBurst is the smallest Burst a Bottleneck accepts: a
// full-size Ethernet frame with two VLAN tags must fit in the bucket, or tbf
// would drop every such frame.
const minBottleneckBurst = 1522

// Bottleneck is a token-bucket queue (tc's tbf) that the frames arriving on
// an interface wait in before the stack receives them. It holds frames that
// come faster than Rate, up to Limit bytes, and drops the frames that find it
// full. Placed in the receiver's namespace, it delays a sender's segments
// after every capture point on the sender's side, so that a capture there
// sees the round-trip time grow as the queue fills.
//
// The zero Rate means no bottleneck.
type Bottleneck struct {
	// Rate is the rate at which the queue drains, in bits per second.
	Rate uint64
	// Burst is the size of the token bucket in bytes: how much may pass at
	// once after a pause. Zero means DefaultBottleneckBurst.
	Burst int
	// Limit is the capacity of the queue in bytes. Zero means
	// DefaultBottleneckLimit.
	Limit int
}

// IsValid reports whether b has a rate, that is, whether it is a bottleneck.
func (b Bottleneck) IsValid() bool { return b.Rate > 0 }

func (b Bottleneck) withDefaults() Bottleneck {
	if b.Burst == 0 {
		b.Burst = DefaultBottleneckBurst
	}
	if b.Limit == 0 {
		b.Limit = DefaultBottleneckLimit
	}
	return b
}

func (b Bottleneck) validate(name string) error {
	switch {
	case b.Rate == 0:
		return fmt.Errorf("invalid `%s.Rate` 0: must be a rate in bits per second", name)
	case b.Burst != 0 && b.Burst < minBottleneckBurst:
		return fmt.Errorf("invalid `%s.Burst` %d: must be at least %d bytes, a full-size frame", name, b.Burst, minBottleneckBurst)
	case b.Limit < 0:
		return fmt.Errorf("invalid `%s.Limit` %d: must not be negative", name, b.Limit)
	}
	return nil
}

// String describes b as tc's options.
func (b Bottleneck) String() string {
	b = b.withDefaults()
	return fmt.Sprintf("tbf rate %dbit burst %db limit %d", b.Rate, b.Burst, b.Limit)
}

// ingressIFB names the ifb device that AddIngressBottleneck creates for
// ifname.
func ingressIFB(ifname string) string {
	name := "ifb-" + ifname
	return name[:min(len(name), 15)] // IFNAMSIZ - 1
}

// AddIngressBottleneck makes the frames that arrive on ifname in the
// namespace wait in the queue b before the stack receives them. The kernel
// has neither netem nor the matchall classifier here, so it is built from
// what it has: an ingress qdisc on ifname, whose u32 filter "match u32 0 0"
// redirects every frame ("mirred egress redirect") to a new ifb device named
// ifb-IFNAME, whose root qdisc is tbf. Packet sockets on ifname see each
// frame before the queue; packet sockets on the ifb device, after it.
//
// Deleting the namespace deletes all of it; [NetNS.RemoveIngressBottleneck]
// does so before. It needs the tc command of iproute2.
func (n *NetNS) AddIngressBottleneck(ifname string, b Bottleneck) (err error) {
	if err := b.validate("Bottleneck"); err != nil {
		return err
	}
	b = b.withDefaults()
	ifb := ingressIFB(ifname)
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("add bottleneck on %s in netns %q: %w", ifname, n.name, err),
				n.RemoveIngressBottleneck(ifname))
		}
	}()
	if err := n.IP("link", "add", ifb, "type", "ifb"); err != nil {
		return err
	}
	if err := n.IP("link", "set", ifb, "up"); err != nil {
		return err
	}
	if err := n.tc("qdisc", "add", "dev", ifb, "root", "tbf",
		"rate", strconv.FormatUint(b.Rate, 10)+"bit",
		"burst", strconv.Itoa(b.Burst)+"b",
		"limit", strconv.Itoa(b.Limit)); err != nil {
		return err
	}
	if err := n.tc("qdisc", "add", "dev", ifname, "handle", "ffff:", "ingress"); err != nil {
		return err
	}
	return n.tc("filter", "add", "dev", ifname, "parent", "ffff:", "protocol", "all",
		"u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb)
}

// RemoveIngressBottleneck removes what AddIngressBottleneck made on ifname:
// the ingress qdisc, with its filter, and the ifb device. What is already
// gone is no error.
func (n *NetNS) RemoveIngressBottleneck(ifname string) error {
	var errs []error
	if err := n.tc("qdisc", "del", "dev", ifname, "ingress"); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if err := n.IP("link", "del", ingressIFB(ifname)); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove bottleneck on %s in netns %q: %w", ifname, n.name, err)
	}
	return nil
}

// isNotFound reports whether an error of ip or tc says that the object to
// delete does not exist.
func isNotFound(err error) bool {
	s := err.Error()
	return strings.Contains(s, "Cannot find device") ||
		strings.Contains(s, "Cannot delete qdisc with handle of zero") ||
		strings.Contains(s, "Invalid handle") ||
		strings.Contains(s, "No such file or directory")
}

// BottleneckStats are the counters of the tbf qdisc of a bottleneck, as
// `tc -s qdisc show` prints them.
type BottleneckStats struct {
	// Packets and Bytes count what left the queue.
	Packets, Bytes uint64
	// Dropped counts the frames that found the queue full.
	Dropped uint64
	// Overlimits counts the times a frame had to wait for tokens.
	Overlimits uint64
	// Backlog is how many bytes wait in the queue now.
	Backlog uint64
}

// IngressBottleneckStats returns the counters of the queue that
// AddIngressBottleneck put on ifname.
func (n *NetNS) IngressBottleneckStats(ifname string) (BottleneckStats, error) {
	out, err := n.tcOutput("-s", "-j", "qdisc", "show", "dev", ingressIFB(ifname), "root")
	if err != nil {
		return BottleneckStats{}, err
	}
	var qdiscs []struct {
		Kind       string `json:"kind"`
		Bytes      uint64 `json:"bytes"`
		Packets    uint64 `json:"packets"`
		Drops      uint64 `json:"drops"`
		Overlimits uint64 `json:"overlimits"`
		Backlog    uint64 `json:"backlog"`
	}
	if err := json.Unmarshal(out, &qdiscs); err != nil {
		return BottleneckStats{}, fmt.Errorf("parse tc statistics %q: %w", out, err)
	}
	for _, q := range qdiscs {
		if q.Kind == "tbf" {
			return BottleneckStats{Packets: q.Packets, Bytes: q.Bytes, Dropped: q.Drops,
				Overlimits: q.Overlimits, Backlog: q.Backlog}, nil
		}
	}
	return BottleneckStats{}, fmt.Errorf("no bottleneck on %s in netns %q: no tbf qdisc in %q", ifname, n.name, out)
}

// tc runs `tc -n NAME args...`.
func (n *NetNS) tc(args ...string) error {
	_, err := n.tcOutput(args...)
	return err
}

// tcOutput runs `tc -n NAME args...` and returns its standard output, or
// an error with its standard error.
func (n *NetNS) tcOutput(args ...string) ([]byte, error) {
	args = append([]string{"-n", n.name}, args...)
	var stderr bytes.Buffer
	cmd := exec.Command("tc", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return nil, fmt.Errorf("run tc: %w: install iproute2", err)
		}
		return nil, fmt.Errorf("tc %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}
