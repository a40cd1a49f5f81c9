// Package integration is a stub of the Agent's package of the same path.
//
// It mirrors Data, Config and CommonInstanceConfig of
// comp/core/autodiscovery/integration/config.go of datadog-agent (the
// Agent parses YAML with gopkg.in/yaml.v2; this stub with yaml.v3, which
// go-metro already requires).
package integration

import "gopkg.in/yaml.v3"

// Data contains YAML code
type Data []byte

// Config is a generic container for configuration data specific to an
// integration.
type Config struct {
	Name       string
	Instances  []Data
	InitConfig Data
	Source     string
	Provider   string
}

// CommonInstanceConfig holds the reserved fields for the yaml instance data
type CommonInstanceConfig struct {
	MinCollectionInterval int      `yaml:"min_collection_interval"`
	EmptyDefaultHostname  bool     `yaml:"empty_default_hostname"`
	Tags                  []string `yaml:"tags"`
	Service               string   `yaml:"service"`
	Name                  string   `yaml:"name"`
	Namespace             string   `yaml:"namespace"`
	NoIndex               bool     `yaml:"no_index"`
}

// GetNameForInstance returns the name from an instance if specified, fallback on namespace
func (c *Data) GetNameForInstance() string {
	commonOptions := CommonInstanceConfig{}
	if err := yaml.Unmarshal(*c, &commonOptions); err != nil {
		return ""
	}
	if commonOptions.Name != "" {
		return commonOptions.Name
	}
	// Fallback on `namespace` if we don't find `name`, can be empty
	return commonOptions.Namespace
}
