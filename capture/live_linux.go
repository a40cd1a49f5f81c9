//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-metro/go-metro/capture/ring"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Live captures packets on an interface with AF_PACKET (a TPACKET_V3 ring
// with kernel nanosecond timestamps, no libpcap, no cgo), filters them in
// the kernel with classic BPF, and feeds them to an Engine. It keeps the
// local addresses and the peers' addresses current, and reopens the socket
// with backoff when the interface disappears or capture fails. A panic in
// one of its goroutines is recovered, reported in Health, and the goroutine
// restarts. Its methods are safe for concurrent use.
type Live struct {
	cfg      LiveConfig
	workers  []*worker // one per socket of the fanout group; one without fanout
	resolver *PeerResolver
	lookups  *guardedResolver // the resolver's Resolver
	extra    *LocalSet        // cfg.Local

	peers     atomic.Pointer[Peers]
	filterGen atomic.Uint64 // bumped when the peers change
	stopping  atomic.Bool

	panics atomic.Uint64

	clockBase time.Time // origin of the monotonic clock given to the engine
	// loopback says which outgoing frames the kernel filter drops as
	// copies: none (loopbackNone), all (the socket is on a loopback
	// device), or those of the loopback device with index loIndex (on
	// "any"). Set by device before the workers start; read by them.
	loopback int8
	loIndex  uint32

	refreshAddrs chan struct{} // asks the address goroutine to re-read addresses
	addrChanged  chan struct{} // the address watcher saw a change

	runMu  sync.Mutex // serialises Start and Stop; guards cancel
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu          sync.Mutex // guards the fields below
	state       State
	lastErr     error
	lastErrTime time.Time
	failures    int
	localAddrs  int
	warnings    map[string]string // by source: "addrs", "local", "peers", "resolve"
}

// NewLive validates cfg and returns a Live capture, not yet started.
func NewLive(cfg LiveConfig) (*Live, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	extra, err := ParseLocalSet(cfg.Local...)
	if err != nil {
		return nil, err
	}
	var res Resolver = net.DefaultResolver
	if cfg.Resolver != nil {
		res = cfg.Resolver
	}
	lookups := &guardedResolver{r: res}
	pr, err := NewPeerResolver(cfg.Peers, lookups)
	if err != nil {
		return nil, err
	}
	ecfg := cfg.Engine
	ecfg.Local = extra
	l := &Live{
		cfg:          cfg,
		resolver:     pr,
		lookups:      lookups,
		extra:        extra,
		refreshAddrs: make(chan struct{}, 1),
		addrChanged:  make(chan struct{}, 1),
		warnings:     make(map[string]string),
	}
	for range cfg.Workers {
		l.workers = append(l.workers, &worker{engine: NewEngine(ecfg)})
	}
	l.peers.Store(pr.Static())
	l.each(func(e *Engine) { e.SetNames(pr.Static()) })
	l.clockBase = time.Now()
	return l, nil
}

// Start reads the local addresses, checks that the peers are not all
// local, and starts the capture goroutines. It does not wait for the socket
// to open: failures to open are reported in Health and retried. Start
// returns an error only for a configuration that can never work.
func (l *Live) Start() error {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	if l.cancel != nil {
		return nil
	}
	l.readAddrs()
	if err := l.peers.Load().CheckNotAllLocal(l.local()); err != nil {
		return err
	}
	if l.cfg.Engine.ServiceTags && l.cfg.Engine.EphemeralPorts == [2]uint16{} {
		// The capture goroutines, started below, read it.
		ephem := l.ephemeralPorts()
		l.each(func(e *Engine) { e.ephem = ephem })
	}
	l.stopping.Store(false)
	l.mu.Lock()
	l.state = StateStarting
	l.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	l.goSafe(ctx, "capture", l.captureLoop)
	l.goSafe(ctx, "addresses", l.addrLoop)
	l.goSafe(ctx, "address watcher", l.watchAddrs)
	if l.resolver.HasHosts() {
		l.goSafe(ctx, "resolver", l.resolveLoop)
	}
	return nil
}

// Stop ends every goroutine, releases the socket and waits; it returns
// within about a second.
func (l *Live) Stop() {
	l.runMu.Lock()
	defer l.runMu.Unlock()
	if l.cancel == nil {
		return
	}
	l.stopping.Store(true)
	l.cancel()
	l.cancel = nil
	l.wg.Wait()
	l.mu.Lock()
	l.state = StateStopped
	l.mu.Unlock()
}

// Drain returns the per-peer stats since the previous Drain; see
// Engine.Drain.
// With several workers, the stats of one peer from each are merged.
func (l *Live) Drain(dst []PeerStats) []PeerStats {
	if len(l.workers) == 1 {
		return l.workers[0].engine.Drain(dst)
	}
	aggs := make([]*aggregator, len(l.workers))
	for i, w := range l.workers {
		aggs[i] = w.engine.agg
	}
	return drainMerged(aggs, dst)
}

// Peers returns the current peers, for their tags.
func (l *Live) Peers() *Peers { return l.peers.Load() }

// Health returns the capture's state and counters.
func (l *Live) Health() Health {
	l.mu.Lock()
	h := Health{
		State:         l.state,
		LocalAddrs:    l.localAddrs,
		LastError:     l.lastErr,
		LastErrorTime: l.lastErrTime,
		Failures:      l.failures,
		Panics:        l.panics.Load(), // read with lastErr: see recordPanic
	}
	for _, k := range slices.Sorted(maps.Keys(l.warnings)) {
		h.Warnings = append(h.Warnings, l.warnings[k])
	}
	l.mu.Unlock()
	for _, w := range l.workers {
		h.Stats = h.Stats.add(w.engine.Stats())
		h.KernelPackets += w.packets.Load()
		h.KernelDrops += w.drops.Load()
	}
	h.Unresolved = l.peers.Load().Unresolved()
	return h
}

func (l *Live) warn(source, msg string) {
	l.mu.Lock()
	if msg == "" {
		delete(l.warnings, source)
	} else {
		l.warnings[source] = msg
	}
	l.mu.Unlock()
}

// fail records a capture failure.
func (l *Live) fail(err error) {
	l.mu.Lock()
	l.state = StateRetrying
	l.lastErr = err
	l.lastErrTime = time.Now()
	l.failures++
	l.mu.Unlock()
}

// recordPanic counts a recovered panic and makes err, which reports it,
// the last error, at once: a Health that counts the panic carries its
// error, however long the capture takes to close and reopen.
func (l *Live) recordPanic(err error) {
	l.mu.Lock()
	l.panics.Add(1)
	l.lastErr, l.lastErrTime = err, time.Now()
	l.mu.Unlock()
}

// goSafe runs fn in a goroutine that recovers panics, reports them, and
// runs fn again after a backoff until ctx is done.
func (l *Live) goSafe(ctx context.Context, name string, fn func(context.Context)) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		backoff := 100 * time.Millisecond
		for ctx.Err() == nil {
			start := time.Now()
			if !l.runRecovered(ctx, name, fn) {
				return // fn returned normally: ctx is done
			}
			if time.Since(start) > 2*l.cfg.MaxBackoff {
				// It ran fine for a while before this panic: a fresh
				// backoff, not the one of a panic loop.
				backoff = 100 * time.Millisecond
			}
			if !sleepCtx(ctx, backoff) {
				return
			}
			backoff = min(2*backoff, l.cfg.MaxBackoff)
		}
	}()
}

// runRecovered runs fn and reports whether it panicked.
func (l *Live) runRecovered(ctx context.Context, name string, fn func(context.Context)) (panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			panicked = true
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			err := fmt.Errorf("capture on %s: %s goroutine panicked: %v (recovered; restarting it): %s", l.cfg.Interface, name, r, firstLines(buf, 12))
			// For another goroutine than the capture's, the socket is
			// still open and read: the panic is reported without the
			// state of a failed capture, which only a reopen would clear.
			l.recordPanic(err)
			if name != "capture" {
				return
			}
			l.fail(err)
			// The flow tables may be half-updated: start them afresh.
			l.each(func(e *Engine) { e.resetFlows() })
		}
	}()
	fn(ctx)
	return false
}

func firstLines(b []byte, n int) string {
	for i, c := range b {
		if c == '\n' {
			n--
			if n == 0 {
				return string(b[:i])
			}
		}
	}
	return string(b)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// captureLoop opens the socket and reads from it, reopening with backoff
// after failures, until ctx is done. Only an attempt that was healthy
// (see capture) resets the backoff: a socket that opens but never reads,
// on a down interface or with a filter the kernel refuses, keeps doubling
// it up to MaxBackoff instead of reopening every 100 ms.
func (l *Live) captureLoop(ctx context.Context) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		start := time.Now()
		healthy, err := l.capture(ctx)
		if ctx.Err() != nil {
			return
		}
		if pe := (*panicError)(nil); errors.As(err, &pe) {
			// A panic backs off as in goSafe: packets read before it
			// do not make the attempt healthy, or a packet that
			// panics every time would reopen the socket every 100 ms.
			healthy = time.Since(start) > 2*l.cfg.MaxBackoff
		}
		if healthy {
			backoff = 100 * time.Millisecond
		}
		l.fail(err)
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, l.cfg.MaxBackoff)
	}
}

// pollTimeout bounds how long a read waits, so that the capture goroutine
// notices Stop and runs housekeeping while no packets arrive.
const pollTimeout = 100 * time.Millisecond

// housekeepEvery is how often the capture goroutine
// reads the kernel counters, expires flows and checks for a new filter: a
// Health snapshot's kernel counters are at most this old.
const housekeepEvery = int64(250 * time.Millisecond)

// worker is one socket of a Live capture, and the engine it feeds. With
// fanout, the kernel's flow hash sends both directions of a connection to
// the same socket, so that each engine sees whole connections.
type worker struct {
	engine    *Engine
	counters  ring.Counters // the kernel's, over every socket it opened; its goroutine only
	packets   atomic.Uint64 // counters.Packets, published
	drops     atomic.Uint64 // counters.Drops, published
	badBlocks atomic.Uint64 // ring blocks whose layout was inconsistent
}

// each calls fn with the engine of every worker.
func (l *Live) each(fn func(*Engine)) {
	for _, w := range l.workers {
		fn(w.engine)
	}
}

// local returns the local set, which every worker's engine shares.
func (l *Live) local() *LocalSet { return l.workers[0].engine.Local() }

// capture opens the sockets, one per worker, and reads packets until ctx
// is done or reading fails. It reports whether the attempt was healthy: it
// read a packet, or ran without error for HealthyAfter. Opening alone does
// not count.
func (l *Live) capture(ctx context.Context) (healthy bool, err error) {
	link, fl, err := l.device()
	if err != nil {
		return false, err
	}
	gen := l.filterGen.Load()
	prog, err := l.filterProg(fl)
	if err != nil {
		return false, err
	}
	rings, err := l.openRings(link, prog)
	if err != nil {
		return false, err
	}
	defer func() {
		for i, r := range rings {
			l.readStats(l.workers[i], r)
			r.Close()
		}
	}()
	opened := time.Now()
	l.mu.Lock()
	l.state = StateCapturing
	l.mu.Unlock()
	select {
	case l.refreshAddrs <- struct{}{}: // the interface may be new: re-read its addresses
	default:
	}
	var ok atomic.Bool // the attempt is healthy
	done := make(chan struct{})
	errs := make(chan error, len(rings))
	var wg sync.WaitGroup
	for i, r := range rings {
		w := l.workers[i]
		wg.Go(func() { errs <- l.readRecovered(w, r, link, fl, gen, opened, &ok, done) })
	}
	err = <-errs
	close(done) // the other workers stop too: the attempt is over
	wg.Wait()
	return ok.Load(), err
}

// openRings opens a socket for each worker, in one fanout group when there
// are several, inside the configured network namespace, with the kernel
// filter prog attached before the first frame.
func (l *Live) openRings(link LinkType, prog []bpf.RawInstruction) ([]*ring.Ring, error) {
	rings := make([]*ring.Ring, 0, len(l.workers))
	bs, nb := ringGeometry(l.cfg.RingSize, len(l.workers))
	for i := range l.workers {
		cfg := ring.Config{
			Interface: l.cfg.Interface,
			Dgram:     link == LinkRaw,
			Filter:    prog,
			BlockSize: bs,
			NumBlocks: nb,
		}
		if len(l.workers) > 1 {
			cfg.Fanout = ring.FanoutNew
			if i > 0 {
				cfg.Fanout, cfg.FanoutGroup = ring.FanoutJoin, rings[0].FanoutGroup()
			}
		}
		err := inNetns(l.cfg.Netns, func() error {
			r, err := ring.Open(cfg)
			if err == nil {
				rings = append(rings, r)
			}
			return err
		})
		if err != nil {
			for _, r := range rings {
				r.Close()
			}
			if errors.Is(err, ring.ErrFilter) {
				return nil, l.filterError(err, len(prog))
			}
			return nil, l.openError(err)
		}
	}
	return rings, nil
}

// panicError is the error of a capture attempt that a worker's panic
// ended.
type panicError struct{ msg string }

func (e *panicError) Error() string { return e.msg }

// readRecovered runs read, and turns a panic into the error of the
// attempt, reported like the panics of the capture goroutine, after
// resetting the worker's flows.
func (l *Live) readRecovered(w *worker, r *ring.Ring, link LinkType, fl FilterLink, gen uint64, opened time.Time, ok *atomic.Bool, done <-chan struct{}) (err error) {
	defer func() {
		if p := recover(); p != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			err = &panicError{fmt.Sprintf("capture on %s: capture goroutine panicked: %v (recovered; restarting it): %s", l.cfg.Interface, p, firstLines(buf, 12))}
			l.recordPanic(err) // captureLoop records the failure once the attempt has closed
			w.engine.resetFlows()
		}
	}()
	return l.read(w, r, link, fl, gen, opened, ok, done)
}

// read reads one socket's blocks of frames into its worker's engine until
// reading fails, Stop, or done. Each block gives the engine the time
// (Advance); every housekeepEvery it reads the kernel counters and
// installs a new filter when the peers changed.
func (l *Live) read(w *worker, r *ring.Ring, link LinkType, fl FilterLink, gen uint64, opened time.Time, ok *atomic.Bool, done <-chan struct{}) error {
	e := w.engine
	next := opened.Add(time.Duration(housekeepEvery))
	var f ring.Frame
	for {
		blk, err := r.NextBlock(pollTimeout)
		now := time.Now()
		switch {
		case err == nil:
			if !ok.Load() {
				ok.Store(true)
				l.markHealthy()
			}
			e.Advance(now.UnixNano(), int64(now.Sub(l.clockBase)))
			processBlock(e, link, blk, &f)
			if blk.Err() != nil {
				w.badBlocks.Add(1)
			}
			blk.Release()
		case err == ring.ErrTimeout:
			e.Advance(now.UnixNano(), int64(now.Sub(l.clockBase)))
		default:
			return fmt.Errorf("capture on %s: read: %w; reopening", l.cfg.Interface, err)
		}
		if l.stopping.Load() {
			return ErrCaptureStopped
		}
		select {
		case <-done:
			return ErrCaptureStopped
		default:
		}
		if now.Before(next) {
			continue
		}
		next = now.Add(time.Duration(housekeepEvery))
		if !ok.Load() && now.Sub(opened) >= l.cfg.HealthyAfter {
			ok.Store(true)
			l.markHealthy()
		}
		l.readStats(w, r)
		if g := l.filterGen.Load(); g != gen {
			gen = g
			prog, err := l.filterProg(fl)
			if err == nil {
				err = l.filterError(r.SetFilter(prog), len(prog))
			}
			if err != nil {
				return err
			}
		}
	}
}

// processBlock runs the frames of a ring block through e, each with its
// device: on "any", the interface index and packet type tell copies of a
// segment on the devices it crosses apart. The block's frames go through
// in batches of the engine (BeginBatch) of at most batchFrames, ended even
// if a frame panics. It does not allocate.
func processBlock(e *Engine, link LinkType, blk *ring.Block, f *ring.Frame) {
	e.BeginBatch()
	defer e.EndBatch()
	n := 0
	for blk.Next(f) {
		e.ProcessDev(link, f.Data, f.Len, f.Time, MakeDevice(uint32(f.Ifindex), uint8(f.PktType)))
		if n++; n == batchFrames {
			// A Drain waits for at most this many frames' work.
			e.EndBatch()
			e.BeginBatch()
			n = 0
		}
	}
}

// batchFrames is the most frames of one engine batch (a few tens of µs of
// work), so that a block of thousands of small frames does not keep Drain
// waiting for the whole block.
const batchFrames = 512

// markHealthy records that the open sockets work: failures since the
// last healthy attempt start again from 0.
func (l *Live) markHealthy() {
	l.mu.Lock()
	l.failures = 0
	l.mu.Unlock()
}

// readStats adds the kernel's counters of a worker's socket (deltas since
// the last read, summed in 64 bits: they never wrap, nor go backwards
// when the socket is reopened) and publishes them.
func (l *Live) readStats(w *worker, r *ring.Ring) {
	if r.ReadStats(&w.counters) != nil {
		return
	}
	w.packets.Store(w.counters.Packets)
	w.drops.Store(w.counters.Drops)
}

// Block sizes of the TPACKET_V3 ring: the kernel hands the ring over block
// by block, after a block fills or its 64 ms timeout, and the reader polls
// only when it has caught up with the kernel. Large blocks mean fewer
// wakeups under load: at 500,000 packets/s, 1 MiB blocks took about 15 %
// less CPU than 256 KiB blocks (BenchmarkLiveCapture).
const (
	maxBlockSize = 1 << 20
	minBlockSize = 256 << 10 // holds a frame of the largest snaplen
)

// ringGeometry returns the block size and the number of blocks of each
// worker's ring, for a ring_size shared by workers sockets: the largest
// block size, from maxBlockSize down to minBlockSize, that gives each
// ring at least 8 blocks, and at least 4 blocks however small the ring.
func ringGeometry(ringSize, workers int) (blockSize, blocks int) {
	per := ringSize / max(workers, 1)
	blockSize = maxBlockSize
	for blockSize > minBlockSize && per/blockSize < 8 {
		blockSize >>= 1
	}
	return blockSize, max(per/blockSize, 4)
}

// device looks at the interface (inside the configured network
// namespace) and returns the link type of the frames its sockets deliver
// and the framing of the kernel filter; it sets the loopback settings of
// the filter.
func (l *Live) device() (link LinkType, fl FilterLink, err error) {
	name := l.cfg.Interface
	err = inNetns(l.cfg.Netns, func() error {
		// Frames keep their Ethernet header (so in-band VLAN tags are
		// decoded) on Ethernet and loopback devices; elsewhere, and on
		// "any", the socket strips the link layer.
		link, fl = LinkRaw, FilterNetwork
		l.loopback = loopbackNone
		if name != "any" {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return fmt.Errorf("find interface %q: %w", name, ErrNoInterface)
			}
			if len(ifi.HardwareAddr) == 6 || ifi.Flags&net.FlagLoopback != 0 {
				link, fl = LinkEthernet, FilterEthernet
			}
			if ifi.Flags&net.FlagLoopback != 0 {
				l.loopback = loopbackAll
			}
		} else if ifs, err := net.Interfaces(); err == nil {
			for _, ifi := range ifs {
				if ifi.Flags&net.FlagLoopback != 0 {
					l.loopback, l.loIndex = loopbackIndex, uint32(ifi.Index)
					break
				}
			}
		}
		return nil
	})
	if err != nil {
		return 0, 0, l.openError(err)
	}
	return link, fl, nil
}

// openError names the cause of a failure to open and what to do about it.
func (l *Live) openError(err error) error {
	name := l.cfg.Interface
	var ne *netnsError
	switch {
	case errors.As(err, &ne):
		return l.netnsOpenError(ne)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return fmt.Errorf("capture on %s: %w: grant CAP_NET_RAW (setcap cap_net_raw+ep %s) or run as root", name, ErrPermission, executable())
	case errors.Is(err, ErrNoInterface), errors.Is(err, ring.ErrNoInterface):
		return fmt.Errorf("capture on %s: %w: retrying until it appears; check `interface` if it never does", name, err)
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("capture on %s: cannot allocate the %d-byte packet ring: %w: lower ring_size", name, l.cfg.RingSize, err)
	case errors.Is(err, unix.ENETDOWN), errors.Is(err, unix.ENODEV), errors.Is(err, unix.ENXIO), errors.Is(err, ring.ErrInterfaceDown):
		return fmt.Errorf("capture on %s: %w: the interface is down or gone; retrying", name, err)
	}
	return fmt.Errorf("capture on %s: open packet socket: %w", name, err)
}

// The loopback settings of a Live.
const (
	loopbackNone  = iota // no loopback device in the capture
	loopbackAll          // the socket is bound to a loopback device
	loopbackIndex        // the socket reads all devices, loIndex among them
)

// rejectAll is the filter for a peer list that has no address yet.
var rejectAll = []bpf.Instruction{bpf.RetConstant{Val: 0}}

// filterProg builds the kernel filter for the current peers, and tells
// the engines whether they must filter the peers themselves (a peer list
// too large for the kernel).
func (l *Live) filterProg(fl FilterLink) ([]bpf.RawInstruction, error) {
	p := l.peers.Load()
	build := func(peers []netip.Prefix) ([]bpf.RawInstruction, error) {
		prog, err := BuildFilter(fl, peers, uint32(l.cfg.Snaplen))
		if err == nil && l.loopback != loopbackNone {
			lo := uint32(LoopbackAll)
			if l.loopback == loopbackIndex {
				lo = l.loIndex
			}
			prog, err = DropLoopbackOutgoing(prog, lo)
		}
		return prog, err
	}
	var prog []bpf.RawInstruction
	var err error
	if p.Restricts() && len(p.Prefixes()) == 0 {
		prog, err = bpf.Assemble(rejectAll)
	} else {
		prog, err = build(p.Prefixes())
	}
	if errors.Is(err, ErrFilterTooLarge) {
		// Filter TCP in the kernel and the peers in userspace.
		l.warn("filter", fmt.Sprintf("capture on %s: %v; the kernel now passes all TCP and go-metro filters the peers itself, at a higher CPU cost", l.cfg.Interface, err))
		l.each(func(e *Engine) { e.SetPeerFilter(p) })
		prog, err = build(nil)
	} else {
		l.warn("filter", "")
		l.each(func(e *Engine) { e.SetPeerFilter(nil) })
	}
	if err != nil {
		return nil, fmt.Errorf("capture on %s: build kernel filter: %w", l.cfg.Interface, err)
	}
	return prog, nil
}

// filterError names the cause of a failure to attach a kernel filter of n
// instructions, and what to do about it; nil for nil.
func (l *Live) filterError(err error, n int) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOMEM):
		return fmt.Errorf("capture on %s: attach kernel filter of %d instructions: %w: raise the sysctl net.core.optmem_max (to at least %d bytes) or list fewer peers", l.cfg.Interface, n, err, 8*n+1024)
	}
	return fmt.Errorf("capture on %s: attach kernel filter: %w", l.cfg.Interface, err)
}

// ephemeralPorts reads the ephemeral port range of the capture's network
// namespace, which tells the direction of connections whose handshake was
// not seen; Linux's default when it cannot be read.
func (l *Live) ephemeralPorts() [2]uint16 {
	r := DefaultEphemeralPorts
	_ = inNetns(l.cfg.Netns, func() error {
		b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
		if err != nil {
			return err
		}
		var lo, hi uint16
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && lo > 0 && lo <= hi {
			r = [2]uint16{lo, hi}
		}
		return nil
	})
	return r
}

// addrLoop keeps the local addresses current: on change notifications, on
// a timer, and when the capture (re)opens.
func (l *Live) addrLoop(ctx context.Context) {
	tick := time.NewTicker(l.cfg.AddrRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-l.addrChanged:
		case <-l.refreshAddrs:
		}
		l.readAddrs()
	}
}

// watchAddrs turns rtnetlink notifications into address refreshes until
// ctx is done. A failure to watch leaves the periodic refresh.
func (l *Live) watchAddrs(ctx context.Context) {
	// The watch socket must be created in the capture's namespace.
	err := inNetns(l.cfg.Netns, func() error {
		return WatchAddrs(ctx, func() {
			select {
			case l.addrChanged <- struct{}{}:
			default:
			}
		})
	})
	if err != nil && ctx.Err() == nil {
		l.warn("watch", fmt.Sprintf("watch address changes of %s: %v: addresses are re-read every %v instead", l.cfg.Interface, err, l.cfg.AddrRefresh))
	}
}

// readAddrs re-reads the interface's addresses and installs them, with the
// configured extra ones, as the local set.
func (l *Live) readAddrs() {
	var addrs []netip.Addr
	err := inNetns(l.cfg.Netns, func() error {
		var err error
		addrs, err = InterfaceAddrs(l.cfg.Interface)
		return err
	})
	if err != nil {
		l.warn("addrs", fmt.Sprintf("read addresses of %s: %v", l.cfg.Interface, err))
		return
	}
	l.warn("addrs", "")
	set := NewLocalSet(append(addrs, l.extra.Addrs()...), l.extra.Prefixes())
	l.each(func(e *Engine) { e.SetLocal(set) })
	l.mu.Lock()
	l.localAddrs = set.Len()
	l.mu.Unlock()
	if set.Len() == 0 {
		l.warn("local", fmt.Sprintf("no local address on %s: no segment can be timed until one is configured (add local_ips, or check the interface)", l.cfg.Interface))
	} else {
		l.warn("local", "")
	}
	l.checkPeers()
}

// checkPeers warns when every peer turned out to be local.
func (l *Live) checkPeers() {
	if err := l.peers.Load().CheckNotAllLocal(l.local()); err != nil {
		l.warn("peers", err.Error())
	} else {
		l.warn("peers", "")
	}
}

// resolveLoop re-resolves the host names now and then, and installs a new
// kernel filter when their addresses change.
func (l *Live) resolveLoop(ctx context.Context) {
	tick := time.NewTicker(l.cfg.ResolveEvery)
	defer tick.Stop()
	for {
		peers, warnings := l.resolver.Resolve(ctx)
		if p := l.lookups.takePanic(); p != "" {
			panic(p) // here, where goSafe recovers it
		}
		if ctx.Err() != nil {
			return
		}
		msg := ""
		if len(warnings) > 0 {
			msg = errors.Join(warnings...).Error()
		}
		l.warn("resolve", msg)
		if !slices.Equal(peers.Prefixes(), l.peers.Load().Prefixes()) {
			l.peers.Store(peers)
			l.filterGen.Add(1)
		} else {
			l.peers.Store(peers) // same addresses; tags or unresolved may differ
		}
		l.each(func(e *Engine) { e.SetNames(peers) })
		l.checkPeers()
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// guardedResolver recovers a panic of a lookup. PeerResolver.Resolve runs
// lookups on goroutines of its own, out of reach of goSafe, where a panic
// would end the process: there the lookup fails instead, and resolveLoop
// raises the panic again on its own goroutine, which goSafe recovers,
// reports and restarts. Safe for concurrent use.
type guardedResolver struct {
	r Resolver

	mu       sync.Mutex
	panicked string // the first recovered panic since takePanic, with its stack
}

func (g *guardedResolver) LookupNetIP(ctx context.Context, network, host string) (addrs []netip.Addr, err error) {
	defer func() {
		if r := recover(); r != nil {
			buf := make([]byte, 4096)
			buf = buf[:runtime.Stack(buf, false)]
			g.mu.Lock()
			if g.panicked == "" {
				g.panicked = fmt.Sprintf("lookup of %q: %v: %s", host, r, firstLines(buf, 12))
			}
			g.mu.Unlock()
			addrs, err = nil, fmt.Errorf("lookup %s: the resolver panicked: %v", host, r)
		}
	}()
	return g.r.LookupNetIP(ctx, network, host)
}

// takePanic returns the recovered panic and forgets it, or returns "".
func (g *guardedResolver) takePanic() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.panicked
	g.panicked = ""
	return p
}

// inNetns runs fn on a locked OS thread inside the network namespace at
// path, or on the current thread when path is empty. Sockets fn creates
// stay in that namespace. A failure to enter it is a *netnsError.
func inNetns(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return &netnsError{path: "/proc/thread-self/ns/net", op: "open", err: err}
	}
	defer unix.Close(orig)
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return &netnsError{path: path, op: "open", err: err}
	}
	defer unix.Close(target)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		if errors.Is(err, unix.EINVAL) {
			err = fmt.Errorf("%w (%w)", ErrNotNetns, err)
		}
		return &netnsError{path: path, op: "enter", err: err}
	}
	defer func() {
		// Unlock only if the thread is back in its own namespace;
		// otherwise the runtime discards the thread.
		if unix.Setns(orig, unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// netnsError is a failure to open or enter the network namespace at path.
// It matches ErrPermission when the cause is a missing privilege.
type netnsError struct {
	path string
	op   string // "open" or "enter"
	err  error
}

func (e *netnsError) Error() string {
	return fmt.Sprintf("%s network namespace %s: %v", e.op, e.path, e.err)
}

func (e *netnsError) Unwrap() error { return e.err }

// Is makes errors.Is(err, ErrPermission) true for a missing privilege.
func (e *netnsError) Is(target error) bool {
	return target == ErrPermission && e.denied()
}

func (e *netnsError) denied() bool {
	return errors.Is(e.err, unix.EPERM) || errors.Is(e.err, unix.EACCES)
}

// netnsOpenError names the cause of a failure to enter the capture's
// network namespace and what to do about it.
func (l *Live) netnsOpenError(e *netnsError) error {
	name := l.cfg.Interface
	switch {
	case e.denied():
		return fmt.Errorf("capture on %s: %w: entering the network namespace %s needs CAP_SYS_ADMIN (setcap cap_net_raw,cap_sys_admin+ep %s) and read access to that file (a /proc/PID/ns/net of another user's process also needs CAP_SYS_PTRACE), or run as root",
			name, e, e.path, executable())
	case errors.Is(e.err, unix.ENOENT):
		return fmt.Errorf("capture on %s: %w: retrying until it exists; check `netns` if it never does", name, e)
	case errors.Is(e.err, ErrNotNetns):
		return fmt.Errorf("capture on %s: %w: check `netns`, which must be a network namespace such as /run/netns/NAME or /proc/PID/ns/net", name, e)
	}
	return fmt.Errorf("capture on %s: %w", name, e)
}

func executable() string {
	exe, _ := os.Executable()
	if exe == "" {
		return "BINARY"
	}
	return exe
}

// validateNetns returns an error when path exists and is not a network
// namespace: a regular file, a directory, a device, another kind of
// namespace. A path that does not exist yet, or that this process may not
// read, is left to the capture, which retries and says why.
func validateNetns(path string) error {
	var fs unix.Statfs_t
	if err := unix.Statfs(path, &fs); err != nil {
		return nil
	}
	if fs.Type != unix.NSFS_MAGIC {
		return fmt.Errorf("invalid `netns` %q: %w: it is not a namespace file; use /run/netns/NAME or /proc/PID/ns/net", path, ErrNotNetns)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil
	}
	defer unix.Close(fd)
	typ, err := unix.IoctlRetInt(fd, unix.NS_GET_NSTYPE)
	if err == nil && typ != unix.CLONE_NEWNET {
		return fmt.Errorf("invalid `netns` %q: %w: it is a namespace of another kind; use /run/netns/NAME or /proc/PID/ns/net", path, ErrNotNetns)
	}
	return nil
}
