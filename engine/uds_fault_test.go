package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// Fault tests: raw fake agents misbehave at the frame level; the Conn must
// fail exactly the affected requests, at once, never panic, and recover.

// TestUDSAgentKilledMidFlight: every pending request fails within 50 ms of
// the agent dying, and the Conn reconnects once the agent is back.
func TestUDSAgentKilledMidFlight(t *testing.T) {
	const n = 20
	got := make(chan struct{}, n)
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		for {
			if _, _, err := rc.rd.ReadFrame(); err != nil {
				return
			}
			got <- struct{}{} // never answered
		}
	})
	other := startUDSAgent(t, newTestAgent())
	bystander := dialUDS(t, other.path)
	c := dialUDS(t, fa.path, WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))

	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := c.RequestHeaders(testCtx(t), headersEvent(fmt.Sprint("k", i)))
			errs <- err
		}()
	}
	for range n {
		<-got
	}
	killed := time.Now()
	fa.stop()
	for range n {
		err := <-errs
		mustKind(t, err, ErrConnectionLost)
	}
	if d := time.Since(killed); d > 50*time.Millisecond {
		t.Fatalf("pending requests failed %v after the agent died, want <= 50ms", d)
	}
	if st := c.Stats(); st.ConnectionLost != n || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := bystander.RequestHeaders(testCtx(t), headersEvent("b")); err != nil {
		t.Fatalf("another connection was affected: %v", err)
	}

	// The agent comes back at the same path: the Conn reconnects.
	startRawAgentAt(t, fa.path, func(rc *rawConn) {
		if rc.handshake("") == nil {
			rc.echoLoop()
		}
	})
	waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects == 1 })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("back")); err != nil {
		t.Fatal(err)
	}
}

// faultAgent answers the first connection's first event with bad bytes
// (then keeps the connection open until the proxy drops it) and echoes on
// every later connection.
func faultAgent(t *testing.T, bad func(rc *rawConn, eventPayload []byte)) *rawAgent {
	var conns atomic.Int32
	return startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		if conns.Add(1) > 1 {
			rc.echoLoop()
			return
		}
		_, p, err := rc.rd.ReadFrame()
		if err != nil {
			return
		}
		bad(rc, p)
		for {
			if _, _, err := rc.rd.ReadFrame(); err != nil {
				return
			}
		}
	})
}

// TestUDSBrokenFraming: a half-written frame, an oversized or zero LEN end
// the connection with a typed cause; the pending request fails at once and
// the Conn reconnects. Other connections are unaffected.
func TestUDSBrokenFraming(t *testing.T) {
	other := startUDSAgent(t, newTestAgent())
	bystander := dialUDS(t, other.path)
	cases := []struct {
		name  string
		bytes []byte
		opts  []Option
		check func(error) bool
	}{
		{"half-frame", []byte{0, 0, 0, 50, 0x20, '{', '"'}, nil, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"half-header", []byte{0, 0}, nil, func(err error) bool { return errors.Is(err, io.ErrUnexpectedEOF) }},
		{"oversized", []byte{0x01, 0x00, 0x00, 0x01, 0x20}, nil, func(err error) bool {
			var tl *frame.TooLargeError
			return errors.As(err, &tl) && tl.Len == frame.MaxLen+1
		}},
		{"above-recv-limit", []byte{0x00, 0x00, 0x10, 0x00, 0x20}, []Option{WithMaxRecvSize(1024)}, func(err error) bool {
			var tl *frame.TooLargeError
			return errors.As(err, &tl) && tl.Max == 1025
		}},
		{"zero-length", []byte{0, 0, 0, 0, 0x20}, nil, func(err error) bool { return errors.Is(err, frame.ErrZeroLength) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fa := faultAgent(t, func(rc *rawConn, _ []byte) {
				_ = rc.writeRaw(tc.bytes)
				if strings.HasPrefix(tc.name, "half") {
					rc.Close() // the rest never comes
				}
			})
			c := dialUDS(t, fa.path, append([]Option{WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond)}, tc.opts...)...)
			start := time.Now()
			_, err := c.RequestHeaders(testCtx(t), headersEvent("x"))
			mustKind(t, err, ErrConnectionLost)
			if !tc.check(err) {
				t.Fatalf("cause of %v is not the expected typed error", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("failed after %v", d)
			}
			waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects == 1 })
			if _, err := c.RequestHeaders(testCtx(t), headersEvent("y")); err != nil {
				t.Fatal(err)
			}
			if _, err := bystander.RequestHeaders(testCtx(t), headersEvent("b")); err != nil {
				t.Fatalf("another connection was affected: %v", err)
			}
		})
	}
}

// TestUDSUnknownFrameTypeSkipped: a frame with a type byte outside the
// table is skipped (payload consumed) and counted; the connection goes on.
func TestUDSUnknownFrameTypeSkipped(t *testing.T) {
	fa := faultAgent(t, func(rc *rawConn, p []byte) {
		_ = rc.writeRaw([]byte{0, 0, 0, 6, 0xF0, 'j', 'u', 'n', 'k', '!'})
		_ = rc.writeRaw([]byte{0, 0, 0, 1, 0x21}) // empty payload, also unknown
		_ = rc.writeFrame(frame.TypeRequestHeaders, []byte(`{}`))
		_ = rc.reply(eventID(p))
	})
	c := dialUDS(t, fa.path)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("u")); err != nil {
		t.Fatal(err)
	}
	// The fault agent reads but never answers later events on this
	// connection: the point is that it is still the same connection.
	ctx, cancel := context.WithTimeout(testCtx(t), 50*time.Millisecond)
	defer cancel()
	_, err := c.RequestHeaders(ctx, headersEvent("u2"))
	mustKind(t, err, ErrTimeout)
	if st := c.Stats(); st.ProtocolErrors != 3 || st.Reconnects != 0 || st.ConnectionLost != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// msgpackReply hand-builds a MessagePack reply map.
func msgpackReply(version any, decision string, cid any) []byte {
	b := msgp.AppendMapHeader(nil, 3)
	b = msgp.AppendString(b, "version")
	switch v := version.(type) {
	case int:
		b = msgp.AppendInt(b, v)
	case string:
		b = msgp.AppendString(b, v)
	}
	b = msgp.AppendString(b, "decision")
	b = msgp.AppendString(b, decision)
	b = msgp.AppendString(b, "audit")
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, "custom")
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(b, "correlation_id")
	switch v := cid.(type) {
	case string:
		b = msgp.AppendString(b, v)
	case int:
		b = msgp.AppendInt(b, v)
	}
	return b
}

// TestUDSReplyRouting: replies in every shape the scan must follow, and
// undecodable replies that fail only their own request, at once.
func TestUDSReplyRouting(t *testing.T) {
	type exchange struct {
		cid     string
		reply   []byte // nil: no reply
		wantErr error  // nil: success
	}
	jsonCases := []exchange{
		{"plain", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"plain"}}}`), nil},
		{"spaced", []byte(" { \"version\" : 2 , \"decision\" : { \"block\" : { \"status\" : 451 } } ,\n\"audit\":{\"tags\":[\"a\",\"}{]\"],\"custom\":{ \"z\" : [1,{\"correlation_id\":\"nope\"}], \"correlation_id\" : \"spaced\" }}}"), nil},
		{"arrAy", []byte(`[2,"allow",[],[],{},[[],[],null,[],{"correlation_id":"arr\u0041y"}]]`), nil},
		{"esc\"aped", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"esc\"aped"}}}`), nil},
		{"last-wins", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"first","correlation_id":"last-wins"}}}`), nil},
		{"escaped-key", []byte(`{"version":2,"decision":"allow","\u0061udit":{"custom":{"correlation_id":"escaped-key"}}}`), nil},
		{"bad-decision", []byte(`{"version":2,"decision":"explode","audit":{"custom":{"correlation_id":"bad-decision"}}}`), ErrProtocol},
		{"no-version", []byte(`{"decision":"allow","audit":{"custom":{"correlation_id":"no-version"}}}`), ErrProtocol},
		{"bad-status", []byte(`{"version":2,"decision":{"block":{"status":70000}},"audit":{"custom":{"correlation_id":"bad-status"}}}`), ErrProtocol},
		{"truncated", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"truncated"}}`), ErrProtocol},
		{"trailing-garbage", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"trailing-garbage"}}}x`), ErrProtocol},
		{"numeric-id", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":7}}}`), ErrTimeout},
		{"no-id", []byte(`{"version":2,"decision":"allow"}`), ErrTimeout},
		{"not-json", []byte(`\x00\x01garbage`), ErrTimeout},
		{"good", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"good"}}}`), nil},
	}
	mpCases := []exchange{
		{"plain", msgpackReply(2, "allow", "plain"), nil},
		{"str-version", msgpackReply("2", "allow", "str-version"), ErrProtocol},
		{"bad-decision", msgpackReply(2, "explode", "bad-decision"), ErrProtocol},
		{"numeric-id", msgpackReply(2, "allow", 5), ErrTimeout},
		{"json-in-msgpack", []byte(`{"version":2,"decision":"allow","audit":{"custom":{"correlation_id":"json-in-msgpack"}}}`), ErrTimeout},
		{"good", msgpackReply(2, "allow", "good"), nil},
	}
	run := func(t *testing.T, enc string, opts []Option, cases []exchange) {
		byID := map[string][]byte{}
		for _, e := range cases {
			byID[e.cid] = e.reply
		}
		fa := startRawAgent(t, func(rc *rawConn) {
			if rc.handshake(enc) != nil {
				return
			}
			for {
				typ, p, err := rc.rd.ReadFrame()
				if err != nil {
					return
				}
				if typ != frame.TypeRequestHeaders {
					continue
				}
				var cid string
				if enc == "msgpack" {
					id, _ := payload.EventCorrelationIDMsgpack(p)
					cid = string(id)
				} else {
					cid = eventID(p)
				}
				if r := byID[cid]; r != nil {
					_ = rc.writeFrame(frame.TypeAgentResponse, r)
				}
			}
		})
		c := dialUDS(t, fa.path, opts...)
		var wg sync.WaitGroup
		for _, e := range cases {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(testCtx(t), 400*time.Millisecond)
				defer cancel()
				start := time.Now()
				r, err := c.RequestHeaders(ctx, headersEvent(e.cid))
				switch {
				case e.wantErr == nil && err != nil:
					t.Errorf("%s: %v", e.cid, err)
				case e.wantErr == nil && r.CorrelationID != e.cid:
					t.Errorf("%s: reply for %q", e.cid, r.CorrelationID)
				case e.wantErr != nil && !errors.Is(err, e.wantErr):
					t.Errorf("%s: error %v, want %v", e.cid, err, e.wantErr)
				case e.wantErr == ErrProtocol && time.Since(start) > 300*time.Millisecond:
					t.Errorf("%s: protocol error only after %v", e.cid, time.Since(start))
				}
			}()
		}
		wg.Wait()
		st := c.Stats()
		if st.ConnectionLost != 0 || st.Reconnects != 0 {
			t.Fatalf("the connection did not survive: %+v", st)
		}
		if _, err := c.RequestHeaders(testCtx(t), headersEvent("good")); err != nil {
			t.Fatalf("after the faults: %v", err)
		}
	}
	t.Run("json", func(t *testing.T) { run(t, "", nil, jsonCases) })
	t.Run("msgpack", func(t *testing.T) { run(t, "msgpack", []Option{WithMsgpack()}, mpCases) })
}

// TestUDSOrphansAndUnexpected: replies nobody waits for and frame types an
// agent must not send are counted and ignored.
func TestUDSOrphansAndUnexpected(t *testing.T) {
	fa := faultAgent(t, func(rc *rawConn, p []byte) {
		_ = rc.reply("nobody")
		_ = rc.writeFrame(frame.TypeHandshakeResponse, []byte(`{}`))
		_ = rc.writeFrame(frame.TypeCancel, []byte(`{}`))
		_ = rc.writeFrame(frame.TypeHealthStatus, []byte(`{"state":"sick"}`))
		_ = rc.writeFrame(frame.TypePong, []byte(`[`))
		_ = rc.reply(eventID(p))
	})
	c := dialUDS(t, fa.path)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("o")); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "counters", nil, func() bool { st := c.Stats(); return st.Orphans == 1 && st.ProtocolErrors == 4 })
}

// TestUDSRequestTooLarge: an event above the send limit fails before
// anything is sent; the connection is unaffected.
func TestUDSRequestTooLarge(t *testing.T) {
	srv := startUDSAgent(t, newTestAgent())
	c := dialUDS(t, srv.path, WithMaxSendSize(4096))
	_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: "big", Data: make([]byte, 4096)})
	mustKind(t, err, ErrMessageTooLarge)
	if _, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: "small", Data: make([]byte, 1024)}); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Sent != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestUDSTenThousandConcurrent: 10,000 concurrent requests on one Conn,
// each answered with its own id echoed in the reply body.
func TestUDSTenThousandConcurrent(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			a := newTestAgent()
			a.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
				r.Audit.Tags = append(r.Audit.Tags, ev.URI)
				return nil
			}
			srv := startUDSAgent(t, a)
			c := dialUDS(t, srv.path, m.opts...)
			const n = 10000
			var wg sync.WaitGroup
			var bad atomic.Int32
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cid := fmt.Sprint("m-", i)
					r, err := c.RequestHeaders(ctx, headersEvent(cid))
					if err != nil || r.CorrelationID != cid || len(r.Audit.Tags) != 1 || r.Audit.Tags[0] != "/"+cid {
						if bad.Add(1) <= 5 {
							t.Errorf("%s: %+v %v", cid, r, err)
						}
					}
				}()
			}
			wg.Wait()
			if st := c.Stats(); bad.Load() != 0 || st.Received != n || st.Orphans != 0 || st.InFlight != 0 {
				t.Fatalf("%d bad; stats %+v", bad.Load(), st)
			}
		})
	}
}

// countingConn counts Write calls (it has no writev, so the transport
// coalesces a batch into one Write).
type countingConn struct {
	net.Conn
	writes atomic.Int32
	buf    bytes.Buffer
	mu     sync.Mutex
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.Write(b)
}

// TestUDSWriterBatching: frames handed to send go out together at flush,
// in order, with one write (coalesced) or one writev (Unix socket); a
// batch over the frame limit flushes early.
func TestUDSWriterBatching(t *testing.T) {
	cc := &countingConn{}
	tr := newUDSTransport(cc, nil, frame.MaxLen-1, false, false, nil)
	var want []byte
	for i := range 100 {
		b, err := tr.cancel(fmt.Sprint("id-", i), agentwire.CancelTimeout, 1)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, b.ReadOnlyData()...)
		if err := tr.send(outbound{buf: b}); err != nil {
			t.Fatal(err)
		}
	}
	if cc.writes.Load() != 0 {
		t.Fatal("send wrote before flush")
	}
	if err := tr.flush(); err != nil {
		t.Fatal(err)
	}
	if cc.writes.Load() != 1 || !bytes.Equal(cc.buf.Bytes(), want) {
		t.Fatalf("%d writes; bytes equal: %v", cc.writes.Load(), bytes.Equal(cc.buf.Bytes(), want))
	}
	for range udsMaxBatchFrames + 10 {
		b, _ := tr.ping(1, 1)
		if err := tr.send(outbound{buf: b}); err != nil {
			t.Fatal(err)
		}
	}
	if cc.writes.Load() != 2 {
		t.Fatalf("%d writes after a batch over the limit, want an early flush", cc.writes.Load())
	}

	// writev on a real Unix socket: the peer reads the same bytes.
	path := sockPath(t)
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer nc.Close()
		b, _ := io.ReadAll(nc)
		got <- b
	}()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ut := newUDSTransport(nc, nil, frame.MaxLen-1, false, false, nil)
	if !ut.writev {
		t.Fatal("a *net.UnixConn does not take the writev path")
	}
	want = want[:0]
	for i := range 300 {
		b, _ := ut.cancel(fmt.Sprint("w-", i), agentwire.CancelManual, 7)
		want = append(want, b.ReadOnlyData()...)
		_ = ut.send(outbound{buf: b})
	}
	if err := ut.flush(); err != nil {
		t.Fatal(err)
	}
	// One batch mixing events the writer encodes itself (into its write
	// buffer), small queued frames (copied there too) and a large one
	// (written from its own buffer): the bytes keep the queue's order.
	big, err := ut.bodyChunk(&agentwire.BodyChunk{CorrelationID: "big", Data: bytes.Repeat([]byte("b"), 3*udsCopyMax)}, false, 5)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		ev := headersEvent(fmt.Sprint("e-", i))
		ev.Metadata.Timestamp = time.UnixMilli(1700000000000).UTC()
		frameBytes, err := ut.appendRequestHeaders(nil, ev, 0)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, frameBytes...)
		if err := ut.appendRequestHeadersEvent(ev); err != nil {
			t.Fatal(err)
		}
		if err := ut.batchFull(); err != nil {
			t.Fatal(err)
		}
		switch i {
		case 2:
			want = append(want, big.ReadOnlyData()...)
			_ = ut.send(outbound{buf: big})
		case 3:
			b, _ := ut.cancel("c-3", agentwire.CancelManual, 7)
			want = append(want, b.ReadOnlyData()...)
			_ = ut.send(outbound{buf: b})
		}
	}
	if n := len(ut.segs); n != 3 {
		t.Fatalf("%d segments, want 3 (written buffer, large frame, written buffer)", n)
	}
	if err := ut.flush(); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if b := <-got; !bytes.Equal(b, want) {
		t.Fatalf("peer read %d bytes, want %d", len(b), len(want))
	}
}

// TestUDSLivenessPing: an agent that stops answering (without closing) is
// detected by the liveness ping over the Unix socket, and the Conn
// reconnects.
func TestUDSLivenessPing(t *testing.T) {
	var conns atomic.Int32
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		if conns.Add(1) == 1 {
			_, _ = io.Copy(io.Discard, rc) // hung: reads, never answers
			return
		}
		for {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypePing {
				_ = rc.writeFrame(frame.TypePong, p) // echo, like the Rust SDK
			}
		}
	})
	c := dialUDS(t, fa.path, WithLivenessPing(20*time.Millisecond, 100*time.Millisecond), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	waitUntil(t, "liveness failure and reconnect", nil, func() bool { return c.Stats().Reconnects >= 1 })
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
}

// TestUDSRepliesBeforeBrokenFrame: replies that arrive in the same read as
// a frame that ends the connection (here a zero length prefix) still
// complete their requests with the agent's answer; only the requests left
// without a reply fail with ErrConnectionLost: the frame that ends the
// connection does not take the replies read with it down too.
func TestUDSRepliesBeforeBrokenFrame(t *testing.T) {
	const answered, unanswered = 8, 3
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		var ids []string
		for len(ids) < answered+unanswered {
			typ, p, err := rc.rd.ReadFrame()
			if err != nil {
				return
			}
			if typ == frame.TypeRequestHeaders {
				ids = append(ids, eventID(p))
			}
		}
		// One write: the replies for the "ok-" requests, then a zero
		// length prefix.
		var out []byte
		for _, id := range ids {
			if strings.HasPrefix(id, "ok-") {
				r := agentwire.AgentResponse{CorrelationID: id}
				out, _ = frame.AppendFrame(out, frame.TypeAgentResponse, payload.AppendAgentResponseJSON(nil, &r))
			}
		}
		out = append(out, 0, 0, 0, 0, byte(frame.TypeAgentResponse))
		_ = rc.writeRaw(out)
		_, _, _ = rc.rd.ReadFrame() // until the engine closes
	})
	c := dialUDS(t, fa.path, WithReconnectBackoff(time.Hour, time.Hour))
	type result struct {
		id  string
		err error
	}
	results := make(chan result, answered+unanswered)
	for i := range answered + unanswered {
		id := fmt.Sprint("ok-", i)
		if i >= answered {
			id = fmt.Sprint("lost-", i)
		}
		go func() {
			_, err := c.RequestHeaders(testCtx(t), headersEvent(id))
			results <- result{id, err}
		}()
	}
	within(t, 5*time.Second, "every request ends", func() {
		for range answered + unanswered {
			r := <-results
			if strings.HasPrefix(r.id, "ok-") {
				if r.err != nil {
					t.Errorf("%s: answered before the broken frame, got %v", r.id, r.err)
				}
			} else {
				mustKind(t, r.err, ErrConnectionLost)
			}
		}
	})
}

// TestUDSPerRequestPausesBounded: an agent that pauses ever new
// correlation ids cannot grow the proxy's memory: past maxPausedIDs the
// pauses are refused (and counted), and a paused request's entry leaves
// with its RequestComplete or Cancel.
func TestUDSPerRequestPausesBounded(t *testing.T) {
	const extra = 100
	total := maxPausedIDs + extra
	ready := make(chan struct{})
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		var out []byte
		for i := range total {
			f := agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some(fmt.Sprint("p-", i))}
			out, _ = frame.AppendFrame(out, frame.TypeFlowControl, payload.AppendFlowControlSignalJSON(nil, &f))
		}
		if rc.writeRaw(out) != nil {
			return
		}
		close(ready)
		rc.echoLoop()
	})
	c := dialUDS(t, fa.path)
	<-ready
	waitUntil(t, "every flow signal", nil, func() bool { return c.Stats().FlowSignals == uint64(total) })
	s := c.sess.Load()
	if got := s.pausedIDs.size(); got != maxPausedIDs || s.nPaused.Load() != maxPausedIDs {
		t.Fatalf("%d paused ids (count %d), want the bound %d", got, s.nPaused.Load(), maxPausedIDs)
	}
	if st := c.Stats(); st.ProtocolErrors != extra {
		t.Fatalf("%d protocol errors, want %d refused pauses", st.ProtocolErrors, extra)
	}
	ctx := testCtx(t)
	// A refused pause left its request free to go.
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: fmt.Sprint("p-", total-1)}); err != nil {
		t.Fatalf("request whose pause was refused: %v", err)
	}
	// A paused request is held, including its RequestComplete (every event
	// kind is checked), and is forgotten with it.
	_, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "p-0"})
	mustKind(t, err, ErrFlowPaused)
	_, err = c.RequestComplete(ctx, &agentwire.RequestCompleteEvent{CorrelationID: "p-0"})
	mustKind(t, err, ErrFlowPaused)
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "p-0"}); err != nil {
		t.Fatalf("after RequestComplete the pause is gone: %v", err)
	}
	// Cancel forgets the pause too.
	if err := c.Cancel("p-1", agentwire.CancelManual); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: "p-1"}); err != nil {
		t.Fatalf("after Cancel the pause is gone: %v", err)
	}
	if got := s.pausedIDs.size(); got != maxPausedIDs-2 || s.nPaused.Load() != maxPausedIDs-2 {
		t.Fatalf("%d paused ids (count %d), want %d", got, s.nPaused.Load(), maxPausedIDs-2)
	}
}

// TestUDSAgentStopsReading: an agent that keeps its socket open but stops
// reading is declared stuck once a write blocks for the write timeout:
// every pending call fails with ErrConnectionLost (cause: the agent is not
// reading) instead of each waiting for its own deadline, and the Conn
// reconnects.
func TestUDSAgentStopsReading(t *testing.T) {
	var conns atomic.Int32
	hold := make(chan struct{})
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		if conns.Add(1) == 1 {
			<-hold // never reads again
			return
		}
		rc.echoLoop()
	})
	t.Cleanup(func() { close(hold) }) // before the agent stops (cleanups run last first)
	c := dialUDS(t, fa.path, WithWriteTimeout(150*time.Millisecond), WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond))
	const n = 16
	body := bytes.Repeat([]byte("x"), 256<<10) // far more than the socket buffers hold
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		go func() {
			_, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: fmt.Sprint("s-", i), Data: body})
			errs <- err
		}()
	}
	within(t, 5*time.Second, "every call fails", func() {
		lost := 0
		for range n {
			err := <-errs
			if errors.Is(err, ErrNotConnected) {
				continue // started after the session had failed (fail fast while reconnecting)
			}
			mustKind(t, err, ErrConnectionLost)
			if !strings.Contains(err.Error(), "not reading") {
				t.Errorf("cause does not say the agent is not reading: %v", err)
			}
			lost++
		}
		if lost == 0 {
			t.Error("no call failed with the stuck session")
		}
	})
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("calls failed after %v with a 150ms write timeout", d)
	}
	waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects == 1 })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
}

// TestUDSCallbackQueueBytesBounded: while the metrics callback is stuck, an
// agent flooding large reports gets at most maxCallbackBytes of them
// parked (the rest are dropped and counted), not the queue length times
// the message size.
func TestUDSCallbackQueueBytesBounded(t *testing.T) {
	const reports = 40
	big := strings.Repeat("h", 1<<20) // ~1 MiB per report
	var frames []byte
	for range reports {
		m := agentwire.MetricsReport{AgentID: "a", Gauges: []agentwire.GaugeMetric{{Name: "g", Help: big}}}
		frames, _ = frame.AppendFrame(frames, frame.TypeMetricsReport, payload.AppendMetricsReportJSON(nil, &m))
	}
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		if rc.writeRaw(frames) != nil {
			return
		}
		rc.echoLoop()
	})
	release := make(chan struct{})
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	var ran atomic.Int32
	c := dialUDS(t, fa.path, WithMaxRecvSize(4<<20), WithOnMetrics(func(*agentwire.MetricsReport) {
		if ran.Add(1) == 1 {
			<-release
		}
	}))
	t.Cleanup(unblock) // runs before the Conn's cleanup closes it (last registered, first run)
	waitUntil(t, "every report read", nil, func() bool { return c.Stats().MetricsReports == reports })
	dropped := c.Stats().CallbacksDropped
	queued := reports - dropped
	if queued > 16 { // 16 MiB budget, 1 MiB reports
		t.Fatalf("%d reports of 1 MiB parked for the callback, want at most 16", queued)
	}
	if queued < 2 {
		t.Fatalf("only %d reports queued: the byte budget should hold several", queued)
	}
	unblock()
	waitUntil(t, "queued callbacks ran", nil, func() bool { return uint64(ran.Load()) == queued })
	waitUntil(t, "byte count back to zero", nil, func() bool { return c.cbBytes.Load() == 0 })
}
