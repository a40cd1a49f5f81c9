package check

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"regexp"
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

	// Keys every Agent check has: the default service tag, and the
	// default run interval in seconds of every instance (0: unset).
	Service               string `yaml:"service"`
	MinCollectionInterval int    `yaml:"min_collection_interval"`

	// The go-metro daemon's keys: used by `go-metro run`, ignored (with a
	// warning) and not validated inside the Agent.
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
	// Workers is how many sockets share the capture (PACKET_FANOUT),
	// each read by its own goroutine.
	Workers int `yaml:"workers"`

	// Keys every Agent check has. MinCollectionInterval is the run
	// interval in seconds; init_config's is its default.
	MinCollectionInterval int            `yaml:"min_collection_interval"`
	Service               string         `yaml:"service"`
	MetricPatterns        MetricPatterns `yaml:"metric_patterns"`
}

// MetricPatterns is the metric_patterns key of every Agent check: regular
// expressions matched anywhere in a metric's name. A metric is sent when
// it matches an include pattern (or include is empty) and no exclude
// pattern. Service checks are not filtered.
type MetricPatterns struct {
	Include []string `yaml:"include"`
	Exclude []string `yaml:"exclude"`
}

// Defaults.
const (
	DefaultInterval = 15 * time.Second
)

// legacyMinSnaplen is the smallest snaplen go-metro's documentation of
// Agent 5 allowed. From it up to capture.MinSnaplen, snaplen is raised
// with a warning, so that those files load.
const legacyMinSnaplen = 104

// Config is a validated configuration of one check instance.
type Config struct {
	Init     InitConfig
	Instance Instance
	// Capture is the live capture configuration built from both sections.
	Capture capture.LiveConfig
	// Interval is min_collection_interval: the instance's, else
	// init_config's, else DefaultInterval.
	Interval time.Duration
	// Service is the `service` tag's value: the instance's, else
	// init_config's; "" for none.
	Service string
	// Warnings are problems that do not stop the check, such as unknown
	// keys.
	Warnings []string

	expTTLKey string        // the key exp_ttl was read from, for errors
	filter    *metricFilter // metric_patterns, nil when unset
}

// The keys the check reads; other keys draw a warning. To add a key, add
// its field to InitConfig or Instance, its name to one of these lists,
// and its checks to validateInit or validateInstance.
var (
	// initKeys are go-metro's init_config keys.
	initKeys = []string{"snaplen", "idle_ttl", "exp_ttl", "expired_ttl", "max_flows", "max_peers", "runtime_metrics"}
	// daemonKeys are init_config settings of the go-metro daemon:
	// inside the Agent they are ignored with a warning, and not
	// validated, since the check submits through the Agent and logs
	// to its log.
	daemonKeys = []string{"statsd_ip", "statsd_port", "log_to_file", "log_level", "log_file"}
	// agentInitKeys are the init_config keys of every Agent check.
	agentInitKeys = []string{"service", "min_collection_interval"}

	// instanceKeys are go-metro's instance keys.
	instanceKeys = []string{"interface", "ips", "hosts", "tags", "local_ips", "methods", "ring_size", "netns",
		"service_tags", "max_ports", "peer_prefix_v4", "peer_prefix_v6", "distribution", "percentile_gauges",
		"tcp_health", "syn_timeout", "workers"}
	// agentInstanceKeys are the instance keys of every Agent check. The
	// check applies them itself outside the Agent, but agentOnlyKeys.
	agentInstanceKeys = []string{"min_collection_interval", "service", "metric_patterns", "empty_default_hostname", "disable_generic_tags", "no_index"}
	// agentOnlyKeys have an effect only inside the Agent, which applies
	// them; outside it they draw a warning.
	agentOnlyKeys = []string{"empty_default_hostname", "disable_generic_tags", "no_index"}
)

// ConfigKeys returns the keys the check understands, for documentation
// checks: init_config keys, then instance keys.
func ConfigKeys() (init, instance []string) {
	return slices.Concat(initKeys, daemonKeys, agentInitKeys), slices.Concat(instanceKeys, agentInstanceKeys)
}

// ConfigError is an invalid configuration. Section says where the error
// is, "init_config" or "instance"; Hints are the unknown keys of the
// configuration that look like typos of known ones, since a typo is a
// common cause: `interfce` makes `interface` missing.
type ConfigError struct {
	Section string
	Err     error
	Hints   []string
}

func (e *ConfigError) Error() string {
	if len(e.Hints) == 0 {
		return e.Err.Error()
	}
	return e.Err.Error() + " (" + strings.Join(e.Hints, "; ") + ")"
}

func (e *ConfigError) Unwrap() error { return e.Err }

// ParseConfig parses and validates the instance and init_config YAML of
// one instance. agent says whether it runs inside the Agent, where the
// daemon keys are ignored with a warning and not validated. An invalid
// configuration is a *ConfigError.
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
			MaxPorts:         capture.DefaultMaxPorts,
			Distribution:     true,
			PercentileGauges: true,
			TCPHealth:        true,
			SYNTimeout:       int(capture.DefaultSYNTimeout / time.Second),
			Workers:          1,
		},
	}
	var hints []string
	fail := func(section string, err error) (*Config, error) {
		return nil, &ConfigError{Section: section, Err: err, Hints: hints}
	}
	var skip []string
	if agent {
		skip = daemonKeys
	}
	initSeen, err := decodeSection("init_config", initYAML, &c.Init, slices.Concat(initKeys, daemonKeys, agentInitKeys), skip, &c.Warnings, &hints)
	if err != nil {
		return fail("init_config", err)
	}
	if initSeen["expired_ttl"] {
		var legacy struct {
			ExpiredTTL int `yaml:"expired_ttl"`
		}
		// decodeSection, so that a value of the wrong type is named
		// (unknown keys were reported above).
		if _, err := decodeSection("init_config", initYAML, &legacy, nil, skip, nil, nil); err != nil {
			return fail("init_config", err)
		}
		if initSeen["exp_ttl"] && legacy.ExpiredTTL != c.Init.ExpTTL {
			return fail("init_config", fmt.Errorf("invalid `expired_ttl` %d: it is the legacy name of `exp_ttl`, which is also set, to %d; keep only exp_ttl", legacy.ExpiredTTL, c.Init.ExpTTL))
		}
		c.Init.ExpTTL = legacy.ExpiredTTL
		c.expTTLKey = "expired_ttl"
	}
	// init_config's min_collection_interval is every instance's default,
	// as in the Agent.
	c.Instance.MinCollectionInterval = int(DefaultInterval / time.Second)
	if initSeen["min_collection_interval"] {
		c.Instance.MinCollectionInterval = c.Init.MinCollectionInterval
	}
	instSeen, err := decodeSection("instance", instanceYAML, &c.Instance, slices.Concat(instanceKeys, agentInstanceKeys), nil, &c.Warnings, &hints)
	if err != nil {
		return fail("instance", err)
	}
	if agent {
		for _, k := range daemonKeys {
			if initSeen[k] {
				c.Warnings = append(c.Warnings, fmt.Sprintf("init_config key `%s` is a setting of the standalone go-metro daemon; the Agent check ignores it", k))
			}
		}
	} else {
		for _, k := range agentOnlyKeys {
			if instSeen[k] {
				c.Warnings = append(c.Warnings, fmt.Sprintf("instance key `%s` has an effect only inside the Agent; go-metro check and go-metro run ignore it", k))
			}
		}
	}
	if err := c.validateInit(initSeen, agent); err != nil {
		return fail("init_config", err)
	}
	if err := c.validateInstance(); err != nil {
		return fail("instance", err)
	}
	return c, nil
}

// decodeSection unmarshals the YAML mapping data into v, without the keys
// in skip, and reports the keys not in known as warnings, with a typo hint
// when a known key is close, which also goes to hints. It returns the keys
// present. Anchors, aliases and merge keys work as in any YAML.
func decodeSection(section string, data []byte, v any, known, skip []string, warnings, hints *[]string) (map[string]bool, error) {
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
	if warnings != nil {
		for _, k := range slices.Sorted(maps.Keys(seen)) {
			if slices.Contains(known, k) {
				continue
			}
			hint := ""
			if s := closest(k, known); s != "" {
				hint = fmt.Sprintf(" (did you mean `%s`?)", s)
				*hints = append(*hints, fmt.Sprintf("unknown %s key `%s`: did you mean `%s`?", section, k, s))
			}
			*warnings = append(*warnings, fmt.Sprintf("unknown %s key `%s`%s: it is ignored", section, k, hint))
		}
	}
	// One mapping of the keys that remain, in order, decoded as a whole.
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		if slices.Contains(skip, k) {
			continue
		}
		n := raw[k]
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, &n)
	}
	if err := checkTypes(raw, skip, v); err != nil {
		return nil, err
	}
	if err := m.Decode(v); err != nil {
		return nil, fmt.Errorf("parse %s: %w", section, yamlError(err))
	}
	return seen, nil
}

// wholeNumber matches a YAML integer in decimal, however large.
var wholeNumber = regexp.MustCompile(`^[-+]?[0-9]+$`)

// checkTypes decodes the value of each key of raw (but those in skip)
// that is a field of the struct v points to on its own, and returns an
// error naming the first key, in sorted order, whose value does not fit:
// yaml.v3's own type errors name a line but not the key, and it truncates
// 1.5 into an int field silently.
func checkTypes(raw map[string]yaml.Node, skip []string, v any) error {
	t := reflect.TypeOf(v).Elem()
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		key, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		fields[key] = t.Field(i).Type
	}
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		ft, ok := fields[k]
		if !ok || slices.Contains(skip, k) {
			continue
		}
		n := raw[k]
		if ft.Kind() == reflect.Struct {
			if err := checkMapping(k, &n, ft); err != nil {
				return err
			}
			continue
		}
		bad := n.Decode(reflect.New(ft).Interface()) != nil ||
			ft.Kind() == reflect.Int && n.ShortTag() == "!!float"
		if !bad {
			continue
		}
		if ft.Kind() == reflect.Int && n.Kind == yaml.ScalarNode && wholeNumber.MatchString(n.Value) {
			// A whole number beyond int64, which YAML resolves as a float.
			return fmt.Errorf("invalid `%s` %s: out of range: far too large a number", k, n.Value)
		}
		want := map[reflect.Kind]string{reflect.Int: "a whole number", reflect.Bool: "true or false", reflect.String: "a string", reflect.Slice: "a list of strings"}[ft.Kind()]
		return fmt.Errorf("invalid `%s` %s: must be %s", k, yamlValue(n), want)
	}
	return nil
}

// checkMapping checks that n, the value of key, is a mapping of the keys
// of the struct type t, each a list of strings, or null.
func checkMapping(key string, n *yaml.Node, t reflect.Type) error {
	var keys []string
	for i := range t.NumField() {
		k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		keys = append(keys, k)
	}
	want := fmt.Sprintf("must be a mapping of %s, each a list of strings", strings.Join(keys, " and "))
	if n.ShortTag() == "!!null" {
		return nil
	}
	var sub map[string]yaml.Node
	if n.Decode(&sub) != nil {
		return fmt.Errorf("invalid `%s` %s: %s", key, yamlValue(*n), want)
	}
	for _, k := range slices.Sorted(maps.Keys(sub)) {
		if !slices.Contains(keys, k) {
			hint := ""
			if s := closest(k, keys); s != "" {
				hint = fmt.Sprintf(" (did you mean `%s`?)", s)
			}
			return fmt.Errorf("invalid `%s` key `%s`%s: %s", key, k, hint, want)
		}
		v := sub[k]
		if v.Decode(new([]string)) != nil {
			return fmt.Errorf("invalid `%s` %s %s: %s", key, k, yamlValue(v), want)
		}
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

// SuggestKey returns the key of known that k is most likely a typo of:
// the closest within an edit distance of 2, or "" when none is.
func SuggestKey(k string, known []string) string { return closest(k, known) }

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

// validateInit checks the init_config values; those of the daemon only
// outside the Agent.
func (c *Config) validateInit(seen map[string]bool, agent bool) error {
	in := &c.Init
	if in.Snaplen >= legacyMinSnaplen && in.Snaplen < capture.MinSnaplen {
		c.Warnings = append(c.Warnings, fmt.Sprintf("init_config `snaplen` %d is below %d, which the headers go-metro decodes need (Ethernet with two VLAN tags, IPv6, TCP with full options): raised to %d", in.Snaplen, capture.MinSnaplen, capture.MinSnaplen))
		in.Snaplen = capture.MinSnaplen
	}
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
	case seen["min_collection_interval"] && (in.MinCollectionInterval < 1 || in.MinCollectionInterval > 3600):
		return fmt.Errorf("invalid `min_collection_interval` %d: must be between 1 and 3600 seconds", in.MinCollectionInterval)
	case seen["service"] && strings.TrimSpace(in.Service) == "":
		return errors.New("invalid `service` \"\": a service is a non-empty name such as web, or leave the key out")
	}
	if agent {
		return nil
	}
	if in.StatsdPort < 1 || in.StatsdPort > 65535 {
		return fmt.Errorf("invalid `statsd_port` %d: must be between 1 and 65535, or absent for the default 8125", in.StatsdPort)
	}
	// go-metro's Agent 5 daemon also took err and crit.
	switch strings.ToLower(in.LogLevel) {
	case "err":
		in.LogLevel = "error"
	case "crit":
		in.LogLevel = "critical"
	}
	switch strings.ToLower(in.LogLevel) {
	case "debug", "info", "warn", "warning", "error", "critical", "trace", "off":
	default:
		return fmt.Errorf("invalid `log_level` %q: must be one of trace, debug, info, warn (or warning), error (or err), critical (or crit), off", in.LogLevel)
	}
	return nil
}

// validateInstance checks the instance values and builds the capture
// configuration.
func (c *Config) validateInstance() error {
	in, ic := &c.Init, &c.Instance
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
	case ic.Workers < 1 || ic.Workers > capture.MaxWorkers:
		return fmt.Errorf("invalid `workers` %d: must be between 1 and %d sockets, at most one per CPU is useful", ic.Workers, capture.MaxWorkers)
	}
	if ic.Netns != "" && !filepath.IsAbs(ic.Netns) {
		return fmt.Errorf("invalid `netns` %q: must be an absolute path such as /run/netns/NAME or /proc/PID/ns/net", ic.Netns)
	}
	for _, s := range ic.LocalIPs {
		if _, _, err := capture.ParseAddrOrPrefix(s); err != nil {
			return fmt.Errorf("invalid `local_ips` entry: %w", err)
		}
	}
	c.Service = cmp.Or(ic.Service, in.Service)
	if ic.Service != "" && strings.TrimSpace(ic.Service) == "" {
		return errors.New("invalid `service` \"\": a service is a non-empty name such as web, or leave the key out")
	}
	f, err := newMetricFilter(ic.MetricPatterns)
	if err != nil {
		return err
	}
	c.filter = f
	c.Interval = time.Duration(ic.MinCollectionInterval) * time.Second
	c.Capture = capture.LiveConfig{
		Interface: ic.Interface,
		Netns:     ic.Netns,
		Snaplen:   in.Snaplen,
		RingSize:  ic.RingSize,
		Peers:     capture.PeerSpec{IPs: ic.IPs, Hosts: ic.Hosts},
		Local:     ic.LocalIPs,
		Workers:   ic.Workers,
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

// metricFilter applies metric_patterns.
type metricFilter struct {
	include, exclude *regexp.Regexp // nil: none
}

// newMetricFilter compiles p; it returns nil when p has no pattern.
func newMetricFilter(p MetricPatterns) (*metricFilter, error) {
	compile := func(which string, list []string) (*regexp.Regexp, error) {
		if len(list) == 0 {
			return nil, nil
		}
		for _, s := range list {
			if _, err := regexp.Compile(s); err != nil {
				return nil, fmt.Errorf("invalid `metric_patterns` %s entry %q: %w", which, s, err)
			}
		}
		return regexp.MustCompile("(?:" + strings.Join(list, ")|(?:") + ")"), nil
	}
	inc, err := compile("include", p.Include)
	if err != nil {
		return nil, err
	}
	exc, err := compile("exclude", p.Exclude)
	if err != nil {
		return nil, err
	}
	if inc == nil && exc == nil {
		return nil, nil
	}
	return &metricFilter{include: inc, exclude: exc}, nil
}

// allows reports whether the metric name passes the filter; a nil filter
// allows every metric.
func (f *metricFilter) allows(name string) bool {
	if f == nil {
		return true
	}
	if f.exclude != nil && f.exclude.MatchString(name) {
		return false
	}
	return f.include == nil || f.include.MatchString(name)
}
