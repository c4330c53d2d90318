package main

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// runBinary runs the built agentwire binary (floor starts itself as the
// echo process, so it cannot run in-process) and returns its stdout.
func runBinary(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("agentwire %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// TestFloorJSON: floor prints bench's keys plus the message sizes, on both
// transports, with the echo's CPU measured in its own process.
func TestFloorJSON(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		req, rep float64
	}{
		{[]string{"--transport", "uds"}, 1137, 123},
		{[]string{"--transport", "uds", "--encoding", "json"}, 1280, 363},
		{[]string{"--transport", "grpc"}, 0, 0},
		{[]string{"--transport", "uds", "--size", "4096"}, 4096, 4096},
	} {
		args := append([]string{"floor", "--concurrency", "4", "--conns", "2", "--duration", "300ms", "--warmup", "50ms", "--json"}, tc.args...)
		out := runBinary(t, args...)
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		for _, k := range []string{"requests_per_sec", "p50_us", "p99_us", "allocs_per_request", "cpu_us_per_request", "agent_cpu_us_per_request", "errors", "requests", "concurrency", "conns", "request_bytes", "reply_bytes"} {
			if _, ok := m[k].(float64); !ok {
				t.Errorf("%v: key %q missing or not a number in %s", tc.args, k, out)
			}
		}
		if m["requests"].(float64) < 50 || m["errors"].(float64) != 0 || m["concurrency"].(float64) != 4 || m["conns"].(float64) != 2 {
			t.Errorf("%v: implausible report %s", tc.args, out)
		}
		if tc.req > 0 && (m["request_bytes"].(float64) != tc.req || m["reply_bytes"].(float64) != tc.rep) {
			t.Errorf("%v: sizes %v/%v, want %v/%v", tc.args, m["request_bytes"], m["reply_bytes"], tc.req, tc.rep)
		}
	}
}

// TestBenchFloor: bench --floor measures the floor with the run's settings
// and reports the fraction of it reached.
func TestBenchFloor(t *testing.T) {
	addr := startServe(t, "--listen", "unix://"+t.TempDir()+"/a.sock", "--agent", "echo")
	out := runBinary(t, "bench", "--agent", addr, "--encoding", "msgpack", "--concurrency", "4", "--duration", "300ms", "--warmup", "50ms", "--floor", "--json")
	var m struct {
		RPS      float64 `json:"requests_per_sec"`
		Fraction float64 `json:"floor_fraction"`
		P50Ratio float64 `json:"floor_p50_ratio"`
		Floor    *struct {
			Transport   string  `json:"transport"`
			Encoding    string  `json:"encoding"`
			Concurrency int     `json:"concurrency"`
			RPS         float64 `json:"requests_per_sec"`
			ReqBytes    int     `json:"request_bytes"`
		} `json:"floor"`
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if m.Floor == nil || m.Floor.Transport != "uds" || m.Floor.Encoding != "msgpack" || m.Floor.Concurrency != 4 || m.Floor.ReqBytes != 1137 || m.Floor.RPS <= 0 {
		t.Fatalf("floor: %s", out)
	}
	if m.Fraction <= 0 || m.P50Ratio <= 0 || abs(m.Fraction-m.RPS/m.Floor.RPS) > 1e-9 {
		t.Fatalf("fraction: %s", out)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func TestFloorUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"floor", "--transport", "tcp"},
		{"floor", "--encoding", "cbor"},
		{"floor", "--size", "-1"},
		{"floor", "--concurrency", "0"},
	} {
		if r := runCLI(t, args...); r.code != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, r.code, exitUsage, r.stderr)
		}
	}
}
