//go:build linux

package testbed

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestReferenceAgreesWithTshark records traffic across a delay line with a
// tracker and with tcpdump on the same interface at the same time, and
// checks that the tracker saw the frames tcpdump wrote, with the same
// kernel timestamps, and that its reference samples agree with Wireshark's
// tcp.analysis.ack_rtt on tcpdump's file (see checkAgainstTshark): the
// reference of the timing tests is what Wireshark would say.
func TestReferenceAgreesWithTshark(t *testing.T) {
	RequireRoot(t)
	RequireTool(t, "tshark", "tshark")
	im := Impairment{Delay: time.Millisecond}
	dl := NewDelayLine(t, DelayLineConfig{ClientToServer: im, ServerToClient: im})
	tr := TrackRetransmissions(t, dl.Client, dl.ClientIf)
	stop := StartTcpdump(t, dl.Client, dl.ClientIf)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	for _, ts := range []string{"1", "0"} {
		for _, ns := range []*NetNS{dl.Client, dl.Server} {
			if err := ns.SetSysctl("net.ipv4.tcp_timestamps", ts); err != nil {
				t.Fatal(err)
			}
		}
		for _, path := range []Path{dl.Path4(), dl.Path6()} {
			if err := Bulk(ctx, path, 256<<10); err != nil {
				t.Fatal(err)
			}
			if err := RequestResponse(ctx, path, RequestResponseConfig{Count: 10, Gap: 2 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
			if err := ShortConnections(ctx, path, RequestResponseConfig{Count: 5}); err != nil {
				t.Fatal(err)
			}
		}
	}
	time.Sleep(100 * time.Millisecond) // the last frames reach both sockets
	pcap := stop()
	t.Cleanup(func() {
		// A failure here is a disagreement on the same frames: keep the
		// capture (the test's temporary files go) to look at it.
		if !t.Failed() {
			return
		}
		if data, err := os.ReadFile(pcap); err == nil {
			kept := filepath.Join(os.TempDir(), "go-metro-reference-failed.pcap")
			if os.WriteFile(kept, data, 0o644) == nil {
				t.Logf("capture kept in %s", kept)
			}
		}
	})
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}

	trFrames := tr.Frames()
	var trTimes, pcapTimes []int64
	for _, f := range trFrames {
		trTimes = append(trTimes, f.Time.UnixNano())
	}
	byNumber := map[int]Frame{}
	for _, addr := range []struct{ v4 bool }{{true}, {false}} {
		local := dl.ClientAddr4
		if !addr.v4 {
			local = dl.ClientAddr6
		}
		frames, numbers, err := ReadPcap(pcap, local)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			if f.Src.Addr() == local || f.Dst.Addr() == local {
				byNumber[numbers[i]] = f
			}
		}
	}
	for _, f := range byNumber {
		pcapTimes = append(pcapTimes, f.Time.UnixNano())
	}
	slices.Sort(trTimes)
	slices.Sort(pcapTimes)
	if !slices.Equal(trTimes, pcapTimes) {
		t.Fatalf("the tracker saw %d frames, tcpdump %d: not the same timestamps", len(trTimes), len(pcapTimes))
	}
	ref, err := tr.Reference()
	if err != nil {
		t.Fatal(err)
	}
	acks := map[int]AckRTT{}
	for _, a := range TsharkAckRTT(t, pcap) {
		acks[a.Number] = a
	}
	for _, local := range []struct {
		name string
		v4   bool
	}{{"ipv4", true}, {"ipv6", false}} {
		t.Run(local.name, func(t *testing.T) {
			addr := dl.ClientAddr4
			if !local.v4 {
				addr = dl.ClientAddr6
			}
			frames := map[int]Frame{}
			for n, f := range byNumber {
				if f.Src.Addr() == addr || f.Dst.Addr() == addr {
					frames[n] = f
				}
			}
			mine := ref.Filter(func(s RefSample) bool { return s.Local.Addr() == addr })
			checkAgainstTshark(t, mine, addr, acks, frames)
		})
	}
}
