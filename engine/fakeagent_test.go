package engine

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/pbconv"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// fakeAgent is a minimal AgentServiceV2 written against the generated
// service interface: each test scripts ProcessStream itself. It behaves
// like a Rust SDK agent by default (no agentwire control marker).
type fakeAgent struct {
	pb.UnimplementedAgentServiceV2Server
	process func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error
}

func (f *fakeAgent) ProcessStream(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
	return f.process(stream)
}

func startFake(t testing.TB, f *fakeAgent, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer(append([]grpc.ServerOption{grpccodec.ServerOption()}, opts...)...)
	pb.RegisterAgentServiceV2Server(g, f)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(ln)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-done
	})
	return ln.Addr().String()
}

// acceptHandshake sends headers, reads the handshake and answers it.
func acceptHandshake(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy], caps *pb.AgentCapabilities) (*pb.HandshakeRequest, error) {
	if err := stream.SendHeader(metadata.MD{}); err != nil {
		return nil, err
	}
	m, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	hs := m.GetHandshake()
	if hs == nil {
		return nil, errors.New("first message is not a handshake")
	}
	if caps == nil {
		caps = &pb.AgentCapabilities{ProtocolVersion: 2, AgentId: "fake", SupportedEvents: []int32{1, 2, 3, 4, 5, 6, 7}}
	}
	return hs, stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{
		ProtocolVersion: 2, Success: true, Capabilities: caps,
	}}})
}

func TestHandshakeRejections(t *testing.T) {
	errText := "proxy not allowed"
	for name, reply := range map[string]*pb.AgentToProxy{
		"refused":       {Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{Success: false, Error: &errText}}},
		"version 1":     {Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{Success: true, ProtocolVersion: 1}}},
		"not handshake": {Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{}}},
	} {
		t.Run(name, func(t *testing.T) {
			addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
				if _, err := stream.Recv(); err != nil {
					return err
				}
				if err := stream.Send(reply); err != nil {
					return err
				}
				_, err := stream.Recv()
				return err
			}})
			_, err := Dial(testCtx(t), "grpc://"+addr, WithInsecure())
			mustKind(t, err, ErrHandshakeRejected)
			if name == "refused" && !strings.Contains(err.Error(), errText) {
				t.Fatalf("agent's reason missing: %v", err)
			}
		})
	}
}

func TestHandshakeTimeout(t *testing.T) {
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		<-stream.Context().Done() // never answers the handshake
		return nil
	}})
	start := time.Now()
	_, err := Dial(testCtx(t), "grpc://"+addr, WithInsecure(), WithHandshakeTimeout(100*time.Millisecond))
	mustKind(t, err, ErrConnectFailed)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("handshake timeout: %v after %v", err, time.Since(start))
	}
	// The caller's context bounds Dial as well.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = Dial(ctx, "grpc://"+addr, WithInsecure())
	mustKind(t, err, ErrConnectFailed)
}

// TestRustLikeAgent talks to an agent that behaves like the Rust SDK
// server: it offers [2] (answers 2), ignores configure and cancel, answers
// pings, and has no agentwire control plane, so a config-update request it
// sends cannot be answered.
func TestRustLikeAgent(t *testing.T) {
	gotConfig := make(chan string, 4)
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		hs, err := acceptHandshake(stream, nil)
		if err != nil {
			return err
		}
		gotConfig <- "handshake " + hs.GetConfigJson()
		// An agent-initiated config update on ProcessStream.
		_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_ConfigUpdate{ConfigUpdate: &pb.ConfigUpdateRequest{RequestId: "u1"}}})
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			switch x := m.Message.(type) {
			case *pb.ProxyToAgent_Configure:
				gotConfig <- "configure " + x.Configure.GetConfigJson()
			case *pb.ProxyToAgent_RequestHeaders:
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{
					CorrelationId: x.RequestHeaders.GetMetadata().GetCorrelationId(),
					Audit:         &pb.AuditMetadata{Custom: map[string]string{"score": "87", "note": `"ok"`, "raw": "plain text"}},
				}}})
			case *pb.ProxyToAgent_Ping:
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Pong{Pong: &pb.Pong{Sequence: x.Ping.GetSequence()}}})
			}
		}
	}})
	c := dial(t, addr, WithAgentConfig([]byte(`{"mode":"block"}`)))
	if got := <-gotConfig; got != `handshake {"mode":"block"}` {
		t.Fatal(got)
	}
	if got := <-gotConfig; got != `configure {"mode":"block"}` {
		t.Fatal(got)
	}
	r, err := c.RequestHeaders(testCtx(t), headersEvent("rust"))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Audit.Custom["score"]) != "87" || string(r.Audit.Custom["note"]) != `"ok"` || string(r.Audit.Custom["raw"]) != `"plain text"` {
		t.Fatalf("audit.custom: %s", r.Audit.Custom)
	}
	if _, err := c.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "config update counted as unanswerable", nil, func() bool { return c.Stats().ConfigUnanswered == 1 })
	if c.sess.Load().t.hasControl() {
		t.Fatal("control stream opened without the agentwire marker")
	}
}

func TestUndecodableReplyFailsItsCaller(t *testing.T) {
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			cid := m.GetRequestHeaders().GetMetadata().GetCorrelationId()
			switch cid {
			case "bad-status":
				// A block status that does not fit an HTTP status.
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{
					CorrelationId: cid, Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 65939}},
				}}})
			case "unknown-id":
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: "nobody"}}})
				_ = stream.Send(&pb.AgentToProxy{})
				_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{CorrelationId: cid}}})
			}
		}
	}})
	c := dial(t, addr)
	_, err := c.RequestHeaders(testCtx(t), headersEvent("bad-status"))
	mustKind(t, err, ErrProtocol)
	if !errors.Is(err, pbconv.ErrStatusRange) {
		t.Fatalf("cause lost: %v", err)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("unknown-id")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Orphans != 1 || st.ProtocolErrors != 2 {
		t.Fatalf("stats: %+v", st)
	}
}

func TestOversizedAgentMessageLosesTheStream(t *testing.T) {
	var once sync.Once
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			cid := m.GetRequestHeaders().GetMetadata().GetCorrelationId()
			tags := []string{}
			once.Do(func() { tags = []string{strings.Repeat("x", 4096)} })
			_ = stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{
				CorrelationId: cid, Audit: &pb.AuditMetadata{Tags: tags},
			}}})
		}
	}})
	c := dial(t, addr, WithMaxRecvSize(1024), WithReconnectBackoff(time.Millisecond, 5*time.Millisecond))
	_, err := c.RequestHeaders(testCtx(t), headersEvent("huge"))
	mustKind(t, err, ErrConnectionLost)
	if !strings.Contains(err.Error(), "larger than max") {
		t.Fatalf("cause not reported: %v", err)
	}
	waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects == 1 && c.Health().Connected })
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("small")); err != nil {
		t.Fatal(err)
	}
}

func TestRepeatedOneofTakesSlowPath(t *testing.T) {
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		for {
			m, err := stream.Recv()
			if err != nil {
				return nil
			}
			cid := m.GetRequestHeaders().GetMetadata().GetCorrelationId()
			// Two serialized responses concatenated: protobuf merges them.
			a, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{
				CorrelationId: cid, Decision: &pb.AgentResponse_Block{Block: &pb.BlockDecision{Status: 403}},
			}}}).MarshalVT()
			b, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: &pb.AgentResponse{NeedsMore: true}}}).MarshalVT()
			var raw pb.AgentToProxy
			if err := raw.UnmarshalVT(append(a, b...)); err != nil {
				return err
			}
			_ = stream.Send(&raw)
		}
	}})
	c := dial(t, addr)
	r, err := c.RequestHeaders(testCtx(t), headersEvent("merged"))
	if err != nil || r.Decision.Kind != agentwire.DecisionBlock || r.Decision.Status != 403 || !r.NeedsMore {
		t.Fatalf("%v %+v", err, r)
	}
}

func TestAgentSendingHeadersLazily(t *testing.T) {
	// grpc-go sends response headers with the first message when the
	// handler does not call SendHeader: the Conn must not wait for them
	// before its handshake (the Rust client does, and deadlocks).
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := stream.Recv(); err != nil {
			return err
		}
		if err := stream.Send(&pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{
			ProtocolVersion: 2, Success: true,
		}}}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return nil
	}})
	start := time.Now()
	c := dial(t, addr, WithConnectTimeout(2*time.Second))
	if !c.Health().Connected || time.Since(start) > time.Second {
		t.Fatalf("dial took %v", time.Since(start))
	}
}

func TestLivenessPingDetectsSilentAgent(t *testing.T) {
	// Handshakes, then reads everything and answers nothing (pings
	// included) while keeping the connection open.
	addr := startFake(t, &fakeAgent{process: func(stream grpc.BidiStreamingServer[pb.ProxyToAgent, pb.AgentToProxy]) error {
		if _, err := acceptHandshake(stream, nil); err != nil {
			return err
		}
		for {
			if _, err := stream.Recv(); err != nil {
				return nil
			}
		}
	}})
	c := dial(t, addr, WithLivenessPing(20*time.Millisecond, 60*time.Millisecond), WithReconnectBackoff(time.Millisecond, 5*time.Millisecond))
	start := time.Now()
	_, err := c.RequestHeaders(testCtx(t), headersEvent("never-answered"))
	mustKind(t, err, ErrConnectionLost)
	if !errors.Is(err, errLiveness) {
		t.Fatalf("cause: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("silent agent detected after %v", d)
	}
	waitUntil(t, "reconnect", nil, func() bool { return c.Stats().Reconnects >= 1 })
}

func TestLivenessPingKeepsHealthyConnection(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	c := dial(t, srv.addr, WithLivenessPing(10*time.Millisecond, time.Second))
	waitUntil(t, "several pings", nil, func() bool { return c.Stats().Pongs >= 5 })
	if st := c.Stats(); st.Reconnects != 0 || st.ConnectionLost != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("ok")); err != nil {
		t.Fatal(err)
	}
}
