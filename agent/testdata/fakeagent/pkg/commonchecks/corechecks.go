// Unless explicitly stated otherwise all files in this repository are licensed
// under the Apache License Version 2.0.
// This product includes software developed at Datadog (https://www.datadoghq.com/).
// Copyright 2016-present Datadog, Inc.

// This combination of build tags ensures that this file is only included Agents that are not the Cluster Agent
//go:build !(clusterchecks && kubeapiserver)

// Package commonchecks contains shared checks for multiple agent components
package commonchecks

import (
	"github.com/DataDog/datadog-agent/comp/core/config"
	"github.com/DataDog/datadog-agent/comp/core/flare"
	tagger "github.com/DataDog/datadog-agent/comp/core/tagger/def"
	telemetry "github.com/DataDog/datadog-agent/comp/core/telemetry/def"
	workloadfilter "github.com/DataDog/datadog-agent/comp/core/workloadfilter/def"
	workloadmeta "github.com/DataDog/datadog-agent/comp/core/workloadmeta/def"
	networkconfigmanagement "github.com/DataDog/datadog-agent/comp/networkconfigmanagement/def"
	traceroute "github.com/DataDog/datadog-agent/comp/networkpath/traceroute/def"
	rcclient "github.com/DataDog/datadog-agent/comp/remote-config/rcclient/def"
	snmpscanmanager "github.com/DataDog/datadog-agent/comp/snmpscanmanager/def"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	corecheckLoader "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/network"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/networkv2"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/ntp"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/system/cpu/cpu"
	telemetryCheck "github.com/DataDog/datadog-agent/pkg/collector/corechecks/telemetry"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// RegisterChecks registers all core checks
func RegisterChecks(store workloadmeta.Component, filterStore workloadfilter.Component, tagger tagger.Component, cfg config.Component,
	telemetry telemetry.Component, rcClient rcclient.Component, flare flare.Component, snmpScanManager snmpscanmanager.Component,
	traceroute traceroute.Component, ncmComp option.Option[networkconfigmanagement.Component],
) {
	telemetryForMode := telemetryProviderForLoadMode(telemetry)

	// Required checks
	corecheckLoader.RegisterCheck(cpu.CheckName, cpu.Factory())
	corecheckLoader.RegisterContextualCheck(telemetryCheck.CheckName, contextualCoreFactory(func(ctx corecheckLoader.ConstructionContext) option.Option[func() check.Check] {
		return telemetryCheck.Factory(telemetryForMode(ctx))
	}))
	corecheckLoader.RegisterCheck(ntp.CheckName, ntp.Factory())

	// Flavor specific checks
	if cfg.GetBool("use_networkv2_check") {
		corecheckLoader.RegisterCheck(network.CheckName, networkv2.Factory(cfg))
	} else {
		corecheckLoader.RegisterCheck(network.CheckName, network.Factory())
	}
}
