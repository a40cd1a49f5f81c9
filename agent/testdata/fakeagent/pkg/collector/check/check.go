// Package check is a stub of the Agent's package of the same path.
//
// It mirrors Check of pkg/collector/check/check.go of datadog-agent: its 18
// methods, in the same order and with the same signatures.
package check

import (
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	diagnose "github.com/DataDog/datadog-agent/comp/core/diagnose/def"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/collector/check/stats"
)

// Check is an interface for types capable to run checks
type Check interface {
	// Run runs the check
	Run() error
	// Stop stops the check if it's running
	Stop()
	// Cancel cancels the check. Cancel is called when the check is unscheduled.
	Cancel()
	// String provides a printable version of the check name
	String() string
	// Loader returns the name of the check loader
	Loader() string
	// Configure configures the check
	Configure(senderManger sender.SenderManager, integrationConfigDigest uint64, config, initConfig integration.Data, source string, provider string) error
	// Interval returns the interval time for the check
	Interval() time.Duration
	// ID provides a unique identifier for every check instance
	ID() checkid.ID
	// GetWarnings returns the last warning registered by the check
	GetWarnings() []error
	// GetSenderStats returns the stats from the last run of the check.
	GetSenderStats() (stats.SenderStats, error)
	// Version returns the version of the check if available
	Version() string
	// ConfigSource returns the configuration source of the check
	ConfigSource() string
	// ConfigProvider returns the name of the config provider that issued the check config
	ConfigProvider() string
	// IsTelemetryEnabled returns if telemetry is enabled for this check
	IsTelemetryEnabled() bool
	// InitConfig returns the init_config configuration of the check
	InitConfig() string
	// InstanceConfig returns the instance configuration of the check
	InstanceConfig() string
	// GetDiagnoses returns the diagnoses cached in last run or diagnose explicitly
	GetDiagnoses() ([]diagnose.Diagnosis, error)
	// IsHASupported returns if the check is compatible with High Availability
	IsHASupported() bool
}
