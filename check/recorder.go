package check

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
)

// Series is one submitted metric point, in the shape `go-metro check
// --json` prints.
type Series struct {
	Metric string       `json:"metric"`
	Type   string       `json:"type"`
	Points [][2]float64 `json:"points"` // [unix seconds, value]
	Tags   []string     `json:"tags"`
	Host   string       `json:"host,omitempty"`
}

// ServiceCheckResult is one submitted service check.
type ServiceCheckResult struct {
	Check   string                          `json:"check"`
	Status  servicecheck.ServiceCheckStatus `json:"status"`
	Message string                          `json:"message"`
	Tags    []string                        `json:"tags"`
	Host    string                          `json:"host,omitempty"`
}

// HistogramBucket is one submitted histogram bucket, as the Agent's
// sender.HistogramBucket takes it.
type HistogramBucket struct {
	Metric          string   `json:"metric"`
	Value           int64    `json:"value"`
	LowerBound      float64  `json:"lower_bound"`
	UpperBound      float64  `json:"upper_bound"`
	Monotonic       bool     `json:"monotonic"`
	Tags            []string `json:"tags"`
	Host            string   `json:"host,omitempty"`
	FlushFirstValue bool     `json:"flush_first_value,omitempty"`
}

// Batch is what one Run submitted, in the JSON shape of `go-metro check
// --json`.
type Batch struct {
	Series           []Series             `json:"series"`
	HistogramBuckets []HistogramBucket    `json:"histogram_buckets"`
	ServiceChecks    []ServiceCheckResult `json:"service_checks"`
}

// Recorder is a Sender that keeps what it is sent: `go-metro check` prints
// it, and tests inspect it. Commit closes a Batch. Safe for concurrent
// use.
type Recorder struct {
	// Now stamps the points; nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	cur     Batch
	batches []Batch
}

var _ Sender = (*Recorder)(nil)

func (r *Recorder) add(metric, typ string, value float64, hostname string, tags []string) {
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	ts := float64(now().Unix())
	r.mu.Lock()
	r.cur.Series = append(r.cur.Series, Series{Metric: metric, Type: typ, Points: [][2]float64{{ts, value}}, Tags: slices.Clone(tags), Host: hostname})
	r.mu.Unlock()
}

// Gauge records a gauge.
func (r *Recorder) Gauge(metric string, value float64, hostname string, tags []string) {
	r.add(metric, TypeGauge, value, hostname, tags)
}

// Count records a count.
func (r *Recorder) Count(metric string, value float64, hostname string, tags []string) {
	r.add(metric, TypeCount, value, hostname, tags)
}

// MonotonicCount records a monotonic count.
func (r *Recorder) MonotonicCount(metric string, value float64, hostname string, tags []string) {
	r.add(metric, "monotonic_count", value, hostname, tags)
}

// Rate records a rate.
func (r *Recorder) Rate(metric string, value float64, hostname string, tags []string) {
	r.add(metric, "rate", value, hostname, tags)
}

// HistogramBucket records a histogram bucket.
func (r *Recorder) HistogramBucket(metric string, value int64, lowerBound, upperBound float64, monotonic bool, hostname string, tags []string, flushFirstValue bool) {
	r.mu.Lock()
	r.cur.HistogramBuckets = append(r.cur.HistogramBuckets, HistogramBucket{
		Metric: metric, Value: value, LowerBound: lowerBound, UpperBound: upperBound, Monotonic: monotonic,
		Tags: slices.Clone(tags), Host: hostname, FlushFirstValue: flushFirstValue,
	})
	r.mu.Unlock()
}

// ServiceCheck records a service check.
func (r *Recorder) ServiceCheck(checkName string, status servicecheck.ServiceCheckStatus, hostname string, tags []string, message string) {
	r.mu.Lock()
	r.cur.ServiceChecks = append(r.cur.ServiceChecks, ServiceCheckResult{Check: checkName, Status: status, Message: message, Tags: slices.Clone(tags), Host: hostname})
	r.mu.Unlock()
}

// Commit closes the current batch.
func (r *Recorder) Commit() {
	r.mu.Lock()
	if r.cur.Series == nil {
		r.cur.Series = []Series{}
	}
	if r.cur.ServiceChecks == nil {
		r.cur.ServiceChecks = []ServiceCheckResult{}
	}
	if r.cur.HistogramBuckets == nil {
		r.cur.HistogramBuckets = []HistogramBucket{}
	}
	r.batches = append(r.batches, r.cur)
	r.cur = Batch{}
	r.mu.Unlock()
}

// Batches returns the committed batches, one per Run.
func (r *Recorder) Batches() []Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// Last returns the last committed batch, or an empty one.
func (r *Recorder) Last() Batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.batches) == 0 {
		return Batch{}
	}
	return r.batches[len(r.batches)-1]
}

// Duplicates returns the metric and tag sets that b holds more than once,
// each as "metric{tags}", sorted: the Agent keeps only the last value of
// a series in a run, so a check must send each at most once.
func (b Batch) Duplicates() []string {
	seen := map[string]int{}
	key := func(name, typ, host string, tags []string) string {
		t := slices.Clone(tags)
		slices.Sort(t)
		return fmt.Sprintf("%s(%s){%s}@%s", name, typ, strings.Join(t, ","), host)
	}
	for _, s := range b.Series {
		seen[key(s.Metric, s.Type, s.Host, s.Tags)]++
	}
	for _, c := range b.ServiceChecks {
		seen[key(c.Check, "service_check", c.Host, c.Tags)]++
	}
	for _, h := range b.HistogramBuckets {
		seen[key(h.Metric, fmt.Sprintf("bucket[%g,%g]", h.LowerBound, h.UpperBound), h.Host, h.Tags)]++
	}
	var dup []string
	for k, n := range seen {
		if n > 1 {
			dup = append(dup, k)
		}
	}
	slices.Sort(dup)
	return dup
}

// Buckets returns the histogram buckets of metric in b whose tags include
// all of tags.
func (b Batch) Buckets(metric string, tags ...string) []HistogramBucket {
	var out []HistogramBucket
	for _, h := range b.HistogramBuckets {
		if h.Metric == metric && containsAll(h.Tags, tags) {
			out = append(out, h)
		}
	}
	return out
}

// Find returns the series of metric in b whose tags include all of tags.
func (b Batch) Find(metric string, tags ...string) []Series {
	var out []Series
	for _, s := range b.Series {
		if s.Metric != metric {
			continue
		}
		if !containsAll(s.Tags, tags) {
			continue
		}
		out = append(out, s)
	}
	return out
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}
