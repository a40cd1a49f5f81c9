package testbed

import "testing"

func TestBottleneckValidate(t *testing.T) {
	tests := []struct {
		name string
		b    Bottleneck
		ok   bool
	}{
		{name: "rate-only", b: Bottleneck{Rate: 20e6}, ok: true},
		{name: "all", b: Bottleneck{Rate: 1e6, Burst: 1 << 14, Limit: 1 << 16}, ok: true},
		{name: "no-rate", b: Bottleneck{Limit: 1000}},
		{name: "burst-below-a-frame", b: Bottleneck{Rate: 1e6, Burst: 1000}},
		{name: "negative-limit", b: Bottleneck{Rate: 1e6, Limit: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.b.validate("Bottleneck")
			if (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
	if got, want := (Bottleneck{Rate: 20e6}).String(), "tbf rate 20000000bit burst 4096b limit 600000"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := ingressIFB("a-very-long-name"), "ifb-a-very-long"; got != want {
		t.Errorf("ingressIFB = %q, want %q", got, want)
	}
}
