package pool

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentwire/agentwire/agent"
)

// sockPath returns a fresh socket path in a short temporary directory
// (sockaddr_un paths are limited to about 108 bytes).
func sockPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "awp")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// udsAgent runs a real agent.Server on a Unix socket; it can be stopped
// (killed: every connection dropped at once) and started again on the
// same path.
type udsAgent struct {
	tb   testing.TB
	path string
	h    agent.Handler
	opts []agent.Option

	mu   sync.Mutex
	srv  *agent.Server
	done chan struct{}
}

func newUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	tb.Helper()
	a := &udsAgent{tb: tb, path: sockPath(tb), h: h, opts: opts}
	tb.Cleanup(a.stop)
	return a
}

func startUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	tb.Helper()
	a := newUDSAgent(tb, h, opts...)
	a.start()
	return a
}

// start serves the agent on its path (after stop: a restart).
func (a *udsAgent) start() {
	a.tb.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.tb.Fatal("agent already running")
	}
	_ = os.Remove(a.path)
	ln, err := net.Listen("unix", a.path)
	if err != nil {
		a.tb.Fatal(err)
	}
	srv := agent.NewServer(a.h, a.opts...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUDS(ln)
	}()
	a.srv, a.done = srv, done
}

// stop kills the agent: every connection is closed at once.
func (a *udsAgent) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv == nil {
		return
	}
	_ = a.srv.Close()
	<-a.done
	a.srv = nil
}

func (a *udsAgent) endpoint() string { return "unix://" + a.path }
