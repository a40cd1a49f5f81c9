package e2e

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/statsd_exporter/pkg/line"
)

// TestExporterDropsServiceChecks pins what statsd_exporter does with the
// service checks go-metro sends, as docs/e2e.md describes: its line parser
// reads every line as name:value|type, so it makes no event of a service
// check and counts a sample error instead. It needs no privileges.
func TestExporterDropsServiceChecks(t *testing.T) {
	tests := []struct {
		name string
		line string
		// wantErrors are the sample errors counted, by reason.
		wantErrors map[string]float64
	}{
		{
			name:       "ok",
			line:       "_sc|go_metro.can_capture|0|#iface:tap0,env:e2e",
			wantErrors: map[string]float64{"not_enough_parts_after_colon": 1},
		},
		{
			name:       "ok-in-container",
			line:       "_sc|go_metro.can_capture|0|#iface:tap0,env:e2e|c:ci-4026531835",
			wantErrors: map[string]float64{"invalid_extended_aggregate_type": 1},
		},
		{
			name:       "critical-with-message",
			line:       "_sc|go_metro.can_capture|2|#iface:eth2,env:prod|m:start capture on eth2: no such interface",
			wantErrors: map[string]float64{"invalid_extended_aggregate_type": 1},
		},
		{
			name:       "no-tags",
			line:       "_sc|go_metro.can_capture|0",
			wantErrors: map[string]float64{"malformed_line": 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := line.NewParser()
			p.EnableDogstatsdParsing()
			opts := func(name string) prometheus.CounterOpts { return prometheus.CounterOpts{Name: name, Help: name} }
			sampleErrors := prometheus.NewCounterVec(opts("sample_errors"), []string{"reason"})
			events := p.LineToEvents(tt.line, *sampleErrors,
				prometheus.NewCounter(opts("samples")), prometheus.NewCounter(opts("tag_errors")), prometheus.NewCounter(opts("tags")),
				slog.New(slog.DiscardHandler))
			if len(events) != 0 {
				t.Errorf("LineToEvents(%q) = %d events, want none", tt.line, len(events))
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(sampleErrors)
			fams, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]float64{}
			for _, f := range fams {
				for _, m := range f.GetMetric() {
					got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
				}
			}
			if diff := cmp.Diff(tt.wantErrors, got); diff != "" {
				t.Errorf("sample errors by reason (-want +got):\n%s", diff)
			}
		})
	}
}
