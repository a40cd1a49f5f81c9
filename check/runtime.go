package check

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The Go runtime metrics, named and computed as dd-trace-go's runtime
// metrics (ddtrace/tracer reportRuntimeMetrics) so that they fill the
// Datadog Go runtime dashboards. Every one is a gauge; the cumulative ones
// (total_alloc, mallocs, frees, num_gc, num_forced_gc, pause_total_ns,
// num_cgo_call) are gauges of a running total, as dd-trace-go sends them.
const (
	MetricGoNumGoroutine = "runtime.go.num_goroutine"
	MetricGoNumCgoCall   = "runtime.go.num_cgo_call"
	MetricGoNumCPU       = "runtime.go.num_cpu"

	MetricGoAlloc        = "runtime.go.mem_stats.alloc"
	MetricGoTotalAlloc   = "runtime.go.mem_stats.total_alloc"
	MetricGoSys          = "runtime.go.mem_stats.sys"
	MetricGoLookups      = "runtime.go.mem_stats.lookups"
	MetricGoMallocs      = "runtime.go.mem_stats.mallocs"
	MetricGoFrees        = "runtime.go.mem_stats.frees"
	MetricGoHeapAlloc    = "runtime.go.mem_stats.heap_alloc"
	MetricGoHeapSys      = "runtime.go.mem_stats.heap_sys"
	MetricGoHeapIdle     = "runtime.go.mem_stats.heap_idle"
	MetricGoHeapInuse    = "runtime.go.mem_stats.heap_inuse"
	MetricGoHeapReleased = "runtime.go.mem_stats.heap_released"
	MetricGoHeapObjects  = "runtime.go.mem_stats.heap_objects"
	MetricGoStackInuse   = "runtime.go.mem_stats.stack_inuse"
	MetricGoStackSys     = "runtime.go.mem_stats.stack_sys"
	MetricGoMSpanInuse   = "runtime.go.mem_stats.m_span_inuse"
	MetricGoMSpanSys     = "runtime.go.mem_stats.m_span_sys"
	MetricGoMCacheInuse  = "runtime.go.mem_stats.m_cache_inuse"
	MetricGoMCacheSys    = "runtime.go.mem_stats.m_cache_sys"
	MetricGoBuckHashSys  = "runtime.go.mem_stats.buck_hash_sys"
	MetricGoGCSys        = "runtime.go.mem_stats.gc_sys"
	MetricGoOtherSys     = "runtime.go.mem_stats.other_sys"
	MetricGoNextGC       = "runtime.go.mem_stats.next_gc"
	MetricGoLastGC       = "runtime.go.mem_stats.last_gc"        // ns since the Unix epoch; 0 before the first GC
	MetricGoPauseTotalNs = "runtime.go.mem_stats.pause_total_ns" // ns
	MetricGoNumGC        = "runtime.go.mem_stats.num_gc"
	MetricGoNumForcedGC  = "runtime.go.mem_stats.num_forced_gc"
	MetricGoGCCPUFrac    = "runtime.go.mem_stats.gc_cpu_fraction"

	MetricGoPauseMin = "runtime.go.gc_stats.pause_quantiles.min" // ns
	MetricGoPause25p = "runtime.go.gc_stats.pause_quantiles.25p"
	MetricGoPause50p = "runtime.go.gc_stats.pause_quantiles.50p"
	MetricGoPause75p = "runtime.go.gc_stats.pause_quantiles.75p"
	MetricGoPauseMax = "runtime.go.gc_stats.pause_quantiles.max"
)

// runtimePauseQuantiles are the pause quantile metrics, in the order
// debug.ReadGCStats fills a PauseQuantiles slice of length 5: minimum,
// 25th, 50th and 75th percentiles, maximum.
var runtimePauseQuantiles = [5]string{MetricGoPauseMin, MetricGoPause25p, MetricGoPause50p, MetricGoPause75p, MetricGoPauseMax}

// Indices of the runtime/metrics samples a RuntimeCollector reads.
const (
	rmCgoCalls      = iota // /cgo/go-to-c-calls:calls
	rmHeapObjects          // /memory/classes/heap/objects:bytes
	rmHeapUnused           // /memory/classes/heap/unused:bytes
	rmHeapFree             // /memory/classes/heap/free:bytes
	rmHeapReleased         // /memory/classes/heap/released:bytes
	rmHeapStacks           // /memory/classes/heap/stacks:bytes
	rmOSStacks             // /memory/classes/os-stacks:bytes
	rmMSpanInuse           // /memory/classes/metadata/mspan/inuse:bytes
	rmMSpanFree            // /memory/classes/metadata/mspan/free:bytes
	rmMCacheInuse          // /memory/classes/metadata/mcache/inuse:bytes
	rmMCacheFree           // /memory/classes/metadata/mcache/free:bytes
	rmMetadataOther        // /memory/classes/metadata/other:bytes
	rmProfBuckets          // /memory/classes/profiling/buckets:bytes
	rmOther                // /memory/classes/other:bytes
	rmTotal                // /memory/classes/total:bytes
	rmAllocsBytes          // /gc/heap/allocs:bytes
	rmAllocsObjects        // /gc/heap/allocs:objects
	rmFreesObjects         // /gc/heap/frees:objects
	rmTinyAllocs           // /gc/heap/tiny/allocs:objects
	rmHeapObjCount         // /gc/heap/objects:objects
	rmHeapGoal             // /gc/heap/goal:bytes
	rmGCCycles             // /gc/cycles/total:gc-cycles
	rmGCForced             // /gc/cycles/forced:gc-cycles
	rmCPUGCTotal           // /cpu/classes/gc/total:cpu-seconds
	rmCPUGCIdle            // /cpu/classes/gc/mark/idle:cpu-seconds
	rmCPUTotal             // /cpu/classes/total:cpu-seconds
	rmCount
)

// runtimeKeys are the runtime/metrics keys, by index.
var runtimeKeys = [rmCount]string{
	rmCgoCalls:      "/cgo/go-to-c-calls:calls",
	rmHeapObjects:   "/memory/classes/heap/objects:bytes",
	rmHeapUnused:    "/memory/classes/heap/unused:bytes",
	rmHeapFree:      "/memory/classes/heap/free:bytes",
	rmHeapReleased:  "/memory/classes/heap/released:bytes",
	rmHeapStacks:    "/memory/classes/heap/stacks:bytes",
	rmOSStacks:      "/memory/classes/os-stacks:bytes",
	rmMSpanInuse:    "/memory/classes/metadata/mspan/inuse:bytes",
	rmMSpanFree:     "/memory/classes/metadata/mspan/free:bytes",
	rmMCacheInuse:   "/memory/classes/metadata/mcache/inuse:bytes",
	rmMCacheFree:    "/memory/classes/metadata/mcache/free:bytes",
	rmMetadataOther: "/memory/classes/metadata/other:bytes",
	rmProfBuckets:   "/memory/classes/profiling/buckets:bytes",
	rmOther:         "/memory/classes/other:bytes",
	rmTotal:         "/memory/classes/total:bytes",
	rmAllocsBytes:   "/gc/heap/allocs:bytes",
	rmAllocsObjects: "/gc/heap/allocs:objects",
	rmFreesObjects:  "/gc/heap/frees:objects",
	rmTinyAllocs:    "/gc/heap/tiny/allocs:objects",
	rmHeapObjCount:  "/gc/heap/objects:objects",
	rmHeapGoal:      "/gc/heap/goal:bytes",
	rmGCCycles:      "/gc/cycles/total:gc-cycles",
	rmGCForced:      "/gc/cycles/forced:gc-cycles",
	rmCPUGCTotal:    "/cpu/classes/gc/total:cpu-seconds",
	rmCPUGCIdle:     "/cpu/classes/gc/mark/idle:cpu-seconds",
	rmCPUTotal:      "/cpu/classes/total:cpu-seconds",
}

// runtimeSums are the metrics that are a sum of runtime/metrics uint64
// values. Each equals the runtime.MemStats field of the same name: the
// equivalences are those the Go runtime asserts between MemStats and
// runtime/metrics (runtime/metrics_test.go TestReadMetrics, and
// readmemstats_m in runtime/mstats.go).
var runtimeSums = [...]struct {
	name string
	keys []int
}{
	// NumCgoCall.
	{MetricGoNumCgoCall, []int{rmCgoCalls}},
	// Alloc and HeapAlloc: live and not yet swept heap objects.
	{MetricGoAlloc, []int{rmHeapObjects}},
	{MetricGoHeapAlloc, []int{rmHeapObjects}},
	// TotalAlloc.
	{MetricGoTotalAlloc, []int{rmAllocsBytes}},
	// Sys: the sum of every /memory/classes metric.
	{MetricGoSys, []int{rmTotal}},
	// Mallocs and Frees: MemStats counts each tiny allocation as both a
	// malloc and a free; runtime/metrics counts only their 16-byte blocks
	// in allocs and frees, and the allocations in tiny/allocs.
	{MetricGoMallocs, []int{rmAllocsObjects, rmTinyAllocs}},
	{MetricGoFrees, []int{rmFreesObjects, rmTinyAllocs}},
	// HeapSys = HeapInuse + HeapIdle.
	{MetricGoHeapSys, []int{rmHeapObjects, rmHeapUnused, rmHeapFree, rmHeapReleased}},
	// HeapIdle = free + released heap spans.
	{MetricGoHeapIdle, []int{rmHeapFree, rmHeapReleased}},
	// HeapInuse = spans holding objects, whether or not the objects are.
	{MetricGoHeapInuse, []int{rmHeapObjects, rmHeapUnused}},
	{MetricGoHeapReleased, []int{rmHeapReleased}},
	// HeapObjects = Mallocs - Frees: the tiny allocations cancel out.
	{MetricGoHeapObjects, []int{rmHeapObjCount}},
	// StackInuse: stack spans taken from the heap.
	{MetricGoStackInuse, []int{rmHeapStacks}},
	// StackSys = StackInuse + stacks mapped directly for OS threads.
	{MetricGoStackSys, []int{rmHeapStacks, rmOSStacks}},
	{MetricGoMSpanInuse, []int{rmMSpanInuse}},
	{MetricGoMSpanSys, []int{rmMSpanInuse, rmMSpanFree}},
	{MetricGoMCacheInuse, []int{rmMCacheInuse}},
	{MetricGoMCacheSys, []int{rmMCacheInuse, rmMCacheFree}},
	{MetricGoBuckHashSys, []int{rmProfBuckets}},
	// GCSys: GC metadata and work buffers.
	{MetricGoGCSys, []int{rmMetadataOther}},
	{MetricGoOtherSys, []int{rmOther}},
	// NextGC: the heap goal.
	{MetricGoNextGC, []int{rmHeapGoal}},
	{MetricGoNumGC, []int{rmGCCycles}},
	{MetricGoNumForcedGC, []int{rmGCForced}},
}

// RuntimeMetrics lists every metric a RuntimeCollector submits, with its
// type (all gauges), for the integration assets and their tests.
func RuntimeMetrics() map[string]string {
	m := map[string]string{
		MetricGoNumGoroutine: TypeGauge,
		MetricGoNumCPU:       TypeGauge,
		MetricGoLookups:      TypeGauge,
		MetricGoGCCPUFrac:    TypeGauge,
		MetricGoLastGC:       TypeGauge,
		MetricGoPauseTotalNs: TypeGauge,
	}
	for _, s := range runtimeSums {
		m[s.name] = TypeGauge
	}
	for _, name := range runtimePauseQuantiles {
		m[name] = TypeGauge
	}
	return m
}

// RuntimeCollector reads the Go runtime's statistics of the process and
// submits them as the runtime.go.* gauges of RuntimeMetrics.
//
// It reads them from runtime/metrics, which does not stop the world, and
// calls debug.ReadGCStats once per Submit for what runtime/metrics lacks:
// the exact total pause time, the time of the last GC and the pause
// quantiles. It never calls runtime.ReadMemStats. docs/runtime-metrics.md
// lists the source of each metric.
//
// The zero value is ready to use. Its buffers are reused: after the first
// Submit, Submit does not allocate. It is not safe for concurrent use.
type RuntimeCollector struct {
	// readGCStats is debug.ReadGCStats when nil; tests count the calls.
	readGCStats func(*debug.GCStats)

	samples [rmCount]metrics.Sample
	named   bool
	gc      debug.GCStats
	pq      [len(runtimePauseQuantiles)]time.Duration
}

// Submit reads the runtime statistics once and submits every metric of
// RuntimeMetrics as a gauge, with hostname and tags as they are. A metric
// whose runtime/metrics key the running Go does not support is skipped
// rather than sent as 0.
func (r *RuntimeCollector) Submit(s Sender, hostname string, tags []string) {
	if !r.named {
		for i := range r.samples {
			r.samples[i].Name = runtimeKeys[i]
		}
		// A PauseQuantiles of length 5 makes ReadGCStats fill in the
		// minimum, the 25th, 50th and 75th percentiles and the maximum.
		r.gc.PauseQuantiles = r.pq[:]
		r.named = true
	}
	metrics.Read(r.samples[:])
	readGCStats := r.readGCStats
	if readGCStats == nil {
		readGCStats = debug.ReadGCStats
	}
	// ReadGCStats takes the heap lock, not the world; it reuses r.gc's
	// slices, so it allocates only the first time.
	readGCStats(&r.gc)

	gauge := func(name string, v float64) { s.Gauge(name, v, hostname, tags) }

	// runtime.NumGoroutine, as dd-trace-go: in Go 1.26,
	// /sched/goroutines:goroutines counts the runtime's own goroutines
	// too (gcount(true)), NumGoroutine does not.
	gauge(MetricGoNumGoroutine, float64(runtime.NumGoroutine()))
	// The logical CPUs usable by the process, read at startup.
	gauge(MetricGoNumCPU, float64(runtime.NumCPU()))
	// MemStats.Lookups: the runtime no longer counts pointer lookups, so
	// ReadMemStats always reports 0.
	gauge(MetricGoLookups, 0)

	for _, m := range runtimeSums {
		var sum uint64
		ok := true
		for _, k := range m.keys {
			v := r.samples[k].Value
			if v.Kind() != metrics.KindUint64 {
				ok = false
				break
			}
			sum += v.Uint64()
		}
		if ok {
			gauge(m.name, float64(sum))
		}
	}

	// GCCPUFraction is (GC CPU time - idle mark CPU time) / available CPU
	// time, computed at the end of each GC cycle (runtime/mgc.go
	// gcMarkTermination) from the snapshot the /cpu/classes metrics
	// return, so the two agree (while a cycle runs, the snapshot already
	// holds its first pause).
	if f, ok := r.gcCPUFraction(); ok {
		gauge(MetricGoGCCPUFrac, f)
	}

	// debug.ReadGCStats: LastGC is time.Unix(0, 0) before the first GC,
	// so the gauge is 0 then, as MemStats.LastGC. PauseTotal is exact;
	// runtime/metrics has pause times only as a bucketed histogram.
	gauge(MetricGoLastGC, float64(r.gc.LastGC.UnixNano()))
	gauge(MetricGoPauseTotalNs, float64(r.gc.PauseTotal))
	// Quantiles of the pauses of the last 256 GC cycles at most; all 0
	// before the first GC.
	for i, name := range runtimePauseQuantiles {
		gauge(name, float64(r.gc.PauseQuantiles[i]))
	}
}

// gcCPUFraction computes MemStats.GCCPUFraction from the /cpu/classes
// samples: 0 before the first GC, as MemStats.
func (r *RuntimeCollector) gcCPUFraction() (float64, bool) {
	gcTotal, gcIdle, total := r.samples[rmCPUGCTotal].Value, r.samples[rmCPUGCIdle].Value, r.samples[rmCPUTotal].Value
	if gcTotal.Kind() != metrics.KindFloat64 || gcIdle.Kind() != metrics.KindFloat64 || total.Kind() != metrics.KindFloat64 {
		return 0, false
	}
	if total.Float64() <= 0 {
		return 0, true
	}
	return (gcTotal.Float64() - gcIdle.Float64()) / total.Float64(), true
}
