// Package diagnose is a stub of the Agent's package of the same path.
//
// It mirrors Status and Diagnosis of comp/core/diagnose/def/component.go of
// datadog-agent, which check.Check.GetDiagnoses returns.
package diagnose

// Status contains the result of the diagnosis
type Status int

// Diagnosis status
const (
	DiagnosisSuccess Status = 0
	DiagnosisFail    Status = 1
	DiagnosisWarning Status = 2
)

// Diagnosis contains the results of the diagnosis
type Diagnosis struct {
	Status      Status            `json:"result"`
	Name        string            `json:"name"`
	Diagnosis   string            `json:"diagnosis"`
	Category    string            `json:"category,omitempty"`
	CheckName   string            `json:"check_name,omitempty"`
	Description string            `json:"description,omitempty"`
	Remediation string            `json:"remediation,omitempty"`
	RawError    string            `json:"rawerror,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
}
