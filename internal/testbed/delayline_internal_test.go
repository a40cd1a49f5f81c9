package testbed

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestAdmitOrder(t *testing.T) {
	tests := []struct {
		name        string
		im          Impairment
		wantReorder bool
	}{
		{name: "uniform", im: Impairment{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}},
		{name: "normal", im: Impairment{Delay: 10 * time.Millisecond, Jitter: 2 * time.Millisecond, Distribution: Normal}},
		{name: "uniform-reorder", im: Impairment{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Reorder: true}, wantReorder: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDirection(tt.im, 1, 1, 16)
			var prev monoTime
			reordered := false
			lo, hi := tt.im.Delay, tt.im.Delay
			for i := range 10000 {
				rx := monoTime(i) * monoTime(100*time.Microsecond)
				release, lost := d.admit(rx)
				if lost {
					t.Fatal("frame lost without Loss")
				}
				if release < prev {
					reordered = true
				}
				prev = max(prev, release)
				delay := time.Duration(release - rx)
				if delay < tt.im.minDelay() {
					t.Fatalf("frame %d delayed %v, below the minimum %v", i, delay, tt.im.minDelay())
				}
				lo, hi = min(lo, delay), max(hi, delay)
			}
			if reordered != tt.wantReorder {
				t.Errorf("reordered = %v, want %v", reordered, tt.wantReorder)
			}
			if lo == hi {
				t.Errorf("no jitter: every delay is %v", lo)
			}
		})
	}
}

func TestAdmitLoss(t *testing.T) {
	d := newDirection(Impairment{Loss: 0.1}, 42, 1, 16)
	lost := 0
	const n = 100000
	for i := range n {
		if _, l := d.admit(monoTime(i)); l {
			lost++
		}
	}
	if frac := float64(lost) / n; frac < 0.095 || frac > 0.105 {
		t.Errorf("lost %.4f of frames, want 0.1", frac)
	}
	// The same seed loses the same frames.
	a := newDirection(Impairment{Loss: 0.5}, 7, 1, 16)
	b := newDirection(Impairment{Loss: 0.5}, 7, 1, 16)
	for i := range 1000 {
		_, la := a.admit(monoTime(i))
		_, lb := b.admit(monoTime(i))
		if la != lb {
			t.Fatalf("frame %d: same seed, different fate", i)
		}
	}
}

func TestInsertByRelease(t *testing.T) {
	var q []frame
	for _, r := range []monoTime{5, 3, 7, 3, 1} {
		q = insertByRelease(q, frame{release: r, data: []byte{byte(r), byte(len(q))}})
	}
	var got [][]byte
	for _, f := range q {
		got = append(got, f.data)
	}
	want := [][]byte{{1, 4}, {3, 1}, {3, 3}, {5, 0}, {7, 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

func TestImpairmentValidate(t *testing.T) {
	tests := []struct {
		name string
		im   Impairment
		ok   bool
	}{
		{name: "zero", ok: true},
		{name: "negative-delay", im: Impairment{Delay: -1}},
		{name: "negative-jitter", im: Impairment{Jitter: -1}},
		{name: "loss-above-one", im: Impairment{Loss: 1.5}},
		{name: "bad-distribution", im: Impairment{Distribution: 7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.im.validate("ClientToServer")
			if (err == nil) != tt.ok {
				t.Errorf("validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestParsePingRTTs(t *testing.T) {
	out := []byte(`PING 192.0.2.2 (192.0.2.2) 56(84) bytes of data.
64 bytes from 192.0.2.2: icmp_seq=1 ttl=64 time=20.3 ms
64 bytes from 192.0.2.2: icmp_seq=2 ttl=64 time=20.1 ms
64 bytes from 192.0.2.2: icmp_seq=3 ttl=64 time=25.0 ms

--- 192.0.2.2 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 101ms
rtt min/avg/max/mdev = 20.100/21.800/25.000/2.200 ms
`)
	got := parsePingRTTs(out)
	want := []time.Duration{20300 * time.Microsecond, 20100 * time.Microsecond, 25 * time.Millisecond}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parsePingRTTs (-want +got):\n%s", diff)
	}
	if got, want := median(got), 20300*time.Microsecond; got != want {
		t.Errorf("median = %v, want %v", got, want)
	}
}
