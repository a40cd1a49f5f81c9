package testbed

import (
	"fmt"
	"net/netip"
)

// BridgeClient puts the client's interface of p under a new bridge, named
// name, in the client namespace: the client's addresses and its neighbor
// entries move to the bridge, which takes the interface's MAC address, and
// the interface becomes a port of the bridge. Every frame of the client then
// crosses two devices, the bridge and its port, as on a host that reaches
// the network (or its containers) through a bridge; a capture on `any` sees
// it on both. The namespace's deletion deletes the bridge.
func (p *Pair) BridgeClient(name string) error {
	cmds := [][]string{
		{"link", "add", "name", name, "address", p.ClientMAC.String(), "type", "bridge"},
		{"addr", "flush", "dev", p.ClientIf},
		{"link", "set", "dev", p.ClientIf, "master", name},
		{"addr", "add", netip.PrefixFrom(p.ClientAddr4, 24).String(), "dev", name},
		{"addr", "add", netip.PrefixFrom(p.ClientAddr6, 64).String(), "dev", name, "nodad"},
		{"link", "set", "dev", name, "up"},
		{"neigh", "replace", p.ServerAddr4.String(), "lladdr", p.ServerMAC.String(), "dev", name, "nud", "permanent"},
		{"neigh", "replace", p.ServerAddr6.String(), "lladdr", p.ServerMAC.String(), "dev", name, "nud", "permanent"},
	}
	for _, args := range cmds {
		if err := p.Client.IP(args...); err != nil {
			return fmt.Errorf("bridge %s in netns %q: %w", p.ClientIf, p.Client.Name(), err)
		}
	}
	return nil
}
