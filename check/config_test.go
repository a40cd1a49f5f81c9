package check_test

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// TestParseConfigErrors checks that every invalid value is an error that
// names the key, the bad value and what is allowed.
func TestParseConfigErrors(t *testing.T) {
	const eth0 = "interface: eth0\n"
	tests := []struct {
		name       string
		instance   string
		init       string
		want       []string // substrings of the error
		daemonOnly bool     // a daemon key: the Agent ignores it
	}{
		// init_config
		{name: "snaplen-too-small", instance: eth0, init: "snaplen: 40", want: []string{"invalid `snaplen` 40", "between 128 and 65535"}},
		{name: "snaplen-too-large", instance: eth0, init: "snaplen: 70000", want: []string{"invalid `snaplen` 70000", "between 128 and 65535"}},
		{name: "snaplen-not-a-number", instance: eth0, init: "snaplen: abc", want: []string{"`snaplen`", "abc", "whole number"}},
		{name: "snaplen-fraction", instance: eth0, init: "snaplen: 300.5", want: []string{"`snaplen`", "300.5", "whole number"}},
		{name: "idle_ttl-zero", instance: eth0, init: "idle_ttl: 0", want: []string{"invalid `idle_ttl` 0", "between 1 and 86400 seconds"}},
		{name: "idle_ttl-too-large", instance: eth0, init: "idle_ttl: 86401", want: []string{"invalid `idle_ttl` 86401", "between 1 and 86400 seconds"}},
		{name: "idle_ttl-not-a-number", instance: eth0, init: "idle_ttl: 5m", want: []string{"`idle_ttl`", "5m", "whole number"}},
		{name: "exp_ttl-negative", instance: eth0, init: "exp_ttl: -5", want: []string{"invalid `exp_ttl` -5", "between 1 and 86400 seconds"}},
		{name: "expired_ttl-zero", instance: eth0, init: "expired_ttl: 0", want: []string{"invalid `expired_ttl` 0", "between 1 and 86400 seconds"}},
		{name: "expired_ttl-not-a-number", instance: eth0, init: "expired_ttl: soon", want: []string{"`expired_ttl`", "soon", "whole number"}},
		{name: "expired_ttl-conflicts-with-exp_ttl", instance: eth0, init: "exp_ttl: 60\nexpired_ttl: 30",
			want: []string{"invalid `expired_ttl` 30", "legacy name of `exp_ttl`", "set, to 60", "keep only exp_ttl"}},
		{name: "max_flows-zero", instance: eth0, init: "max_flows: 0", want: []string{"invalid `max_flows` 0", "between 1 and 10000000"}},
		{name: "max_flows-too-large", instance: eth0, init: "max_flows: 10000001", want: []string{"invalid `max_flows` 10000001", "between 1 and 10000000"}},
		{name: "max_peers-zero", instance: eth0, init: "max_peers: 0", want: []string{"invalid `max_peers` 0", "between 1 and 1000000"}},
		{name: "max_peers-too-large", instance: eth0, init: "max_peers: 1000001", want: []string{"invalid `max_peers` 1000001", "between 1 and 1000000"}},
		{name: "runtime_metrics-not-a-bool", instance: eth0, init: "runtime_metrics: maybe", want: []string{"`runtime_metrics`", "maybe", "true or false"}},
		{name: "statsd_port-too-large", instance: eth0, init: "statsd_port: 70000", want: []string{"invalid `statsd_port` 70000", "between 1 and 65535"}, daemonOnly: true},
		{name: "statsd_port-negative", instance: eth0, init: "statsd_port: -1", want: []string{"invalid `statsd_port` -1", "between 1 and 65535"}, daemonOnly: true},
		{name: "statsd_port-not-a-number", instance: eth0, init: "statsd_port: abc", want: []string{"`statsd_port`", "\"abc\"", "whole number"}, daemonOnly: true},
		{name: "statsd_port-zero", instance: eth0, init: "statsd_port: 0", want: []string{"invalid `statsd_port` 0", "between 1 and 65535"}, daemonOnly: true},
		{name: "log_level-unknown", instance: eth0, init: "log_level: verbose", want: []string{"invalid `log_level` \"verbose\"", "must be one of", "debug, info"}, daemonOnly: true},
		{name: "init_config-syntax", instance: eth0, init: "snaplen: [256", want: []string{"parse init_config"}},

		// instances
		{name: "interface-missing", instance: "tags: [env:test]", want: []string{"missing `interface`", "such as eth0"}},
		{name: "interface-empty", instance: "interface: ''", want: []string{"missing `interface`", "such as eth0"}},
		{name: "interface-list", instance: "interface: [eth0, eth1]", want: []string{"`interface`", "[eth0, eth1]", "a string"}},
		{name: "min_collection_interval-zero", instance: eth0 + "min_collection_interval: 0", want: []string{"invalid `min_collection_interval` 0", "between 1 and 3600 seconds"}},
		{name: "min_collection_interval-too-large", instance: eth0 + "min_collection_interval: 3601", want: []string{"invalid `min_collection_interval` 3601", "between 1 and 3600 seconds"}},
		{name: "ring_size-too-small", instance: eth0 + "ring_size: 1000", want: []string{"invalid `ring_size` 1000", "between 1048576 (1 MiB) and 1073741824 (1 GiB) bytes"}},
		{name: "ring_size-too-large", instance: eth0 + "ring_size: 2147483648", want: []string{"invalid `ring_size` 2147483648", "between 1048576"}},
		{name: "tags-empty-entry", instance: eth0 + "tags: [env:test, '']", want: []string{"invalid `tags` entry \"\"", "non-empty strings"}},
		{name: "service_tags-not-a-bool", instance: eth0 + "service_tags: yes please", want: []string{"`service_tags`", "yes please", "true or false"}},
		{name: "max_ports-zero", instance: eth0 + "max_ports: 0", want: []string{"invalid `max_ports` 0", "between 1 and 65535", "port:other"}},
		{name: "max_ports-too-large", instance: eth0 + "max_ports: 70000", want: []string{"invalid `max_ports` 70000", "between 1 and 65535"}},
		{name: "max_ports-not-a-number", instance: eth0 + "max_ports: many", want: []string{"`max_ports`", "many", "whole number"}},
		{name: "peer_prefix_v4-negative", instance: eth0 + "peer_prefix_v4: -1", want: []string{"invalid `peer_prefix_v4` -1", "between 0", "and 32 bits"}},
		{name: "peer_prefix_v4-too-large", instance: eth0 + "peer_prefix_v4: 33", want: []string{"invalid `peer_prefix_v4` 33", "and 32 bits"}},
		{name: "peer_prefix_v4-cidr", instance: eth0 + "peer_prefix_v4: /24", want: []string{"`peer_prefix_v4`", "/24", "whole number"}},
		{name: "peer_prefix_v6-too-large", instance: eth0 + "peer_prefix_v6: 129", want: []string{"invalid `peer_prefix_v6` 129", "and 128 bits"}},
		{name: "peer_prefix_v6-fraction", instance: eth0 + "peer_prefix_v6: 48.5", want: []string{"`peer_prefix_v6`", "48.5", "whole number"}},
		{name: "distribution-not-a-bool", instance: eth0 + "distribution: 1", want: []string{"`distribution`", "1", "true or false"}},
		{name: "percentile_gauges-not-a-bool", instance: eth0 + "percentile_gauges: [p50]", want: []string{"`percentile_gauges`", "true or false"}},
		{name: "tcp_health-not-a-bool", instance: eth0 + "tcp_health: off please", want: []string{"`tcp_health`", "true or false"}},
		{name: "syn_timeout-zero", instance: eth0 + "syn_timeout: 0", want: []string{"invalid `syn_timeout` 0", "between 1 and 600 seconds"}},
		{name: "syn_timeout-too-large", instance: eth0 + "syn_timeout: 601", want: []string{"invalid `syn_timeout` 601", "between 1 and 600 seconds"}},
		{name: "syn_timeout-duration", instance: eth0 + "syn_timeout: 10s", want: []string{"`syn_timeout`", "10s", "whole number"}},
		{name: "tags-not-a-list", instance: eth0 + "tags: env:test", want: []string{"`tags`", "env:test", "a list of strings"}},
		{name: "methods-unknown", instance: eth0 + "methods: [timestamp, fast]", want: []string{"invalid `methods` entry \"fast\"", "timestamp, seqack, handshake"}},
		{name: "methods-empty-entry", instance: eth0 + "methods: ['']", want: []string{"invalid `methods` entry \"\"", "timestamp, seqack, handshake"}},
		{name: "local_ips-not-an-address", instance: eth0 + "local_ips: [nope]", want: []string{"invalid `local_ips` entry", "\"nope\"", "IP address such as 192.0.2.1"}},
		{name: "local_ips-bad-prefix", instance: eth0 + "local_ips: [10.0.0.0/33]", want: []string{"invalid `local_ips` entry", "\"10.0.0.0/33\"", "CIDR prefix such as"}},
		{name: "ips-host-name", instance: eth0 + "ips: [db.example]", want: []string{"invalid `ips` entry", "\"db.example\"", "host names belong in `hosts`"}},
		{name: "ips-bad-address", instance: eth0 + "ips: [192.0.2.300]", want: []string{"invalid `ips` entry", "\"192.0.2.300\"", "IP address such as"}},
		{name: "hosts-empty", instance: eth0 + "hosts: ['']", want: []string{"invalid `hosts` entry \"\"", "host name such as db.example"}},
		{name: "hosts-prefix", instance: eth0 + "hosts: [10.0.0.0/8]", want: []string{"invalid `hosts` entry \"10.0.0.0/8\"", "belongs in `ips`"}},
		{name: "instance-not-a-mapping", instance: "- interface: eth0", want: []string{"parse instance"}},
		{name: "instance-syntax", instance: "interface: [eth0", want: []string{"parse instance"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, agent := range []bool{false, true} {
				cfg, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), agent)
				if agent && tt.daemonOnly {
					// Ignored with a warning, not validated.
					if err != nil || len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0], "the Agent check ignores it") {
						t.Errorf("ParseConfig(agent=true) = %v, %v; want the daemon key ignored with a warning", cfg, err)
					}
					continue
				}
				if err == nil {
					t.Fatalf("ParseConfig(agent=%v) = %+v, want an error", agent, cfg)
				}
				for _, w := range tt.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("ParseConfig(agent=%v) error %q lacks %q", agent, err, w)
					}
				}
			}
		})
	}
}

// TestConfigureError checks that Configure returns the configuration
// error, names the check, and leaves the check unconfigured.
func TestConfigureError(t *testing.T) {
	var c check.Check
	err := c.Configure([]byte("interface: eth0"), []byte("snaplen: 40"))
	if err == nil || !strings.Contains(err.Error(), "configure go_metro: invalid `snaplen` 40") {
		t.Errorf("Configure() = %v, want the snaplen error", err)
	}
	if c.Config() != nil {
		t.Errorf("Config() = %+v after a failed Configure, want nil", c.Config())
	}
}

// TestParseConfigDefaults checks the configuration of a minimal instance,
// with init_config empty, null or with keys left empty.
func TestParseConfigDefaults(t *testing.T) {
	want := &check.Config{
		Init: check.InitConfig{
			Snaplen:    capture.DefaultSnaplen,
			IdleTTL:    300,
			ExpTTL:     60,
			MaxFlows:   capture.DefaultMaxFlows,
			MaxPeers:   capture.DefaultMaxPeers,
			StatsdIP:   "127.0.0.1",
			StatsdPort: 8125,
			LogLevel:   "info",
		},
		Instance: check.Instance{
			Interface: "eth0", MinCollectionInterval: 15, MaxPorts: capture.DefaultMaxPorts,
			Distribution: true, PercentileGauges: true, TCPHealth: true, SYNTimeout: 10, Workers: 1,
		},
		Capture: capture.LiveConfig{
			Interface: "eth0",
			Snaplen:   capture.DefaultSnaplen,
			Workers:   1,
			Engine: capture.Config{
				IdleTTL:    capture.DefaultIdleTTL,
				ExpTTL:     capture.DefaultExpTTL,
				MaxFlows:   capture.DefaultMaxFlows,
				MaxPeers:   capture.DefaultMaxPeers,
				MaxPorts:   capture.DefaultMaxPorts,
				SYNTimeout: capture.DefaultSYNTimeout,
			},
		},
		Interval: check.DefaultInterval,
	}
	tests := []struct {
		name, instance, init string
	}{
		{name: "empty-init", instance: "interface: eth0"},
		{name: "null-init", instance: "interface: eth0", init: "null"},
		{name: "empty-mapping-init", instance: "interface: eth0", init: "{}"},
		{name: "keys-without-values", instance: "interface: eth0\nmin_collection_interval:\nring_size:", init: "snaplen:\nidle_ttl:\nexp_ttl:\nmax_flows:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, agent := range []bool{false, true} {
				got, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), agent)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, cmpopts.IgnoreUnexported(check.Config{})); diff != "" {
					t.Errorf("ParseConfig(agent=%v) (-want +got):\n%s", agent, diff)
				}
			}
		})
	}
}

// TestParseConfigValues checks that valid values reach the capture
// configuration, including the bounds of each range.
func TestParseConfigValues(t *testing.T) {
	tests := []struct {
		name, instance, init string
		daemon               bool                         // parse outside the Agent
		check                func(c *check.Config) string // returns a mismatch, or ""
	}{
		{name: "snaplen-bounds", instance: "interface: eth0", init: "snaplen: 128", check: func(c *check.Config) string {
			return mismatch(c.Capture.Snaplen, 128)
		}},
		{name: "snaplen-max", instance: "interface: eth0", init: "snaplen: 65535", check: func(c *check.Config) string {
			return mismatch(c.Capture.Snaplen, 65535)
		}},
		{name: "ttls", instance: "interface: eth0", init: "idle_ttl: 86400\nexp_ttl: 1", check: func(c *check.Config) string {
			return mismatch(c.Capture.Engine.IdleTTL, 24*time.Hour) + mismatch(c.Capture.Engine.ExpTTL, time.Second)
		}},
		{name: "max_flows", instance: "interface: eth0", init: "max_flows: 1", check: func(c *check.Config) string {
			return mismatch(c.Capture.Engine.MaxFlows, 1)
		}},
		{name: "max_peers", instance: "interface: eth0", init: "max_peers: 1000000", check: func(c *check.Config) string {
			return mismatch(c.Capture.Engine.MaxPeers, 1000000)
		}},
		{name: "runtime_metrics", instance: "interface: eth0", init: "runtime_metrics: true", check: func(c *check.Config) string {
			return mismatch(c.Init.RuntimeMetrics, true)
		}},
		{name: "interval", instance: "interface: eth0\nmin_collection_interval: 3600", check: func(c *check.Config) string {
			return mismatch(c.Interval, time.Hour)
		}},
		{name: "ring_size", instance: "interface: eth0\nring_size: 1048576", check: func(c *check.Config) string {
			return mismatch(c.Capture.RingSize, 1<<20)
		}},
		{name: "service-options", instance: "interface: eth0\nservice_tags: true\nmax_ports: 65535\npeer_prefix_v4: 32\npeer_prefix_v6: 128\nsyn_timeout: 600\ntcp_health: false", check: func(c *check.Config) string {
			e := c.Capture.Engine
			return mismatch(e.ServiceTags, true) + mismatch(e.MaxPorts, 65535) + mismatch(e.PrefixV4, 32) + mismatch(e.PrefixV6, 128) +
				mismatch(e.SYNTimeout, 600*time.Second) + mismatch(e.NoTCPCounts, true)
		}},
		{name: "service-options-low", instance: "interface: eth0\nmax_ports: 1\npeer_prefix_v4: 0\nsyn_timeout: 1\ndistribution: false\npercentile_gauges: false", check: func(c *check.Config) string {
			e := c.Capture.Engine
			return mismatch(e.MaxPorts, 1) + mismatch(e.PrefixV4, 0) + mismatch(e.SYNTimeout, time.Second) +
				mismatch(c.Instance.Distribution, false) + mismatch(c.Instance.PercentileGauges, false)
		}},
		{name: "any-interface", instance: "interface: any", check: func(c *check.Config) string {
			return mismatch(c.Capture.Interface, "any")
		}},
		{name: "netns", instance: "interface: eth0\nnetns: /proc/1/ns/net", check: func(c *check.Config) string {
			return mismatch(c.Capture.Netns, "/proc/1/ns/net")
		}},
		{name: "peers-and-local", instance: "interface: eth0\nips: [192.0.2.7, 10.0.0.0/8]\nhosts: [db.example]\nlocal_ips: [203.0.113.0/24]", check: func(c *check.Config) string {
			return mismatch(c.Capture.Peers, capture.PeerSpec{IPs: []string{"192.0.2.7", "10.0.0.0/8"}, Hosts: []string{"db.example"}}) +
				mismatch(c.Capture.Local, []string{"203.0.113.0/24"})
		}},
		{name: "agent-instance-keys", instance: "interface: eth0\nservice: web\nempty_default_hostname: true\ndisable_generic_tags: true\nmetric_patterns:\n  include: [system.net.*]", check: func(c *check.Config) string {
			return mismatch(len(c.Warnings), 0)
		}},
		{name: "log-levels", instance: "interface: eth0", init: "log_level: WARNING", daemon: true, check: func(c *check.Config) string {
			return mismatch(c.Init.LogLevel, "WARNING")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), !tt.daemon)
			if err != nil {
				t.Fatal(err)
			}
			if m := tt.check(c); m != "" {
				t.Error(m)
			}
		})
	}
}

func mismatch(got, want any) string {
	if diff := cmp.Diff(want, got); diff != "" {
		return "(-want +got):\n" + diff
	}
	return ""
}

// TestParseConfigLogLevels checks every level of the go-metro daemon.
func TestParseConfigLogLevels(t *testing.T) {
	for _, level := range []string{"trace", "debug", "info", "warn", "warning", "error", "critical", "off", "INFO"} {
		t.Run(level, func(t *testing.T) {
			if _, err := check.ParseConfig([]byte("interface: eth0"), []byte("log_level: "+level), false); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestParseConfigExpiredTTL checks the legacy name of exp_ttl.
func TestParseConfigExpiredTTL(t *testing.T) {
	tests := []struct {
		name string
		init string
		want time.Duration
	}{
		{name: "exp_ttl", init: "exp_ttl: 45", want: 45 * time.Second},
		{name: "expired_ttl", init: "expired_ttl: 30", want: 30 * time.Second},
		{name: "both-equal", init: "exp_ttl: 30\nexpired_ttl: 30", want: 30 * time.Second},
		{name: "neither", want: capture.DefaultExpTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte("interface: eth0"), []byte(tt.init), true)
			if err != nil {
				t.Fatal(err)
			}
			if c.Capture.Engine.ExpTTL != tt.want || c.Init.ExpTTL != int(tt.want/time.Second) {
				t.Errorf("exp TTL %v (init_config %d s), want %v", c.Capture.Engine.ExpTTL, c.Init.ExpTTL, tt.want)
			}
			if len(c.Warnings) != 0 {
				t.Errorf("warnings %q, want none: expired_ttl is a known key", c.Warnings)
			}
		})
	}
}

// TestParseConfigUnknownKeys checks that unknown keys are warnings, with
// the nearest known key as a suggestion, and are otherwise ignored.
func TestParseConfigUnknownKeys(t *testing.T) {
	tests := []struct {
		name, instance, init string
		want                 []string
	}{
		{name: "exp_tll", instance: "interface: eth0", init: "exp_tll: 30",
			want: []string{"unknown init_config key `exp_tll` (did you mean `exp_ttl`?): it is ignored"}},
		{name: "snaplength", instance: "interface: eth0", init: "snap_len: 512",
			want: []string{"unknown init_config key `snap_len` (did you mean `snaplen`?): it is ignored"}},
		{name: "ip", instance: "interface: eth0\nip: [192.0.2.7]",
			want: []string{"unknown instance key `ip` (did you mean `ips`?): it is ignored"}},
		{name: "tag", instance: "interface: eth0\ntag: [a:b]",
			want: []string{"unknown instance key `tag` (did you mean `tags`?): it is ignored"}},
		{name: "no-close-key", instance: "interface: eth0\ncolour: blue",
			want: []string{"unknown instance key `colour`: it is ignored"}},
		{name: "instance-key-in-init_config", instance: "interface: eth0", init: "interface: eth1",
			want: []string{"unknown init_config key `interface`: it is ignored"}},
		{name: "sorted", instance: "interface: eth0\nzz: 1\naa: 2", init: "exp_tll: 30",
			want: []string{
				"unknown init_config key `exp_tll` (did you mean `exp_ttl`?): it is ignored",
				"unknown instance key `aa`: it is ignored",
				"unknown instance key `zz`: it is ignored",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), false)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if c.Capture.Engine.ExpTTL != capture.DefaultExpTTL || c.Capture.Interface != "eth0" || c.Capture.Peers.IPs != nil || c.Instance.Tags != nil {
				t.Errorf("an unknown key changed the configuration: %+v", c)
			}
		})
	}
}

// TestParseConfigDaemonKeys checks that the go-metro daemon's keys are
// parsed, and ignored with a warning naming each only inside the Agent.
func TestParseConfigDaemonKeys(t *testing.T) {
	const init = "statsd_ip: 127.0.0.1\nstatsd_port: 8125\nlog_to_file: true\nlog_level: debug\nlog_file: /var/log/datadog/go-metro.log"
	daemon := func(k string) string {
		return "init_config key `" + k + "` is a setting of the standalone go-metro daemon; the Agent check ignores it"
	}
	tests := []struct {
		name  string
		agent bool
		want  []string
	}{
		{name: "daemon", agent: false},
		{name: "agent", agent: true, want: []string{daemon("statsd_ip"), daemon("statsd_port"), daemon("log_to_file"), daemon("log_level"), daemon("log_file")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte("interface: eth0"), []byte(init), tt.agent)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			wantInit := check.InitConfig{
				Snaplen: capture.DefaultSnaplen, IdleTTL: 300, ExpTTL: 60, MaxFlows: capture.DefaultMaxFlows, MaxPeers: capture.DefaultMaxPeers,
				StatsdIP: "127.0.0.1", StatsdPort: 8125, LogToFile: true, LogLevel: "debug", LogFile: "/var/log/datadog/go-metro.log",
			}
			if tt.agent {
				// Not even read: the defaults stay.
				wantInit.LogToFile, wantInit.LogLevel, wantInit.LogFile = false, "info", ""
			}
			if diff := cmp.Diff(wantInit, c.Init); diff != "" {
				t.Errorf("init_config (-want +got):\n%s", diff)
			}
		})
	}
	// Configure follows Check.InAgent.
	for _, inAgent := range []bool{false, true} {
		c := &check.Check{InAgent: inAgent}
		if err := c.Configure([]byte("interface: eth0"), []byte(init)); err != nil {
			t.Fatal(err)
		}
		if n := len(c.Config().Warnings); (n > 0) != inAgent {
			t.Errorf("InAgent=%v: %d warnings %q", inAgent, n, c.Config().Warnings)
		}
	}
}

// TestParseConfigMethods checks the methods list.
func TestParseConfigMethods(t *testing.T) {
	var (
		ts = capture.Methods(0).With(capture.MethodTimestamp)
		sa = capture.Methods(0).With(capture.MethodSeqAck)
		hs = capture.Methods(0).With(capture.MethodHandshake)
	)
	tests := []struct {
		name    string
		methods string
		want    capture.Methods // 0: the engine's default, every method
	}{
		{name: "absent", want: 0},
		{name: "empty", methods: "methods: []", want: 0},
		{name: "timestamp", methods: "methods: [timestamp]", want: ts},
		{name: "seqack-handshake", methods: "methods: [seqack, handshake]", want: sa | hs},
		{name: "all", methods: "methods: [timestamp, seqack, handshake]", want: capture.AllMethods},
		{name: "spaces-and-duplicates", methods: "methods: [' seqack', 'seqack ']", want: sa},
		{name: "block-list", methods: "methods:\n  - handshake", want: hs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte("interface: eth0\n"+tt.methods), nil, true)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Capture.Engine.Methods; got != tt.want {
				t.Errorf("methods %v (%d), want %v (%d)", got, got, tt.want, tt.want)
			}
		})
	}
}

// goMetroExample is go-metro's own go-metro.yaml.example (the daemon of
// Agent 5, whose instances are under `config`), comments shortened.
const goMetroExample = `# for go metro to run unprivileged: sudo setcap cap_net_raw+ep /opt/datadog-agent/bin/go-metro
init_config:
    snaplen: 512            # should be >=104 (to accomodate for the largest possible TCP header)
    idle_ttl: 300           # time after which an idle flow (no traffic received) is flushed.
    exp_ttl: 60             # time after which a finished flow is flushed.
    statsd_ip: 127.0.0.1
    statsd_port: 8125
    log_to_file: true
    log_level: info         # available levels: trace, debug, info, warning, error, critical

config:
- interface: eth0           # metrics will be also tagged by interface.
  tags:
    - foo:bar
  ips:                        # Whitelist by IP
    - 192.168.0.1
  hosts:                      # Whitelist by hostname
    - somehost.somedomain.to
# - interface: eth2
#   tags:
#     - bla:zap
#   hosts:
#     - datadog.com
`

// splitConfFile returns the init_config section and each instance of a
// conf.d file, as the Agent hands them to a check. Agent 5's go-metro file
// lists its instances under `config`.
func splitConfFile(tb testing.TB, data string) (initYAML []byte, instances [][]byte) {
	tb.Helper()
	var f struct {
		InitConfig yaml.Node   `yaml:"init_config"`
		Instances  []yaml.Node `yaml:"instances"`
		Config     []yaml.Node `yaml:"config"`
	}
	if err := yaml.Unmarshal([]byte(data), &f); err != nil {
		tb.Fatal(err)
	}
	out := func(n *yaml.Node) []byte {
		b, err := yaml.Marshal(n)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	initYAML = out(&f.InitConfig)
	for _, n := range slices.Concat(f.Instances, f.Config) {
		instances = append(instances, out(&n))
	}
	return initYAML, instances
}

// TestParseConfigGoMetroFiles checks that go-metro's configuration files
// parse unchanged, in the daemon and in the Agent, where the daemon's keys
// are warnings.
func TestParseConfigGoMetroFiles(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		tags  []string
		ips   []string
		hosts []string
	}{
		{name: "go-metro.yaml.example", file: goMetroExample, tags: []string{"foo:bar"}, ips: []string{"192.168.0.1"}, hosts: []string{"somehost.somedomain.to"}},
		{name: "integration-page", file: string(integrationPageExample(t)), tags: []string{"env:prod"}, ips: []string{"45.33.125.153"}, hosts: []string{"app.datadoghq.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			initYAML, instances := splitConfFile(t, tt.file)
			if len(instances) != 1 {
				t.Fatalf("%d instances, want 1", len(instances))
			}
			for _, agent := range []bool{false, true} {
				c, err := check.ParseConfig(instances[0], initYAML, agent)
				if err != nil {
					t.Fatalf("agent=%v: %v", agent, err)
				}
				want := check.InitConfig{
					Snaplen: 512, IdleTTL: 300, ExpTTL: 60, MaxFlows: capture.DefaultMaxFlows, MaxPeers: capture.DefaultMaxPeers,
					StatsdIP: "127.0.0.1", StatsdPort: 8125, LogToFile: !agent, LogLevel: "info",
				}
				if diff := cmp.Diff(want, c.Init); diff != "" {
					t.Errorf("agent=%v: init_config (-want +got):\n%s", agent, diff)
				}
				wantCapture := capture.LiveConfig{
					Interface: "eth0",
					Snaplen:   512,
					Peers:     capture.PeerSpec{IPs: tt.ips, Hosts: tt.hosts},
					Workers:   1,
					Engine: capture.Config{IdleTTL: 300 * time.Second, ExpTTL: 60 * time.Second, MaxFlows: capture.DefaultMaxFlows, MaxPeers: capture.DefaultMaxPeers,
						MaxPorts: capture.DefaultMaxPorts, SYNTimeout: capture.DefaultSYNTimeout},
				}
				if diff := cmp.Diff(wantCapture, c.Capture); diff != "" {
					t.Errorf("agent=%v: capture (-want +got):\n%s", agent, diff)
				}
				if diff := cmp.Diff(tt.tags, c.Instance.Tags); diff != "" {
					t.Errorf("agent=%v: tags (-want +got):\n%s", agent, diff)
				}
				var keys []string
				for _, w := range c.Warnings {
					k, _, _ := strings.Cut(strings.TrimPrefix(w, "init_config key `"), "`")
					keys = append(keys, k)
				}
				var wantKeys []string
				if agent {
					wantKeys = []string{"statsd_ip", "statsd_port", "log_to_file", "log_level"}
				}
				if diff := cmp.Diff(wantKeys, keys); diff != "" {
					t.Errorf("agent=%v: keys warned about (-want +got):\n%s\nwarnings: %q", agent, diff, c.Warnings)
				}
			}
		})
	}
}

// TestConfigKeys checks that the keys of the specification are all known.
func TestConfigKeys(t *testing.T) {
	initKeys, instanceKeys := check.ConfigKeys()
	for _, k := range []string{"snaplen", "idle_ttl", "exp_ttl", "expired_ttl", "max_flows", "runtime_metrics", "statsd_ip", "statsd_port", "log_to_file", "log_level"} {
		if !slices.Contains(initKeys, k) {
			t.Errorf("init_config key %q missing from ConfigKeys", k)
		}
	}
	for _, k := range []string{"interface", "ips", "hosts", "tags", "local_ips", "methods", "min_collection_interval", "netns"} {
		if !slices.Contains(instanceKeys, k) {
			t.Errorf("instance key %q missing from ConfigKeys", k)
		}
	}
}

// integrationPageExample returns the example go-metro.yaml of the go-metro
// integration page (Agent 5), as it is: testdata/integration-page-example.yaml.
func integrationPageExample(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile("testdata/integration-page-example.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestParseConfigAgentCommonKeys checks the keys every Agent check has,
// as go-metro applies them outside the Agent: init_config's
// min_collection_interval is the instances' default, and is validated.
func TestParseConfigAgentCommonKeys(t *testing.T) {
	for _, tt := range []struct {
		name, instance, init string
		interval             time.Duration
		service              string
		warnings             []string
	}{
		{name: "init-interval", instance: "interface: eth0", init: "min_collection_interval: 30", interval: 30 * time.Second},
		{name: "instance-interval-wins", instance: "interface: eth0\nmin_collection_interval: 5", init: "min_collection_interval: 30", interval: 5 * time.Second},
		{name: "init-service", instance: "interface: eth0", init: "service: web", interval: 15 * time.Second, service: "web"},
		{name: "instance-service-wins", instance: "interface: eth0\nservice: db", init: "service: web", interval: 15 * time.Second, service: "db"},
		{name: "agent-only-keys", instance: "interface: eth0\nempty_default_hostname: true\ndisable_generic_tags: true\nno_index: true", interval: 15 * time.Second,
			warnings: []string{
				"instance key `empty_default_hostname` has an effect only inside the Agent; go-metro check and go-metro run ignore it",
				"instance key `disable_generic_tags` has an effect only inside the Agent; go-metro check and go-metro run ignore it",
				"instance key `no_index` has an effect only inside the Agent; go-metro check and go-metro run ignore it",
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), false)
			if err != nil {
				t.Fatal(err)
			}
			if c.Interval != tt.interval || c.Service != tt.service {
				t.Errorf("interval %v, service %q; want %v and %q", c.Interval, c.Service, tt.interval, tt.service)
			}
			if diff := cmp.Diff(tt.warnings, c.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			// Inside the Agent, the Agent applies them: no warning.
			if c, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), true); err != nil || len(c.Warnings) > 0 {
				t.Errorf("in the Agent: %v, warnings %q", err, c.Warnings)
			}
		})
	}
	for _, tt := range []struct {
		name, instance, init string
		want                 []string
	}{
		{name: "init-interval-not-a-number", instance: "interface: eth0", init: "min_collection_interval: abc",
			want: []string{"invalid `min_collection_interval` \"abc\": must be a whole number"}},
		{name: "init-interval-zero", instance: "interface: eth0", init: "min_collection_interval: 0",
			want: []string{"invalid `min_collection_interval` 0: must be between 1 and 3600 seconds"}},
		{name: "service-empty", instance: "interface: eth0\nservice: ' '", want: []string{"invalid `service`"}},
		{name: "service-list", instance: "interface: eth0\nservice: [a]", want: []string{"invalid `service` [a]: must be a string"}},
		{name: "metric_patterns-bad-regexp", instance: "interface: eth0\nmetric_patterns: {include: ['system.net.(']}",
			want: []string{"invalid `metric_patterns` include entry \"system.net.(\": error parsing regexp"}},
		{name: "metric_patterns-typo", instance: "interface: eth0\nmetric_patterns: {includes: [rtt]}",
			want: []string{"invalid `metric_patterns` key `includes` (did you mean `include`?): must be a mapping of include and exclude, each a list of strings"}},
		{name: "metric_patterns-not-a-list", instance: "interface: eth0\nmetric_patterns: {exclude: rtt}",
			want: []string{"invalid `metric_patterns` exclude \"rtt\": must be a mapping of include and exclude"}},
		{name: "metric_patterns-list", instance: "interface: eth0\nmetric_patterns: [rtt]",
			want: []string{"invalid `metric_patterns` [rtt]: must be a mapping of include and exclude"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, agent := range []bool{false, true} {
				_, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), agent)
				for _, w := range tt.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("agent=%v: error %v, want %q", agent, err, w)
					}
				}
			}
		})
	}
}

// TestCheckServiceAndMetricPatterns runs the check outside the Agent: the
// service tag is on every metric and on the service check, and
// metric_patterns decides which metrics are sent, exclude first. Inside
// the Agent, the sender adds the service tag: the check does not.
func TestCheckServiceAndMetricPatterns(t *testing.T) {
	c, _ := withFake(t, "interface: eth0\ntags: [env:test, iface:eth0]\nmetric_patterns:\n  include: ['^go_metro\\.', 'rtt\\.p9']\n  exclude: [dropped, p95]", "service: web", nil)
	b := run(t, c, newRecorder(t))
	var names []string
	for _, s := range b.Series {
		names = append(names, s.Metric)
		if diff := cmp.Diff(sortedTags("iface:eth0", "env:test", "service:web"), sortedTags(s.Tags...)); diff != "" {
			t.Errorf("%s tags (-want +got):\n%s", s.Metric, diff)
		}
	}
	slices.Sort(names)
	want := []string{check.MetricDecodeErrors, check.MetricFlowsActive, check.MetricFlowsEvicted, check.MetricPacketsReceived, check.MetricSamplesDiscarded}
	slices.Sort(want)
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("metrics sent (-want +got):\n%s", diff)
	}
	sc := canCapture(t, b)
	if diff := cmp.Diff(sortedTags("iface:eth0", "env:test", "service:web"), sortedTags(sc.Tags...)); diff != "" {
		t.Errorf("service check tags (-want +got):\n%s", diff)
	}

	agent := &check.Check{InAgent: true}
	if err := agent.Configure([]byte("interface: eth0\nservice: db"), nil); err != nil {
		t.Fatal(err)
	}
	agent.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) { return newFakeCapture(t, cfg, nil), nil }
	defer agent.Cancel()
	if tags := canCapture(t, run(t, agent, newRecorder(t))).Tags; slices.Contains(tags, "service:db") {
		t.Errorf("in the Agent, the check added the service tag itself: %q", tags)
	}
}

// TestParseConfigAgent5 checks the values of go-metro's Agent 5 files: a
// snaplen from 104 (its documented minimum) to 127 is raised to 128 with
// a warning, and log_level takes err and crit.
func TestParseConfigAgent5(t *testing.T) {
	for _, n := range []int{104, 127} {
		c, err := check.ParseConfig([]byte("interface: eth0"), fmt.Appendf(nil, "snaplen: %d", n), false)
		if err != nil {
			t.Fatalf("snaplen %d: %v", n, err)
		}
		if c.Capture.Snaplen != 128 || len(c.Warnings) != 1 || !strings.Contains(c.Warnings[0], fmt.Sprintf("init_config `snaplen` %d is below 128", n)) ||
			!strings.Contains(c.Warnings[0], "raised to 128") {
			t.Errorf("snaplen %d: capture snaplen %d, warnings %q; want 128 and a warning", n, c.Capture.Snaplen, c.Warnings)
		}
	}
	if _, err := check.ParseConfig([]byte("interface: eth0"), []byte("snaplen: 103"), false); err == nil || !strings.Contains(err.Error(), "invalid `snaplen` 103: must be between 128 and 65535") {
		t.Errorf("snaplen 103: %v, want the range error", err)
	}
	for level, want := range map[string]string{"err": "error", "crit": "critical", "ERR": "error"} {
		c, err := check.ParseConfig([]byte("interface: eth0"), []byte("log_level: "+level), false)
		if err != nil || c.Init.LogLevel != want {
			t.Errorf("log_level %s: %v, level %q; want %q", level, err, c.Init.LogLevel, want)
		}
	}
}

// TestParseConfigErrorSection checks that an error names its section, so
// that it is reported at the right line, and that a typo hint stays with
// the error it may have caused.
func TestParseConfigErrorSection(t *testing.T) {
	for _, tt := range []struct {
		name, instance, init, section string
		want                          string
	}{
		{name: "init", instance: "interface: eth0", init: "snaplen: 40", section: "init_config", want: "invalid `snaplen` 40: must be between 128 and 65535"},
		{name: "init-type", instance: "interface: eth0", init: "idle_ttl: [1]", section: "init_config", want: "invalid `idle_ttl` [1]: must be a whole number"},
		{name: "instance", instance: "interface: eth0\nring_size: 1", section: "instance", want: "invalid `ring_size` 1"},
		{name: "typo-kept", instance: "interfce: eth0", section: "instance",
			want: "missing `interface`: name the interface to capture on, such as eth0, or any for all interfaces (unknown instance key `interfce`: did you mean `interface`?)"},
		{name: "typo-in-other-section-kept", instance: "interface: eth0", init: "snap_len: 512\nidle_ttl: 0", section: "init_config",
			want: "invalid `idle_ttl` 0: must be between 1 and 86400 seconds (unknown init_config key `snap_len`: did you mean `snaplen`?)"},
		{name: "huge-number", instance: "interface: eth0", init: "snaplen: 99999999999999999999999", section: "init_config",
			want: "invalid `snaplen` 99999999999999999999999: out of range: far too large a number"},
		{name: "huge-negative", instance: "interface: eth0\nring_size: -99999999999999999999999", section: "instance",
			want: "invalid `ring_size` -99999999999999999999999: out of range"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := check.ParseConfig([]byte(tt.instance), []byte(tt.init), false)
			var ce *check.ConfigError
			if !errors.As(err, &ce) || ce.Section != tt.section {
				t.Fatalf("error %v, want a *ConfigError in %s", err, tt.section)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want %q", err, tt.want)
			}
		})
	}
}
