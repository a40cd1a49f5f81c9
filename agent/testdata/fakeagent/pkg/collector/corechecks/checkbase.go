// Package corechecks is a stub of the Agent's package of the same path.
//
// checkbase.go mirrors CheckBase of pkg/collector/corechecks/checkbase.go of
// datadog-agent: the methods, with their signatures, that make it a
// check.Check; loader.go mirrors pkg/collector/corechecks/loader.go.
package corechecks

import (
	"errors"
	"fmt"
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	diagnose "github.com/DataDog/datadog-agent/comp/core/diagnose/def"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/collector/check/stats"
)

// CheckBase provides default implementations for most of the check.Check
// interface to make it easier to bootstrap a new corecheck.
type CheckBase struct {
	senderManager  sender.SenderManager
	checkName      string
	checkID        checkid.ID
	latestWarnings []error
	checkInterval  time.Duration
	source         string
	provider       string
}

// NewCheckBase returns a check base struct with a given check name
func NewCheckBase(name string) CheckBase {
	return NewCheckBaseWithInterval(name, 15*time.Second)
}

// NewCheckBaseWithInterval returns a check base struct with a given check name and interval
func NewCheckBaseWithInterval(name string, defaultInterval time.Duration) CheckBase {
	return CheckBase{checkName: name, checkID: checkid.ID(name), checkInterval: defaultInterval}
}

// BuildID is to be called by the check's Config() method to generate
// the unique check ID.
func (c *CheckBase) BuildID(integrationConfigDigest uint64, instance, initConfig integration.Data) {
	c.checkID = checkid.BuildID(c.checkName, integrationConfigDigest, instance, initConfig)
}

// Configure is provided for checks that require no config.
func (c *CheckBase) Configure(senderManager sender.SenderManager, _ uint64, data integration.Data, initConfig integration.Data, source string, provider string) error {
	return c.CommonConfigure(senderManager, initConfig, data, source, provider)
}

// CommonConfigure is called when checks implement their own Configure method,
// in order to setup common options (run interval, empty hostname)
func (c *CheckBase) CommonConfigure(senderManager sender.SenderManager, initConfig, instanceConfig integration.Data, source string, provider string) error {
	c.senderManager = senderManager
	c.source = source
	c.provider = provider
	return nil
}

// Warn sends an integration warning to logs + agent status.
func (c *CheckBase) Warn(v ...interface{}) error {
	w := errors.New(fmt.Sprint(v...))
	c.latestWarnings = append(c.latestWarnings, w)
	return w
}

// Warnf sends an integration warning to logs + agent status.
func (c *CheckBase) Warnf(format string, params ...interface{}) error {
	w := fmt.Errorf(format, params...)
	c.latestWarnings = append(c.latestWarnings, w)
	return w
}

// Stop does nothing by default.
func (c *CheckBase) Stop() {}

// Cancel does nothing by default.
func (c *CheckBase) Cancel() {}

// Interval returns the scheduling time for the check.
func (c *CheckBase) Interval() time.Duration { return c.checkInterval }

// String returns the name of the check, the same for every instance
func (c *CheckBase) String() string { return c.checkName }

// Version returns an empty string as Go check can't be updated independently
// from the agent
func (c *CheckBase) Version() string { return "" }

// ConfigSource returns the configuration source of the check.
func (c *CheckBase) ConfigSource() string { return c.source }

// ConfigProvider returns the name of the config provider that issued the
// check config.
func (c *CheckBase) ConfigProvider() string { return c.provider }

// Loader returns the loader name for the check.
func (*CheckBase) Loader() string { return GoCheckLoaderName }

// InitConfig returns the init_config configuration for the check.
func (c *CheckBase) InitConfig() string { return "" }

// InstanceConfig returns the instance configuration for the check.
func (c *CheckBase) InstanceConfig() string { return "" }

// ID returns a unique ID for that check instance
func (c *CheckBase) ID() checkid.ID { return c.checkID }

// IsTelemetryEnabled returns if the telemetry is enabled for this check.
func (c *CheckBase) IsTelemetryEnabled() bool { return false }

// GetWarnings grabs the latest integration warnings for the check.
func (c *CheckBase) GetWarnings() []error {
	if len(c.latestWarnings) == 0 {
		return nil
	}
	w := c.latestWarnings
	c.latestWarnings = []error{}
	return w
}

// GetSender gets the object to which metrics for this check should be sent.
func (c *CheckBase) GetSender() (sender.Sender, error) { return c.GetRawSender() }

// GetRawSender is similar to GetSender, but does not provide the safety wrapper.
func (c *CheckBase) GetRawSender() (sender.Sender, error) {
	return c.senderManager.GetSender(c.ID())
}

// GetSenderStats returns the stats from the last run of the check.
func (c *CheckBase) GetSenderStats() (stats.SenderStats, error) {
	s, err := c.GetSender()
	if err != nil {
		return stats.SenderStats{}, fmt.Errorf("failed to retrieve a sender: %v", err)
	}
	return s.GetSenderStats(), nil
}

// GetDiagnoses returns the diagnoses cached in last run or diagnose explicitly
func (c *CheckBase) GetDiagnoses() ([]diagnose.Diagnosis, error) { return nil, nil }

// IsHASupported returns if the check is compatible with High Availability
func (c *CheckBase) IsHASupported() bool { return false }
