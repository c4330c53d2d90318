package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestProfile runs the harness briefly on each transport and encoding and
// checks what it writes: the gzip profiles, the folded stacks (one
// "frames count" line per stack, agentwire frames under a side label) and the
// one command to view the flame graph as the last line. Skipped with -short
// (it runs the load for about a second per case).
func TestProfile(t *testing.T) {
	if testing.Short() {
		t.Skip("runs load for a while; skipped with -short")
	}
	for _, args := range [][]string{
		{"-transport", "grpc"},
		{"-transport", "uds"},
		{"-transport", "uds", "-encoding", "json", "-body-size", "200"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) { testProfile(t, args) })
	}
}

func testProfile(t *testing.T, args []string) {
	// A short run gets a few dozen CPU samples on an idle machine and only
	// a handful on a loaded one (seen: 2 under a parallel soak). Each
	// attempt runs longer; one must show agentwire frames under a side
	// label.
	var total int64
	var labelled bool
	for _, d := range []string{"300ms", "1s", "3s"} {
		total, labelled = profileOnce(t, args, d)
		if t.Failed() || (total > 0 && labelled) {
			return
		}
		t.Logf("-duration %s: %d samples, agentwire frames under a side label: %v; running longer", d, total, labelled)
	}
	t.Errorf("folded stacks: %d samples, agentwire frames under a side label: %v", total, labelled)
}

// profileOnce runs the harness for d and checks its files; it returns the
// folded stacks' sample count and whether agentwire frames appear under a
// side label.
func profileOnce(t *testing.T, args []string, d string) (total int64, labelled bool) {
	out := filepath.Join(t.TempDir(), "prof")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-duration", d, "-warmup", "50ms", "-concurrency", "8", "-out", out), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, n := range []string{"cpu.pprof", "allocs.pprof", "mutex.pprof"} {
		b, err := os.ReadFile(filepath.Join(out, n))
		if err != nil {
			t.Fatal(err)
		}
		// Profiles are gzip-compressed protocol buffers.
		if len(b) < 20 || b[0] != 0x1f || b[1] != 0x8b {
			t.Errorf("%s: not a gzip profile (%d bytes)", n, len(b))
		}
	}
	if !strings.Contains(stdout.String(), "rps=") || !strings.Contains(stdout.String(), "errors=0") {
		t.Errorf("stdout: %s", stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if want := "view the CPU flame graph: go tool pprof -http=:0 " + filepath.Join(out, "cpu.pprof"); lines[len(lines)-1] != want {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], want)
	}
	folded, err := os.ReadFile(filepath.Join(out, "cpu.folded"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSuffix(string(folded), "\n"), "\n") {
		i := strings.LastIndexByte(l, ' ')
		n, err := strconv.ParseInt(l[i+1:], 10, 64)
		if i <= 0 || err != nil || n <= 0 || strings.Contains(l[:i], " ") {
			t.Fatalf("folded line %q is not \"frame;frame;... count\"", l)
		}
		total += n
		// A few dozen samples in this short run: some are the engine's
		// or the agent's, under their side label.
		if (strings.HasPrefix(l, "side=engine;") || strings.HasPrefix(l, "side=agent;")) && strings.Contains(l, "agentwire/") {
			labelled = true
		}
	}
	return total, labelled
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-duration", "1s"}, &stdout, &stderr); code != 2 {
		t.Fatalf("no -out: exit %d", code)
	}
	if code := run(context.Background(), []string{"-transport", "grpc", "-encoding", "json", "-out", t.TempDir()}, &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), "-encoding applies to -transport uds") {
		t.Fatalf("grpc with -encoding: exit %d, %s", code, stderr.String())
	}
	if code := run(context.Background(), []string{"-transport", "carrier", "-out", t.TempDir()}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "unknown transport") {
		t.Fatalf("bad transport: exit %d, %s", code, stderr.String())
	}
}
