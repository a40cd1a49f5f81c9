package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/go-metro/go-metro/capture"
)

func testdata(name string) string {
	return filepath.Join("..", "..", "capture", "testdata", name)
}

// jsonKeys returns the keys of a JSON object in the order they appear.
func jsonKeys(t *testing.T, line string) []string {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, tok.(string))
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

func TestReplayJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--json", "--local", "2001:db8::1", testdata("reqresp_ts_v6.pcap")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	wantKeys := map[string][]string{
		"sample": {"type", "time", "local", "remote", "method", "rtt_ms"},
		"peer": {"type", "local", "remote", "samples", "min_ms", "avg_ms", "jitter_ms", "p50_ms", "p95_ms", "p99_ms", "max_ms", "last_ms",
			"retransmits", "connections_opened", "connections_refused", "connections_timeouts", "resets_local", "resets_remote", "zero_windows"},
		"stats": {"type", "packets", "tcp_packets", "decode_errors", "flows", "flows_evicted", "samples", "samples_discarded", "copies"},
	}
	var types []string
	var samples int
	for _, l := range lines {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		typ := obj["type"].(string)
		if diff := cmp.Diff(wantKeys[typ], jsonKeys(t, l)); diff != "" {
			t.Errorf("%s keys (-want +got):\n%s", typ, diff)
		}
		if len(types) == 0 || types[len(types)-1] != typ {
			types = append(types, typ)
		}
		switch typ {
		case "sample":
			samples++
			if obj["local"] != "[2001:db8::1]:33126" || obj["remote"] != "[2001:db8::2]:45887" {
				t.Errorf("sample endpoints %v %v", obj["local"], obj["remote"])
			}
			if m := obj["method"]; m != "timestamp" && m != "handshake" {
				t.Errorf("method %v", m)
			}
			if r := obj["rtt_ms"].(float64); r < 10 || r > 25 {
				t.Errorf("rtt_ms %v: want about 10", r)
			}
		case "peer":
			if obj["local"] != "2001:db8::1" || obj["remote"] != "2001:db8::2" {
				t.Errorf("peer %v %v", obj["local"], obj["remote"])
			}
			if obj["samples"].(float64) != float64(samples) {
				t.Errorf("peer samples %v, %d sample lines", obj["samples"], samples)
			}
		case "stats":
			want := map[string]any{"type": "stats", "packets": 48.0, "tcp_packets": 48.0, "decode_errors": 0.0,
				"flows": 1.0, "flows_evicted": 0.0, "samples": float64(samples), "samples_discarded": 0.0, "copies": 0.0}
			if diff := cmp.Diff(want, obj); diff != "" {
				t.Errorf("stats (-want +got):\n%s", diff)
			}
		}
	}
	if diff := cmp.Diff([]string{"sample", "peer", "stats"}, types); diff != "" {
		t.Errorf("line order (-want +got):\n%s", diff)
	}
}

func TestReplayText(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--local", "192.0.2.1/32", testdata("reqresp_nots_v4.pcap"), testdata("short_conns_v4.pcap")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"LOCAL", "REMOTE", "192.0.2.1", "192.0.2.2", "seqack=", "handshake=", "flows 11"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestReplayInferLocal(t *testing.T) {
	tests := []struct {
		name     string
		files    []string
		wantCode int
		wantOut  string
		wantErr  []string
	}{
		{
			name:     "two addresses in every flow",
			files:    []string{"bulk_ts_v4.pcap"},
			wantCode: 2,
			wantErr:  []string{"cannot tell the local side", "--local", "192.0.2.1 (1 of 1 flows)", "192.0.2.2 (1 of 1 flows)"},
		},
		{
			name:     "one address in every flow",
			files:    []string{"bulk_ts_v4.pcap", "reqresp_ts_v6.pcap"},
			wantCode: 2,
			wantErr:  []string{"no address appears in every flow", "2001:db8::1 (1 of 2 flows)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			args := []string{"replay"}
			for _, f := range tt.files {
				args = append(args, testdata(f))
			}
			if code := run(args, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d: %s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr lacks %q: %s", w, stderr.String())
				}
			}
		})
	}
}

func TestReplayInferLocalOK(t *testing.T) {
	// A synthetic capture where one host talks to two peers: that host is
	// the only address in every flow.
	// Without --local, it is read twice, from a copy.
	path := filepath.Join(t.TempDir(), "two-peers.pcap")
	writeTwoPeerCapture(t, path)
	var stdout, stderr bytes.Buffer
	if code := run([]string{"replay", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "local: 203.0.113.1\n") {
		t.Errorf("local not inferred:\n%s", stdout.String())
	}
	for _, peer := range []string{"198.51.100.1", "198.51.100.2"} {
		if !strings.Contains(stdout.String(), peer) {
			t.Errorf("no row for %s:\n%s", peer, stdout.String())
		}
	}
}

func TestReplayErrors(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"no file", []string{"replay"}, 2, "no capture file given"},
		{"bad local", []string{"replay", "--local", "nope", "x.pcap"}, 2, `parse "nope": not an IP address`},
		{"bad method", []string{"replay", "--methods", "rtt", "x.pcap"}, 2, `unknown RTT method "rtt"`},
		{"missing file", []string{"replay", "--local", "192.0.2.1", "/nonexistent.pcap"}, 1, "no such file"},
		{"not a capture", []string{"replay", "--local", "192.0.2.1", "replay_test.go"}, 1, "not a pcap or pcapng file"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != tt.wantCode {
				t.Errorf("exit %d, want %d", code, tt.wantCode)
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestReplayPcapng(t *testing.T) {
	// The same traffic as pcap and as pcapng gives the same report.
	path := filepath.Join(t.TempDir(), "two-peers.pcapng")
	writeTwoPeerCaptureNg(t, path)
	pcap := filepath.Join(t.TempDir(), "two-peers.pcap")
	writeTwoPeerCapture(t, pcap)
	var a, b, stderr bytes.Buffer
	if code := run([]string{"replay", "--json", path}, &a, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"replay", "--json", pcap}, &b, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if diff := cmp.Diff(b.String(), a.String()); diff != "" {
		t.Errorf("pcapng vs pcap (-pcap +pcapng):\n%s", diff)
	}
	if !slices.ContainsFunc(strings.Split(a.String(), "\n"), func(l string) bool { return strings.Contains(l, `"type":"peer"`) }) {
		t.Errorf("no peer lines:\n%s", a.String())
	}
}

// TestReplayGrouping replays with --service-tags and --peer-prefix-v4: the
// peer records carry the direction and service port, and the remote
// network.
func TestReplayGrouping(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"replay", "--json", "--local", "192.0.2.1", "--service-tags", "--peer-prefix-v4", "24",
		testdata("reqresp_nots_v4.pcap"), testdata("short_conns_v4.pcap")}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var peers []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(stdout.String()), "\n") {
		var obj map[string]any
		if err := json.Unmarshal([]byte(l), &obj); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if obj["type"] == "peer" {
			peers = append(peers, obj)
		}
	}
	if len(peers) == 0 {
		t.Fatal("no peer records")
	}
	for _, p := range peers {
		if p["remote"] != "192.0.2.0/24" || p["direction"] != "outbound" || p["port"] == "" || p["port"] == nil {
			t.Errorf("peer %v: want remote 192.0.2.0/24, direction outbound and the server port", p)
		}
	}
	for _, bad := range [][]string{{"--peer-prefix-v4", "33"}, {"--peer-prefix-v6", "-1"}, {"--syn-timeout", "0s"}} {
		stderr.Reset()
		args := append(append([]string{"replay"}, bad...), testdata("reqresp_nots_v4.pcap"))
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), bad[0]) {
			t.Errorf("replay %v: exit %d, stderr %q; want a usage error naming %s", bad, code, stderr.String(), bad[0])
		}
	}
}

// readFrames returns the frames of a capture file, copied.
func readFrames(t *testing.T, path string) []capture.Frame {
	t.Helper()
	src, err := capture.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []capture.Frame
	for {
		f, err := src.ReadFrame()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		f.Data = bytes.Clone(f.Data)
		out = append(out, f)
	}
}

// writePcap writes frames of one link type to a new pcap file at path.
func writePcap(t *testing.T, path string, frames []capture.Frame) {
	t.Helper()
	var b bytes.Buffer
	w := pcapgo.NewWriterNanos(&b)
	if err := w.WriteFileHeader(65535, layers.LinkType(frames[0].Link)); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := w.WritePacket(gopacket.CaptureInfo{Timestamp: f.Time, CaptureLength: len(f.Data), Length: f.WireLen}, f.Data); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// replayRun runs go-metro replay with args and stdin, and returns its exit
// status, standard output and standard error.
func replayRun(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	r := replayer{stdin: stdin}
	err := r.main(args, &stdout, &stderr)
	code := 0
	if err != nil {
		fmt.Fprintf(&stderr, "go-metro replay: %v\n", err)
		code = 1
		switch {
		case errors.Is(err, errUsage):
			code = 2
		case errors.Is(err, errIncomplete):
			code = 3
		}
	}
	return code, stdout.String(), stderr.String()
}

// splitCapture writes the frames of the capture at path to three files,
// as tcpdump -C rotates a capture, and returns their paths in order.
func splitCapture(t *testing.T, path string) []string {
	t.Helper()
	frames := readFrames(t, path)
	dir := t.TempDir()
	var parts []string
	for i, n := 0, len(frames); i < 3; i++ {
		p := filepath.Join(dir, fmt.Sprintf("cap%d.pcap", i+1))
		writePcap(t, p, frames[i*n/3:(i+1)*n/3])
		parts = append(parts, p)
	}
	return parts
}

// TestReplayMergesFiles splits a capture in three and replays the parts
// in every order: the report is that of the whole capture, as if mergecap
// had merged them. With the local side inferred, and the middle part
// from standard input, which is read once, the same holds.
func TestReplayMergesFiles(t *testing.T) {
	twoPeers := filepath.Join(t.TempDir(), "two-peers.pcap")
	writeTwoPeerCapture(t, twoPeers)
	for _, tc := range []struct {
		whole string
		local []string // nil: inferred
	}{
		{testdata("bulk_ts_v4.pcap"), []string{"--local", "192.0.2.1"}},
		{testdata("short_conns_v4.pcap"), []string{"--local", "192.0.2.1"}},
		{twoPeers, nil},
	} {
		t.Run(filepath.Base(tc.whole), func(t *testing.T) {
			code, want, stderr := replayRun(t, nil, slices.Concat([]string{"--json"}, tc.local, []string{tc.whole})...)
			if code != 0 || !strings.Contains(want, `"type":"peer"`) {
				t.Fatalf("exit %d, no peer in the whole capture's report:\n%s%s", code, want, stderr)
			}
			parts := splitCapture(t, tc.whole)
			for _, order := range [][]int{{0, 1, 2}, {2, 1, 0}, {0, 2, 1}, {1, 0, 2}} {
				files := []string{parts[order[0]], parts[order[1]], parts[order[2]]}
				code, got, stderr := replayRun(t, nil, slices.Concat([]string{"--json"}, tc.local, files)...)
				if code != 0 {
					t.Fatalf("order %v: exit %d: %s", order, code, stderr)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("order %v: report (-whole +parts):\n%s", order, diff)
				}
				data, err := os.ReadFile(files[1])
				if err != nil {
					t.Fatal(err)
				}
				code, got, stderr = replayRun(t, bytes.NewReader(data), slices.Concat([]string{"--json"}, tc.local, []string{files[0], "-", files[2]})...)
				if code != 0 {
					t.Fatalf("order %v with -: exit %d: %s", order, code, stderr)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("order %v with -: report (-whole +parts):\n%s", order, diff)
				}
			}
		})
	}
}

// pipeOf returns the path of a pipe that delivers the file at path, as
// <(cat path) does.
func pipeOf(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pr.Close() })
	go func() {
		pw.Write(data)
		pw.Close()
	}()
	return fmt.Sprintf("/proc/self/fd/%d", pr.Fd())
}

// TestReplayPipe replays a pipe, as <(zcat f.pcap.gz) gives: with
// --local it is read once, as it comes; inferring the local side reads it
// twice, from a copy.
func TestReplayPipe(t *testing.T) {
	v6 := testdata("reqresp_ts_v6.pcap")
	twoPeers := filepath.Join(t.TempDir(), "two-peers.pcap")
	writeTwoPeerCapture(t, twoPeers)
	for _, tc := range []struct {
		path  string
		local []string
	}{
		{v6, []string{"--local", "2001:db8::1"}},
		{twoPeers, nil},
	} {
		_, want, _ := replayRun(t, nil, append(tc.local, tc.path)...)
		code, got, stderr := replayRun(t, nil, append(tc.local, pipeOf(t, tc.path))...)
		if code != 0 || got != want {
			t.Errorf("%s %v: exit %d, report from the pipe:\n%s%s\nwant:\n%s", tc.path, tc.local, code, got, stderr, want)
		}
	}
}

// TestReplayTruncated replays files cut short: inside the last record,
// right after a record header, inside a pcapng block. Every complete
// packet's results are printed, the peer and stats lines included, then a
// warning like tshark's, and the exit status is 3.
func TestReplayTruncated(t *testing.T) {
	whole := testdata("bulk_ts_v4.pcap")
	frames := readFrames(t, whole)
	dir := t.TempDir()
	complete := filepath.Join(dir, "complete.pcap")
	writePcap(t, complete, frames[:len(frames)-1])
	_, want, _ := replayRun(t, nil, "--json", "--local", "192.0.2.1", complete)
	data, err := os.ReadFile(whole)
	if err != nil {
		t.Fatal(err)
	}
	last := frames[len(frames)-1]
	for name, cut := range map[string]int{
		"inside the last record":    len(data) - 1,
		"right after a header":      len(data) - len(last.Data),
		"inside the last header":    len(data) - len(last.Data) - 5,
		"one byte of the last data": len(data) - len(last.Data) + 1,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "cut.pcap")
			if err := os.WriteFile(path, data[:cut], 0o644); err != nil {
				t.Fatal(err)
			}
			code, got, stderr := replayRun(t, nil, "--json", "--local", "192.0.2.1", path)
			if code != 3 {
				t.Errorf("exit %d, want 3", code)
			}
			if got != want {
				t.Errorf("report of the cut file:\n%s\nwant that of its complete packets:\n%s", got, want)
			}
			if !strings.Contains(stderr, "incomplete input: the results cover only the packets that could be read: read "+path+": the file appears to have been cut short in the middle of a packet") {
				t.Errorf("stderr: %s", stderr)
			}
			// Text output: the peer table and the stats line too.
			code, text, _ := replayRun(t, nil, "--local", "192.0.2.1", path)
			if code != 3 || !strings.Contains(text, "192.0.2.2") || !strings.Contains(text, "\npackets ") {
				t.Errorf("exit %d, text report:\n%s", code, text)
			}
		})
	}
}

// TestReplayInputErrors replays damaged and unsupported inputs and checks
// the exit status and message of each.
func TestReplayInputErrors(t *testing.T) {
	frames, _ := twoPeerFrames(t)
	pkt := frames[0]
	le := binary.LittleEndian
	block := func(typ uint32, body []byte) []byte {
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
		b := le.AppendUint32(nil, typ)
		b = le.AppendUint32(b, uint32(12+len(body)))
		b = append(b, body...)
		return le.AppendUint32(b, uint32(12+len(body)))
	}
	shb := func(major uint16) []byte {
		b := le.AppendUint32(nil, 0x1a2b3c4d)
		b = le.AppendUint16(b, major)
		b = le.AppendUint16(b, 0)
		return block(0x0a0d0d0a, le.AppendUint64(b, ^uint64(0)))
	}
	idb := func(link uint16) []byte {
		return block(1, le.AppendUint32(le.AppendUint16(le.AppendUint16(nil, link), 0), 0))
	}
	spb := block(3, append(le.AppendUint32(nil, uint32(len(pkt))), pkt...))
	ng := filepath.Join(t.TempDir(), "two-peers.pcapng")
	writeTwoPeerCaptureNg(t, ng)
	ngData, err := os.ReadFile(ng)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(ngData)
	le.PutUint32(corrupt[len(corrupt)-4:], 12) // the trailer of the last block
	write := func(name string, data []byte) string {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	for _, tt := range []struct {
		name    string
		args    []string
		code    int
		stderr  string
		samples bool // the report has the samples of the good packets
	}{
		{name: "simple packet blocks", args: []string{"--json", write("spb.pcapng", bytes.Join([][]byte{ngData, spb, spb}, nil))}, code: 3, samples: true,
			stderr: "skipped 2 Simple Packet Blocks: they carry no timestamp, so no RTT can be taken from them"},
		{name: "only simple packet blocks", args: []string{"--local", "203.0.113.1", write("spb.pcapng", bytes.Join([][]byte{shb(1), idb(1), spb, spb}, nil))}, code: 3,
			stderr: "skipped 2 Simple Packet Blocks"},
		{name: "unknown section version", args: []string{"--local", "203.0.113.1", write("v2.pcapng", bytes.Join([][]byte{shb(2), idb(1), spb}, nil))}, code: 1,
			stderr: "has pcapng version 2.0: unsupported; go-metro reads version 1"},
		{name: "unknown version of a later section", args: []string{"--local", "203.0.113.1", write("v2.pcapng", bytes.Join([][]byte{ngData, shb(2), idb(1), spb}, nil))}, code: 1,
			samples: true, stderr: "section 2, at offset "},
		{name: "unsupported link type", args: []string{"--local", "203.0.113.1", write("usb.pcapng", bytes.Join([][]byte{shb(1), idb(189)}, nil))}, code: 1,
			stderr: "interface 0 of section 1 (Interface Description Block at offset 28): unsupported link type LINKTYPE_189: go-metro decodes Ethernet"},
		{name: "corrupt block length", args: []string{"--json", "--local", "203.0.113.1", write("corrupt.pcapng", corrupt)}, code: 1, samples: true,
			stderr: "Enhanced Packet Block at offset "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, stderr := replayRun(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(stderr, tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.stderr)
			}
			if strings.Contains(stderr, "truncated") {
				t.Errorf("stderr %q says truncated", stderr)
			}
			if got := strings.Contains(out, "rtt_ms") || strings.Contains(out, "198.51.100.1  "); got != tt.samples {
				t.Errorf("samples in the report: %v, want %v:\n%s", got, tt.samples, out)
			}
			if strings.Contains(out, `"rtt_ms":0,`) || strings.Contains(out, "1754-") {
				t.Errorf("a sample at 0 ms or dated 1754:\n%s", out)
			}
		})
	}
}

// TestReplayArguments checks the answers to bad arguments, and to output
// that cannot be written.
func TestReplayArguments(t *testing.T) {
	pcap := testdata("bulk_ts_v4.pcap")
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"negative idle-ttl", []string{"--idle-ttl", "-5s", pcap}, 2, `invalid value "-5s" for flag -idle-ttl: -5s: must be positive`},
		{"idle-ttl without a unit", []string{"--idle-ttl", "5", pcap}, 2, `invalid value "5" for flag -idle-ttl: "5" has no unit: write it with one, such as 5s (seconds) or 5m (minutes)`},
		{"exp-ttl zero", []string{"--exp-ttl", "0s", pcap}, 2, "must be positive"},
		{"exp-ttl not a duration", []string{"--exp-ttl", "soon", pcap}, 2, "want a duration such as 300s or 5m"},
		{"local matches no flow", []string{"--local", "10.9.9.9", pcap}, 2,
			"--local 10.9.9.9 matches no flow of the capture: nothing was timed; pass --local with the host's address or prefix; candidates: 192.0.2.1 (1 of 1 flows), 192.0.2.2 (1 of 1 flows)"},
		{"local is every address", []string{"--local", "0.0.0.0/0", pcap}, 2, "0.0.0.0/0 covers every address: both ends of every flow would be local, and nothing timed"},
		{"local is every IPv6 address", []string{"--local", "192.0.2.1,::/0", pcap}, 2, "::/0 covers every address"},
		{"stdin twice", []string{"-", "-"}, 2, "- (standard input) given 2 times: it can be read once"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(append([]string{"replay"}, tt.args...), &stdout, &stderr); code != tt.code || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr.String(), tt.code, tt.stderr)
			}
		})
	}
	t.Run("write error", func(t *testing.T) {
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer full.Close()
		for _, args := range [][]string{{"replay", "--local", "192.0.2.1", pcap}, {"replay", "--json", "--local", "192.0.2.1", pcap}} {
			var stderr bytes.Buffer
			if code := run(args, full, &stderr); code != 1 || !strings.Contains(stderr.String(), "write the results: write /dev/full: no space left on device") {
				t.Errorf("%v: exit %d, stderr %q; want 1 and the write error", args, code, stderr.String())
			}
		}
	})
}
