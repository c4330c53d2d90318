package engine

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/codec/payload"
)

// FuzzUDSInbound feeds arbitrary bytes, as if sent by an agent after the
// handshake, through a live Conn's Unix-socket reader (framing, reply
// routing and decoding, every report decoder, callbacks). Nothing may
// panic, and the Conn must end cleanly when the stream ends. Seeded with
// every agent-to-proxy golden frame, alone and concatenated.
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
	f.Fuzz(func(t *testing.T, in []byte, msgpack bool) {
		a, b := net.Pipe()
		defer a.Close()
		o := defaultOptions()
		o.onHealth = func(payload.HealthStatus) {}
		o.onMetrics = func(*payload.MetricsReport) {}
		o.onConfigUpdate = func(*payload.ConfigUpdateRequest) payload.ConfigUpdateResponse { return payload.ConfigUpdateResponse{} }
		tr := newUDSTransport(b, frame.NewReader(b, 1<<20), 1<<20, msgpack, false, o.logger)
		c, err := newConn(context.Background(), &reverseDialer{t: tr, caps: fullCaps("fuzz")}, o)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// A request in flight whose id the seeds use, so replies are routed.
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			_, err := c.RequestHeaders(ctx, headersEvent("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7"))
			done <- err
		}()
		go func() { _, _ = a.Read(make([]byte, 64<<10)) }() // swallow the event
		_, _ = a.Write(in)
		a.Close()
		select {
		case <-c.baseCtx.Done(): // the Conn closed itself after the stream ended
		case <-time.After(5 * time.Second):
			t.Fatal("Conn did not end after the stream closed")
		}
		<-done
	})
}

// FuzzReadRegistration: the listener's registration reader and validator
// never panic and never accept more than one frame's worth of input.
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
		req, err := readRegistration(r)
		if err != nil {
			return
		}
		if consumed := len(in) - r.Len(); consumed < frame.HeaderSize || consumed > maxRegistrationSize+frame.HeaderSize {
			t.Fatalf("consumed %d bytes", consumed)
		}
		_ = l.validate(req)
	})
}
