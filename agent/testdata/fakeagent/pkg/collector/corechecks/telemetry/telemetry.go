// Package telemetry is a stub of a core check of the Agent.
package telemetry

import (
	telemetry "github.com/DataDog/datadog-agent/comp/core/telemetry/def"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	core "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// CheckName is the name of the check
const CheckName = "telemetry"

type stubCheck struct {
	core.CheckBase
}

func (c *stubCheck) Run() error { return nil }

// Factory creates a new check factory
func Factory(telemetry telemetry.Component) option.Option[func() check.Check] {
	return option.New(func() check.Check {
		return &stubCheck{CheckBase: core.NewCheckBase(CheckName)}
	})
}
