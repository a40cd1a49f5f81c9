// Package id is a stub of the Agent's package of the same path.
package id

// ID is the representation of the unique ID of a Check instance.
type ID string
