package refagents_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/codec/grpccodec"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Direct calls: the decision logic.
func TestDecisions(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		h         agent.Handler
		uri       string
		block     bool
		processed bool
	}{
		{"echo", refagents.Echo{}, "/admin/x", false, true},
		{"deny default prefix", refagents.Deny{}, "/admin/users", true, false},
		{"deny default prefix other path", refagents.Deny{}, "/public", false, true},
		{"deny custom prefix", refagents.Deny{Prefix: "/private"}, "/private", true, false},
		{"deny custom prefix spares /admin", refagents.Deny{Prefix: "/private"}, "/admin", false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r agentwire.AgentResponse
			if err := tc.h.OnRequestHeaders(ctx, &agentwire.RequestHeadersEvent{URI: tc.uri}, &r); err != nil {
				t.Fatal(err)
			}
			blocked := r.Decision.Kind == agentwire.DecisionBlock && r.Decision.Status == refagents.DenyStatus
			if blocked != tc.block {
				t.Fatalf("decision = %+v, block want %v", r.Decision, tc.block)
			}
			processed := len(r.RequestHeaders) == 1 && r.RequestHeaders[0] == agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "X-Agent-Processed", Value: "true"}
			if processed != tc.processed {
				t.Fatalf("header ops = %+v", r.RequestHeaders)
			}
			// Every other phase answers a plain allow.
			var r2 agentwire.AgentResponse
			if err := tc.h.OnResponseHeaders(ctx, &agentwire.ResponseHeadersEvent{}, &r2); err != nil || r2.Decision.Kind != agentwire.DecisionAllow || len(r2.ResponseHeaders) != 0 {
				t.Fatalf("response headers: %+v %v", r2, err)
			}
			if err := tc.h.OnResponseBodyChunk(ctx, &agentwire.BodyChunk{}, &r2); err != nil || r2.Decision.Kind != agentwire.DecisionAllow {
				t.Fatalf("response body: %+v %v", r2, err)
			}
		})
	}
}

type rig struct {
	srv    *agent.Server
	cc     *grpc.ClientConn
	stream pb.AgentServiceV2_ProcessStreamClient
	done   chan error
	cancel context.CancelFunc
}

func start(t testing.TB, h agent.Handler, network string) *rig {
	t.Helper()
	var ln net.Listener
	var target string
	var err error
	if network == "unix" {
		dir, derr := os.MkdirTemp("", "aw")
		if derr != nil {
			t.Fatal(derr)
		}
		path := filepath.Join(dir, "a.sock")
		t.Cleanup(func() { os.RemoveAll(dir) })
		ln, err = net.Listen("unix", path)
		target = "unix://" + path
	} else {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			target = "passthrough:///" + ln.Addr().String()
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{srv: agent.NewServer(h, agent.WithAgentID("ref")), done: make(chan error, 1)}
	go func() { r.done <- r.srv.ServeGRPC(ln) }()
	r.cc, err = grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpccodec.ClientOption())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	r.cancel = cancel
	r.stream, err = pb.NewAgentServiceV2Client(r.cc).ProcessStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.stream.Header(); err != nil {
		t.Fatal(err)
	}
	hs := &pb.ProxyToAgent{Message: &pb.ProxyToAgent_Handshake{Handshake: &pb.HandshakeRequest{SupportedVersions: []uint32{2, 1}, ProxyId: "zentinel-proxy", ConfigJson: "{}"}}}
	if err := r.stream.Send(hs); err != nil {
		t.Fatal(err)
	}
	if m, err := r.stream.Recv(); err != nil || !m.GetHandshake().GetSuccess() {
		t.Fatalf("handshake: %v %v", m, err)
	}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	r.cancel()
	r.cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r.srv.Shutdown(ctx)
	<-r.done
}

func request(cid, uri string) *pb.ProxyToAgent {
	return &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: &pb.RequestHeadersEvent{
		Metadata: &pb.RequestMetadata{CorrelationId: cid, RequestId: "r", ClientIp: "127.0.0.1", Protocol: "HTTP/1.1", TimestampMs: 1},
		Method:   "GET", Uri: uri, HttpVersion: "HTTP/1.1",
		Headers: []*pb.Header{{Name: "host", Value: "example.com"}, {Name: "user-agent", Value: "bench"}, {Name: "accept", Value: "*/*"}},
	}}}
}

// Over the wire, on both listener kinds.
func TestOverGRPC(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			r := start(t, refagents.Deny{}, network)
			for _, tc := range []struct {
				uri   string
				block bool
			}{{"/admin", true}, {"/index.html", false}} {
				if err := r.stream.Send(request("c"+tc.uri, tc.uri)); err != nil {
					t.Fatal(err)
				}
				m, err := r.stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				resp := m.GetResponse()
				if resp.GetCorrelationId() != "c"+tc.uri {
					t.Fatalf("reply = %v", m)
				}
				if tc.block != (resp.GetBlock().GetStatus() == 403) {
					t.Fatalf("%s: reply = %v", tc.uri, resp)
				}
				set := len(resp.RequestHeaders) == 1 && resp.RequestHeaders[0].GetSet().GetName() == refagents.ProcessedHeader && resp.RequestHeaders[0].GetSet().GetValue() == "true"
				if set == tc.block {
					t.Fatalf("%s: header ops = %v", tc.uri, resp.RequestHeaders)
				}
			}
		})
	}
}

// BenchmarkEchoGRPC is the reference workload: request-headers round trips
// to the Echo agent over one ProcessStream, with a window of requests in
// flight. Client and agent share the process (allocations are both sides').
func BenchmarkEchoGRPC(b *testing.B) {
	for _, network := range []string{"tcp", "unix"} {
		for _, inflight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", network, inflight), func(b *testing.B) {
				r := start(b, refagents.Echo{}, network)
				reqs := make([]*pb.ProxyToAgent, 256)
				for i := range reqs {
					reqs[i] = request(fmt.Sprintf("cid-%03d", i), "/api")
				}
				tokens := make(chan struct{}, inflight)
				for range inflight {
					tokens <- struct{}{}
				}
				n := b.N
				sent := make(chan error, 1)
				b.ReportAllocs()
				b.ResetTimer()
				go func() {
					for i := range n {
						<-tokens
						if err := r.stream.Send(reqs[i%len(reqs)]); err != nil {
							sent <- err
							return
						}
					}
					sent <- nil
				}()
				for range n {
					if _, err := r.stream.Recv(); err != nil {
						b.Fatal(err)
					}
					tokens <- struct{}{}
				}
				b.StopTimer()
				if err := <-sent; err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}
