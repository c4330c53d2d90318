package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestProfile(t *testing.T) {
	for _, args := range [][]string{
		{"-transport", "grpc"},
		{"-transport", "uds"},
		{"-transport", "uds", "-encoding", "json", "-body-size", "200"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) { testProfile(t, args) })
	}
}

func testProfile(t *testing.T, args []string) {
	out := filepath.Join(t.TempDir(), "prof")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var stdout, stderr bytes.Buffer
	code := run(ctx, append(args, "-duration", "300ms", "-warmup", "50ms", "-concurrency", "8", "-out", out), &stdout, &stderr)
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
}

func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-duration", "1s"}, &stdout, &stderr); code != 2 {
		t.Fatalf("no -out: exit %d", code)
	}
	if code := run(context.Background(), []string{"-transport", "carrier", "-out", t.TempDir()}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "unknown transport") {
		t.Fatalf("bad transport: exit %d, %s", code, stderr.String())
	}
}
