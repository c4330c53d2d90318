package agent

import (
	"runtime"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// TestUDSInlinePushWriterExits: on a connection with inline handlers a
// push starts a writer that exits once the push is written, so an idle
// connection is back to its reader alone (uds_push.go); events keep
// being answered around the pushes, and the connection ends cleanly with
// the server (goleak in TestMain checks that nothing is left).
func TestUDSInlinePushWriterExits(t *testing.T) {
	e := startUDS(t, BaseHandler{}, WithInlineHandlers())
	p := dialRaw(t, e.path)
	p.handshake("msgpack")
	waitFor(t, "connection registered", func() bool { return e.srv.Stats().Conns == 1 })
	// The reader alone (and ServeUDS's own goroutine, which stops it).
	want := agentGoroutines()
	for i := range 3 {
		e.srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthState(1 + i%2)})
		if typ, _ := p.recv(); typ != frame.TypeHealthStatus {
			t.Fatalf("push %d: got a %v frame, want health", i, typ)
		}
		waitFor(t, "the push writer to exit", func() bool { return agentGoroutines() == want })
		p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("after-push", "/"))
		if r := p.recvReply(true); r.Decision.Kind != agentwire.DecisionAllow {
			t.Fatalf("reply after push %d: %+v", i, r)
		}
	}
}

// agentPkg prefixes the functions of this package.
const agentPkg = "github.com/agentwire/agentwire/agent."

// allStacks returns every goroutine's stack, one string each.
func allStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(string(buf), "\n\n")
}

// agentGoroutines counts the goroutines started by the agent's own code
// (their "created by" function is the agent's, outside its tests).
func agentGoroutines() int {
	count := 0
	for _, g := range allStacks() {
		lines := strings.Split(g, "\n")
		for i, l := range lines {
			fn, ok := strings.CutPrefix(l, "created by ")
			if !ok || !strings.HasPrefix(fn, agentPkg) || i+1 >= len(lines) {
				continue
			}
			file, _, _ := strings.Cut(strings.TrimSpace(lines[i+1]), ":")
			if !strings.HasSuffix(file, "_test.go") {
				count++
			}
		}
	}
	return count
}
