package capture

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"golang.org/x/net/bpf"
)

// FilterLink is the framing in front of the network header that a packet
// socket hands to its filter. The zero value is FilterEthernet.
type FilterLink int

// The framings BuildFilter handles.
const (
	// FilterEthernet: a SOCK_RAW socket on an Ethernet or loopback
	// device. The filter sees the Ethernet header, with up to two in-band
	// 802.1Q or 802.1ad tags.
	FilterEthernet FilterLink = iota
	// FilterNetwork: a SOCK_DGRAM socket (as on the interface "any"), or a
	// device without a link-layer header such as TUN. The data starts at
	// the network header, and the filter takes the L3 protocol from the
	// socket buffer (SKF_AD_PROTOCOL). A packet whose protocol there is a
	// VLAN TPID, as the inner tag of a QinQ frame, is dropped: its data
	// starts at that tag, and userspace cannot tell, because recvmsg and
	// the ring report the protocol behind the tags (Linux 6.11 and later).
	FilterNetwork
)

// String returns the name of the framing.
func (l FilterLink) String() string {
	switch l {
	case FilterEthernet:
		return "ethernet"
	case FilterNetwork:
		return "network"
	}
	return "FilterLink(" + strconv.Itoa(int(l)) + ")"
}

// MaxFilterInstructions is the largest classic BPF program that the Linux
// kernel accepts (BPF_MAXINSNS).
const MaxFilterInstructions = 4096

// ErrFilterTooLarge is wrapped by the error of BuildFilter when the peers
// need a program longer than MaxFilterInstructions. A caller can then
// attach a filter without peers and check the peers in userspace.
var ErrFilterTooLarge = errors.New("too many peers for the kernel filter")

// LoopbackAll, given to DropLoopbackOutgoing, means that the socket reads
// only a loopback device, so that every outgoing frame is a copy.
const LoopbackAll = 0

// DropLoopbackOutgoing returns prog with a prologue that drops the
// outgoing copy of every frame on a loopback device, as libpcap does: on
// lo, AF_PACKET delivers each frame twice, as sent (PACKET_OUTGOING) and
// as received. loIndex is the interface index of the loopback device for
// a socket on all interfaces ("any"), or LoopbackAll for a socket bound to
// the loopback device itself. The prologue reads the packet type and the
// interface index with the kernel's ancillary loads (SKF_AD_PKTTYPE,
// SKF_AD_IFINDEX); it leaves A and X as it found them for prog, which
// reads nothing before loading them.
func DropLoopbackOutgoing(prog []bpf.RawInstruction, loIndex uint32) ([]bpf.RawInstruction, error) {
	pre := []bpf.Instruction{
		bpf.LoadExtension{Num: bpf.ExtType},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: PacketOutgoing, SkipFalse: 1},
		bpf.RetConstant{Val: 0},
	}
	if loIndex != LoopbackAll {
		pre = []bpf.Instruction{
			bpf.LoadExtension{Num: bpf.ExtType},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: PacketOutgoing, SkipFalse: 3},
			bpf.LoadExtension{Num: bpf.ExtInterfaceIndex},
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: loIndex, SkipFalse: 1},
			bpf.RetConstant{Val: 0},
		}
	}
	raw, err := bpf.Assemble(pre)
	if err != nil {
		return nil, fmt.Errorf("build kernel filter: %w", err)
	}
	if len(raw)+len(prog) > MaxFilterInstructions {
		return nil, fmt.Errorf("%w: %d instructions with the loopback prologue, the limit is %d; use fewer or wider prefixes in `ips`, or fewer `hosts`",
			ErrFilterTooLarge, len(raw)+len(prog), MaxFilterInstructions)
	}
	return append(raw, prog...), nil
}

// BuildFilter returns the classic BPF program for a packet socket of the
// framing link. The program accepts TCP over IPv4 and IPv6, and drops
// everything else. With FilterEthernet a frame may carry up to two in-band
// VLAN tags (802.1Q, 802.1ad or 0x9100); the receive path moves an outer
// 802.1Q or 802.1ad tag to metadata before the filter runs, so most tagged
// frames reach it untagged.
//
// IPv4 fragments other than the first are dropped: they hold no TCP
// header. An IPv6 packet passes if its next header is TCP, or an extension
// header (those that Decode walks: hop-by-hop, routing, fragment,
// destination options, AH, mobility, HIP, shim6) followed by TCP or by
// another extension header; Decode makes the final decision.
//
// When peers is not empty, a packet passes only if its source or
// destination address is inside one of the prefixes. A single address is
// a /32 or /128 prefix; any prefix length works, and IPv4-mapped IPv6
// prefixes count as IPv4. Peers of only one family drop all packets of the
// other. An invalid prefix is an error.
//
// An accepted packet is cut to snaplen bytes: the program returns snaplen,
// and the kernel keeps at most that many bytes (this is how the snap length
// is enforced on TPACKET_V3).
//
// The program takes about 45 instructions without peers. Each prefix adds
// 2 (IPv4, or IPv6 prefixes that share their leading 32-bit words) to 14
// (IPv6 prefixes that share nothing), so that 1000 IPv4 /32 or 500 IPv6
// /128 of one /64 take about 2000 and 1000 instructions. Beyond
// MaxFilterInstructions the error wraps ErrFilterTooLarge. The kernel also
// charges the program to the socket's net.core.optmem_max: at 20480 bytes,
// the old default, programs of more than about 2400 instructions fail to
// attach with ENOMEM.
//
// BuildFilter is safe for concurrent use.
func BuildFilter(link FilterLink, peers []netip.Prefix, snaplen uint32) ([]bpf.RawInstruction, error) {
	if snaplen == 0 {
		return nil, errors.New("build kernel filter: invalid snap length 0: must be at least 1")
	}
	v4, v6, err := peerTries(peers)
	if err != nil {
		return nil, fmt.Errorf("build kernel filter: %w", err)
	}
	g := newFilterGen()
	ip4, ip6 := g.newLabel(), g.newLabel()
	switch link {
	case FilterEthernet:
		g.dispatch(ip4, ip6, maxFilterTags, func(tag int) (bpf.Instruction, uint32) {
			off := 12 + 4*uint32(tag) // EtherType, or the TPID of the next tag
			return bpf.LoadAbsolute{Off: off, Size: 2}, off + 2
		})
	case FilterNetwork:
		g.dispatch(ip4, ip6, 0, func(int) (bpf.Instruction, uint32) {
			return bpf.LoadExtension{Num: bpf.ExtProto}, 0
		})
	default:
		return nil, fmt.Errorf("build kernel filter: unknown link %v", link)
	}
	restrict := len(peers) > 0

	// IPv4; X holds the offset of the IP header.
	g.bind(ip4)
	if restrict && v4 == nil {
		g.jump(g.near(g.drop))
	} else {
		g.emit(bpf.LoadIndirect{Off: 6, Size: 2}) // flags and fragment offset
		g.jumpIf(bpf.JumpBitsSet, 0x1fff, g.near(g.drop), next)
		g.emit(bpf.LoadIndirect{Off: 9, Size: 1}) // protocol
		g.jumpIf(bpf.JumpEqual, protoTCP, next, g.near(g.drop))
		g.matchAddrs(restrict, v4, 12, 16)
	}

	// IPv6.
	g.bind(ip6)
	if restrict && v6 == nil {
		g.jump(g.near(g.drop))
	} else {
		pass, ext := g.newLabel(), g.newLabel()
		g.emit(bpf.LoadIndirect{Off: 6, Size: 1}) // next header
		g.nextHeader(pass, ext)
		g.bind(ext)
		g.emit(bpf.LoadIndirect{Off: 40, Size: 1}) // next header of the first extension header
		g.nextHeader(pass, pass)
		g.bind(pass)
		g.matchAddrs(restrict, v6, 8, 24)
	}

	g.settle(g.accept)
	g.bind(g.accept)
	g.emit(bpf.RetConstant{Val: snaplen})
	g.settle(g.drop)
	g.bind(g.drop)
	g.emit(bpf.RetConstant{Val: 0})

	prog, err := g.assemble()
	if err != nil {
		return nil, fmt.Errorf("build kernel filter: %w", err)
	}
	if len(prog) > MaxFilterInstructions {
		return nil, fmt.Errorf("%w: %d prefixes need %d instructions, the limit is %d; use fewer or wider prefixes in `ips`, or fewer `hosts`",
			ErrFilterTooLarge, len(peers), len(prog), MaxFilterInstructions)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("build kernel filter: %w", err)
	}
	return raw, nil
}

// maxFilterTags is the number of in-band VLAN tags that the filter skips
// in an Ethernet frame.
const maxFilterTags = 2

// ipv6ExtHeaders are the IPv6 extension headers that decodeIPv6 walks.
var ipv6ExtHeaders = []uint32{0, 43, 44, 51, 60, 135, 139, 140}

// dispatch emits the code that finds the network header, behind up to
// maxTags in-band VLAN tags: it jumps to ip4 or ip6 with X holding the
// offset of the IP header. level(tag) returns the load of the EtherType
// behind tag tags, and the offset of the header that follows it.
func (g *filterGen) dispatch(ip4, ip6 label, maxTags int, level func(tag int) (bpf.Instruction, uint32)) {
	for tag := 0; tag <= maxTags; tag++ {
		load, x := level(tag)
		g.emit(load)
		g.emit(bpf.LoadConstant{Dst: bpf.RegX, Val: x})
		g.jumpIf(bpf.JumpEqual, etherTypeIPv4, ip4, next)
		if tag == maxTags {
			g.jumpIf(bpf.JumpEqual, etherTypeIPv6, ip6, g.near(g.drop))
			break
		}
		g.jumpIf(bpf.JumpEqual, etherTypeIPv6, ip6, next)
		inner := g.newLabel()
		g.jumpIf(bpf.JumpEqual, etherTypeVLAN, inner, next)
		g.jumpIf(bpf.JumpEqual, etherTypeQinQ, inner, next)
		g.jumpIf(bpf.JumpEqual, etherTypeQinQ2, next, g.near(g.drop))
		g.bind(inner)
	}
}

// nextHeader emits the test of the IPv6 next header in A: TCP jumps to
// tcp, an extension header to ext, anything else to drop.
func (g *filterGen) nextHeader(tcp, ext label) {
	g.jumpIf(bpf.JumpEqual, protoTCP, tcp, next)
	for i, h := range ipv6ExtHeaders {
		miss := next
		if i == len(ipv6ExtHeaders)-1 {
			miss = g.near(g.drop)
		}
		g.jumpIf(bpf.JumpEqual, h, ext, miss)
	}
}

// matchAddrs emits the peer check of an IP header whose source and
// destination addresses are at X+src and X+dst: it accepts when either is
// in root, and drops otherwise. Without restrict it accepts.
func (g *filterGen) matchAddrs(restrict bool, root *trieNode, src, dst uint32) {
	if !restrict || root.accept {
		g.jump(g.near(g.accept))
		return
	}
	tryDst := g.newLabel()
	g.matchNode(root, src, 0, tryDst)
	g.settle(tryDst)
	g.bind(tryDst)
	g.matchNode(root, dst, 0, g.drop)
}

// matchNode emits the test of the 32-bit word depth of the address at
// X+off against the entries of n, and of the following words against
// their children. A match jumps to accept, a mismatch to fail; the code
// never falls through.
//
// After a matching word only that entry's subtree is tried: peerTries
// drops prefixes inside other prefixes, so no other entry can match.
func (g *filterGen) matchNode(n *trieNode, off uint32, depth int, fail label) {
	if n.accept {
		g.jump(g.near(g.accept))
		return
	}
	ents := n.entries
	for i, e := range ents {
		last := i == len(ents)-1
		if i == 0 || e.mask != ents[i-1].mask {
			g.emit(bpf.LoadIndirect{Off: off + 4*uint32(depth), Size: 4})
			if e.mask != ^uint32(0) {
				g.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: e.mask})
			}
		}
		if e.child.accept {
			miss := next
			switch {
			case last:
				miss = g.near(fail)
			case g.islandDue():
				miss = g.newLabel()
			}
			g.jumpIf(bpf.JumpEqual, e.val, g.near(g.accept), miss)
			if miss != next && !last {
				g.island()
				g.bind(miss)
			}
			continue
		}
		var miss label
		if last {
			miss = g.near(fail)
		} else {
			miss = g.newLabel()
		}
		g.jumpIf(bpf.JumpEqual, e.val, next, miss)
		g.matchNode(e.child, off, depth+1, fail)
		if !last {
			g.island()
			g.bind(miss)
		}
	}
}

// trieNode is a set of address prefixes, split into 32-bit words: an entry
// matches one word under a mask, and its child the words that follow. An
// accepting node matches every address.
type trieNode struct {
	accept  bool
	entries []trieEntry // sorted by mask, longest first, then by value
}

type trieEntry struct {
	mask, val uint32
	child     *trieNode
}

var acceptNode = &trieNode{accept: true}

// peerTries returns the tries of the IPv4 and IPv6 prefixes of peers; a
// trie is nil if the family has no prefix. Prefixes inside another prefix
// are left out.
func peerTries(peers []netip.Prefix) (v4, v6 *trieNode, err error) {
	ps := make([]netip.Prefix, 0, len(peers))
	for _, p := range peers {
		if !p.IsValid() {
			return nil, nil, fmt.Errorf("invalid peer prefix %q", p)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		ps = append(ps, p.Masked())
	}
	// Sorted by address, a prefix follows the prefix that contains it,
	// and any prefixes in between are inside that one as well.
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Bits(), b.Bits())
	})
	var last netip.Prefix
	for _, p := range ps {
		if last.IsValid() && last.Contains(p.Addr()) {
			continue
		}
		last = p
		var words []uint32
		root := &v6
		if p.Addr().Is4() {
			b := p.Addr().As4()
			words = []uint32{binary.BigEndian.Uint32(b[:])}
			root = &v4
		} else {
			b := p.Addr().As16()
			words = []uint32{binary.BigEndian.Uint32(b[0:]), binary.BigEndian.Uint32(b[4:]),
				binary.BigEndian.Uint32(b[8:]), binary.BigEndian.Uint32(b[12:])}
		}
		if *root == nil {
			*root = &trieNode{}
		}
		(*root).insert(words, p.Bits())
	}
	return v4, v6, nil
}

// insert adds the prefix of the given length whose address is words.
// Prefixes inside others must be left out (see matchNode); insert only
// handles those that share an entry with a longer or shorter one.
func (n *trieNode) insert(words []uint32, bits int) {
	if bits == 0 {
		n.accept, n.entries = true, nil
		return
	}
	for d := 0; ; d++ {
		r := bits - 32*d // prefix bits in this word and the following ones
		mask := ^uint32(0)
		if r < 32 {
			mask <<= 32 - r
		}
		val := words[d] & mask
		i, found := slices.BinarySearchFunc(n.entries, trieEntry{mask: mask, val: val}, compareEntries)
		switch {
		case !found:
			child := acceptNode
			if r > 32 {
				child = &trieNode{}
			}
			n.entries = slices.Insert(n.entries, i, trieEntry{mask: mask, val: val, child: child})
		case r <= 32:
			n.entries[i].child = acceptNode // covers the longer prefixes there
		}
		if r <= 32 || n.entries[i].child.accept {
			return
		}
		n = n.entries[i].child
	}
}

func compareEntries(a, b trieEntry) int {
	if c := cmp.Compare(b.mask, a.mask); c != 0 {
		return c
	}
	return cmp.Compare(a.val, b.val)
}

// filterGen emits a classic BPF program with symbolic jump targets, and
// lays it out so that no conditional jump exceeds the 255 instructions
// its 8-bit offsets reach.
//
// Far targets are reached through islands: near(target) returns a label
// in the next island, a group of unconditional jumps (32-bit offsets, or
// a copy of the return they lead to) placed where control does not fall
// through, within about islandSpan instructions of the first jump to it.
// Whatever remains out of reach after that gets a trampoline next to the
// jump (see assemble).
type filterGen struct {
	ops          []filterOp
	labels       []int // op index of each label; -1 until bound
	pending      []islandEntry
	accept, drop label
}

// label names a position in the program.
type label int

// next, as a jump target, is the following instruction.
const next label = -1

// islandSpan is how many instructions may follow the first jump to an
// island before the island is due.
const islandSpan = 200

type opKind uint8

const (
	opPlain opKind = iota // ins
	opJump                // unconditional jump to jt
	opCond                // if A cond val, jump to jt, else to jf
)

type filterOp struct {
	kind   opKind
	ins    bpf.Instruction
	cond   bpf.JumpTest
	val    uint32
	jt, jf label
}

type islandEntry struct {
	target, local label
	firstRef      int // op index of the first jump to local
}

func newFilterGen() *filterGen {
	g := &filterGen{}
	g.accept, g.drop = g.newLabel(), g.newLabel()
	return g
}

func (g *filterGen) newLabel() label {
	g.labels = append(g.labels, -1)
	return label(len(g.labels) - 1)
}

// bind places l at the next instruction.
func (g *filterGen) bind(l label) { g.labels[l] = len(g.ops) }

func (g *filterGen) emit(ins bpf.Instruction) {
	g.ops = append(g.ops, filterOp{kind: opPlain, ins: ins})
}

func (g *filterGen) jump(to label) {
	g.ops = append(g.ops, filterOp{kind: opJump, jt: to})
}

func (g *filterGen) jumpIf(cond bpf.JumpTest, val uint32, jt, jf label) {
	g.ops = append(g.ops, filterOp{kind: opCond, cond: cond, val: val, jt: jt, jf: jf})
}

// near returns a label in the next island that jumps on to target. Use it
// for the next instruction emitted.
func (g *filterGen) near(target label) label {
	for _, e := range g.pending {
		if e.target == target {
			return e.local
		}
	}
	l := g.newLabel()
	g.pending = append(g.pending, islandEntry{target: target, local: l, firstRef: len(g.ops)})
	return l
}

// islandDue reports whether the next island should be placed now.
func (g *filterGen) islandDue() bool {
	return len(g.pending) > 0 && len(g.ops)-g.pending[0].firstRef >= islandSpan
}

// island places the next island here if it is due and control cannot
// fall through to here.
func (g *filterGen) island() {
	if !g.islandDue() || g.fallsThrough() {
		return
	}
	for _, e := range g.pending {
		g.bind(e.local)
		g.jump(e.target)
	}
	g.pending = g.pending[:0]
}

// settle binds the island labels of target here, where target is about to
// be bound.
func (g *filterGen) settle(target label) {
	g.pending = slices.DeleteFunc(g.pending, func(e islandEntry) bool {
		if e.target == target {
			g.bind(e.local)
			return true
		}
		return false
	})
}

// fallsThrough reports whether control can reach the next instruction from
// the last one.
func (g *filterGen) fallsThrough() bool {
	if len(g.ops) == 0 {
		return true
	}
	o := g.ops[len(g.ops)-1]
	switch o.kind {
	case opJump:
		return false
	case opCond:
		return o.jt == next || o.jf == next
	}
	switch o.ins.(type) {
	case bpf.RetConstant, bpf.RetA:
		return false
	}
	return true
}

// assemble resolves the labels and returns the program. A conditional jump
// whose target is out of reach gets a trampoline, an unconditional jump
// right after it; trampolines move other targets away, so this repeats
// until every jump reaches.
func (g *filterGen) assemble() ([]bpf.Instruction, error) {
	n := len(g.ops)
	for l, at := range g.labels {
		if at < 0 || at >= n {
			return nil, fmt.Errorf("internal error: label %d at %d in a program of %d operations", l, at, n)
		}
	}
	target := func(i int, l label) int {
		if l == next {
			return i + 1
		}
		return g.labels[l]
	}
	size := func(i int, far [2]bool) int {
		switch o := g.ops[i]; o.kind {
		case opJump:
			if target(i, o.jt) == i+1 {
				return 0 // a jump to the next instruction
			}
		case opCond:
			s := 1
			for _, f := range far {
				if f {
					s++
				}
			}
			return s
		}
		return 1
	}
	far := make([][2]bool, n)
	pc := make([]int, n+1)
	for {
		for i := range g.ops {
			pc[i+1] = pc[i] + size(i, far[i])
		}
		changed := false
		for i, o := range g.ops {
			if o.kind != opCond {
				continue
			}
			for k, l := range [2]label{o.jt, o.jf} {
				if !far[i][k] && pc[target(i, l)]-pc[i]-1 > 255 {
					far[i][k] = true
					changed = true
				}
			}
		}
		if !changed {
			break
		}
	}

	// resolve follows unconditional jumps from op i to the op they end at.
	resolve := func(i int) int {
		for i < n && g.ops[i].kind == opJump {
			i = target(i, g.ops[i].jt)
		}
		return i
	}
	// jumpTo returns the instruction at at that goes to op i: a copy of
	// the return that i leads to, or a jump.
	jumpTo := func(at, i int) bpf.Instruction {
		i = resolve(i)
		if r, ok := g.ops[i].ins.(bpf.RetConstant); ok && g.ops[i].kind == opPlain {
			return r
		}
		return bpf.Jump{Skip: uint32(pc[i] - at - 1)}
	}
	prog := make([]bpf.Instruction, 0, pc[n])
	for i, o := range g.ops {
		switch o.kind {
		case opPlain:
			prog = append(prog, o.ins)
		case opJump:
			if size(i, far[i]) > 0 {
				prog = append(prog, jumpTo(pc[i], target(i, o.jt)))
			}
		case opCond:
			var skip [2]int
			var tramps []bpf.Instruction
			for k, l := range [2]label{o.jt, o.jf} {
				t := target(i, l)
				if far[i][k] {
					skip[k] = len(tramps)
					tramps = append(tramps, jumpTo(pc[i]+1+len(tramps), t))
				} else {
					skip[k] = pc[t] - pc[i] - 1
				}
				if skip[k] < 0 || skip[k] > 255 {
					return nil, fmt.Errorf("internal error: jump of %d instructions at %d", skip[k], pc[i])
				}
			}
			prog = append(prog, bpf.JumpIf{Cond: o.cond, Val: o.val, SkipTrue: uint8(skip[0]), SkipFalse: uint8(skip[1])})
			prog = append(prog, tramps...)
		}
	}
	return prog, nil
}
