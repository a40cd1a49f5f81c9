package capture

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
)

// Defaults of a PeerResolver.
const (
	// DefaultLookupTimeout bounds the lookup of one host name.
	DefaultLookupTimeout = 5 * time.Second
	// DefaultMaxLookups bounds how many host names are looked up at once.
	DefaultMaxLookups = 8
)

// Resolver looks up the addresses of a host name. *net.Resolver satisfies
// it; tests inject a fake.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// PeerSpec is the peer list of the configuration: the remote peers whose
// traffic is timed. When both lists are empty, every peer is.
type PeerSpec struct {
	// IPs are addresses ("192.0.2.7", "2001:db8::7") and CIDR prefixes
	// ("10.0.0.0/8"), the `ips` key of the configuration.
	IPs []string
	// Hosts are DNS names, the `hosts` key. An IP address given here is
	// taken as is, without a lookup.
	Hosts []string
}

// PeerResolver resolves the host names of a PeerSpec into [Peers]. It
// remembers the last addresses each host resolved to, and keeps them when
// a later lookup fails. It has no clock: the caller decides how often to
// call Resolve.
//
// The zero value has no peers. The exported fields may be set before the
// first call to Resolve and must not be changed afterwards. Its methods are
// safe for concurrent use.
type PeerResolver struct {
	// Resolver looks host names up; nil means net.DefaultResolver.
	Resolver Resolver
	// Timeout bounds the lookup of each host; 0 means DefaultLookupTimeout.
	Timeout time.Duration
	// MaxLookups bounds how many hosts are looked up at once; 0 means
	// DefaultMaxLookups.
	MaxLookups int

	restricts bool
	ips       []netip.Prefix // from `ips`, in configured order, without duplicates
	hosts     []peerHost     // from `hosts`, in configured order, without duplicates

	mu   sync.Mutex
	last [][]netip.Addr // the last good addresses of each host, by index in hosts
}

// peerHost is a configured host: a name to look up, or an IP literal.
type peerHost struct {
	name    string
	literal netip.Addr // valid if the entry is an IP address
}

// NewPeerResolver validates spec and returns a resolver for it that looks
// host names up with r (nil means net.DefaultResolver). The error names
// every invalid entry. No lookup happens before Resolve.
func NewPeerResolver(spec PeerSpec, r Resolver) (*PeerResolver, error) {
	pr := &PeerResolver{Resolver: r}
	var errs []error
	for _, s := range spec.IPs {
		a, p, err := ParseAddrOrPrefix(s)
		if err != nil {
			if looksLikeName(s) {
				err = fmt.Errorf("%w; host names belong in `hosts`", err)
			}
			errs = append(errs, fmt.Errorf("invalid `ips` entry: %w", err))
			continue
		}
		if !p.IsValid() {
			a = normAddr(a)
			p = netip.PrefixFrom(a, a.BitLen())
		}
		p = normPrefix(p)
		if !slices.Contains(pr.ips, p) {
			pr.ips = append(pr.ips, p)
		}
	}
	seen := make(map[string]bool, len(spec.Hosts))
	for _, s := range spec.Hosts {
		name := strings.TrimSpace(s)
		var h peerHost
		switch {
		case name == "":
			errs = append(errs, fmt.Errorf("invalid `hosts` entry %q: must be a host name such as db.example or an IP address", s))
			continue
		case strings.Contains(name, "/") && !strings.Contains(name, "://"):
			errs = append(errs, fmt.Errorf("invalid `hosts` entry %q: a CIDR prefix belongs in `ips`", s))
			continue
		}
		if a, err := netip.ParseAddr(name); err == nil {
			a = normAddr(a)
			h = peerHost{name: a.String(), literal: a}
		} else if err := CheckHostName(name); err != nil {
			errs = append(errs, fmt.Errorf("invalid `hosts` entry %q: %w", s, err))
			continue
		} else {
			h = peerHost{name: name}
		}
		if key := strings.ToLower(h.name); !seen[key] {
			seen[key] = true
			pr.hosts = append(pr.hosts, h)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	pr.restricts = len(pr.ips) > 0 || len(pr.hosts) > 0
	pr.last = make([][]netip.Addr, len(pr.hosts))
	for i, h := range pr.hosts {
		if h.literal.IsValid() {
			pr.last[i] = []netip.Addr{h.literal}
		}
	}
	return pr, nil
}

// CheckHostName returns an error, saying what is wrong, when name is not
// a DNS name: dot-separated labels of 1 to 63 letters, digits, '-' (not
// first or last) and '_', at most 253 bytes, with an optional final dot.
func CheckHostName(name string) error {
	switch {
	case strings.ContainsFunc(name, unicode.IsSpace):
		return errors.New("a host name has no spaces")
	case strings.Contains(name, ":"):
		return errors.New("a host name has no port or scheme: list the name alone, such as db.example")
	case strings.Contains(name, "*"):
		return errors.New("wildcards are not supported: list each host name")
	}
	const want = "must be a DNS name such as db.example: labels of 1 to 63 letters, digits, '-' and '_', separated by dots"
	n := strings.TrimSuffix(name, ".")
	if len(n) > 253 {
		return fmt.Errorf("%d bytes, longer than the 253 of a DNS name", len(n))
	}
	for label := range strings.SplitSeq(n, ".") {
		switch {
		case label == "":
			return errors.New("an empty label (two dots in a row, or a dot first): " + want)
		case len(label) > 63:
			return fmt.Errorf("label %q has %d bytes, more than 63: %s", label, len(label), want)
		case label[0] == '-' || label[len(label)-1] == '-':
			return fmt.Errorf("label %q starts or ends with '-': %s", label, want)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("character %q: %s", r, want)
			}
		}
	}
	return nil
}

// looksLikeName reports whether s, which is not an IP address or prefix,
// is probably a host name put in the wrong list.
func looksLikeName(s string) bool {
	return !strings.ContainsAny(s, ":/") && strings.ContainsFunc(s, func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
	})
}

// normAddr drops the zone and unmaps IPv4-mapped IPv6 addresses, as
// captured packets carry IPv4 addresses in 4 bytes and no zone.
func normAddr(a netip.Addr) netip.Addr { return a.WithZone("").Unmap() }

// normPrefix masks p and unmaps an IPv4-mapped IPv6 prefix.
func normPrefix(p netip.Prefix) netip.Prefix {
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked()
}

// HasHosts reports whether some host names need lookups, that is, whether
// Resolve can return anything that Static does not.
func (r *PeerResolver) HasHosts() bool {
	return slices.ContainsFunc(r.hosts, func(h peerHost) bool { return !h.literal.IsValid() })
}

// Static returns the peers as they stand without a new lookup: the `ips`
// entries, the IP addresses in `hosts`, and the last good addresses of the
// host names (none before the first Resolve).
func (r *PeerResolver) Static() *Peers {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.snapshot()
}

// Resolve looks up every host name, at most MaxLookups at once and each
// within Timeout, and returns the resulting peers. A host whose lookup
// fails or finds no address keeps its last good addresses; each such
// failure is returned as a warning, a *ResolveError, in the configured
// order of the hosts. The warnings are not fatal: the peers are usable.
// Resolve returns once every lookup has ended, within about Timeout.
func (r *PeerResolver) Resolve(ctx context.Context) (*Peers, []error) {
	var todo []int
	for i, h := range r.hosts {
		if !h.literal.IsValid() {
			todo = append(todo, i)
		}
	}
	type result struct {
		addrs []netip.Addr
		err   error
	}
	results := make([]result, len(todo))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(len(todo), positiveOr(r.MaxLookups, DefaultMaxLookups)) {
		wg.Go(func() {
			for {
				j := int(next.Add(1) - 1)
				if j >= len(todo) {
					return
				}
				addrs, err := r.lookup(ctx, r.hosts[todo[j]].name)
				results[j] = result{addrs, err}
			}
		})
	}
	wg.Wait()

	r.mu.Lock()
	defer r.mu.Unlock()
	var warnings []error
	for j, i := range todo {
		res := results[j]
		if res.err == nil {
			r.last[i] = res.addrs
			continue
		}
		warnings = append(warnings, &ResolveError{
			Host:  r.hosts[i].name,
			Kept:  slices.Clone(r.last[i]),
			Err:   res.err,
			cause: causeText(res.err),
		})
	}
	return r.snapshot(), warnings
}

// errNoAddress is the cause of a lookup that succeeded without an address.
var errNoAddress = errors.New("no address found")

// lookup resolves one host name into sorted, unique, unzoned addresses.
func (r *PeerResolver) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	timeout := positiveOr(r.Timeout, DefaultLookupTimeout)
	lctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var res Resolver = net.DefaultResolver
	if r.Resolver != nil {
		res = r.Resolver
	}
	addrs, err := res.LookupNetIP(lctx, "ip", host)
	if err != nil {
		if ctx.Err() == nil && lctx.Err() != nil {
			return nil, &timeoutError{timeout, err}
		}
		return nil, err
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() {
			out = append(out, normAddr(a))
		}
	}
	if len(out) == 0 {
		return nil, errNoAddress
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}

// timeoutError is a lookup that ran out of its own time.
type timeoutError struct {
	timeout time.Duration
	err     error
}

func (e *timeoutError) Error() string { return fmt.Sprintf("no answer within %v", e.timeout) }
func (e *timeoutError) Unwrap() error { return e.err }

// causeText describes a lookup failure without repeating the host name,
// which net.DNSError's message includes.
func causeText(err error) string {
	var te *timeoutError
	var de *net.DNSError
	switch {
	case errors.As(err, &te):
		return te.Error()
	case errors.As(err, &de) && de.Err != "":
		return de.Err
	}
	return err.Error()
}

func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// ResolveError is the warning of a host name that failed to resolve. It
// unwraps to the lookup's error.
type ResolveError struct {
	Host string       // the configured host name
	Kept []netip.Addr // its last good addresses, still in use; empty if none
	Err  error        // the cause

	cause string // Err described without the host name
}

// Error says what failed and what happens to the host's traffic, for
// example: resolve host "db.example": no such host: keeping its last
// addresses (192.0.2.7).
func (e *ResolveError) Error() string {
	cause := e.cause
	if cause == "" && e.Err != nil {
		cause = causeText(e.Err)
	}
	if len(e.Kept) == 0 {
		return fmt.Sprintf("resolve host %q: %s: it has no address yet, so its traffic is not captured", e.Host, cause)
	}
	return fmt.Sprintf("resolve host %q: %s: keeping its last addresses (%s)", e.Host, cause, joinAddrs(e.Kept))
}

// Unwrap returns the cause, so that errors.Is and errors.As see it.
func (e *ResolveError) Unwrap() error { return e.Err }

func joinAddrs(addrs []netip.Addr) string {
	s := make([]string, len(addrs))
	for i, a := range addrs {
		s[i] = a.String()
	}
	return strings.Join(s, ", ")
}

// snapshot builds the Peers of the current addresses. r.mu must be held.
func (r *PeerResolver) snapshot() *Peers {
	p := &Peers{
		restricts: r.restricts,
		ips:       r.ips,
		hosts:     make([]hostAddrs, len(r.hosts)),
		single:    make(map[netip.Addr]string),
	}
	// Hosts go first, in configured order, so that an address that several
	// hosts resolve to, or that `ips` lists too, is tagged with the first
	// host.
	for i, h := range r.hosts {
		addrs := r.last[i]
		p.hosts[i] = hostAddrs{h.name, addrs}
		if len(addrs) == 0 {
			p.unresolved = append(p.unresolved, h.name)
		}
		for _, a := range addrs {
			if _, ok := p.single[a]; !ok {
				p.single[a] = h.name
			}
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	for _, pfx := range r.ips {
		if pfx.IsSingleIP() {
			if _, ok := p.single[pfx.Addr()]; !ok {
				p.single[pfx.Addr()] = ""
			}
		} else {
			p.wide = append(p.wide, pfx)
		}
		p.prefixes = append(p.prefixes, pfx)
	}
	slices.SortFunc(p.prefixes, netip.Prefix.Compare)
	p.prefixes = slices.Compact(p.prefixes)
	return p
}

// Peers is a snapshot of the peer list: the prefixes of `ips` and the
// addresses that the names of `hosts` resolved to. It is immutable, and
// safe for concurrent use. A nil *Peers has no peers and does not restrict
// capture.
type Peers struct {
	restricts  bool
	ips        []netip.Prefix // shared with the PeerResolver: never modified
	hosts      []hostAddrs
	single     map[netip.Addr]string // single-address peers, to their host name or ""
	wide       []netip.Prefix        // the `ips` prefixes of more than one address
	prefixes   []netip.Prefix
	unresolved []string
}

type hostAddrs struct {
	name  string
	addrs []netip.Addr // shared with the PeerResolver: never modified
}

// Restricts reports whether a peer list is configured, so that only
// traffic to the peers is timed. It is true even when no host has resolved
// yet and Prefixes is empty: then no traffic is to be timed.
func (p *Peers) Restricts() bool { return p != nil && p.restricts }

// Prefixes returns every peer prefix, sorted and without duplicates: the
// `ips` entries (single addresses as /32 or /128) and the resolved
// addresses of the hosts. It returns a new slice. Empty means no peer
// filter only when Restricts is false.
func (p *Peers) Prefixes() []netip.Prefix {
	if p == nil {
		return nil
	}
	return slices.Clone(p.prefixes)
}

// Contains reports whether a is a peer: in an `ips` prefix or among the
// resolved addresses of a host. It is false for every address when no peer
// is configured. It does not allocate.
func (p *Peers) Contains(a netip.Addr) bool {
	if p == nil {
		return false
	}
	if _, ok := p.single[a]; ok {
		return true
	}
	for _, pfx := range p.wide {
		if pfx.Contains(a) {
			return true
		}
	}
	return false
}

// Tag returns the value of the dst: tag of the peer a: the configured host
// name whose addresses include a, else a as a string. When several hosts
// resolved to a, the first one in `hosts` wins. It allocates only for an
// address without a host name.
func (p *Peers) Tag(a netip.Addr) string {
	if p != nil {
		if name := p.single[a]; name != "" {
			return name
		}
	}
	return a.String()
}

// HostName returns the configured host name whose addresses include a, or
// "" when a is not the address of a host name. When several hosts resolved
// to a, the first one in `hosts` wins. It does not allocate.
func (p *Peers) HostName(a netip.Addr) string {
	if p == nil {
		return ""
	}
	return p.single[a]
}

// Unresolved returns the host names that have no address, neither from
// the last lookup nor from an earlier one, in configured order. It returns
// a new slice.
func (p *Peers) Unresolved() []string {
	if p == nil {
		return nil
	}
	return slices.Clone(p.unresolved)
}

// CheckNotAllLocal returns an error if the peer list is configured and
// every peer is a local address of this host, so that no traffic to a peer
// could ever be timed. An `ips` prefix counts as local only if it is a
// single address in local. While a host has no address yet, it may turn
// out remote, so CheckNotAllLocal returns nil.
func (p *Peers) CheckNotAllLocal(local *LocalSet) error {
	if !p.Restricts() || len(p.unresolved) > 0 {
		return nil
	}
	var items []string
	for _, pfx := range p.ips {
		if !pfx.IsSingleIP() || !local.Contains(pfx.Addr()) {
			return nil
		}
		items = append(items, pfx.Addr().String())
	}
	for _, h := range p.hosts {
		for _, a := range h.addrs {
			if !local.Contains(a) {
				return nil
			}
		}
		if len(h.addrs) == 1 && h.addrs[0].String() == h.name {
			items = append(items, h.name)
		} else {
			items = append(items, fmt.Sprintf("%s: %s", h.name, joinAddrs(h.addrs)))
		}
	}
	return fmt.Errorf("the peers in `ips` and `hosts` are all local addresses of this host (%s): go-metro times traffic to remote peers; list remote addresses or leave both empty", strings.Join(items, "; "))
}
