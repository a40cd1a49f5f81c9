package capture

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
)

// ErrNoInterface is wrapped by the error of [InterfaceAddrs] when the named
// interface does not exist. It may appear later (a VPN or container
// interface, for example), so the caller should keep retrying.
var ErrNoInterface = errors.New("no such network interface")

// InterfaceAddrs returns the IPv4 and IPv6 addresses of the named
// interface, or of all interfaces when name is "any", sorted and without
// duplicates. IPv4 addresses are 4 bytes long; zones are dropped, so a
// link-local fe80:: address is returned unzoned, as captured packets carry
// it. It allocates.
//
// When the interface does not exist, the error wraps [ErrNoInterface].
func InterfaceAddrs(name string) ([]netip.Addr, error) {
	var addrs []net.Addr
	if name == "any" {
		var err error
		if addrs, err = net.InterfaceAddrs(); err != nil {
			return nil, fmt.Errorf("list addresses of all interfaces: %w", err)
		}
	} else {
		ifs, err := net.Interfaces()
		if err != nil {
			return nil, fmt.Errorf("list network interfaces: %w", err)
		}
		i := slices.IndexFunc(ifs, func(ifi net.Interface) bool { return ifi.Name == name })
		if i < 0 {
			return nil, fmt.Errorf("find interface %q: %w: capture retries until it appears; check `interface` if it never does", name, ErrNoInterface)
		}
		if addrs, err = ifs[i].Addrs(); err != nil {
			return nil, fmt.Errorf("list addresses of interface %q: %w", name, err)
		}
	}
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		var ip net.IP
		switch a := a.(type) {
		case *net.IPNet:
			ip = a.IP
		case *net.IPAddr:
			ip = a.IP
		default:
			continue
		}
		if ip, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, ip.Unmap())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
