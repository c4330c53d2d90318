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
	ln   *trackingListener
	done chan struct{}
}

// trackingListener remembers the connections it accepted, so that a kill
// can cut them at once, before the server could answer anything more.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

func (l *trackingListener) cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range l.conns {
		_ = c.Close()
	}
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
	nl, err := net.Listen("unix", a.path)
	if err != nil {
		a.tb.Fatal(err)
	}
	ln := &trackingListener{Listener: nl}
	srv := agent.NewServer(a.h, a.opts...)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.ServeUDS(ln)
	}()
	a.srv, a.ln, a.done = srv, ln, done
}

// stop kills the agent: every connection is cut at once (nothing more is
// answered), then the server is closed.
func (a *udsAgent) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv == nil {
		return
	}
	a.ln.cut()
	_ = a.srv.Close()
	<-a.done
	a.srv = nil
}

func (a *udsAgent) endpoint() string { return "unix://" + a.path }
