package engine

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// Tests of direct writes (direct.go): a call alone in flight writes its
// request-headers event itself when the writer is idle.

// TestDirectWriteAtOneInFlight: sequential calls over a Unix socket are
// written by their callers (the writer goroutine never handles them).
func TestDirectWriteAtOneInFlight(t *testing.T) {
	a := startUDSAgent(t, newTestAgent())
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			c := dialUDS(t, a.path, m.opts...)
			for i := range 5 {
				r, err := c.RequestHeaders(testCtx(t), headersEvent("direct-"+string(rune('a'+i))))
				if err != nil {
					t.Fatal(err)
				}
				if r.CorrelationID != "direct-"+string(rune('a'+i)) {
					t.Fatalf("reply for %q", r.CorrelationID)
				}
			}
			// Read on the calling goroutine, which did the writes.
			if n := udsOf(t, c).directWrites; n != 5 {
				t.Fatalf("%d direct writes, want 5", n)
			}
			if st := c.Stats(); st.Sent < 5 || st.Received != 5 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

// hugeHeadersEvent returns an event far larger than a Unix socket's
// buffers.
func hugeHeadersEvent(cid string) *agentwire.RequestHeadersEvent {
	ev := headersEvent(cid)
	ev.URI = "/" + strings.Repeat("u", 4<<20)
	return ev
}

// TestDirectWriteRestGoesToTheWriter: an event that the socket does not
// take in one non-blocking write is finished by the writer goroutine; the
// agent, reading late, gets the whole frame.
func TestDirectWriteRestGoesToTheWriter(t *testing.T) {
	start := make(chan struct{})
	got := make(chan string, 1)
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		<-start // the proxy's direct write fills the socket meanwhile
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ != frame.TypeRequestHeaders {
				continue
			}
			var ev agentwire.RequestHeadersEvent
			if err := payload.DecodeRequestHeadersJSON(p, &ev); err != nil {
				got <- "undecodable: " + err.Error()
				return
			}
			got <- ev.URI
			if rc.reply(ev.Metadata.CorrelationID) != nil {
				return
			}
		}
	})
	c := dialUDS(t, fa.path, WithMaxSendSize(8<<20))
	ev := hugeHeadersEvent("huge")
	want := ev.URI
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), ev)
		errs <- err
	}()
	// The caller wrote what fit and handed the rest over: the writer
	// holds the write role, blocked in its flush.
	waitUntil(t, "writer took over the rest", nil, func() bool { return c.sess.Load().wrole.Load() == 1 })
	close(start)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if uri := <-got; uri != want {
		t.Fatalf("agent got a URI of %d bytes, want %d", len(uri), len(want))
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
}

// TestDirectWriteNeverBlocksTheCaller: against an agent that stops reading,
// a call whose event does not fit returns at its own deadline (its caller
// never waits on the socket), and the writer, which took over the rest,
// declares the agent stuck after the write timeout.
func TestDirectWriteNeverBlocksTheCaller(t *testing.T) {
	hold := make(chan struct{})
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		<-hold // never reads again
	})
	t.Cleanup(func() { close(hold) })
	c := dialUDS(t, fa.path, WithMaxSendSize(8<<20), WithWriteTimeout(time.Second),
		WithReconnectBackoff(time.Hour, time.Hour))

	ctx, cancel := context.WithTimeout(testCtx(t), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.RequestHeaders(ctx, hugeHeadersEvent("stuck"))
	mustKind(t, err, ErrTimeout)
	if d := time.Since(start); d > 700*time.Millisecond {
		t.Fatalf("call returned after %v with a 100ms deadline: blocked on the socket", d)
	}
	// The writer's flush of the rest fails after the write timeout and
	// ends the session.
	s := c.sess.Load()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("session did not fail")
	}
	if !strings.Contains(s.lost.Error(), "not reading") {
		t.Fatalf("session lost with %v, want the agent not reading", s.lost)
	}
}

// TestDirectWriteGate: a call writes directly only with the write role
// free, nothing queued, no rest of an earlier write in the batch and no
// other call in flight; otherwise its event is left to the queue (so that
// what a caller queued before, a cancel say, goes out first).
func TestDirectWriteGate(t *testing.T) {
	pc, peer := unixPair(t)
	o := defaultOptions()
	c := newConnObj(nil, o)
	tr := newUDSTransport(pc, nil, 1<<20, false, false, o.logger)
	s := newSession(c, tr, fullCaps("gate"))
	if s.dw == nil {
		t.Fatal("no direct writes on a Unix socket")
	}
	try := func(cid string) bool {
		t.Helper()
		p := getPending(cid, new(agentwire.AgentResponse), wQueued)
		o := outbound{p: p, rh: headersEvent(cid)}
		ok := s.tryDirect(o)
		if !ok {
			o.free()
		}
		putPending(p)
		return ok
	}
	c.stats.inFlight.Store(1)

	if err := s.out.TryEnqueue(outbound{}); err != nil {
		t.Fatal(err)
	}
	if try("queued") {
		t.Fatal("direct write with the ring holding an earlier message")
	}
	s.out.TryDequeueBatch(make([]outbound, 4))

	s.wrole.Store(1)
	if try("role") {
		t.Fatal("direct write with the write role held")
	}
	s.wrole.Store(0)

	c.stats.inFlight.Store(2)
	if try("busy") {
		t.Fatal("direct write with another call in flight")
	}
	c.stats.inFlight.Store(1)

	tr.enc = append(tr.enc, 'x')
	tr.addEnc(0)
	if try("rest") {
		t.Fatal("direct write with the rest of an earlier write in the batch")
	}
	tr.resetBatch()

	if !try("ok") {
		t.Fatal("no direct write with the writer idle")
	}
	if s.wrole.Load() != 0 {
		t.Fatal("write role still held")
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	rd := frame.NewReader(peer, 0)
	defer rd.Release()
	typ, p, err := rd.ReadFrame()
	if err != nil || typ != frame.TypeRequestHeaders || eventID(p) != "ok" {
		t.Fatalf("peer read %v %q, %v", typ, eventID(p), err)
	}
}

// unixPair returns the two ends of a connected Unix socket.
func unixPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath(t), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptUnix()
		ch <- res{c, err}
	}()
	a, err := net.DialUnix("unix", nil, ln.Addr().(*net.UnixAddr))
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		a.Close()
		t.Fatal(r.err)
	}
	t.Cleanup(func() { a.Close(); r.c.Close() })
	return a, r.c
}
