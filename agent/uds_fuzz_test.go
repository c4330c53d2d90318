package agent

import (
	"context"
	"errors"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/fuzzcheck"
	"github.com/agentwire/agentwire/internal/payload"
)

// Fuzz targets for the agent's own readers of wire bytes: the correlation
// id scanners, the cancel decoder, and the whole connection reader. The
// payload decoders have their own targets in codec/payload.

func goldenEventSeeds(f *testing.F) []goldenVector {
	vs := loadGolden(f, "events.json")
	vs = append(vs, loadGolden(f, "control.json")...)
	return vs
}

// checkAllocBound fails t when fn, run on in, allocated more than
// fuzzcheck.ConnBound(len(in)); fn must not start goroutines.
func checkAllocBound(t *testing.T, in []byte, fn func()) {
	t.Helper()
	fuzzcheck.ConnAllocs(t, in, fn)
}

// waitGoroutines fails t unless the number of goroutines drops back to at
// most base within d (whatever the input started must have ended).
var waitGoroutines = fuzzcheck.WaitGoroutines

// sameValue reports whether a and b hold the same data, reading nil and
// empty slices and maps as equal (a decoder reusing storage leaves empty
// ones where a fresh decode leaves nil).
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		it := a.MapRange()
		for it.Next() {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !sameValue(it.Value(), bv) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if a.Kind() == reflect.Pointer && a.Pointer() == b.Pointer() {
			return true
		}
		if a.Kind() == reflect.Interface && a.Elem().Type() != b.Elem().Type() {
			return false
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.String:
		return a.String() == b.String()
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return a.Uint() == b.Uint()
	case reflect.Float32, reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	default:
		return a.Kind() == b.Kind()
	}
}

// decodedEvent returns the event struct decodeEvent filled for kind ft.
func decodedEvent(c *udsCall, ft frame.Type) any {
	switch ft {
	case frame.TypeRequestHeaders:
		return &c.reqHeaders
	case frame.TypeRequestBodyChunk, frame.TypeResponseBodyChunk:
		return &c.body
	case frame.TypeResponseHeaders:
		return &c.respHeaders
	case frame.TypeRequestComplete:
		return &c.complete
	case frame.TypeWebSocketFrame:
		return &c.ws
	case frame.TypeGuardrailInspect:
		return &c.guard
	}
	return nil
}

// FuzzUDSEventPayload decodes arbitrary bytes as every event type in both
// encodings, the way a connection does, and checks the correlation-id
// rules, the allocation bound, and that decoding into a pooled call that
// still holds an earlier event (connections reuse calls without clearing
// them) gives exactly what decoding into a fresh one gives.
func FuzzUDSEventPayload(f *testing.F) {
	type key struct {
		typ     frame.Type
		msgpack bool
	}
	// The largest golden event of each kind and encoding: what a reused
	// call holds before the fuzzed payload is decoded into it.
	dirty := map[key][]byte{}
	keep := func(k key, p []byte) {
		if c := new(udsCall); c.decodeEvent(k.typ, p, k.msgpack) == nil && len(p) > len(dirty[k]) {
			dirty[k] = p
		}
	}
	for _, g := range goldenEventSeeds(f) {
		if g.TypeByte == nil {
			continue
		}
		typ := byte(g.typ(f))
		f.Add(typ, false, []byte(g.JSONPayload))
		keep(key{frame.Type(typ), false}, []byte(g.JSONPayload))
		if mp := g.msgpack(f); mp != nil {
			f.Add(typ, true, mp)
			keep(key{frame.Type(typ), true}, mp)
		}
	}
	f.Add(byte(0x10), false, []byte(`{"correlation_id":"a\u0041","metadata":{"correlation_id":"m"}}`))
	f.Add(byte(0x10), true, msgpackWithTop(f, "meta-id", "route-A")) // the decoder's fast shape
	f.Fuzz(func(t *testing.T, typ byte, msgpack bool, p []byte) {
		c := new(udsCall)
		ft := frame.Type(typ)
		var err error
		var best string
		checkAllocBound(t, p, func() {
			err = c.decodeEvent(ft, p, msgpack)
			best = bestEffortID(p, msgpack)
		})
		if d := dirty[key{ft, msgpack}]; d != nil {
			r := new(udsCall)
			if err := r.decodeEvent(ft, d, msgpack); err != nil {
				t.Fatalf("golden event does not decode: %v", err)
			}
			rerr := r.decodeEvent(ft, p, msgpack)
			if (err == nil) != (rerr == nil) {
				t.Fatalf("fresh call: %v; reused call: %v", err, rerr)
			}
			if err == nil && (r.cid != c.cid || r.kind != c.kind || !sameValue(reflect.ValueOf(decodedEvent(r, ft)), reflect.ValueOf(decodedEvent(c, ft)))) {
				t.Fatalf("decoding into a reused call differs:\n fresh  %q %+v\n reused %q %+v", c.cid, decodedEvent(c, ft), r.cid, decodedEvent(r, ft))
			}
		}
		if err != nil {
			return
		}
		if ft == frame.TypeRequestHeaders {
			// The routing id is the envelope's top-level id when there is
			// one, else metadata.correlation_id.
			var want string
			if msgpack {
				want = routingIDMsgpack(p, c.reqHeaders.Metadata.CorrelationID)
			} else {
				want = routingIDJSON(p, c.reqHeaders.Metadata.CorrelationID)
			}
			if c.cid != want {
				t.Fatalf("cid %q, routing id %q", c.cid, want)
			}
			return
		}
		// For the other events the decoded id is the envelope's, and the
		// best-effort scanner (used when decoding fails) agrees with it
		// whenever it is non-empty.
		if c.cid != "" && best != "" && best != c.cid && !msgpack {
			t.Fatalf("decoded cid %q, best-effort %q", c.cid, best)
		}
	})
}

// FuzzDecodeCancel decodes arbitrary 0x40 payloads (JSON or MessagePack by
// first byte) within the allocation bound; a decoded cancel re-encodes to an
// equal value.
func FuzzDecodeCancel(f *testing.F) {
	for _, g := range loadGolden(f, "control.json") {
		if g.TypeByte != nil && *g.TypeByte == "0x40" {
			f.Add([]byte(g.JSONPayload))
		}
	}
	f.Add([]byte{0x83, 0xae, 'c', 'o', 'r', 'r', 'e', 'l', 'a', 't', 'i', 'o', 'n', '_', 'i', 'd', 0xa1, 'x', 0xa6, 'r', 'e', 'a', 's', 'o', 'n', 0x01, 0xac, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', '_', 'm', 's', 0x07})
	f.Add([]byte{0x93, 0xa1, 'x', 0x02, 0x07})
	f.Fuzz(func(t *testing.T, p []byte) {
		var c agentwire.Cancel
		var err error
		checkAllocBound(t, p, func() { err = decodeCancel(p, &c) })
		if err != nil {
			return
		}
		var back agentwire.Cancel
		if err := payload.DecodeCancelJSON(payload.AppendCancelJSON(nil, &c), &back); err != nil || back != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, back, err)
		}
	})
}

// FuzzUDSConnection feeds an arbitrary byte stream to a live connection
// after a successful handshake, with handlers on workers or inline. The
// server must not crash, must read the whole stream or close the
// connection, must answer only with well-formed frames, and must end the
// connection when the stream ends; all within a time bound. Another
// connection to the same server, established before, must still be
// answered afterwards, and once the server is closed every goroutine it
// started must have ended.
func FuzzUDSConnection(f *testing.F) {
	for _, g := range goldenEventSeeds(f) {
		if g.TypeByte == nil {
			continue
		}
		fr, _ := frame.AppendFrame(nil, g.typ(f), []byte(g.JSONPayload))
		f.Add(false, false, fr)
		if mp := g.msgpack(f); mp != nil {
			fr, _ := frame.AppendFrame(nil, g.typ(f), mp)
			f.Add(true, true, fr)
		}
	}
	f.Add(false, false, []byte{0, 0, 0, 3, 0x99, 1, 2, 0, 0, 0, 1, 0x41})
	f.Add(false, true, []byte{0, 0, 0, 3, 0x99, 1, 2, 0, 0, 0, 1, 0x41})
	f.Add(false, false, []byte{0, 0, 0, 0})
	f.Add(false, false, []byte{0xff, 0xff, 0xff, 0xff, 0x10})
	f.Fuzz(fuzzConnOnce)
}

// fuzzConnBound bounds each step of fuzzConnOnce.
const fuzzConnBound = 5 * time.Second

func fuzzConnOnce(t *testing.T, msgpack, inline bool, stream []byte) {
	base := runtime.NumGoroutine()
	opts := []Option{WithMaxConcurrency(4), WithMaxFrameSize(1 << 16)}
	if inline {
		opts = append(opts, WithInlineHandlers())
	}
	s := NewServer(BaseHandler{}, opts...)
	serve := func(nc net.Conn) <-chan struct{} {
		ended := make(chan struct{})
		if !s.track(1) {
			t.Fatal("server closed")
		}
		go func() {
			defer s.wg.Done()
			defer close(ended)
			s.serveConn(context.Background(), nc, nil, nil, false)
		}()
		return ended
	}
	handshake := func(nc net.Conn, rd *frame.Reader, enc string) {
		hs := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "fuzz", ProxyVersion: "0", SupportedEncodings: []string{enc}}
		hsFrame, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &hs))
		if _, err := nc.Write(hsFrame); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		typ, p, err := rd.ReadFrame()
		var r agentwire.HandshakeResponse
		if err != nil || typ != frame.TypeHandshakeResponse || payload.DecodeHandshakeResponseJSON(p, &r) != nil || !r.Success {
			t.Fatalf("handshake: %v %v %q", typ, err, p)
		}
	}

	// The bystander: a connection established before the fuzzed one.
	byAgent, byProxy := net.Pipe()
	byEnded := serve(byAgent)
	byProxy.SetDeadline(time.Now().Add(fuzzConnBound))
	byRd := frame.NewReader(byProxy, 0)
	handshake(byProxy, byRd, agentwire.EncodingJSON)

	agentSide, proxySide := net.Pipe()
	ended := serve(agentSide)
	proxySide.SetDeadline(time.Now().Add(fuzzConnBound))
	rd := frame.NewReader(proxySide, 0)
	enc := agentwire.EncodingJSON
	if msgpack {
		enc = agentwire.EncodingMsgpack
	}
	handshake(proxySide, rd, enc)
	// Read everything the agent sends, checking the framing.
	readDone := make(chan error, 1)
	go func() {
		defer rd.Release()
		for {
			typ, p, err := rd.ReadFrame()
			if err != nil {
				if err == io.EOF || err == io.ErrClosedPipe {
					err = nil
				}
				readDone <- err
				return
			}
			switch typ {
			case frame.TypeAgentResponse:
				var r agentwire.AgentResponse
				var err error
				if msgpack {
					err = payload.DecodeAgentResponseMsgpack(p, &r)
				} else {
					err = payload.DecodeAgentResponseJSON(p, &r)
				}
				if err != nil || r.Version != 2 {
					readDone <- errors.Join(errors.New("bad reply"), err)
					return
				}
			case frame.TypePong, frame.TypeHealthStatus:
			default:
				readDone <- &frame.UnknownTypeError{Type: typ}
				return
			}
		}
	}()
	if _, err := proxySide.Write(stream); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the agent stopped reading without closing the connection (input %x)", stream)
	} else if err != nil && err != io.ErrClosedPipe {
		t.Fatalf("write: %v", err)
	}
	// End of stream: close; the agent must notice and end too.
	proxySide.Close()
	select {
	case err := <-readDone:
		if err != nil {
			t.Fatalf("agent output: %v", err)
		}
	case <-time.After(fuzzConnBound):
		t.Fatal("the output reader did not end")
	}
	select {
	case <-ended:
	case <-time.After(fuzzConnBound):
		t.Fatalf("the agent did not end the connection after the stream ended (input %x)", stream)
	}

	// The bystander is still served.
	ev := agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "bystander", RequestID: "r"}, Method: "GET", URI: "/"}
	evFrame, _ := frame.AppendFrame(nil, frame.TypeRequestHeaders, payload.AppendRequestHeadersJSON(nil, &ev))
	if _, err := byProxy.Write(evFrame); err != nil {
		t.Fatalf("bystander: %v", err)
	}
	typ, p, err := byRd.ReadFrame()
	var r agentwire.AgentResponse
	if err != nil || typ != frame.TypeAgentResponse || payload.DecodeAgentResponseJSON(p, &r) != nil || r.CorrelationID != "bystander" || r.Decision.Kind != agentwire.DecisionAllow {
		t.Fatalf("bystander after input %x: %v %v %q", stream, typ, err, p)
	}
	byRd.Release()
	byProxy.Close()
	select {
	case <-byEnded:
	case <-time.After(fuzzConnBound):
		t.Fatal("the bystander connection did not end")
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case <-closed:
	case <-time.After(fuzzConnBound):
		t.Fatal("Close did not return")
	}
	waitGoroutines(t, base, fuzzConnBound)
}
