package engine

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// Agent behaviours after the fuzzed handshake bytes (mode%3).
const (
	fuzzHSClose  = 0 // close the connection
	fuzzHSSilent = 1 // keep reading, never write again
	fuzzHSEcho   = 2 // answer every event with allow
)

// FuzzUDSHandshake dials a fake agent that reads the proxy's handshake
// request and answers with arbitrary raw bytes (a valid 0x02, a valid
// header followed by junk, a partial frame, anything), then closes, stays
// silent, or answers events. Checked for every input:
//   - nothing panics;
//   - Dial returns within a bound: either an error that is a typed *Error
//     of a connect/handshake kind, or a Conn;
//   - with a Conn, one request ends within a bound, answered (with its own
//     id) or failed with a typed *Error;
//   - once the Conn is closed and the fake agent stopped, every goroutine
//     the input started has ended.
//
// Seeded with the golden agent-to-proxy handshake frames, alone, truncated,
// followed by junk or a reply, and with invalid lengths and types.
func FuzzUDSHandshake(f *testing.F) {
	reply, _ := frame.AppendFrame(nil, frame.TypeAgentResponse,
		payload.AppendAgentResponseJSON(nil, &agentwire.AgentResponse{CorrelationID: fuzzPendingID}))
	for _, v := range loadGolden(f, "handshake.json") {
		if v.Direction != "agent_to_proxy" || v.JSONFrameHex == nil {
			continue
		}
		b := unhex(f, *v.JSONFrameHex)
		for mode := uint8(0); mode < 3; mode++ {
			f.Add(b, mode, false)
			f.Add(b, mode, true)
		}
		f.Add(append(append([]byte(nil), b...), reply...), uint8(fuzzHSSilent), false)
		f.Add(append(append([]byte(nil), b...), 0, 0, 0, 9, 0x20, '{'), uint8(fuzzHSSilent), false)
		f.Add(append(append([]byte(nil), b...), 0xde, 0xad), uint8(fuzzHSClose), false)
		f.Add(b[:len(b)-1], uint8(fuzzHSSilent), false)
		f.Add(b[:len(b)-1], uint8(fuzzHSClose), false)
		f.Add(b[:frame.HeaderSize], uint8(fuzzHSSilent), false)
		f.Add(b[:3], uint8(fuzzHSClose), false)
		bad := append([]byte(nil), b...)
		bad[4] = 0x20 // a reply instead of a handshake response
		f.Add(bad, uint8(fuzzHSEcho), false)
		bad = append([]byte(nil), b...)
		bad[4] = 0x99 // unknown type
		f.Add(bad, uint8(fuzzHSEcho), false)
	}
	f.Add([]byte(nil), uint8(fuzzHSClose), false)
	f.Add([]byte(nil), uint8(fuzzHSSilent), false)
	f.Add([]byte{0, 0, 0, 0, 2}, uint8(fuzzHSSilent), false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 2}, uint8(fuzzHSSilent), false)
	f.Add([]byte{0, 0x10, 0, 0, 2, '{'}, uint8(fuzzHSSilent), false)
	f.Add([]byte{0, 0, 0, 3, 2, '{', '}', 'x'}, uint8(fuzzHSEcho), false)
	f.Add([]byte{0, 0, 0, 2, 2, 0x80}, uint8(fuzzHSEcho), true)
	f.Fuzz(fuzzUDSHandshakeOnce)
}

func fuzzUDSHandshakeOnce(t *testing.T, in []byte, mode uint8, msgpack bool) {
	const (
		hsTimeout = 200 * time.Millisecond
		bound     = 5 * time.Second
	)
	base := runtime.NumGoroutine()
	a := startRawAgent(t, func(rc *rawConn) {
		rc.SetDeadline(time.Now().Add(2 * bound))
		if typ, _, err := rc.rd.ReadFrame(); err != nil || typ != frame.TypeHandshakeRequest {
			return
		}
		if err := rc.writeRaw(in); err != nil {
			return
		}
		switch mode % 3 {
		case fuzzHSClose:
		case fuzzHSSilent:
			_, _ = io.Copy(io.Discard, rc)
		case fuzzHSEcho:
			rc.echoLoop()
		}
	})
	opts := []Option{
		WithHandshakeTimeout(hsTimeout),
		WithConnectTimeout(bound),
		WithRequestTimeout(250 * time.Millisecond),
		WithReconnectBackoff(5*time.Millisecond, 20*time.Millisecond),
		WithLogger(slog.New(slog.DiscardHandler)),
	}
	if msgpack {
		opts = append(opts, WithEncodings(agentwire.EncodingMsgpack, agentwire.EncodingJSON))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*bound)
	defer cancel()
	start := time.Now()
	c, err := Dial(ctx, "unix://"+a.path, opts...)
	if d := time.Since(start); d > hsTimeout+bound {
		t.Fatalf("Dial took %v (handshake timeout %v; input %x)", d, hsTimeout, in)
	}
	if err != nil {
		t.Logf("Dial: %v", err)
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("Dial failed with an untyped error %T %v (input %x)", err, err, in)
		}
		if !errors.Is(err, ErrConnectFailed) && !errors.Is(err, ErrHandshakeRejected) && !errors.Is(err, ErrMessageTooLarge) {
			t.Fatalf("Dial failed with kind %v: %v (input %x)", e.Kind, err, in)
		}
	} else {
		done := startPendingRequest(c)
		select {
		case res := <-done:
			t.Logf("dialed; request: %v", res.err)
			if res.err == nil {
				if res.r.CorrelationID != fuzzPendingID {
					t.Fatalf("answered with correlation id %q (input %x)", res.r.CorrelationID, in)
				}
			} else {
				var e *Error
				if !errors.As(res.err, &e) {
					t.Fatalf("request failed with an untyped error %T %v (input %x)", res.err, res.err, in)
				}
			}
		case <-time.After(bound):
			t.Fatalf("the request did not end (input %x)", in)
		}
		within(t, bound, "Close", func() { _ = c.Close() })
	}
	within(t, bound, "stopping the fake agent", a.stop)
	waitGoroutines(t, base, bound)
}
