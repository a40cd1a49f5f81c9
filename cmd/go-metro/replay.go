package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/go-metro/go-metro/capture"
)

const replayUsage = `Usage: go-metro replay [--local ADDR|CIDR]... [--json] [options] FILE...

Replays pcap or pcapng files through the RTT estimators and prints the RTT
per peer. Segments sent by the local side are timed; --local names it and
may be repeated. Without --local, the one address that appears in every
flow is taken as local.

Several files are merged in capture-time order, as mergecap does, whatever
the order they are given in (a capture rotated by tcpdump -C, say). FILE -
reads standard input, once.

Exit status: 0 when every packet was read; 1 on an error, a corrupt file
included (the results of the packets before it are printed); 2 for a usage
error, or a --local that matches no flow, or none given when it cannot be
inferred; 3 when the results are printed but part of the input could not
be used: a file cut short in the middle of a packet (as tshark says of it),
or pcapng Simple Packet Blocks, which have no timestamp, skipped.

Options:
`

// errIncomplete marks a replay whose results are printed but do not cover
// all of the input: exit status 3.
var errIncomplete = errors.New("incomplete input: the results cover only the packets that could be read")

// replayOptions are the flags of go-metro replay.
type replayOptions struct {
	local    []string
	json     bool
	methods  capture.Methods
	idleTTL  time.Duration
	expTTL   time.Duration
	maxFlows int
	// Grouping and TCP counts, as the check's service_tags,
	// peer_prefix_v4/v6 and syn_timeout.
	serviceTags        bool
	prefixV4, prefixV6 int
	synTimeout         time.Duration
	files              []string
}

// durationFlag parses a positive duration for the flag name into d.
func durationFlag(name string, d *time.Duration) func(string) error {
	return func(s string) error {
		v, err := time.ParseDuration(s)
		if err != nil {
			if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
				return fmt.Errorf("%q has no unit: write it with one, such as %ss (seconds) or %sm (minutes)", s, s, s)
			}
			return fmt.Errorf("want a duration such as 300s or 5m")
		}
		if v <= 0 {
			return fmt.Errorf("%v: must be positive", v)
		}
		*d = v
		return nil
	}
}

func parseReplayFlags(args []string, stderr io.Writer) (*replayOptions, error) {
	o := &replayOptions{idleTTL: capture.DefaultIdleTTL, expTTL: capture.DefaultExpTTL}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	fs.Func("local", "local `ADDR|CIDR` whose sent segments are timed (repeatable)", func(s string) error {
		for part := range strings.SplitSeq(s, ",") {
			_, p, err := capture.ParseAddrOrPrefix(part)
			if err != nil {
				return err
			}
			if p.IsValid() && p.Bits() == 0 {
				return fmt.Errorf("%s covers every address: both ends of every flow would be local, and nothing timed; name the host's address or prefix", part)
			}
			o.local = append(o.local, part)
		}
		return nil
	})
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line: samples, then peers, then stats")
	methods := fs.String("methods", "timestamp,seqack,handshake", "RTT `methods` to use, comma-separated")
	fs.Func("idle-ttl", "expire idle flows after this capture `time` (default 5m0s)", durationFlag("idle-ttl", &o.idleTTL))
	fs.Func("exp-ttl", "expire flows that saw FIN or RST after this capture `time` (default 1m0s)", durationFlag("exp-ttl", &o.expTTL))
	fs.IntVar(&o.maxFlows, "max-flows", capture.DefaultMaxFlows, "cap on tracked flows")
	fs.BoolVar(&o.serviceTags, "service-tags", false, "split peers by direction and service port")
	fs.IntVar(&o.prefixV4, "peer-prefix-v4", 0, "group remote IPv4 addresses by their network of `N` bits (0: per address)")
	fs.IntVar(&o.prefixV6, "peer-prefix-v6", 0, "group remote IPv6 addresses by their network of `N` bits (0: per address)")
	fs.DurationVar(&o.synTimeout, "syn-timeout", capture.DefaultSYNTimeout, "count a SYN without SYN-ACK for this capture time as a connection timeout")
	// Flags may follow file names: parse until no arguments are left.
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			break
		}
		o.files = append(o.files, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(o.files) == 0 {
		fs.Usage()
		return nil, fmt.Errorf("%w: no capture file given", errUsage)
	}
	if n := len(slices.DeleteFunc(slices.Clone(o.files), func(f string) bool { return f != "-" })); n > 1 {
		return nil, fmt.Errorf("%w: - (standard input) given %d times: it can be read once", errUsage, n)
	}
	for name := range strings.SplitSeq(*methods, ",") {
		m, err := capture.ParseMethod(strings.TrimSpace(name))
		if err != nil {
			return nil, fmt.Errorf("%w: invalid --methods %q: %v", errUsage, *methods, err)
		}
		o.methods = o.methods.With(m)
	}
	if o.maxFlows <= 0 {
		return nil, fmt.Errorf("%w: invalid --max-flows %d: must be at least 1", errUsage, o.maxFlows)
	}
	if o.prefixV4 < 0 || o.prefixV4 > 32 {
		return nil, fmt.Errorf("%w: invalid --peer-prefix-v4 %d: must be between 0 (per address) and 32", errUsage, o.prefixV4)
	}
	if o.prefixV6 < 0 || o.prefixV6 > 128 {
		return nil, fmt.Errorf("%w: invalid --peer-prefix-v6 %d: must be between 0 (per address) and 128", errUsage, o.prefixV6)
	}
	if o.synTimeout <= 0 {
		return nil, fmt.Errorf("%w: invalid --syn-timeout %v: must be positive, such as 10s", errUsage, o.synTimeout)
	}
	return o, nil
}

func replay(args []string, stdout, stderr io.Writer) error {
	r := replayer{stdin: os.Stdin}
	return r.main(args, stdout, stderr)
}

// replayer runs go-metro replay. Its fields are what tests replace.
type replayer struct {
	stdin io.Reader // read for the file -
}

func (r *replayer) main(args []string, stdout, stderr io.Writer) error {
	o, err := parseReplayFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	in := &replayInputs{stdin: r.stdin}
	defer in.cleanup()
	var local *capture.LocalSet
	if len(o.local) > 0 {
		local, err = capture.ParseLocalSet(o.local...)
	} else {
		// Inferring the local side reads the input twice: standard
		// input and pipes are kept in a temporary file for that.
		if err = in.spool(o.files); err == nil {
			local, err = inferLocal(in, o.files)
		}
	}
	if err != nil {
		return err
	}

	w := bufio.NewWriter(stdout)
	enc := json.NewEncoder(w)
	cfg := capture.Config{
		Local:    local,
		Methods:  o.methods,
		IdleTTL:  o.idleTTL,
		ExpTTL:   o.expTTL,
		MaxFlows: o.maxFlows,

		ServiceTags: o.serviceTags,
		PrefixV4:    o.prefixV4,
		PrefixV6:    o.prefixV6,
		SYNTimeout:  o.synTimeout,
	}
	if o.json {
		cfg.OnSample = func(s capture.Sample) {
			enc.Encode(jsonSample{
				Type:   "sample",
				Time:   s.Time.UTC().Format(time.RFC3339Nano),
				Local:  s.Local.String(),
				Remote: s.Remote.String(),
				Method: s.Method.String(),
				RTTms:  ms(s.RTT),
			})
		}
	}
	e := capture.NewEngine(cfg)
	// The flows, to tell a --local that matches none of them: kept until
	// one matches, which costs nothing after that.
	flows := newFlowSet(local)
	check := len(o.local) > 0
	srcs, err := in.open(o.files)
	if err != nil {
		return err
	}
	// Nothing drains the engine while the files are read: the whole
	// replay is one batch.
	e.BeginBatch()
	readErrs := eachMerged(srcs, func(f *frame) {
		e.ProcessDev(f.link, f.data, f.wireLen, f.t, f.dev)
		if check && !flows.matched {
			flows.add(f)
		}
	})
	e.EndBatch()
	var warnings []string
	for _, src := range srcs {
		warnings = append(warnings, src.Warnings()...)
		src.Close()
	}
	if check && flows.len() > 0 && !flows.matched {
		return fmt.Errorf("%w: --local %s matches no flow of the capture: nothing was timed; pass --local with the host's address or prefix; candidates: %s",
			errUsage, strings.Join(o.local, ","), flows.candidates())
	}
	peers := e.Drain(nil)
	slices.SortFunc(peers, func(a, b capture.PeerStats) int { return a.PeerKey.Compare(b.PeerKey) })
	st := e.Stats()
	if o.json {
		for _, p := range peers {
			jp := jsonPeer{
				Type: "peer", Local: p.Local.String(), Remote: p.Remote.String(), Samples: p.Count,
				MinMs: ms(p.Min), AvgMs: ms(p.SRTT), JitterMs: ms(p.RTTVar),
				P50Ms: ms(p.P50), P95Ms: ms(p.P95), P99Ms: ms(p.P99), MaxMs: ms(p.Max), LastMs: ms(p.Last),
				Retransmits: p.TCP.Retransmits, ConnectionsOpened: p.TCP.Opened, ConnectionsRefused: p.TCP.Refused,
				ConnectionsTimeouts: p.TCP.Timeouts, ResetsLocal: p.TCP.ResetsLocal, ResetsRemote: p.TCP.ResetsRemote,
				ZeroWindows: p.TCP.ZeroWindows,
			}
			if p.Dir != capture.DirNone {
				jp.Direction, jp.Port = p.Dir.String(), portString(p.Port)
			}
			enc.Encode(jp)
		}
		enc.Encode(jsonStats{
			Type: "stats", Packets: st.Packets, TCPPackets: st.TCPPackets, DecodeErrors: st.DecodeErrors,
			Flows: st.FlowsCreated, FlowsEvicted: st.FlowsEvicted, Samples: st.Samples, SamplesDiscarded: st.SamplesDiscarded,
			Copies: st.Copies,
		})
	} else {
		printSummary(w, local, peers, st)
	}
	// bufio.Writer keeps the first write error: a full disk, a closed
	// pipe.
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write the results: %w", err)
	}
	return inputErrors(readErrs, warnings)
}

// inputErrors is the error of a replay whose results are printed: nil
// when all the input was read, errIncomplete when files were cut short or
// blocks skipped, and the read errors otherwise.
func inputErrors(readErrs []error, warnings []string) error {
	var cut, fatal []error
	for _, err := range readErrs {
		if errors.Is(err, capture.ErrCutShort) {
			cut = append(cut, err)
		} else {
			fatal = append(fatal, err)
		}
	}
	if len(fatal) > 0 {
		return errors.Join(fatal...)
	}
	var msgs []string
	for _, err := range cut {
		msgs = append(msgs, err.Error())
	}
	msgs = append(msgs, warnings...)
	if len(msgs) > 0 {
		return fmt.Errorf("%w: %s", errIncomplete, strings.Join(msgs, "; "))
	}
	return nil
}

// replayInputs opens the files of a replay: paths, and - for standard
// input, which can be read once; spool keeps it, and pipes, in temporary
// files so that they can be read twice.
type replayInputs struct {
	stdin  io.Reader
	spools map[string]string // file as given → temporary copy
}

// spool copies standard input and the files that cannot be read twice
// (pipes, such as <(zcat f.pcap.gz)) to temporary files.
func (in *replayInputs) spool(files []string) error {
	for _, name := range files {
		var r io.Reader
		if name == "-" {
			r = in.stdin
		} else if fi, err := os.Stat(name); err != nil || fi.Mode().IsRegular() {
			continue // a regular file, or an error that opening reports
		} else {
			f, err := os.Open(name)
			if err != nil {
				return fmt.Errorf("open capture file: %w", err)
			}
			defer f.Close()
			r = f
		}
		tmp, err := os.CreateTemp("", "go-metro-replay-*.pcap")
		if err != nil {
			return fmt.Errorf("keep %s to read it twice (to infer --local): %w; or pass --local", inputName(name), err)
		}
		if in.spools == nil {
			in.spools = map[string]string{}
		}
		in.spools[name] = tmp.Name()
		_, err = io.Copy(tmp, r)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("keep %s to read it twice (to infer --local): %w; or pass --local", inputName(name), err)
		}
	}
	return nil
}

// cleanup removes the temporary files.
func (in *replayInputs) cleanup() {
	for _, path := range in.spools {
		os.Remove(path)
	}
}

// inputName names a file as given, for messages.
func inputName(name string) string {
	if name == "-" {
		return "standard input"
	}
	return name
}

// open opens every file, and reads its header.
func (in *replayInputs) open(files []string) ([]*capture.FileSource, error) {
	var srcs []*capture.FileSource
	for _, name := range files {
		var src *capture.FileSource
		var err error
		switch path, spooled := in.spools[name]; {
		case spooled:
			var f *os.File
			if f, err = os.Open(path); err == nil {
				if src, err = capture.NewFileSource(inputName(name), f); err != nil {
					f.Close()
				}
			}
		case name == "-":
			src, err = capture.NewFileSource(inputName(name), in.stdin)
		default:
			src, err = capture.OpenFile(name)
		}
		if err != nil {
			for _, s := range srcs {
				s.Close()
			}
			return nil, err
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

// frame is a frame of a replay: the parts of a capture.Frame, with its
// capture time in Unix nanoseconds, as Engine.ProcessDev takes them.
type frame struct {
	data    []byte // valid until the next read of its file
	link    capture.LinkType
	wireLen int
	t       int64
	dev     capture.Device
}

// read reads the next frame of src into f.
func (f *frame) read(src *capture.FileSource) (err error) {
	f.data, f.link, f.wireLen, f.t, f.dev, err = src.ReadFrameNano()
	return err
}

// eachMerged calls fn for each frame of srcs in capture-time order, as
// mergecap merges files: the earliest of the files' next frames first,
// and on a tie the one given first. A file whose read fails stops there;
// its error is returned, the other files go on.
func eachMerged(srcs []*capture.FileSource, fn func(*frame)) []error {
	var errs []error
	if len(srcs) == 1 {
		// One file: no merge.
		var f frame
		for {
			if err := f.read(srcs[0]); err != nil {
				if err != io.EOF {
					errs = append(errs, err)
				}
				return errs
			}
			fn(&f)
		}
	}
	heads := make([]frame, len(srcs))
	live := make([]bool, len(srcs))
	next := func(i int) {
		err := heads[i].read(srcs[i])
		live[i] = err == nil
		if err != nil && err != io.EOF {
			errs = append(errs, err)
		}
	}
	for i := range srcs {
		next(i)
	}
	for {
		first := -1
		for i := range heads {
			if live[i] && (first < 0 || heads[i].t < heads[first].t) {
				first = i
			}
		}
		if first < 0 {
			return errs
		}
		fn(&heads[first])
		next(first) // heads[first].data is valid until then
	}
}

// flowSet is the set of TCP connections seen in the frames, and how many
// of them each address is in.
type flowSet struct {
	p     capture.Packet
	flows map[[2]netip.AddrPort]struct{}
	local *capture.LocalSet // nil: none
	// matched is set when an end of a connection added is in local.
	matched bool
}

func newFlowSet(local *capture.LocalSet) *flowSet {
	return &flowSet{flows: make(map[[2]netip.AddrPort]struct{}), local: local}
}

// add adds the connection of f, if it is TCP.
func (s *flowSet) add(f *frame) {
	if capture.Decode(f.link, f.data, f.wireLen, &s.p) != nil {
		return
	}
	a, b := netip.AddrPortFrom(s.p.Src, s.p.SrcPort), netip.AddrPortFrom(s.p.Dst, s.p.DstPort)
	if b.Compare(a) < 0 {
		a, b = b, a
	}
	s.flows[[2]netip.AddrPort{a, b}] = struct{}{}
	if s.local != nil && (s.local.Contains(a.Addr()) || s.local.Contains(b.Addr())) {
		s.matched = true
	}
}

func (s *flowSet) len() int { return len(s.flows) }

// counts returns each address with the number of flows it is in, most
// first, and the addresses in every flow.
func (s *flowSet) counts() (all []addrCount, every []netip.Addr) {
	count := make(map[netip.Addr]int)
	for c := range s.flows {
		count[c[0].Addr()]++
		if c[1].Addr() != c[0].Addr() {
			count[c[1].Addr()]++
		}
	}
	for a, n := range count {
		all = append(all, addrCount{a, n})
		if n == len(s.flows) {
			every = append(every, a)
		}
	}
	slices.SortFunc(all, func(x, y addrCount) int { return cmp.Or(y.n-x.n, x.addr.Compare(y.addr)) })
	return all, every
}

type addrCount struct {
	addr netip.Addr
	n    int
}

// candidates lists the addresses of the flows, most frequent first.
func (s *flowSet) candidates() string {
	all, _ := s.counts()
	var list []string
	for i, c := range all {
		if i == 10 {
			list = append(list, fmt.Sprintf("and %d more", len(all)-10))
			break
		}
		list = append(list, fmt.Sprintf("%s (%d of %d flows)", c.addr, c.n, len(s.flows)))
	}
	return strings.Join(list, ", ")
}

// inferLocal finds the one address that appears in every TCP flow of the
// files, or fails with the candidates. Read errors are left to the replay
// itself, which reads the files again and reports them.
func inferLocal(in *replayInputs, files []string) (*capture.LocalSet, error) {
	srcs, err := in.open(files)
	if err != nil {
		return nil, err
	}
	flows := newFlowSet(nil)
	eachMerged(srcs, flows.add)
	for _, s := range srcs {
		s.Close()
	}
	if flows.len() == 0 {
		return nil, errors.New("no TCP flows in the capture: nothing to time")
	}
	_, every := flows.counts()
	if len(every) == 1 {
		return capture.NewLocalSet(every, nil), nil
	}
	why := "no address appears in every flow"
	if len(every) > 1 {
		why = fmt.Sprintf("%d addresses appear in every flow", len(every))
	}
	return nil, fmt.Errorf("%w: cannot tell the local side: %s; pass --local with the host's address or prefix; candidates: %s",
		errUsage, why, flows.candidates())
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

type jsonSample struct {
	Type   string  `json:"type"`
	Time   string  `json:"time"`
	Local  string  `json:"local"`
	Remote string  `json:"remote"`
	Method string  `json:"method"`
	RTTms  float64 `json:"rtt_ms"`
}

// portString returns a service port as the port: tag has it.
func portString(p uint32) string {
	switch p {
	case 0:
		return ""
	case capture.PortOther:
		return "other"
	}
	return fmt.Sprint(p)
}

type jsonPeer struct {
	Type      string  `json:"type"`
	Local     string  `json:"local"`
	Remote    string  `json:"remote"`
	Direction string  `json:"direction,omitempty"` // with --service-tags
	Port      string  `json:"port,omitempty"`      // with --service-tags
	Samples   uint64  `json:"samples"`
	MinMs     float64 `json:"min_ms"`
	AvgMs     float64 `json:"avg_ms"`
	JitterMs  float64 `json:"jitter_ms"`
	P50Ms     float64 `json:"p50_ms"`
	P95Ms     float64 `json:"p95_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
	LastMs    float64 `json:"last_ms"`

	Retransmits         uint64 `json:"retransmits"`
	ConnectionsOpened   uint64 `json:"connections_opened"`
	ConnectionsRefused  uint64 `json:"connections_refused"`
	ConnectionsTimeouts uint64 `json:"connections_timeouts"`
	ResetsLocal         uint64 `json:"resets_local"`
	ResetsRemote        uint64 `json:"resets_remote"`
	ZeroWindows         uint64 `json:"zero_windows"`
}

type jsonStats struct {
	Type             string `json:"type"`
	Packets          uint64 `json:"packets"`
	TCPPackets       uint64 `json:"tcp_packets"`
	DecodeErrors     uint64 `json:"decode_errors"`
	Flows            uint64 `json:"flows"`
	FlowsEvicted     uint64 `json:"flows_evicted"`
	Samples          uint64 `json:"samples"`
	SamplesDiscarded uint64 `json:"samples_discarded"`
	Copies           uint64 `json:"copies"` // frames that were copies of a segment seen on another device
}

// printSummary writes the human-readable report.
func printSummary(w io.Writer, local *capture.LocalSet, peers []capture.PeerStats, st capture.Stats) {
	fmt.Fprintf(w, "local: %s\n\n", local)
	if len(peers) == 0 {
		fmt.Fprintln(w, "no RTT samples: no segment sent by the local side was acknowledged in the capture")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "LOCAL\tREMOTE\tSAMPLES\tMIN\tAVG\tJITTER\tP50\tP95\tP99\tMAX\tLAST\tMETHODS\tTCP\t")
		for _, p := range peers {
			remote := p.Remote.String()
			if p.Dir != capture.DirNone {
				remote += " " + strings.Trim(p.Dir.String()+" "+portString(p.Port), " ")
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
				p.Local, remote, p.Count, msStr(p.Min), msStr(p.SRTT), msStr(p.RTTVar),
				msStr(p.P50), msStr(p.P95), msStr(p.P99), msStr(p.Max), msStr(p.Last), methodCounts(p.ByMethod), tcpCounts(p.TCP))
		}
		tw.Flush()
		fmt.Fprintln(w, "\nRTTs in ms. AVG is the smoothed RTT and JITTER the RTT variation (RFC 6298).")
	}
	fmt.Fprintf(w, "\npackets %d (TCP %d, decode errors %d), flows %d (evicted %d), samples %d (discarded %d)\n",
		st.Packets, st.TCPPackets, st.DecodeErrors, st.FlowsCreated, st.FlowsEvicted, st.Samples, st.SamplesDiscarded)
}

func msStr(d time.Duration) string { return fmt.Sprintf("%.3f", ms(d)) }

// tcpCounts lists a peer's non-zero TCP counts, or "-".
func tcpCounts(c capture.TCPCounts) string {
	var parts []string
	for _, f := range []struct {
		name string
		n    uint64
	}{
		{"retransmits", c.Retransmits}, {"opened", c.Opened}, {"refused", c.Refused}, {"timeouts", c.Timeouts},
		{"resets_local", c.ResetsLocal}, {"resets_remote", c.ResetsRemote}, {"zero_windows", c.ZeroWindows},
	} {
		if f.n > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.n))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func methodCounts(by [capture.NumMethods]uint64) string {
	var parts []string
	for m := range capture.Method(capture.NumMethods) {
		if by[m] > 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", m, by[m]))
		}
	}
	return strings.Join(parts, " ")
}
