// Package networkv2 is a stub of a core check of the Agent.
package networkv2

import (
	"github.com/DataDog/datadog-agent/comp/core/config"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	core "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// CheckName is the name of the check
const CheckName = "network"

type stubCheck struct {
	core.CheckBase
}

func (c *stubCheck) Run() error { return nil }

// Factory creates a new check factory
func Factory(cfg config.Component) option.Option[func() check.Check] {
	return option.New(func() check.Check {
		return &stubCheck{CheckBase: core.NewCheckBase(CheckName)}
	})
}
