//go:build linux

package accuracy_test

import (
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestBulkPacing checks that the kernel paces a bulk sender as
// testbed.BulkPaced asks: the bulk rows of TestAccuracy rely on it to keep
// the transfer from queueing in the delay line.
func TestBulkPacing(t *testing.T) {
	testbed.RequireRoot(t)
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{})
	const n, rate = 1 << 20, 4 << 20 // a quarter of a second
	start := time.Now()
	if err := testbed.BulkPaced(t.Context(), dl.Path4(), testbed.BulkConfig{Bytes: n, PacingRate: rate}); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	want := time.Duration(float64(n) / rate * float64(time.Second))
	t.Logf("%d bytes paced at %d bytes/s took %v", n, rate, took)
	// The initial window leaves unpaced, hence some slack below.
	if took < want*8/10 {
		t.Errorf("%d bytes paced at %d bytes/s took %v, want at least %v: the kernel does not pace", n, rate, took, want*8/10)
	}
}
