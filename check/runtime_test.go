package check

import (
	"maps"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/google/go-cmp/cmp"
)

// runtimeSeed is Datadog's mapping of the Go runtime metrics to their
// OpenTelemetry equivalents ("OpenTelemetry Go Runtime Metrics"); "N/A"
// means there is none.
var runtimeSeed = map[string]string{
	"runtime.go.num_goroutine":                "process.runtime.go.goroutines",
	"runtime.go.num_cgo_call":                 "process.runtime.go.cgo.calls",
	"runtime.go.mem_stats.lookups":            "process.runtime.go.mem.lookups",
	"runtime.go.mem_stats.heap_alloc":         "process.runtime.go.mem.heap_alloc",
	"runtime.go.mem_stats.heap_sys":           "process.runtime.go.mem.heap_sys",
	"runtime.go.mem_stats.heap_idle":          "process.runtime.go.mem.heap_idle",
	"runtime.go.mem_stats.heap_inuse":         "process.runtime.go.mem.heap_inuse",
	"runtime.go.mem_stats.heap_released":      "process.runtime.go.mem.heap_released",
	"runtime.go.mem_stats.heap_objects":       "process.runtime.go.mem.heap_objects",
	"runtime.go.mem_stats.pause_total_ns":     "process.runtime.go.gc.pause_total_ns",
	"runtime.go.mem_stats.num_gc":             "process.runtime.go.gc.count",
	"runtime.go.num_cpu":                      "N/A",
	"runtime.go.mem_stats.alloc":              "N/A",
	"runtime.go.mem_stats.total_alloc":        "N/A",
	"runtime.go.mem_stats.sys":                "N/A",
	"runtime.go.mem_stats.mallocs":            "N/A",
	"runtime.go.mem_stats.frees":              "N/A",
	"runtime.go.mem_stats.stack_inuse":        "N/A",
	"runtime.go.mem_stats.stack_sys":          "N/A",
	"runtime.go.mem_stats.m_span_inuse":       "N/A",
	"runtime.go.mem_stats.m_span_sys":         "N/A",
	"runtime.go.mem_stats.m_cache_inuse":      "N/A",
	"runtime.go.mem_stats.m_cache_sys":        "N/A",
	"runtime.go.mem_stats.buck_hash_sys":      "N/A",
	"runtime.go.mem_stats.gc_sys":             "N/A",
	"runtime.go.mem_stats.other_sys":          "N/A",
	"runtime.go.mem_stats.next_gc":            "N/A",
	"runtime.go.mem_stats.last_gc":            "N/A",
	"runtime.go.mem_stats.num_forced_gc":      "N/A",
	"runtime.go.mem_stats.gc_cpu_fraction":    "N/A",
	"runtime.go.gc_stats.pause_quantiles.min": "N/A",
	"runtime.go.gc_stats.pause_quantiles.25p": "N/A",
	"runtime.go.gc_stats.pause_quantiles.50p": "N/A",
	"runtime.go.gc_stats.pause_quantiles.75p": "N/A",
	"runtime.go.gc_stats.pause_quantiles.max": "N/A",
}

// TestRuntimeMetricsMatchSeed checks that RuntimeMetrics lists exactly the
// metrics of Datadog's table, all as gauges, and none of the check's own.
func TestRuntimeMetricsMatchSeed(t *testing.T) {
	want := map[string]string{}
	for name := range runtimeSeed {
		want[name] = TypeGauge
	}
	if diff := cmp.Diff(want, RuntimeMetrics()); diff != "" {
		t.Errorf("RuntimeMetrics (-seed +code):\n%s", diff)
	}
	for name := range RuntimeMetrics() {
		if _, ok := Metrics()[name]; ok {
			t.Errorf("%s is in both Metrics and RuntimeMetrics", name)
		}
	}
}

// TestRuntimeKeysSupported checks that the running Go supports every
// runtime/metrics key with the kind the collector reads, so that no
// metric is skipped.
func TestRuntimeKeysSupported(t *testing.T) {
	kinds := map[string]metrics.ValueKind{}
	for _, d := range metrics.All() {
		kinds[d.Name] = d.Kind
	}
	for i, key := range runtimeKeys {
		want := metrics.KindUint64
		if i == rmCPUGCTotal || i == rmCPUGCIdle || i == rmCPUTotal {
			want = metrics.KindFloat64
		}
		got, ok := kinds[key]
		if !ok {
			t.Errorf("%s: not supported by %s", key, runtime.Version())
		} else if got != want {
			t.Errorf("%s: kind %v, want %v", key, got, want)
		}
	}
}

// TestRuntimeCollectorSubmitsEachOnce checks that every Submit sends each
// metric of RuntimeMetrics exactly once, as a gauge, with the hostname and
// tags it was given.
func TestRuntimeCollectorSubmitsEachOnce(t *testing.T) {
	var r RuntimeCollector
	var rec Recorder
	tags := []string{"env:prod"}
	for range 3 {
		r.Submit(&rec, "host1", tags)
		rec.Commit()
	}
	want := map[string]int{}
	for name := range RuntimeMetrics() {
		want[name] = 1
	}
	for i, b := range rec.Batches() {
		got := map[string]int{}
		for _, s := range b.Series {
			got[s.Metric]++
			if s.Type != TypeGauge || s.Host != "host1" || !slices.Equal(s.Tags, tags) {
				t.Errorf("Submit %d: %s sent as a %s to %q with tags %q, want a gauge to %q with %q", i, s.Metric, s.Type, s.Host, s.Tags, "host1", tags)
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Submit %d: times each metric was sent (-want +got):\n%s", i, diff)
		}
	}
}

// TestRuntimeCollectorReadsOnce checks that Submit calls debug.ReadGCStats
// once and never runtime.ReadMemStats, whose stop-the-world pause shows in
// /sched/pauses/total/other:seconds.
func TestRuntimeCollectorReadsOnce(t *testing.T) {
	calls := 0
	r := RuntimeCollector{readGCStats: func(s *debug.GCStats) {
		calls++
		debug.ReadGCStats(s)
	}}
	const n = 10
	sample := []metrics.Sample{{Name: "/sched/pauses/total/other:seconds"}}
	otherPauses := func() uint64 {
		metrics.Read(sample)
		var total uint64
		for _, c := range sample[0].Value.Float64Histogram().Counts {
			total += c
		}
		return total
	}
	var pauses []uint64
	// Something else may stop the world once in a while; ReadMemStats in
	// Submit would do it in every attempt.
	for range 3 {
		before := otherPauses()
		for range n {
			r.Submit(nopSender{}, "", nil)
		}
		pauses = append(pauses, otherPauses()-before)
		if pauses[len(pauses)-1] == 0 {
			break
		}
	}
	if calls != n*len(pauses) {
		t.Errorf("%d Submits called ReadGCStats %d times, want once each", n*len(pauses), calls)
	}
	if !slices.Contains(pauses, 0) {
		t.Errorf("%d Submits stopped the world %v times (non-GC pauses in each attempt), want 0: is ReadMemStats called?", n, pauses)
	}
}

// TestRuntimeCollectorNoAllocs checks that Submit does not allocate once
// its buffers exist.
func TestRuntimeCollectorNoAllocs(t *testing.T) {
	var r RuntimeCollector
	tags := []string{"env:prod"}
	r.Submit(nopSender{}, "", tags)
	if n := testing.AllocsPerRun(50, func() { r.Submit(nopSender{}, "", tags) }); n != 0 {
		t.Errorf("Submit allocates %v times per call, want 0", n)
	}
}

// TestRuntimeCollectorMatchesMemStats compares every value with what
// runtime.ReadMemStats, debug.ReadGCStats and the runtime package report
// right after Submit: the values read through runtime/metrics equal the
// MemStats fields they stand for, within what the few allocations between
// the two reads change.
func TestRuntimeCollectorMatchesMemStats(t *testing.T) {
	live := make([]*[1 << 20]byte, 32) // 32 MiB kept live
	for i := range live {
		live[i] = new([1 << 20]byte)
	}
	var (
		r          RuntimeCollector
		got        mapSender
		ms         runtime.MemStats
		gc         = debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
		goroutines int
		cgoCalls   int64
	)
	r.Submit(nopSender{}, "", nil) // the collector's own first allocations
	// A GC between the two reads would change the GC statistics: retry
	// then. A GC also flushes the per-P allocation caches, so that
	// runtime/metrics counts every allocation made before it.
	for range 3 {
		runtime.GC()
		got = mapSender{}
		r.Submit(got, "", nil)
		runtime.ReadMemStats(&ms)
		debug.ReadGCStats(&gc)
		goroutines, cgoCalls = runtime.NumGoroutine(), runtime.NumCgoCall()
		if got[MetricGoNumGC] == float64(ms.NumGC) && gc.NumGC == int64(ms.NumGC) {
			break
		}
	}
	runtime.KeepAlive(live)

	const (
		exact   = 0
		bytes   = 1 << 20 // for byte values: the allocations between the reads
		objects = 10000
	)
	tests := []struct {
		name string
		want float64
		tol  float64
	}{
		{MetricGoNumGoroutine, float64(goroutines), 5},
		{MetricGoNumCgoCall, float64(cgoCalls), exact},
		{MetricGoNumCPU, float64(runtime.NumCPU()), exact},
		{MetricGoAlloc, float64(ms.Alloc), bytes},
		{MetricGoTotalAlloc, float64(ms.TotalAlloc), bytes},
		{MetricGoSys, float64(ms.Sys), bytes},
		{MetricGoLookups, float64(ms.Lookups), exact},
		{MetricGoMallocs, float64(ms.Mallocs), objects},
		{MetricGoFrees, float64(ms.Frees), objects},
		{MetricGoHeapAlloc, float64(ms.HeapAlloc), bytes},
		{MetricGoHeapSys, float64(ms.HeapSys), bytes},
		{MetricGoHeapIdle, float64(ms.HeapIdle), bytes},
		{MetricGoHeapInuse, float64(ms.HeapInuse), bytes},
		{MetricGoHeapReleased, float64(ms.HeapReleased), bytes},
		{MetricGoHeapObjects, float64(ms.HeapObjects), objects},
		{MetricGoStackInuse, float64(ms.StackInuse), bytes},
		{MetricGoStackSys, float64(ms.StackSys), bytes},
		{MetricGoMSpanInuse, float64(ms.MSpanInuse), bytes},
		{MetricGoMSpanSys, float64(ms.MSpanSys), bytes},
		{MetricGoMCacheInuse, float64(ms.MCacheInuse), bytes},
		{MetricGoMCacheSys, float64(ms.MCacheSys), bytes},
		{MetricGoBuckHashSys, float64(ms.BuckHashSys), bytes},
		{MetricGoGCSys, float64(ms.GCSys), bytes},
		{MetricGoOtherSys, float64(ms.OtherSys), bytes},
		{MetricGoNextGC, float64(ms.NextGC), exact},
		{MetricGoLastGC, float64(ms.LastGC), exact},
		{MetricGoPauseTotalNs, float64(ms.PauseTotalNs), exact},
		{MetricGoNumGC, float64(ms.NumGC), exact},
		{MetricGoNumForcedGC, float64(ms.NumForcedGC), exact},
		{MetricGoGCCPUFrac, ms.GCCPUFraction, 1e-9},
		{MetricGoPauseMin, float64(gc.PauseQuantiles[0]), exact},
		{MetricGoPause25p, float64(gc.PauseQuantiles[1]), exact},
		{MetricGoPause50p, float64(gc.PauseQuantiles[2]), exact},
		{MetricGoPause75p, float64(gc.PauseQuantiles[3]), exact},
		{MetricGoPauseMax, float64(gc.PauseQuantiles[4]), exact},
	}
	var names []string
	for _, tt := range tests {
		names = append(names, tt.name)
		t.Run(tt.name, func(t *testing.T) {
			v, ok := got[tt.name]
			if !ok {
				t.Fatal("not submitted")
			}
			if math.Abs(v-tt.want) > tt.tol {
				t.Errorf("got %.10g, the runtime says %.10g (difference %.4g, tolerance %g)", v, tt.want, v-tt.want, tt.tol)
			}
		})
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(RuntimeMetrics())), slices.Sorted(slices.Values(names))); diff != "" {
		t.Errorf("metrics compared (-RuntimeMetrics +compared):\n%s", diff)
	}
	if got[MetricGoHeapAlloc] < float64(len(live)<<20) {
		t.Errorf("heap_alloc %g with %d MiB live, want at least that", got[MetricGoHeapAlloc], len(live))
	}
}

// TestRuntimeCollectorValues checks what each value means by changing it.
func TestRuntimeCollectorValues(t *testing.T) {
	var r RuntimeCollector
	read := func() mapSender {
		m := mapSender{}
		r.Submit(m, "", nil)
		return m
	}

	t.Run("num_goroutine follows goroutines", func(t *testing.T) {
		const n = 100
		before := read()[MetricGoNumGoroutine]
		release := make(chan struct{})
		var started, exited sync.WaitGroup
		for range n {
			started.Add(1)
			exited.Go(func() {
				started.Done()
				<-release
			})
		}
		started.Wait()
		if got := read()[MetricGoNumGoroutine]; got < before+n-10 {
			t.Errorf("num_goroutine %v with %d more goroutines, want about %v", got, n, before+n)
		}
		close(release)
		exited.Wait()
		deadline := time.Now().Add(5 * time.Second)
		for {
			got := read()[MetricGoNumGoroutine]
			if got <= before+10 {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("num_goroutine %v after the %d goroutines exited, want about %v", got, n, before)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	})

	t.Run("num_gc and num_forced_gc count runtime.GC", func(t *testing.T) {
		before := read()
		runtime.GC()
		runtime.GC()
		after := read()
		for _, name := range []string{MetricGoNumGC, MetricGoNumForcedGC} {
			if after[name] < before[name]+2 {
				t.Errorf("%s went from %v to %v over 2 runtime.GC calls, want +2 at least", name, before[name], after[name])
			}
		}
	})

	t.Run("total_alloc and mallocs count allocations", func(t *testing.T) {
		const n, size = 20000, 64
		before := read()
		keep := make([]*[size]byte, n)
		for i := range keep {
			keep[i] = new([size]byte)
		}
		after := read()
		runtime.KeepAlive(keep)
		// runtime/metrics counts the allocations of a per-P cached span
		// when the span is returned: allow one span's worth of lag.
		if d := after[MetricGoTotalAlloc] - before[MetricGoTotalAlloc]; d < n*size/2 {
			t.Errorf("total_alloc rose by %v after allocating %d bytes", d, n*size)
		}
		if d := after[MetricGoMallocs] - before[MetricGoMallocs]; d < n/2 {
			t.Errorf("mallocs rose by %v after %d allocations", d, n)
		}
	})

	t.Run("last_gc is the end of the last GC in ns since the epoch", func(t *testing.T) {
		start := time.Now()
		runtime.GC()
		end := time.Now()
		got := read()[MetricGoLastGC]
		if lo, hi := float64(start.Add(-2*time.Second).UnixNano()), float64(end.Add(2*time.Second).UnixNano()); got < lo || got > hi {
			t.Errorf("last_gc %v (%v), want between %v and %v", got, time.Unix(0, int64(got)), start, end)
		}
	})

	t.Run("gc_cpu_fraction is a fraction", func(t *testing.T) {
		runtime.GC()
		if got := read()[MetricGoGCCPUFrac]; got < 0 || got > 1 {
			t.Errorf("gc_cpu_fraction %v, want in [0, 1]", got)
		}
	})

	t.Run("pause quantiles are ordered and positive", func(t *testing.T) {
		for range 5 {
			runtime.GC()
		}
		got := read()
		prev := 0.0
		for _, name := range runtimePauseQuantiles {
			if got[name] <= 0 || got[name] < prev {
				t.Errorf("%s %v after %v: want positive and not below the previous quantile", name, got[name], prev)
			}
			prev = got[name]
		}
		if got[MetricGoPauseTotalNs] < got[MetricGoPauseMax] {
			t.Errorf("pause_total_ns %v below the longest pause %v", got[MetricGoPauseTotalNs], got[MetricGoPauseMax])
		}
	})

	t.Run("num_cpu is runtime.NumCPU", func(t *testing.T) {
		if got := read()[MetricGoNumCPU]; got != float64(runtime.NumCPU()) {
			t.Errorf("num_cpu %v, want %d", got, runtime.NumCPU())
		}
	})
}

// TestRuntimeMetricsDoc checks docs/runtime-metrics.md: one table row for
// each metric, with the seed's OpenTelemetry equivalent ("none" for N/A)
// and the sources the code reads.
func TestRuntimeMetricsDoc(t *testing.T) {
	data, err := os.ReadFile("../docs/runtime-metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string][]string{
		MetricGoNumGoroutine: {"runtime.NumGoroutine"},
		MetricGoNumCPU:       {"runtime.NumCPU"},
		MetricGoLookups:      {"constant 0"},
		MetricGoGCCPUFrac:    {runtimeKeys[rmCPUGCTotal], runtimeKeys[rmCPUGCIdle], runtimeKeys[rmCPUTotal]},
		MetricGoLastGC:       {"debug.ReadGCStats", "LastGC"},
		MetricGoPauseTotalNs: {"debug.ReadGCStats", "PauseTotal"},
	}
	for _, name := range runtimePauseQuantiles {
		sources[name] = []string{"debug.ReadGCStats", "PauseQuantiles"}
	}
	for _, m := range runtimeSums {
		for _, k := range m.keys {
			sources[m.name] = append(sources[m.name], runtimeKeys[k])
		}
	}
	rows := map[string]int{}
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| `runtime.go.") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 4 {
			t.Errorf("line %d: %d cells, want 4 (metric, OpenTelemetry, meaning, source)", i+1, len(cells))
			continue
		}
		name := strings.Trim(cells[0], "`")
		rows[name]++
		otel, ok := runtimeSeed[name]
		if !ok {
			t.Errorf("line %d: %s is not a runtime metric", i+1, name)
			continue
		}
		if otel == "N/A" {
			otel = "none"
		} else {
			otel = "`" + otel + "`"
		}
		if cells[1] != otel {
			t.Errorf("line %d: %s: OpenTelemetry equivalent %q, the seed says %q", i+1, name, cells[1], otel)
		}
		if cells[2] == "" {
			t.Errorf("line %d: %s: no meaning", i+1, name)
		}
		for _, src := range sources[name] {
			if !strings.Contains(cells[3], src) {
				t.Errorf("line %d: %s: source %q does not name %s", i+1, name, cells[3], src)
			}
		}
	}
	for name := range RuntimeMetrics() {
		if rows[name] != 1 {
			t.Errorf("%s has %d rows, want 1", name, rows[name])
		}
	}
}

func BenchmarkRuntimeCollectorSubmit(b *testing.B) {
	var r RuntimeCollector
	b.ReportAllocs()
	for b.Loop() {
		r.Submit(nopSender{}, "", nil)
	}
}

// nopSender discards what it is sent.
type nopSender struct{}

func (nopSender) Gauge(string, float64, string, []string)                                        {}
func (nopSender) Count(string, float64, string, []string)                                        {}
func (nopSender) ServiceCheck(string, servicecheck.ServiceCheckStatus, string, []string, string) {}
func (nopSender) Commit()                                                                        {}
func (nopSender) HistogramBucket(string, int64, float64, float64, bool, string, []string, bool)  {}

// mapSender keeps the last value of each metric.
type mapSender map[string]float64

func (m mapSender) Gauge(metric string, v float64, _ string, _ []string)                          { m[metric] = v }
func (m mapSender) Count(metric string, v float64, _ string, _ []string)                          { m[metric] = v }
func (m mapSender) HistogramBucket(string, int64, float64, float64, bool, string, []string, bool) {}
func (mapSender) ServiceCheck(string, servicecheck.ServiceCheckStatus, string, []string, string)  {}
func (mapSender) Commit()                                                                         {}
