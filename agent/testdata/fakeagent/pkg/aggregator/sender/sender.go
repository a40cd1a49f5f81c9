// Package sender is a stub of the Agent's package of the same path.
package sender

import (
	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"

	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
)

// Sender allows sending metrics from checks/a check. This stub has a subset
// of the Agent's methods, with their signatures.
type Sender interface {
	Commit()
	Gauge(metric string, value float64, hostname string, tags []string)
	GaugeNoIndex(metric string, value float64, hostname string, tags []string)
	Rate(metric string, value float64, hostname string, tags []string)
	Count(metric string, value float64, hostname string, tags []string)
	CountNoIndex(metric string, value float64, hostname string, tags []string)
	MonotonicCount(metric string, value float64, hostname string, tags []string)
	Histogram(metric string, value float64, hostname string, tags []string)
	Distribution(metric string, value float64, hostname string, tags []string)
	ServiceCheck(checkName string, status servicecheck.ServiceCheckStatus, hostname string, tags []string, message string)
	EventPlatformEvent(rawEvent []byte, eventType string)
	DisableDefaultHostname(disable bool)
	SetCheckCustomTags(tags []string)
	SetCheckService(service string)
	SetNoIndex(noIndex bool)
	FinalizeCheckServiceTag()
}

// SenderManager gives the Sender of a check.
type SenderManager interface {
	GetSender(id checkid.ID) (Sender, error)
	SetSender(Sender, checkid.ID) error
	DestroySender(id checkid.ID)
	GetDefaultSender() (Sender, error)
}
