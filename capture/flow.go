package capture

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"time"
	"unsafe"
)

// Flow table defaults.
const (
	// DefaultIdleTTL is how long a flow may go without packets before it
	// expires (the idle_ttl setting).
	DefaultIdleTTL = 300 * time.Second
	// DefaultExpTTL is how long a flow that saw FIN or RST is kept after
	// its last packet (the exp_ttl setting).
	DefaultExpTTL = 60 * time.Second
	// DefaultMaxFlows is the default cap on tracked flows (the max_flows
	// setting). At FlowBytes each, the table then holds at most 24 MiB,
	// plus the room for large flights (FlowTableBytes).
	DefaultMaxFlows = 32768
	// FlowBytes is the memory one tracked flow takes, an upper bound: the
	// flow struct (632 bytes on 64-bit platforms, with its inline records
	// of timed segments, padded to 640 to fill whole cache lines:
	// flowBox) in its allocation chunk, its two slots in the
	// hash index (16 bytes each) and its free-list slot come to 650-700
	// bytes of heap (TestFlowBytes). The index deletes without tombstones,
	// so a flood that churns the table does not grow it
	// (TestFloodSYNChurn).
	FlowBytes = 768
)

// flowKey identifies a flow from the local side: segments sent from local
// to remote are timed, and ACKs from remote to local end the timing. Both
// addresses are held in 16 bytes (IPv4 as IPv4-mapped IPv6), so that the
// key is compact, has no pointer, and hashes and compares as five words.
type flowKey struct {
	l, r  [2]uint64 // local and remote address, big-endian halves of As16
	ports uint32    // local port << 16 | remote port
}

func addrWords(a netip.Addr) [2]uint64 {
	b := a.As16()
	return [2]uint64{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
}

func wordsAddr(w [2]uint64) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], w[0])
	binary.BigEndian.PutUint64(b[8:], w[1])
	return netip.AddrFrom16(b).Unmap()
}

// makeFlowKey returns the key of the flow from local to remote.
func makeFlowKey(local netip.Addr, lport uint16, remote netip.Addr, rport uint16) flowKey {
	return flowKey{l: addrWords(local), r: addrWords(remote), ports: uint32(lport)<<16 | uint32(rport)}
}

func (k *flowKey) local() netip.AddrPort {
	return netip.AddrPortFrom(wordsAddr(k.l), uint16(k.ports>>16))
}

func (k *flowKey) remote() netip.AddrPort {
	return netip.AddrPortFrom(wordsAddr(k.r), uint16(k.ports))
}

// hash mixes the key's words with seed: a multiply-xorshift over five
// words, much cheaper than a generic hash of the key, and seeded per
// table so that crafted flows cannot be made to collide.
func (k *flowKey) hash(seed uint64) uint64 {
	return hashKey(seed, &k.l, &k.r, k.ports)
}

// hashKey is flowKey.hash of the key with local address l, remote
// address r and ports, without making the key.
func hashKey(seed uint64, l, r *[2]uint64, ports uint32) uint64 {
	h := seed ^ l[0]*0x9e3779b97f4a7c15
	h = (h ^ l[1]) * 0xc2b2ae3d27d4eb4f
	h = (h ^ r[0]) * 0x165667b19e3779f9
	h = (h ^ r[1]) * 0x27d4eb2f165667c5
	h = (h ^ uint64(ports)) * 0x94d049bb133111eb
	return h ^ h>>29
}

// flow is one tracked TCP connection, seen from its local end. Flows sit in
// one of two LRU lists (open, or closed after FIN or RST), least recently
// listed last, so that expiry and eviction take them from the tail. A
// packet does not move its flow (which would write to two other flows'
// memory); expiry and eviction check lastSeen against listed at the tail
// and move a flow seen since it was listed to the front instead
// (flowList.victim).
//
// The fields every packet reads come first, with the estimator's
// variables and first records (rttState), in the first three cache lines
// of its flowBox; then the other records of timed segments, read only in
// larger flights; the list links and the SYN entry, read only by list
// changes and SYN timeouts, last.
// flowTable.get resets a reused flow field by field (all but the inline
// records): a new field must be reset there too.
type flow struct {
	key        flowKey
	closed     bool // saw FIN or RST
	dir        Direction
	conn       uint32         // bumped for each connection the local side opens on it, and on reuse
	lastSeen   int64          // engine clock (monotonic when live), ns
	listed     int64          // engine clock when it was last moved to the front of its list
	peer       *peerRec       // the aggregate its samples and counts go to; nil until needed
	peerGen    uint32         // the engine's group generation peer was looked up in
	h          uint32         // the low 32 bits of key's hash, as in its slot
	seen       [2]lastSegment // by direction: dirOut, dirIn
	rtt        rttState       // its variables first, its inline records last
	prev, next *flow
	synPos     uint64 // 1 + the position of its entry in the table's synRing; 0 if none
}

// flowBox is a flow padded to a whole number of cache lines: flows are
// allocated in chunks aligned to a line, so that the fields every packet
// reads take the fewest lines.
type flowBox struct {
	flow
	_ [(cacheLine - unsafe.Sizeof(flow{})%cacheLine) % cacheLine]byte
}

const cacheLine = 64

// eq reports whether k and o are the same key; cheaper than == on the
// struct, which calls memequal.
func (k *flowKey) eq(o *flowKey) bool {
	return k.l[0] == o.l[0] && k.l[1] == o.l[1] && k.r[0] == o.r[0] && k.r[1] == o.r[1] && k.ports == o.ports
}

// Directions of a segment within a flow.
const (
	dirOut = 0 // sent by the local side
	dirIn  = 1 // received by it
)

// lastSegment is the last segment of one direction of a flow that was
// taken as new, not as a copy: where it was captured, when, and its
// signature.
type lastSegment struct {
	t   int64 // capture time, Unix ns; 0 before the first segment
	sig uint32
	dev devTag
}

// devTag is a Device in 32 bits: known, packet type and the low 24 bits
// of the interface index, which tell the devices of one flow apart.
type devTag uint32

func tagOf(d Device) devTag {
	if !d.Known() {
		return 0
	}
	return devTag(1<<31 | uint32(d.PktType()&0x7f)<<24 | d.Index()&0xffffff)
}

func (t devTag) known() bool    { return t&(1<<31) != 0 }
func (t devTag) hasIndex() bool { return t&0xffffff != 0 }

// Copies. AF_PACKET delivers a segment once per device it crosses: twice
// on lo (outgoing and incoming), and on "any" once more for every stacked
// device (a bridge and its port, a bond and its slave, a macvlan or VLAN
// device and its parent).
const (
	// deviceWindow is how long a direction of a flow stays with the device
	// it was last seen on: a frame of the same direction from another
	// device within it is a copy. Copies follow the original by
	// microseconds, or by the time a queue on the lower device held them;
	// a flow whose traffic really moves to another device (a route
	// change) moves after this long without a frame on the old one.
	deviceWindow = int64(time.Second)
	// copyWindow is how soon an exact copy of the previous segment (same
	// sequence number, length, flags, acknowledgement and TSval) must
	// follow it to count as a copy when the capture does not tell the
	// device: far below any retransmission timeout (200 ms on Linux) or
	// tail loss probe (at least 10 ms).
	copyWindow = int64(time.Millisecond)
)

// segmentSig returns the signature of p that tells an exact copy.
func segmentSig(p *Packet) uint32 {
	h := uint64(p.Seq)*0x9e3779b97f4a7c15 ^ uint64(p.Ack)*0xc2b2ae3d27d4eb4f ^
		(uint64(p.PayloadLen)<<8|uint64(p.Flags))*0x165667b19e3779f9 ^ uint64(p.TSval)*0x27d4eb2f165667c5
	return uint32(h ^ h>>32)
}

// isCopy reports whether a segment with signature sig, captured at time t
// on dev, is a copy of one already taken in this direction; if not, it
// takes it as the direction's last segment.
func (l *lastSegment) isCopy(d Device, sig uint32, t int64) bool {
	dev := tagOf(d)
	if l.t != 0 {
		dt := t - l.t
		switch {
		case dev != l.dev:
			// Another device: a copy while the direction's own device is
			// in use; otherwise the flow has moved.
			if dev.known() && l.dev.known() && dt >= 0 && dt < deviceWindow {
				return true
			}
		case !dev.hasIndex() && sig == l.sig && dt >= 0 && dt <= copyWindow:
			// The same or an unknown device, which cannot tell copies
			// from retransmissions: an exact copy at once is a copy.
			return true
		}
	}
	l.dev, l.t, l.sig = dev, t, sig
	return false
}

// flowList is an intrusive doubly linked list of flows.
type flowList struct {
	head, tail *flow
	n          int
}

func (l *flowList) pushFront(f *flow) {
	f.prev, f.next = nil, l.head
	if l.head != nil {
		l.head.prev = f
	} else {
		l.tail = f
	}
	l.head = f
	l.n++
}

// secondChances is how many flows seen since they were listed an eviction
// moves to the front before it takes the tail whatever its last packet.
const secondChances = 8

// victim returns the flow to evict from l, nil if l is empty: the tail,
// after moving to the front up to secondChances tails that were seen
// after they were listed. A flood of new flows, seen once each, evicts
// its own flows before any flow that carries traffic.
func (l *flowList) victim() *flow {
	for range secondChances {
		f := l.tail
		if f == nil || f.lastSeen <= f.listed || l.n == 1 {
			return f
		}
		l.moveFront(f)
	}
	return l.tail
}

// moveFront moves f, seen since it was listed, to the front of l, listed
// at its last packet, or at the head's listing if that is later, so that
// the list stays in order.
func (l *flowList) moveFront(f *flow) {
	l.remove(f)
	f.listed = f.lastSeen
	if l.head != nil && l.head.listed > f.listed {
		f.listed = l.head.listed
	}
	l.pushFront(f)
}

func (l *flowList) remove(f *flow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else {
		l.tail = f.prev
	}
	f.prev, f.next = nil, nil
	l.n--
}

// flowSlot is a slot of the flow table's hash index: the low 32 bits of
// the key's hash, which hold its home slot, and the flow, or nil.
type flowSlot struct {
	h uint32
	f *flow
}

// flowTable holds the flows, bounded by max, in an open-addressing hash
// index with linear probing and backward-shift deletion (no tombstones, so
// churn never grows it), sized to twice max rounded up to a power of two.
// It is owned by one goroutine.
type flowTable struct {
	slots        []flowSlot
	mask         uint32
	seed         uint64
	n            int
	open, closed flowList
	free         []*flow // released flows, reused before allocating
	max          int
	pool         segPool // room for the timed segments of large flights
	syns         synRing // the connections the local side is opening

	// Counters, which the engine publishes for Engine.Stats
	// (Engine.publishFlows): an atomic write here would wait, in a flood
	// of new flows, for the writes to cold memory before it.
	evicted, expired, created uint64
	changed                   bool // the counters or n changed since the engine published them
}

// flowTableInit is the index size a table starts with; it doubles as
// flows are added, up to the size for max.
const flowTableInit = 1024

func newFlowTable(max int) *flowTable {
	t := &flowTable{max: max, pool: segPool{max: extMax(max)}, seed: rand.Uint64() | 1}
	t.syns.max = slotsFor(max)
	t.resize(min(flowTableInit, slotsFor(max)))
	return t
}

// slotsFor returns the index size for n flows: at least twice n, a power
// of two.
func slotsFor(n int) int {
	s := 16
	for s < 2*n {
		s <<= 1
	}
	return s
}

// resize rebuilds the index with size slots.
func (t *flowTable) resize(size int) {
	old := t.slots
	t.slots = make([]flowSlot, size)
	t.mask = uint32(size - 1)
	for _, s := range old {
		if s.f != nil {
			i := s.h & t.mask
			for t.slots[i].f != nil {
				i = (i + 1) & t.mask
			}
			t.slots[i] = s
		}
	}
}

// find returns the index of k's slot, and whether it holds k; if not, it
// is the empty slot where k goes.
func (t *flowTable) find(k *flowKey) (uint32, bool) {
	return t.findHash(k, uint32(k.hash(t.seed)))
}

// findHash is find with h, the low 32 bits of k's hash.
func (t *flowTable) findHash(k *flowKey, h uint32) (uint32, bool) {
	i := h & t.mask
	for {
		s := &t.slots[i]
		if s.f == nil {
			return i, false
		}
		if s.h == h && s.f.key.eq(k) {
			return i, true
		}
		i = (i + 1) & t.mask
	}
}

// lookup returns the flow of k, or nil.
func (t *flowTable) lookup(k *flowKey) *flow {
	if i, ok := t.find(k); ok {
		return t.slots[i].f
	}
	return nil
}

// each calls fn for every flow, in no order. fn must not change the table.
func (t *flowTable) each(fn func(*flow)) {
	for _, s := range t.slots {
		if s.f != nil {
			fn(s.f)
		}
	}
}

// removeSlot empties slot i and shifts the slots after it back, so that
// every key stays reachable from its home slot.
func (t *flowTable) removeSlot(i uint32) {
	for {
		t.slots[i] = flowSlot{}
		j := i
		for {
			j = (j + 1) & t.mask
			s := t.slots[j]
			if s.f == nil {
				t.n--
				return
			}
			home := s.h & t.mask
			// s may move to i if its home is not in (i, j], cyclically.
			if (j > i && (home <= i || home > j)) || (j < i && home <= i && home > j) {
				t.slots[i] = s
				i = j
				break
			}
		}
	}
}

// flowChunk is how many flows are allocated at once when the free list is
// empty.
const flowChunk = 64

// get returns the flow for k, creating it (and evicting a flow when the
// table is full, flowList.victim) if create is set, with now the engine
// clock. It does not allocate in steady state.
func (t *flowTable) get(k *flowKey, create bool, now int64) *flow {
	return t.getHash(k, uint32(k.hash(t.seed)), create, now)
}

// getHash is get with h, the low 32 bits of k's hash.
func (t *flowTable) getHash(k *flowKey, h uint32, create bool, now int64) *flow {
	i, ok := t.findHash(k, h)
	if ok {
		return t.slots[i].f
	}
	if !create {
		return nil
	}
	var f *flow
	if t.n >= t.max {
		// Reuse the least recently listed flow not seen since, closed
		// ones first.
		f = t.closed.victim()
		if f == nil {
			f = t.open.victim()
		}
		t.unlink(f)
		t.syns.kill(f)
		t.evicted++
		i, _ = t.findHash(k, h) // the removal may have moved k's slot
	} else {
		if len(t.free) == 0 {
			// A chunk of 40 KiB is page-aligned; if it were not, its
			// first flows would start at the next cache line, one fewer.
			chunk := make([]flowBox, flowChunk)
			if skip := (cacheLine - uintptr(unsafe.Pointer(&chunk[0]))%cacheLine) % cacheLine; skip != 0 {
				chunk = unsafe.Slice((*flowBox)(unsafe.Add(unsafe.Pointer(&chunk[0]), skip)), flowChunk-1)
			}
			for i := range chunk {
				t.free = append(t.free, &chunk[i].flow)
			}
		}
		f = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		if 2*(t.n+1) > len(t.slots) && len(t.slots) < slotsFor(t.max) {
			t.resize(2 * len(t.slots))
			i, _ = t.findHash(k, h)
		}
	}
	t.created++
	t.changed = true
	f.key, f.prev, f.next, f.lastSeen, f.listed, f.closed = *k, nil, nil, now, now, false
	f.dir, f.peer, f.peerGen, f.h, f.seen = DirUnknown, nil, 0, h, [2]lastSegment{}
	f.conn++ // pending SYNs of the flow's previous use no longer match
	f.rtt.reset(false, &t.pool)
	t.slots[i] = flowSlot{h: h, f: f}
	t.n++
	t.open.pushFront(f)
	return f
}

// touch marks f as seen at time now, and closed if closed, moving it to
// the front of the closed list when it closes or opens again. A flow seen
// again stays where it is in its list: expiry and eviction move it to the
// front when they find it at the tail (second chance), which spares a busy
// flow the list's writes to two other flows' cold memory.
func (t *flowTable) touch(f *flow, now int64, closed bool) {
	f.lastSeen = now
	if closed == f.closed && now >= f.listed {
		return
	}
	if f.closed {
		t.closed.remove(f)
	} else {
		t.open.remove(f)
	}
	f.closed = closed
	f.listed = now
	if closed {
		t.closed.pushFront(f)
	} else {
		t.open.pushFront(f)
	}
}

// unlink removes f from its list and the index.
func (t *flowTable) unlink(f *flow) {
	if f.closed {
		t.closed.remove(f)
	} else {
		t.open.remove(f)
	}
	// Its slot is the first from its home that holds f: found without
	// reading f's key, which an eviction would read from cold memory.
	for i := f.h & t.mask; t.slots[i].f != nil; i = (i + 1) & t.mask {
		if t.slots[i].f == f {
			t.removeSlot(i)
			return
		}
	}
}

// release removes f and puts it on the free list.
func (t *flowTable) release(f *flow) {
	t.unlink(f)
	t.syns.kill(f)
	if f.rtt.ext != nil {
		t.pool.put(f.rtt.ext)
		f.rtt.ext, f.rtt.nseg = nil, 0
	}
	t.free = append(t.free, f)
	t.changed = true
}

// expire removes open flows idle since before idleBefore and closed flows
// idle since before closedBefore. A flow at the tail that was seen since
// (but not moved, see touch) goes to the front instead.
func (t *flowTable) expire(idleBefore, closedBefore int64) {
	for _, c := range [2]struct {
		l      *flowList
		before int64
	}{{&t.open, idleBefore}, {&t.closed, closedBefore}} {
		for f := c.l.tail; f != nil && f.listed < c.before; f = c.l.tail {
			if f.lastSeen >= c.before {
				c.l.moveFront(f)
				continue
			}
			t.release(f)
			t.expired++
		}
	}
}

// FlightBytes is the memory of the room a flow borrows to time a large
// flight (MaxTimedSegments records).
const FlightBytes = MaxTimedSegments * 24

// FlowTableBytes bounds the memory of the flow table of an Engine with
// MaxFlows maxFlows: FlowBytes per flow, plus the room for large flights
// that at most max(256, maxFlows/16) flows borrow at once.
func FlowTableBytes(maxFlows int) int64 {
	return int64(maxFlows)*FlowBytes + int64(extMax(maxFlows))*(FlightBytes+16)
}

// extMax is how many flows of a table of max flows may time a flight
// larger than inlineSegs segments at once: max/16, at least 256, at most
// max.
func extMax(flows int) int { return min(flows, max(256, flows/16)) }

// pendingSYN is a connection the local side is opening: flow f, while its
// conn is unchanged, whose first SYN was seen at first (engine clock). f
// is nil once the entry is dead.
type pendingSYN struct {
	f     *flow
	conn  uint32
	first int64
}

// pending reports whether s still waits for its SYN-ACK.
func (s *pendingSYN) pending() bool {
	return s.f.conn == s.conn && s.f.rtt.hs == hsActive && !s.f.rtt.synTimedOut
}

// synRing holds the connections the local side is opening, in the order
// of their first SYN, for the SYN timeout (Engine.checkSYNs). It is a ring
// of absolute positions [head, tail), and each flow knows its entry
// (flow.synPos), so that a flow evicted, released or opened again kills
// its entry while it is in cache, and the ring never reads a flow to learn
// whether its entry still waits. Without that, a flood of new connections
// would read a cold flow for every SYN, to trim the list. At most one
// entry per flow lives, so a ring of twice MaxFlows entries (max) is at
// least half dead when it is full, and compacting it then is amortized.
type synRing struct {
	ring       []pendingSYN // len a power of two, or nil
	head, tail uint64
	max        int // the largest len
}

func (r *synRing) at(pos uint64) *pendingSYN { return &r.ring[pos&uint64(len(r.ring)-1)] }

// kill marks f's entry dead.
func (r *synRing) kill(f *flow) {
	if f.synPos != 0 {
		if p := f.synPos - 1; p >= r.head && p < r.tail {
			*r.at(p) = pendingSYN{}
		}
		f.synPos = 0
	}
}

// push adds the connection f opens, at engine clock now, and kills f's
// previous entry.
func (r *synRing) push(f *flow, now int64) {
	r.kill(f)
	for r.head < r.tail && r.at(r.head).f == nil {
		r.head++
	}
	if r.tail-r.head == uint64(len(r.ring)) {
		if len(r.ring) < r.max {
			r.resize(min(r.max, max(64, 2*len(r.ring))))
		} else {
			r.compact()
		}
	}
	*r.at(r.tail) = pendingSYN{f: f, conn: f.conn, first: now}
	r.tail++
	f.synPos = r.tail
}

// resize moves the entries to a ring of n entries, at their positions.
func (r *synRing) resize(n int) {
	old, oldMask := r.ring, uint64(len(r.ring)-1)
	r.ring = make([]pendingSYN, n)
	for p := r.head; p < r.tail; p++ {
		*r.at(p) = old[p&oldMask]
	}
}

// compact moves the live entries to the front, in order, telling their
// flows their new positions.
func (r *synRing) compact() {
	n := r.head
	for p := r.head; p < r.tail; p++ {
		s := *r.at(p)
		if s.f == nil {
			continue
		}
		*r.at(p) = pendingSYN{}
		*r.at(n) = s // n <= p: a position already read
		n++
		s.f.synPos = n
	}
	r.tail = n
}
