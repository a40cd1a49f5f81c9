package capture

import (
	"testing"
)

// TestNoAllocs checks that the per-packet path does not allocate in steady
// state: Decode alone, and Decode plus the flow table, estimators and
// aggregation (Engine.ProcessNano) over each traffic mix once its flows
// and peers exist.
func TestNoAllocs(t *testing.T) {
	t.Run("decode", func(t *testing.T) {
		frames := truncFrames(t)
		var p Packet
		allocs := testing.AllocsPerRun(100, func() {
			for _, f := range frames {
				if err := Decode(f.link, f.frame, len(f.frame), &p); err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
			}
		})
		if allocs != 0 {
			t.Errorf("Decode of %d frames: %v allocs, want 0", len(frames), allocs)
		}
	})
	t.Run("decode-errors", func(t *testing.T) {
		data := buildIP(t, decSeg(false, decShapes[2].seg))
		frames := []struct {
			link  LinkType
			frame []byte
		}{
			{147, data},
			{LinkEthernet, ethFrame(data)[:30]},
			{LinkRaw, withProto(data, 17)},
			{LinkRaw, patched(data, 6, 0, 0xb9)},
			{LinkRaw, buildIP(t, decSeg(false, tseg{flags: FlagACK, rawOpts: []byte{8, 6, 0, 0}}))},
		}
		var p Packet
		allocs := testing.AllocsPerRun(100, func() {
			for _, f := range frames {
				if Decode(f.link, f.frame, 0, &p) == nil {
					t.Fatal("decoded")
				}
			}
		})
		if allocs != 0 {
			t.Errorf("Decode errors: %v allocs, want 0", allocs)
		}
	})
	// All the mixes in one Engine, interleaved: timestamps and seq/ack,
	// samples, pure ACKs, IPv4 and IPv6, Ethernet, VLAN, SLL, SLL2, raw.
	t.Run("process-all-mixes", func(t *testing.T) {
		var mixes []*mix
		for _, mc := range mixCases {
			// Not the mixes of 20,000 frames: 200 rounds of them take
			// 17 s under -race; each has its own subtest below.
			if mc.name != "many-flows" && !mc.control {
				mixes = append(mixes, mc.build(t))
			}
		}
		e := NewEngine(Config{Local: mixLocalSet()})
		round := func() {
			for _, m := range mixes {
				for range len(m.frames) {
					m.processNext(e)
				}
			}
		}
		for range 3 {
			round()
		}
		before := e.Stats()
		allocs := testing.AllocsPerRun(200, round)
		after := e.Stats()
		if allocs != 0 {
			t.Errorf("Process: %v allocs per round, want 0", allocs)
		}
		if after.Samples == before.Samples {
			t.Errorf("no samples: %v", after)
		}
		// The same rounds as a batch, as a ring block is processed.
		allocs = testing.AllocsPerRun(200, func() {
			e.BeginBatch()
			round()
			e.EndBatch()
		})
		if allocs != 0 {
			t.Errorf("Process in a batch: %v allocs per round, want 0", allocs)
		}
	})
	for _, mc := range mixCases {
		t.Run("process/"+mc.name, func(t *testing.T) {
			m := mc.build(t)
			e := mixEngine(t, m)
			before := e.Stats()
			runs := 100
			if len(m.frames) > 1000 {
				runs = 3
			}
			allocs := testing.AllocsPerRun(runs, func() {
				for range len(m.frames) {
					m.processNext(e)
				}
			})
			after := e.Stats()
			if allocs != 0 {
				t.Errorf("Process of %d frames: %v allocs, want 0", len(m.frames), allocs)
			}
			if got, want := after.Samples-before.Samples, uint64((runs+1)*mc.samplesPerCyc); got != want {
				t.Errorf("%d samples, want %d", got, want)
			}
		})
	}
}
