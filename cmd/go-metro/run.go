package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/DataDog/datadog-go/v5/statsd"
	"gopkg.in/yaml.v3"

	"github.com/go-metro/go-metro/capture"
	"github.com/go-metro/go-metro/check"
)

const runUsage = `Usage: go-metro run -c FILE

Runs the go_metro check as a daemon beside the Datadog Agent, as go-metro
ran beside Agent 5, and sends what it measures to DogStatsD. Every
instance of FILE captures on its own and runs on its own schedule, every
min_collection_interval seconds (15 unless set).

FILE is a conf.yaml with init_config and instances, as "go-metro check -c"
reads, of at most 1 MiB; go-metro's Agent 5 files work as they are.

DogStatsD is reached, in order of precedence, at:
  statsd_ip and statsd_port of init_config, when either is in FILE
      (the other defaults to 127.0.0.1 or 8125);
  DD_DOGSTATSD_URL: udp://host:port, unix:///path/to/dsd.socket,
      unixgram:///path/to/dsd.socket;
  DD_AGENT_HOST and DD_DOGSTATSD_PORT;
  127.0.0.1:8125.
A host name that does not resolve yet is tried again on every interval.

Logs follow log_level (info unless set) and go to standard error, or with
log_to_file: true to log_file (default /var/log/datadog/go-metro.log); when
the file cannot be written, to standard error, with a note that says so.

SIGINT and SIGTERM stop it: the captures stop and what is pending is sent.
SIGHUP reloads FILE and reopens the log file; when the new configuration
is invalid, the running one stays and the log says why.

Capturing needs CAP_NET_RAW: run it from a systemd unit with
AmbientCapabilities=CAP_NET_RAW (see packaging/go-metro.service), or
setcap cap_net_raw+ep /path/to/go-metro.

Exit status: 0 when stopped by a signal; 1 when FILE is invalid at start,
or on a second signal while stopping; 2 for a usage error.

Options:
`

// runCmd is go-metro run.
func runCmd(args []string, _, stderr io.Writer) error {
	// Room for a SIGTERM that follows a burst of SIGHUPs.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	d := &daemon{stderr: stderr, getenv: os.Getenv, signals: sigs}
	return d.main(context.Background(), args)
}

func parseRunFlags(args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, runUsage)
		fs.PrintDefaults()
	}
	path := fs.String("c", "", "read the configuration from `FILE`, a conf.yaml (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return "", fmt.Errorf("%w: unexpected argument %q: go-metro run takes only options", errUsage, fs.Arg(0))
	case *path == "":
		return "", fmt.Errorf("%w: no configuration: pass -c FILE, such as -c /etc/go-metro/go-metro.yaml", errUsage)
	}
	return *path, nil
}

// daemon is go-metro run. Its fields are what tests replace.
type daemon struct {
	stderr io.Writer
	getenv func(string) string
	// signals delivers SIGINT, SIGTERM and SIGHUP.
	signals <-chan os.Signal
	// newCapture opens each instance's capture; nil means capture.NewLive.
	newCapture func(capture.LiveConfig) (check.Capture, error)
	// statsdOptions are added to the DogStatsD client's options.
	statsdOptions []statsd.Option
	// newStatsdClient creates the DogStatsD client; nil means statsd.New.
	newStatsdClient func(string, ...statsd.Option) (*statsd.Client, error)
	// defaultLogFile is the log file when log_to_file is true and
	// log_file is absent; "" means /var/log/datadog/go-metro.log.
	defaultLogFile string

	log *daemonLog
}

// daemonConfig is a loaded configuration, ready to start.
type daemonConfig struct {
	path      string
	init      check.InitConfig
	instances []*daemonInstance
	addr      string // DogStatsD
	addrFrom  string // where addr came from
	logs      *logSettings
	sender    *statsdSender
}

// daemonInstance is one configured instance.
type daemonInstance struct {
	name string // instances[i]
	chk  *check.Check
}

// main runs the daemon until ctx is done or a signal stops it.
func (d *daemon) main(ctx context.Context, args []string) error {
	path, err := parseRunFlags(args, d.stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	d.log = newDaemonLog(d.stderr)
	defer d.log.close()
	log := d.log.logger

	cfg, err := d.load(path)
	if err != nil {
		return err
	}
	d.log.apply(cfg.logs)
	g := d.start(cfg)
	for {
		var sig os.Signal
		select {
		case <-ctx.Done():
		case sig = <-d.signals:
		}
		if sig == syscall.SIGHUP {
			next, err := d.load(path)
			if err != nil {
				d.log.reopen()
				log.Error("reload failed: the running configuration stays", "config", path, "error", err)
				continue
			}
			log.Info("reloading", "config", path)
			g.stop()
			d.log.apply(next.logs)
			g = d.start(next)
			continue
		}
		if sig != nil {
			log.Info("stopping", "signal", sig.String())
		} else {
			log.Info("stopping")
		}
		return d.stop(g)
	}
}

// stop stops g; a second SIGINT or SIGTERM meanwhile makes it give up.
func (d *daemon) stop(g *generation) error {
	done := make(chan struct{})
	go func() {
		g.stop()
		close(done)
	}()
	for {
		select {
		case <-done:
			d.log.logger.Info("stopped")
			return nil
		case sig := <-d.signals:
			if sig != syscall.SIGHUP {
				return fmt.Errorf("%v while stopping: exiting without waiting for the captures to stop", sig)
			}
		}
	}
}

// load reads and checks the configuration at path, opens the log file it
// names and creates the DogStatsD client. Nothing starts yet.
func (d *daemon) load(path string) (cfg *daemonConfig, err error) {
	data, err := readConfFile(path)
	if err != nil {
		return nil, err
	}
	f, err := parseConfFile(path, data, "")
	if err != nil {
		return nil, err
	}
	initYAML, warnings := f.initYAML, f.warnings
	keys, err := yamlKeys(initYAML)
	if err != nil {
		return nil, fmt.Errorf("%s: init_config: %w", path, err)
	}
	log := d.log.logger
	for _, w := range warnings {
		log.Warn(w)
	}
	cfg = &daemonConfig{path: path}
	// The daemon sends the runtime metrics itself, once for the process;
	// each check would send them once per instance.
	checkInit := initYAML
	var rt struct {
		On bool `yaml:"runtime_metrics"`
	}
	if yaml.Unmarshal(initYAML, &rt) == nil && rt.On {
		if checkInit, err = setRuntimeMetricsOff(initYAML); err != nil {
			return nil, fmt.Errorf("%s: init_config: %w", path, err)
		}
	}
	var cfgs []*check.Config
	for i, y := range f.instances {
		in := &daemonInstance{name: fmt.Sprintf("instances[%d]", i)}
		in.chk = &check.Check{
			Logger:     log.With("instance", in.name),
			NewCapture: d.newCapture,
		}
		if err := in.chk.Configure(y.yaml, checkInit); err != nil {
			return nil, f.configError(i, err)
		}
		cfg.instances = append(cfg.instances, in)
		cfgs = append(cfgs, in.chk.Config())
	}
	if err := f.duplicateInstances(cfgs); err != nil {
		return nil, err
	}
	// init_config is the same for every instance.
	cfg.init = cfg.instances[0].chk.Config().Init
	cfg.init.RuntimeMetrics = rt.On
	if cfg.addr, cfg.addrFrom, err = statsdAddress(cfg.init, keys, d.getenv); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	logFile := cmp.Or(d.defaultLogFile, defaultLogFile)
	if cfg.logs, err = openLogSettings(cfg.init.LogLevel, cfg.init.LogToFile, cfg.init.LogFile, logFile); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if !cfg.init.LogToFile && keys["log_file"] {
		log.Warn("init_config key `log_file` is ignored: `log_to_file` is not true, so go-metro logs to standard error")
	}
	newClient := d.newStatsdClient
	if newClient == nil {
		newClient = statsd.New
	}
	if cfg.sender, err = newStatsdSenderWith(newClient, cfg.addr, log, d.statsdOptions...); err != nil {
		cfg.logs.close()
		return nil, err
	}
	return cfg, nil
}

// yamlKeys returns the keys of the YAML mapping data, which may be empty.
func yamlKeys(data []byte) (map[string]bool, error) {
	var m map[string]yaml.Node
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	keys := make(map[string]bool, len(m))
	for k := range m {
		keys[k] = true
	}
	return keys, nil
}

// setRuntimeMetricsOff returns the init_config mapping initYAML with
// runtime_metrics set to false.
func setRuntimeMetricsOff(initYAML []byte) ([]byte, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(initYAML, &doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("not a mapping")
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "runtime_metrics" {
			m.Content[i+1] = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "false"}
		}
	}
	return yaml.Marshal(&doc)
}

// generation is a running configuration: its checks, each on its own
// schedule, and its DogStatsD client.
type generation struct {
	cfg    *daemonConfig
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// start starts the checks of cfg; each starts its capture on its first run.
func (d *daemon) start(cfg *daemonConfig) *generation {
	ctx, cancel := context.WithCancel(context.Background())
	g := &generation{cfg: cfg, log: d.log.logger, cancel: cancel}
	var ifaces []string
	shortest := time.Duration(0)
	for _, in := range cfg.instances {
		c := in.chk.Config()
		ifaces = append(ifaces, c.Instance.Interface)
		if shortest == 0 || c.Interval < shortest {
			shortest = c.Interval
		}
	}
	g.log.Info("go-metro running", "config", cfg.path, "instances", len(cfg.instances),
		"interfaces", strings.Join(ifaces, ","), "dogstatsd", cfg.addr, "dogstatsd_from", cfg.addrFrom,
		"log_level", strings.ToLower(cfg.init.LogLevel))
	for _, in := range cfg.instances {
		g.wg.Add(1)
		go g.schedule(ctx, in)
	}
	// The daemon describes its own process on every interval, whatever
	// runtime_metrics says: that key is for the Agent check, where the
	// metrics describe the Agent.
	g.wg.Add(1)
	go g.runtime(ctx, shortest)
	return g
}

// schedule runs in at once, which starts its capture, then every interval
// until ctx is done.
func (g *generation) schedule(ctx context.Context, in *daemonInstance) {
	defer g.wg.Done()
	interval := in.chk.Interval()
	g.log.Debug("instance scheduled", "instance", in.name, "interval", interval)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		start := time.Now()
		// The check logs a capture that cannot start, and reports it in
		// its service check on every run: the error is not logged again.
		err := in.chk.Run(g.cfg.sender)
		g.log.Debug("instance ran", "instance", in.name, "duration", time.Since(start), "error", err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runtime submits the runtime metrics of the process every interval:
// once for the process, whatever the number of instances, with the tags
// that every instance has.
func (g *generation) runtime(ctx context.Context, interval time.Duration) {
	defer g.wg.Done()
	instTags := func(c *check.Config) []string {
		tags := slices.Clone(c.Instance.Tags)
		if c.Service != "" {
			tags = append(tags, "service:"+c.Service)
		}
		return tags
	}
	// No iface tag: the metrics describe the process.
	tags := slices.DeleteFunc(instTags(g.cfg.instances[0].chk.Config()), func(t string) bool { return strings.HasPrefix(t, "iface:") })
	for _, in := range g.cfg.instances[1:] {
		other := instTags(in.chk.Config())
		tags = slices.DeleteFunc(tags, func(t string) bool { return !slices.Contains(other, t) })
	}
	var rc check.RuntimeCollector
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rc.Submit(g.cfg.sender, "", tags)
		g.cfg.sender.Commit()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop stops the schedules, runs each check one last time so that the
// partial interval is sent, stops the captures, then flushes to DogStatsD
// and closes the client.
func (g *generation) stop() {
	g.cancel()
	g.wg.Wait()
	for _, in := range g.cfg.instances {
		// One last run sends what was captured since the previous one,
		// so that a stop or a reload loses no partial interval.
		err := in.chk.Run(g.cfg.sender)
		g.log.Debug("instance ran before stopping", "instance", in.name, "error", err)
		in.chk.Cancel()
	}
	g.cfg.sender.Close()
}
