// Package check is a stub of the Agent's package of the same path.
package check

import (
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
)

// Check is an interface for types capable to run checks. The Agent's has
// GetSenderStats and GetDiagnoses too, left out of this stub.
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
	// IsHASupported returns if the check is compatible with High Availability
	IsHASupported() bool
}
