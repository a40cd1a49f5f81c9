package capture

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// LocalSet is the set of addresses and prefixes that belong to the host
// being monitored: segments sent from them are timed. The zero value (and a
// nil *LocalSet) contains nothing. A LocalSet is immutable once built, so it
// is safe for concurrent use; replace it with Engine.SetLocal.
type LocalSet struct {
	addrs    map[netip.Addr]struct{}
	few      []netip.Addr // addrs when they are at most fewAddrs, compared in turn
	prefixes []netip.Prefix
}

// fewAddrs is how many addresses a LocalSet compares one by one rather
// than hashing: a host usually has one or two per interface.
const fewAddrs = 4

// NewLocalSet returns the set of the given addresses and prefixes. Zones
// are dropped, because captured packets carry none.
func NewLocalSet(addrs []netip.Addr, prefixes []netip.Prefix) *LocalSet {
	s := &LocalSet{addrs: make(map[netip.Addr]struct{}, len(addrs))}
	for _, a := range addrs {
		if a.IsValid() {
			s.addrs[a.WithZone("").Unmap()] = struct{}{}
		}
	}
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		if p.IsSingleIP() {
			s.addrs[p.Addr().WithZone("").Unmap()] = struct{}{}
			continue
		}
		s.prefixes = append(s.prefixes, p)
	}
	if len(s.addrs) <= fewAddrs {
		for a := range s.addrs {
			s.few = append(s.few, a)
		}
	}
	return s
}

// ParseLocalSet parses addresses ("192.0.2.1", "2001:db8::1") and CIDR
// prefixes ("10.0.0.0/8") into a LocalSet.
func ParseLocalSet(specs ...string) (*LocalSet, error) {
	var addrs []netip.Addr
	var prefixes []netip.Prefix
	for _, spec := range specs {
		a, p, err := ParseAddrOrPrefix(spec)
		if err != nil {
			return nil, err
		}
		if p.IsValid() {
			prefixes = append(prefixes, p)
		} else {
			addrs = append(addrs, a)
		}
	}
	return NewLocalSet(addrs, prefixes), nil
}

// ParseAddrOrPrefix parses an IP address or a CIDR prefix. Exactly one of
// the results is valid when err is nil.
func ParseAddrOrPrefix(s string) (netip.Addr, netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Addr{}, netip.Prefix{}, fmt.Errorf("parse %q: not a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32", s)
		}
		return netip.Addr{}, p, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, netip.Prefix{}, fmt.Errorf("parse %q: not an IP address such as 192.0.2.1 or 2001:db8::1", s)
	}
	return a, netip.Prefix{}, nil
}

// Contains reports whether a is in the set. It does not allocate.
func (s *LocalSet) Contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	if s.few != nil || len(s.addrs) == 0 {
		for _, x := range s.few {
			if x == a {
				return true
			}
		}
	} else if _, ok := s.addrs[a]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addrs returns the set's single addresses, sorted.
func (s *LocalSet) Addrs() []netip.Addr {
	if s == nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(s.addrs))
	for a := range s.addrs {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// Prefixes returns the set's prefixes (those wider than one address).
func (s *LocalSet) Prefixes() []netip.Prefix {
	if s == nil {
		return nil
	}
	return slices.Clone(s.prefixes)
}

// Len returns the number of addresses and prefixes in the set.
func (s *LocalSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.addrs) + len(s.prefixes)
}

// String lists the set's members, sorted.
func (s *LocalSet) String() string {
	if s == nil {
		return ""
	}
	out := make([]string, 0, s.Len())
	for a := range s.addrs {
		out = append(out, a.String())
	}
	for _, p := range s.prefixes {
		out = append(out, p.String())
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}
