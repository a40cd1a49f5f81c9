package capture

import (
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"
)

// The mixes BenchmarkManyFlows compares, and how many rounds it takes.
var (
	manyFlowsMixes = []string{"ipv4-bulk", "one-flow-cold-frames", "many-flows", "many-flows-scattered"}
	manyFlowsModes = []struct {
		name, label string
		batch       int // frames per batch; 0: frame by frame
	}{{"frame", "frame by frame", 0}, {"batch", "in batches", processBatchSize}}
)

const (
	manyFlowsRounds = 25
	// manyFlowsWarm is the frames each mix runs, untimed, before each of
	// its timed runs, to put its own flows and frames back in the cache
	// the other mixes used in between (a cycle of the 20,000-frame mixes).
	manyFlowsWarm = 20000
	// manyFlowsTimed is the frames of each timed run: three cycles of the
	// 20,000-frame mixes, a few milliseconds.
	manyFlowsTimed = 60000
)

// BenchmarkManyFlows measures, in one run, the mixes of BenchmarkProcess
// that hold 10,000 flows (many-flows, and many-flows-scattered with its
// flows in no order in memory) against one flow (ipv4-bulk, the baseline of the goal,
// and one-flow-cold-frames, one flow on the same cold frames),
// frame by frame and in batches of processBatchSize. The mixes take
// turns, manyFlowsRounds times, in an order reversed every round, and it
// reports each mix's median wall time per packet and the median over the
// rounds of each ratio to ipv4-bulk (x-bulk), so that the machine's speed,
// which moves from minute to minute on a shared VM, cancels out. The goal
// is many-flows at most 1.3 times ipv4-bulk. Run it once:
//
//	go test -run='^$' -bench=BenchmarkManyFlows -benchtime=1x ./capture/
func BenchmarkManyFlows(b *testing.B) {
	type run struct {
		name string
		m    *mix
		e    *Engine
	}
	var runs []run
	for _, name := range manyFlowsMixes {
		i := slices.IndexFunc(mixCases, func(c mixCase) bool { return c.name == name })
		m := mixCases[i].build(b)
		runs = append(runs, run{name, m, mixEngine(b, m)})
	}
	// ns[mode][mix][round]
	ns := make([][][]float64, len(manyFlowsModes))
	for i := range ns {
		ns[i] = make([][]float64, len(runs))
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for b.Loop() {
		for round := range manyFlowsRounds {
			for j := range runs {
				if round%2 == 1 {
					j = len(runs) - 1 - j
				}
				r := &runs[j]
				for mi, mode := range manyFlowsModes {
					processFrames(r.m, r.e, manyFlowsWarm, mode.batch)
					start := time.Now()
					processFrames(r.m, r.e, manyFlowsTimed, mode.batch)
					ns[mi][j] = append(ns[mi][j], float64(time.Since(start).Nanoseconds())/manyFlowsTimed)
				}
			}
		}
	}
	for _, r := range runs {
		if st := r.e.Stats(); st.DecodeErrors != 0 || st.SamplesDiscarded != 0 {
			b.Fatalf("%s: stats: %v", r.name, st)
		}
	}
	for mi, mode := range manyFlowsModes {
		bulk := ns[mi][0]
		line := "per packet, " + mode.label + ":"
		for j, r := range runs {
			ratios := make([]float64, len(bulk))
			for k := range bulk {
				ratios[k] = ns[mi][j][k] / bulk[k]
			}
			med := medianOf(ns[mi][j])
			b.ReportMetric(med, mode.name+"-"+r.name+"-ns/pkt")
			if j > 0 {
				b.ReportMetric(medianOf(ratios), mode.name+"-"+r.name+"-x-bulk")
				line += fmt.Sprintf(" %s %.1f ns (%.2f times),", r.name, med, medianOf(ratios))
			} else {
				line += fmt.Sprintf(" %s %.1f ns,", r.name, med)
			}
		}
		fmt.Println(line[:len(line)-1])
	}
}

// processFrames runs n frames of m through e, in batches of batch frames
// or frame by frame if batch is 0.
func processFrames(m *mix, e *Engine, n, batch int) {
	if batch == 0 {
		for range n {
			m.processNext(e)
		}
		return
	}
	for n > 0 {
		k := min(n, batch)
		e.BeginBatch()
		for range k {
			m.processNext(e)
		}
		e.EndBatch()
		n -= k
	}
}

// BenchmarkFlowCount measures the engine's cost per packet, in batches of
// processBatchSize, by the number of flows that take turns (the flows of
// many-flows, 20,000 frames, and 60,000 for 30,000 flows), with the flows
// in memory in the order their packets visit them (in-order), as
// many-flows has them, or in no order (scattered), as a table that has
// churned holds them: what a packet costs on a host with that many
// active connections. The frames are as many and as cold for every count:
// the difference is the flows'.
//
//	go test -run='^$' -bench=BenchmarkFlowCount -count=3 ./capture/
func BenchmarkFlowCount(b *testing.B) {
	for _, n := range []int{1, 100, 1000, 3000, 10000, 30000} {
		for _, scatter := range []bool{false, true} {
			if n == 1 && scatter {
				continue
			}
			name := fmt.Sprintf("%d-in-order", n)
			if scatter {
				name = fmt.Sprintf("%d-scattered", n)
			}
			b.Run(name, func(b *testing.B) {
				m := buildFlows(b, n, max(10000, n))
				m.scatter = scatter
				e := mixEngine(b, m)
				before := e.Stats()
				b.ReportAllocs()
				b.ResetTimer()
				processFrames(m, e, b.N, processBatchSize)
				b.StopTimer()
				after := e.Stats()
				if got, want := after.Samples-before.Samples, uint64(b.N/2); got+1 < want || after.Flows != uint64(n) {
					b.Fatalf("%d samples in %d frames, want %d; stats: %v", got, b.N, want, after)
				}
			})
		}
	}
}
