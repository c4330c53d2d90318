//go:build !race

package engine

import (
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/allocs"
)

// TestDecideAllocs: Conn.Decide on an agent's reply allocates nothing
// (exact count over 10,000 calls).
func TestDecideAllocs(t *testing.T) {
	a := newTestAgent()
	ag := startUDSAgent(t, a)
	c := dialUDS(t, ag.path)
	reply := &agentwire.AgentResponse{Decision: agentwire.Block(403)}
	allocs.Zero(t, "Conn.Decide", 10000, func() {
		if v := c.Decide(reply, nil); v.Decision.Status != 403 || v.Agent == "" {
			t.Fatalf("verdict %+v", v)
		}
	})
}
