package capture

import (
	"reflect"
	"testing"
	"time"
)

// TestBatch checks that processing frames in batches (BeginBatch and
// EndBatch, as live capture processes ring blocks and replay its files)
// gives the same counters and per-peer stats as frame by frame, and that
// the counters reach Stats when the batch ends.
func TestBatch(t *testing.T) {
	for _, mc := range mixCases {
		t.Run(mc.name, func(t *testing.T) {
			one, batched := mc.build(t), mc.build(t)
			e1 := NewEngine(Config{Local: mixLocalSet()})
			e2 := NewEngine(Config{Local: mixLocalSet()})
			n := 3 * len(one.frames)
			for range n {
				one.processNext(e1)
			}
			for i := 0; i < n; {
				start := i
				e2.BeginBatch()
				e2.BeginBatch() // nested: no effect
				for ; i < n && i-start < 100; i++ {
					batched.processNext(e2)
				}
				if got := e2.Stats().Packets; got != uint64(start) {
					t.Fatalf("Stats during a batch: %d packets, want those of the batches before it, %d", got, start)
				}
				e2.EndBatch()
				if got := e2.Stats().Packets; got != uint64(i) {
					t.Fatalf("Stats after a batch: %d packets, want %d", got, i)
				}
			}
			e2.EndBatch() // without a batch: no effect
			if s1, s2 := e1.Stats(), e2.Stats(); s1 != s2 {
				t.Errorf("stats: frame by frame %+v, in batches %+v", s1, s2)
			}
			p1, p2 := e1.Drain(nil), e2.Drain(nil)
			if len(p1) == 0 || !reflect.DeepEqual(p1, p2) {
				t.Errorf("drained: frame by frame %+v, in batches %+v", p1, p2)
			}
		})
	}
}

// TestBatchDrainWaits checks that a Drain during a batch waits for its
// end, and then returns the batch's samples.
func TestBatchDrainWaits(t *testing.T) {
	m := mixCases[0].build(t)
	e := mixEngine(t, m)
	e.Drain(nil)
	e.BeginBatch()
	for range 30 {
		m.processNext(e)
	}
	got := make(chan []PeerStats)
	go func() { got <- e.Drain(nil) }()
	select {
	case p := <-got:
		t.Fatalf("Drain returned during the batch: %+v", p)
	case <-time.After(50 * time.Millisecond):
	}
	e.EndBatch()
	select {
	case p := <-got:
		if len(p) != 1 || p[0].Count != 10 {
			t.Errorf("Drain after the batch: %+v, want one peer with the batch's 10 samples", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Drain still blocked after EndBatch")
	}
}

// TestBatchOnSampleBlocks checks that an OnSample that blocks inside a
// batch (a slow consumer) does not block Drain: the batch lets go of the
// aggregator's lock while OnSample runs, and takes it back afterwards.
func TestBatchOnSampleBlocks(t *testing.T) {
	m := mixCases[0].build(t)
	entered, release := make(chan struct{}), make(chan struct{})
	blocked := false
	e := NewEngine(Config{Local: mixLocalSet(), OnSample: func(Sample) {
		if !blocked {
			blocked = true
			close(entered)
			<-release
		}
	}})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.BeginBatch()
		for range 30 {
			m.processNext(e)
		}
		e.EndBatch()
	}()
	<-entered
	got := make(chan []PeerStats)
	go func() { got <- e.Drain(nil) }()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("Drain blocked while OnSample blocked inside a batch")
	}
	close(release)
	<-done
	if st := e.Stats(); st.Packets != 30 || st.Samples != 10 {
		t.Errorf("stats after the batch: %v, want 30 packets and 10 samples", st)
	}
	if p := e.Drain(nil); len(p) != 1 || p[0].Count != 9 {
		t.Errorf("second Drain: %+v, want the 9 samples after the first Drain", p)
	}
}
