package agent

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/codec/payload"
)

// Fuzz targets for the agent's own readers of wire bytes: the correlation
// id scanners, the cancel decoder, and the whole connection reader. The
// payload decoders have their own targets in codec/payload.

func goldenEventSeeds(f *testing.F) []goldenVector {
	vs := loadGolden(f, "events.json")
	vs = append(vs, loadGolden(f, "control.json")...)
	return vs
}

// FuzzUDSEventPayload decodes arbitrary bytes as every event type in both
// encodings, the way a connection does, and checks the correlation-id rules.
func FuzzUDSEventPayload(f *testing.F) {
	for _, g := range goldenEventSeeds(f) {
		if g.TypeByte == nil {
			continue
		}
		typ := byte(g.typ(f))
		f.Add(typ, false, []byte(g.JSONPayload))
		if mp := g.msgpack(f); mp != nil {
			f.Add(typ, true, mp)
		}
	}
	f.Add(byte(0x10), false, []byte(`{"correlation_id":"a\u0041","metadata":{"correlation_id":"m"}}`))
	f.Fuzz(func(t *testing.T, typ byte, msgpack bool, p []byte) {
		c := new(udsCall)
		ft := frame.Type(typ)
		err := c.decodeEvent(ft, p, msgpack)
		best := bestEffortID(p, msgpack)
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
// first byte); a decoded cancel re-encodes to an equal value.
func FuzzDecodeCancel(f *testing.F) {
	for _, g := range loadGolden(f, "control.json") {
		if g.TypeByte != nil && *g.TypeByte == "0x40" {
			f.Add([]byte(g.JSONPayload))
		}
	}
	f.Add([]byte{0x83, 0xae, 'c', 'o', 'r', 'r', 'e', 'l', 'a', 't', 'i', 'o', 'n', '_', 'i', 'd', 0xa1, 'x', 0xa6, 'r', 'e', 'a', 's', 'o', 'n', 0x01, 0xac, 't', 'i', 'm', 'e', 's', 't', 'a', 'm', 'p', '_', 'm', 's', 0x07})
	f.Add([]byte{0x93, 0xa1, 'x', 0x02, 0x07})
	f.Fuzz(func(t *testing.T, p []byte) {
		var c payload.Cancel
		if err := decodeCancel(p, &c); err != nil {
			return
		}
		var back payload.Cancel
		if err := payload.DecodeCancelJSON(payload.AppendCancelJSON(nil, &c), &back); err != nil || back != c {
			t.Fatalf("round trip %+v -> %+v (%v)", c, back, err)
		}
	})
}

// FuzzUDSConnection feeds an arbitrary byte stream to a live connection
// after a successful handshake. The server must not crash, must answer
// only with well-formed frames, and must end the connection when the
// stream ends.
func FuzzUDSConnection(f *testing.F) {
	for _, g := range goldenEventSeeds(f) {
		if g.TypeByte == nil {
			continue
		}
		fr, _ := frame.AppendFrame(nil, g.typ(f), []byte(g.JSONPayload))
		f.Add(false, fr)
		if mp := g.msgpack(f); mp != nil {
			fr, _ := frame.AppendFrame(nil, g.typ(f), mp)
			f.Add(true, fr)
		}
	}
	f.Add(false, []byte{0, 0, 0, 3, 0x99, 1, 2, 0, 0, 0, 1, 0x41})
	f.Add(false, []byte{0, 0, 0, 0})
	f.Add(false, []byte{0xff, 0xff, 0xff, 0xff, 0x10})
	f.Fuzz(fuzzConnOnce)
}

func fuzzConnOnce(t *testing.T, msgpack bool, stream []byte) {
	{
		s := NewServer(BaseHandler{}, WithMaxConcurrency(4), WithMaxFrameSize(1<<16))
		defer s.Close()
		agentSide, proxySide := net.Pipe()
		if !s.track(1) {
			t.Fatal("server closed")
		}
		go func() {
			defer s.wg.Done()
			s.serveConn(context.Background(), agentSide, nil, false)
		}()
		// Read everything the agent sends, checking the framing.
		readDone := make(chan error, 1)
		go func() {
			rd := frame.NewReader(proxySide, 0)
			defer rd.Release()
			first := true
			for {
				typ, p, err := rd.ReadFrame()
				if err != nil {
					if err == io.EOF || err == io.ErrClosedPipe {
						err = nil
					}
					readDone <- err
					return
				}
				if first {
					var hs payload.HandshakeResponse
					if typ != frame.TypeHandshakeResponse || payload.DecodeHandshakeResponseJSON(p, &hs) != nil || !hs.Success {
						readDone <- io.ErrUnexpectedEOF
						return
					}
					first = false
					continue
				}
				switch typ {
				case frame.TypeAgentResponse:
					var r payload.AgentResponse
					var err error
					if msgpack {
						err = payload.DecodeAgentResponseMsgpack(p, &r)
					} else {
						err = payload.DecodeAgentResponseJSON(p, &r)
					}
					if err != nil || r.Version != 2 {
						readDone <- err
						return
					}
				case frame.TypePong, frame.TypeHealthStatus:
				default:
					readDone <- &frame.UnknownTypeError{Type: typ}
					return
				}
			}
		}()
		enc := "json"
		if msgpack {
			enc = "msgpack"
		}
		hs := payload.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "fuzz", ProxyVersion: "0", SupportedEncodings: []string{enc}}
		hsFrame, _ := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &hs))
		proxySide.SetWriteDeadline(time.Now().Add(testTimeout))
		if _, err := proxySide.Write(append(hsFrame, stream...)); err != nil && err != io.ErrClosedPipe {
			t.Fatalf("write: %v", err)
		}
		// End of stream: close; the agent must notice and end too.
		proxySide.Close()
		if err := <-readDone; err != nil && err != io.ErrClosedPipe {
			t.Fatalf("agent output: %v", err)
		}
	}
}
