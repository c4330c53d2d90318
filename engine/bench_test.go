package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// Benchmarks of a request-headers round trip.
//
//	BenchmarkRoundTripMem   the engine alone (in-memory agent, same process)
//	BenchmarkRoundTripGRPC  real loopback gRPC; the agent runs in a child
//	                        process (this test binary re-executed), so the
//	                        reported allocs/op and cpu-µs/op are the client
//	                        process's only. ENGINE_BENCH_AGENT=host:port
//	                        points it at an external agent instead (e.g. the
//	                        baseline's "naive agent").
//
// The event is the baseline's: 15 typical headers and full metadata.

const childAgentEnv = "ENGINE_TEST_CHILD_AGENT"

func benchEvent(id string) agentwire.RequestHeadersEvent {
	one := func(n, v string) agentwire.Header { return agentwire.Header{Name: n, Values: []string{v}} }
	return agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: id, RequestID: id, ClientIP: "203.0.113.7", ClientPort: 54321,
			ServerName: agentwire.Some("api.example.com"), Protocol: "HTTP/1.1", TLSVersion: agentwire.Some("TLSv1.3"),
			RouteID: agentwire.Some("api-v1"), UpstreamID: agentwire.Some("backend-pool-1"),
			Timestamp:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		Method: "POST", URI: "/api/v1/orders?customer=12345&expand=items",
		Headers: agentwire.Headers{
			one("host", "api.example.com"),
			one("user-agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"),
			one("accept", "application/json, text/plain, */*"),
			one("accept-encoding", "gzip, deflate, br"),
			one("accept-language", "en-US,en;q=0.9"),
			one("cookie", "session=3f1a9c2b7e8d4f6a9b0c1d2e3f4a5b6c; theme=dark; _ga=GA1.2.123456789.1700000000"),
			one("x-forwarded-for", "203.0.113.7, 10.0.0.12"),
			one("x-request-id", "a1b2c3d4-e5f6-7890-abcd-ef1234567890"),
			one("content-type", "application/json"),
			one("content-length", "512"),
			one("authorization", "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"),
			one("referer", "https://www.example.com/app/dashboard"),
			one("cache-control", "no-cache"),
			one("connection", "keep-alive"),
			one("sec-ch-ua", "\"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\""),
		},
	}
}

// processCPU returns the CPU time (user+system) used by this process.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runRoundTrips drives c with inflight concurrent callers for b.N round
// trips and reports req/s and client CPU per request.
func runRoundTrips(b *testing.B, c *Conn, inflight int) {
	ctx := context.Background()
	var seq atomic.Uint64
	b.ReportAllocs()
	cpu0 := processCPU()
	start := time.Now()
	b.ResetTimer()
	if inflight == 1 {
		ev := benchEvent("")
		dst := new(agentwire.AgentResponse)
		id := make([]byte, 0, 24)
		for i := 0; i < b.N; i++ {
			id = strconv.AppendUint(append(id[:0], "bench-"...), seq.Add(1), 36)
			ev.Metadata.CorrelationID = string(id)
			if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		b.SetParallelism((inflight + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
		b.RunParallel(func(p *testing.PB) {
			ev := benchEvent("")
			dst := new(agentwire.AgentResponse)
			id := make([]byte, 0, 24)
			for p.Next() {
				id = strconv.AppendUint(append(id[:0], "bench-"...), seq.Add(1), 36)
				ev.Metadata.CorrelationID = string(id)
				if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	elapsed := time.Since(start)
	cpu := processCPU() - cpu0
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

func BenchmarkRoundTripMem(b *testing.B) {
	c := memConn(b)
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) { runRoundTrips(b, c, n) })
	}
}

func BenchmarkRoundTripGRPC(b *testing.B) {
	addr := os.Getenv("ENGINE_BENCH_AGENT")
	if addr == "" {
		addr = startChildAgent(b)
	}
	c, err := Dial(context.Background(), "grpc://"+addr, WithInsecure())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("inflight=%d", n), func(b *testing.B) { runRoundTrips(b, c, n) })
	}
}

// startChildAgent re-executes the test binary as a benchmark agent and
// returns its address. The child exits when its stdin closes.
func startChildAgent(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childAgentEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("child agent: %v", err)
	}
	return line[:len(line)-1]
}

// runChildAgent is the benchmark agent: one serial Recv/Send loop per
// stream (like the Rust SDK and the baseline agents), answering every
// request-headers event with allow. It uses the engine's own pass-through
// codec, so it does no protobuf work beyond finding the correlation id.
func runChildAgent() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	g := grpc.NewServer(grpc.ForceServerCodecV2(wireCodec{}))
	g.RegisterService(&grpc.ServiceDesc{
		ServiceName: "zentinel.agent.v2.AgentServiceV2",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{
			StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, st grpc.ServerStream) error { return childProcessStream(st) },
		}},
	}, struct{}{})
	go func() { _ = g.Serve(ln) }()
	fmt.Println(ln.Addr().String())
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // parent gone or done
	g.Stop()
}

func childProcessStream(st grpc.ServerStream) error {
	var in recvFrame
	var out sendFrame
	hs, _ := (&pb.AgentToProxy{Message: &pb.AgentToProxy_Handshake{Handshake: &pb.HandshakeResponse{
		ProtocolVersion: 2, Success: true, Capabilities: &pb.AgentCapabilities{ProtocolVersion: 2, AgentId: "bench"},
	}}}).MarshalVT()
	for {
		if err := st.RecvMsg(&in); err != nil {
			return nil
		}
		b := in.bytes()
		var reply mem.Buffer
		if len(b) > 0 && b[0] == 0x0a { // handshake
			reply = mem.SliceBuffer(hs)
		} else if cid, ok := requestHeadersCID(b); ok {
			inner := protowire.SizeTag(1) + protowire.SizeBytes(len(cid)) + 2
			bp := newOutBuffer(protowire.SizeTag(2) + protowire.SizeBytes(inner))
			r := protowire.AppendTag(*bp, 2, protowire.BytesType)
			r = protowire.AppendVarint(r, uint64(inner))
			r = protowire.AppendTag(r, 1, protowire.BytesType)
			r = protowire.AppendBytes(r, cid)
			*bp = append(r, 0x12, 0x00)
			reply = wrapOut(bp)
		}
		in.release()
		if reply == nil {
			continue
		}
		out.buf, out.taken = reply, false
		err := st.SendMsg(&out)
		if !out.taken {
			reply.Free()
		}
		if err != nil {
			return err
		}
	}
}
