// Command record-pcaps records the small pcap files that go-metro's capture
// tests read, with real TCP traffic across a [testbed.DelayLine] of known
// delay. It captures with tcpdump on the client-side TAP device, inside the
// client namespace, so the client address is the local side of every file.
//
// It needs Linux, root, iproute2 and tcpdump. Run it from the module root:
//
//	go run ./internal/testbed/cmd/record-pcaps -out capture/testdata
//
// Besides the pcap files it writes pcaps.md, which lists for each file the
// client (local) and server addresses and how the path was configured.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/go-metro/go-metro/internal/testbed"
)

// scenario is one pcap file to record.
type scenario struct {
	file       string
	desc       string
	ipv6       bool
	timestamps bool    // net.ipv4.tcp_timestamps, in both namespaces
	loss       float64 // in each direction
	traffic    func(context.Context, testbed.Path) error
}

const (
	oneWay = 5 * time.Millisecond // in each direction
	seed   = 1
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
	return []scenario{
		{file: "bulk_ts_v4.pcap", desc: "bulk 200000 bytes client to server", timestamps: true, traffic: bulk},
		{file: "bulk_nots_v4.pcap", desc: "bulk 200000 bytes client to server", traffic: bulk},
		{file: "reqresp_ts_v6.pcap", desc: "20 requests (64 B) and responses (128 B), 20 ms gap, one connection", ipv6: true, timestamps: true, traffic: reqResp},
		{file: "reqresp_nots_v4.pcap", desc: "20 requests (64 B) and responses (128 B), 20 ms gap, one connection", traffic: reqResp},
		{file: "short_conns_v4.pcap", desc: "10 connections of one request (64 B) and response (128 B), 10 ms apart", timestamps: true, traffic: short},
		{file: "lossy_nots_v4.pcap", desc: "bulk 200000 bytes client to server, 3% loss each way", loss: 0.03, traffic: bulk},
		{file: "lossy_ts_v4.pcap", desc: "bulk 200000 bytes client to server, 3% loss each way", loss: 0.03, timestamps: true, traffic: bulk},
	}
}

func main() {
	out := flag.String("out", "capture/testdata", "directory to write the pcap files into")
	snaplen := flag.Int("snaplen", 128, "bytes to capture of each packet")
	only := flag.String("run", "", "record only the files whose name matches this regular expression")
	flag.Parse()
	if err := run(*out, *snaplen, *only); err != nil {
		fmt.Fprintln(os.Stderr, "record-pcaps:", err)
		os.Exit(1)
	}
}

func run(dir string, snaplen int, only string) error {
	match, err := regexp.Compile(only)
	if err != nil {
		return fmt.Errorf("invalid -run %q: %w", only, err)
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		return fmt.Errorf("find tcpdump: %w: install it with apt-get install tcpdump", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var rows []string
	for _, sc := range scenarios() {
		if !match.MatchString(sc.file) {
			continue
		}
		row, err := record(dir, snaplen, sc)
		if err != nil {
			return fmt.Errorf("record %s: %w", sc.file, err)
		}
		fmt.Println(row)
		rows = append(rows, row)
	}
	if only != "" {
		return nil // a partial run keeps the manifest of the full one
	}
	return writeManifest(filepath.Join(dir, "pcaps.md"), snaplen, rows)
}

// record records one scenario and returns its manifest row.
func record(dir string, snaplen int, sc scenario) (row string, err error) {
	im := testbed.Impairment{Delay: oneWay, Loss: sc.loss}
	dl, err := testbed.OpenDelayLine(testbed.DelayLineConfig{ClientToServer: im, ServerToClient: im, Seed: seed})
	if err != nil {
		return "", err
	}
	defer func() { err = errors.Join(err, dl.Close()) }()
	if !sc.timestamps {
		for _, ns := range []*testbed.NetNS{dl.Client, dl.Server} {
			if err := ns.SetSysctl("net.ipv4.tcp_timestamps", "0"); err != nil {
				return "", err
			}
		}
	}
	path, client := dl.Path4(), dl.ClientAddr4
	if sc.ipv6 {
		path, client = dl.Path6(), dl.ClientAddr6
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	file := filepath.Join(dir, sc.file)
	stop, err := startTcpdump(ctx, dl.Client, dl.ClientIf, file, snaplen)
	if err != nil {
		return "", err
	}
	terr := sc.traffic(ctx, path)
	time.Sleep(100 * time.Millisecond) // let the last segments arrive
	packets, err := stop()
	if err = errors.Join(terr, err); err != nil {
		return "", err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return "", err
	}
	c2s, s2c := dl.Stats()
	ts := "on"
	if !sc.timestamps {
		ts = "off"
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %v | %g%% | %s | %d | %d | %d/%d |",
		sc.file, sc.desc, client, path.Dst, oneWay, 100*sc.loss, ts, packets, fi.Size(),
		c2s.Lost, s2c.Lost), nil
}

// startTcpdump starts tcpdump on ifname inside ns and waits until it
// captures. stop ends it and returns how many packets it captured.
func startTcpdump(ctx context.Context, ns *testbed.NetNS, ifname, file string, snaplen int) (stop func() (int, error), err error) {
	cmd := ns.Command(ctx, "tcpdump", "-i", ifname, "-n", "-U", "--immediate-mode", "-Z", "root",
		"-s", strconv.Itoa(snaplen), "--time-stamp-precision=nano", "-w", file, "tcp")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start tcpdump: %w", err)
	}
	lines := bufio.NewScanner(stderr)
	var head strings.Builder
	for lines.Scan() {
		head.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "listening on") {
			break
		}
	}
	if !strings.Contains(head.String(), "listening on") {
		_ = cmd.Wait()
		return nil, fmt.Errorf("start tcpdump: %s", strings.TrimSpace(head.String()))
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
		m := regexp.MustCompile(`(\d+) packets? captured`).FindStringSubmatch(summary)
		if m == nil {
			return 0, fmt.Errorf("tcpdump: no packet count in %q", summary)
		}
		return strconv.Atoi(m[1])
	}, nil
}

func writeManifest(file string, snaplen int, rows []string) error {
	var b strings.Builder
	fmt.Fprintf(&b, `# Recorded pcap files

Written by internal/testbed/cmd/record-pcaps; run it again to replace them:

	go run ./internal/testbed/cmd/record-pcaps -out capture/testdata

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

| file | traffic | client (local) | server | one-way delay | loss | TCP timestamps | packets | bytes | frames dropped c→s/s→c |
|---|---|---|---|---|---|---|---|---|---|
`, snaplen, seed)
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	return os.WriteFile(file, []byte(b.String()), 0o644)
}
