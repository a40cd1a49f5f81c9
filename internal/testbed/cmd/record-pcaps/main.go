// Command record-pcaps records the small pcap files that go-metro's capture
// tests read, with real TCP traffic across a [testbed.DelayLine] of known
// delay, and writes tshark's analysis of each next to it. It captures with
// tcpdump on the client-side TAP device, inside the client namespace, so
// the client address is the local side of every file.
//
// It needs Linux, root, iproute2, tcpdump and tshark. Run it from the module
// root:
//
//	go run ./internal/testbed/cmd/record-pcaps -out capture/testdata
//
// records every file; -run REGEXP records only the files whose name matches,
// and -refs writes only the tshark references of the files already there
// (and pcaps.md, keeping its rows).
// Besides the pcap files it writes pcaps.md, which lists for each file the
// client (local) and server addresses and how the path was configured, and
// for each file NAME.pcap the references NAME.*.tsv that capture/testdata's
// README describes.
package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// scenario is one pcap file to record.
type scenario struct {
	file string
	desc string
	// table is the table of pcaps.md that lists the file: rttTable or
	// healthTable.
	table      int
	ipv6       bool
	timestamps bool    // net.ipv4.tcp_timestamps, in both namespaces
	loss       float64 // in each direction
	// delay is the one-way delay in each direction; zero means oneWay.
	delay time.Duration
	// bottleneck queues the client-to-server frames in the server
	// namespace, after the delay line (DelayLineConfig.Bottleneck).
	bottleneck testbed.Bottleneck
	// dropSYNPort drops every SYN to that port, client to server
	// (Impairment.DropSYNToPort).
	dropSYNPort uint16
	// cc is the congestion control of the client's sockets
	// (Path.CongestionControl); "" leaves the namespaces' default.
	cc string
	// keep, if not zero, keeps only the frames of the first keep after the
	// first frame.
	keep time.Duration
	// events writes the tshark references of retransmissions, zero windows,
	// RSTs and SYNs; windows writes the per-window ack_rtt summary.
	events, windows bool
	traffic         func(context.Context, testbed.Path) error
}

// The tables of pcaps.md.
const (
	rttTable = iota
	healthTable
)

const (
	oneWay = 5 * time.Millisecond // in each direction
	seed   = 1
	// closedPort has no listener: connects to it are refused.
	closedPort = 9
	// droppedPort is where the failures scenario's SYNs are dropped.
	droppedPort = 5001
	// synTimeout bounds the connects to droppedPort: beyond go-metro's
	// default syn_timeout of 10 s, so that a replay with the default
	// counts them as timed out.
	synTimeout = 11 * time.Second
	// keep3s is how much of the long transfers is kept.
	keep3s = 3 * time.Second
)

func scenarios() []scenario {
	bulk := func(ctx context.Context, p testbed.Path) error {
		return testbed.Bulk(ctx, p, 200_000)
	}
	reqResp := func(ctx context.Context, p testbed.Path) error {
		return testbed.RequestResponse(ctx, p, testbed.RequestResponseConfig{Count: 20, Gap: 20 * time.Millisecond})
	}
	short := func(ctx context.Context, p testbed.Path) error {
		return testbed.ShortConnections(ctx, p, testbed.RequestResponseConfig{Count: 10, Gap: 10 * time.Millisecond})
	}
	// 9 MB take 3.8 s at 20 Mbit/s, beyond the 3 s kept.
	bulkLong := func(ctx context.Context, p testbed.Path) error {
		return testbed.Bulk(ctx, p, 9_000_000)
	}
	upload := func(ctx context.Context, p testbed.Path) error {
		return testbed.Upload(ctx, p, testbed.UploadConfig{Exchanges: 6, ExchangeSize: 512, Bytes: 5_000_000})
	}
	stall := func(ctx context.Context, p testbed.Path) error {
		return testbed.StallingReader(ctx, p, testbed.StallingReaderConfig{
			Bytes: 192 << 10, ReceiveBuffer: 16 << 10, ReadBetween: 64 << 10, Stalls: 2, Stall: time.Second})
	}
	bottleneck20 := testbed.Bottleneck{Rate: 20_000_000, Burst: 32 << 10 / 8, Limit: 600_000}
	bottleneck10 := testbed.Bottleneck{Rate: 10_000_000, Burst: 32 << 10 / 8, Limit: 62_500}
	return []scenario{
		{file: "bulk_ts_v4.pcap", desc: "bulk 200000 bytes client to server", timestamps: true, traffic: bulk},
		{file: "bulk_nots_v4.pcap", desc: "bulk 200000 bytes client to server", traffic: bulk},
		{file: "reqresp_ts_v6.pcap", desc: "20 requests (64 B) and responses (128 B), 20 ms gap, one connection", ipv6: true, timestamps: true, traffic: reqResp},
		{file: "reqresp_nots_v4.pcap", desc: "20 requests (64 B) and responses (128 B), 20 ms gap, one connection", traffic: reqResp},
		{file: "short_conns_v4.pcap", desc: "10 connections of one request (64 B) and response (128 B), 10 ms apart", timestamps: true, traffic: short},
		{file: "lossy_nots_v4.pcap", desc: "bulk 200000 bytes client to server, 3% loss each way", loss: 0.03, events: true, traffic: bulk},
		{file: "lossy_ts_v4.pcap", desc: "bulk 200000 bytes client to server, 3% loss each way", loss: 0.03, timestamps: true, events: true, traffic: bulk},

		{file: "bottleneck_ts_v4.pcap", desc: "bulk 9000000 bytes client to server", table: healthTable,
			timestamps: true, bottleneck: bottleneck20, cc: "bbr", delay: 15 * time.Millisecond, keep: keep3s, events: true, windows: true, traffic: bulkLong},
		{file: "bottleneck_nots_v4.pcap", desc: "bulk 9000000 bytes client to server", table: healthTable,
			bottleneck: bottleneck20, cc: "bbr", delay: 15 * time.Millisecond, keep: keep3s, events: true, windows: true, traffic: bulkLong},
		{file: "upload_ts_v4.pcap", desc: "scp-like upload: 6 exchanges of 512 B, then 5000000 bytes client to server", table: healthTable,
			timestamps: true, bottleneck: bottleneck10, cc: "cubic", keep: keep3s, events: true, windows: true, traffic: upload},
		{file: "zero_window_v4.pcap", desc: "196608 bytes client to server; the server (SO_RCVBUF 16 KiB) stops reading for 1 s after 64 KiB, twice", table: healthTable,
			timestamps: true, events: true, traffic: stall},
		{file: "failures_v4.pcap", desc: fmt.Sprintf("5 connects to closed port %d; 5 connects at once to port %d, whose SYNs are dropped, abandoned after %v; 5 connections reset by the server after the request; 3 reset by the client after the response", closedPort, droppedPort, synTimeout), table: healthTable,
			timestamps: true, dropSYNPort: droppedPort, events: true, traffic: failures},
	}
}

// failures makes connects that are refused, connects that time out, and
// connections reset by either side.
func failures(ctx context.Context, p testbed.Path) error {
	for i := range 5 {
		err := testbed.Connects(ctx, p.Client, netip.AddrPortFrom(p.Dst, closedPort), 1, 2*time.Second)[0]
		if !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("connect %d to closed port %d: %v, want connection refused", i+1, closedPort, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A listener, so that only the dropped SYNs keep the connects from
	// completing.
	ln, err := p.Server.Listen(ctx, "tcp", netip.AddrPortFrom(p.Dst, droppedPort).String())
	if err != nil {
		return err
	}
	defer ln.Close()
	for i, err := range testbed.Connects(ctx, p.Client, netip.AddrPortFrom(p.Dst, droppedPort), 5, synTimeout) {
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			return fmt.Errorf("connect %d to port %d: %v, want a timeout", i+1, droppedPort, err)
		}
	}
	if err := testbed.Resets(ctx, p, testbed.ResetsConfig{Count: 5, Gap: 20 * time.Millisecond}); err != nil {
		return err
	}
	time.Sleep(20 * time.Millisecond)
	return testbed.Resets(ctx, p, testbed.ResetsConfig{Count: 3, Gap: 20 * time.Millisecond, ByClient: true})
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func main() {
	out := flag.String("out", "capture/testdata", "directory to write the pcap files into")
	snaplen := flag.Int("snaplen", 128, "bytes to capture of each packet")
	only := flag.String("run", "", "record only the files whose name matches this regular expression")
	refsOnly := flag.Bool("refs", false, "record nothing: write the tshark references of the pcap files already in -out")
	flag.Parse()
	if err := run(*out, *snaplen, *only, *refsOnly); err != nil {
		fmt.Fprintln(os.Stderr, "record-pcaps:", err)
		os.Exit(1)
	}
}

func run(dir string, snaplen int, only string, refsOnly bool) error {
	match, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("invalid -run %q: %w", only, err)
	}
	tools := []string{"tshark"}
	if !refsOnly {
		tools = append(tools, "tcpdump")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("find %s: %w: install it with apt-get install %s", tool, err, tool)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rows := map[string]string{}
	for _, sc := range scenarios() {
		if !match.MatchString(sc.file) {
			continue
		}
		if !refsOnly {
			row, err := record(dir, snaplen, sc)
			if err != nil {
				return fmt.Errorf("record %s: %w", sc.file, err)
			}
			fmt.Println(row)
			rows[sc.file] = row
		}
		if err := writeReferences(dir, sc); err != nil {
			return fmt.Errorf("references of %s: %w", sc.file, err)
		}
	}
	return writeManifest(filepath.Join(dir, "pcaps.md"), snaplen, rows)
}

// record records one scenario and returns its manifest row.
func record(dir string, snaplen int, sc scenario) (row string, err error) {
	delay := cmp.Or(sc.delay, oneWay)
	c2s := testbed.Impairment{Delay: delay, Loss: sc.loss, DropSYNToPort: sc.dropSYNPort}
	s2c := testbed.Impairment{Delay: delay, Loss: sc.loss}
	dl, err := testbed.OpenDelayLine(testbed.DelayLineConfig{ClientToServer: c2s, ServerToClient: s2c, Seed: seed, Bottleneck: sc.bottleneck})
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, dl.Close()) }()
	for _, ns := range []*testbed.NetNS{dl.Client, dl.Server} {
		if !sc.timestamps {
			if err := ns.SetSysctl("net.ipv4.tcp_timestamps", "0"); err != nil {
				return "", err
			}
		}
	}
	path, client := dl.Path4(), dl.ClientAddr4
	if sc.ipv6 {
		path, client = dl.Path6(), dl.ClientAddr6
	}
	path.CongestionControl = sc.cc

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := filepath.Join(dir, sc.file)
	raw := file
	if sc.keep > 0 {
		raw = file + ".full"
		defer os.Remove(raw)
	}
	stop, err := startTcpdump(ctx, dl.Client, dl.ClientIf, raw, snaplen)
	if err != nil {
		return "", err
	}
	terr := sc.traffic(ctx, path)
	time.Sleep(100 * time.Millisecond) // let the last segments arrive
	if _, err = stop(); errors.Join(terr, err) != nil {
		return "", errors.Join(terr, err)
	}
	var queue testbed.BottleneckStats
	if sc.bottleneck.IsValid() {
		if queue, err = dl.BottleneckStats(); err != nil {
			return "", err
		}
	}
	packets, err := trimPCAP(raw, file, sc.keep)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	c2sStats, s2cStats := dl.Stats()
	fmt.Fprintf(os.Stderr, "%s: client->server %+v\n%s: server->client %+v\n", sc.file, c2sStats, sc.file, s2cStats)
	if sc.bottleneck.IsValid() {
		fmt.Fprintf(os.Stderr, "%s: bottleneck %+v\n", sc.file, queue)
	}
	ts := "on"
	if !sc.timestamps {
		ts = "off"
	}
	if sc.table != healthTable {
		return fmt.Sprintf("| %s | %s | %s | %s | %v | %g%% | %s | %d | %d | %d/%d |",
			sc.file, sc.desc, client, path.Dst, delay, 100*sc.loss, ts, packets, fi.Size(),
			c2sStats.Lost, s2cStats.Lost), nil
	}
	bottleneck, queueDrops := "none", "-"
	if sc.bottleneck.IsValid() {
		bottleneck, queueDrops = sc.bottleneck.String(), strconv.FormatUint(queue.Dropped, 10)
	}
	synDrop := "none"
	if sc.dropSYNPort != 0 {
		synDrop = fmt.Sprintf("port %d: %d SYNs", sc.dropSYNPort, c2sStats.SYNDropped)
	}
	cc, kept := sc.cc, "all"
	if cc == "" {
		cc = "default"
	}
	if sc.keep > 0 {
		kept = fmt.Sprintf("first %v", sc.keep)
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %v | %s | %s | %s | %s | %s | %s | %d | %d |",
		sc.file, sc.desc, client, path.Dst, delay, bottleneck, queueDrops, synDrop, cc, ts, kept, packets, fi.Size()), nil
}

// startTcpdump starts tcpdump on ifname inside ns and waits until it
// captures. stop ends it and returns how many packets it captured; it fails
// if the kernel dropped any.
func startTcpdump(ctx context.Context, ns *testbed.NetNS, ifname, file string, snaplen int) (stop func() (int, error), err error) {
	cmd := ns.Command(ctx, "tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-B", "8192", "-s", strconv.Itoa(snaplen), "--time-stamp-precision=nano", "-w", file, "tcp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	head, ok := testbed.TcpdumpListening(bufio.NewScanner(stderr))
	if !ok {
		_ = cmd.Wait()
		return nil, fmt.Errorf("start tcpdump: %s", head)
	}
	tail := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(stderr)
		tail <- string(b)
	}()
	return func() (int, error) {
		_ = cmd.Process.Signal(os.Interrupt)
		summary := <-tail
		if err := cmd.Wait(); err != nil {
			return 0, fmt.Errorf("tcpdump: %w: %s", err, summary)
		}
		if m := regexp.MustCompile(`(\d+) packets? dropped by kernel`).FindStringSubmatch(summary); m != nil && m[1] != "0" {
			return 0, fmt.Errorf("tcpdump: %s packets dropped by kernel: record again on a less busy machine", m[1])
		}
		m := regexp.MustCompile(`(\d+) packets? captured`).FindStringSubmatch(summary)
		if m == nil {
			return 0, fmt.Errorf("tcpdump: no packet count in %q", summary)
		}
		return strconv.Atoi(m[1])
	}, nil
}

// Headers of the tables of pcaps.md.
const (
	rttTableHeader = `| file | traffic | client (local) | server | one-way delay | loss | TCP timestamps | packets | bytes | frames dropped c→s/s→c |
|---|---|---|---|---|---|---|---|---|---|
`
	healthTableHeader = `| file | traffic | client (local) | server | one-way delay | bottleneck c→s | queue drops | SYNs dropped c→s | congestion control | TCP timestamps | kept | packets | bytes |
|---|---|---|---|---|---|---|---|---|---|---|---|---|
`
)

// writeManifest writes pcaps.md with rows, by file name, and for the files
// not recorded this time, the rows the file already has.
func writeManifest(file string, snaplen int, rows map[string]string) error {
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for line := range strings.Lines(string(old)) {
		line = strings.TrimSuffix(line, "\n")
		name, ok := strings.CutPrefix(line, "| ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, " ")
		if _, recorded := rows[name]; !recorded && strings.HasSuffix(name, ".pcap") {
			rows[name] = line
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `# Recorded pcap files

Written by internal/testbed/cmd/record-pcaps; run it again to replace them:

	go run ./internal/testbed/cmd/record-pcaps -out capture/testdata

or, for some of them, add -run REGEXP (for example -run 'bottleneck').

Each file was captured with tcpdump (snaplen %d, nanosecond timestamps, filter
"tcp") on the client-side TAP device of a testbed.DelayLine, inside the client
namespace. The client is the local side: its outgoing packets are stamped
when sent and its incoming packets when they arrive after the whole path.
Each direction of the path delays every frame by the one-way delay, and drops
frames at random with the given loss (seed %d); the client-to-server drops
happen after the capture point, so the pcap shows the lost segment and its
retransmission, while the server-to-client drops never reach it. TCP
timestamps were turned on or off with net.ipv4.tcp_timestamps in both
namespaces.

## RTT captures

`, snaplen, seed)
	b.WriteString(rttTableHeader)
	writeRows(&b, rows, rttTable)
	b.WriteString(`
## Congestion and TCP health captures

A bottleneck is a tbf queue in the server namespace (testbed.Bottleneck: the
ingress of the server's TAP device redirected by a u32 "match u32 0 0" filter
and "mirred egress redirect" to an ifb device whose root qdisc is the tbf).
It delays the client's segments after the delay line, so after the capture
point, and the client's capture sees the round-trip time grow while the queue
fills. "Queue drops" counts the frames that found it full. The delay line
drops every SYN to a chosen port, client to server, where "SYNs dropped"
says so. The congestion control is that of the client's sockets
(TCP_CONGESTION, testbed.Path.CongestionControl); "default" is the
namespaces' default, bbr on the machine that recorded them. "Kept" is how
much of the capture was committed, from its first frame.

`)
	b.WriteString(healthTableHeader)
	writeRows(&b, rows, healthTable)
	return os.WriteFile(file, []byte(b.String()), 0o644)
}

// writeRows writes the rows of the scenarios of a table, in order.
func writeRows(b *strings.Builder, rows map[string]string, table int) {
	for _, sc := range scenarios() {
		if sc.table == table {
			if row, ok := rows[sc.file]; ok {
				b.WriteString(row + "\n")
			}
		}
	}
}
