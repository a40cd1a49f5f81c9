package capture

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/bpf"
)

// TestFilterGenFarJumps checks the trampolines of conditional jumps whose
// targets are beyond the 255 instructions that their offsets reach.
func TestFilterGenFarJumps(t *testing.T) {
	tests := []struct {
		name string
		// gaps[i] is the number of instructions before the return of
		// outcome i: 1 for a first byte of 1, 2 for 2, 3 otherwise.
		gaps [3]int
		// tramps is the number of trampolines the jumps need.
		tramps int
	}{
		{name: "near", gaps: [3]int{10, 10, 10}},
		{name: "first true far", gaps: [3]int{300, 10, 10}, tramps: 3},
		{name: "second true far", gaps: [3]int{10, 300, 10}, tramps: 2},
		{name: "second false far", gaps: [3]int{10, 10, 300}, tramps: 1},
		{name: "both far", gaps: [3]int{300, 300, 10}, tramps: 3},
		{name: "first near, second far", gaps: [3]int{250, 250, 250}, tramps: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newFilterGen()
			to := [3]label{g.newLabel(), g.newLabel(), g.newLabel()}
			g.emit(bpf.LoadAbsolute{Off: 0, Size: 1})
			g.jumpIf(bpf.JumpEqual, 1, to[0], next)
			g.jumpIf(bpf.JumpEqual, 2, to[1], to[2])
			for i, gap := range tc.gaps {
				for range gap {
					g.emit(bpf.TAX{})
				}
				g.bind(to[i])
				g.emit(bpf.RetConstant{Val: uint32(i + 1)})
			}
			g.bind(g.accept)
			g.emit(bpf.RetConstant{Val: 100})
			g.bind(g.drop)
			g.emit(bpf.RetConstant{Val: 0})
			prog, err := g.assemble()
			if err != nil {
				t.Fatal(err)
			}
			// A load, two jumps, the gaps, five returns and the trampolines.
			want := 1 + 2 + tc.gaps[0] + tc.gaps[1] + tc.gaps[2] + 5 + tc.tramps
			if diff := cmp.Diff(want, len(prog)); diff != "" {
				t.Errorf("program size (-want +got):\n%s", diff)
			}
			vm, err := bpf.NewVM(prog)
			if err != nil {
				t.Fatal(err)
			}
			for in, want := range map[byte]int{1: 1, 2: 2, 3: 3, 0: 3} {
				got, err := vm.Run([]byte{in})
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("input %d: result %d, want %d", in, got, want)
				}
			}
		})
	}
}
