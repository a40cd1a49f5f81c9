package main

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
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
