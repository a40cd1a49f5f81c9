// Package integration is a stub of the Agent's package of the same path.
package integration

// Data contains YAML code.
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
