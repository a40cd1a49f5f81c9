package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

const checkUsage = `Usage: go-metro check [-c FILE] [--interface IF] [--runs N] [--interval D] [--json]

Runs the go_metro check as "agent check" does, and prints what each run
submits: the RTT per peer, the capture telemetry, the service check and the
warnings. The capture starts at once; each run then waits one interval and
reports what was captured during it.

-c reads a conf.yaml in the Agent's format (init_config and instances; the
go-metro daemon's Agent 5 files work too), and every instance runs with its
own capture. Without -c, one instance captures on the interface of the
default route, with no peer filter. --interface replaces the interface of
every instance.

The interval defaults to the longest min_collection_interval of the
instances (15s unless set). With --json, each run prints one JSON document
on a line, {"series":[...],"service_checks":[...]}, that merges the
instances, and warnings go to standard error.

Exit status: 0 when every run completed and the capture of every
instance worked (the service check was OK or WARNING); 1 when a run of the
check returned an error, as "agent check" does, or reported the capture
CRITICAL (for example without CAP_NET_RAW: the capture cannot start), when
interrupted, or on any other error; 2 for a usage error. When no instance
can capture at the start, it exits at once without waiting for the runs.

Options:
`

// checkOptions are the flags of go-metro check.
type checkOptions struct {
	config   string
	iface    string
	runs     int
	interval time.Duration // 0: the instances' min_collection_interval
	json     bool
}

func parseCheckFlags(args []string, stderr io.Writer) (*checkOptions, error) {
	o := &checkOptions{}
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, checkUsage)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.config, "c", "", "read the check's configuration from `FILE`, a conf.yaml (at most 1 MiB)")
	fs.StringVar(&o.iface, "interface", "", "capture on interface `IF` in every instance, or any for all interfaces")
	fs.IntVar(&o.runs, "runs", 1, "perform `N` runs, one per interval")
	fs.Func("interval", "wait `D` before each run (default: the instances' min_collection_interval)", func(s string) error {
		d, err := time.ParseDuration(s)
		if err != nil {
			return errors.New("want a duration such as 15s")
		}
		if d <= 0 {
			return errors.New("must be positive")
		}
		o.interval = d
		return nil
	})
	fs.BoolVar(&o.json, "json", false, "print one JSON document of series and service checks per run")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	configSet := false
	fs.Visit(func(f *flag.Flag) { configSet = configSet || f.Name == "c" })
	switch {
	case configSet && o.config == "":
		return nil, fmt.Errorf("%w: -c \"\": name a configuration file, or leave -c out to capture on the default route's interface", errUsage)
	case fs.NArg() > 0:
		return nil, fmt.Errorf("%w: unexpected argument %q: go-metro check takes only options", errUsage, fs.Arg(0))
	case o.runs < 1:
		return nil, fmt.Errorf("%w: invalid --runs %d: must be at least 1", errUsage, o.runs)
	case o.iface != "" && strings.TrimSpace(o.iface) != o.iface:
		return nil, fmt.Errorf("%w: invalid --interface %q: interface names have no spaces", errUsage, o.iface)
	}
	return o, nil
}

// checkCmd is go-metro check. SIGINT and SIGTERM stop it between runs.
func checkCmd(args []string, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// After the first signal, a second one kills as usual.
		<-ctx.Done()
		stop()
	}()
	c := checker{defaultRoute: defaultRouteInterface}
	return c.main(ctx, args, stdout, stderr)
}

// checker runs go-metro check. Its fields are what tests replace.
type checker struct {
	// newCapture opens each instance's capture; nil means capture.NewLive.
	newCapture func(capture.LiveConfig) (check.Capture, error)
	// defaultRoute returns the interface of the default route.
	defaultRoute func() (string, error)
}

// checkInstance is one configured instance and its capture.
type checkInstance struct {
	name string // instances[i]
	chk  *check.Check
	cp   check.Capture // the capture the check opened, if any
	err  error         // the first error a run returned
}

// runResult is what one run of one instance gave.
type runResult struct {
	batch    check.Batch
	err      error
	warnings []error
	state    string
}

// main parses args, configures the instances, starts their captures and
// performs the runs. Cancelling ctx stops it between runs; the captures
// are always stopped before it returns.
func (c *checker) main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseCheckFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	insts, fileWarnings, err := c.configure(o)
	if err != nil {
		return err
	}
	defer func() {
		for _, in := range insts {
			in.chk.Cancel()
		}
	}()
	for _, w := range fileWarnings {
		fmt.Fprintf(stderr, "Warning: %s\n", w)
	}
	interval := o.interval
	if interval == 0 {
		for _, in := range insts {
			interval = max(interval, in.chk.Interval())
		}
	}
	out := &checkOutput{w: stdout, stderr: stderr, json: o.json, seen: map[string]bool{}}

	// The check starts its capture on the first Run: run once now, and
	// keep that run's output only when no capture could start, or none
	// captures (CRITICAL: no CAP_NET_RAW, say).
	start := time.Now()
	first := runAll(insts)
	if !slices.ContainsFunc(first, func(r runResult) bool { return r.failure() == nil }) {
		noteFailures(insts, first)
		if err := out.write("Start", insts, first); err != nil {
			return err
		}
		return instanceErrors(insts)
	}
	if !o.json {
		var ifaces []string
		for _, in := range insts {
			ifaces = append(ifaces, in.chk.Config().Instance.Interface)
		}
		runs := "1 run"
		if o.runs > 1 {
			runs = fmt.Sprintf("%d runs", o.runs)
		}
		fmt.Fprintf(stderr, "Capturing on %s: %s, one every %v. Ctrl-C stops.\n", strings.Join(ifaces, ", "), runs, interval)
	}

	for n := 1; n <= o.runs; n++ {
		t := time.NewTimer(time.Until(start.Add(time.Duration(n) * interval)))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("interrupted after %d of %d runs", n-1, o.runs)
		case <-t.C:
		}
		title := fmt.Sprintf("Run %d of %d (interval %v)", n, o.runs, interval)
		results := runAll(insts)
		noteFailures(insts, results)
		if err := out.write(title, insts, results); err != nil {
			return err
		}
	}
	return instanceErrors(insts)
}

// failure returns the run's error, or an error with the message of a
// CRITICAL service check: the capture could not capture.
func (r runResult) failure() error {
	if r.err != nil {
		return r.err
	}
	for _, sc := range r.batch.ServiceChecks {
		if sc.Check == check.ServiceCheckName && sc.Status == servicecheck.ServiceCheckCritical {
			return fmt.Errorf("%s is CRITICAL: %s", sc.Check, sc.Message)
		}
	}
	return nil
}

// noteFailures keeps the first failure of each instance, for the exit
// status.
func noteFailures(insts []*checkInstance, results []runResult) {
	for i, r := range results {
		if err := r.failure(); err != nil && insts[i].err == nil {
			insts[i].err = err
		}
	}
}

// runAll runs every instance once.
func runAll(insts []*checkInstance) []runResult {
	results := make([]runResult, len(insts))
	for i, in := range insts {
		rec := &check.Recorder{}
		err := in.chk.Run(rec)
		r := runResult{batch: rec.Last(), err: err, warnings: in.chk.Warnings(), state: "not started"}
		if err == nil && in.cp != nil {
			r.state = in.cp.Health().State.String()
		}
		results[i] = r
	}
	return results
}

// instanceErrors returns the first error of each instance that had one.
func instanceErrors(insts []*checkInstance) error {
	var errs []error
	for _, in := range insts {
		if in.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.name, in.err))
		}
	}
	return errors.Join(errs...)
}

// configure builds the instances from -c, or one default instance.
func (c *checker) configure(o *checkOptions) (insts []*checkInstance, fileWarnings []string, err error) {
	f := &confFile{name: "the default instance"}
	if o.config == "" {
		iface := o.iface
		if iface == "" {
			if iface, err = c.defaultRoute(); err != nil {
				return nil, nil, err
			}
		}
		b, err := yaml.Marshal(map[string]string{"interface": iface})
		if err != nil {
			return nil, nil, err
		}
		f.instances = []confInstance{{yaml: b}}
	} else {
		data, err := readConfFile(o.config)
		if err != nil {
			return nil, nil, err
		}
		if f, err = parseConfFile(o.config, data, o.iface); err != nil {
			return nil, nil, err
		}
	}
	var cfgs []*check.Config
	for i, y := range f.instances {
		in := &checkInstance{name: fmt.Sprintf("instances[%d]", i)}
		in.chk = &check.Check{NewCapture: c.openCapture(in)}
		if err := in.chk.Configure(y.yaml, f.initYAML); err != nil {
			if o.config == "" {
				return nil, nil, err
			}
			return nil, nil, f.configError(i, err)
		}
		insts = append(insts, in)
		cfgs = append(cfgs, in.chk.Config())
	}
	if err := f.duplicateInstances(cfgs); err != nil {
		return nil, nil, err
	}
	return insts, f.warnings, nil
}

// openCapture returns the NewCapture of in's check: it keeps the capture,
// whose state the report shows.
func (c *checker) openCapture(in *checkInstance) func(capture.LiveConfig) (check.Capture, error) {
	return func(cfg capture.LiveConfig) (check.Capture, error) {
		var cp check.Capture
		if c.newCapture != nil {
			var err error
			if cp, err = c.newCapture(cfg); err != nil {
				return nil, err
			}
		} else {
			l, err := capture.NewLive(cfg)
			if err != nil {
				return nil, err
			}
			cp = l
		}
		in.cp = cp
		return cp, nil
	}
}

// checkOutput prints the runs, as text or JSON.
type checkOutput struct {
	w, stderr io.Writer
	json      bool
	seen      map[string]bool // warnings already printed in JSON mode
}

// jsonDoc is the --json document of one run. check.Batch has the same
// shape, but it holds one instance.
type jsonDoc struct {
	Series           []check.Series             `json:"series"`
	HistogramBuckets []check.HistogramBucket    `json:"histogram_buckets"`
	ServiceChecks    []check.ServiceCheckResult `json:"service_checks"`
}

func (o *checkOutput) write(title string, insts []*checkInstance, results []runResult) error {
	var buf bytes.Buffer
	if o.json {
		doc := jsonDoc{Series: []check.Series{}, HistogramBuckets: []check.HistogramBucket{}, ServiceChecks: []check.ServiceCheckResult{}}
		for i, r := range results {
			doc.Series = append(doc.Series, r.batch.Series...)
			doc.HistogramBuckets = append(doc.HistogramBuckets, r.batch.HistogramBuckets...)
			doc.ServiceChecks = append(doc.ServiceChecks, r.batch.ServiceChecks...)
			for _, w := range r.warnings {
				msg := fmt.Sprintf("Warning: %s: %v\n", insts[i].name, w)
				if !o.seen[msg] {
					o.seen[msg] = true
					fmt.Fprint(o.stderr, msg)
				}
			}
		}
		if err := json.NewEncoder(&buf).Encode(doc); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(&buf, "=== %s ===\n", title)
		for i, r := range results {
			writeInstanceText(&buf, insts[i], r)
		}
		buf.WriteString("\n")
	}
	if _, err := o.w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("write the report: %w", err)
	}
	return nil
}

// peerColumns are the table's RTT columns and the metric of each.
var peerColumns = []struct{ name, metric string }{
	{"SAMPLES", check.MetricRTTSamples},
	{"LAST", check.MetricRTT},
	{"AVG", check.MetricRTTAvg},
	{"JITTER", check.MetricRTTJitter},
	{"MIN", check.MetricRTTMin},
	{"P50", check.MetricRTTP50},
	{"P95", check.MetricRTTP95},
	{"P99", check.MetricRTTP99},
	{"MAX", check.MetricRTTMax},
}

// tcpColumns are the TCP health table's columns, after the RTT ones in a
// peerRow.
var tcpColumns = []struct{ name, metric, sender string }{
	{"RETRANS", check.MetricRetransmits, ""},
	{"OPENED", check.MetricConnectionsOpened, ""},
	{"REFUSED", check.MetricConnectionsRefused, ""},
	{"TIMEOUTS", check.MetricConnectionTimeouts, ""},
	{"RST-LOCAL", check.MetricResets, "sender:local"},
	{"RST-REMOTE", check.MetricResets, "sender:remote"},
	{"ZERO-WIN", check.MetricZeroWindows, ""},
}

type peerRow struct {
	src, dst, service string
	vals              []float64 // peerColumns, then tcpColumns
	has               []bool
	bins, binCount    int64 // the distribution's buckets and their samples
}

// hasAny reports whether any of the row's columns from..to has a value.
func (p *peerRow) hasAny(from, to int) bool { return slices.Contains(p.has[from:to], true) }

// writeInstanceText writes one instance's part of a run, from what the
// check submitted.
func writeInstanceText(w io.Writer, in *checkInstance, r runResult) {
	cfg := in.chk.Config().Instance
	head := fmt.Sprintf("go_metro %s: interface %s", in.name, cfg.Interface)
	if cfg.Netns != "" {
		head += " in netns " + cfg.Netns
	}
	head += ", capture " + r.state
	fmt.Fprintf(w, "\n%s\n%s\n", head, strings.Repeat("-", len(head)))

	rows, telemetry := splitSeries(r.batch.Series, r.batch.HistogramBuckets)
	nRTT := len(peerColumns)
	if r.err == nil {
		var rtt, tcp []*peerRow
		for _, p := range rows {
			if p.hasAny(0, nRTT) {
				rtt = append(rtt, p)
			}
			if p.hasAny(nRTT, len(p.has)) {
				tcp = append(tcp, p)
			}
		}
		service := slices.ContainsFunc(rows, func(p *peerRow) bool { return p.service != "" })
		head := func(tw io.Writer) {
			fmt.Fprint(tw, "SRC\tDST\t")
			if service {
				fmt.Fprint(tw, "SERVICE\t")
			}
		}
		cells := func(tw io.Writer, p *peerRow) {
			fmt.Fprintf(tw, "%s\t%s\t", p.src, p.dst)
			if service {
				fmt.Fprintf(tw, "%s\t", cmp.Or(p.service, "-"))
			}
		}
		if len(rtt) == 0 {
			fmt.Fprintln(w, "  No RTT samples in this interval.")
		} else {
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			head(tw)
			for _, c := range peerColumns {
				fmt.Fprintf(tw, "%s\t", c.name)
			}
			fmt.Fprintln(tw, "DISTRIBUTION\t")
			for _, p := range rtt {
				cells(tw, p)
				for i, c := range peerColumns {
					switch {
					case !p.has[i]:
						fmt.Fprint(tw, "-\t")
					case c.metric == check.MetricRTTSamples:
						fmt.Fprintf(tw, "%.0f\t", p.vals[i])
					default:
						fmt.Fprintf(tw, "%.3f\t", p.vals[i])
					}
				}
				if p.bins > 0 {
					fmt.Fprintf(tw, "%d in %d bins\t\n", p.binCount, p.bins)
				} else {
					fmt.Fprint(tw, "-\t\n")
				}
			}
			tw.Flush()
			fmt.Fprintln(w, "  RTTs in ms. AVG is the smoothed RTT and JITTER the RTT variation (RFC 6298);")
			fmt.Fprintln(w, "  SAMPLES, MIN, P50 to P99 and MAX cover the interval. DISTRIBUTION: the samples of the")
			fmt.Fprintf(w, "  %s histogram buckets sent, and their number.\n", check.MetricRTTDistribution)
		}
		if len(tcp) > 0 {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
			head(tw)
			for _, c := range tcpColumns {
				fmt.Fprintf(tw, "%s\t", c.name)
			}
			fmt.Fprintln(tw)
			for _, p := range tcp {
				cells(tw, p)
				for i := range tcpColumns {
					if p.has[nRTT+i] {
						fmt.Fprintf(tw, "%.0f\t", p.vals[nRTT+i])
					} else {
						fmt.Fprint(tw, "-\t")
					}
				}
				fmt.Fprintln(tw)
			}
			tw.Flush()
			fmt.Fprintln(w, "  TCP counts of the interval (go_metro.tcp.*).")
		}
		if len(telemetry) > 0 {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
			for _, s := range telemetry {
				fmt.Fprintf(tw, "  %s\t%s\n", s.Metric, strconv.FormatFloat(s.Points[0][1], 'f', -1, 64))
			}
			tw.Flush()
		}
	}
	fmt.Fprintln(w)
	for _, sc := range r.batch.ServiceChecks {
		status := sc.Status.String()
		if status == "" {
			status = fmt.Sprintf("status %d", int(sc.Status))
		}
		line := fmt.Sprintf("  Service check %s: %s", sc.Check, status)
		if sc.Message != "" {
			line += ": " + sc.Message
		}
		fmt.Fprintln(w, line)
	}
	for _, wr := range r.warnings {
		fmt.Fprintf(w, "  Warning: %v\n", wr)
	}
	if r.err != nil {
		fmt.Fprintf(w, "  Error: %v\n", r.err)
	}
}

// splitSeries groups the per-peer series and histogram buckets into
// rows, one per peer and service, sorted by source, destination and
// service, and returns the other series, in order.
func splitSeries(series []check.Series, buckets []check.HistogramBucket) (rows []*peerRow, other []check.Series) {
	col := make(map[string]int, len(peerColumns)+len(tcpColumns))
	for i, c := range peerColumns {
		col[c.metric] = i
	}
	for i, c := range tcpColumns {
		col[c.metric+"\x00"+c.sender] = len(peerColumns) + i
	}
	byTags := map[string]*peerRow{}
	row := func(tags []string) *peerRow {
		var key []string
		for _, t := range tags {
			if !strings.HasPrefix(t, "sender:") {
				key = append(key, t)
			}
		}
		k := strings.Join(key, "\x00")
		p := byTags[k]
		if p == nil {
			n := len(peerColumns) + len(tcpColumns)
			p = &peerRow{vals: make([]float64, n), has: make([]bool, n)}
			var dir, port string
			for _, t := range tags {
				if v, ok := strings.CutPrefix(t, "src:"); ok {
					p.src = v
				} else if v, ok := strings.CutPrefix(t, "dst:"); ok {
					p.dst = v
				} else if v, ok := strings.CutPrefix(t, "direction:"); ok {
					dir = v
				} else if v, ok := strings.CutPrefix(t, "port:"); ok {
					port = v
				}
			}
			p.service = strings.Trim(dir+" "+port, " ")
			byTags[k] = p
			rows = append(rows, p)
		}
		return p
	}
	for _, s := range series {
		i, ok := col[s.Metric]
		if !ok {
			sender := ""
			for _, t := range s.Tags {
				if strings.HasPrefix(t, "sender:") {
					sender = t
				}
			}
			i, ok = col[s.Metric+"\x00"+sender]
		}
		if !ok || len(s.Points) == 0 {
			if len(s.Points) > 0 {
				other = append(other, s)
			}
			continue
		}
		p := row(s.Tags)
		p.vals[i], p.has[i] = s.Points[0][1], true
	}
	for _, b := range buckets {
		p := row(b.Tags)
		p.bins++
		p.binCount += b.Value
	}
	slices.SortStableFunc(rows, func(a, b *peerRow) int {
		return cmp.Or(compareAddrs(a.src, b.src), compareAddrs(a.dst, b.dst), strings.Compare(a.service, b.service))
	})
	return rows, other
}

// compareAddrs orders IP addresses numerically and anything else, such as
// host names, after them by name.
func compareAddrs(a, b string) int {
	x, errX := netip.ParseAddr(a)
	y, errY := netip.ParseAddr(b)
	switch {
	case errX == nil && errY == nil:
		return x.Compare(y)
	case errX == nil:
		return -1
	case errY == nil:
		return 1
	}
	return strings.Compare(a, b)
}

// Routing-table flags, from linux/route.h.
const (
	rtfUp     = 0x0001
	rtfReject = 0x0200
)

// parseRoute4 returns the interface of the IPv4 default route with the
// lowest metric in r, which holds /proc/net/route; "" when there is none.
func parseRoute4(r io.Reader) (string, error) {
	best, bestMetric := "", uint64(0)
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		f := strings.Fields(s.Text())
		if len(f) == 0 || line == 1 && f[0] == "Iface" {
			continue
		}
		// Iface Destination Gateway Flags RefCnt Use Metric Mask ...
		if len(f) < 8 {
			return "", fmt.Errorf("line %d: want at least 8 fields, have %d", line, len(f))
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil {
			return "", fmt.Errorf("line %d: invalid flags %q", line, f[3])
		}
		metric, err := strconv.ParseUint(f[6], 10, 32)
		if err != nil {
			return "", fmt.Errorf("line %d: invalid metric %q", line, f[6])
		}
		if f[1] != "00000000" || f[7] != "00000000" || flags&rtfUp == 0 || flags&rtfReject != 0 {
			continue
		}
		if best == "" || metric < bestMetric {
			best, bestMetric = f[0], metric
		}
	}
	return best, s.Err()
}

// parseRoute6 returns the interface of the IPv6 default route with the
// lowest metric in r, which holds /proc/net/ipv6_route; "" when there is
// none. The kernel's unreachable default route on lo does not count.
func parseRoute6(r io.Reader) (string, error) {
	best, bestMetric := "", uint64(0)
	s := bufio.NewScanner(r)
	for line := 1; s.Scan(); line++ {
		f := strings.Fields(s.Text())
		if len(f) == 0 {
			continue
		}
		// dst dst_len src src_len next_hop metric refcnt use flags iface
		if len(f) < 10 {
			return "", fmt.Errorf("line %d: want 10 fields, have %d", line, len(f))
		}
		metric, err := strconv.ParseUint(f[5], 16, 32)
		if err != nil {
			return "", fmt.Errorf("line %d: invalid metric %q", line, f[5])
		}
		flags, err := strconv.ParseUint(f[8], 16, 32)
		if err != nil {
			return "", fmt.Errorf("line %d: invalid flags %q", line, f[8])
		}
		if strings.Trim(f[0], "0") != "" || f[1] != "00" || flags&rtfUp == 0 || flags&rtfReject != 0 || f[9] == "lo" {
			continue
		}
		if best == "" || metric < bestMetric {
			best, bestMetric = f[9], metric
		}
	}
	return best, s.Err()
}
