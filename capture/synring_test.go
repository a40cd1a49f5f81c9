package capture

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSynRing drives the ring of pending SYNs with random pushes, kills
// (a flow evicted or released) and timeouts, against a model: the live
// entries are exactly the flows' latest pushes not since killed, in the
// order of their pushes, each flow knows its entry, and the ring never
// grows past its max however many dead entries it holds.
func TestSynRing(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		flows := make([]flow, 1+rng.IntN(40))
		r := synRing{max: slotsFor(len(flows))}
		latest := map[*flow]int64{} // the model: each live flow's push time
		now := int64(0)
		for op := range 20000 {
			f := &flows[rng.IntN(len(flows))]
			switch x := rng.IntN(10); {
			case x < 7:
				now++
				r.push(f, now)
				latest[f] = now
			case x < 9:
				r.kill(f)
				delete(latest, f)
			default: // what checkSYNs does when the oldest entries time out
				cut := now - int64(rng.IntN(50))
				for r.head < r.tail {
					s := r.at(r.head)
					if s.f != nil {
						if s.first > cut {
							break
						}
						delete(latest, s.f)
						s.f.synPos = 0
						*s = pendingSYN{}
					}
					r.head++
				}
			}
			if len(r.ring) > r.max {
				t.Fatalf("seed %d op %d: ring of %d entries, max %d", seed, op, len(r.ring), r.max)
			}
			var got []int64
			for p := r.head; p < r.tail; p++ {
				s := r.at(p)
				if s.f == nil {
					continue
				}
				if s.f.synPos != p+1 || latest[s.f] != s.first {
					t.Fatalf("seed %d op %d: entry %d of %p (synPos %d) first %d, model %d", seed, op, p, s.f, s.f.synPos, s.first, latest[s.f])
				}
				got = append(got, s.first)
			}
			want := make([]int64, 0, len(latest))
			for _, first := range latest {
				want = append(want, first)
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("seed %d op %d: live entries %v, want %v", seed, op, got, want)
			}
			for i := range flows {
				if _, ok := latest[&flows[i]]; ok != (flows[i].synPos != 0) {
					t.Fatalf("seed %d op %d: flow %d synPos %d, live %v", seed, op, i, flows[i].synPos, ok)
				}
			}
		}
	}
}
