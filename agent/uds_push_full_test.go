package agent

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// armedGateLn hands out connections whose next Write after arm() waits
// until release() (held is closed when it starts waiting). Writes before
// arm() and after the held one go straight through.
type armedGateLn struct {
	net.Listener
	armed       atomic.Bool
	held, gate  chan struct{}
	releaseOnce sync.Once
}

func newArmedGateLn(ln net.Listener) *armedGateLn {
	return &armedGateLn{Listener: ln, held: make(chan struct{}), gate: make(chan struct{})}
}

func (l *armedGateLn) arm()     { l.armed.Store(true) }
func (l *armedGateLn) release() { l.releaseOnce.Do(func() { close(l.gate) }) }

func (l *armedGateLn) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &armedGateConn{Conn: c, l: l}, nil
}

type armedGateConn struct {
	net.Conn
	l *armedGateLn
}

func (c *armedGateConn) Write(b []byte) (int, error) {
	if c.l.armed.CompareAndSwap(true, false) {
		close(c.l.held)
		<-c.l.gate
	}
	return c.Conn.Write(b)
}

// TestUDSInlinePushListFullDrops: on a connection with inline handlers,
// while the reader is busy in a handler and the push writer is stuck
// writing one push, the push list takes exactly pushQueue (64) more; the
// next push is dropped without blocking the caller and counted in
// Stats.DroppedPushes, nothing else records or delivers it. Once the write
// completes, the held push and the 64 queued ones arrive in the order they
// were pushed, without waiting for the handler, and the handler's reply
// follows them; the list takes pushes again afterwards.
func TestUDSInlinePushListFullDrops(t *testing.T) {
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	var releaseOnce sync.Once
	releaseHandler := func() { releaseOnce.Do(func() { close(release) }) }
	h := Funcs{RequestHeaders: func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
		entered <- struct{}{}
		<-release
		return nil
	}}
	srv := NewServer(h, WithInlineHandlers())
	path := filepath.Join(sockDir(t), "agent.sock")
	ln, err := listenUnix(path, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	gl := newArmedGateLn(ln)
	served := make(chan error, 1)
	go func() { served <- srv.ServeUDS(gl) }()
	defer func() {
		releaseHandler()
		gl.release()
		srv.Close()
		recvTimeout(t, served, "ServeUDS")
	}()

	p := dialRaw(t, path)
	p.handshake("msgpack")
	waitFor(t, "connection registered", func() bool { return srv.Stats().Conns == 1 })
	// The reader alone (and ServeUDS's own goroutine): no push writer yet.
	idle := agentGoroutines()

	// The reader enters the handler and stays there.
	p.send(frame.TypeRequestHeaders, reqHeadersMsgpack("full-1", "/"))
	recvTimeout(t, entered, "the handler to start")

	// metrics builds push number i (its timestamp tells pushes apart).
	metrics := func(i int) *agentwire.MetricsReport {
		return &agentwire.MetricsReport{AgentID: "a", TimestampMS: uint64(1000 + i), IntervalMS: 1}
	}
	// The first push starts the writer, which takes it off the list and
	// is held in its Write.
	gl.arm()
	srv.ReportMetrics(metrics(0))
	recvTimeout(t, gl.held, "the push writer's write")

	before := srv.Stats().DroppedPushes
	filled := make(chan uint64, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 1; i <= pushQueue; i++ {
			srv.ReportMetrics(metrics(i))
		}
		filled <- srv.Stats().DroppedPushes
		srv.ReportMetrics(metrics(pushQueue + 1)) // the list is full
	}()
	// Neither the 64 queued pushes nor the dropped one block the caller,
	// though the reader and the writer are both held.
	recvTimeout(t, done, "the pushes to return")
	if got := <-filled; got != before {
		t.Fatalf("DroppedPushes %d after filling the list, want %d (the list holds %d)", got, before, pushQueue)
	}
	if got := srv.Stats().DroppedPushes; got != before+1 {
		t.Fatalf("DroppedPushes %d after the push beyond the full list, want %d", got, before+1)
	}

	// The held push and the 64 queued ones arrive in order while the
	// handler still runs.
	gl.release()
	for i := 0; i <= pushQueue; i++ {
		typ, b := p.recv()
		if typ != frame.TypeMetricsReport {
			t.Fatalf("frame %d: %v, want a metrics push", i, typ)
		}
		var m agentwire.MetricsReport
		if err := payload.DecodeMetricsReportMsgpack(b, &m); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := uint64(1000 + i); m.TimestampMS != want {
			t.Fatalf("frame %d: push with timestamp %d, want %d", i, m.TimestampMS, want)
		}
	}
	// The writer has written everything it was given and exits; the
	// dropped push was never queued, so the handler's reply comes next.
	waitFor(t, "the push writer to exit", func() bool { return agentGoroutines() == idle })
	releaseHandler()
	typ, b := p.recv()
	if typ != frame.TypeAgentResponse {
		t.Fatalf("after the pushes: %v frame, want the handler's reply", typ)
	}
	if r := decodeReply(t, b, true); r.CorrelationID != "full-1" || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("reply %+v", r)
	}

	// The list takes pushes again; nothing more was dropped.
	srv.ReportMetrics(metrics(500))
	typ, b = p.recv()
	var m agentwire.MetricsReport
	if typ != frame.TypeMetricsReport || payload.DecodeMetricsReportMsgpack(b, &m) != nil || m.TimestampMS != 1500 {
		t.Fatalf("push after the drop: %v frame %x, want metrics with timestamp 1500", typ, b)
	}
	if got := srv.Stats().DroppedPushes; got != before+1 {
		t.Fatalf("DroppedPushes %d at the end, want %d", got, before+1)
	}
}
