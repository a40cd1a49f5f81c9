package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/statsd_exporter/pkg/event"
	"github.com/prometheus/statsd_exporter/pkg/exporter"
	"github.com/prometheus/statsd_exporter/pkg/line"
	"github.com/prometheus/statsd_exporter/pkg/listener"
	"github.com/prometheus/statsd_exporter/pkg/mapper"
)

// dogstatsd is a DogStatsD server: statsd_exporter's listener, line parser
// (with DogStatsD tags) and exporter, wired as its main.go wires them, with
// every metric in a registry of its own. Its line parser records every line
// it is given: statsd_exporter turns no service check into a metric, so the
// record is how a test sees them arrive.
type dogstatsd struct {
	// addr is where clients send: host:port for UDP, a socket path for
	// unixgram.
	network, addr string

	reg    *prometheus.Registry
	parser *recordingParser
}

// startDogStatsD starts a server on a free UDP port of 127.0.0.1
// (network "udp"), or on a unixgram socket in a temporary directory
// (network "unixgram"), and stops it when the test ends.
//
// statsd_exporter's goroutines have no way to stop: the exporter and, for
// UDP, the listener's packet queue stay blocked until the test binary
// exits. Only the socket is closed.
func startDogStatsD(tb testing.TB, network string) *dogstatsd {
	tb.Helper()
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	counter := func(name string) prometheus.Counter {
		return f.NewCounter(prometheus.CounterOpts{Name: name, Help: name})
	}
	counterVec := func(name string, labels ...string) *prometheus.CounterVec {
		return f.NewCounterVec(prometheus.CounterOpts{Name: name, Help: name}, labels)
	}
	var (
		eventStats            = counterVec("statsd_exporter_events_total", "type")
		eventsFlushed         = counter("statsd_exporter_event_queue_flushed_total")
		eventsUnmapped        = counter("statsd_exporter_events_unmapped_total")
		linesReceived         = counter("statsd_exporter_lines_total")
		samplesReceived       = counter("statsd_exporter_samples_total")
		sampleErrors          = counterVec("statsd_exporter_sample_errors_total", "reason")
		tagsReceived          = counter("statsd_exporter_tags_total")
		tagErrors             = counter("statsd_exporter_tag_errors_total")
		conflictingEventStats = counterVec("statsd_exporter_events_conflict_total", "type", "metric_name")
		errorEventStats       = counterVec("statsd_exporter_events_error_total", "reason")
		eventsActions         = counterVec("statsd_exporter_events_actions_total", "action")
		metricsCount          = f.NewGaugeVec(prometheus.GaugeOpts{Name: "statsd_exporter_metrics_total", Help: "metrics"}, []string{"type"})
	)
	logger := slog.New(slog.DiscardHandler)
	p := line.NewParser()
	p.EnableDogstatsdParsing()
	parser := &recordingParser{parser: p}

	// No mapping: every metric keeps its DogStatsD name, escaped.
	m := &mapper.MetricMapper{Registerer: reg, Logger: logger}
	exp := exporter.NewExporter(reg, m, logger, eventsActions, eventsUnmapped, errorEventStats, eventStats, conflictingEventStats, metricsCount)
	events := make(chan event.Events, 1000)
	go exp.Listen(events)
	// Each line's events go to the exporter at once, in order, rather than
	// every 200 ms as the binary's event queue does.
	handler := &event.UnbufferedEventHandler{C: events}

	s := &dogstatsd{network: network, reg: reg, parser: parser}
	var (
		conn   net.Conn
		listen func()
	)
	switch network {
	case "udp":
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatalf("listen for DogStatsD: %v", err)
		}
		s.addr = c.LocalAddr().String()
		l := &listener.StatsDUDPListener{
			Conn:            c,
			EventHandler:    handler,
			Logger:          logger,
			LineParser:      parser,
			UDPPackets:      counter("statsd_exporter_udp_packets_total"),
			UDPPacketDrops:  counter("statsd_exporter_udp_packet_drops_total"),
			LinesReceived:   linesReceived,
			EventsFlushed:   eventsFlushed,
			SampleErrors:    *sampleErrors,
			SamplesReceived: samplesReceived,
			TagErrors:       tagErrors,
			TagsReceived:    tagsReceived,
			UdpPacketQueue:  make(chan []byte, 10000),
		}
		conn, listen = c, l.Listen
	case "unixgram":
		s.addr = filepath.Join(tb.TempDir(), "dsd.socket")
		c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Net: "unixgram", Name: s.addr})
		if err != nil {
			tb.Fatalf("listen for DogStatsD: %v", err)
		}
		l := &listener.StatsDUnixgramListener{
			Conn:            c,
			EventHandler:    handler,
			Logger:          logger,
			LineParser:      parser,
			UnixgramPackets: counter("statsd_exporter_unixgram_packets_total"),
			LinesReceived:   linesReceived,
			EventsFlushed:   eventsFlushed,
			SampleErrors:    *sampleErrors,
			SamplesReceived: samplesReceived,
			TagErrors:       tagErrors,
			TagsReceived:    tagsReceived,
		}
		conn, listen = c, l.Listen
	default:
		tb.Fatalf("unknown network %q", network)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		listen()
	}()
	tb.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

// sync sends a counter of its own to the server and waits until the
// exporter has it. The server handles datagrams in order, so everything
// sent before it is in the registry too.
func (s *dogstatsd) sync(tb testing.TB) {
	tb.Helper()
	c, err := net.Dial(s.network, s.addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(barrierMetric + ":1|c")); err != nil {
		tb.Fatal(err)
	}
	want := escapeName(barrierMetric)
	deadline := time.Now().Add(5 * time.Second)
	for {
		fams, _ := s.reg.Gather()
		if slices.ContainsFunc(fams, func(f *dto.MetricFamily) bool { return f.GetName() == want }) {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s server: %s did not reach the exporter in 5 s", s.network, barrierMetric)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// barrierMetric is the counter that sync sends.
const barrierMetric = "e2e.barrier"

// series is one time series of the exporter: its labels and value.
type series struct {
	labels map[string]string
	value  float64
}

// family is a metric family of the exporter.
type family struct {
	typ    dto.MetricType
	series []series
}

// gather returns the exporter's metrics by name. statsd_exporter exposes
// gauges and counters only as such here: the test sends nothing else.
func (s *dogstatsd) gather(tb testing.TB) map[string]family {
	tb.Helper()
	fams, err := s.reg.Gather()
	if err != nil {
		// Inconsistent label sets under one name land here.
		tb.Errorf("%s server: gather: %v", s.network, err)
	}
	out := make(map[string]family, len(fams))
	for _, f := range fams {
		fam := family{typ: f.GetType()}
		for _, m := range f.GetMetric() {
			sr := series{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				sr.labels[l.GetName()] = l.GetValue()
			}
			switch f.GetType() {
			case dto.MetricType_GAUGE:
				sr.value = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				sr.value = m.GetCounter().GetValue()
			default:
				sr.value = m.GetUntyped().GetValue()
			}
			fam.series = append(fam.series, sr)
		}
		out[f.GetName()] = fam
	}
	return out
}

// escapeName is the Prometheus name statsd_exporter gives a DogStatsD
// metric without a mapping.
func escapeName(name string) string { return mapper.EscapeMetricName(name) }

// recordingParser is a listener.Parser: statsd_exporter's line parser,
// which also records every line it parses and the number of events it
// made of it. It is safe for concurrent use.
type recordingParser struct {
	parser *line.Parser

	mu    sync.Mutex
	lines []recordedLine
}

// recordedLine is a line the server received.
type recordedLine struct {
	text   string
	events int // the events statsd_exporter made of it
	at     time.Time
}

var _ listener.Parser = (*recordingParser)(nil)

func (p *recordingParser) LineToEvents(text string, sampleErrors prometheus.CounterVec, samplesReceived, tagErrors, tagsReceived prometheus.Counter, logger *slog.Logger) event.Events {
	ev := p.parser.LineToEvents(text, sampleErrors, samplesReceived, tagErrors, tagsReceived, logger)
	if text != "" {
		p.mu.Lock()
		p.lines = append(p.lines, recordedLine{text: text, events: len(ev), at: time.Now()})
		p.mu.Unlock()
	}
	return ev
}

// received returns the lines received so far.
func (p *recordingParser) received() []recordedLine {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.lines)
}

// serviceChecks returns the service checks received so far.
func (s *dogstatsd) serviceChecks(tb testing.TB) []dsdLine {
	tb.Helper()
	var out []dsdLine
	for _, l := range s.parser.received() {
		if strings.HasPrefix(l.text, "_sc|") {
			sc := mustParseLine(tb, l.text)
			sc.at = l.at
			out = append(out, sc)
		}
	}
	return out
}

// lastServiceCheck returns when the latest service check arrived, or the
// zero Time if none has.
func (s *dogstatsd) lastServiceCheck(tb testing.TB) time.Time {
	if scs := s.serviceChecks(tb); len(scs) > 0 {
		return scs[len(scs)-1].at
	}
	return time.Time{}
}

// waitServiceChecks waits until at least n service checks named name have
// arrived, and returns them.
func (s *dogstatsd) waitServiceChecks(ctx context.Context, tb testing.TB, name string, n int) []dsdLine {
	tb.Helper()
	for {
		var got []dsdLine
		for _, sc := range s.serviceChecks(tb) {
			if sc.name == name {
				got = append(got, sc)
			}
		}
		if len(got) >= n {
			return got
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("%s server: %d service checks %s after %v, want %d: %v", s.network, len(got), name, context.Cause(ctx), n, got)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// dsdLine is a DogStatsD line: a metric or a service check.
type dsdLine struct {
	typ   string // "g", "c" and the other metric types, or "_sc"
	name  string
	value float64 // of a metric (its first value); the status of a service check
	// values are a metric's values: several on a distribution's line
	// (v1:v2:...|d, which the Agent reads since 7.25), one otherwise.
	values []float64
	tags   []string
	msg    string // of a service check
	text   string
	at     time.Time // when the server received it, if known
}

func (l dsdLine) String() string { return l.text }

// parseLine parses a DogStatsD datagram line: name:value|type|@rate|#tags
// (name:v1:v2:...|d|#tags for a distribution's values)
// or _sc|name|status|d:ts|h:host|#tags|m:message, either followed by
// |c:container and |e:env.
func parseLine(text string) (dsdLine, error) {
	l := dsdLine{text: text}
	var fields []string
	if rest, ok := strings.CutPrefix(text, "_sc|"); ok {
		fields = strings.Split(rest, "|")
		if len(fields) < 2 {
			return l, fmt.Errorf("service check %q: no status", text)
		}
		l.typ, l.name = "_sc", fields[0]
		st, err := strconv.Atoi(fields[1])
		if err != nil {
			return l, fmt.Errorf("service check %q: status: %w", text, err)
		}
		l.value = float64(st)
		fields = fields[2:]
	} else {
		name, rest, ok := strings.Cut(text, ":")
		if !ok {
			return l, fmt.Errorf("metric %q: no value", text)
		}
		fields = strings.Split(rest, "|")
		if len(fields) < 2 {
			return l, fmt.Errorf("metric %q: no type", text)
		}
		for _, f := range strings.Split(fields[0], ":") {
			v, err := strconv.ParseFloat(f, 64)
			if err != nil {
				return l, fmt.Errorf("metric %q: value: %w", text, err)
			}
			l.values = append(l.values, v)
		}
		if len(l.values) > 1 && fields[1] != "d" {
			return l, fmt.Errorf("metric %q: several values on a line of type %s", text, fields[1])
		}
		l.name, l.value, l.typ = name, l.values[0], fields[1]
		fields = fields[2:]
	}
	for _, f := range fields {
		switch {
		case strings.HasPrefix(f, "#"):
			l.tags = strings.Split(f[1:], ",")
		case strings.HasPrefix(f, "m:") && l.typ == "_sc":
			l.msg = f[2:]
		case f == "":
			return l, errors.New("empty field in " + strconv.Quote(text))
		}
	}
	return l, nil
}

func mustParseLine(tb testing.TB, text string) dsdLine {
	tb.Helper()
	l, err := parseLine(text)
	if err != nil {
		tb.Fatal(err)
	}
	return l
}
