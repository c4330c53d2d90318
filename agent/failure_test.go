package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// failingHandler writes a bit of everything into the reply, then fails the
// way the event's URI says: "/err" returns an error, "/panic" panics,
// anything else succeeds (keeping what it wrote).
func failingHandler() *funcHandler {
	return &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.Decision = agentwire.Block(418)
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-partial", Value: "1"})
		r.ResponseHeaders = append(r.ResponseHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "server"})
		r.RoutingMetadata = map[string]string{"upstream": "b"}
		r.Audit.Tags = append(r.Audit.Tags, "partial")
		r.Audit.RuleIDs = append(r.Audit.RuleIDs, "r-1")
		r.NeedsMore = true
		switch ev.URI {
		case "/err":
			return errors.New("boom")
		case "/panic":
			panic("kaboom")
		}
		return nil
	}}
}

// failureCases are the events sent by the transport tests and the audit
// tag the reply must carry.
var failureCases = []struct{ uri, tag string }{
	{"/err", TagHandlerError},
	{"/panic", TagHandlerPanic},
}

// errorDecisions are the error decisions every transport test runs with.
var errorDecisions = []struct {
	name string
	opts []Option
	want agentwire.Decision
}{
	{"default allow", nil, agentwire.Allow()},
	{"fail closed", []Option{WithErrorDecision(agentwire.Block(503))}, agentwire.Block(503)},
}

// checkFailedPB checks a gRPC reply to a failed handler call: the error
// decision, the failure's tag and nothing the handler wrote.
func checkFailedPB(t *testing.T, r *pb.AgentResponse, cid, tag string, want agentwire.Decision) {
	t.Helper()
	okDecision := r.GetAllow() != nil
	if want.Kind == agentwire.DecisionBlock {
		okDecision = r.GetBlock().GetStatus() == uint32(want.Status)
	}
	a := r.GetAudit()
	if r.GetCorrelationId() != cid || !okDecision || !slices.Equal(a.GetTags(), []string{tag}) ||
		len(a.GetRuleIds()) != 0 || len(r.GetRequestHeaders()) != 0 || len(r.GetResponseHeaders()) != 0 ||
		r.GetNeedsMore() || r.ProcessingTimeMs == nil {
		t.Fatalf("%s: reply = %v, want only the error decision %v and tag %q", cid, r, want, tag)
	}
}

// checkFailed is checkFailedPB for the Unix-socket reply model.
func checkFailed(t testing.TB, r agentwire.AgentResponse, cid, tag string, want agentwire.Decision) {
	t.Helper()
	if r.CorrelationID != cid || r.Decision.Kind != want.Kind || r.Decision.Status != want.Status ||
		!slices.Equal(r.Audit.Tags, []string{tag}) || len(r.Audit.RuleIDs) != 0 || len(r.RequestHeaders) != 0 ||
		len(r.ResponseHeaders) != 0 || len(r.RoutingMetadata) != 0 || r.NeedsMore {
		t.Fatalf("%s: reply = %+v, want only the error decision %v and tag %q", cid, r, want, tag)
	}
}

func checkFailureStats(t testing.TB, s *Server) {
	t.Helper()
	if st := s.Stats(); st.HandlerErrors != 1 || st.HandlerPanics != 1 {
		t.Fatalf("HandlerErrors = %d, HandlerPanics = %d, want 1 and 1", st.HandlerErrors, st.HandlerPanics)
	}
}

// TestHandlerFailureGRPCStream: on a ProcessStream (worker and inline
// handlers) a failed handler call is answered with the error decision and
// TagHandlerError / TagHandlerPanic only, and counted apart; a successful
// call afterwards keeps what its handler wrote.
func TestHandlerFailureGRPCStream(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []Option
	}{{"workers", nil}, {"inline", []Option{WithInlineHandlers()}}} {
		for _, ed := range errorDecisions {
			t.Run(mode.name+"/"+ed.name, func(t *testing.T) {
				e := startEnv(t, failingHandler(), "tcp", append(slices.Clone(mode.opts), ed.opts...)...)
				p := e.open()
				for _, fc := range failureCases {
					p.send(reqHeaders("c"+fc.uri, fc.uri))
					checkFailedPB(t, p.recvResponse(), "c"+fc.uri, fc.tag, ed.want)
				}
				p.send(reqHeaders("ok", "/ok"))
				if r := p.recvResponse(); r.GetBlock().GetStatus() != 418 || len(r.RequestHeaders) != 1 ||
					!slices.Equal(r.GetAudit().GetTags(), []string{"partial"}) {
					t.Fatalf("successful call after failures: reply = %v", r)
				}
				checkFailureStats(t, e.srv)
			})
		}
	}
}

// TestHandlerFailureGRPCUnary: the same on the unary ProcessEvent RPC.
func TestHandlerFailureGRPCUnary(t *testing.T) {
	for _, ed := range errorDecisions {
		t.Run(ed.name, func(t *testing.T) {
			e := startEnv(t, failingHandler(), "tcp", ed.opts...)
			for _, fc := range failureCases {
				m, err := e.client.ProcessEvent(testCtx(t), reqHeaders("u"+fc.uri, fc.uri))
				if err != nil {
					t.Fatal(err)
				}
				checkFailedPB(t, m.GetResponse(), "u"+fc.uri, fc.tag, ed.want)
			}
			checkFailureStats(t, e.srv)
		})
	}
}

// TestHandlerFailureUDS: the same on Unix-socket connections, in both
// encodings.
func TestHandlerFailureUDS(t *testing.T) {
	for _, enc := range []string{"json", "msgpack"} {
		for _, ed := range errorDecisions {
			t.Run(enc+"/"+ed.name, func(t *testing.T) {
				msgpack := enc == "msgpack"
				e := startUDS(t, failingHandler(), ed.opts...)
				p := dialRaw(t, e.path)
				p.handshake(enc)
				for _, fc := range failureCases {
					ev := reqHeadersJSON("s"+fc.uri, fc.uri)
					if msgpack {
						ev = reqHeadersMsgpack("s"+fc.uri, fc.uri)
					}
					p.send(frame.TypeRequestHeaders, ev)
					checkFailed(t, p.recvReply(msgpack), "s"+fc.uri, fc.tag, ed.want)
				}
				checkFailureStats(t, e.srv)
			})
		}
	}
}

// TestHandlerFailureReverse: the same on a reverse connection.
func TestHandlerFailureReverse(t *testing.T) {
	for _, ed := range errorDecisions {
		t.Run(ed.name, func(t *testing.T) {
			ln, path := unixListener(t)
			f := newFakeReverse(t, ln, acceptAll)
			srv := NewServer(failingHandler(), ed.opts...)
			serveReverse(t, srv, context.Background(), "unix:"+path)
			p := recvTimeout(t, f.conns, "registered connection")
			for i, fc := range failureCases {
				cid := fmt.Sprintf("r-%d", i)
				p.send(frame.TypeRequestHeaders, reqHeadersJSON(cid, fc.uri))
				checkFailed(t, p.recvReply(false), cid, fc.tag, ed.want)
			}
			checkFailureStats(t, srv)
		})
	}
}
