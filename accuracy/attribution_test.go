package accuracy_test

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/internal/testbed"
)

var (
	client = netip.MustParseAddrPort("192.0.2.1:40000")
	server = netip.MustParseAddrPort("192.0.2.2:80")
	other  = netip.MustParseAddrPort("192.0.2.1:40001")
	t0     = time.Unix(1_800_000_000, 0)
)

func at(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }

func rexmit(src netip.AddrPort, ms float64, seq, end uint32) testbed.Retransmission {
	return testbed.Retransmission{Segment: testbed.Segment{Time: at(ms), Src: src, Dst: server, Seq: seq, End: end}}
}

func TestStemsFromRetransmission(t *testing.T) {
	// A sample of 20 ms ending at 100 ms: it timed a segment sent at 80 ms.
	s := capture.Sample{Time: at(100), Local: client, Remote: server, RTT: 20 * time.Millisecond}
	tests := []struct {
		name    string
		rexmits []testbed.Retransmission
		want    bool
	}{
		{name: "none"},
		{name: "in-flight", rexmits: []testbed.Retransmission{rexmit(client, 90, 1, 2)}, want: true},
		{name: "the-timed-segment-itself", rexmits: []testbed.Retransmission{rexmit(client, 80, 1, 2)}},
		{name: "at-the-ack", rexmits: []testbed.Retransmission{rexmit(client, 100, 1, 2)}},
		{name: "before", rexmits: []testbed.Retransmission{rexmit(client, 79, 1, 2)}},
		{name: "other-flow", rexmits: []testbed.Retransmission{rexmit(other, 90, 1, 2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := stemsFromRetransmission(s, tt.rexmits); got != tt.want {
				t.Errorf("stemsFromRetransmission = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKarnViolation(t *testing.T) {
	timed := testbed.Segment{Time: at(80), Src: client, Dst: server, Seq: 1000, End: 2000}
	tests := []struct {
		name    string
		rexmits []testbed.Retransmission
		want    string
	}{
		{name: "none"},
		{name: "was-a-retransmission", rexmits: []testbed.Retransmission{rexmit(client, 80, 1000, 2000)}, want: "was a retransmission"},
		{name: "retransmitted-before-its-ack", rexmits: []testbed.Retransmission{rexmit(client, 90, 1500, 2500)}, want: "was retransmitted 10ms later"},
		{name: "retransmitted-after-its-ack", rexmits: []testbed.Retransmission{rexmit(client, 101, 1000, 2000)}},
		{name: "other-bytes", rexmits: []testbed.Retransmission{rexmit(client, 90, 2000, 3000)}},
		{name: "other-flow", rexmits: []testbed.Retransmission{rexmit(other, 90, 1000, 2000)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := karnViolation(timed, at(100), tt.rexmits); got != tt.want {
				t.Errorf("karnViolation = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestQuantiles(t *testing.T) {
	ms := func(vs ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range vs {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	ds := ms(5, 1, 4, 2, 3, 10, 9, 8, 7, 6)
	tests := []struct {
		name      string
		q         float64
		low, high time.Duration
	}{
		{name: "p50", q: 0.5, low: 5 * time.Millisecond, high: 5 * time.Millisecond},
		{name: "p95", q: 0.95, low: 9 * time.Millisecond, high: 10 * time.Millisecond},
		{name: "max", q: 1, low: 10 * time.Millisecond, high: 10 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := []time.Duration{quantileLow(ds, tt.q), quantile(ds, tt.q)}
			if diff := cmp.Diff([]time.Duration{tt.low, tt.high}, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			// The sketch's 1 %, either way of ranking.
			if !sketchAgrees(tt.high+tt.high/200, ds, tt.q) {
				t.Errorf("sketchAgrees(%v) = false, 0.5 %% above the quantile %v", tt.high+tt.high/200, tt.high)
			}
			if sketchAgrees(tt.high+tt.high/50, ds, tt.q) {
				t.Errorf("sketchAgrees(%v) = true, 2 %% above the quantile %v", tt.high+tt.high/50, tt.high)
			}
		})
	}
	if got := quantile(nil, 0.5); got != 0 {
		t.Errorf("quantile(nil) = %v, want 0", got)
	}
}

func TestWriteDoc(t *testing.T) {
	path := filepath.Join(t.TempDir(), "accuracy.md")
	page := "# Accuracy\n\nBy hand.\n\n" + beginMarker + "\n\nold table\n\n" + endMarker + "\n\nAlso by hand.\n"
	if err := os.WriteFile(path, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	rows := []result{
		{Path: "1 ms each way", Pattern: "bulk", Grid: true, Ping: 2 * ms, Samples: 10, Paired: 10, Same: 10, P50: 2100 * time.Microsecond, P95: 3 * ms,
			RefSamples: 12, RefAll: 2 * ms, Ref: 2 * ms, RefP95Low: 2 * ms, RefP95: 2 * ms},
		{Path: "1 ms each way", Pattern: "lossy bulk", Grid: true, Ping: 2 * ms, Samples: 5, Paired: 5, Same: 5, P50: 2 * ms, P95: 2 * ms,
			RefSamples: 6, RefAll: 2 * ms, Ref: 2 * ms, RefP95Low: 2 * ms, RefP95: 2 * ms, Karn: &karnResult{Lost: 3, Retransmissions: 3, Attributed: 1, Max: 2 * ms}},
		{Path: "2 ms there, 20 ms back", Pattern: "bulk", Ping: 22 * ms, Samples: 7, Paired: 7, Same: 5, Fallback: 2, P50: 22 * ms, P95: 30 * ms, P95Over: true, Attempts: 2,
			RefSamples: 8, RefAll: 22 * ms, Ref: 22 * ms, RefP95Low: 23 * ms, RefP95: 24 * ms},
		{Path: "bridge", Pattern: "bulk", Ping: 20 * ms, Samples: 3, Paired: 3, P50: 20 * ms, P95: 20 * ms, Attempts: 3,
			RefSamples: 50, RefAll: 20 * ms, Ref: 20 * ms, RefP95Low: 20 * ms, RefP95: 20 * ms, Known: "3 samples"},
	}
	if err := writeDoc(path, markdown(rows, 42*time.Second)); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got := string(b)
	for _, want := range []string{
		"# Accuracy\n\nBy hand.\n\n" + beginMarker + "\n\n",
		"| pattern | 1 ms each way (ping 2.00 ms) |",
		"| bulk | 10 · +0.10 ms (+5.0 %) · +1.00 ms (+50.0 %) |",
		"| 2 ms there, 20 ms back | bulk | 22.00 ms | 8 · 22.00 ms | 7 | 22.00 ms | +0.00 ms (+0.0 %) | 30.00 ms | +6.00 ms (+25.0 %) ↻ † |",
		"| bridge | bulk | 20.00 ms | 50 · 20.00 ms | 3 | 20.00 ms | +0.00 ms (+0.0 %) | 20.00 ms | +0.00 ms (+0.0 %) ↻ ‡ |",
		"- bridge, bulk: 3 samples.",
		"| 1 ms each way | lossy bulk | 3 | 3 | 5 | 1 | 2.00 ms | 4.00 ms |",
		"25 of 25 samples were paired",
		"and 20 were the reference's sample of the same ACK",
		"but for 2 timestamp samples",
		"the reference took 76 samples",
		"The suite took 42 s.\n",
		"- bridge, bulk: 3 samples.\n\n" + endMarker + "\n\nAlso by hand.\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("page lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "old table") {
		t.Errorf("the old table is still there:\n%s", got)
	}
	if err := writeDoc(filepath.Join(t.TempDir(), "missing.md"), "x"); err == nil {
		t.Error("writeDoc on a missing page: no error")
	}
}
