package testbed

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Distribution is the shape of the jitter of an [Impairment].
type Distribution int

const (
	// Uniform jitter is drawn uniformly from [-Jitter, +Jitter].
	Uniform Distribution = iota
	// Normal jitter is drawn from a normal distribution of standard deviation
	// Jitter, cut at three standard deviations.
	Normal
)

// String returns "uniform" or "normal".
func (d Distribution) String() string {
	switch d {
	case Uniform:
		return "uniform"
	case Normal:
		return "normal"
	}
	return fmt.Sprintf("Distribution(%d)", int(d))
}

// Impairment is what a [DelayLine] does to the frames of one direction. The
// zero value forwards every frame at once.
type Impairment struct {
	// Delay is the one-way delay added to every frame.
	Delay time.Duration
	// Jitter varies the delay of each frame around Delay, with the shape
	// Distribution. The delay of a frame is never below zero.
	Jitter       time.Duration
	Distribution Distribution
	// Reorder lets a frame with a small jittered delay overtake an earlier
	// frame with a larger one. Without it, a frame waits for the frame before
	// it, so that jitter only ever delays frames further.
	Reorder bool
	// Loss is the probability, between 0 and 1, that a frame is dropped.
	Loss float64
	// DropSYNToPort, unless zero, drops every connection request to that
	// TCP port: an IPv4 or IPv6 segment with SYN set and ACK clear, the
	// first fragment included. A connect to the port then times out after
	// the client's SYN retransmissions, while the other segments to the
	// port, and the SYNs to every other port, pass. Dropped SYNs are counted
	// in DirectionStats.SYNDropped; they draw nothing from the random
	// generator, so the fate of the other frames is as without it.
	DropSYNToPort uint16
}

// minDelay returns a lower bound of the delay of any frame.
func (im Impairment) minDelay() time.Duration {
	spread := im.Jitter
	if im.Distribution == Normal {
		spread *= 3
	}
	return max(im.Delay-spread, 0)
}

func (im Impairment) validate(name string) error {
	switch {
	case im.Delay < 0:
		return fmt.Errorf("invalid `%s.Delay` %v: must not be negative", name, im.Delay)
	case im.Jitter < 0:
		return fmt.Errorf("invalid `%s.Jitter` %v: must not be negative", name, im.Jitter)
	case im.Distribution != Uniform && im.Distribution != Normal:
		return fmt.Errorf("invalid `%s.Distribution` %v: must be Uniform or Normal", name, im.Distribution)
	case !(im.Loss >= 0 && im.Loss <= 1): // also rejects NaN
		return fmt.Errorf("invalid `%s.Loss` %v: must be between 0 and 1", name, im.Loss)
	}
	return nil
}

// DelayLineConfig configures a [DelayLine].
type DelayLineConfig struct {
	// ClientToServer and ServerToClient impair each direction.
	ClientToServer, ServerToClient Impairment
	// Seed seeds the random loss and jitter, so that a run can be repeated.
	// Each direction draws from its own generator.
	Seed uint64
	// QueueLen is the capacity of the queue from the reader to the writer of
	// each direction; a frame that finds it full is dropped and counted as
	// overflow. The writer holds up to as many again while it times them.
	// Zero means DefaultQueueLen.
	QueueLen int
	// VLANPriorityTag makes the forwarder insert an 802.1Q header into every
	// frame it delivers, in both directions: VLAN ID 0 with priority
	// [PriorityTagPCP], an 802.1p priority tag. The receiving stack strips it
	// into the packet's metadata and takes the frame as untagged, so that it
	// needs no VLAN device; packet sockets see the tag (TP_STATUS_VLAN_VALID).
	VLANPriorityTag bool
	// Bottleneck, if it has a Rate, queues the client-to-server frames in
	// the server namespace, after the forwarder has delayed them (see
	// [NetNS.AddIngressBottleneck]): a capture on the client side then sees
	// the round-trip time grow as the client's window overfills the queue.
	Bottleneck Bottleneck
}

// DefaultQueueLen is the QueueLen of a DelayLineConfig that leaves it zero.
const DefaultQueueLen = 4096

// DelayLine is a [Pair] of namespaces whose interfaces, TAP devices named
// tap0, are joined by a forwarder in this process that impairs each
// direction as configured. Its methods are safe for concurrent use.
type DelayLine struct {
	Pair

	cfg      DelayLineConfig
	c2s, s2c *direction
	dev      *tapPair
	wg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// OpenDelayLine builds a delay line and starts its forwarder. The caller must
// call Close; tests use [NewDelayLine] instead.
func OpenDelayLine(cfg DelayLineConfig) (*DelayLine, error) {
	if err := cfg.ClientToServer.validate("ClientToServer"); err != nil {
		return nil, err
	}
	if err := cfg.ServerToClient.validate("ServerToClient"); err != nil {
		return nil, err
	}
	if cfg.Bottleneck != (Bottleneck{}) {
		if err := cfg.Bottleneck.validate("Bottleneck"); err != nil {
			return nil, err
		}
		cfg.Bottleneck = cfg.Bottleneck.withDefaults()
	}
	if cfg.QueueLen < 0 {
		return nil, fmt.Errorf("invalid `QueueLen` %d: must not be negative", cfg.QueueLen)
	}
	if cfg.QueueLen == 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	p, err := newPair("tap0", "tap0")
	if err != nil {
		return nil, err
	}
	dev, err := openTAPPair(p.Client, p.ClientIf, p.Server, p.ServerIf)
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	if err := p.configure(); err != nil {
		return nil, errors.Join(err, dev.close(), p.Close())
	}
	if cfg.Bottleneck.IsValid() {
		if err := p.Server.AddIngressBottleneck(p.ServerIf, cfg.Bottleneck); err != nil {
			return nil, errors.Join(err, dev.close(), p.Close())
		}
	}
	d := &DelayLine{
		Pair: *p,
		cfg:  cfg,
		dev:  dev,
		c2s:  newDirection(cfg.ClientToServer, cfg.Seed, 1, cfg.QueueLen),
		s2c:  newDirection(cfg.ServerToClient, cfg.Seed, 2, cfg.QueueLen),
	}
	d.c2s.priorityTag, d.s2c.priorityTag = cfg.VLANPriorityTag, cfg.VLANPriorityTag
	d.start(d.c2s, dev.client, dev.server)
	d.start(d.s2c, dev.server, dev.client)
	return d, nil
}

// NewDelayLine builds a delay line for the test, as [OpenDelayLine] does, and
// closes it when the test ends. It skips the test without privileges (see
// [RequireRoot]).
func NewDelayLine(tb testing.TB, cfg DelayLineConfig) *DelayLine {
	tb.Helper()
	RequireRoot(tb)
	d, err := OpenDelayLine(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := d.Close(); err != nil {
			tb.Error(err)
		}
	})
	return d
}

// Config returns the configuration of the delay line, with defaults filled in.
func (d *DelayLine) Config() DelayLineConfig { return d.cfg }

// Close stops the forwarder, waits for its goroutines to exit, and deletes
// both namespaces. Close is idempotent.
func (d *DelayLine) Close() error {
	d.closeOnce.Do(func() {
		d.dev.wake()
		d.wg.Wait()
		d.closeErr = errors.Join(d.dev.close(), d.Pair.Close())
	})
	return d.closeErr
}

// Stats returns the counters of both directions.
func (d *DelayLine) Stats() (clientToServer, serverToClient DirectionStats) {
	return d.c2s.stats(), d.s2c.stats()
}

// BottleneckStats returns the counters of the queue of
// DelayLineConfig.Bottleneck.
func (d *DelayLine) BottleneckStats() (BottleneckStats, error) {
	if !d.cfg.Bottleneck.IsValid() {
		return BottleneckStats{}, errors.New("delay line has no bottleneck: set DelayLineConfig.Bottleneck")
	}
	return d.Server.IngressBottleneckStats(d.ServerIf)
}

func (d *DelayLine) start(dir *direction, in, out *tapDev) {
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		dir.readLoop(in)
	}()
	go func() {
		defer d.wg.Done()
		dir.writeLoop(out, d.dev.stopped)
	}()
}

// DirectionStats counts what happened to the frames of one direction.
type DirectionStats struct {
	// Received counts the frames read from the sending TAP device.
	Received uint64
	// Lost counts the frames dropped on purpose, for Impairment.Loss.
	Lost uint64
	// SYNDropped counts the SYNs dropped for Impairment.DropSYNToPort.
	SYNDropped uint64
	// Overflow counts the frames dropped because the queue was full.
	Overflow uint64
	// Forwarded counts the frames written to the receiving TAP device.
	Forwarded uint64
	// WriteErrors counts the frames that could not be written.
	WriteErrors uint64
	// MedianLateness is the median, over the last 1024 forwarded frames, of
	// how long after its due time each frame was written.
	MedianLateness time.Duration
}

// frame is an Ethernet frame held by the forwarder until its release time.
type frame struct {
	data    []byte
	release monoTime
}

const latenessSamples = 1024

// direction forwards the frames of one direction. The reader goroutine owns
// rng and last; the writer goroutine owns pending.
type direction struct {
	im    Impairment
	queue chan frame
	limit int
	rng   *rand.Rand
	last  monoTime // release time of the previous frame
	// priorityTag inserts an 802.1Q priority tag into every frame.
	priorityTag bool

	received, lost, synDropped, overflow, forwarded, writeErrors atomic.Uint64

	mu       sync.Mutex
	lateness []time.Duration // ring of the last latenessSamples values
	lateNext int
}

func newDirection(im Impairment, seed, stream uint64, queueLen int) *direction {
	return &direction{
		im:       im,
		queue:    make(chan frame, queueLen),
		limit:    queueLen,
		rng:      rand.New(rand.NewPCG(seed, stream)),
		lateness: make([]time.Duration, 0, latenessSamples),
	}
}

// admit decides the fate of a frame received at rx: whether it is lost, and
// otherwise when to release it.
func (d *direction) admit(rx monoTime) (release monoTime, lost bool) {
	if d.im.Loss > 0 && d.rng.Float64() < d.im.Loss {
		return 0, true
	}
	delay := d.im.Delay
	if d.im.Jitter > 0 {
		var x float64
		switch d.im.Distribution {
		case Normal:
			x = min(max(d.rng.NormFloat64(), -3), 3)
		default:
			x = 2*d.rng.Float64() - 1
		}
		delay = max(delay+time.Duration(x*float64(d.im.Jitter)), 0)
	}
	release = rx + monoTime(delay)
	if !d.im.Reorder && release < d.last {
		release = d.last
	}
	d.last = release
	return release, false
}

// readLoop reads frames from in until it is woken for closing.
func (d *direction) readLoop(in *tapDev) {
	buf := make([]byte, 1<<16)
	for {
		n, err := in.read(buf)
		if err != nil {
			return
		}
		rx := monoNow()
		d.received.Add(1)
		if d.dropSYN(buf[:n]) {
			continue
		}
		release, lost := d.admit(rx)
		if lost {
			d.lost.Add(1)
			continue
		}
		select {
		case d.queue <- frame{data: d.copyFrame(buf[:n]), release: release}:
		default:
			d.overflow.Add(1)
		}
	}
}

// writeLoop writes each queued frame to out at its release time, until
// stopped is closed. It runs on a locked OS thread with the least timer slack
// and sleeps with clock_nanosleep, which wakes within tens of microseconds
// where Go timers can be milliseconds late.
func (d *direction) writeLoop(out *tapDev, stopped <-chan struct{}) {
	// The thread is never unlocked: its timer slack was changed, so the
	// runtime must discard it when the goroutine exits.
	runtime.LockOSThread()
	setPreciseTimers()
	minDelay := d.im.minDelay()
	var pending []frame // sorted by release time
	for {
		select {
		case <-stopped:
			return
		default:
		}
		if len(pending) == 0 {
			select {
			case f := <-d.queue:
				pending = append(pending, f)
			case <-stopped:
				return
			}
		}
	drain:
		for len(pending) < d.limit {
			select {
			case f := <-d.queue:
				pending = insertByRelease(pending, f)
			default:
				break drain
			}
		}
		head := pending[0]
		now := monoNow()
		if now < head.release {
			wake := head.release
			if d.im.Reorder {
				// A frame that arrives while we sleep is due no sooner
				// than minDelay from now; wake up in time for it.
				wake = min(wake, now+monoTime(max(minDelay, 50*time.Microsecond)))
			}
			sleepUntil(wake)
			continue
		}
		if err := out.write(head.data); err != nil {
			d.writeErrors.Add(1)
		} else {
			d.forwarded.Add(1)
			d.recordLateness(time.Duration(now - head.release))
		}
		pending[0] = frame{}
		pending = pending[1:]
	}
}

// insertByRelease inserts f into pending, which is sorted by release time,
// after any frame due at the same time.
func insertByRelease(pending []frame, f frame) []frame {
	i := len(pending)
	for i > 0 && pending[i-1].release > f.release {
		i--
	}
	return slices.Insert(pending, i, f)
}

func (d *direction) recordLateness(late time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.lateness) < latenessSamples {
		d.lateness = append(d.lateness, late)
		return
	}
	d.lateness[d.lateNext] = late
	d.lateNext = (d.lateNext + 1) % latenessSamples
}

func (d *direction) stats() DirectionStats {
	d.mu.Lock()
	late := slices.Clone(d.lateness)
	d.mu.Unlock()
	return DirectionStats{
		Received:       d.received.Load(),
		Lost:           d.lost.Load(),
		SYNDropped:     d.synDropped.Load(),
		Overflow:       d.overflow.Load(),
		Forwarded:      d.forwarded.Load(),
		WriteErrors:    d.writeErrors.Load(),
		MedianLateness: median(late),
	}
}

// median returns the median of ds, or 0 if ds is empty. It sorts ds.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

// monoTime is a reading of CLOCK_MONOTONIC in nanoseconds.
type monoTime int64
