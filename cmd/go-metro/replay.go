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
	"slices"
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

Options:
`

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

func parseReplayFlags(args []string, stderr io.Writer) (*replayOptions, error) {
	o := &replayOptions{}
	fs := flag.NewFlagSet("replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, replayUsage)
		fs.PrintDefaults()
	}
	fs.Func("local", "local `ADDR|CIDR` whose sent segments are timed (repeatable)", func(s string) error {
		for part := range strings.SplitSeq(s, ",") {
			if _, _, err := capture.ParseAddrOrPrefix(part); err != nil {
				return err
			}
			o.local = append(o.local, part)
		}
		return nil
	})
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line: samples, then peers, then stats")
	methods := fs.String("methods", "timestamp,seqack,handshake", "RTT `methods` to use, comma-separated")
	fs.DurationVar(&o.idleTTL, "idle-ttl", capture.DefaultIdleTTL, "expire idle flows after this capture time")
	fs.DurationVar(&o.expTTL, "exp-ttl", capture.DefaultExpTTL, "expire flows that saw FIN or RST after this capture time")
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
	o, err := parseReplayFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	var local *capture.LocalSet
	if len(o.local) > 0 {
		local, err = capture.ParseLocalSet(o.local...)
	} else {
		local, err = inferLocal(o.files)
	}
	if err != nil {
		return err
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
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
	for _, name := range o.files {
		if err := eachFrame(name, e.ProcessFrame); err != nil {
			return err
		}
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
		return nil
	}
	printSummary(w, local, peers, st)
	return nil
}

// eachFrame calls fn for each frame of the capture file name.
func eachFrame(name string, fn func(*capture.Frame)) error {
	src, err := capture.OpenFile(name)
	if err != nil {
		return err
	}
	defer src.Close()
	for {
		f, err := src.ReadFrame()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		fn(&f)
	}
}

// inferLocal finds the one address that appears in every TCP flow of the
// files, or fails with the candidates.
func inferLocal(files []string) (*capture.LocalSet, error) {
	type conn struct{ a, b netip.AddrPort }
	flows := make(map[conn]struct{})
	var p capture.Packet
	for _, name := range files {
		err := eachFrame(name, func(f *capture.Frame) {
			if capture.Decode(f.Link, f.Data, f.WireLen, &p) != nil {
				return
			}
			a, b := netip.AddrPortFrom(p.Src, p.SrcPort), netip.AddrPortFrom(p.Dst, p.DstPort)
			if b.Compare(a) < 0 {
				a, b = b, a
			}
			flows[conn{a, b}] = struct{}{}
		})
		if err != nil {
			return nil, err
		}
	}
	if len(flows) == 0 {
		return nil, errors.New("no TCP flows in the capture: nothing to time")
	}
	count := make(map[netip.Addr]int)
	for c := range flows {
		count[c.a.Addr()]++
		if c.b.Addr() != c.a.Addr() {
			count[c.b.Addr()]++
		}
	}
	type cand struct {
		addr netip.Addr
		n    int
	}
	var all []cand
	var every []netip.Addr
	for a, n := range count {
		all = append(all, cand{a, n})
		if n == len(flows) {
			every = append(every, a)
		}
	}
	if len(every) == 1 {
		return capture.NewLocalSet(every, nil), nil
	}
	slices.SortFunc(all, func(x, y cand) int { return cmp.Or(y.n-x.n, x.addr.Compare(y.addr)) })
	var list []string
	for i, c := range all {
		if i == 10 {
			list = append(list, fmt.Sprintf("and %d more", len(all)-10))
			break
		}
		list = append(list, fmt.Sprintf("%s (%d of %d flows)", c.addr, c.n, len(flows)))
	}
	why := "no address appears in every flow"
	if len(every) > 1 {
		why = fmt.Sprintf("%d addresses appear in every flow", len(every))
	}
	return nil, fmt.Errorf("%w: cannot tell the local side: %s; pass --local with the host's address or prefix; candidates: %s",
		errUsage, why, strings.Join(list, ", "))
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
