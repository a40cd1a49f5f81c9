// Package config is a stub of the Agent's component of the same path, for
// the parameters of RegisterChecks in pkg/commonchecks: its Component, with
// the one method that pkg/commonchecks calls.
package config

// Component is the component type.
type Component interface {
	GetBool(key string) bool
}
