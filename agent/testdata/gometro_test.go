package gometro_test

// TestInstall copies this file next to the adapter that install.sh installs
// in the fake checkout (testdata/fakeagent), and runs it there: the adapter
// registered by RegisterChecks, configured, run once and cancelled, as the
// Agent's collector does, against the stubs of the Agent's API.

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-agent/comp/core/autodiscovery/integration"
	networkconfigmanagement "github.com/DataDog/datadog-agent/comp/networkconfigmanagement/def"
	"github.com/DataDog/datadog-agent/pkg/aggregator/sender"
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	checkid "github.com/DataDog/datadog-agent/pkg/collector/check/id"
	"github.com/DataDog/datadog-agent/pkg/collector/check/stats"
	corechecks "github.com/DataDog/datadog-agent/pkg/collector/corechecks"
	"github.com/DataDog/datadog-agent/pkg/collector/corechecks/net/gometro"
	"github.com/DataDog/datadog-agent/pkg/commonchecks"
	"github.com/DataDog/datadog-agent/pkg/metrics/event"
	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/DataDog/datadog-agent/pkg/serializer/types"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

func TestAdapter(t *testing.T) {
	commonchecks.RegisterChecks(nil, nil, nil, config{}, nil, nil, nil, nil, nil, option.None[networkconfigmanagement.Component]())
	if keys := corechecks.GetRegisteredFactoryKeys(); !slices.Contains(keys, gometro.CheckName) {
		t.Fatalf("RegisterChecks registers %v, without %s", keys, gometro.CheckName)
	}

	factory := gometro.Factory()
	newCheck, ok := factory.Get()
	if !ok {
		t.Fatal("gometro.Factory() has no factory")
	}
	senders := &senderManager{senders: map[checkid.ID]*recorder{}}

	// Two instances, on two interfaces: two IDs, two senders.
	a, b := newCheck(), newCheck()
	if err := configure(a, senders, "interface: lo\ntags: [env:test]\n", "", "file:go_metro.d/conf.yaml[0]"); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if err := configure(b, senders, "interface: lo\nips: [192.0.2.1]\n", "", "file:go_metro.d/conf.yaml[1]"); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	if a.ID() == b.ID() || !strings.HasPrefix(string(a.ID()), gometro.CheckName+":") {
		t.Errorf("instance IDs %q and %q, want two different go_metro:... IDs", a.ID(), b.ID())
	}
	if a.String() != gometro.CheckName || a.Loader() != corechecks.GoCheckLoaderName || a.Interval() != 15*time.Second {
		t.Errorf("String, Loader, Interval = %q, %q, %v; want %q, %q, 15s", a.String(), a.Loader(), a.Interval(), gometro.CheckName, corechecks.GoCheckLoaderName)
	}
	if !senders.senders[a.ID()].finalized {
		t.Error("Configure did not call the sender's FinalizeCheckServiceTag")
	}

	// An invalid configuration is a Configure error that names the key.
	if err := configure(newCheck(), senders, "interface: lo\n", "snaplen: 40\n", "file:x"); err == nil || !strings.Contains(err.Error(), "snaplen") {
		t.Errorf("Configure with snaplen 40: error %v, want one about `snaplen`", err)
	}

	// A run submits the capture's service check through the Agent's
	// sender, and commits; cancelling stops the capture.
	if err := a.Run(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	a.Cancel()
	b.Cancel()
	r := senders.senders[a.ID()]
	if !slices.Contains(r.serviceChecks, "go_metro.can_capture") || r.commits != 1 {
		t.Errorf("the run sent service checks %v and committed %d times; want go_metro.can_capture, 1 commit", r.serviceChecks, r.commits)
	}
	_ = a.GetWarnings()
}

// provider is the config provider, which Configure takes since Agent 7.78.
// For older Agents, TestInstall removes the argument as install.sh does.
const provider = "file"

// configure configures c as the Agent's core check loader does.
func configure(c check.Check, m sender.SenderManager, instance, initConfig, source string) error {
	return c.Configure(m, 1, integration.Data(instance), integration.Data(initConfig), source, provider)
}

// config is the Agent's configuration component, with its defaults.
type config struct{}

func (config) GetBool(string) bool { return false }

// senderManager gives each check ID its recorder.
type senderManager struct {
	senders map[checkid.ID]*recorder
}

func (m *senderManager) GetSender(id checkid.ID) (sender.Sender, error) {
	if m.senders[id] == nil {
		m.senders[id] = &recorder{}
	}
	return m.senders[id], nil
}
func (m *senderManager) SetSender(sender.Sender, checkid.ID) error { return nil }
func (m *senderManager) DestroySender(checkid.ID)                  {}
func (m *senderManager) GetDefaultSender() (sender.Sender, error)  { return &recorder{}, nil }

// recorder is a sender.Sender that records service checks and commits.
type recorder struct {
	serviceChecks []string
	commits       int
	finalized     bool
}

var _ sender.Sender = (*recorder)(nil)

func (r *recorder) Commit()                                          { r.commits++ }
func (r *recorder) Gauge(string, float64, string, []string)          {}
func (r *recorder) GaugeNoIndex(string, float64, string, []string)   {}
func (r *recorder) Rate(string, float64, string, []string)           {}
func (r *recorder) Count(string, float64, string, []string)          {}
func (r *recorder) CountNoIndex(string, float64, string, []string)   {}
func (r *recorder) MonotonicCount(string, float64, string, []string) {}
func (r *recorder) MonotonicCountWithFlushFirstValue(string, float64, string, []string, bool) {
}
func (r *recorder) Counter(string, float64, string, []string)      {}
func (r *recorder) Histogram(string, float64, string, []string)    {}
func (r *recorder) Historate(string, float64, string, []string)    {}
func (r *recorder) Distribution(string, float64, string, []string) {}
func (r *recorder) ServiceCheck(name string, _ servicecheck.ServiceCheckStatus, _ string, _ []string, _ string) {
	r.serviceChecks = append(r.serviceChecks, name)
}
func (r *recorder) HistogramBucket(string, int64, float64, float64, bool, string, []string, bool) {}
func (r *recorder) GaugeWithTimestamp(string, float64, string, []string, float64) error {
	return nil
}
func (r *recorder) CountWithTimestamp(string, float64, string, []string, float64) error {
	return nil
}
func (r *recorder) Event(event.Event)                                            {}
func (r *recorder) EventPlatformEvent([]byte, string)                            {}
func (r *recorder) GetSenderStats() stats.SenderStats                            { return stats.NewSenderStats() }
func (r *recorder) DisableDefaultHostname(bool)                                  {}
func (r *recorder) SetCheckCustomTags([]string)                                  {}
func (r *recorder) SetCheckService(string)                                       {}
func (r *recorder) SetNoIndex(bool)                                              {}
func (r *recorder) FinalizeCheckServiceTag()                                     { r.finalized = true }
func (r *recorder) OrchestratorMetadata([]types.ProcessMessageBody, string, int) {}
func (r *recorder) OrchestratorManifest([]types.ProcessMessageBody, string)      {}
