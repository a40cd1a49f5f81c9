package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// maxConfBytes bounds the size of a configuration file, which is a few
// KiB: a larger file (or -c /dev/zero) is refused before it is parsed.
const maxConfBytes = 1 << 20

// maxAliasNodes bounds the nodes that resolving the aliases of a
// configuration may create, against alias bombs.
const maxAliasNodes = 100_000

// readConfFile reads the configuration file at path, at most
// maxConfBytes of it.
func readConfFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read the configuration: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read the configuration %s: %w", path, err)
	}
	if len(data) > maxConfBytes {
		return nil, fmt.Errorf("read the configuration %s: larger than %d bytes (1 MiB), the most a configuration may have: is it the right file?", path, maxConfBytes)
	}
	return data, nil
}

// Top-level keys of a conf.yaml.
var (
	// topLevelKeys are those the check reads.
	topLevelKeys = []string{"init_config", "instances"}
	// agentTopLevelKeys are read by the Agent alone.
	agentTopLevelKeys = []string{"logs", "ad_identifiers", "cluster_check"}
)

// legacyInstancesKey is the Agent 5 go-metro daemon's name of instances.
const legacyInstancesKey = "config"

// confFile is a conf.yaml split into its init_config and its instances.
type confFile struct {
	name      string
	initYAML  []byte
	initLine  int // of the init_config key; 0 when absent
	instances []confInstance
	warnings  []string
}

// confInstance is one instance of a conf.yaml.
type confInstance struct {
	yaml []byte
	line int // in the file
}

// parseConfFile splits a conf.yaml named name into its init_config and its
// instances, with the interface of each instance replaced by iface when it
// is not empty. Aliases are resolved, so that an anchor in one section
// serves another. Files of go-metro's Agent 5 daemon, which lists its
// instances under `config`, load with a warning.
func parseConfFile(name string, data []byte, iface string) (*confFile, error) {
	f := &confFile{name: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse %s: %w", name, err)
	}
	for {
		// Another document is an error, unless it is empty (a final
		// `---`, say): it would be silently ignored.
		var next yaml.Node
		err := dec.Decode(&next)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse %s: after the first YAML document: %w", name, err)
		}
		if len(next.Content) > 0 && !isNull(next.Content[0]) {
			return nil, fmt.Errorf("%s: a second YAML document begins on line %d: a configuration is one document; remove the `---` that starts it, or merge the two", name, docLine(&next))
		}
	}
	budget := maxAliasNodes
	resolved, err := resolveAliases(&root, &budget)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var doc map[string]yaml.Node
	if len(resolved.Content) > 0 && !isNull(resolved.Content[0]) {
		if top := resolved.Content[0]; top.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: line %d: a configuration is a mapping of init_config and instances, not %s", name, top.Line, yamlKind(top))
		}
		if err := resolved.Decode(&doc); err != nil {
			return nil, fmt.Errorf("parse %s: %w", name, err)
		}
	}
	known := slices.Concat(topLevelKeys, agentTopLevelKeys, []string{legacyInstancesKey})
	var hints []string
	for _, k := range slices.Sorted(maps.Keys(doc)) {
		switch {
		case slices.Contains(topLevelKeys, k), k == legacyInstancesKey:
		case slices.Contains(agentTopLevelKeys, k):
			f.warnings = append(f.warnings, fmt.Sprintf("%s: top-level key `%s` has an effect only inside the Agent; go-metro check and go-metro run ignore it", name, k))
		default:
			hint := ""
			if s := check.SuggestKey(k, known); s != "" {
				hint = fmt.Sprintf(" (did you mean `%s`?)", s)
				hints = append(hints, fmt.Sprintf("unknown top-level key `%s`: did you mean `%s`?", k, s))
			}
			f.warnings = append(f.warnings, fmt.Sprintf("%s: unknown top-level key `%s`%s: it is ignored; the check reads init_config and instances", name, k, hint))
		}
	}
	withHints := func(err error) error {
		if len(hints) == 0 {
			return err
		}
		return fmt.Errorf("%w (%s)", err, strings.Join(hints, "; "))
	}
	if n, ok := doc["init_config"]; ok && !isNull(&n) {
		if n.Kind != yaml.MappingNode {
			return nil, withHints(fmt.Errorf("%s: invalid `init_config` on line %d: must be a mapping of settings, or empty", name, n.Line))
		}
		if f.initYAML, err = yaml.Marshal(&n); err != nil {
			return nil, fmt.Errorf("%s: init_config: %w", name, err)
		}
	}
	f.initLine = keyLine(resolved, "init_config")
	key := "instances"
	n, ok := doc[key]
	if legacy, isLegacy := doc[legacyInstancesKey]; isLegacy {
		if ok {
			return nil, fmt.Errorf("%s: both `instances` and `%s` on lines %d and %d: `%s` is the old name of `instances`; keep only instances", name, legacyInstancesKey, n.Line, legacy.Line, legacyInstancesKey)
		}
		key, n, ok = legacyInstancesKey, legacy, true
		f.warnings = append(f.warnings, fmt.Sprintf("%s: top-level key `%s` is deprecated: it is the name go-metro's Agent 5 daemon gave the instances; rename it `instances`", name, legacyInstancesKey))
	}
	if !ok || isNull(&n) {
		return nil, withHints(fmt.Errorf("%s: no `instances`: list at least one, such as `instances: [{interface: eth0}]`", name))
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, withHints(fmt.Errorf("%s: invalid `%s` on line %d: must be a list of at least one instance", name, key, n.Line))
	}
	for i, in := range n.Content {
		if iface != "" {
			if isNull(in) {
				*in = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: in.Line, Column: in.Column}
			}
			setKey(in, "interface", iface)
		}
		b, err := yaml.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("%s: instances[%d]: %w", name, i, err)
		}
		f.instances = append(f.instances, confInstance{yaml: b, line: in.Line})
	}
	return f, nil
}

// yamlKind names the kind of n, for errors.
func yamlKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	}
	return "that"
}

// docLine is the line a document node's content starts on.
func docLine(n *yaml.Node) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0].Line
	}
	return n.Line
}

// keyLine is the line of key in the mapping of the document root, or 0.
func keyLine(root *yaml.Node, key string) int {
	m := root
	if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
		m = m.Content[0]
	}
	if m.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i].Line
		}
	}
	return 0
}

// resolveAliases returns a copy of n in which every alias is replaced by
// a copy of the node it refers to, and no node has an anchor, so that any
// part of it can be marshalled on its own. Merge keys stay, for the
// decoder. It creates at most *budget nodes.
func resolveAliases(n *yaml.Node, budget *int) (*yaml.Node, error) {
	if *budget--; *budget < 0 {
		return nil, fmt.Errorf("its aliases expand to more than %d YAML nodes: a configuration needs far fewer", maxAliasNodes)
	}
	src := n
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil, fmt.Errorf("line %d: unknown anchor %q", n.Line, n.Value)
		}
		src = n.Alias
	}
	c := *src
	c.Anchor, c.Alias = "", nil
	if n.Kind == yaml.AliasNode {
		c.Line, c.Column = n.Line, n.Column
	}
	c.Content = make([]*yaml.Node, len(src.Content))
	for i, child := range src.Content {
		r, err := resolveAliases(child, budget)
		if err != nil {
			return nil, err
		}
		c.Content[i] = r
	}
	return &c, nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// setKey sets key to the string value in the mapping node n; it leaves
// other nodes alone, for the check to reject.
func setKey(n *yaml.Node, key, value string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	v := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			n.Content[i+1] = v
			return
		}
	}
	n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
}

// configError places an error of configuring instance i of f: at
// init_config's line when it is in init_config, else at the instance's.
func (f *confFile) configError(i int, err error) error {
	var ce *check.ConfigError
	if errors.As(err, &ce) && ce.Section == "init_config" {
		return fmt.Errorf("%s: init_config (line %d): %w", f.name, f.initLine, err)
	}
	return fmt.Errorf("%s: instances[%d] (line %d): %w", f.name, i, f.instances[i].line, err)
}

// duplicateInstances returns an error when two instances of f capture the
// same traffic: the same interface, network namespace and peers, which
// would count every packet twice.
func (f *confFile) duplicateInstances(cfgs []*check.Config) error {
	seen := make(map[string]int, len(cfgs))
	for i, c := range cfgs {
		k := captureKey(c.Capture)
		if j, ok := seen[k]; ok {
			return fmt.Errorf("%s: instances[%d] (line %d) captures the same traffic as instances[%d] (line %d): the same interface %s, `netns` and peers, so every packet would be counted twice; remove one, or give them different `ips` or `hosts`",
				f.name, i, f.instances[i].line, j, f.instances[j].line, c.Capture.Interface)
		}
		seen[k] = i
	}
	return nil
}

// captureKey identifies what a capture sees: its interface, namespace and
// peers, as sets of normalized entries.
func captureKey(c capture.LiveConfig) string {
	var ips, hosts []string
	for _, s := range c.Peers.IPs {
		if a, p, err := capture.ParseAddrOrPrefix(s); err == nil {
			if !p.IsValid() {
				a = a.WithZone("").Unmap()
				p = netip.PrefixFrom(a, a.BitLen())
			}
			s = p.Masked().String()
		}
		ips = append(ips, s)
	}
	for _, s := range c.Peers.Hosts {
		hosts = append(hosts, strings.ToLower(strings.TrimSuffix(strings.TrimSpace(s), ".")))
	}
	slices.Sort(ips)
	slices.Sort(hosts)
	return strings.Join([]string{c.Interface, c.Netns, strings.Join(slices.Compact(ips), ","), strings.Join(slices.Compact(hosts), ",")}, "\x00")
}
