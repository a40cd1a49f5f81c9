package check

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
)

// InitConfig is the init_config section: settings shared by all instances.
// Field defaults are set before unmarshalling, so an explicit 0 stays
// distinguishable from an absent key.
type InitConfig struct {
	Snaplen  int `yaml:"snaplen"`
	IdleTTL  int `yaml:"idle_ttl"` // seconds
	ExpTTL   int `yaml:"exp_ttl"`  // seconds; expired_ttl is an alias
	MaxFlows int `yaml:"max_flows"`
	MaxPeers int `yaml:"max_peers"`
	// RuntimeMetrics enables the runtime.go.* metrics of the process.
	RuntimeMetrics bool `yaml:"runtime_metrics"`

	// The go-metro daemon's keys: used by `go-metro run`, ignored (with a
	// warning) inside the Agent.
	StatsdIP   string `yaml:"statsd_ip"`
	StatsdPort int    `yaml:"statsd_port"`
	LogToFile  bool   `yaml:"log_to_file"`
	LogLevel   string `yaml:"log_level"`
	LogFile    string `yaml:"log_file"`
}

// Instance is one instances entry: one capture.
type Instance struct {
	Interface string   `yaml:"interface"`
	IPs       []string `yaml:"ips"`
	Hosts     []string `yaml:"hosts"`
	Tags      []string `yaml:"tags"`
	LocalIPs  []string `yaml:"local_ips"`
	Methods   []string `yaml:"methods"`
	// MinCollectionInterval is the run interval in seconds.
	MinCollectionInterval int `yaml:"min_collection_interval"`
	// RingSize is the kernel ring size in bytes.
	RingSize int `yaml:"ring_size"`
	// Netns is the path of a network namespace to capture in.
	Netns string `yaml:"netns"`
	// ServiceTags splits the RTT series by direction and service port.
	ServiceTags bool `yaml:"service_tags"`
	// MaxPorts caps the service ports per peer with ServiceTags.
	MaxPorts int `yaml:"max_ports"`
	// PeerPrefixV4 and PeerPrefixV6 group remote addresses by network; 0
	// means per address.
	PeerPrefixV4 int `yaml:"peer_prefix_v4"`
	PeerPrefixV6 int `yaml:"peer_prefix_v6"`
	// Distribution sends system.net.tcp.rtt.distribution.
	Distribution bool `yaml:"distribution"`
	// PercentileGauges sends the p50, p95 and p99 gauges.
	PercentileGauges bool `yaml:"percentile_gauges"`
	// TCPHealth sends the loss and failure counts (go_metro.tcp.*).
	TCPHealth bool `yaml:"tcp_health"`
	// SYNTimeout is how long a SYN may go unanswered, in seconds, before
	// its connection counts as timed out.
	SYNTimeout int `yaml:"syn_timeout"`
}

// Defaults.
const (
	DefaultInterval = 15 * time.Second
)

// Config is a validated configuration of one check instance.
type Config struct {
	Init     InitConfig
	Instance Instance
	// Capture is the live capture configuration built from both sections.
	Capture capture.LiveConfig
	// Interval is min_collection_interval.
	Interval time.Duration
	// Warnings are problems that do not stop the check, such as unknown
	// keys.
	Warnings []string

	expTTLKey string // the key exp_ttl was read from, for errors
}

// initKeys and instanceKeys are every key the check reads; other keys are
// reported as unknown. Keys the Agent itself handles in every instance
// are accepted too.
var (
	initKeys = []string{
		"snaplen", "idle_ttl", "exp_ttl", "expired_ttl", "max_flows", "max_peers", "runtime_metrics",
		"statsd_ip", "statsd_port", "log_to_file", "log_level", "log_file",
		// Read by the Agent itself.
		"service", "min_collection_interval",
	}
	instanceKeys = []string{
		"interface", "ips", "hosts", "tags", "local_ips", "methods", "min_collection_interval", "ring_size", "netns",
		"service_tags", "max_ports", "peer_prefix_v4", "peer_prefix_v6", "distribution", "percentile_gauges",
		"tcp_health", "syn_timeout",
		// Common to every Agent check instance.
		"service", "empty_default_hostname", "disable_generic_tags", "metric_patterns", "no_index",
	}
	// daemonKeys are go-metro daemon settings that the Agent ignores.
	daemonKeys = []string{"statsd_ip", "statsd_port", "log_to_file", "log_level", "log_file"}
)

// ConfigKeys returns the keys the check understands, for documentation
// checks: init_config keys, then instance keys.
func ConfigKeys() (init, instance []string) {
	return slices.Clone(initKeys), slices.Clone(instanceKeys)
}

// ParseConfig parses and validates the instance and init_config YAML of
// one instance. agent says whether it runs inside the Agent, where the
// daemon keys are ignored with a warning.
func ParseConfig(instanceYAML, initYAML []byte, agent bool) (*Config, error) {
	c := &Config{
		Init: InitConfig{
			Snaplen:    capture.DefaultSnaplen,
			IdleTTL:    int(capture.DefaultIdleTTL / time.Second),
			ExpTTL:     int(capture.DefaultExpTTL / time.Second),
			MaxFlows:   capture.DefaultMaxFlows,
			MaxPeers:   capture.DefaultMaxPeers,
			StatsdIP:   "127.0.0.1",
			StatsdPort: 8125,
			LogLevel:   "info",
		},
		Instance: Instance{
			MinCollectionInterval: int(DefaultInterval / time.Second),
			MaxPorts:              capture.DefaultMaxPorts,
			Distribution:          true,
			PercentileGauges:      true,
			TCPHealth:             true,
			SYNTimeout:            int(capture.DefaultSYNTimeout / time.Second),
		},
	}
	initKeysSeen, err := decodeStrict("init_config", initYAML, &c.Init, initKeys, &c.Warnings)
	if err != nil {
		return nil, err
	}
	if initKeysSeen["expired_ttl"] {
		var legacy struct {
			ExpiredTTL int `yaml:"expired_ttl"`
		}
		// decodeStrict, so that a value of the wrong type is named
		// (unknown keys were reported above).
		if _, err := decodeStrict("init_config", initYAML, &legacy, initKeys, new([]string)); err != nil {
			return nil, err
		}
		if initKeysSeen["exp_ttl"] && legacy.ExpiredTTL != c.Init.ExpTTL {
			return nil, fmt.Errorf("invalid `expired_ttl` %d: it is the legacy name of `exp_ttl`, which is also set, to %d; keep only exp_ttl", legacy.ExpiredTTL, c.Init.ExpTTL)
		}
		c.Init.ExpTTL = legacy.ExpiredTTL
		c.expTTLKey = "expired_ttl"
	}
	if _, err := decodeStrict("instance", instanceYAML, &c.Instance, instanceKeys, &c.Warnings); err != nil {
		return nil, err
	}
	if agent {
		for _, k := range daemonKeys {
			if initKeysSeen[k] {
				c.Warnings = append(c.Warnings, fmt.Sprintf("init_config key `%s` is a setting of the standalone go-metro daemon; the Agent check ignores it", k))
			}
		}
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// decodeStrict unmarshals data into v and reports keys not in known as
// warnings. It returns the keys present.
func decodeStrict(section string, data []byte, v any, known []string, warnings *[]string) (map[string]bool, error) {
	seen := map[string]bool{}
	if len(bytes.TrimSpace(data)) == 0 {
		return seen, nil
	}
	var raw map[string]yaml.Node
	if err := yaml.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse %s: %w", section, yamlError(err))
	}
	for k := range raw {
		seen[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(seen)) {
		if !slices.Contains(known, k) {
			hint := ""
			if s := closest(k, known); s != "" {
				hint = fmt.Sprintf(" (did you mean `%s`?)", s)
			}
			*warnings = append(*warnings, fmt.Sprintf("unknown %s key `%s`%s: it is ignored", section, k, hint))
		}
	}
	if err := checkTypes(raw, v); err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("parse %s: %w", section, yamlError(err))
	}
	return seen, nil
}

// checkTypes decodes the value of each key of raw that is a field of the
// struct v points to on its own, and returns an error naming the first
// key, in sorted order, whose value does not fit: yaml.v3's own type
// errors name a line but not the key, and it truncates 1.5 into an int
// field silently.
func checkTypes(raw map[string]yaml.Node, v any) error {
	t := reflect.TypeOf(v).Elem()
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fields[key] = t.Field(i).Type
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		ft, ok := fields[k]
		if !ok {
			continue
		}
		n := raw[k]
		bad := n.Decode(reflect.New(ft).Interface()) != nil ||
			ft.Kind() == reflect.Int && n.ShortTag() == "!!float"
		if !bad {
			continue
		}
		want := map[reflect.Kind]string{reflect.Int: "a whole number", reflect.Bool: "true or false", reflect.String: "a string", reflect.Slice: "a list of strings"}[ft.Kind()]
		return fmt.Errorf("invalid `%s` %s: must be %s", k, yamlValue(n), want)
	}
	return nil
}

// yamlValue returns a value as it appears in the YAML, on one line.
func yamlValue(n yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	n.Style = yaml.FlowStyle
	b, err := yaml.Marshal(&n)
	if err != nil {
		return "(unprintable)"
	}
	return strings.TrimSpace(string(b))
}

// yamlError flattens yaml.v3's type errors onto one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%s", strings.Join(te.Errors, "; "))
	}
	return err
}

// closest returns the known key within edit distance 2 of k, if any.
func closest(k string, known []string) string {
	best, bestD := "", 3
	for _, c := range known {
		if d := editDistance(k, c); d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validate checks every value and builds the capture configuration.
func (c *Config) validate() error {
	in, ic := &c.Init, &c.Instance
	switch {
	case in.Snaplen < capture.MinSnaplen || in.Snaplen > capture.MaxSnaplen:
		return fmt.Errorf("invalid `snaplen` %d: must be between %d and %d (the headers go-metro decodes need %d bytes)", in.Snaplen, capture.MinSnaplen, capture.MaxSnaplen, capture.MinSnaplen)
	case in.IdleTTL < 1 || in.IdleTTL > 86400:
		return fmt.Errorf("invalid `idle_ttl` %d: must be between 1 and 86400 seconds", in.IdleTTL)
	case in.ExpTTL < 1 || in.ExpTTL > 86400:
		key := c.expTTLKey
		if key == "" {
			key = "exp_ttl"
		}
		return fmt.Errorf("invalid `%s` %d: must be between 1 and 86400 seconds", key, in.ExpTTL)
	case in.MaxFlows < 1 || in.MaxFlows > 10_000_000:
		return fmt.Errorf("invalid `max_flows` %d: must be between 1 and 10000000 (each flow takes up to %d bytes)", in.MaxFlows, capture.FlowBytes)
	case in.MaxPeers < 1 || in.MaxPeers > 1_000_000:
		return fmt.Errorf("invalid `max_peers` %d: must be between 1 and 1000000 (each peer is a set of tagged series)", in.MaxPeers)
	case in.StatsdPort < 1 || in.StatsdPort > 65535:
		return fmt.Errorf("invalid `statsd_port` %d: must be between 1 and 65535, or absent for the default 8125", in.StatsdPort)
	}
	switch strings.ToLower(in.LogLevel) {
	case "debug", "info", "warn", "warning", "error", "critical", "trace", "off":
	default:
		return fmt.Errorf("invalid `log_level` %q: must be one of trace, debug, info, warn (or warning), error, critical, off", in.LogLevel)
	}
	if ic.Interface == "" {
		return errors.New("missing `interface`: name the interface to capture on, such as eth0, or any for all interfaces")
	}
	if ic.MinCollectionInterval < 1 || ic.MinCollectionInterval > 3600 {
		return fmt.Errorf("invalid `min_collection_interval` %d: must be between 1 and 3600 seconds", ic.MinCollectionInterval)
	}
	if ic.RingSize != 0 && (ic.RingSize < capture.MinRingSize || ic.RingSize > capture.MaxRingSize) {
		return fmt.Errorf("invalid `ring_size` %d: must be between %d (1 MiB) and %d (1 GiB) bytes", ic.RingSize, capture.MinRingSize, capture.MaxRingSize)
	}
	for _, tag := range ic.Tags {
		if strings.TrimSpace(tag) == "" {
			return errors.New("invalid `tags` entry \"\": tags are non-empty strings such as env:prod")
		}
	}
	var methods capture.Methods
	for _, m := range ic.Methods {
		mm, err := capture.ParseMethod(strings.TrimSpace(m))
		if err != nil {
			return fmt.Errorf("invalid `methods` entry %q: must be one of timestamp, seqack, handshake", m)
		}
		methods = methods.With(mm)
	}
	if len(ic.Methods) > 0 && methods == 0 {
		return errors.New("invalid `methods`: list at least one of timestamp, seqack, handshake")
	}
	switch {
	case ic.MaxPorts < 1 || ic.MaxPorts > 65535:
		return fmt.Errorf("invalid `max_ports` %d: must be between 1 and 65535 (service ports per peer; the rest are tagged port:other)", ic.MaxPorts)
	case ic.PeerPrefixV4 < 0 || ic.PeerPrefixV4 > 32:
		return fmt.Errorf("invalid `peer_prefix_v4` %d: must be between 0 (one series per address) and 32 bits", ic.PeerPrefixV4)
	case ic.PeerPrefixV6 < 0 || ic.PeerPrefixV6 > 128:
		return fmt.Errorf("invalid `peer_prefix_v6` %d: must be between 0 (one series per address) and 128 bits", ic.PeerPrefixV6)
	case ic.SYNTimeout < 1 || ic.SYNTimeout > 600:
		return fmt.Errorf("invalid `syn_timeout` %d: must be between 1 and 600 seconds", ic.SYNTimeout)
	}
	if ic.Netns != "" && !filepath.IsAbs(ic.Netns) {
		return fmt.Errorf("invalid `netns` %q: must be an absolute path such as /run/netns/NAME or /proc/PID/ns/net", ic.Netns)
	}
	for _, s := range ic.LocalIPs {
		if _, _, err := capture.ParseAddrOrPrefix(s); err != nil {
			return fmt.Errorf("invalid `local_ips` entry: %w", err)
		}
	}
	c.Interval = time.Duration(ic.MinCollectionInterval) * time.Second
	c.Capture = capture.LiveConfig{
		Interface: ic.Interface,
		Netns:     ic.Netns,
		Snaplen:   in.Snaplen,
		RingSize:  ic.RingSize,
		Peers:     capture.PeerSpec{IPs: ic.IPs, Hosts: ic.Hosts},
		Local:     ic.LocalIPs,
		Engine: capture.Config{
			Methods:     methods,
			IdleTTL:     time.Duration(in.IdleTTL) * time.Second,
			ExpTTL:      time.Duration(in.ExpTTL) * time.Second,
			MaxFlows:    in.MaxFlows,
			MaxPeers:    in.MaxPeers,
			PrefixV4:    ic.PeerPrefixV4,
			PrefixV6:    ic.PeerPrefixV6,
			ServiceTags: ic.ServiceTags,
			MaxPorts:    ic.MaxPorts,
			SYNTimeout:  time.Duration(ic.SYNTimeout) * time.Second,
			NoTCPCounts: !ic.TCPHealth,
		},
	}
	if err := c.Capture.Validate(); err != nil {
		return err
	}
	// Peers: parse now, so that a bad entry is a config error.
	if _, err := capture.NewPeerResolver(c.Capture.Peers, nil); err != nil {
		return err
	}
	return nil
}
