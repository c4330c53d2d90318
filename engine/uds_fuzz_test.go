package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/fuzzcheck"
)

// Bounds the fuzz targets hold every input to, on top of "no panic".

// checkAllocBound fails t when fn, run on in, allocated more than
// fuzzcheck.ConnBound(len(in)); fn must not start goroutines.
func checkAllocBound(t *testing.T, in []byte, fn func()) {
	t.Helper()
	fuzzcheck.ConnAllocs(t, in, fn)
}

// waitGoroutines fails t unless the number of goroutines drops back to at
// most base within d (whatever the input started must have ended).
var waitGoroutines = fuzzcheck.WaitGoroutines

// pendingResult is the outcome of the request a fuzz target keeps in
// flight.
type pendingResult struct {
	r   *agentwire.AgentResponse
	err error
}

// startPendingRequest sends the request-headers event with fuzzPendingID
// on c in the background; its outcome arrives on the channel.
func startPendingRequest(c *Conn) <-chan pendingResult {
	done := make(chan pendingResult, 1)
	go func() {
		r, err := c.RequestHeaders(context.Background(), headersEvent(fuzzPendingID))
		done <- pendingResult{r, err}
	}()
	return done
}

// fuzzPendingID is the correlation id of the request FuzzUDSInbound keeps
// in flight: the one the golden reply vectors route to.
const fuzzPendingID = "5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"

// FuzzUDSInbound feeds arbitrary bytes, as if sent by an agent after the
// handshake, through a live Conn's Unix-socket reader (framing, reply
// routing and decoding, every report decoder, callbacks), with a request
// in flight whose id the reply seeds use. Checked for every input:
//   - nothing panics, and the reader consumes the whole stream or closes
//     the connection (it never stops reading while the socket is open);
//   - when the stream ends, the Conn ends within a bounded time;
//   - the request in flight ends at once, either answered (with its own
//     id) or failed with a typed error of a kind that fits (ErrProtocol,
//     ErrConnectionLost, ErrClosed);
//   - once the Conn is closed, every goroutine it started has ended.
//
// Seeded with every agent-to-proxy golden frame, alone and concatenated.
func FuzzUDSInbound(f *testing.F) {
	var all []byte
	for _, file := range []string{"control.json", "responses.json"} {
		for _, v := range loadGolden(f, file) {
			if v.Direction == "agent_to_proxy" && v.JSONFrameHex != nil {
				b := unhex(f, *v.JSONFrameHex)
				f.Add(b, false)
				all = append(all, b...)
			}
			if v.Direction == "agent_to_proxy" && v.MsgpackPayloadHex != nil && v.TypeByte != nil {
				p := unhex(f, *v.MsgpackPayloadHex)
				if b, err := frame.AppendFrame(nil, frame.Type(unhex(f, (*v.TypeByte)[2:])[0]), p); err == nil {
					f.Add(b, true)
				}
			}
		}
	}
	f.Add(all, false)
	f.Add([]byte{0, 0, 0, 3, 0xF0, 1, 2, 0, 0, 0, 1, 0x42}, false)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x20}, true)
	f.Fuzz(fuzzUDSInboundOnce)
}

func fuzzUDSInboundOnce(t *testing.T, in []byte, msgpack bool) {
	const bound = 5 * time.Second
	base := runtime.NumGoroutine()
	a, b := net.Pipe()
	o := defaultOptions()
	o.onHealth = func(agentwire.HealthStatus) {}
	o.onMetrics = func(*agentwire.MetricsReport) {}
	o.onLog = func(*agentwire.LogMessage) {}
	o.onConfigUpdate = func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
		return agentwire.ConfigUpdateResponse{}
	}
	tr := newUDSTransport(b, frame.NewReader(b, 1<<20), 1<<20, msgpack, false, o.logger)
	c, err := newConn(context.Background(), &reverseDialer{t: tr, caps: fullCaps("fuzz")}, o)
	if err != nil {
		t.Fatal(err)
	}
	// A request in flight, registered before the input arrives: wait
	// for its event.
	done := startPendingRequest(c)
	a.SetDeadline(time.Now().Add(bound))
	rd := frame.NewReader(a, 0)
	if typ, _, err := rd.ReadFrame(); err != nil || typ != frame.TypeRequestHeaders {
		t.Fatalf("event not sent: %v %v", typ, err)
	}
	// Whatever else the Conn sends (cancels, pings) is read and dropped.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		defer rd.Release()
		for {
			if _, _, err := rd.ReadFrame(); err != nil {
				return
			}
		}
	}()
	if _, err := a.Write(in); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the Conn stopped reading its socket without closing it (input %x)", in)
	}
	a.Close()
	<-drained
	select {
	case <-c.baseCtx.Done(): // the Conn closed itself after the stream ended
	case <-time.After(bound):
		t.Fatalf("Conn did not end after the stream closed (input %x)", in)
	}
	select {
	case res := <-done:
		switch {
		case res.err == nil:
			if res.r.CorrelationID != fuzzPendingID {
				t.Fatalf("answered with correlation id %q", res.r.CorrelationID)
			}
		case errors.Is(res.err, ErrProtocol), errors.Is(res.err, ErrConnectionLost), errors.Is(res.err, ErrClosed):
			var e *Error
			if !errors.As(res.err, &e) {
				t.Fatalf("untyped error %v", res.err)
			}
		default:
			t.Fatalf("request in flight failed with %v", res.err)
		}
	case <-time.After(bound):
		t.Fatalf("the request in flight did not end with the Conn (input %x)", in)
	}
	c.Close()
	waitGoroutines(t, base, bound)
}

// FuzzReadRegistration: the listener's registration reader and validator
// never panic, consume exactly one frame (no read-ahead) and allocate no
// more than that frame is worth.
func FuzzReadRegistration(f *testing.F) {
	for _, v := range loadGolden(f, "reverse.json") {
		if v.JSONFrameHex != nil {
			f.Add(unhex(f, *v.JSONFrameHex))
		}
	}
	f.Add([]byte{0, 0, 0, 0, 1})
	f.Add([]byte{0, 1, 0, 1, 1})
	l := &ReverseListener{cfg: defaultReverseOptions()}
	l.cfg.allowed = map[string]struct{}{"waf-agent": {}}
	_ = WithAuthToken("t").applyReverse(&l.cfg)
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		var req *agentwire.RegistrationRequest
		var err error
		checkAllocBound(t, in, func() {
			req, err = readRegistration(r)
			if err == nil {
				_ = l.validate(req)
			}
		})
		if err != nil {
			return
		}
		want := frame.HeaderSize - 1 + int(binary.BigEndian.Uint32(in))
		if consumed := len(in) - r.Len(); consumed != want || consumed > maxRegistrationSize+frame.HeaderSize {
			t.Fatalf("consumed %d bytes, the frame has %d", consumed, want)
		}
	})
}
