package engine

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// onceDialer opens one in-memory session; every later attempt fails, so a
// Conn that lost it stays reconnecting.
type onceDialer struct {
	opened atomic.Int32
	first  *memTransport
}

func (d *onceDialer) open(context.Context, *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	if d.opened.Add(1) == 1 {
		d.first = newMemTransport()
		return d.first, agentwire.Capabilities{ProtocolVersion: 2, AgentID: "mem"}, nil
	}
	return nil, agentwire.Capabilities{}, &Error{Kind: ErrConnectFailed, Detail: "test: agent gone"}
}

func (*onceDialer) close() error { return nil }

// Conn.Ping: "Without a context deadline the request timeout applies." With
// WithFailFastWhileReconnecting(false) a Ping issued while the Conn is
// reconnecting waited for the connection without any deadline.
func TestPingWithoutDeadlineWhileReconnectingUsesRequestTimeout(t *testing.T) {
	o := defaultOptions()
	for _, opt := range []Option{
		WithFailFastWhileReconnecting(false),
		WithRequestTimeout(100 * time.Millisecond),
		WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
	} {
		opt.apply(&o)
	}
	d := &onceDialer{}
	c, err := newConn(context.Background(), d, o)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d.first.close() // the agent goes away; reconnection keeps failing
	waitUntil(t, "the session to be lost", nil, func() bool { return !c.Health().Connected })

	errc := make(chan error, 1)
	go func() {
		_, err := c.Ping(context.Background())
		errc <- err
	}()
	select {
	case err := <-errc:
		mustKind(t, err, ErrTimeout)
	case <-time.After(3 * time.Second):
		t.Fatal("Ping without a context deadline ignored the request timeout while reconnecting")
	}
}

// Conn.Configure "pushes configuration ... and remembers it" and
// WithMaxSendSize: "Larger events fail with ErrMessageTooLarge before
// anything is sent". A Configure refused as too large was nevertheless
// remembered: every later reconnection put it into the handshake, which
// failed the same way, so the Conn could never reconnect.
func TestRefusedConfigureIsNotRemembered(t *testing.T) {
	a := newTestAgent()
	srv := startAgent(t, a)
	c := dial(t, srv.addr, WithMaxSendSize(1024), WithAgentConfig([]byte(`{"gen":1}`)),
		WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	big := []byte(`{"pad":"` + strings.Repeat("x", 2048) + `"}`)
	err := c.Configure(testCtx(t), &agentwire.ConfigureEvent{Config: big})
	mustKind(t, err, ErrMessageTooLarge)

	c.sess.Load().fail(ErrConnectionLost, errors.New("test: stream cut")) // force a reconnection
	waitUntil(t, "a reconnection", nil, func() bool { return c.Stats().Reconnects >= 1 })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after-reconnect")); err != nil {
		t.Fatal(err)
	}
	a.waitFor(t, "the second handshake", func() bool { return len(a.handshakes) >= 2 })
	a.mu.Lock()
	got := string(a.handshakes[len(a.handshakes)-1].Config)
	a.mu.Unlock()
	if got != `{"gen":1}` {
		t.Fatalf("handshake after reconnect carried config %.40q, want the last accepted one", got)
	}
}
