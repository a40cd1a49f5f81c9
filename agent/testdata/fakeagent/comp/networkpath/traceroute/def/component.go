// Package traceroute is a stub of the Agent's component of the same path,
// for the parameters of RegisterChecks in pkg/commonchecks: its Component.
package traceroute

// Component is the component type.
type Component interface{}
