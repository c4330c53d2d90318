package promstats

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestCoreDoesNotImportPrometheus: the engine, the pool, the agent SDK and
// the data model do not depend on the Prometheus client; only this
// package does.
func TestCoreDoesNotImportPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*testTimeout)
	defer cancel()
	for _, pkg := range []string{"github.com/agentwire/agentwire", "github.com/agentwire/agentwire/engine",
		"github.com/agentwire/agentwire/engine/pool", "github.com/agentwire/agentwire/agent"} {
		out, err := exec.CommandContext(ctx, "go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.HasPrefix(dep, "github.com/prometheus/") {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
	out, err := exec.CommandContext(ctx, "go", "list", "-deps", "github.com/agentwire/agentwire/promstats").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "github.com/prometheus/client_golang/prometheus\n") {
		t.Fatalf("go list -deps promstats: %v (the check would see nothing)", err)
	}
}
