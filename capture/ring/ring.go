package ring

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/net/bpf"
)

// Errors. The errors of this package wrap them, and also the system's
// error (such as unix.EPERM) where there is one, so that errors.Is tells
// the cause.
var (
	// ErrNotSupported is wrapped by Open outside Linux.
	ErrNotSupported = errors.New("not supported")
	// ErrPermission: the process may not open a packet socket. On Linux it
	// needs CAP_NET_RAW in the network namespace of the socket.
	ErrPermission = errors.New("no permission to open a packet socket (it needs CAP_NET_RAW)")
	// ErrNoInterface: Config.Interface names no interface.
	ErrNoInterface = errors.New("no such network interface")
	// ErrInterfaceDown: the interface is down, went down, or was removed.
	// A socket whose interface went down receives again once it is back
	// up; one whose interface was removed never does, and must be reopened.
	ErrInterfaceDown = errors.New("the interface went down or was removed")
	// ErrTimeout: no block became ready before the timeout. NextBlock
	// returns it unwrapped, without allocating.
	ErrTimeout = errors.New("no packet block ready before the timeout")
	// ErrClosed: the ring was shut down or closed. NextBlock returns it
	// unwrapped.
	ErrClosed = errors.New("packet ring closed")
	// ErrFilter: the kernel refused the filter (for instance ENOMEM, when
	// it is larger than net.core.optmem_max allows).
	ErrFilter = errors.New("the kernel refused the packet filter")
	// ErrMalformedBlock: a block's layout is inconsistent; see Block.Err.
	ErrMalformedBlock = errors.New("malformed packet block: a frame's offset or length runs past the block")
)

// Defaults of Config.
const (
	// DefaultBlockSize is the size of a ring block: 256 KiB.
	DefaultBlockSize = 256 << 10
	// DefaultNumBlocks makes an 8 MiB ring with the default block size.
	DefaultNumBlocks = 32
	// DefaultFrameSize is the frame size given to the kernel.
	DefaultFrameSize = 4096
	// DefaultBlockTimeout is how long the kernel keeps a block that has
	// frames but is not full before handing it over.
	DefaultBlockTimeout = 64 * time.Millisecond
)

// Any is the Config.Interface that captures on every interface of the
// network namespace.
const Any = "any"

// Config configures a Ring. The zero value of every field but Interface
// takes the default the field documents.
type Config struct {
	// Interface is the name of the interface to capture on, or Any ("any")
	// for every interface of the network namespace (ifindex 0).
	Interface string
	// Dgram opens a SOCK_DGRAM socket: the kernel strips the link-layer
	// header, and each frame starts at the network header (Frame.Protocol
	// says which). Otherwise the socket is SOCK_RAW and each frame keeps
	// its link-layer header (an Ethernet header on Ethernet, veth and
	// loopback devices; on Any, each device's own).
	Dgram bool
	// Filter is a classic BPF program that the kernel runs on every frame:
	// it returns how many bytes of the frame to keep (the snap length), 0
	// to drop it. Nil keeps every frame whole. Every socket of a fanout
	// group must have the same filter: the kernel picks the socket first
	// and runs that socket's filter.
	Filter []bpf.RawInstruction
	// BlockSize is the size of a ring block in bytes: a multiple of the
	// page size, and larger than the largest frame kept. 0 means
	// DefaultBlockSize.
	BlockSize int
	// NumBlocks is the number of blocks; the ring takes
	// BlockSize*NumBlocks bytes of kernel memory, at most 1 GiB. 0 means
	// DefaultNumBlocks.
	NumBlocks int
	// FrameSize is the frame size the kernel checks the ring request
	// with: a multiple of 16, at least 80 and at most BlockSize. A
	// TPACKET_V3 ring packs frames by their own size, so it changes
	// nothing else. 0 means DefaultFrameSize.
	FrameSize int
	// BlockTimeout is how long the kernel waits for a block that holds
	// frames to fill up before it hands the block over anyway: the most a
	// frame waits in the ring when traffic is light. It is rounded up to a
	// whole millisecond; at most 65535 ms. 0 means DefaultBlockTimeout.
	BlockTimeout time.Duration
	// Fanout selects whether the socket joins a PACKET_FANOUT group, and
	// how; see FanoutMode. The zero value, NoFanout, joins none.
	Fanout FanoutMode
	// FanoutGroup is the ID of the group that FanoutJoin joins. IDs are
	// shared by every socket of the network namespace, in any process.
	FanoutGroup uint16
}

// FanoutMode selects whether a socket joins a PACKET_FANOUT group. A group
// is of type PACKET_FANOUT_HASH with PACKET_FANOUT_FLAG_DEFRAG: the kernel
// spreads the frames of the interface over the group's sockets by a
// symmetric flow hash, so that both directions of a connection reach the
// same socket (fragments are reassembled for the hash first). All the
// sockets of a group must be on the same interface, with the same Dgram
// and Filter.
type FanoutMode uint8

// Fanout modes.
const (
	// NoFanout: the socket joins no group and receives every frame that
	// passes its filter.
	NoFanout FanoutMode = iota
	// FanoutNew: the socket creates a group with an ID that no group of
	// the network namespace uses (PACKET_FANOUT_FLAG_UNIQUEID, Linux 4.12
	// and later; the kernel hands IDs out from 0 up); Ring.FanoutGroup
	// returns it, for the group's other sockets to join with FanoutJoin.
	FanoutNew
	// FanoutJoin: the socket joins the group Config.FanoutGroup, creating
	// it if no group has that ID.
	FanoutJoin
)

// Bounds of Config.
const (
	minFrameSize    = 80 // TPACKET3_HDRLEN (68) rounded up to TPACKET_ALIGNMENT
	frameAlign      = 16 // TPACKET_ALIGNMENT
	maxBlockTimeout = 65535 * time.Millisecond
	maxRingBytes    = 1 << 30 // what an int holds on 32-bit systems, and capture.MaxRingSize
	maxIfNameLen    = 15      // IFNAMSIZ - 1
)

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.NumBlocks == 0 {
		c.NumBlocks = DefaultNumBlocks
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	return c
}

// validate checks a Config whose defaults are set, for a system whose
// page size is pageSize.
func (c Config) validate(pageSize int) error {
	switch {
	case c.Interface == "" || len(c.Interface) > maxIfNameLen:
		return fmt.Errorf("invalid Interface %q: must be an interface name of 1 to %d bytes, or %q for all", c.Interface, maxIfNameLen, Any)
	case c.BlockSize < pageSize || c.BlockSize%pageSize != 0:
		return fmt.Errorf("invalid BlockSize %d: must be a positive multiple of the page size (%d)", c.BlockSize, pageSize)
	case c.NumBlocks < 1 || int64(c.BlockSize)*int64(c.NumBlocks) > maxRingBytes:
		return fmt.Errorf("invalid NumBlocks %d: must be at least 1, for a ring of at most %d bytes", c.NumBlocks, int64(maxRingBytes))
	case c.FrameSize < minFrameSize || c.FrameSize%frameAlign != 0 || c.FrameSize > c.BlockSize:
		return fmt.Errorf("invalid FrameSize %d: must be a multiple of %d between %d and BlockSize (%d)", c.FrameSize, frameAlign, minFrameSize, c.BlockSize)
	case c.BlockTimeout < 0 || c.BlockTimeout > maxBlockTimeout:
		return fmt.Errorf("invalid BlockTimeout %v: must be between 1ms and %v", c.BlockTimeout, maxBlockTimeout)
	case c.Fanout > FanoutJoin:
		return fmt.Errorf("invalid Fanout %d: must be NoFanout, FanoutNew or FanoutJoin", c.Fanout)
	}
	return nil
}

// blockTimeoutMillis returns BlockTimeout in whole milliseconds, rounded up.
func (c Config) blockTimeoutMillis() uint32 {
	return uint32((c.BlockTimeout + time.Millisecond - 1) / time.Millisecond)
}

// PacketType is the kernel's classification of a frame (sll_pkttype).
type PacketType uint8

// Packet types, from linux/if_packet.h.
const (
	// PacketHost: addressed to this host.
	PacketHost PacketType = 0
	// PacketBroadcast: a link-layer broadcast.
	PacketBroadcast PacketType = 1
	// PacketMulticast: a link-layer multicast.
	PacketMulticast PacketType = 2
	// PacketOtherHost: addressed to another host, seen by chance or in
	// promiscuous mode.
	PacketOtherHost PacketType = 3
	// PacketOutgoing: sent by this host. On a loopback device each packet
	// is seen twice: once outgoing, once as received (PacketHost).
	PacketOutgoing PacketType = 4
)

// String returns the packet type's name as in linux/if_packet.h, without
// the PACKET_ prefix, or its number.
func (t PacketType) String() string {
	switch t {
	case PacketHost:
		return "HOST"
	case PacketBroadcast:
		return "BROADCAST"
	case PacketMulticast:
		return "MULTICAST"
	case PacketOtherHost:
		return "OTHERHOST"
	case PacketOutgoing:
		return "OUTGOING"
	}
	return fmt.Sprintf("PacketType(%d)", uint8(t))
}

// Frame is one captured frame and the kernel's metadata about it. Its
// zero value is an empty frame.
type Frame struct {
	// Data is the captured bytes: the first tp_snaplen bytes of the frame,
	// from its link-layer header (SOCK_RAW) or its network header
	// (SOCK_DGRAM). It points into the ring and is valid until the block
	// is released. A VLAN tag that the kernel stripped (see VLAN) is not
	// in it.
	Data []byte
	// Len is the frame's length on the wire (tp_len), at least len(Data);
	// without a stripped VLAN tag, like Data.
	Len int
	// Time is the kernel's timestamp of the frame, in nanoseconds since
	// the Unix epoch (tp_sec, tp_nsec).
	Time int64
	// Ifindex is the index of the interface the frame was seen on
	// (sll_ifindex): the bound interface, or any of them on Any.
	Ifindex int
	// Protocol is the frame's EtherType (sll_protocol, in host byte
	// order), such as 0x0800 for IPv4 and 0x86dd for IPv6.
	Protocol uint16
	// VLANTCI is the tag control information of an 802.1Q or 802.1ad tag
	// that the kernel (or the network card) stripped from the frame
	// (tp_vlan_tci), valid if VLAN is set: the priority in the top 3 bits,
	// the VLAN ID in the low 12.
	VLANTCI uint16
	// VLANTPID is the tag's protocol identifier, 0x8100 (802.1Q) or
	// 0x88a8 (802.1ad), valid if VLAN is set. A kernel that does not
	// report it (before Linux 3.14) gets 0x8100.
	VLANTPID uint16
	// PktType is the kernel's classification of the frame (sll_pkttype).
	PktType PacketType
	// VLAN reports whether the kernel stripped a VLAN tag from the frame
	// (TP_STATUS_VLAN_VALID), which VLANTCI and VLANTPID then describe.
	// Tags that the kernel left in place, such as the inner tag of QinQ,
	// stay in Data.
	VLAN bool
}

// Counters are the kernel counters of a capture's packet sockets, as
// 64-bit totals. The kernel's counters are 32-bit, and it resets them each
// time they are read (PACKET_STATISTICS returns what happened since the
// previous read), so Ring.ReadStats adds each read into a Counters. Keep
// one Counters for a capture and pass it to every socket the capture
// opens, reopens included: a sum of deltas only grows, so the totals
// never go backwards, and a 64-bit sum of 32-bit deltas does not wrap in
// any realistic lifetime (2^64 frames at 100 million per second take
// 5,800 years). A read's delta itself would wrap only after 2^32 frames
// between two reads: 43 s at 100 million frames per second. The zero
// value is all zeros, ready to use.
type Counters struct {
	// Packets counts the frames that passed the filter, dropped ones
	// included (tp_packets: the kernel adds its drops to it when it
	// reports).
	Packets uint64
	// Drops counts the frames that passed the filter but found no room in
	// the ring (tp_drops).
	Drops uint64
	// Freezes counts the times the ring filled up and the kernel stopped
	// filling it until the reader released a block (tp_freeze_q_cnt).
	Freezes uint64
}

// add adds one read of the kernel's counters.
func (c *Counters) add(packets, drops, freezes uint32) {
	c.Packets += uint64(packets)
	c.Drops += uint64(drops)
	c.Freezes += uint64(freezes)
}
