// Package option is a stub of the Agent's module of the same path: Option,
// New, None and Get of pkg/util/option/option.go of datadog-agent.
package option

// Option represents an optional type.
type Option[T any] struct {
	value T
	set   bool
}

// New creates a new instance of Option[T] with a value set.
func New[T any](value T) Option[T] {
	return Option[T]{value: value, set: true}
}

// None creates a new instance of Option[T] without any value set.
func None[T any]() Option[T] {
	return Option[T]{}
}

// Get returns the value and true if a value is set, otherwise the zero value
// and false.
func (o *Option[T]) Get() (T, bool) {
	return o.value, o.set
}
