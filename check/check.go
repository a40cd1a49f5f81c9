package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"

	"github.com/go-metro/go-metro/capture"
)

// Name is the check's name in the Agent and in conf.d.
const Name = "go_metro"

// errCancelled is what Run reports after Cancel.
var errCancelled = errors.New("the check was cancelled: its capture is stopped")

// Metric names. The RTT gauges are in milliseconds.
const (
	MetricRTT        = "system.net.tcp.rtt"        // last sample of the interval
	MetricRTTAvg     = "system.net.tcp.rtt.avg"    // smoothed RTT (RFC 6298 SRTT)
	MetricRTTJitter  = "system.net.tcp.rtt.jitter" // RTT variation (RFC 6298 RTTVAR)
	MetricRTTMin     = "system.net.tcp.rtt.min"
	MetricRTTMax     = "system.net.tcp.rtt.max"
	MetricRTTP50     = "system.net.tcp.rtt.p50"
	MetricRTTP95     = "system.net.tcp.rtt.p95"
	MetricRTTP99     = "system.net.tcp.rtt.p99"
	MetricRTTSamples = "system.net.tcp.rtt.samples" // count of samples in the interval
	// MetricRTTDistribution is the interval's RTT distribution, in ms,
	// submitted as histogram buckets that the Agent merges into a
	// distribution (a DDSketch), for percentiles over any tags.
	MetricRTTDistribution = "system.net.tcp.rtt.distribution"

	// Loss and failure counts per peer (tcp_health).
	MetricRetransmits        = "go_metro.tcp.retransmits"
	MetricConnectionsOpened  = "go_metro.tcp.connections.opened"
	MetricConnectionsRefused = "go_metro.tcp.connections.refused"
	MetricConnectionTimeouts = "go_metro.tcp.connections.timeouts"
	MetricResets             = "go_metro.tcp.resets" // tagged sender:local or sender:remote
	MetricZeroWindows        = "go_metro.tcp.zero_windows"

	MetricPacketsReceived  = "go_metro.packets.received" // count: packets the kernel passed to the capture
	MetricPacketsDropped   = "go_metro.packets.dropped"  // count: packets the kernel dropped (ring full)
	MetricDecodeErrors     = "go_metro.packets.decode_errors"
	MetricFlowsActive      = "go_metro.flows.active" // gauge
	MetricFlowsEvicted     = "go_metro.flows.evicted"
	MetricSamplesDiscarded = "go_metro.samples.discarded"

	// ServiceCheckName is the capture-health service check.
	ServiceCheckName = "go_metro.can_capture"
)

// Metric types, as the Agent names them.
const (
	TypeGauge        = "gauge"
	TypeCount        = "count"
	TypeDistribution = "distribution"
)

// Metrics lists every capture metric the check can emit with its type, for
// the integration assets and their tests. The runtime.go.* metrics, sent
// when init_config has runtime_metrics: true, are listed by RuntimeMetrics.
func Metrics() map[string]string {
	return map[string]string{
		MetricRTT: TypeGauge, MetricRTTAvg: TypeGauge, MetricRTTJitter: TypeGauge,
		MetricRTTMin: TypeGauge, MetricRTTMax: TypeGauge,
		MetricRTTP50: TypeGauge, MetricRTTP95: TypeGauge, MetricRTTP99: TypeGauge,
		MetricRTTSamples:      TypeCount,
		MetricRTTDistribution: TypeDistribution,
		MetricRetransmits:     TypeCount, MetricConnectionsOpened: TypeCount, MetricConnectionsRefused: TypeCount,
		MetricConnectionTimeouts: TypeCount, MetricResets: TypeCount, MetricZeroWindows: TypeCount,
		MetricPacketsReceived: TypeCount, MetricPacketsDropped: TypeCount, MetricDecodeErrors: TypeCount,
		MetricFlowsActive: TypeGauge, MetricFlowsEvicted: TypeCount, MetricSamplesDiscarded: TypeCount,
	}
}

// Sender is the part of the Agent's sender.Sender the check uses, with
// identical signatures, so that the Agent's sender satisfies it as it is.
type Sender interface {
	Gauge(metric string, value float64, hostname string, tags []string)
	Count(metric string, value float64, hostname string, tags []string)
	ServiceCheck(checkName string, status servicecheck.ServiceCheckStatus, hostname string, tags []string, message string)
	// HistogramBucket submits value samples spread between lowerBound
	// and upperBound, which the Agent adds to a distribution.
	HistogramBucket(metric string, value int64, lowerBound, upperBound float64, monotonic bool, hostname string, tags []string, flushFirstValue bool)
	Commit()
}

// Capture is the live capture the check drives. *capture.Live satisfies
// it; tests substitute captures fed from pcap files.
type Capture interface {
	Start() error
	Stop()
	Drain(dst []capture.PeerStats) []capture.PeerStats
	Health() capture.Health
	Peers() *capture.Peers
}

// Check is one go_metro check instance. Configure it, then call Run once
// per interval; Cancel stops its capture. Its methods are safe for
// concurrent use.
type Check struct {
	// Logger receives the check's logs; nil discards them.
	Logger *slog.Logger
	// Hostname is passed to the Sender; "" means the Agent's default.
	Hostname string
	// InAgent says the check runs inside the Agent, where the daemon's
	// init_config keys are ignored with a warning.
	InAgent bool
	// NewCapture opens the capture; nil means capture.NewLive.
	NewCapture func(capture.LiveConfig) (Capture, error)
	// StartWait bounds how long the first Run waits for the capture to
	// open, so that it reports its real state; 0 means 50 ms.
	StartWait time.Duration

	mu        sync.Mutex
	cfg       *Config
	capture   Capture
	startErr  error
	baseTags  []string // iface and instance tags
	prev      capture.Health
	prevRun   time.Time
	warnings  []error
	peerBuf   []capture.PeerStats
	cancelled bool             // Cancel was called: Run reports nothing
	lastError string           // for logging repeated failures at Debug
	rt        RuntimeCollector // runtime.go.* metrics (init_config runtime_metrics)
}

// Configure parses and validates the instance and init_config YAML.
// Unknown keys and ignored daemon keys become warnings (see Warnings).
func (c *Check) Configure(instance, initConfig []byte) error {
	cfg, err := ParseConfig(instance, initConfig, c.InAgent)
	if err != nil {
		return fmt.Errorf("configure %s: %w", Name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg = cfg
	c.baseTags = []string{"iface:" + cfg.Instance.Interface}
	if !c.InAgent {
		// Inside the Agent, CommonConfigure makes the sender add the
		// instance tags and the service tag to everything the check
		// sends; outside it, the check adds them.
		c.baseTags = append(c.baseTags, cfg.Instance.Tags...)
		if cfg.Service != "" {
			c.baseTags = append(c.baseTags, "service:"+cfg.Service)
		}
	}
	// A tag given twice (iface:eth0 in `tags` too) is sent once.
	c.baseTags = dedupe(c.baseTags)
	// Keep the configuration's warnings for Warnings, as documented, so
	// that they show before the first Run too; Run sets them again.
	c.warnings = nil
	for _, w := range cfg.Warnings {
		c.logger().Warn(w, "check", Name)
		c.warnings = append(c.warnings, errors.New(w))
	}
	return nil
}

// Config returns the configuration, or nil before Configure.
func (c *Check) Config() *Config {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cfg
}

// Interval returns min_collection_interval.
func (c *Check) Interval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return DefaultInterval
	}
	return c.cfg.Interval
}

// Warnings returns the warnings of the last Configure and Run, the way
// the Agent shows them in `agent status`, and clears them.
func (c *Check) Warnings() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.warnings
	c.warnings = nil
	return w
}

// dedupe removes repeated tags, keeping the first of each.
func dedupe(tags []string) []string {
	out := tags[:0]
	for i, t := range tags {
		if !slices.Contains(tags[:i], t) {
			out = append(out, t)
		}
	}
	return out
}

func (c *Check) logger() *slog.Logger {
	if c.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Logger
}

// Cancel stops the capture and waits for its goroutines to exit. A
// cancelled check stays stopped: a Run after Cancel (a run the scheduler
// had queued) submits nothing, logs at Debug and starts nothing; Start
// returns the cancellation.
func (c *Check) Cancel() {
	releaseRuntime(c)
	c.mu.Lock()
	cp := c.capture
	c.capture = nil
	c.cancelled = true
	if c.startErr == nil {
		c.startErr = errCancelled
	}
	c.mu.Unlock()
	if cp != nil {
		cp.Stop()
	}
}

// Run starts the capture on the first call, then drains the per-peer
// stats and the capture's health and submits them: RTT gauges for each
// peer with new samples (never stale repeats), the capture telemetry, and
// the service check. It always commits. It returns quickly whatever the
// capture's state; a capture that cannot start is reported as CRITICAL and
// returned as an error.
func (c *Check) Run(s Sender) error {
	defer s.Commit()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return fmt.Errorf("run %s: the check is not configured", Name)
	}
	if c.cfg.filter != nil {
		s = filteredSender{s, c.cfg.filter}
	}
	if c.cancelled {
		// A run the scheduler had queued before Cancel: the instance is
		// gone, so it reports nothing, not even a CRITICAL service check.
		c.logger().Debug("run after cancel: nothing to report", "check", Name)
		return nil
	}
	now := time.Now()
	c.warnings = nil
	for _, w := range c.cfg.Warnings {
		c.warnings = append(c.warnings, errors.New(w))
	}
	if c.capture == nil && c.startErr == nil {
		c.startLocked()
	}
	if c.cfg.Init.RuntimeMetrics && c.ownsRuntime() {
		// Process-wide: once per process, without an iface tag.
		tags := slices.DeleteFunc(slices.Clone(c.baseTags), func(t string) bool { return strings.HasPrefix(t, "iface:") })
		c.rt.Submit(s, c.Hostname, tags)
	}
	if c.startErr != nil {
		s.ServiceCheck(ServiceCheckName, servicecheck.ServiceCheckCritical, c.Hostname, c.baseTags, c.startErr.Error())
		return c.startErr
	}
	h := c.capture.Health()
	c.peerBuf = c.capture.Drain(c.peerBuf[:0])
	c.submitPeers(s, c.peerBuf)
	c.submitTelemetry(s, h)
	status, msg := c.status(h)
	s.ServiceCheck(ServiceCheckName, status, c.Hostname, c.baseTags, msg)
	if status != servicecheck.ServiceCheckOK {
		c.logFailure(status, msg)
	} else {
		c.lastError = ""
	}
	c.prev = h
	c.prevRun = now
	return nil
}

// Start starts the capture now instead of on the first Run, so that the
// first Run covers a whole interval. It returns the error that keeps the
// capture from ever starting, if any; Run reports it too.
func (c *Check) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil {
		return fmt.Errorf("start %s: the check is not configured", Name)
	}
	if c.capture == nil && c.startErr == nil {
		c.startLocked()
	}
	return c.startErr
}

// startLocked opens and starts the capture; failures that retrying cannot
// fix are kept in startErr. c.mu is held.
func (c *Check) startLocked() {
	newCapture := c.NewCapture
	if newCapture == nil {
		newCapture = func(cfg capture.LiveConfig) (Capture, error) { return capture.NewLive(cfg) }
	}
	cp, err := newCapture(c.cfg.Capture)
	if err == nil {
		err = cp.Start()
	}
	if err != nil {
		c.startErr = fmt.Errorf("start capture on %s: %w", c.cfg.Instance.Interface, err)
		c.logger().Error("cannot capture", "check", Name, "error", c.startErr)
		return
	}
	c.capture = cp
	wait := c.StartWait
	if wait == 0 {
		wait = 50 * time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for cp.Health().State == capture.StateStarting {
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func (c *Check) submitPeers(s Sender, peers []capture.PeerStats) {
	ic := &c.cfg.Instance
	for _, p := range peers {
		tags := make([]string, 0, len(c.baseTags)+4)
		tags = append(tags, "src:"+p.Local.String(), "dst:"+p.Remote.String())
		if p.Dir != capture.DirNone {
			tags = append(tags, "direction:"+p.Dir.String())
			switch p.Port {
			case 0:
			case capture.PortOther:
				tags = append(tags, "port:other")
			default:
				tags = append(tags, "port:"+strconv.FormatUint(uint64(p.Port), 10))
			}
		}
		tags = append(tags, c.baseTags...)
		if p.Count > 0 {
			s.Gauge(MetricRTT, ms(p.Last), c.Hostname, tags)
			s.Gauge(MetricRTTAvg, ms(p.SRTT), c.Hostname, tags)
			s.Gauge(MetricRTTJitter, ms(p.RTTVar), c.Hostname, tags)
			s.Gauge(MetricRTTMin, ms(p.Min), c.Hostname, tags)
			s.Gauge(MetricRTTMax, ms(p.Max), c.Hostname, tags)
			if ic.PercentileGauges {
				s.Gauge(MetricRTTP50, ms(p.P50), c.Hostname, tags)
				s.Gauge(MetricRTTP95, ms(p.P95), c.Hostname, tags)
				s.Gauge(MetricRTTP99, ms(p.P99), c.Hostname, tags)
			}
			s.Count(MetricRTTSamples, float64(p.Count), c.Hostname, tags)
			if ic.Distribution {
				for _, b := range p.Buckets {
					s.HistogramBucket(MetricRTTDistribution, int64(b.Count), ms(b.Lower), ms(b.Upper), false, c.Hostname, tags, false)
				}
			}
		}
		if ic.TCPHealth {
			c.submitCounts(s, &p, tags)
		}
	}
}

// submitCounts sends the loss and failure counts of a peer: those that
// are not zero, and all of them for a peer with samples in the interval.
func (c *Check) submitCounts(s Sender, p *capture.PeerStats, tags []string) {
	send := func(metric string, n uint64, tags []string) {
		if n > 0 || p.Count > 0 {
			s.Count(metric, float64(n), c.Hostname, tags)
		}
	}
	t := &p.TCP
	send(MetricRetransmits, t.Retransmits, tags)
	send(MetricConnectionsOpened, t.Opened, tags)
	send(MetricConnectionsRefused, t.Refused, tags)
	send(MetricConnectionTimeouts, t.Timeouts, tags)
	send(MetricResets, t.ResetsLocal, append(slices.Clip(tags), "sender:local"))
	send(MetricResets, t.ResetsRemote, append(slices.Clip(tags), "sender:remote"))
	send(MetricZeroWindows, t.ZeroWindows, tags)
}

// runtimeOwner is the check that sends the runtime.go.* metrics. They
// describe the process, not an instance: with several instances (several
// interfaces) in one process, only the first to run with
// runtime_metrics: true sends them, until it is cancelled. Process-wide
// state on purpose, since the metrics are process-wide.
var runtimeOwner struct {
	mu sync.Mutex
	c  *Check
}

// ownsRuntime reports whether c sends the runtime metrics, taking them
// over when no check does.
func (c *Check) ownsRuntime() bool {
	runtimeOwner.mu.Lock()
	defer runtimeOwner.mu.Unlock()
	if runtimeOwner.c == nil {
		runtimeOwner.c = c
	}
	return runtimeOwner.c == c
}

// releaseRuntime lets another check send the runtime metrics, if c did.
func releaseRuntime(c *Check) {
	runtimeOwner.mu.Lock()
	if runtimeOwner.c == c {
		runtimeOwner.c = nil
	}
	runtimeOwner.mu.Unlock()
}

// filteredSender sends the metrics that metric_patterns allows, and
// every service check.
type filteredSender struct {
	Sender
	f *metricFilter
}

func (s filteredSender) Gauge(metric string, value float64, hostname string, tags []string) {
	if s.f.allows(metric) {
		s.Sender.Gauge(metric, value, hostname, tags)
	}
}

func (s filteredSender) Count(metric string, value float64, hostname string, tags []string) {
	if s.f.allows(metric) {
		s.Sender.Count(metric, value, hostname, tags)
	}
}

func (s filteredSender) HistogramBucket(metric string, value int64, lowerBound, upperBound float64, monotonic bool, hostname string, tags []string, flushFirstValue bool) {
	if s.f.allows(metric) {
		s.Sender.HistogramBucket(metric, value, lowerBound, upperBound, monotonic, hostname, tags, flushFirstValue)
	}
}

// delta returns cur-prev for a counter, or cur when it went backwards
// (a new capture).
func delta(cur, prev uint64) float64 {
	if cur < prev {
		return float64(cur)
	}
	return float64(cur - prev)
}

func (c *Check) submitTelemetry(s Sender, h capture.Health) {
	p, t := c.prev, c.baseTags
	s.Count(MetricPacketsReceived, delta(h.KernelPackets, p.KernelPackets), c.Hostname, t)
	s.Count(MetricPacketsDropped, delta(h.KernelDrops, p.KernelDrops), c.Hostname, t)
	s.Count(MetricDecodeErrors, delta(h.Stats.DecodeErrors, p.Stats.DecodeErrors), c.Hostname, t)
	s.Gauge(MetricFlowsActive, float64(h.Stats.Flows), c.Hostname, t)
	s.Count(MetricFlowsEvicted, delta(h.Stats.FlowsEvicted, p.Stats.FlowsEvicted), c.Hostname, t)
	s.Count(MetricSamplesDiscarded, delta(h.Stats.SamplesDiscarded, p.Stats.SamplesDiscarded), c.Hostname, t)
}

// status decides the service check and its message, and records the
// run's warnings: each cause of a WARNING, and the message of a CRITICAL,
// so that `agent status` shows the instance as failing, not [OK].
func (c *Check) status(h capture.Health) (servicecheck.ServiceCheckStatus, string) {
	if st, msg := c.critical(h); msg != "" {
		c.warnings = append(c.warnings, errors.New(msg))
		return st, msg
	}
	var warns []string
	if d := delta(h.KernelDrops, c.prev.KernelDrops); d > 0 {
		ring := c.cfg.Capture.RingSize
		if ring == 0 {
			ring = capture.DefaultRingSize
		}
		warns = append(warns, fmt.Sprintf("the kernel dropped %.0f packets in the last interval because the capture ring was full: raise `ring_size` (now %d bytes) or narrow `ips`/`hosts`", d, ring))
	}
	if len(h.Unresolved) > 0 && !slices.ContainsFunc(h.Warnings, func(w string) bool { return strings.HasPrefix(w, "resolve host") }) {
		// The resolver's own warnings name each host and its cause;
		// this covers hosts not yet tried.
		warns = append(warns, fmt.Sprintf("hosts do not resolve: %s: their traffic is not timed until they do", strings.Join(h.Unresolved, ", ")))
	}
	if h.LastError != nil && h.LastErrorTime.After(c.prevRun) && h.State == capture.StateCapturing {
		warns = append(warns, fmt.Sprintf("capture recovered from: %v", h.LastError))
	}
	warns = append(warns, h.Warnings...)
	if h.State == capture.StateStarting {
		warns = append(warns, "capture is starting")
	}
	for _, w := range warns {
		c.warnings = append(c.warnings, errors.New(w))
	}
	if len(warns) > 0 {
		return servicecheck.ServiceCheckWarning, strings.Join(warns, "; ")
	}
	return servicecheck.ServiceCheckOK, ""
}

// critical returns CRITICAL and its message when the capture is not
// capturing, or "" when it is.
func (c *Check) critical(h capture.Health) (servicecheck.ServiceCheckStatus, string) {
	if h.Panics > c.prev.Panics {
		return servicecheck.ServiceCheckCritical, fmt.Sprintf("%v; capture restarts by itself with backoff; please report this panic", h.LastError)
	}
	switch h.State {
	case capture.StateRetrying:
		return servicecheck.ServiceCheckCritical, errorString(h.LastError)
	case capture.StateStopped:
		return servicecheck.ServiceCheckCritical, "capture is stopped"
	}
	return servicecheck.ServiceCheckOK, ""
}

func errorString(err error) string {
	if err == nil {
		return "capture failed"
	}
	return err.Error()
}

// logFailure logs a failing state at Warn the first time and at Debug
// while it repeats.
func (c *Check) logFailure(status servicecheck.ServiceCheckStatus, msg string) {
	if msg == c.lastError {
		c.logger().Debug("capture still unhealthy", "check", Name, "status", status.String(), "message", msg)
		return
	}
	c.lastError = msg
	c.logger().Warn("capture unhealthy", "check", Name, "status", status.String(), "message", msg)
}
