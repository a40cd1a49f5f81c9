package capture

import "testing"

// TestKernelCounterWrap feeds the running 32-bit counts of two sockets,
// the first wrapping past 2^32, and checks that the 64-bit total never
// goes backwards and counts every packet.
func TestKernelCounterWrap(t *testing.T) {
	var c kernelCounter
	steps := []struct {
		name    string
		running uint32 // the open socket's running count; reopen before it if set
		reopen  bool
		want    uint64
	}{
		{name: "start", running: 10, want: 10},
		{name: "near the wrap", running: 1<<32 - 5, want: 1<<32 - 5},
		{name: "at the wrap", running: 1<<32 - 1, want: 1<<32 - 1},
		{name: "wrapped", running: 3, want: 1<<32 + 3},
		{name: "on", running: 1000, want: 1<<32 + 1000},
		{name: "new socket", reopen: true, running: 7, want: 1<<32 + 1007},
		{name: "new socket wraps", running: 1<<32 - 1, want: 2<<32 + 999},
		{name: "again", running: 0, want: 2<<32 + 1000},
	}
	prev := uint64(0)
	for _, s := range steps {
		if s.reopen {
			c.reopen()
		}
		got := c.observe(s.running)
		if got != s.want || got < prev {
			t.Fatalf("%s: observe(%d) = %d, want %d (previous %d)", s.name, s.running, got, s.want, prev)
		}
		prev = got
	}
}
