package main

import (
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
)

func TestAckWindows(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	// Frames 1..8 at 0, 100, ..., 700 ms.
	var times []time.Duration
	for i := range 8 {
		times = append(times, ms(100*float64(i)))
	}
	tsv := []byte("2\t192.0.2.1\t\t0.010000000\n" +
		"3\t192.0.2.2\t\t0.500000000\n" + // to the remote side: not counted
		"4\t192.0.2.1\t\t0.030000000\n" +
		"5\t192.0.2.1\t\t0.020000000\n" +
		"7\t192.0.2.1\t\t0.040000000\n" +
		"8\t\t2001:db8::1\t0.100000000\n") // another address
	got, err := ackWindows(times, tsv, netip.MustParseAddr("192.0.2.1"), 250*time.Millisecond, 500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	want := []ackWindow{
		{width: ms(250), start: 0, acks: 1, median: ms(10)},       // frame 2
		{width: ms(250), start: ms(250), acks: 2, median: ms(25)}, // frames 4, 5: the mean of the two
		{width: ms(250), start: ms(500), acks: 1, median: ms(40)}, // frame 7
		{width: ms(500), start: 0, acks: 3, median: ms(20)},       // frames 2, 4, 5
		{width: ms(500), start: ms(500), acks: 1, median: ms(40)}, // frame 7
		{width: 0, start: 0, acks: 4, median: ms(25)},             // all
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(ackWindow{})); diff != "" {
		t.Errorf("ackWindows (-want +got):\n%s", diff)
	}
	if _, err := ackWindows(times, []byte("9\t192.0.2.1\t\t0.1\n"), netip.MustParseAddr("192.0.2.1"), time.Second); err == nil {
		t.Error("a frame number beyond the capture: no error")
	}
}

func TestTrimPCAP(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "full.pcap"), filepath.Join(dir, "trimmed.pcap")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	w := pcapgo.NewWriterNanos(f)
	if err := w.WriteFileHeader(128, layers.LinkTypeEthernet); err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1000, 123)
	for i := range 10 {
		data := []byte{byte(i), 1, 2, 3}
		ci := gopacket.CaptureInfo{Timestamp: start.Add(time.Duration(i) * 400 * time.Millisecond), CaptureLength: 4, Length: 60}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := trimPCAP(src, dst, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n != 8 { // 0 to 2.8 s
		t.Errorf("kept %d frames, want 8", n)
	}
	times, err := frameTimes(dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(times) != 8 || times[7] != 2800*time.Millisecond {
		t.Errorf("frame times %v, want 8 up to 2.8s", times)
	}
	if n, err := trimPCAP(dst, dst, 0); err != nil || n != 8 {
		t.Errorf("counting: %d, %v; want 8", n, err)
	}
}

// TestCommittedWindows checks that every committed NAME.windows.tsv is
// what ackWindows makes of the committed NAME.pcap and NAME.ack_rtt.tsv.
func TestCommittedWindows(t *testing.T) {
	const dir = "../../../../capture/testdata"
	n := 0
	for _, sc := range scenarios() {
		if !sc.windows {
			continue
		}
		n++
		name := filepath.Join(dir, sc.file[:len(sc.file)-len(".pcap")])
		t.Run(sc.file, func(t *testing.T) {
			times, err := frameTimes(name + ".pcap")
			if err != nil {
				t.Fatal(err)
			}
			tsv, err := os.ReadFile(name + ".ack_rtt.tsv")
			if err != nil {
				t.Fatal(err)
			}
			ws, err := ackWindows(times, tsv, localAddr(sc), 250*time.Millisecond, 500*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(name + ".windows.tsv")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), string(formatWindows(ws))); diff != "" {
				t.Errorf("%s.windows.tsv is stale: regenerate it with go run ./internal/testbed/cmd/record-pcaps -refs -run %s (-committed +computed):\n%s",
					name, sc.file, diff)
			}
		})
	}
	if n == 0 {
		t.Error("no scenario writes windows")
	}
}
