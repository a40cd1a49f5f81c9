package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/DataDog/datadog-go/v5/statsd"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// DogStatsD defaults, as in go-metro and the Agent.
const (
	defaultStatsdHost = "127.0.0.1"
	defaultStatsdPort = 8125
)

// The Agent's variables for the DogStatsD address.
const (
	envAgentHost    = "DD_AGENT_HOST"
	envDogstatsPort = "DD_DOGSTATSD_PORT"
	envDogstatsURL  = "DD_DOGSTATSD_URL"
)

// statsdAddress chooses the DogStatsD address, in the form statsd.New
// takes: "host:port" for UDP, or a unix://, unixgram:// or unixstream://
// URL. In order:
//
//  1. statsd_ip and statsd_port of init_config, when either key is in the
//     file (fileKeys); the other takes go-metro's default, which is
//     127.0.0.1 or 8125. Agent 5 files of go-metro work as they are.
//  2. DD_DOGSTATSD_URL: udp://host[:port], unix:///path, unixgram:///path
//     or unixstream:///path.
//  3. DD_AGENT_HOST and DD_DOGSTATSD_PORT, either of them.
//  4. 127.0.0.1:8125.
//
// from says where the address came from, for the logs.
func statsdAddress(init check.InitConfig, fileKeys map[string]bool, getenv func(string) string) (addr, from string, err error) {
	if fileKeys["statsd_ip"] || fileKeys["statsd_port"] {
		host, port := defaultStatsdHost, defaultStatsdPort
		if fileKeys["statsd_ip"] {
			host = strings.Trim(init.StatsdIP, "[]")
			if why := badStatsdHost(host); why != "" {
				if _, _, err := net.SplitHostPort(init.StatsdIP); err == nil && !strings.Contains(init.StatsdIP, "://") {
					why = "it carries a port: put the port in `statsd_port`"
				}
				return "", "", fmt.Errorf("invalid `statsd_ip` %q: must be the IP address or host name of DogStatsD, such as 127.0.0.1; %s", init.StatsdIP, why)
			}
		}
		if fileKeys["statsd_port"] {
			// ParseConfig checked the range.
			port = init.StatsdPort
		}
		return net.JoinHostPort(strings.Trim(host, "[]"), strconv.Itoa(port)), "init_config statsd_ip/statsd_port", nil
	}
	if u := getenv(envDogstatsURL); u != "" {
		addr, err := parseDogstatsdURL(u)
		if err != nil {
			return "", "", err
		}
		return addr, envDogstatsURL, nil
	}
	host, port := getenv(envAgentHost), getenv(envDogstatsPort)
	if host == "" && port == "" {
		return net.JoinHostPort(defaultStatsdHost, strconv.Itoa(defaultStatsdPort)), "default", nil
	}
	var sources []string
	portKey := envDogstatsPort
	if host == "" {
		host = defaultStatsdHost
	} else {
		sources = append(sources, envAgentHost)
		if strings.Contains(host, "/") {
			return "", "", fmt.Errorf("invalid %s %q: must be the IP address or host name of the Agent, not a URL or a path; set %s for a URL or a Unix socket", envAgentHost, host, envDogstatsURL)
		}
		// DD_AGENT_HOST may carry a port, as datadog-go accepts;
		// DD_DOGSTATSD_PORT overrides it.
		if h, p, err := net.SplitHostPort(host); err == nil {
			host = h
			if port == "" {
				port, portKey = p, envAgentHost
			}
		}
		host = strings.Trim(host, "[]")
		if why := badStatsdHost(host); why != "" {
			return "", "", fmt.Errorf("invalid %s %q: must be the IP address or host name of the Agent; %s", envAgentHost, getenv(envAgentHost), why)
		}
	}
	if getenv(envDogstatsPort) != "" {
		sources = append(sources, envDogstatsPort)
	}
	if port == "" {
		port = strconv.Itoa(defaultStatsdPort)
	} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return "", "", fmt.Errorf("invalid port %q in %s: must be a number between 1 and 65535", port, portKey)
	}
	return net.JoinHostPort(host, port), strings.Join(sources, " and "), nil
}

// badStatsdHost says why host is not an IP address or a host name, or
// returns "".
func badStatsdHost(host string) string {
	switch {
	case host == "":
		return "it is empty"
	case strings.Contains(host, "://"):
		return "a URL belongs in " + envDogstatsURL
	case strings.ContainsAny(host, "/"):
		return "set " + envDogstatsURL + " for a Unix socket"
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	if err := capture.CheckHostName(host); err != nil {
		return "not a host name: " + err.Error()
	}
	return ""
}

// parseDogstatsdURL checks a DD_DOGSTATSD_URL and returns the address for
// statsd.New.
func parseDogstatsdURL(s string) (string, error) {
	bad := func(why string) error {
		return fmt.Errorf("invalid %s %q: %s; use udp://host:port, unix:///path/to/dsd.socket or unixgram:///path/to/dsd.socket", envDogstatsURL, s, why)
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", bad("not a URL")
	}
	switch u.Scheme {
	case "udp":
		if u.Host == "" || u.Path != "" && u.Path != "/" {
			return "", bad("a UDP address has a host and an optional port, and no path")
		}
		host, port := u.Hostname(), u.Port()
		if port == "" {
			port = strconv.Itoa(defaultStatsdPort)
		} else if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return "", bad("the port must be between 1 and 65535")
		}
		return net.JoinHostPort(host, port), nil
	case "unix", "unixgram", "unixstream":
		if u.Host != "" || !strings.HasPrefix(u.Path, "/") {
			return "", bad("a socket path is absolute, after three slashes")
		}
		return u.Scheme + "://" + u.Path, nil
	default:
		return "", bad(fmt.Sprintf("unsupported scheme %q", u.Scheme))
	}
}

// statsdSender is a check.Sender that submits to DogStatsD through a
// statsd.Client. The client buffers; Commit flushes it and Close flushes
// and closes it. A non-empty hostname becomes the host: tag; without one,
// DogStatsD uses the Agent's hostname. Errors are logged, at Warn the
// first time and at Debug while they repeat; every metric is logged at
// Debug. While the DogStatsD host name does not resolve, the client
// cannot be created: what is submitted is dropped, and every Commit tries
// again. It is safe for concurrent use.
type statsdSender struct {
	logger    *slog.Logger
	addr      string
	opts      []statsd.Option
	newClient func(string, ...statsd.Option) (*statsd.Client, error)

	client  atomic.Pointer[statsd.Client] // nil until addr resolves
	dropped atomic.Uint64                 // submissions dropped without a client

	mu      sync.Mutex
	lastErr string // the last error logged, "" after an interval without one
	failed  bool   // an error was seen since the last Commit
}

var _ check.Sender = (*statsdSender)(nil)

// newStatsdSender creates the DogStatsD client for addr. opts follow the
// sender's own options, for tests.
func newStatsdSender(addr string, logger *slog.Logger, opts ...statsd.Option) (*statsdSender, error) {
	return newStatsdSenderWith(statsd.New, addr, logger, opts...)
}

// newStatsdSenderWith is newStatsdSender with the client's constructor,
// statsd.New but in tests. A host name that does not resolve yet is not
// an error: the sender tries again on every Commit.
func newStatsdSenderWith(newClient func(string, ...statsd.Option) (*statsd.Client, error), addr string, logger *slog.Logger, opts ...statsd.Option) (*statsdSender, error) {
	s := &statsdSender{logger: logger, addr: addr, newClient: newClient}
	s.opts = append([]statsd.Option{statsd.WithErrorHandler(s.logError)}, opts...)
	err := s.connect()
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		logger.Warn("the DogStatsD host does not resolve yet: go-metro tries again on every interval, and drops what it measures until it resolves", "dogstatsd", addr, "error", err)
	case err != nil:
		return nil, fmt.Errorf("create DogStatsD client for %s: %w", addr, err)
	}
	return s, nil
}

// connect creates the client, unless there is one.
func (s *statsdSender) connect() error {
	if s.client.Load() != nil {
		return nil
	}
	c, err := s.newClient(s.addr, s.opts...)
	if err != nil {
		return err
	}
	s.client.Store(c)
	return nil
}

// send calls fn with the client, or counts a dropped submission when
// there is none yet.
func (s *statsdSender) send(fn func(*statsd.Client) error) {
	c := s.client.Load()
	if c == nil {
		s.dropped.Add(1)
		return
	}
	s.logError(fn(c))
}

func withHost(tags []string, hostname string) []string {
	if hostname == "" {
		return tags
	}
	return append(slices.Clip(tags), "host:"+hostname)
}

// Gauge sends a gauge.
func (s *statsdSender) Gauge(metric string, value float64, hostname string, tags []string) {
	tags = withHost(tags, hostname)
	s.debug("gauge", metric, value, tags)
	s.send(func(c *statsd.Client) error { return c.Gauge(metric, value, tags, 1) })
}

// Count sends a count. DogStatsD counts are integers: value is rounded.
func (s *statsdSender) Count(metric string, value float64, hostname string, tags []string) {
	tags = withHost(tags, hostname)
	s.debug("count", metric, value, tags)
	s.send(func(c *statsd.Client) error { return c.Count(metric, int64(math.Round(value)), tags, 1) })
}

// HistogramBucket sends value samples of a distribution (|d), each at the
// middle of [lowerBound, upperBound] rounded to 3 decimals, so that the
// Agent's sketch counts every sample exactly once: several values per
// line (Agent 7.25 and later), at a sample rate of 1, which datadog-go's
// DistributionSamples does not sample again on the client. Monotonic
// buckets are not supported: go-metro sends none.
func (s *statsdSender) HistogramBucket(metric string, value int64, lowerBound, upperBound float64, _ bool, hostname string, tags []string, _ bool) {
	if value <= 0 || math.IsInf(lowerBound, 0) || math.IsInf(upperBound, 0) || upperBound < lowerBound {
		return
	}
	tags = withHost(tags, hostname)
	v := math.Round((lowerBound+upperBound)/2*1000) / 1000
	s.debug("distribution", metric, v, append(slices.Clip(tags), fmt.Sprintf("count:%d", value)))
	vals := make([]float64, value)
	for i := range vals {
		vals[i] = v
	}
	s.send(func(c *statsd.Client) error {
		return (&statsd.ClientDirect{Client: c}).DistributionSamples(metric, vals, tags, 1)
	})
}

// ServiceCheck sends a service check.
func (s *statsdSender) ServiceCheck(checkName string, status servicecheck.ServiceCheckStatus, hostname string, tags []string, message string) {
	tags = withHost(tags, hostname)
	if s.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.logger.Debug("service check", "name", checkName, "status", status.String(), "tags", tags, "message", message)
	}
	s.send(func(c *statsd.Client) error {
		return c.ServiceCheck(&statsd.ServiceCheck{Name: checkName, Status: statsdStatus(status), Tags: tags, Message: message})
	})
}

// statsdStatus maps the Agent's service check status to DogStatsD's.
func statsdStatus(st servicecheck.ServiceCheckStatus) statsd.ServiceCheckStatus {
	switch st {
	case servicecheck.ServiceCheckOK:
		return statsd.Ok
	case servicecheck.ServiceCheckWarning:
		return statsd.Warn
	case servicecheck.ServiceCheckCritical:
		return statsd.Critical
	default:
		return statsd.Unknown
	}
}

func (s *statsdSender) debug(typ, metric string, value float64, tags []string) {
	if s.logger.Enabled(context.Background(), slog.LevelDebug) {
		s.logger.Debug("metric", "type", typ, "name", metric, "value", value, "tags", tags)
	}
}

// Commit flushes what the client buffered, or, without a client, tries
// to create it.
func (s *statsdSender) Commit() {
	if s.client.Load() == nil {
		s.mu.Lock()
		err := s.connect()
		s.mu.Unlock()
		if err != nil {
			s.logger.Debug("the DogStatsD host still does not resolve", "dogstatsd", s.addr, "dropped", s.dropped.Load(), "error", err)
			return
		}
		s.logger.Info("the DogStatsD host resolves: sending", "dogstatsd", s.addr, "dropped", s.dropped.Load())
	}
	s.logError(s.client.Load().Flush())
	s.mu.Lock()
	if !s.failed {
		s.lastErr = ""
	}
	s.failed = false
	s.mu.Unlock()
}

// Close flushes what is pending and closes the client.
func (s *statsdSender) Close() error {
	c := s.client.Load()
	if c == nil {
		return nil
	}
	err := c.Close()
	s.logError(err)
	return err
}

// logError logs a submission error: at Warn the first time, at Debug while
// it repeats. It is also the client's error handler, called from its
// goroutines.
func (s *statsdSender) logError(err error) {
	if err == nil {
		return
	}
	msg := err.Error()
	s.mu.Lock()
	repeated := msg == s.lastErr
	s.lastErr, s.failed = msg, true
	s.mu.Unlock()
	if repeated {
		s.logger.Debug("DogStatsD submission failed again", "error", err)
		return
	}
	s.logger.Warn("DogStatsD submission failed; is DogStatsD listening? The Agent enables it by default (use_dogstatsd)", "error", err)
}
