// Package types is a stub of the Agent's package of the same path.
//
// It mirrors pkg/serializer/types/types.go of datadog-agent, the form
// built without the orchestrator build tag.
package types

// ProcessMessageBody is a type alias for processes proto message body
type ProcessMessageBody = stubMessageBody

type stubMessageBody struct{}

func (stubMessageBody) ProtoMessage()  {}
func (stubMessageBody) Reset()         {}
func (stubMessageBody) String() string { return "" }
func (stubMessageBody) Size() int      { return 0 }
