// Unless explicitly stated otherwise all files in this repository are licensed
// under the Apache License Version 2.0.
// This product includes software developed at Datadog (https://www.datadoghq.com/).
// Copyright 2016-present Datadog, Inc.

// This combination of build tags ensures that this file is only included Agents that are not the Cluster Agent
//go:build !(clusterchecks && kubeapiserver)

// Package commonchecks contains shared checks for multiple agent components
package commonchecks

import (
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	corecheckLoader "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/ntp"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/system/cpu/cpu"
	telemetryCheck "github.com/DataDog/datadog-agent/pkg/collector/corechecks/telemetry"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// RegisterChecks registers all core checks
func RegisterChecks(useNetworkV2 bool,
	useDiskV2 bool,
) {
	// Required checks
	corecheckLoader.RegisterCheck(cpu.CheckName, cpu.Factory())
	corecheckLoader.RegisterContextualCheck(telemetryCheck.CheckName, contextualCoreFactory(func(corecheckLoader.ConstructionContext) option.Option[func() check.Check] {
		return telemetryCheck.Factory()
	}))
	corecheckLoader.RegisterCheck(ntp.CheckName, ntp.Factory())

	// Flavor specific checks
	if useNetworkV2 {
		corecheckLoader.RegisterCheck("network", cpu.Factory())
	} else {
		corecheckLoader.RegisterCheck("network", ntp.Factory())
	}
}

func contextualCoreFactory(f func(corecheckLoader.ConstructionContext) option.Option[func() check.Check]) option.Option[func(corecheckLoader.ConstructionContext) check.Check] {
	return option.New(func(ctx corecheckLoader.ConstructionContext) check.Check {
		opt := f(ctx)
		factory, ok := opt.Get()
		if !ok {
			return nil
		}
		return factory()
	})
}
