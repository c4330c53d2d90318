package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestStartCPUProfile: an empty path profiles nothing; a path gets a gzip
// profile once the returned stop ran; a path that cannot be created is an
// error and leaves no profile running (a second start succeeds).
func TestStartCPUProfile(t *testing.T) {
	stop, err := startCPUProfile("")
	if err != nil {
		t.Fatal(err)
	}
	stop()
	if _, err := startCPUProfile(filepath.Join(t.TempDir(), "missing", "cpu.pprof")); err == nil {
		t.Fatal("a path in a missing directory was accepted")
	}
	path := filepath.Join(t.TempDir(), "cpu.pprof")
	stop, err = startCPUProfile(path)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Fatalf("not a gzip profile (%d bytes)", len(b))
	}
}
