package agent

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/grpccodec"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// echoHandler is refagents.Echo (which this package cannot import).
type echoHandler struct{ BaseHandler }

func (echoHandler) OnRequestHeaders(_ context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "X-Agent-Processed", Value: "true"})
	return nil
}

// benchRequest is a request-headers event with 15 headers, like PERF.md's
// codec figures.
func benchRequest(cid string) *pb.ProxyToAgent {
	m := reqHeaders(cid, "/api/v1/items?page=2")
	h := m.GetRequestHeaders()
	h.Headers = nil
	for i, n := range []string{"host", "user-agent", "accept", "accept-language", "accept-encoding", "connection", "cookie",
		"x-forwarded-for", "x-request-id", "content-type", "content-length", "referer", "origin", "cache-control", "traceparent"} {
		h.Headers = append(h.Headers, &pb.Header{Name: n, Value: fmt.Sprintf("value-%02d-for-%s", i, n)})
	}
	return m
}

// processOne is the agent's whole per-event work outside grpc-go: decode
// the wire bytes (with the fast decoder, as under codec/grpccodec, or with
// the reference vtprotobuf + pbconv path, as under grpc-go's default
// codec), run the handler, build and encode the reply.
func processOne(s *Server, t *inflightTable, slab *reqCtxSlab, ctx context.Context, in, out []byte, fast bool) []byte {
	c := grpcCallPool.Get().(*grpcCall)
	if fast {
		if !decodeFast(string(in), &c.exchange) {
			panic("fast decode failed")
		}
	} else {
		m := pb.ProxyToAgentFromVTPool()
		if err := m.UnmarshalVT(in); err != nil {
			panic(err)
		}
		c.in = m
		c.kind = kindRequestHeaders
		c.cid = m.GetRequestHeaders().GetMetadata().GetCorrelationId()
	}
	s.beginWith(slab.get(ctx), t, &c.exchange)
	c.process(s, t)
	r := (*grpcReply)(c) // as the writer sends it
	n := r.SizeVT()
	if cap(out) < n {
		out = make([]byte, n)
	}
	out = out[:n]
	if _, err := r.MarshalToSizedBufferVT(out); err != nil {
		panic(err)
	}
	c.release()
	return out
}

// BenchmarkDispatch measures the agent's per-request cost without the
// network: decode, conversion, context and in-flight bookkeeping, Echo
// handler, reply conversion and encode. "fast" is the path taken under
// codec/grpccodec (ServeGRPC), "reference" the one under grpc-go's default
// codec.
func BenchmarkDispatch(b *testing.B) {
	for _, fast := range []bool{true, false} {
		name := "reference"
		if fast {
			name = "fast"
		}
		b.Run(name, func(b *testing.B) {
			s := NewServer(echoHandler{})
			defer s.Close()
			in, err := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7").MarshalVT()
			if err != nil {
				b.Fatal(err)
			}
			var t inflightTable
			var slab reqCtxSlab
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := make([]byte, 0, 256)
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				out = processOne(s, &t, &slab, ctx, in, out, fast)
			}
		})
	}
}

// BenchmarkDispatchParallel is BenchmarkDispatch (fast path) from many
// goroutines sharing one connection's in-flight table, as a stream's
// workers do.
func BenchmarkDispatchParallel(b *testing.B) {
	s := NewServer(echoHandler{})
	defer s.Close()
	in, _ := benchRequest("5f0c2a9e7b1d4e38a6c4f2b1d0e9a8c7").MarshalVT()
	var t inflightTable
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		out := make([]byte, 0, 256)
		var slab reqCtxSlab // the reader's, in a stream: one per goroutine here
		for pb.Next() {
			out = processOne(s, &t, &slab, ctx, in, out, true)
		}
	})
}

// BenchmarkGRPCStream is an end-to-end round trip over loopback gRPC: one
// ProcessStream, a window of requests in flight, Echo agent. Allocations
// are those of both sides (client and agent share the process).
//
// codec=grpccodec is ServeGRPC (its serverCodec, grpc_codec.go: the fast
// decode path, and no copy of an event of at most 1 KiB); codec=default is
// RegisterGRPC on a grpc.Server with grpc-go's default codec (generated
// decoders, one allocation per string field).
func BenchmarkGRPCStream(b *testing.B) {
	for _, codec := range []string{"grpccodec", "default"} {
		for _, inflight := range []int{1, 64} {
			b.Run(fmt.Sprintf("codec=%s/inflight=%d", codec, inflight), func(b *testing.B) {
				benchGRPCStream(b, inflight, codec == "default")
			})
		}
	}
}

func benchGRPCStream(b *testing.B, inflight int, defaultCodec bool) {
	srv := NewServer(echoHandler{})
	ln, err := listenTCP()
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	if defaultCodec {
		g := grpc.NewServer()
		srv.RegisterGRPC(g)
		go func() { served <- g.Serve(ln) }()
		defer func() { srv.Close(); g.Stop(); <-served }()
	} else {
		go func() { served <- srv.ServeGRPC(ln) }()
		defer func() { srv.Close(); <-served }()
	}
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpccodec.ClientOption())
	if err != nil {
		b.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := pb.NewAgentServiceV2Client(cc).ProcessStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Send(handshakeMsg(2)); err != nil {
		b.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || !m.GetHandshake().GetSuccess() {
		b.Fatal(m, err)
	}
	const nIDs = 1024
	reqs := make([]*pb.ProxyToAgent, nIDs)
	for i := range reqs {
		reqs[i] = benchRequest(fmt.Sprintf("cid-%04d", i))
	}
	tokens := make(chan struct{}, inflight)
	for range inflight {
		tokens <- struct{}{}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	n := b.N
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		defer wg.Done()
		for i := range n {
			<-tokens
			if err := st.Send(reqs[i%nIDs]); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	for range n {
		m, err := st.Recv()
		if err != nil {
			b.Fatal(err)
		}
		if m.GetResponse() == nil {
			b.Fatalf("unexpected %v", m)
		}
		tokens <- struct{}{}
	}
	b.StopTimer()
	wg.Wait()
	st.CloseSend()
}
