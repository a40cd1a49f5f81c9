package corechecks

import (
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// GoCheckLoaderName is the name of the Go loader
const GoCheckLoaderName string = "core"

// LoadMode describes why a core check is being constructed.
type LoadMode string

const (
	// NormalLoadMode constructs a normal collector check.
	NormalLoadMode LoadMode = "normal"
	// ShadowLoadMode constructs a shadow collector check.
	ShadowLoadMode LoadMode = "shadow"
)

// ConstructionContext is passed to factories that need mode-specific
// dependencies while constructing a check instance.
type ConstructionContext struct {
	Mode LoadMode
}

// ContextualCheckFactory instantiates checks with construction context.
type ContextualCheckFactory func(ConstructionContext) check.Check

var catalog = make(map[string]ContextualCheckFactory)

// RegisterCheck adds a check to the catalog
func RegisterCheck(name string, checkFactory option.Option[func() check.Check]) {
	if v, ok := checkFactory.Get(); ok {
		catalog[name] = func(ConstructionContext) check.Check { return v() }
	}
}

// RegisterContextualCheck adds a context-aware check factory to the catalog.
func RegisterContextualCheck(name string, checkFactory option.Option[func(ConstructionContext) check.Check]) {
	if v, ok := checkFactory.Get(); ok {
		catalog[name] = v
	}
}

// GetRegisteredFactoryKeys get the keys for all registered factories
func GetRegisteredFactoryKeys() []string {
	keys := []string{}
	for name := range catalog {
		keys = append(keys, name)
	}
	return keys
}
