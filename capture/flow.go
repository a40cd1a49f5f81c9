package capture

import (
	"net/netip"
	"sync/atomic"
	"time"
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
	// setting). At FlowBytes each, the table then holds at most about
	// 48 MiB.
	DefaultMaxFlows = 32768
	// FlowBytes is the approximate memory one tracked flow takes, an
	// upper bound: the flow struct (656 bytes on 64-bit platforms, with
	// its MaxTimedSegments timed segments) in its allocation chunk, its
	// map entry (a 64-byte key) and its free-list slot come to about
	// 900-930 bytes of heap in a table just filled (TestFlowBytes), and
	// to 1.35-1.41 KiB once a flood has evicted a few hundred times
	// MaxFlows flows: deletions leave tombstones that make the Go map
	// grow to about 4 times its fresh size before it levels off
	// (golang/go#70886; TestFloodSYNChurn measures it).
	FlowBytes = 1536
)

// flowKey identifies a flow from the local side: segments sent from local
// to remote are timed, and ACKs from remote to local end the timing.
type flowKey struct {
	local, remote netip.AddrPort
}

// flow is one tracked TCP connection, seen from its local end. Flows sit in
// one of two LRU lists (open, or closed after FIN or RST), most recently
// seen first, so that expiry and eviction take them from the tail.
// flowTable.get resets a reused flow field by field (all but rtt.segs):
// a new field must be reset there too.
type flow struct {
	key        flowKey
	prev, next *flow
	lastSeen   int64 // engine clock (monotonic when live), ns
	closed     bool  // saw FIN or RST
	dir        Direction
	conn       uint32         // bumped for each connection the local side opens on it, and on reuse
	peerGen    uint32         // the engine's group generation peer was looked up in
	peer       *peerRec       // the aggregate its samples and counts go to; nil until needed
	seen       [2]lastSegment // by direction: dirOut, dirIn
	rtt        rttState
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
	dev Device
	t   int64 // capture time, Unix ns; 0 before the first segment
	sig uint32
}

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
func (l *lastSegment) isCopy(dev Device, sig uint32, t int64) bool {
	if l.t != 0 {
		dt := t - l.t
		switch {
		case dev != l.dev:
			// Another device: a copy while the direction's own device is
			// in use; otherwise the flow has moved.
			if dev.Known() && l.dev.Known() && dt >= 0 && dt < deviceWindow {
				return true
			}
		case dev.Index() == 0 && sig == l.sig && dt >= 0 && dt <= copyWindow:
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

// flowTable holds the flows, bounded by max. It is owned by one goroutine.
type flowTable struct {
	m            map[flowKey]*flow
	open, closed flowList
	free         []*flow // released flows, reused before allocating
	max          int
	pool         segPool // room for the timed segments of large flights

	// Counters, read concurrently by Engine.Stats.
	evicted, expired, created, active atomic.Uint64
}

func newFlowTable(max int) *flowTable {
	return &flowTable{m: make(map[flowKey]*flow, min(max, 1024)), max: max, pool: segPool{max: extMax(max)}}
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

// flowChunk is how many flows are allocated at once when the free list is
// empty.
const flowChunk = 64

// get returns the flow for k, creating it (and evicting the least recently
// seen flow when the table is full) if create is set. It does not allocate
// in steady state.
func (t *flowTable) get(k flowKey, create bool) *flow {
	if f := t.m[k]; f != nil || !create {
		return f
	}
	var f *flow
	if len(t.m) >= t.max {
		// Reuse the least recently seen flow, closed ones first.
		f = t.closed.tail
		if f == nil {
			f = t.open.tail
		}
		t.unlink(f)
		t.evicted.Add(1)
	} else {
		if len(t.free) == 0 {
			chunk := make([]flow, flowChunk)
			for i := range chunk {
				t.free = append(t.free, &chunk[i])
			}
		}
		f = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
	}
	// The counters go first: an atomic write waits for the writes before
	// it, and those below go to cold memory in a flood of new flows.
	t.created.Add(1)
	t.active.Store(uint64(len(t.m) + 1))
	f.key, f.prev, f.next, f.lastSeen, f.closed = k, nil, nil, 0, false
	f.dir, f.peer, f.peerGen, f.seen = DirUnknown, nil, 0, [2]lastSegment{}
	f.conn++ // pending SYNs of the flow's previous use no longer match
	f.rtt.reset(false, &t.pool)
	t.m[k] = f
	t.open.pushFront(f)
	return f
}

// touch marks f as seen at time now and moves it to the front of its list,
// the closed one if closed.
func (t *flowTable) touch(f *flow, now int64, closed bool) {
	if f.closed {
		t.closed.remove(f)
	} else {
		t.open.remove(f)
	}
	f.closed = closed
	f.lastSeen = now
	if closed {
		t.closed.pushFront(f)
	} else {
		t.open.pushFront(f)
	}
}

// unlink removes f from its list and the map.
func (t *flowTable) unlink(f *flow) {
	if f.closed {
		t.closed.remove(f)
	} else {
		t.open.remove(f)
	}
	delete(t.m, f.key)
}

// release removes f and puts it on the free list.
func (t *flowTable) release(f *flow) {
	t.unlink(f)
	if f.rtt.ext != nil {
		t.pool.put(f.rtt.ext)
		f.rtt.ext, f.rtt.nseg = nil, 0
	}
	t.free = append(t.free, f)
	t.active.Store(uint64(len(t.m)))
}

// expire removes open flows idle since before idleBefore and closed flows
// idle since before closedBefore.
func (t *flowTable) expire(idleBefore, closedBefore int64) {
	for f := t.open.tail; f != nil && f.lastSeen < idleBefore; f = t.open.tail {
		t.release(f)
		t.expired.Add(1)
	}
	for f := t.closed.tail; f != nil && f.lastSeen < closedBefore; f = t.closed.tail {
		t.release(f)
		t.expired.Add(1)
	}
}
