package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestBenchGap: bench --gap pauses each caller between round trips and
// reports the gap (gap_us); a negative gap is a usage error.
func TestBenchGap(t *testing.T) {
	addr := startServe(t, "--listen", "unix://"+shortSocketPath(t, "gap.sock"), "--agent", "echo")
	r := runCLI(t, "bench", "--agent", addr, "--encoding", "msgpack", "--gap", "2ms",
		"--concurrency", "1", "--duration", "200ms", "--warmup", "0s", "--json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	// About 100 round trips fit 200 ms with 2 ms pauses; back to back
	// there would be thousands.
	if m["gap_us"] != 2000.0 || m["errors"].(float64) != 0 || m["requests"].(float64) <= 0 || m["requests"].(float64) > 201 {
		t.Errorf("implausible report %s", r.stdout)
	}
	r = runCLI(t, "bench", "--agent", addr, "--gap", "-1ms")
	if r.code != 2 || !strings.Contains(r.stderr, "--gap") {
		t.Errorf("negative gap: exit %d, %s", r.code, r.stderr)
	}
}
