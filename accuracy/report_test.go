package accuracy_test

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/internal/testbed"
)

// writeEnv names the environment variable that makes the suite write its
// table into docPath.
const writeEnv = "GO_METRO_WRITE_ACCURACY"

// docPath is the page that shows the table, relative to this package.
const docPath = "../docs/accuracy.md"

// The markers around the generated part of docPath; the rest of the page
// is written by hand.
const (
	beginMarker = "<!-- BEGIN GENERATED: go test ./accuracy/ -->"
	endMarker   = "<!-- END GENERATED -->"
)

// medianTolerance is how far the median may be from the reference's:
// max(0.5 ms, 3 %).
func medianTolerance(rtt time.Duration) time.Duration {
	return max(500*time.Microsecond, rtt*3/100)
}

// p95MinSamples is the fewest samples for which the p95 is asserted. With
// fewer, it is the second-largest sample or close to it, and one stall of
// the machine puts it beyond its bound.
const p95MinSamples = 40

// p95Tolerance is how far the 95th percentile may be from the reference's:
// the round-trip jitter of the path plus max(1 ms, 5 %).
func p95Tolerance(rtt, jitter time.Duration) time.Duration {
	return jitter + max(time.Millisecond, rtt*5/100)
}

// bedOK reports whether a median of the test bed, ping's or the
// reference's, is one that a path configured for the RTT want, with the
// round-trip jitter, can give: the delay line never releases a frame
// early, so at most the jitter plus max(1 ms, 5 %) below want; a busy
// machine releases frames late, so up to max(5 ms, 25 %) above. This is a
// wide sanity check of the test bed; the check is compared with the
// reference only.
func bedOK(got, want, jitter time.Duration) bool {
	lo, hi := bedBounds(want, jitter)
	return lo <= got && got <= hi
}

func bedBounds(want, jitter time.Duration) (lo, hi time.Duration) {
	return want - jitter - max(time.Millisecond, want*5/100), want + max(5*time.Millisecond, want*25/100)
}

// bedRange describes the range of bedOK.
func bedRange(want, jitter time.Duration) string {
	lo, hi := bedBounds(want, jitter)
	return fmt.Sprintf("between %v and %v", lo, hi)
}

func within(got, want, tol time.Duration) bool {
	d := got - want
	return -tol <= d && d <= tol
}

// stemsFromRetransmission reports whether a sample was taken while its
// flow had a retransmission in flight: one sent after the segment the
// sample times and before the ACK that ended it, that is within
// (Time-RTT, Time). If the estimator timed the original of a segment whose
// ACK the retransmission caused, the sample is among these.
func stemsFromRetransmission(s capture.Sample, rexmits []testbed.Retransmission) bool {
	from := s.Time.Add(-s.RTT)
	for _, r := range rexmits {
		if r.Src == s.Local && r.Dst == s.Remote && r.Time.After(from) && r.Time.Before(s.Time) {
			return true
		}
	}
	return false
}

// karnViolation says why timing the segment timed, whose ACK arrived at
// end, breaks Karn's rule, or returns "": the segment was itself a
// retransmission, or its bytes were sent again before end.
func karnViolation(timed testbed.Segment, end time.Time, rexmits []testbed.Retransmission) string {
	for _, r := range rexmits {
		if r.Src != timed.Src || r.Dst != timed.Dst {
			continue
		}
		if r.Time.Equal(timed.Time) {
			return "was a retransmission"
		}
		overlaps := seqLess(r.Seq, timed.End) && seqLess(timed.Seq, r.End)
		if overlaps && r.Time.After(timed.Time) && r.Time.Before(end) {
			return fmt.Sprintf("was retransmitted %v later", r.Time.Sub(timed.Time))
		}
	}
	return ""
}

func seqLess(a, b uint32) bool { return int32(a-b) < 0 }

// quantile returns the q-quantile of ds by the nearest-rank method, or 0
// for none. It does not modify ds.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// quantileLow returns the q-quantile of ds at rank q*(n-1), rounded down,
// as DDSketch ranks it; quantile rounds up. It does not modify ds.
func quantileLow(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(q*float64(len(s)-1))]
}

// sketchAgrees reports whether got, a quantile from the check's sketch, is
// within the sketch's relative accuracy of the exact q-quantile of ds, for
// either of the two usual ways of ranking it.
func sketchAgrees(got time.Duration, ds []time.Duration, q float64) bool {
	const slack = 1.0 + 1e-9 // float rounding in the sketch's µs
	for _, want := range []time.Duration{quantileLow(ds, q), quantile(ds, q)} {
		diff := float64(got - want)
		if diff < 0 {
			diff = -diff
		}
		if diff <= capture.SketchRelativeAccuracy*float64(want)*slack+1 {
			return true
		}
	}
	return false
}

// result is one row of the report: what the check measured for one
// pattern on one path, against the reference from the same frames.
type result struct {
	// Path names the path, Pattern the traffic or the method.
	Path, Pattern string
	// Grid puts the row in the main table, whose columns are the paths.
	Grid bool
	// Method marks a row of one method's samples, pooled over patterns.
	Method bool
	// Ping is the path RTT that ping measured when the path was built;
	// Want, if not zero, is the RTT the path was configured for. Both
	// only check the test bed.
	Ping, Want time.Duration
	// Jitter is the configured round-trip jitter of the path.
	Jitter time.Duration
	// Samples, P50 and P95 are what the check reported; Paired counts the
	// samples matched to the frames they timed, Same those equal to the
	// reference's sample of the same ACK.
	Samples, Paired, Same int
	// Fallback counts those of Same that timed another segment of the
	// echoed TSval than the reference (see testbed.Slack).
	Fallback int
	P50, P95 time.Duration
	// RefSamples and RefAll are the number and median of the reference's
	// samples of the same traffic; Ref, RefP95Low and RefP95 are the
	// median and p95 of its samples of the ACKs the check timed (the p95
	// ranked as quantileLow and quantile do).
	RefSamples                     int
	RefAll, Ref, RefP95Low, RefP95 time.Duration
	// Known is set, with the misses, on a row of a path whose misses are
	// reported rather than asserted (see anyBridgeRow).
	Known string
	// Karn is set for the lossy patterns.
	Karn *karnResult
	// P95Over is set when the p95 is beyond its bound in a row where it is
	// not asserted (see checkQuantiles).
	P95Over bool
	// Attempts counts the runs of the pattern (see maxAttempts).
	Attempts int
	// Failed is set when an assertion on the row failed.
	Failed bool
}

// karnResult is what a lossy pattern tells of Karn's rule.
type karnResult struct {
	Lost, Retransmissions int
	// Attributed counts the samples taken while a retransmission of their
	// flow was in flight, and Max is the largest of them.
	Attributed int
	Max        time.Duration
}

func (r result) medianErr() time.Duration { return r.P50 - r.Ref }
func (r result) p95Err() time.Duration {
	lo, hi := r.P95-r.RefP95Low, r.P95-r.RefP95
	if lo.Abs() < hi.Abs() {
		return lo
	}
	return hi
}

// report collects the rows of the suite. Safe for concurrent use.
type report struct {
	mu    sync.Mutex
	rows  []result
	start time.Time
}

func (r *report) add(res result) {
	r.mu.Lock()
	r.rows = append(r.rows, res)
	r.mu.Unlock()
}

func (r *report) results() []result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.rows)
}

// fmtMS formats a duration in milliseconds with two decimals.
func fmtMS(d time.Duration) string {
	return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
}

// fmtErr formats an error in milliseconds with a sign, and in percent of
// ref; "–" if ref is 0.
func fmtErr(d, ref time.Duration) string {
	if ref == 0 {
		return "–" // nothing to compare with
	}
	ms := float64(d) / float64(time.Millisecond)
	pct := 0.0
	if ref > 0 {
		pct = 100 * float64(d) / float64(ref)
	}
	return fmt.Sprintf("%+.2f ms (%+.1f %%)", ms, pct)
}

// markdown renders the rows: a grid of patterns by path, a table of the
// other paths, and a table of the lossy patterns.
func markdown(rows []result, runtime time.Duration) string {
	var b strings.Builder
	var paths, patterns []string
	cell := map[[2]string]result{}
	for _, r := range rows {
		if !r.Grid {
			continue
		}
		if !slices.Contains(paths, r.Path) {
			paths = append(paths, r.Path)
		}
		if !slices.Contains(patterns, r.Pattern) {
			patterns = append(patterns, r.Pattern)
		}
		cell[[2]string{r.Pattern, r.Path}] = r
	}
	if len(paths) > 0 {
		b.WriteString("Each cell: samples · median error · p95 error, against the median and p95 of the reference's samples of the same ACKs: the reference times the frames that a packet socket of its own saw on the same device, by the rules of each method. Ping, in the header, only checks the test bed.\n\n")
		b.WriteString("| pattern |")
		for _, p := range paths {
			var ping time.Duration
			for _, r := range rows {
				if r.Grid && r.Path == p {
					ping = r.Ping
					break
				}
			}
			fmt.Fprintf(&b, " %s (ping %s) |", p, fmtMS(ping))
		}
		b.WriteString("\n|---|")
		b.WriteString(strings.Repeat("---|", len(paths)))
		b.WriteString("\n")
		for _, pat := range patterns {
			fmt.Fprintf(&b, "| %s |", pat)
			for _, p := range paths {
				r, ok := cell[[2]string{pat, p}]
				if !ok {
					b.WriteString(" |")
					continue
				}
				fmt.Fprintf(&b, " %d · %s · %s%s |", r.Samples, fmtErr(r.medianErr(), r.Ref), fmtErr(r.p95Err(), r.RefP95), failMark(r))
			}
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}

	var other []result
	for _, r := range rows {
		if !r.Grid {
			other = append(other, r)
		}
	}
	if len(other) > 0 {
		b.WriteString("| path | pattern | ping | reference: samples · p50 | samples | p50 | median error | p95 | p95 error |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range other {
			fmt.Fprintf(&b, "| %s | %s | %s | %d · %s | %d | %s | %s | %s | %s%s |\n", r.Path, r.Pattern, fmtMS(r.Ping),
				r.RefSamples, fmtMS(r.RefAll), r.Samples,
				fmtMS(r.P50), fmtErr(r.medianErr(), r.Ref), fmtMS(r.P95), fmtErr(r.p95Err(), r.RefP95), failMark(r))
		}
		b.WriteString("\n")
	}

	var lossy []result
	for _, r := range rows {
		if r.Karn != nil {
			lossy = append(lossy, r)
		}
	}
	if len(lossy) > 0 {
		b.WriteString("| path | pattern | frames lost | retransmissions | samples | samples during a retransmission | largest of them | limit (2 × the reference's median of the same ACKs) |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|\n")
		for _, r := range lossy {
			k := r.Karn
			largest := "–"
			if k.Attributed > 0 {
				largest = fmtMS(k.Max)
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %s%s |\n", r.Path, r.Pattern, k.Lost, k.Retransmissions,
				r.Samples, k.Attributed, largest, fmtMS(2*r.Ref), failMark(r))
		}
		b.WriteString("\n")
	}
	var samples, paired, same, fallback, refSamples int
	var known []string
	for _, r := range rows {
		if !r.Method {
			samples += r.Samples
			paired += r.Paired
			refSamples += r.RefSamples
			same += r.Same
			fallback += r.Fallback
		}
		if r.Known != "" {
			known = append(known, fmt.Sprintf("%s, %s: %s.", r.Path, r.Pattern, r.Known))
		}
	}
	fmt.Fprintf(&b, "%d of %d samples were paired with the segment they timed and the segment that answered it, by the frames an independent packet socket saw, and %d were the reference's sample of the same ACK, to the nanosecond (to 50 µs behind the bridge, whose two devices stamp a frame apart), but for %d timestamp samples timed from another segment with the echoed TSval, where the check no longer held the one at the previous ACK; the reference took %d samples from those frames. On every pattern but bulk, the check timed exactly the ACKs the reference timed. The median is asserted within max(0.5 ms, 3 %%) in every row, the p95 within the jitter plus max(1 ms, 5 %%) in every row of at least %d samples but the lossy ones; † marks a p95 beyond that where it is only reported. ↻ marks a pattern run again after a miss. The suite took %.0f s.\n",
		paired, samples, same, fallback, refSamples, p95MinSamples, runtime.Seconds())
	if len(known) > 0 {
		b.WriteString("\n‡ Reported, not asserted (anyBridgeRow in accuracy/bridge_linux_test.go is false):\n\n")
		for _, k := range known {
			b.WriteString("- " + k + "\n")
		}
	}
	return b.String()
}

func failMark(r result) string {
	var m string
	if r.Attempts > 1 {
		m += " ↻"
	}
	switch {
	case r.Failed:
		m += " **FAIL**"
	case r.Known != "":
		m += " ‡"
	case r.P95Over:
		m += " †"
	}
	return m
}

// writeDoc replaces the generated part of the page at path with table.
func writeDoc(path, table string) error {
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("write accuracy table: %w", err)
	}
	page := string(old)
	i := strings.Index(page, beginMarker)
	j := strings.Index(page, endMarker)
	if i < 0 || j < i {
		return fmt.Errorf("write accuracy table: %s lacks the markers %q and %q", path, beginMarker, endMarker)
	}
	page = page[:i+len(beginMarker)] + "\n\n" + table + "\n" + page[j:]
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		return fmt.Errorf("write accuracy table: %w", err)
	}
	return nil
}
