package check_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/DataDog/datadog-agent/pkg/metrics/servicecheck"
	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

// The integration assets, in the layout of an integrations-core
// integration, relative to this package.
const (
	assetMetadataFile      = "../metadata.csv"
	assetServiceChecksFile = "../service_checks.json"
	assetConfExampleFile   = "../conf.d/go_metro.d/conf.yaml.example"
)

// assetRuntimeMetricsWired says whether assetWantMetrics includes the
// runtime metrics. TestAssetRuntimeMetricsWired fails when the check
// package grows a RuntimeMetrics function while this is false, so that the
// runtime metrics cannot be emitted without their metadata.csv rows.
const assetRuntimeMetricsWired = true

// assetWantMetrics returns every metric the code can emit, with its type:
// check.Metrics and check.RuntimeMetrics.
func assetWantMetrics() map[string]string {
	m := check.Metrics()
	maps.Copy(m, check.RuntimeMetrics())
	return m
}

// assetMetadataHeader is the header of integrations-core's metadata.csv.
const assetMetadataHeader = "metric_name,metric_type,interval,unit_name,per_unit_name,description,orientation,integration,short_name,curated_metric,sample_tags"

// assetValidMetricTypes are the metric types integrations-core accepts
// (ddev validate metadata).
var assetValidMetricTypes = []string{"count", "gauge", "rate", "distribution"}

// assetValidUnits is the part of integrations-core's VALID_UNIT_NAMES (the
// Datadog units catalog) that a network or Go runtime metric can use.
var assetValidUnits = []string{
	"bit", "byte", "kibibyte", "mebibyte", "gibibyte",
	"nanosecond", "microsecond", "millisecond", "second", "minute", "hour", "day", "week",
	"unix second", "unix millisecond",
	"fraction", "percent", "permille",
	"connection", "request", "response", "packet", "segment", "datagram", "frame", "message", "payload",
	"process", "thread", "core", "cpu", "file", "buffer", "page", "heap",
	"error", "timeout", "attempt", "success", "fault", "exception",
	"host", "node", "device", "entry", "item", "object", "record", "sample", "event", "occurrence",
	"operation", "invocation", "execution", "task", "worker", "instance", "unit", "time",
	"garbage collection", "hit", "miss", "eviction",
}

// assetTimeUnits may not be combined as unit and per-unit: integrations-core
// requires the fraction unit instead.
var assetTimeUnits = []string{"nanosecond", "microsecond", "millisecond", "second", "minute", "hour", "day", "week"}

// assetMetricRow is one row of metadata.csv.
type assetMetricRow struct {
	line                                   int
	name, typ, interval, unit, perUnit     string
	description, orientation, integration  string
	shortName, curatedMetric, sampleTagsIn string
}

func (r assetMetricRow) sampleTags() []string {
	if r.sampleTagsIn == "" {
		return nil
	}
	return strings.Split(r.sampleTagsIn, ",")
}

// assetReadMetadataRecords reads metadata.csv with integrations-core's
// rules: the exact header line, then rows with every column.
func assetReadMetadataRecords(tb testing.TB) ([][]string, []byte) {
	tb.Helper()
	data, err := os.ReadFile(assetMetadataFile)
	if err != nil {
		tb.Fatalf("read metadata.csv: %v", err)
	}
	header, _, _ := strings.Cut(string(data), "\n")
	if header != assetMetadataHeader {
		tb.Fatalf("metadata.csv header:\n got %q\nwant %q", header, assetMetadataHeader)
	}
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = strings.Count(assetMetadataHeader, ",") + 1
	records, err := r.ReadAll()
	if err != nil {
		tb.Fatalf("parse metadata.csv: %v", err)
	}
	if len(records) < 2 {
		tb.Fatal("metadata.csv has no metric rows")
	}
	return records, data
}

// assetReadMetadata returns the rows of metadata.csv.
func assetReadMetadata(tb testing.TB) []assetMetricRow {
	tb.Helper()
	records, _ := assetReadMetadataRecords(tb)
	var rows []assetMetricRow
	for i, f := range records[1:] {
		rows = append(rows, assetMetricRow{
			line: i + 2, name: f[0], typ: f[1], interval: f[2], unit: f[3], perUnit: f[4],
			description: f[5], orientation: f[6], integration: f[7],
			shortName: f[8], curatedMetric: f[9], sampleTagsIn: f[10],
		})
	}
	return rows
}

func assetIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

var (
	// assetMetricNameRE is a metric name the Datadog backend keeps as it is
	// (ddev's normalize_metric_name leaves it unchanged).
	assetMetricNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]*(\.[a-zA-Z0-9][a-zA-Z0-9_]*)*$`)
	assetTagKeyRE     = regexp.MustCompile(`^[a-z][a-z0-9_.]*$`)
)

// TestAssetMetadataFormat checks every row of metadata.csv against the
// rules of integrations-core's `ddev validate metadata`, and this
// integration's own: a unit on every row, RTT gauges in milliseconds.
func TestAssetMetadataFormat(t *testing.T) {
	// The layout ddev writes (Python's csv module): LF line ends, a final
	// newline, and quotes only around fields that need them.
	records, data := assetReadMetadataRecords(t)
	var layout bytes.Buffer
	w := csv.NewWriter(&layout)
	if err := w.WriteAll(records); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(layout.String(), string(data)); diff != "" {
		t.Errorf("metadata.csv is not laid out as integrations-core's: LF line ends, quotes only where needed (-want +got):\n%s", diff)
	}

	rows := assetReadMetadata(t)
	seen := map[string]bool{}
	for i, r := range rows {
		where := fmt.Sprintf("metadata.csv:%d %s", r.line, r.name)
		if !assetMetricNameRE.MatchString(r.name) {
			t.Errorf("%s: metric name is not normalized", where)
		}
		if seen[r.name] {
			t.Errorf("%s: duplicate metric_name", where)
		}
		seen[r.name] = true
		if i > 0 && rows[i-1].name > r.name {
			t.Errorf("%s: rows are not sorted by metric_name (after %s)", where, rows[i-1].name)
		}
		if !slices.Contains(assetValidMetricTypes, r.typ) {
			t.Errorf("%s: metric_type %q, want one of %v", where, r.typ, assetValidMetricTypes)
		}
		if r.interval != "" {
			if _, err := strconv.Atoi(r.interval); err != nil {
				t.Errorf("%s: interval %q is not an integer", where, r.interval)
			}
		}
		if r.unit == "" {
			t.Errorf("%s: unit_name is empty", where)
		} else if !slices.Contains(assetValidUnits, r.unit) {
			t.Errorf("%s: unit_name %q is not a Datadog unit", where, r.unit)
		}
		if r.perUnit != "" && !slices.Contains(assetValidUnits, r.perUnit) {
			t.Errorf("%s: per_unit_name %q is not a Datadog unit", where, r.perUnit)
		}
		if slices.Contains(assetTimeUnits, r.unit) && slices.Contains(assetTimeUnits, r.perUnit) {
			t.Errorf("%s: unit %s/%s: use the fraction unit instead", where, r.unit, r.perUnit)
		}
		switch {
		case r.description == "":
			t.Errorf("%s: description is empty", where)
		case len(r.description) > 400:
			t.Errorf("%s: description is %d characters, more than 400", where, len(r.description))
		case strings.Contains(r.description, "|"):
			t.Errorf("%s: description contains a |", where)
		}
		for col, v := range map[string]string{"metric_name": r.name, "description": r.description, "short_name": r.shortName, "sample_tags": r.sampleTagsIn} {
			if !assetIsASCII(v) {
				t.Errorf("%s: %s is not ASCII: %q", where, col, v)
			}
		}
		if !slices.Contains([]string{"-1", "0", "1"}, r.orientation) {
			t.Errorf("%s: orientation %q, want -1, 0 or 1", where, r.orientation)
		}
		if r.integration != check.Name {
			t.Errorf("%s: integration %q, want %q", where, r.integration, check.Name)
		}
		if r.shortName == "" {
			t.Errorf("%s: short_name is empty", where)
		}
		if r.curatedMetric != "" && r.curatedMetric != "cpu" && r.curatedMetric != "memory" {
			t.Errorf("%s: curated_metric %q, want empty, cpu or memory", where, r.curatedMetric)
		}
		for _, k := range r.sampleTags() {
			if !assetTagKeyRE.MatchString(k) {
				t.Errorf("%s: sample_tags entry %q is not a tag key", where, k)
			}
		}
		if strings.HasPrefix(r.name, "system.net.tcp.rtt") && r.typ == check.TypeGauge {
			if r.unit != "millisecond" || r.orientation != "-1" {
				t.Errorf("%s: an RTT gauge has unit millisecond and orientation -1, got %q and %s", where, r.unit, r.orientation)
			}
		}
	}
}

// TestAssetMetadataMatchesCode fails when the code can emit a metric that
// metadata.csv lacks, when metadata.csv lists a metric the code cannot
// emit, or when their types differ.
func TestAssetMetadataMatchesCode(t *testing.T) {
	got := map[string]string{}
	for _, r := range assetReadMetadata(t) {
		got[r.name] = r.typ
	}
	if diff := cmp.Diff(assetWantMetrics(), got); diff != "" {
		t.Errorf("metadata.csv metrics and types differ from the code's (-code +metadata.csv):\n%s", diff)
	}
}

// TestAssetRuntimeMetricsWired fails when the check package defines
// RuntimeMetrics but this test does not compare it with metadata.csv yet.
func TestAssetRuntimeMetricsWired(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := ""
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, d := range f.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && fd.Name.Name == "RuntimeMetrics" {
				found = name
			}
		}
	}
	if found != "" && !assetRuntimeMetricsWired {
		t.Errorf("check.RuntimeMetrics is defined in %s, but assetWantMetrics does not include it: merge it there, add its rows to metadata.csv and set assetRuntimeMetricsWired", found)
	}
}

// assetCapture is a Capture with a fixed health and one peer.
type assetCapture struct {
	health capture.Health
	peers  []capture.PeerStats
}

func (c *assetCapture) Start() error { return nil }
func (c *assetCapture) Stop()        {}
func (c *assetCapture) Drain(dst []capture.PeerStats) []capture.PeerStats {
	return append(dst, c.peers...)
}
func (c *assetCapture) Health() capture.Health { return c.health }
func (c *assetCapture) Peers() *capture.Peers  { return nil }

// assetInstanceTags are the instance tags of assetRun's configuration.
var assetInstanceTags = []string{"env:prod", "team:net"}

// assetRun configures a check in the Agent's mode with the capture cp (or
// the error openErr when it cannot be opened), runs it once and returns
// what it submitted.
func assetRun(tb testing.TB, cp *assetCapture, openErr error) check.Batch {
	tb.Helper()
	c := &check.Check{
		InAgent: true,
		NewCapture: func(capture.LiveConfig) (check.Capture, error) {
			if openErr != nil {
				return nil, openErr
			}
			return cp, nil
		},
		StartWait: time.Millisecond,
	}
	instance := "interface: eth0\ntags: [" + strings.Join(assetInstanceTags, ", ") + "]\n"
	if err := c.Configure([]byte(instance), nil); err != nil {
		tb.Fatalf("Configure: %v", err)
	}
	defer c.Cancel()
	var rec check.Recorder
	_ = c.Run(&rec)
	checkUnique(tb, &rec)
	return rec.Last()
}

func assetTagKeys(tags []string) []string {
	var keys []string
	for _, tag := range tags {
		if slices.Contains(assetInstanceTags, tag) {
			continue
		}
		k, _, _ := strings.Cut(tag, ":")
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// TestAssetMetadataEmitted runs the check and compares what it really
// submits with metadata.csv: every metric listed and emitted with its
// type, and tagged with exactly its sample_tags besides the instance tags
// (which the check or, in the Agent, the sender adds).
func TestAssetMetadataEmitted(t *testing.T) {
	rows := map[string]assetMetricRow{}
	for _, r := range assetReadMetadata(t) {
		rows[r.name] = r
	}
	cp := &assetCapture{
		health: capture.Health{State: capture.StateCapturing},
		peers: []capture.PeerStats{{
			PeerKey: capture.AddrPeer(netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")),
			Count:   3, Last: 10 * time.Millisecond, Min: 9 * time.Millisecond, Max: 11 * time.Millisecond,
			SRTT: 10 * time.Millisecond, RTTVar: time.Millisecond,
			P50: 10 * time.Millisecond, P95: 11 * time.Millisecond, P99: 11 * time.Millisecond,
			Buckets: []capture.Bucket{{Lower: 9 * time.Millisecond, Upper: 9 * time.Millisecond, Count: 1}, {Lower: 10 * time.Millisecond, Upper: 11 * time.Millisecond, Count: 2}},
			TCP:     capture.TCPCounts{Retransmits: 1, ResetsRemote: 1},
		}},
	}
	b := assetRun(t, cp, nil)
	emitted := map[string]bool{}
	for _, h := range b.HistogramBuckets {
		emitted[h.Metric] = true
		r, ok := rows[h.Metric]
		if !ok {
			t.Errorf("the check emitted %s, which metadata.csv lacks", h.Metric)
			continue
		}
		if r.typ != check.TypeDistribution {
			t.Errorf("the check emitted %s as histogram buckets (a distribution), metadata.csv says %s", h.Metric, r.typ)
		}
		want := slices.Sorted(slices.Values(r.sampleTags()))
		if diff := cmp.Diff(want, assetTagKeys(h.Tags)); diff != "" {
			t.Errorf("%s: tag keys besides the instance tags differ from sample_tags (-metadata.csv +emitted):\n%s", h.Metric, diff)
		}
	}
	for _, s := range b.Series {
		emitted[s.Metric] = true
		r, ok := rows[s.Metric]
		if !ok {
			t.Errorf("the check emitted %s, which metadata.csv lacks", s.Metric)
			continue
		}
		if s.Type != r.typ {
			t.Errorf("the check emitted %s as a %s, metadata.csv says %s", s.Metric, s.Type, r.typ)
		}
		want := slices.Sorted(slices.Values(r.sampleTags()))
		if diff := cmp.Diff(want, assetTagKeys(s.Tags)); diff != "" {
			t.Errorf("%s: tag keys besides the instance tags differ from sample_tags (-metadata.csv +emitted):\n%s", s.Metric, diff)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(check.Metrics())) {
		if !emitted[name] {
			t.Errorf("check.Metrics lists %s, but a run with a capturing interface and one peer did not emit it", name)
		}
	}
}

// assetServiceCheck is one entry of service_checks.json, with its fields
// in integrations-core's order.
type assetServiceCheck struct {
	AgentVersion string   `json:"agent_version"`
	Integration  string   `json:"integration"`
	Check        string   `json:"check"`
	Statuses     []string `json:"statuses"`
	Groups       []string `json:"groups"`
	Name         string   `json:"name"`
	Description  string   `json:"description"`
}

func assetReadServiceChecks(tb testing.TB) ([]assetServiceCheck, []byte) {
	tb.Helper()
	data, err := os.ReadFile(assetServiceChecksFile)
	if err != nil {
		tb.Fatalf("read service_checks.json: %v", err)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		tb.Fatalf("parse service_checks.json: %v", err)
	}
	required := []string{"agent_version", "check", "description", "groups", "integration", "name", "statuses"}
	for i, m := range raw {
		if diff := cmp.Diff(required, slices.Sorted(maps.Keys(m))); diff != "" {
			tb.Errorf("service_checks.json entry %d: attributes differ from integrations-core's (-want +got):\n%s", i, diff)
		}
	}
	var scs []assetServiceCheck
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&scs); err != nil {
		tb.Fatalf("parse service_checks.json: %v", err)
	}
	return scs, data
}

// TestAssetServiceChecks checks service_checks.json against the schema of
// integrations-core's `ddev validate service-checks` and against the code.
func TestAssetServiceChecks(t *testing.T) {
	scs, data := assetReadServiceChecks(t)
	if len(scs) != 1 {
		t.Fatalf("service_checks.json has %d service checks, want 1 (%s)", len(scs), check.ServiceCheckName)
	}
	sc := scs[0]
	if sc.Check != check.ServiceCheckName {
		t.Errorf("check %q, want check.ServiceCheckName %q", sc.Check, check.ServiceCheckName)
	}
	if sc.Integration != check.Name {
		t.Errorf("integration %q, want check.Name %q", sc.Integration, check.Name)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(sc.AgentVersion) {
		t.Errorf("agent_version %q is not a version X.Y.Z", sc.AgentVersion)
	}
	if diff := cmp.Diff([]string{"ok", "warning", "critical"}, sc.Statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
	for _, g := range []string{"host", "iface"} {
		if !slices.Contains(sc.Groups, g) {
			t.Errorf("groups %v lack %q", sc.Groups, g)
		}
	}
	if sc.Name == "" || !assetIsASCII(sc.Name) {
		t.Errorf("name %q is empty or not ASCII", sc.Name)
	}
	for _, s := range []string{"Returns OK", "Returns WARNING", "Returns CRITICAL"} {
		if !strings.Contains(sc.Description, s) {
			t.Errorf("description does not say when it %s", strings.ToLower(s))
		}
	}
	if !assetIsASCII(sc.Description) {
		t.Errorf("description is not ASCII")
	}
	// The layout of ddev's json.dumps(data, indent=4) with a final newline.
	var want bytes.Buffer
	enc := json.NewEncoder(&want)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "    ")
	if err := enc.Encode(scs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.String(), string(data)); diff != "" {
		t.Errorf("service_checks.json is not laid out as integrations-core's, 4-space indent and fields in schema order (-want +got):\n%s", diff)
	}
}

// TestAssetServiceCheckEmitted runs the check into each state and checks
// that the service check it submits is the documented one: its name, a
// listed status, and tags whose keys are in groups besides the instance
// tags.
func TestAssetServiceCheckEmitted(t *testing.T) {
	scs, _ := assetReadServiceChecks(t)
	if len(scs) == 0 {
		t.Fatal("service_checks.json is empty")
	}
	sc := scs[0]
	tests := []struct {
		name    string
		cp      *assetCapture
		openErr error
		want    servicecheck.ServiceCheckStatus
	}{
		{name: "capturing", cp: &assetCapture{health: capture.Health{State: capture.StateCapturing}}, want: servicecheck.ServiceCheckOK},
		{name: "kernel-drops", cp: &assetCapture{health: capture.Health{State: capture.StateCapturing, KernelDrops: 5}}, want: servicecheck.ServiceCheckWarning},
		{name: "unresolved-host", cp: &assetCapture{health: capture.Health{State: capture.StateCapturing, Unresolved: []string{"db.example"}}}, want: servicecheck.ServiceCheckWarning},
		{name: "retrying", cp: &assetCapture{health: capture.Health{State: capture.StateRetrying, LastError: capture.ErrPermission}}, want: servicecheck.ServiceCheckCritical},
		{name: "cannot-open", openErr: errors.New("capture on eth0: operation not permitted"), want: servicecheck.ServiceCheckCritical},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := assetRun(t, tt.cp, tt.openErr)
			if len(b.ServiceChecks) != 1 {
				t.Fatalf("the check submitted %d service checks, want 1", len(b.ServiceChecks))
			}
			got := b.ServiceChecks[0]
			if got.Check != sc.Check {
				t.Errorf("service check %q, service_checks.json says %q", got.Check, sc.Check)
			}
			if got.Status != tt.want {
				t.Errorf("status %v, want %v", got.Status, tt.want)
			}
			if !slices.Contains(sc.Statuses, strings.ToLower(got.Status.String())) {
				t.Errorf("status %v is not listed in statuses %v", got.Status, sc.Statuses)
			}
			for _, k := range assetTagKeys(got.Tags) {
				if !slices.Contains(sc.Groups, k) {
					t.Errorf("tag key %q of the service check is not in groups %v", k, sc.Groups)
				}
			}
		})
	}
}

// assetParam is one `## @param` line of conf.yaml.example.
type assetParam struct {
	line       int
	section    string // "init_config" or "instances"
	name, typ  string
	required   bool
	defaultVal string // "" when none is documented
	doc        string // the description lines, joined
}

var (
	assetParamRE = regexp.MustCompile(`^\s*## @param (\S+) - (.+?) - (required|optional)(?: - default: (.+))?$`)
	// assetParamTypeRE is a type as integrations-core's example renderer
	// writes it.
	assetParamTypeRE = regexp.MustCompile(`^(string|integer|number|boolean|mapping|list of strings|list of integers|list of mappings)$`)
	// assetCommentedRE is a commented-out example line: one # then a space.
	assetCommentedRE = regexp.MustCompile(`^(\s*)# (.*)$`)
)

// assetReadConfExample returns conf.yaml.example and its @param lines.
func assetReadConfExample(tb testing.TB) ([]byte, []assetParam) {
	tb.Helper()
	data, err := os.ReadFile(assetConfExampleFile)
	if err != nil {
		tb.Fatalf("read conf.yaml.example: %v", err)
	}
	var params []assetParam
	section := ""
	inDoc := false // reading the description lines of the last @param
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "init_config:"):
			section = "init_config"
		case strings.HasPrefix(line, "instances:"):
			section = "instances"
		}
		if inDoc {
			if text, ok := strings.CutPrefix(strings.TrimSpace(line), "##"); ok {
				params[len(params)-1].doc += strings.TrimSpace(text) + " "
				continue
			}
			inDoc = false
		}
		if strings.Contains(line, "@param") {
			m := assetParamRE.FindStringSubmatch(line)
			if m == nil {
				tb.Errorf("conf.yaml.example:%d: malformed @param line, want `## @param NAME - TYPE - required|optional[ - default: X]`: %q", n, line)
				continue
			}
			if section == "" {
				tb.Errorf("conf.yaml.example:%d: @param %s is outside init_config and instances", n, m[1])
				continue
			}
			params = append(params, assetParam{line: n, section: section, name: m[1], typ: m[2], required: m[3] == "required", defaultVal: m[4]})
			inDoc = true
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return data, params
}

// assetUncomment turns every commented-out example line into YAML, the
// way a user enables an option: "    # key: value" becomes "    key: value".
// Documentation lines (##) and bare # lines stay.
func assetUncomment(data []byte) []byte {
	var out bytes.Buffer
	for line := range strings.Lines(string(data)) {
		out.WriteString(assetCommentedRE.ReplaceAllString(strings.TrimSuffix(line, "\n"), "$1$2"))
		out.WriteByte('\n')
	}
	return out.Bytes()
}

// assetSections splits a conf.yaml into its init_config YAML and the YAML
// of each instance, and returns the keys of each section.
func assetSections(tb testing.TB, data []byte) (initYAML []byte, instances [][]byte, initKeys []string, instanceKeys [][]string) {
	tb.Helper()
	var doc struct {
		InitConfig yaml.Node   `yaml:"init_config"`
		Instances  []yaml.Node `yaml:"instances"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		tb.Fatalf("parse YAML: %v", err)
	}
	if doc.InitConfig.Kind == 0 || len(doc.Instances) == 0 {
		tb.Fatal("the file lacks init_config or instances")
	}
	keys := func(n *yaml.Node) []string {
		var m map[string]yaml.Node
		if err := n.Decode(&m); err != nil {
			tb.Fatalf("decode section: %v", err)
		}
		return slices.Sorted(maps.Keys(m))
	}
	var err error
	if initYAML, err = yaml.Marshal(&doc.InitConfig); err != nil {
		tb.Fatal(err)
	}
	initKeys = keys(&doc.InitConfig)
	for i := range doc.Instances {
		b, err := yaml.Marshal(&doc.Instances[i])
		if err != nil {
			tb.Fatal(err)
		}
		instances = append(instances, b)
		instanceKeys = append(instanceKeys, keys(&doc.Instances[i]))
	}
	return initYAML, instances, initKeys, instanceKeys
}

// assetDaemonOnly reports whether p documents a key of the standalone
// daemon that the Agent ignores.
func assetDaemonOnly(p assetParam) bool {
	return strings.Contains(p.doc, "Used only by the standalone `go-metro run` daemon; ignored (with a warning) in the Agent")
}

// assetAgentOnly reports whether conf.yaml.example documents p as a key
// that has an effect only inside the Agent.
func assetAgentOnly(p assetParam) bool {
	return strings.Contains(p.doc, "Used only inside the Agent; ignored (with a warning) by `go-metro check` and `go-metro run`")
}

// TestAssetConfExampleDocumentsEveryKey fails when a key the check knows
// (check.ConfigKeys) has no @param in conf.yaml.example, or when the file
// documents a key the check does not know, in either section.
func TestAssetConfExampleDocumentsEveryKey(t *testing.T) {
	_, params := assetReadConfExample(t)
	bySection := map[string][]string{}
	for _, p := range params {
		if slices.Contains(bySection[p.section], p.name) {
			t.Errorf("conf.yaml.example:%d: @param %s is documented twice in %s", p.line, p.name, p.section)
		}
		bySection[p.section] = append(bySection[p.section], p.name)
		if !assetParamTypeRE.MatchString(p.typ) {
			t.Errorf("conf.yaml.example:%d: @param %s has type %q, not one of integrations-core's", p.line, p.name, p.typ)
		}
		if strings.TrimSpace(p.doc) == "" {
			t.Errorf("conf.yaml.example:%d: @param %s has no description", p.line, p.name)
		}
		if !assetIsASCII(p.doc) {
			t.Errorf("conf.yaml.example:%d: @param %s: description is not ASCII", p.line, p.name)
		}
	}
	initKeys, instanceKeys := check.ConfigKeys()
	for _, s := range []struct {
		section string
		keys    []string
	}{{"init_config", initKeys}, {"instances", instanceKeys}} {
		want := slices.Sorted(slices.Values(s.keys))
		got := slices.Sorted(slices.Values(bySection[s.section]))
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: keys documented with @param differ from check.ConfigKeys (-code +conf.yaml.example):\n%s", s.section, diff)
		}
	}
	for _, p := range params {
		if p.name == "expired_ttl" && !strings.Contains(p.doc, "alias of `exp_ttl`") {
			t.Errorf("conf.yaml.example:%d: expired_ttl is not documented as the legacy alias of `exp_ttl`", p.line)
		}
	}
}

// TestAssetConfExampleParses parses conf.yaml.example with check.ParseConfig
// as it is and with every example uncommented: both must validate, every
// uncommented key must be a documented one, and the Agent must warn about
// exactly the keys documented as the daemon's.
func TestAssetConfExampleParses(t *testing.T) {
	data, params := assetReadConfExample(t)

	t.Run("as-is", func(t *testing.T) {
		initYAML, instances, _, instanceKeys := assetSections(t, data)
		for i, inst := range instances {
			cfg, err := check.ParseConfig(inst, initYAML, true)
			if err != nil {
				t.Fatalf("instance %d: ParseConfig: %v", i, err)
			}
			if len(cfg.Warnings) > 0 {
				t.Errorf("instance %d: warnings in the Agent: %q", i, cfg.Warnings)
			}
			for _, p := range params {
				if p.section == "instances" && p.required && !slices.Contains(instanceKeys[i], p.name) {
					t.Errorf("instance %d: required key %s is not set", i, p.name)
				}
			}
		}
	})

	t.Run("uncommented", func(t *testing.T) {
		initYAML, instances, initKeys, instanceKeys := assetSections(t, assetUncomment(data))
		var docInit, docInstance, daemon, agentOnly []string
		for _, p := range params {
			if p.section == "init_config" {
				docInit = append(docInit, p.name)
			} else {
				docInstance = append(docInstance, p.name)
			}
			if assetDaemonOnly(p) {
				daemon = append(daemon, p.name)
			}
			if assetAgentOnly(p) {
				agentOnly = append(agentOnly, p.name)
			}
		}
		slices.Sort(docInit)
		slices.Sort(docInstance)
		if diff := cmp.Diff(docInit, initKeys); diff != "" {
			t.Errorf("init_config: every documented key needs an example (-@param +example keys):\n%s", diff)
		}
		if len(instances) != 1 {
			t.Fatalf("%d instances, want 1", len(instances))
		}
		if diff := cmp.Diff(docInstance, instanceKeys[0]); diff != "" {
			t.Errorf("instances: every documented key needs an example (-@param +example keys):\n%s", diff)
		}

		cfg, err := check.ParseConfig(instances[0], initYAML, false)
		if err != nil {
			t.Fatalf("ParseConfig (daemon): %v", err)
		}
		var warned []string
		for _, w := range cfg.Warnings {
			k, _, _ := strings.Cut(strings.TrimPrefix(w, "instance key `"), "`")
			warned = append(warned, k)
		}
		if diff := cmp.Diff(agentOnly, warned); diff != "" {
			t.Errorf("outside the Agent, want a warning for each key documented as the Agent's only (-documented +warned):\n%s\nwarnings: %q", diff, cfg.Warnings)
		}

		cfg, err = check.ParseConfig(instances[0], initYAML, true)
		if err != nil {
			t.Fatalf("ParseConfig (Agent): %v", err)
		}
		if len(cfg.Warnings) != len(daemon) {
			t.Errorf("%d warnings in the Agent, want one for each daemon key %v: %q", len(cfg.Warnings), daemon, cfg.Warnings)
		}
		for _, w := range cfg.Warnings {
			if strings.Contains(w, "unknown") {
				t.Errorf("unknown-key warning: %s", w)
			}
			if !slices.ContainsFunc(daemon, func(k string) bool { return strings.Contains(w, "`"+k+"`") }) {
				t.Errorf("warning about a key not documented as the daemon's: %s", w)
			}
		}
		for _, k := range daemon {
			if !slices.ContainsFunc(cfg.Warnings, func(w string) bool { return strings.Contains(w, "`"+k+"`") }) {
				t.Errorf("%s is documented as ignored in the Agent, but the Agent does not warn about it", k)
			}
		}
	})
}

// TestAssetConfExampleDefaults checks the documented defaults against what
// ParseConfig does when the keys are absent.
func TestAssetConfExampleDefaults(t *testing.T) {
	_, params := assetReadConfExample(t)
	cfg, err := check.ParseConfig([]byte("interface: eth0\n"), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	ringSize := cfg.Capture.RingSize
	if ringSize == 0 {
		ringSize = capture.DefaultRingSize
	}
	methods := cfg.Capture.Engine.Methods
	if methods == 0 {
		methods = capture.AllMethods
	}
	var methodNames []string
	for m := range capture.Method(capture.NumMethods) {
		if methods.Has(m) {
			methodNames = append(methodNames, m.String())
		}
	}
	want := map[string]string{
		"snaplen":                 strconv.Itoa(cfg.Init.Snaplen),
		"idle_ttl":                strconv.Itoa(cfg.Init.IdleTTL),
		"exp_ttl":                 strconv.Itoa(cfg.Init.ExpTTL),
		"expired_ttl":             strconv.Itoa(cfg.Init.ExpTTL),
		"max_flows":               strconv.Itoa(cfg.Init.MaxFlows),
		"runtime_metrics":         strconv.FormatBool(cfg.Init.RuntimeMetrics),
		"log_to_file":             strconv.FormatBool(cfg.Init.LogToFile),
		"log_level":               cfg.Init.LogLevel,
		"min_collection_interval": strconv.Itoa(int(cfg.Interval / time.Second)),
		"ring_size":               strconv.Itoa(ringSize),
		"methods":                 "[" + strings.Join(methodNames, ", ") + "]",
	}
	got := map[string]string{}
	for _, p := range params {
		if _, ok := want[p.name]; ok {
			got[p.name] = p.defaultVal
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("documented defaults differ from ParseConfig's (-code +conf.yaml.example):\n%s", diff)
	}
}

// TestAssetConfExampleMatchesSeed checks that conf.yaml.example, with its
// examples uncommented, carries the values of the integration page's
// example, and that this example validates.
func TestAssetConfExampleMatchesSeed(t *testing.T) {
	data, _ := assetReadConfExample(t)
	type conf struct {
		InitConfig map[string]any   `yaml:"init_config"`
		Instances  []map[string]any `yaml:"instances"`
	}
	var seed, example conf
	if err := yaml.Unmarshal(integrationPageExample(t), &seed); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(assetUncomment(data), &example); err != nil {
		t.Fatal(err)
	}
	for k, v := range seed.InitConfig {
		if diff := cmp.Diff(v, example.InitConfig[k]); diff != "" {
			t.Errorf("init_config %s (-seed +conf.yaml.example):\n%s", k, diff)
		}
	}
	for k, v := range seed.Instances[0] {
		if diff := cmp.Diff(v, example.Instances[0][k]); diff != "" {
			t.Errorf("instances %s (-seed +conf.yaml.example):\n%s", k, diff)
		}
	}

	initYAML, instances, _, _ := assetSections(t, integrationPageExample(t))
	cfg, err := check.ParseConfig(instances[0], initYAML, false)
	if err != nil {
		t.Fatalf("ParseConfig: %v", err)
	}
	if len(cfg.Warnings) > 0 {
		t.Errorf("warnings in the daemon: %q", cfg.Warnings)
	}
}
