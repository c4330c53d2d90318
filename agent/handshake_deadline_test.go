package agent

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// trickle writes b to nc one byte every interval, from start, until the
// peer closes nc (a read returns an error) or limit has passed since start.
// It returns how long after start the peer closed, or ok false when it was
// still open at limit. A peer that answers before it closes fails the test.
func trickle(t *testing.T, nc net.Conn, b []byte, start time.Time, interval, limit time.Duration) (closedAfter time.Duration, ok bool) {
	t.Helper()
	closed := make(chan time.Duration, 1)
	go func() {
		var buf [64]byte
		nc.SetReadDeadline(start.Add(limit))
		n, err := nc.Read(buf[:])
		at := time.Since(start)
		if n > 0 {
			t.Errorf("peer answered %q before dropping the connection", buf[:n])
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			at = -1
		}
		closed <- at
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case at := <-closed:
			if at < 0 {
				t.Logf("peer still connected after %v, %d of %d bytes sent", limit, sent, len(b))
				return 0, false
			}
			t.Logf("peer closed %v after start, %d of %d bytes sent", at, sent, len(b))
			return at, true
		case <-tick.C:
			if sent < len(b) {
				if _, err := nc.Write(b[sent : sent+1]); err == nil {
					sent++
				}
			}
		}
	}
}

const trickleTimeout = 300 * time.Millisecond

// TestUDSHandshakeDeadlineIsAbsolute: WithHandshakeTimeout bounds the whole
// Unix-socket handshake, not the time between two bytes: a proxy sending
// its 0x01 one byte every 50 ms (never idle for the 300 ms timeout, several
// seconds for the frame) is disconnected at the timeout, unanswered.
// (Broken once, with the read deadline renewed on every read of the
// handshake: still connected at the 1.5 s bound.)
func TestUDSHandshakeDeadlineIsAbsolute(t *testing.T) {
	e := startUDS(t, BaseHandler{}, WithHandshakeTimeout(trickleTimeout))
	req := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "slow-proxy", ProxyVersion: "0.6.20",
		SupportedEncodings: []string{agentwire.EncodingJSON}}
	b, err := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &req))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(len(b))*50*time.Millisecond < 5*trickleTimeout {
		t.Fatalf("handshake of %d bytes too short for the test", len(b))
	}
	start := time.Now()
	nc, err := net.Dial("unix", e.path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	at, ok := trickle(t, nc, b, start, 50*time.Millisecond, 5*trickleTimeout)
	if !ok {
		t.Fatalf("handshake trickling in one byte per 50 ms still connected %v after it began (timeout %v)", 5*trickleTimeout, trickleTimeout)
	}
	if at < trickleTimeout-20*time.Millisecond || at > trickleTimeout+400*time.Millisecond {
		t.Fatalf("dropped %v after connecting, want about the handshake timeout %v", at, trickleTimeout)
	}
}

// TestReverseRegistrationAnswerDeadlineIsAbsolute: on a reverse connection
// WithHandshakeTimeout bounds the registration as a whole: a proxy that
// answers the registration one byte every 50 ms is dropped at the timeout
// (counted from before the registration was sent), and the agent dials
// again.
func TestReverseRegistrationAnswerDeadlineIsAbsolute(t *testing.T) {
	ln, path := unixListener(t)
	type accepted struct {
		c     net.Conn
		start time.Time
		err   error
	}
	first := make(chan accepted, 1)
	redialed := make(chan struct{})
	acceptDone := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-acceptDone
	})
	go func() {
		defer close(acceptDone)
		for i := 0; ; i++ {
			c, err := ln.Accept()
			if err != nil {
				if i == 0 {
					first <- accepted{err: err}
				}
				return
			}
			if i == 0 {
				start := time.Now()
				rd := frame.NewReader(c, 0)
				typ, _, err := rd.ReadFrame()
				rd.Release()
				if err == nil && typ != frame.TypeHandshakeRequest {
					err = errors.New("first frame is " + typ.String())
				}
				first <- accepted{c: c, start: start, err: err}
				continue
			}
			c.Close()
			if i == 1 {
				close(redialed)
			}
		}
	}()
	srv := NewServer(BaseHandler{}, WithHandshakeTimeout(trickleTimeout))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := serveReverse(t, srv, ctx, path, WithReconnectBackoff(time.Millisecond, 2*time.Millisecond))

	a := recvTimeout(t, first, "the agent's registration")
	if a.err != nil {
		t.Fatal(a.err)
	}
	defer a.c.Close()
	answer, err := frame.AppendFrame(nil, frame.TypeHandshakeResponse,
		payload.AppendRegistrationResponseJSON(nil, &agentwire.RegistrationResponse{Success: true, ConnectionID: "slow-1", ProxyID: "slow-proxy", ProxyVersion: "0.6.20"}))
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(len(answer))*50*time.Millisecond < 5*trickleTimeout {
		t.Fatalf("answer of %d bytes too short for the test", len(answer))
	}
	at, ok := trickle(t, a.c, answer, a.start, 50*time.Millisecond, 5*trickleTimeout)
	if !ok {
		t.Fatalf("registration answer trickling in one byte per 50 ms: agent still connected %v after it registered (timeout %v)", 5*trickleTimeout, trickleTimeout)
	}
	// The agent's clock started before it sent the registration, so
	// before start.
	if at > trickleTimeout+400*time.Millisecond {
		t.Fatalf("dropped %v after registering, want within the handshake timeout %v", at, trickleTimeout)
	}
	recvTimeout(t, redialed, "a new connection after the dropped one")
	cancel()
	if err := recvTimeout(t, done, "ServeReverse"); !errors.Is(err, context.Canceled) {
		t.Fatalf("ServeReverse: %v", err)
	}
	done <- nil
}
