package capture

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// flowConn returns a connection from local port port of rttLocal to
// rttRemote.
func flowConn(tb testing.TB, e *Engine, port uint16) *conn {
	return newConn(tb, e, fmt.Sprintf("192.0.2.1:%d", port), rttRemote)
}

// flowState is what the flow tests check of one tracked flow.
type flowState struct {
	Port   uint16 // local port
	Closed bool
}

// flowStates returns the tracked flows, by local port. It checks that the
// table's index and LRU lists agree (checkFlowTable).
func flowStates(tb testing.TB, e *Engine) []flowState {
	tb.Helper()
	checkFlowTable(tb, e.flows)
	var out []flowState
	e.flows.each(func(f *flow) { out = append(out, flowState{f.key.local().Port(), f.closed}) })
	slices.SortFunc(out, func(a, b flowState) int { return int(a.Port) - int(b.Port) })
	return out
}

// checkFlowTable checks that every flow of ft's index is found under its
// key (so reachable from its home slot) with the hash its slot holds, and
// that the LRU lists hold exactly those flows, in order.
func checkFlowTable(tb testing.TB, ft *flowTable) {
	tb.Helper()
	count := 0
	for _, s := range ft.slots {
		if s.f == nil {
			continue
		}
		if ft.lookup(&s.f.key) != s.f || s.h != s.f.h {
			tb.Errorf("flow %v is not found under its key, or its slot's hash is not its own", s.f.key)
		}
		count++
	}
	if count != ft.n {
		tb.Errorf("index holds %d flows, its count says %d", count, ft.n)
	}
	n := 0
	for _, l := range []struct {
		list   *flowList
		closed bool
	}{{&ft.open, false}, {&ft.closed, true}} {
		i := 0
		var prev *flow
		for f := l.list.head; f != nil; f = f.next {
			if f.closed != l.closed || f.prev != prev || ft.lookup(&f.key) != f {
				tb.Errorf("flow %v misplaced in the closed=%v list", f.key, l.closed)
			}
			if prev != nil && prev.listed < f.listed {
				tb.Errorf("closed=%v list not in LRU order at %v", l.closed, f.key)
			}
			prev = f
			i++
		}
		if l.list.tail != prev || l.list.n != i {
			tb.Errorf("closed=%v list: tail or count (%d, walked %d) wrong", l.closed, l.list.n, i)
		}
		n += i
	}
	if n != ft.n || ft.n > ft.max {
		tb.Errorf("lists hold %d flows, index %d (max %d)", n, ft.n, ft.max)
	}
}

// flowStats is the flow part of Stats.
type flowStats struct {
	Flows, Created, Expired, Evicted uint64
}

func flowStatsOf(e *Engine) flowStats {
	st := e.Stats()
	return flowStats{st.Flows, st.FlowsCreated, st.FlowsExpired, st.FlowsEvicted}
}

func TestFlowExpire(t *testing.T) {
	const port = 40000
	data := segData(lISN+1, rISN+1, reqLen)
	ack := segACK(rISN+1, lISN+1+reqLen)
	fin := tseg{seq: lISN + 1 + reqLen, ack: rISN + 1, flags: FlagFIN | FlagACK}
	rst := tseg{seq: lISN + 1 + reqLen, flags: FlagRST}
	tests := []struct {
		name  string
		cfg   Config
		steps []step
		at    time.Duration // Expire at t0+at
		want  []flowState
		stats flowStats
	}{
		{
			name:  "open/idle-ttl-not-reached",
			steps: []step{stepOut(0, data)},
			at:    DefaultIdleTTL,
			want:  []flowState{{port, false}},
			stats: flowStats{Flows: 1, Created: 1},
		},
		{
			name:  "open/idle-ttl-passed",
			steps: []step{stepOut(0, data)},
			at:    DefaultIdleTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name:  "open/custom-idle-ttl",
			cfg:   Config{IdleTTL: 10 * time.Second},
			steps: []step{stepOut(0, data)},
			at:    10*time.Second + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			// Idle time counts from the last packet, in either direction.
			name:  "open/last-packet-counts",
			steps: []step{stepOut(0, data), stepIn(200*time.Second, ack)},
			at:    200*time.Second + DefaultIdleTTL,
			want:  []flowState{{port, false}},
			stats: flowStats{Flows: 1, Created: 1},
		},
		{
			name:  "open/last-packet-counts/passed",
			steps: []step{stepOut(0, data), stepIn(200*time.Second, ack)},
			at:    200*time.Second + DefaultIdleTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name:  "fin-out/exp-ttl-not-reached",
			steps: []step{stepOut(0, data), stepOut(time.Second, fin)},
			at:    time.Second + DefaultExpTTL,
			want:  []flowState{{port, true}},
			stats: flowStats{Flows: 1, Created: 1},
		},
		{
			name:  "fin-out/exp-ttl-passed",
			steps: []step{stepOut(0, data), stepOut(time.Second, fin)},
			at:    time.Second + DefaultExpTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name: "fin-in/exp-ttl-passed",
			steps: []step{stepOut(0, data), stepIn(time.Second,
				tseg{seq: rISN + 1, ack: lISN + 1 + reqLen, flags: FlagFIN | FlagACK})},
			at:    time.Second + DefaultExpTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name:  "rst-out/exp-ttl-passed",
			steps: []step{stepOut(0, data), stepOut(time.Second, rst)},
			at:    time.Second + DefaultExpTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name:  "rst-in/exp-ttl-passed",
			steps: []step{stepOut(0, data), stepIn(time.Second, tseg{seq: rISN + 1, flags: FlagRST})},
			at:    time.Second + DefaultExpTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			name:  "rst-in/exp-ttl-not-reached",
			steps: []step{stepOut(0, data), stepIn(time.Second, tseg{seq: rISN + 1, flags: FlagRST})},
			at:    time.Second + DefaultExpTTL,
			want:  []flowState{{port, true}},
			stats: flowStats{Flows: 1, Created: 1},
		},
		{
			name:  "fin/custom-exp-ttl",
			cfg:   Config{ExpTTL: 5 * time.Second},
			steps: []step{stepOut(0, data), stepOut(time.Second, fin)},
			at:    time.Second + 5*time.Second + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
		{
			// Packets after the FIN keep it closed: the peer's FIN-ACK and
			// the last ACK restart exp_ttl, not idle_ttl.
			name: "fin/packets-after-close",
			steps: []step{
				stepOut(0, data), stepOut(time.Second, fin),
				stepIn(2*time.Second, tseg{seq: rISN + 1, ack: lISN + 2 + reqLen, flags: FlagFIN | FlagACK}),
				stepOut(2*time.Second, segACK(lISN+2+reqLen, rISN+2)),
			},
			at:    2*time.Second + DefaultExpTTL + 1,
			stats: flowStats{Created: 1, Expired: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, tc.cfg, "192.0.2.1")
			flowConn(t, e, port).play(tc.steps)
			e.Expire(t0.Add(tc.at))
			if diff := cmp.Diff(tc.want, flowStates(t, e), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("flows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stats, flowStatsOf(e)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowSweep checks that Process expires flows by itself as capture
// time passes, without Expire being called.
func TestFlowSweep(t *testing.T) {
	tests := []struct {
		name string
		// first is sent on port 40000 at 0; the other flow, on port 40001,
		// sends a segment at each of times.
		first tseg
		times []time.Duration
		want  []flowState
		stats flowStats
	}{
		{
			name:  "idle-ttl-not-reached",
			first: segData(lISN+1, rISN+1, reqLen),
			times: []time.Duration{100 * time.Second, DefaultIdleTTL},
			want:  []flowState{{40000, false}, {40001, false}},
			stats: flowStats{Flows: 2, Created: 2},
		},
		{
			name:  "idle-ttl-passed",
			first: segData(lISN+1, rISN+1, reqLen),
			times: []time.Duration{100 * time.Second, DefaultIdleTTL + time.Second},
			want:  []flowState{{40001, false}},
			stats: flowStats{Flows: 1, Created: 2, Expired: 1},
		},
		{
			name:  "exp-ttl-passed",
			first: tseg{seq: lISN + 1, ack: rISN + 1, flags: FlagFIN | FlagACK},
			times: []time.Duration{30 * time.Second, DefaultExpTTL + time.Second},
			want:  []flowState{{40001, false}},
			stats: flowStats{Flows: 1, Created: 2, Expired: 1},
		},
		{
			// The sweep runs once a second of capture time: a flow goes
			// at most a second after its TTL ran out.
			name:  "within-a-second",
			first: segData(lISN+1, rISN+1, reqLen),
			times: []time.Duration{DefaultIdleTTL - time.Second/2, DefaultIdleTTL + time.Second + 1},
			want:  []flowState{{40001, false}},
			stats: flowStats{Flows: 1, Created: 2, Expired: 1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Config{}, "192.0.2.1")
			flowConn(t, e, 40000).play([]step{stepOut(0, tc.first)})
			other := flowConn(t, e, 40001)
			for i, at := range tc.times {
				other.play([]step{stepOut(at, segData(lISN+1+uint32(i), rISN+1, 1))})
			}
			if diff := cmp.Diff(tc.want, flowStates(t, e)); diff != "" {
				t.Errorf("flows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stats, flowStatsOf(e)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowEvict checks the max_flows cap: when the table is full, a new
// flow evicts the least recently seen closed flow, or else the least
// recently seen open one, and each eviction is counted.
func TestFlowEvict(t *testing.T) {
	// ev is one event: at second at, port sends (or receives, if in) a
	// segment with flags.
	type ev struct {
		at    int
		port  uint16
		in    bool
		flags uint8
	}
	tests := []struct {
		name     string
		maxFlows int
		events   []ev
		want     []flowState
		stats    flowStats
	}{
		{
			name:     "least-recently-seen",
			maxFlows: 3,
			events: []ev{
				{0, 1, false, FlagACK}, {1, 2, false, FlagACK}, {2, 3, false, FlagACK},
				{3, 1, true, FlagACK}, // an incoming segment counts as seen
				{4, 4, false, FlagACK},
			},
			want:  []flowState{{1, false}, {3, false}, {4, false}},
			stats: flowStats{Flows: 3, Created: 4, Evicted: 1},
		},
		{
			// A flow seen since it was listed gets a second chance: the
			// flows of a flood of new ones, seen once, go first.
			name:     "second-chance",
			maxFlows: 3,
			events: []ev{
				{0, 1, false, FlagACK}, {1, 1, true, FlagACK},
				{2, 2, false, FlagACK}, {3, 3, false, FlagACK},
				{4, 4, false, FlagACK}, // 1 moves to the front; evicts 2
				{5, 5, false, FlagACK}, // evicts 3
			},
			want:  []flowState{{1, false}, {4, false}, {5, false}},
			stats: flowStats{Flows: 3, Created: 5, Evicted: 2},
		},
		{
			name:     "closed-first",
			maxFlows: 3,
			events: []ev{
				{0, 1, false, FlagACK}, {1, 2, false, FlagACK}, {2, 3, false, FlagACK},
				{3, 3, false, FlagFIN | FlagACK}, // 3 closes; 1 is the oldest open
				{4, 4, false, FlagACK},           // evicts 3
				{5, 5, false, FlagACK},           // evicts 1
				{6, 2, true, FlagRST},            // 2 closes
				{7, 6, false, FlagACK},           // evicts 2 though 4 is older
			},
			want:  []flowState{{4, false}, {5, false}, {6, false}},
			stats: flowStats{Flows: 3, Created: 6, Evicted: 3},
		},
		{
			name:     "oldest-closed-first",
			maxFlows: 3,
			events: []ev{
				{0, 1, false, FlagACK}, {1, 2, false, FlagACK}, {2, 3, false, FlagACK},
				{3, 2, false, FlagFIN | FlagACK},
				{4, 1, false, FlagFIN | FlagACK},
				{5, 4, false, FlagACK}, // evicts 2, closed longest
			},
			want:  []flowState{{1, true}, {3, false}, {4, false}},
			stats: flowStats{Flows: 3, Created: 4, Evicted: 1},
		},
		{
			// An RST creates no flow, so it evicts none; nor does an
			// incoming segment.
			name:     "rst-and-incoming-evict-nothing",
			maxFlows: 1,
			events: []ev{
				{0, 1, false, FlagACK},
				{1, 2, false, FlagRST},
				{2, 3, true, FlagACK},
			},
			want:  []flowState{{1, false}},
			stats: flowStats{Flows: 1, Created: 1},
		},
		{
			name:     "max-flows-1",
			maxFlows: 1,
			events:   []ev{{0, 1, false, FlagACK}, {1, 2, false, FlagACK}, {2, 3, false, FlagSYN}},
			want:     []flowState{{3, false}},
			stats:    flowStats{Flows: 1, Created: 3, Evicted: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := newTestEngine(t, Config{MaxFlows: tc.maxFlows}, "192.0.2.1")
			for _, v := range tc.events {
				s := tseg{seq: lISN + 1, ack: rISN + 1, flags: v.flags}
				if v.in {
					s.seq, s.ack = s.ack, s.seq
				}
				flowConn(t, e, v.port).play([]step{{at: time.Duration(v.at) * time.Second, in: v.in, seg: s}})
			}
			if diff := cmp.Diff(tc.want, flowStates(t, e)); diff != "" {
				t.Errorf("flows (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stats, flowStatsOf(e)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowEvictMany fills a small table with many flows and checks the
// counters add up and the table stays within its cap.
func TestFlowEvictMany(t *testing.T) {
	const maxFlows, n = 100, 1000
	e, _ := newTestEngine(t, Config{MaxFlows: maxFlows}, "192.0.2.1")
	for i := range n {
		c := flowConn(t, e, uint16(10000+i))
		c.play([]step{stepOut(time.Duration(i)*time.Millisecond, segData(lISN+1, rISN+1, 10))})
		if i%3 == 0 {
			c.play([]step{stepOut(time.Duration(i)*time.Millisecond, tseg{seq: lISN + 11, ack: rISN + 1, flags: FlagFIN | FlagACK})})
		}
	}
	got := flowStates(t, e)
	if len(got) != maxFlows {
		t.Fatalf("%d flows tracked, want %d", len(got), maxFlows)
	}
	if last := got[len(got)-1]; last.Port != 10000+n-1 {
		t.Errorf("newest flow (port %d) evicted; newest left is %d", 10000+n-1, last.Port)
	}
	want := flowStats{Flows: maxFlows, Created: n, Evicted: n - maxFlows}
	if diff := cmp.Diff(want, flowStatsOf(e)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

// TestFlowReuse checks a 4-tuple used again after its connection closed:
// the new SYN reopens the flow and starts its estimators afresh.
func TestFlowReuse(t *testing.T) {
	const isn2 = lISN + 1_000_000
	// first is a connection that sends a request and closes with an RST,
	// its request never acknowledged, at 0-1 s.
	first := concat(script(false).activeOpen(ms(20)), []step{
		stepOut(ms(100), segData(lISN+1, rISN+1, reqLen)),
		stepOut(time.Second, tseg{seq: lISN + 1 + reqLen, flags: FlagRST}),
	})
	// second opens a new connection at `at`. Its ISN is chosen so that
	// the SYN-ACK's ACK equals the end of the first connection's
	// unacknowledged request: a stale record would match it.
	second := func(at time.Duration, isn uint32) []step {
		return []step{
			stepOut(at, segSYN(isn)),
			stepIn(at+ms(30), segSYNACK(rISN+7, isn+1)),
			stepOut(at+ms(30), segACK(isn+1, rISN+8)),
			stepOut(at+ms(40), segData(isn+1, rISN+8, reqLen)),
			stepIn(at+ms(70), segData(rISN+8, isn+1+reqLen, respLen)),
		}
	}
	hs30 := msample{MethodHandshake, ms(30)}
	sa30 := msample{MethodSeqAck, ms(30)}
	tests := []struct {
		name    string
		cfg     Config
		between time.Duration // Expire at t0+between after first, if set
		second  []step
		expire  time.Duration // Expire at t0+expire after second, if set
		want    []msample
		stats   flowStats
		wantNow []flowState
	}{
		{
			name:    "reopened-before-expiry",
			second:  second(10*time.Second, lISN+reqLen),
			want:    []msample{hs20, hs30, sa30},
			stats:   flowStats{Flows: 1, Created: 1},
			wantNow: []flowState{{40000, false}},
		},
		{
			// Without the handshake method the new SYN itself is timed,
			// not the old request whose end the SYN-ACK also acknowledges.
			name:    "reopened/seqack-only",
			cfg:     Config{Methods: onlySeqAck},
			second:  second(10*time.Second, lISN+reqLen),
			want:    []msample{sa20, sa30, sa30},
			stats:   flowStats{Flows: 1, Created: 1},
			wantNow: []flowState{{40000, false}},
		},
		{
			// Reopened, the flow is open again: exp_ttl no longer applies.
			name:    "reopened-flow-is-open",
			second:  second(10*time.Second, isn2),
			expire:  10*time.Second + DefaultExpTTL + time.Second,
			want:    []msample{hs20, hs30, sa30},
			stats:   flowStats{Flows: 1, Created: 1},
			wantNow: []flowState{{40000, false}},
		},
		{
			name:    "after-expiry",
			between: DefaultExpTTL + 2*time.Second,
			second:  second(DefaultExpTTL+2*time.Second, isn2),
			want:    []msample{hs20, hs30, sa30},
			stats:   flowStats{Flows: 1, Created: 2, Expired: 1},
			wantNow: []flowState{{40000, false}},
		},
		{
			// The local side accepts the new connection: its SYN-ACK
			// reopens the flow.
			name: "reopened-by-syn-ack",
			second: []step{
				stepIn(10*time.Second, segSYN(rISN+7)),
				stepOut(10*time.Second, segSYNACK(isn2, rISN+8)),
				stepIn(10*time.Second+ms(30), segACK(rISN+8, isn2+1)),
			},
			want:    []msample{hs20, hs30},
			stats:   flowStats{Flows: 1, Created: 1},
			wantNow: []flowState{{40000, false}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, rec := newTestEngine(t, tc.cfg, "192.0.2.1")
			c := flowConn(t, e, 40000)
			c.play(first)
			if tc.between != 0 {
				e.Expire(t0.Add(tc.between))
			}
			c.play(tc.second)
			if tc.expire != 0 {
				e.Expire(t0.Add(tc.expire))
			}
			if diff := cmp.Diff(tc.want, rec.got()); diff != "" {
				t.Errorf("samples (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stats, flowStatsOf(e)); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantNow, flowStates(t, e)); diff != "" {
				t.Errorf("flows (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFlowBytes checks that FlowBytes, the documented memory of one
// tracked flow, covers what a full table really takes on the heap (flow
// structs, map entries, free list); FlowBytes also covers the growth of a
// map churned by evictions (TestFloodSYNChurn).
func TestFlowBytes(t *testing.T) {
	for _, n := range []int{1000, 5000, DefaultMaxFlows} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ft := newFlowTable(n)
			for i := range n {
				a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
				k := makeFlowKey(a, 40000, a, 443)
				ft.get(&k, true, 0)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			runtime.KeepAlive(ft)
			per := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			t.Logf("%d flows: %.0f bytes each (flow struct %d)", n, per, unsafe.Sizeof(flow{}))
			if per > FlowBytes || per < FlowBytes/2 {
				t.Errorf("a flow takes %.0f bytes of heap, FlowBytes says %d", per, FlowBytes)
			}
		})
	}
}

// TestFlowLayout checks that the flows a table hands out start at a cache
// line, that the fields every packet reads, with the first record of a
// timed segment (all that request/response needs), fit in the first three
// lines of a flow, and that the cold fields a SYN writes share one line.
func TestFlowLayout(t *testing.T) {
	var f flow
	if hot := unsafe.Offsetof(f.rtt) + unsafe.Offsetof(f.rtt.inl) + unsafe.Sizeof(seg{}); hot > 3*cacheLine {
		t.Errorf("the hot fields take %d bytes, more than 3 cache lines", hot)
	}
	if first, last := unsafe.Offsetof(f.rtt)+unsafe.Offsetof(f.rtt.hsFirst), unsafe.Offsetof(f.synPos)+unsafe.Sizeof(f.synPos)-1; first/cacheLine != last/cacheLine {
		t.Errorf("what a SYN writes past the records, bytes %d to %d, takes more than one cache line", first, last)
	}
	if s := unsafe.Sizeof(flowBox{}); s%cacheLine != 0 {
		t.Errorf("flowBox is %d bytes, not whole cache lines", s)
	}
	ft := newFlowTable(1000)
	for i := range 200 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		k := makeFlowKey(a, 40000, a, 443)
		f := ft.get(&k, true, 0)
		if p := uintptr(unsafe.Pointer(f)); p%cacheLine != 0 {
			t.Fatalf("flow %d at %#x, not at a cache line", i, p)
		}
	}
}

// TestFlowIndexModel drives a small table through random creations (which
// evict once it is full), closes, releases and expiry, and checks after
// each step that the index holds exactly the flows of the lists, each
// reachable from its home slot (checkFlowTable): eviction and release
// shift slots back (flowTable.removeSlot), and a creation that evicts
// finds its key's slot again after that.
func TestFlowIndexModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 0x9e3779b97f4a7c15} {
		rng := rand.New(rand.NewPCG(seed, 0))
		ft := newFlowTable(16)
		ft.seed = seed | 1
		keys := make([]flowKey, 200)
		for i := range keys {
			a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
			keys[i] = makeFlowKey(netip.MustParseAddr("192.0.2.1"), uint16(40000+i%7), a, 443)
		}
		now := int64(0)
		for step := range 20000 {
			now += int64(rng.IntN(3))
			k := &keys[rng.IntN(len(keys))]
			switch op := rng.IntN(100); {
			case op < 80:
				f := ft.get(k, true, now)
				if f.key != *k {
					t.Fatalf("seed %d step %d: get returned the flow of another key", seed, step)
				}
				ft.touch(f, now, rng.IntN(8) == 0)
			case op < 98:
				if f := ft.lookup(k); f != nil {
					ft.release(f)
				}
			default:
				ft.expire(now-200, now-50)
			}
			if checkFlowTable(t, ft); t.Failed() {
				t.Fatalf("seed %d step %d: the table is inconsistent", seed, step)
			}
		}
	}
}
