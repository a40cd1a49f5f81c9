// Package networkconfigmanagement is a stub of the Agent's component of the same path,
// for the parameters of RegisterChecks in pkg/commonchecks: its Component.
package networkconfigmanagement

// Component is the component type.
type Component interface{}
