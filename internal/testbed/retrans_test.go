package testbed_test

import (
	"context"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestTrackRetransmissions runs a bulk transfer across a delay line without
// loss and then with loss of client-to-server frames: only the second has
// retransmissions, at least one per data frame lost, and the tracker saw
// every frame.
func TestTrackRetransmissions(t *testing.T) {
	tests := []struct {
		name string
		loss float64
	}{
		{name: "no-loss"},
		{name: "loss", loss: 0.05},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			im := testbed.Impairment{Delay: time.Millisecond}
			c2s := im
			c2s.Loss = tt.loss
			dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{ClientToServer: c2s, ServerToClient: im, Seed: 7})
			tr := testbed.TrackRetransmissions(t, dl.Client, dl.ClientIf)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := testbed.Bulk(ctx, dl.Path4(), 256<<10); err != nil {
				t.Fatal(err)
			}
			c2sStats, _ := dl.Stats()
			rexmits := tr.Retransmissions()
			t.Logf("%d segments, %d retransmissions, %d frames lost", tr.Segments(), len(rexmits), c2sStats.Lost)
			if tr.Segments() < (256<<10)/1500 {
				t.Errorf("%d segments seen, want at least %d", tr.Segments(), (256<<10)/1500)
			}
			if tt.loss == 0 && len(rexmits) != 0 {
				t.Errorf("%d retransmissions without loss: %+v", len(rexmits), rexmits)
			}
			if tt.loss > 0 && len(rexmits) == 0 {
				t.Errorf("no retransmission with %d frames lost", c2sStats.Lost)
			}
			for _, r := range rexmits {
				if r.First.IsZero() || !r.First.Before(r.Time) || r.Src.Addr() != dl.ClientAddr4 {
					t.Errorf("retransmission %+v: want a client segment first sent before", r)
				}
				if _, ok := tr.Sent(r.Src, r.Dst, r.Time); !ok {
					t.Errorf("Sent does not find retransmission %+v", r)
				}
			}
			if d := tr.Drops(); d != 0 {
				t.Errorf("the tracker's socket dropped %d frames", d)
			}
		})
	}
}
