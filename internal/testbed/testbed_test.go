package testbed_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// TestMain checks, after all tests, that no namespace created by this process
// is left behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if left := ownNamespaces(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "namespaces left behind: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// listNetNS returns the names that `ip netns list` shows.
func listNetNS() []string {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil
	}
	var names []string
	s := bufio.NewScanner(bytes.NewReader(out))
	for s.Scan() {
		if f := strings.Fields(s.Text()); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func ownNamespaces() []string {
	prefix := fmt.Sprintf("gm-%d-", os.Getpid())
	var own []string
	for _, name := range listNetNS() {
		if strings.HasPrefix(name, prefix) {
			own = append(own, name)
		}
	}
	return own
}

// TestDelayLinePing checks that the delay line holds each frame for its
// delay: TCP frames, timed on the wire by a packet socket on each TAP
// device, as they leave one namespace and as they reach the other (the
// kernel's timestamps, on one clock), take the configured one-way delay
// and at most 0.5 ms more, by the median. Ping, which stamps its echoes in
// user space and so reads longer on a busy machine, only checks the path
// widely.
func TestDelayLinePing(t *testing.T) {
	const oneWay = 10 * time.Millisecond
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: oneWay},
		ServerToClient: testbed.Impairment{Delay: oneWay},
	})
	client := testbed.TrackRetransmissions(t, dl.Client, dl.ClientIf)
	server := testbed.TrackRetransmissions(t, dl.Server, dl.ServerIf)
	for _, tt := range []struct {
		name string
		path testbed.Path
	}{
		{"ipv4", dl.Path4()},
		{"ipv6", dl.Path6()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := testbed.Ping(t, dl.Client, tt.path.Dst, 20)
			t.Logf("ping %s: median RTT %v, configured %v", tt.path.Dst, got, 2*oneWay)
			if d := got - 2*oneWay; d < 0 || d > 5*time.Millisecond {
				t.Errorf("ping: median RTT %v, want within 5 ms above %v", got, 2*oneWay)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := testbed.RequestResponse(ctx, tt.path, testbed.RequestResponseConfig{Count: 20, Gap: 2 * time.Millisecond}); err != nil {
				t.Fatal(err)
			}
		})
	}
	time.Sleep(100 * time.Millisecond) // the last frames reach both sockets
	for _, dir := range []struct {
		name     string
		from, to *testbed.RetransTracker
	}{
		{"client->server", client, server},
		{"server->client", server, client},
	} {
		delays := oneWayDelays(dir.from.Frames(), dir.to.Frames())
		med := testbed.Quantile(delays, 0.5)
		t.Logf("%s: %d frames, one-way delay on the wire: median %v, max %v", dir.name, len(delays), med, testbed.Quantile(delays, 1))
		if len(delays) < 40 {
			t.Errorf("%s: %d frames matched on both devices, want at least 40", dir.name, len(delays))
		}
		if d := med - oneWay; d < 0 || d > 500*time.Microsecond {
			t.Errorf("%s: median one-way delay %v, want within 0.5 ms above %v", dir.name, med, oneWay)
		}
	}
	c2s, s2c := dl.Stats()
	t.Logf("client->server %+v", c2s)
	t.Logf("server->client %+v", s2c)
	for _, st := range []testbed.DirectionStats{c2s, s2c} {
		if st.MedianLateness > 500*time.Microsecond {
			t.Errorf("median lateness %v, want below 0.5ms", st.MedianLateness)
		}
		if st.Lost != 0 || st.Overflow != 0 || st.WriteErrors != 0 {
			t.Errorf("stats %+v, want no lost, overflowed or failed frames", st)
		}
	}
}

// oneWayDelays pairs the frames that one side sent with the same frames as
// the other side received them, in order, and returns the time each took.
func oneWayDelays(from, to []testbed.Frame) []time.Duration {
	type key struct {
		src, dst         netip.AddrPort
		seq, end, ack    uint32
		tsval, tsecr     uint32
		syn, rst, hasAck bool
		hasTS            bool
	}
	keyOf := func(f testbed.Frame) key {
		return key{f.Src, f.Dst, f.Seq, f.End, f.Ack, f.TSval, f.TSecr, f.SYN, f.RST, f.HasAck, f.HasTS}
	}
	sent := map[key][]time.Time{}
	for _, f := range from {
		if f.Out {
			sent[keyOf(f)] = append(sent[keyOf(f)], f.Time)
		}
	}
	var delays []time.Duration
	for _, f := range to {
		if f.Out {
			continue
		}
		k := keyOf(f)
		if ts := sent[k]; len(ts) > 0 {
			delays = append(delays, f.Time.Sub(ts[0]))
			sent[k] = ts[1:]
		}
	}
	return delays
}

func TestDelayLineTraffic(t *testing.T) {
	const oneWay = 5 * time.Millisecond
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: oneWay},
		ServerToClient: testbed.Impairment{Delay: oneWay, Jitter: time.Millisecond},
	})
	for _, tt := range []struct {
		name string
		path testbed.Path
	}{
		{"ipv4", dl.Path4()},
		{"ipv6", dl.Path6()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			if err := testbed.Bulk(ctx, tt.path, 1<<20); err != nil {
				t.Error(err)
			}
			const count = 10
			start := time.Now()
			err := testbed.RequestResponse(ctx, tt.path, testbed.RequestResponseConfig{Count: count, Gap: 2 * time.Millisecond})
			if err != nil {
				t.Error(err)
			}
			// Each exchange takes at least one round trip.
			if el := time.Since(start); el < count*2*oneWay {
				t.Errorf("%d requests took %v, less than %d round trips", count, el, count)
			}
			if err := testbed.ShortConnections(ctx, tt.path, testbed.RequestResponseConfig{Count: 5}); err != nil {
				t.Error(err)
			}
			if err := testbed.SlowSender(ctx, tt.path, testbed.SlowSenderConfig{Count: 10, Interval: 2 * time.Millisecond}); err != nil {
				t.Error(err)
			}
		})
	}
	c2s, s2c := dl.Stats()
	t.Logf("client->server %+v", c2s)
	t.Logf("server->client %+v", s2c)
}

func TestDelayLineLoss(t *testing.T) {
	const loss = 0.2
	dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{
		ClientToServer: testbed.Impairment{Delay: time.Millisecond, Loss: loss},
		ServerToClient: testbed.Impairment{Delay: time.Millisecond},
		Seed:           1,
	})
	const sent = 2000
	received := len(sendUDP(t, dl, sent, 20))
	frac := 1 - float64(received)/sent
	c2s, _ := dl.Stats()
	t.Logf("received %d of %d datagrams: lost %.3f, configured %.2f; stats %+v", received, sent, frac, loss, c2s)
	if frac < loss-0.05 || frac > loss+0.05 {
		t.Errorf("lost %.3f of datagrams, want %.2f±0.05", frac, loss)
	}
	if c2s.Overflow != 0 {
		t.Errorf("%d frames overflowed the queue", c2s.Overflow)
	}
}

func TestDelayLineReorder(t *testing.T) {
	for _, tt := range []struct {
		name    string
		reorder bool
	}{
		{"in-order", false},
		{"reorder", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			im := testbed.Impairment{Delay: 2 * time.Millisecond, Jitter: time.Millisecond, Reorder: tt.reorder}
			dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{ClientToServer: im, Seed: 3})
			seqs := sendUDP(t, dl, 500, 5)
			inversions := 0
			for i := 1; i < len(seqs); i++ {
				if seqs[i] < seqs[i-1] {
					inversions++
				}
			}
			t.Logf("%d datagrams arrived, %d out of order", len(seqs), inversions)
			if len(seqs) != 500 {
				t.Errorf("%d of 500 datagrams arrived", len(seqs))
			}
			if got := inversions > 0; got != tt.reorder {
				t.Errorf("%d datagrams out of order, want reordering %v", inversions, tt.reorder)
			}
		})
	}
}

// sendUDP sends n numbered datagrams from the client to the server of dl,
// pausing 1 ms after every burst of them, and returns the numbers in the
// order of arrival.
func sendUDP(t *testing.T, dl *testbed.DelayLine, n, burst int) []int {
	t.Helper()
	ctx := t.Context()
	srv, err := dl.Server.ListenPacket(ctx, "udp", netip.AddrPortFrom(dl.ServerAddr4, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	cli, err := dl.Client.Dial(ctx, "udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	got := make(chan []int)
	go func() {
		var seqs []int
		buf := make([]byte, 1500)
		for {
			_ = srv.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			m, _, err := srv.ReadFrom(buf)
			if err != nil {
				got <- seqs
				return
			}
			seqs = append(seqs, int(binary.BigEndian.Uint32(buf[:m])))
		}
	}()
	msg := make([]byte, 100)
	for i := range n {
		binary.BigEndian.PutUint32(msg, uint32(i))
		if _, err := cli.Write(msg); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		if i%burst == burst-1 {
			time.Sleep(time.Millisecond) // stay far below every queue limit
		}
	}
	return <-got
}

func TestVethPair(t *testing.T) {
	p := testbed.NewVethPair(t)
	for _, path := range []testbed.Path{p.Path4(), p.Path6()} {
		if rtt := testbed.Ping(t, p.Client, path.Dst, 3); rtt > 5*time.Millisecond {
			t.Errorf("ping %s over veth: median RTT %v, want near zero", path.Dst, rtt)
		}
		if err := testbed.Bulk(t.Context(), path, 1<<20); err != nil {
			t.Error(err)
		}
	}
}

func TestNetNSDo(t *testing.T) {
	ns := testbed.NewNetNS(t)
	want, err := os.Stat(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		in, err := os.Stat("/proc/thread-self/ns/net")
		if err != nil {
			return err
		}
		if !os.SameFile(in, want) {
			return fmt.Errorf("inside Do, the thread is not in %s", ns)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	after, err := os.Stat("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(orig, after) {
		t.Error("after Do, the thread is not in its original namespace")
	}
	// Only lo exists, and it is up.
	ifs, err := interfacesIn(ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifs) != 1 || ifs[0].Flags&net.FlagUp == 0 {
		t.Errorf("interfaces in new namespace: %v, want lo up", ifs)
	}
}

func interfacesIn(ns *testbed.NetNS) ([]net.Interface, error) {
	var ifs []net.Interface
	err := ns.Do(func() error {
		var err error
		ifs, err = net.Interfaces()
		return err
	})
	return ifs, err
}

func TestSetSysctl(t *testing.T) {
	ns := testbed.NewNetNS(t)
	const key = "net.ipv4.tcp_timestamps"
	rootBefore, err := os.ReadFile("/proc/sys/net/ipv4/tcp_timestamps")
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.SetSysctl(key, "0"); err != nil {
		t.Fatal(err)
	}
	if got, err := ns.Sysctl(key); err != nil || got != "0" {
		t.Errorf("Sysctl(%q) = %q, %v; want 0", key, got, err)
	}
	out, err := ns.Command(t.Context(), "cat", "/proc/sys/net/ipv4/tcp_timestamps").Output()
	if err != nil || strings.TrimSpace(string(out)) != "0" {
		t.Errorf("ip netns exec cat: %q, %v; want 0", out, err)
	}
	rootAfter, err := os.ReadFile("/proc/sys/net/ipv4/tcp_timestamps")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rootBefore, rootAfter) {
		t.Errorf("root namespace changed from %q to %q", rootBefore, rootAfter)
	}
}

func TestNothingLeftBehind(t *testing.T) {
	var names []string
	// The subtest ends early, as a failing one would; its cleanups still run.
	t.Run("ends-early", func(t *testing.T) {
		dl := testbed.NewDelayLine(t, testbed.DelayLineConfig{})
		p := testbed.NewVethPair(t)
		ns := testbed.NewNetNS(t)
		names = []string{dl.Client.Name(), dl.Server.Name(), p.Client.Name(), p.Server.Name(), ns.Name()}
		for _, name := range names {
			if !slices.Contains(listNetNS(), name) {
				t.Errorf("ip netns list does not show %s", name)
			}
		}
		t.SkipNow()
	})
	if len(names) == 0 {
		t.Skip("subtest created nothing")
	}
	for _, name := range listNetNS() {
		if slices.Contains(names, name) {
			t.Errorf("namespace %s left behind", name)
		}
	}
}
