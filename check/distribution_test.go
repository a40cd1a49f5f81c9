package check_test

import (
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// seriesOf returns the value of the one series of metric whose tags are
// exactly tags (in any order), and whether there is one.
func seriesOf(b check.Batch, metric string, tags []string) (float64, bool) {
	want := sortedTags(tags...)
	for _, s := range b.Series {
		if s.Metric == metric && slices.Equal(sortedTags(s.Tags...), want) {
			return s.Points[0][1], true
		}
	}
	return 0, false
}

// spread returns the values that the Agent's check sampler makes of
// histogram buckets: each bucket's count spread evenly over its bounds.
func spread(buckets []check.HistogramBucket) []float64 {
	var out []float64
	for _, b := range buckets {
		for i := range b.Value {
			f := (float64(i) + 0.5) / float64(b.Value)
			out = append(out, b.LowerBound+f*(b.UpperBound-b.LowerBound))
		}
	}
	slices.Sort(out)
	return out
}

// TestDistribution replays recorded captures into the check and checks
// system.net.tcp.rtt.distribution: per series, the bucket counts add up to
// system.net.tcp.rtt.samples, no bound is infinite, the monotonic flag is
// off, and the buckets spread as the Agent spreads them give p50, p95 and
// p99 within 2 % of the exact nearest-rank quantiles of the samples the
// engine took.
func TestDistribution(t *testing.T) {
	for _, file := range []string{"reqresp_ts_v6.pcap", "bulk_nots_v4.pcap", "lossy_ts_v4.pcap", "short_conns_v4.pcap"} {
		t.Run(strings.TrimSuffix(file, ".pcap"), func(t *testing.T) {
			c := configure(t, "interface: eth0\ntags: [env:test]", "")
			var samples []float64
			cfg := c.Config().Capture
			cfg.Engine.OnSample = func(s capture.Sample) { samples = append(samples, float64(s.RTT)/1e6) }
			fake := newFakeCapture(t, cfg, nil)
			c.NewCapture = func(capture.LiveConfig) (check.Capture, error) { return fake, nil }
			defer c.Cancel()
			fake.feed(loadPCAP(t, file))
			b := run(t, c, newRecorder(t))
			if len(b.HistogramBuckets) == 0 {
				t.Fatal("no histogram buckets")
			}
			tags := b.HistogramBuckets[0].Tags
			for _, h := range b.HistogramBuckets {
				if h.Metric != check.MetricRTTDistribution || h.Monotonic || !slices.Equal(h.Tags, tags) ||
					math.IsInf(h.LowerBound, 0) || math.IsInf(h.UpperBound, 0) || h.LowerBound > h.UpperBound || h.Value <= 0 {
					t.Errorf("bucket %+v: want %s, not monotonic, finite bounds in order, a count, one peer's tags %v", h, check.MetricRTTDistribution, tags)
				}
			}
			n, ok := seriesOf(b, check.MetricRTTSamples, tags)
			spreadVals := spread(b.HistogramBuckets)
			if !ok || int(n) != len(spreadVals) || len(spreadVals) != len(samples) {
				t.Fatalf("bucket counts add up to %d; %s = %v; the engine took %d samples", len(spreadVals), check.MetricRTTSamples, n, len(samples))
			}
			slices.Sort(samples)
			for _, q := range []float64{0.5, 0.95, 0.99} {
				r := max(int(math.Ceil(q*float64(len(samples))-1e-9)), 1) - 1
				exact, got := samples[r], spreadVals[r]
				if math.Abs(got-exact) > 0.02*exact {
					t.Errorf("p%v of the spread buckets = %.4f ms, exact %.4f ms: more than 2 %% off", q*100, got, exact)
				}
			}
		})
	}
}

// TestDistributionOptions checks distribution: false and
// percentile_gauges: false.
func TestDistributionOptions(t *testing.T) {
	frames := loadPCAP(t, "reqresp_nots_v4.pcap")
	tests := []struct {
		name            string
		instance        string
		buckets, pGauge bool
	}{
		{name: "default", instance: "interface: eth0", buckets: true, pGauge: true},
		{name: "no-distribution", instance: "interface: eth0\ndistribution: false", pGauge: true},
		{name: "no-percentile-gauges", instance: "interface: eth0\npercentile_gauges: false", buckets: true},
		{name: "neither", instance: "interface: eth0\ndistribution: false\npercentile_gauges: false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, fake := withFake(t, tt.instance, "", nil)
			fake.feed(frames)
			b := run(t, c, newRecorder(t))
			if got := len(b.HistogramBuckets) > 0; got != tt.buckets {
				t.Errorf("histogram buckets sent: %v, want %v", got, tt.buckets)
			}
			for _, m := range []string{check.MetricRTTP50, check.MetricRTTP95, check.MetricRTTP99} {
				if got := len(b.Find(m)) > 0; got != tt.pGauge {
					t.Errorf("%s sent: %v, want %v", m, got, tt.pGauge)
				}
			}
			for _, m := range []string{check.MetricRTT, check.MetricRTTAvg, check.MetricRTTMin, check.MetricRTTMax, check.MetricRTTSamples} {
				if len(b.Find(m)) != 1 {
					t.Errorf("%s: want one series whatever the options", m)
				}
			}
		})
	}
}

// TestServiceTagsCheck replays captures with service_tags: the series of
// the connections the local side opened carry direction:outbound and the
// server's port; without the option, neither tag.
func TestServiceTagsCheck(t *testing.T) {
	for _, on := range []bool{false, true} {
		instance := "interface: eth0"
		if on {
			instance += "\nservice_tags: true"
		}
		c, fake := withFake(t, instance, "", nil)
		fake.feed(loadPCAP(t, "reqresp_nots_v4.pcap"))
		b := run(t, c, newRecorder(t))
		for _, s := range b.Series {
			if !isPeerSeries(s) {
				continue
			}
			dir, port := tagValue(s.Tags, "direction"), tagValue(s.Tags, "port")
			switch {
			case on && (dir != "direction:outbound" || !strings.HasPrefix(port, "port:") || port == "port:other"):
				t.Errorf("service_tags: %s %v: want direction:outbound and the server's port", s.Metric, s.Tags)
			case !on && (dir != "" || port != ""):
				t.Errorf("without service_tags: %s %v: want no direction or port tag", s.Metric, s.Tags)
			}
		}
	}
}

// TestPeerPrefixCheck groups the two peers of one /16 into one series.
func TestPeerPrefixCheck(t *testing.T) {
	c, fake := withFake(t, "interface: eth0\npeer_prefix_v4: 16\npeer_prefix_v6: 32", "", nil)
	fake.feed(loadPCAP(t, "reqresp_nots_v4.pcap"))
	fake.feed(loadPCAP(t, "reqresp_ts_v6.pcap"))
	b := run(t, c, newRecorder(t))
	var dsts []string
	for _, s := range b.Find(check.MetricRTTSamples) {
		dsts = append(dsts, tagValue(s.Tags, "dst"))
	}
	slices.Sort(dsts)
	if want := []string{"dst:192.0.0.0/16", "dst:2001:db8::/32"}; !slices.Equal(dsts, want) {
		t.Errorf("dst tags %v, want %v", dsts, want)
	}
}
