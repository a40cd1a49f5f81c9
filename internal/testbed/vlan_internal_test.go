package testbed

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCopyFramePriorityTag(t *testing.T) {
	// Destination, source, EtherType IPv4, two bytes of payload.
	frame := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x08, 0x00, 0x45, 0x00}
	tests := []struct {
		name string
		tag  bool
		in   []byte
		want []byte
	}{
		{name: "untagged", in: frame, want: frame},
		{name: "tagged", tag: true, in: frame,
			want: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0x81, 0x00, 0xa0, 0x00, 0x08, 0x00, 0x45, 0x00}},
		{name: "runt", tag: true, in: frame[:10], want: frame[:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &direction{priorityTag: tt.tag}
			got := d.copyFrame(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("copyFrame (-want +got):\n%s", diff)
			}
			if len(got) > 0 && &got[0] == &tt.in[0] {
				t.Error("copyFrame returned its input, not a copy")
			}
		})
	}
}
