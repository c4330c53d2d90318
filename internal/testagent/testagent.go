// Package testagent runs real agent.Servers on Unix sockets for the tests
// of the packages built on the engine (engine/pool, httpguard, promstats):
// an agent that can be killed (every connection cut at once, so nothing
// more is answered) and started again on the same path.
package testagent

import (
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/agentwire/agentwire/agent"
)

// SockPath returns a fresh socket path in a short temporary directory
// (sockaddr_un paths are limited to about 108 bytes), removed at cleanup.
func SockPath(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "awt")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// UDS is an agent.Server for h on a Unix socket at Path. Its methods are
// safe for concurrent use.
type UDS struct {
	Path string

	tb   testing.TB
	h    agent.Handler
	opts []agent.Option

	mu   sync.Mutex // guards the fields below
	srv  *agent.Server
	ln   *trackingListener
	done chan struct{}
}

// New returns the agent, not yet started; it is stopped at cleanup.
func New(tb testing.TB, h agent.Handler, opts ...agent.Option) *UDS {
	tb.Helper()
	a := &UDS{tb: tb, Path: SockPath(tb), h: h, opts: opts}
	tb.Cleanup(a.Stop)
	return a
}

// Start returns the agent, serving.
func Start(tb testing.TB, h agent.Handler, opts ...agent.Option) *UDS {
	tb.Helper()
	a := New(tb, h, opts...)
	a.Start()
	return a
}

// Endpoint is the agent's endpoint for engine.Dial and pool.WithEndpoint.
func (a *UDS) Endpoint() string { return "unix://" + a.Path }

// Server returns the running server (nil while stopped), for pushes such
// as ReportHealth and for collectors.
func (a *UDS) Server() *agent.Server {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.srv
}

// Start serves the agent on its path (after Stop: a restart).
func (a *UDS) Start() {
	a.tb.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		a.tb.Fatal("agent already running")
	}
	_ = os.Remove(a.Path)
	nl, err := net.Listen("unix", a.Path)
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

// Stop kills the agent: every connection is cut at once (nothing more is
// answered), then the server is closed. Stopping a stopped agent does
// nothing.
func (a *UDS) Stop() {
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
