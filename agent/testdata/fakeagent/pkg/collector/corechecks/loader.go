package corechecks

import (
	"github.com/DataDog/datadog-agent/pkg/collector/check"
	"github.com/DataDog/datadog-agent/pkg/util/option"
)

// GoCheckLoaderName is the name of the Go loader
const GoCheckLoaderName string = "core"

// ConstructionContext is passed to factories that need mode-specific
// dependencies while constructing a check instance.
type ConstructionContext struct{}

var catalog = make(map[string]func(ConstructionContext) check.Check)

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
