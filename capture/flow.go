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
	lastSeen   int64 // capture time, Unix ns
	closed     bool  // saw FIN or RST
	rtt        rttState
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

	// Counters, read concurrently by Engine.Stats.
	evicted, expired, created, active atomic.Uint64
}

func newFlowTable(max int) *flowTable {
	return &flowTable{m: make(map[flowKey]*flow, min(max, 1024)), max: max}
}

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
	f.rtt.reset(false)
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
