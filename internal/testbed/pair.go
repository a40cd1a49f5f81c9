package testbed

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// Pair is two namespaces joined by one link, as built by [NewVethPair] and
// [NewDelayLine]. The client side holds the .1 addresses (192.0.2.1/24,
// 2001:db8::1/64) and the server side the .2 addresses, from the
// documentation ranges. Both interfaces have fixed MAC addresses and
// permanent neighbor entries for each other, so that no ARP or neighbor
// discovery precedes the first packet.
type Pair struct {
	// Client and Server are the two namespaces.
	Client, Server *NetNS
	// ClientIf and ServerIf name the interface of the link in each namespace.
	ClientIf, ServerIf string
	// ClientMAC and ServerMAC are the hardware addresses of those interfaces.
	ClientMAC, ServerMAC net.HardwareAddr
	// ClientAddr4 and the others are the addresses of the interfaces.
	ClientAddr4, ServerAddr4 netip.Addr
	ClientAddr6, ServerAddr6 netip.Addr
}

// Path4 returns the IPv4 path from the client to the server.
func (p *Pair) Path4() Path {
	return Path{Client: p.Client, Server: p.Server, Dst: p.ServerAddr4}
}

// Path6 returns the IPv6 path from the client to the server.
func (p *Pair) Path6() Path {
	return Path{Client: p.Client, Server: p.Server, Dst: p.ServerAddr6}
}

// Close deletes both namespaces, and with them the link.
func (p *Pair) Close() error {
	return errors.Join(p.Client.Close(), p.Server.Close())
}

// Path is what a traffic generator needs: a client namespace, a server
// namespace, and an address of the server that the client reaches.
type Path struct {
	Client, Server *NetNS
	Dst            netip.Addr
	// CongestionControl, if not empty, is the congestion control algorithm
	// of the client's sockets (TCP_CONGESTION, Linux only), for example
	// "cubic" where the namespaces default to "bbr". A namespace's default
	// can only be one of net.ipv4.tcp_allowed_congestion_control; a socket
	// of root's can be any the kernel has.
	CongestionControl string
	// Port, if not 0, is the port the server listens on; 0 takes an
	// ephemeral one.
	Port uint16
}

// String describes the path, for logs.
func (p Path) String() string {
	return fmt.Sprintf("%v -> %v in %v", p.Client, p.Dst, p.Server)
}

// newPair creates the two namespaces of a Pair and fills in its addresses.
// The interfaces are left to the caller.
func newPair(clientIf, serverIf string) (*Pair, error) {
	client, err := CreateNetNS()
	if err != nil {
		return nil, err
	}
	server, err := CreateNetNS()
	if err != nil {
		return nil, errors.Join(err, client.Close())
	}
	p := &Pair{
		Client:      client,
		Server:      server,
		ClientIf:    clientIf,
		ServerIf:    serverIf,
		ClientMAC:   net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x01},
		ServerMAC:   net.HardwareAddr{0x02, 0x00, 0x00, 0x00, 0x00, 0x02},
		ClientAddr4: netip.AddrFrom4([4]byte{192, 0, 2, 1}),
		ServerAddr4: netip.AddrFrom4([4]byte{192, 0, 2, 2}),
		ClientAddr6: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}),
		ServerAddr6: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}),
	}
	// Quiet IPv6: no duplicate address detection, no router solicitations.
	// Interfaces created afterwards inherit the defaults.
	for _, ns := range []*NetNS{client, server} {
		for _, kv := range [][2]string{
			{"net.ipv6.conf.default.accept_dad", "0"},
			{"net.ipv6.conf.default.router_solicitations", "0"},
		} {
			if err := ns.SetSysctl(kv[0], kv[1]); err != nil {
				return nil, errors.Join(err, p.Close())
			}
		}
	}
	return p, nil
}

// configure assigns the addresses, MAC addresses and neighbor entries of
// both interfaces and brings them up.
func (p *Pair) configure() error {
	sides := []struct {
		ns                   *NetNS
		ifname               string
		mac, peerMAC         net.HardwareAddr
		addr4, addr6         netip.Addr
		peerAddr4, peerAddr6 netip.Addr
	}{
		{p.Client, p.ClientIf, p.ClientMAC, p.ServerMAC, p.ClientAddr4, p.ClientAddr6, p.ServerAddr4, p.ServerAddr6},
		{p.Server, p.ServerIf, p.ServerMAC, p.ClientMAC, p.ServerAddr4, p.ServerAddr6, p.ClientAddr4, p.ClientAddr6},
	}
	for _, s := range sides {
		cmds := [][]string{
			{"link", "set", "dev", s.ifname, "address", s.mac.String()},
			{"addr", "add", netip.PrefixFrom(s.addr4, 24).String(), "dev", s.ifname},
			{"addr", "add", netip.PrefixFrom(s.addr6, 64).String(), "dev", s.ifname, "nodad"},
			{"link", "set", "dev", s.ifname, "up"},
			{"neigh", "replace", s.peerAddr4.String(), "lladdr", s.peerMAC.String(), "dev", s.ifname, "nud", "permanent"},
			{"neigh", "replace", s.peerAddr6.String(), "lladdr", s.peerMAC.String(), "dev", s.ifname, "nud", "permanent"},
		}
		for _, args := range cmds {
			if err := s.ns.IP(args...); err != nil {
				return fmt.Errorf("configure %s in netns %q: %w", s.ifname, s.ns.Name(), err)
			}
		}
	}
	return nil
}

// NewVethPair creates two namespaces joined by a veth pair, named veth0 on
// both sides, and deletes them when the test ends. See [Pair] for the
// addresses.
func NewVethPair(tb testing.TB) *Pair {
	tb.Helper()
	RequireRoot(tb)
	p, err := newPair("veth0", "veth0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := p.Close(); err != nil {
			tb.Error(err)
		}
	})
	if err := p.addVeth(); err != nil {
		tb.Fatal(err)
	}
	return p
}

// addVeth creates and configures the veth pair of p.
func (p *Pair) addVeth() error {
	err := p.Client.IP("link", "add", p.ClientIf, "type", "veth",
		"peer", "name", p.ServerIf, "netns", p.Server.Name())
	if err != nil {
		return fmt.Errorf("create veth pair: %w", err)
	}
	return p.configure()
}

// Recreate creates the veth pair of a Pair made by NewVethPair again, with
// the same names and addresses, after a test deleted it (deleting one end
// of a veth pair deletes both).
func (p *Pair) Recreate() error {
	return p.addVeth()
}
