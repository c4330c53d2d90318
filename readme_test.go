package agentwire_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// quickLook returns the Go program of the README's "Quick look" section:
// the first ```go block after that heading.
func quickLook(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## Quick look")
	if i < 0 {
		t.Fatal("README has no Quick look section")
	}
	s = s[i:]
	start := strings.Index(s, "```go\n")
	if start < 0 {
		t.Fatal("Quick look has no go block")
	}
	s = s[start+len("```go\n"):]
	end := strings.Index(s, "```")
	if end < 0 {
		t.Fatal("unterminated go block")
	}
	return s[:end]
}

// TestReadmeQuickLook builds and runs the README's quick look exactly as
// written: it must compile, and enforce the agent's block and the failure
// policy as its output says.
func TestReadmeQuickLook(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program")
	}
	src := quickLook(t)
	if !strings.Contains(src, "package main") || !strings.Contains(src, ".Decide(") {
		t.Fatal("the quick look must be a whole program that enforces a failure policy with Decide")
	}
	dir, err := os.MkdirTemp(".", "readmecheck")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.CommandContext(ctx, gobin, "run", "./"+filepath.Base(dir))
	cmd.Env = append(os.Environ(), "TMPDIR="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go run of the quick look: %v\n%s", err, out)
	}
	for _, want := range []string{"/index.html: pass to upstream", "/admin: respond 403 (synthetic: false, agent waf", "agent down: respond 503 (synthetic: true, agent waf, reason \"error\")"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
