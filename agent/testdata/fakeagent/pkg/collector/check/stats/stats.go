// Package stats is a stub of the Agent's package of the same path.
//
// It mirrors SenderStats of pkg/collector/check/stats/stats.go of
// datadog-agent.
package stats

// SenderStats contains statistics showing the count of various types of telemetry sent by a check sender
type SenderStats struct {
	MetricSamples    int64
	Events           int64
	ServiceChecks    int64
	HistogramBuckets int64
	// EventPlatformEvents tracks the number of events submitted for each eventType
	EventPlatformEvents map[string]int64
	// LongRunningCheck is a field that is only set for long running checks
	// converted to a normal check
	LongRunningCheck bool
}

// NewSenderStats creates a new SenderStats
func NewSenderStats() SenderStats {
	return SenderStats{EventPlatformEvents: make(map[string]int64)}
}
