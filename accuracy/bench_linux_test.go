//go:build linux

package accuracy_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
	"github.com/go-metro/go-metro/internal/testbed"
)

// flushWait lets the kernel retire the partly filled block of the capture
// ring (it does after 64 ms) and the capture goroutine process it, so that
// a Run after it sees every sample of the traffic before it.
const flushWait = 300 * time.Millisecond

// pingCount is the number of echo requests that measure a path's RTT,
// and jitterPingCount that of a path with jitter, whose median needs more.
const (
	pingCount       = 20
	jitterPingCount = 60
)

// bench is one delay line with the go_metro check running live on the
// client's TAP device, inside the client namespace (the `netns` instance
// key), submitting to a Recorder. Every sample the capture makes is also
// logged, through Config.OnSample, to attribute samples to methods and
// retransmissions; a tracker with a packet socket of its own sees the same
// frames with the same kernel timestamps, and computes the reference that
// the check is compared with from them (testbed.ReferenceSamples).
type bench struct {
	dl      *testbed.DelayLine
	check   *check.Check
	rec     *check.Recorder
	tracker *testbed.RetransTracker
	// others are more trackers, on other devices the frames cross (the
	// port of a bridge): a sample may pair with their frames too.
	others []*testbed.RetransTracker
	// ping is the path RTT that ping measured when the bench was built: a
	// sanity check of the test bed, which the check is not compared with.
	ping  time.Duration
	pings int

	mu      sync.Mutex
	samples []capture.Sample
	live    *capture.Live
}

// newBench builds a delay line with cfg, starts the check on its client
// side and measures the path RTT with ping.
func newBench(tb testing.TB, cfg testbed.DelayLineConfig) *bench {
	tb.Helper()
	return newBenchWith(tb, cfg, "")
}

// bridgeName is the bridge of a bench built with a bridge.
const bridgeName = "br0"

// newBenchWith is newBench with the client's TAP device, if bridge is not
// "", as the port of a bridge of that name which holds the client's
// addresses, and the check capturing on `any`. The reference then comes from
// the bridge, the device of the client's addresses, and samples pair with
// the frames of either device.
func newBenchWith(tb testing.TB, cfg testbed.DelayLineConfig, bridge string) *bench {
	tb.Helper()
	b := &bench{dl: testbed.NewDelayLine(tb, cfg), rec: &check.Recorder{}, pings: pingCount}
	if cfg.ClientToServer.Jitter > 0 || cfg.ServerToClient.Jitter > 0 {
		b.pings = jitterPingCount
	}
	iface := b.dl.ClientIf
	if bridge != "" {
		if err := b.dl.BridgeClient(bridge); err != nil {
			tb.Fatal(err)
		}
		b.tracker = testbed.TrackRetransmissions(tb, b.dl.Client, bridge)
		b.others = []*testbed.RetransTracker{testbed.TrackRetransmissions(tb, b.dl.Client, b.dl.ClientIf)}
		iface = "any"
	} else {
		b.tracker = testbed.TrackRetransmissions(tb, b.dl.Client, b.dl.ClientIf)
	}
	instance := fmt.Sprintf("interface: %s\nnetns: %s\nmin_collection_interval: 1\n", iface, b.dl.Client.Path())
	// The default 50 ms for the socket to open can run out on a loaded
	// machine.
	b.check = &check.Check{StartWait: 2 * time.Second}
	if err := b.check.Configure([]byte(instance), nil); err != nil {
		tb.Fatal(err)
	}
	b.check.NewCapture = func(cfg capture.LiveConfig) (check.Capture, error) {
		cfg.Engine.OnSample = b.record
		cfg.MaxBackoff = 200 * time.Millisecond
		l, err := capture.NewLive(cfg)
		if err != nil {
			return nil, err
		}
		b.mu.Lock()
		b.live = l
		b.mu.Unlock()
		return l, nil
	}
	tb.Cleanup(b.check.Cancel)
	b.run(tb)
	deadline := time.Now().Add(5 * time.Second)
	for b.health().State != capture.StateCapturing {
		if time.Now().After(deadline) {
			tb.Fatalf("capture not capturing after 5 s: %+v", b.health())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ping = b.measurePing(tb)
	return b
}

// measurePing measures the path RTT with ping.
func (b *bench) measurePing(tb testing.TB) time.Duration {
	tb.Helper()
	return testbed.Ping(tb, b.dl.Client, b.dl.ServerAddr4, b.pings)
}

// record is the OnSample hook; it runs on the packet goroutine.
func (b *bench) record(s capture.Sample) {
	b.mu.Lock()
	b.samples = append(b.samples, s)
	b.mu.Unlock()
}

// takeSamples returns and forgets the samples logged so far.
func (b *bench) takeSamples() []capture.Sample {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.samples
	b.samples = nil
	return s
}

func (b *bench) health() capture.Health {
	b.mu.Lock()
	l := b.live
	b.mu.Unlock()
	if l == nil {
		return capture.Health{}
	}
	return l.Health()
}

// run runs the check once and returns what it submitted.
func (b *bench) run(tb testing.TB) check.Batch {
	tb.Helper()
	if err := b.check.Run(b.rec); err != nil {
		tb.Fatalf("check run: %v", err)
	}
	return b.rec.Last()
}

// setTimestamps turns TCP timestamps on or off in both namespaces; it
// applies to connections opened afterwards.
func (b *bench) setTimestamps(tb testing.TB, on bool) {
	tb.Helper()
	v := "0"
	if on {
		v = "1"
	}
	for _, ns := range []*testbed.NetNS{b.dl.Client, b.dl.Server} {
		if err := ns.SetSysctl("net.ipv4.tcp_timestamps", v); err != nil {
			tb.Fatal(err)
		}
	}
}

// measurement is what the check reported for the server over one pattern,
// with the samples behind it, and the reference from the same frames.
type measurement struct {
	// P50, P95 and Count are the check's gauges and sample count for the
	// peer.
	P50, P95 time.Duration
	Count    int
	// Samples are the samples the capture made for the peer.
	Samples []capture.Sample
	// Ref are the reference samples of the traffic to the peer: those the
	// tracker's frames give, answered between Start and the check's run
	// that reported the traffic.
	Ref testbed.RefSamples
	// Agree says, for each of Samples, that the reference timed the ACK
	// that ended it, by the same method, and measured the same RTT; Same
	// are those RTTs of the reference. Differ describes the samples whose
	// RTT is not the reference's for the same ACK.
	Agree  []bool
	Same   []time.Duration
	Differ []string
	// Fallback counts the timestamp samples that timed another segment of
	// the echoed TSval than the reference's.
	Fallback int
	// Start and End bound the traffic.
	Start, End time.Time
	// Unpaired lists the samples that do not time a segment and the
	// segment that answers it, by the tracker's frames (see pairing).
	Unpaired []string
}

// measure runs traffic between two check runs: the first drains what came
// before, the second, after flushWait, reports the traffic's interval.
func (b *bench) measure(tb testing.TB, traffic func(ctx context.Context, p testbed.Path) error) measurement {
	tb.Helper()
	b.run(tb)
	b.takeSamples()
	ctx, cancel := context.WithTimeout(tb.Context(), 60*time.Second)
	defer cancel()
	m := measurement{Start: time.Now()}
	if err := traffic(ctx, b.dl.Path4()); err != nil {
		tb.Fatal(err)
	}
	m.End = time.Now()
	time.Sleep(flushWait)
	batch := b.run(tb)
	reported := time.Now()
	for _, s := range b.takeSamples() {
		if s.Remote.Addr() != b.dl.ServerAddr4 {
			continue
		}
		m.Samples = append(m.Samples, s)
		if why := b.pairing(s); why != "" {
			m.Unpaired = append(m.Unpaired, why)
		}
	}
	ref, err := b.tracker.Reference()
	if err != nil {
		tb.Fatal(err)
	}
	m.Ref = ref.To(b.dl.ServerAddr4).Between(m.Start, reported)
	b.compare(&m)
	dst := "dst:" + b.dl.ServerAddr4.String()
	gauge := func(metric string) float64 {
		ss := batch.Find(metric, dst)
		if len(ss) != 1 {
			tb.Fatalf("%s for %s: %d series, want 1 (health %+v)", metric, dst, len(ss), b.health())
		}
		return ss[0].Points[0][1]
	}
	fromMS := func(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }
	if d := b.tracker.Drops(); d > 0 {
		tb.Errorf("the tracker's socket dropped %d frames: samples cannot all be paired, retransmissions may be missing", d)
	}
	m.P50 = fromMS(gauge(check.MetricRTTP50))
	m.P95 = fromMS(gauge(check.MetricRTTP95))
	m.Count = int(gauge(check.MetricRTTSamples))
	return m
}

// compare pairs each sample of m with the reference's sample of the same
// ACK and method, if there is one, and fills in Agree, Same, Differ and
// Fallback. The RTTs must be equal: both are differences of the same two
// kernel timestamps, if the check timed the segment the reference did;
// a timestamp sample may time another segment of the same TSval instead,
// when the check no longer holds the one at the previous ACK (see
// testbed.Slack). Behind a bridge, a segment the client sends has two
// timestamps, one per device, a few microseconds apart, so there they must
// agree within testbed.BridgeSlack.
func (b *bench) compare(m *measurement) {
	slack := testbed.TapSlack
	if len(b.others) > 0 {
		slack = testbed.BridgeSlack
	}
	ms := make([]testbed.Measured, len(m.Samples))
	for i, s := range m.Samples {
		ms[i] = testbed.Measured{Time: s.Time, RTT: s.RTT, Method: s.Method.String()}
	}
	c := m.Ref.Compare(ms, slack)
	m.Agree, m.Same, m.Differ, m.Fallback = c.Agree, c.Same, c.Differ, c.Fallback
}

// pairing checks a sample against the frames of the bench's trackers, and
// returns what is wrong with it for the first, or "" if one pairs it.
func (b *bench) pairing(s capture.Sample) string {
	why := pairing(b.tracker, s)
	for _, tr := range b.others {
		if why == "" {
			break
		}
		if pairing(tr, s) == "" {
			why = ""
		}
	}
	return why
}

// pairing checks one sample against the tracker's frames: the frames the
// host sent at Time-RTT and received at Time exist, and the second
// answers the first as the sample's method says: its TSecr echoes the
// first's TSval (timestamp), its ACK is the first's end (seqack), or it
// is the SYN-ACK of that SYN (handshake). It returns what is wrong, or "".
func pairing(tr *testbed.RetransTracker, s capture.Sample) string {
	what := fmt.Sprintf("%s sample %v at %s on %v→%v", s.Method, s.RTT, s.Time.Format("15:04:05.000000"), s.Local, s.Remote)
	sent, ok := tr.Sent(s.Local, s.Remote, s.Time.Add(-s.RTT))
	if !ok {
		return what + ": no segment sent at its start"
	}
	got, ok := tr.Received(s.Local, s.Remote, s.Time)
	if !ok {
		return what + ": no segment received at its end"
	}
	var match bool
	switch s.Method {
	case capture.MethodTimestamp:
		match = sent.HasTS && got.HasTS && got.TSecr == sent.TSval
	case capture.MethodSeqAck:
		match = got.HasAck && got.Ack == sent.End
	case capture.MethodHandshake:
		match = sent.SYN && got.SYN && got.HasAck && got.Ack == sent.Seq+1
	}
	if !match {
		return fmt.Sprintf("%s: %+v does not answer %+v", what, got, sent)
	}
	return ""
}
