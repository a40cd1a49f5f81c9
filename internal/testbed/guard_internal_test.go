package testbed

import (
	"fmt"
	"testing"
)

// recordingTB records how a test would end. Its embedded testing.TB is nil:
// only the methods below may be called.
type recordingTB struct {
	testing.TB
	ended string
}

func (r *recordingTB) Helper() {}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.ended = "fatal: " + fmt.Sprintf(format, args...)
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.ended = "skip: " + fmt.Sprintf(format, args...)
}

func TestGuard(t *testing.T) {
	tests := []struct {
		name    string
		problem string
		ci      bool
		want    string
	}{
		{name: "privileged", want: ""},
		{name: "privileged-ci", ci: true, want: ""},
		{name: "developer", problem: "not root", want: "skip: testbed: not root; run as root, for example: go test -exec sudo ./internal/testbed/"},
		{name: "ci", problem: "not root", ci: true, want: "fatal: testbed: not root (CI=true, so this fails instead of skipping)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recordingTB
			guard(&r, tt.problem, tt.ci)
			if r.ended != tt.want {
				t.Errorf("guard ended the test with %q, want %q", r.ended, tt.want)
			}
		})
	}
}
