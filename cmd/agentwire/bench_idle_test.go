package main

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestBenchWindowsAndIdle: --window reports consecutive windows whose
// requests add up to the run's, and --idle the resident memory of both
// sides (here one process: the in-process agent is this process) before,
// with idle connections and after the load, with per-connection figures.
func TestBenchWindowsAndIdle(t *testing.T) {
	addr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "idle.sock"), "--agent", "echo")
	r := runCLI(t, "bench", "--agent", addr, "--encoding", "msgpack", "--conns", "3", "--concurrency", "6",
		"--duration", "400ms", "--warmup", "0s", "--window", "100ms", "--idle", "20ms", "--json",
		"--agent-pid", strconv.Itoa(os.Getpid()))
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	idle, _ := m["idle"].(map[string]any)
	num := func(k string) float64 { v, _ := idle[k].(float64); return v }
	ws, _ := m["windows"].([]any)
	if len(ws) < 3 || len(ws) > 5 {
		t.Fatalf("%d windows for 400 ms in windows of 100 ms: %s", len(ws), r.stdout)
	}
	var sum float64
	for i, w := range ws {
		wm := w.(map[string]any)
		for _, k := range []string{"start_s", "duration_s", "requests", "requests_per_sec", "p50_us", "p99_us", "max_us"} {
			if _, ok := wm[k].(float64); !ok {
				t.Errorf("window %d: key %q missing in %v", i, k, wm)
			}
		}
		if wm["requests"].(float64) <= 0 || wm["p99_us"].(float64) < wm["p50_us"].(float64) {
			t.Errorf("window %d implausible: %v", i, wm)
		}
		sum += wm["requests"].(float64)
	}
	if d := sum - m["requests"].(float64); d < -6 || d > 6 {
		t.Errorf("windows hold %.0f requests, the run %v", sum, m["requests"])
	}
	if num("conns") != 3 || num("wait_s") != 0.02 {
		t.Errorf("idle settings: %v", idle)
	}
	for _, k := range []string{"proxy_rss_kib_before", "proxy_rss_kib_idle", "proxy_rss_kib_after_load", "agent_rss_kib_before", "agent_rss_kib_idle", "agent_rss_kib_after_load"} {
		if num(k) <= 0 {
			t.Errorf("idle: %q missing or not positive in %v", k, idle)
		}
	}
	for _, k := range []string{"proxy_kib_per_conn", "proxy_kib_per_conn_after_load", "agent_kib_per_conn", "agent_kib_per_conn_after_load"} {
		if _, ok := idle[k].(float64); !ok {
			t.Errorf("idle: %q missing in %v", k, idle)
		}
	}
	if got, want := num("proxy_kib_per_conn"), (num("proxy_rss_kib_idle")-num("proxy_rss_kib_before"))/3; got != want {
		t.Errorf("proxy_kib_per_conn %v, want %v", got, want)
	}

	// The text report shows the same rows.
	r = runCLI(t, "bench", "--agent", addr, "--conns", "2", "--concurrency", "2",
		"--duration", "200ms", "--warmup", "0s", "--window", "100ms", "--idle", "10ms")
	if r.code != 0 || !strings.Contains(r.stdout, "window   0.0s") || !strings.Contains(r.stdout, "idle conns       2") {
		t.Errorf("exit %d, text report:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

// TestBenchWindowIdleUsage: negative --window or --idle is a usage error.
func TestBenchWindowIdleUsage(t *testing.T) {
	for _, flag := range []string{"--window", "--idle"} {
		r := runCLI(t, "bench", "--agent", "127.0.0.1:1", flag, "-1s")
		if r.code != exitUsage || !strings.Contains(r.stderr, "must not be negative") {
			t.Errorf("%s -1s: exit %d, stderr %q", flag, r.code, r.stderr)
		}
	}
}
