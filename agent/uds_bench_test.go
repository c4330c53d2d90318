package agent

import (
	"context"
	"fmt"

	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// udsBenchEvent is the request-headers event of PERF.md's baseline load:
// 15 typical headers, full metadata with traceparent.
func udsBenchEvent(cid string) *agentwire.RequestHeadersEvent {
	return &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: cid, RequestID: cid, ClientIP: "203.0.113.7", ClientPort: 54321,
			ServerName: agentwire.Some("api.example.com"), Protocol: "HTTP/1.1", TLSVersion: agentwire.Some("TLSv1.3"),
			RouteID: agentwire.Some("api-v1"), UpstreamID: agentwire.Some("backend-pool-1"),
			Timestamp:   time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
			Traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
		},
		Method: "POST", URI: "/api/v1/orders?customer=12345&expand=items",
		Headers: agentwire.Headers{
			{Name: "accept", Values: []string{"application/json, text/plain, */*"}},
			{Name: "accept-encoding", Values: []string{"gzip, deflate, br"}},
			{Name: "accept-language", Values: []string{"en-US,en;q=0.9"}},
			{Name: "authorization", Values: []string{"Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.abc"}},
			{Name: "cache-control", Values: []string{"no-cache"}},
			{Name: "connection", Values: []string{"keep-alive"}},
			{Name: "content-length", Values: []string{"512"}},
			{Name: "content-type", Values: []string{"application/json"}},
			{Name: "cookie", Values: []string{"session=3f1a9c2b7e8d4f6a9b0c1d2e3f4a5b6c; theme=dark; _ga=GA1.2.123456789.1700000000"}},
			{Name: "host", Values: []string{"api.example.com"}},
			{Name: "referer", Values: []string{"https://www.example.com/app/dashboard"}},
			{Name: "sec-ch-ua", Values: []string{"\"Chromium\";v=\"120\", \"Not?A_Brand\";v=\"24\""}},
			{Name: "user-agent", Values: []string{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"}},
			{Name: "x-forwarded-for", Values: []string{"203.0.113.7, 10.0.0.12"}},
			{Name: "x-request-id", Values: []string{"a1b2c3d4-e5f6-7890-abcd-ef1234567890"}},
		},
	}
}

// udsBenchFrames returns n distinct request-headers frames (distinct
// correlation ids), concatenated, and the offset of each.
func udsBenchFrames(n int, msgpack bool) ([]byte, []int) {
	var buf []byte
	offs := make([]int, n+1)
	for i := range n {
		offs[i] = len(buf)
		ev := udsBenchEvent("bench-" + strconv.Itoa(i) + "-5f0c2a9e7b1d4e38")
		var b int
		buf, b = frame.BeginFrame(buf, frame.TypeRequestHeaders)
		if msgpack {
			buf = payload.AppendRequestHeadersMsgpack(buf, ev)
		} else {
			buf = payload.AppendRequestHeadersJSON(buf, ev)
		}
		if err := frame.EndFrame(buf, b); err != nil {
			panic(err)
		}
	}
	offs[n] = len(buf)
	return buf, offs
}

// BenchmarkUDSPipelined measures the agent's Unix-socket path end to end:
// a raw client keeps inFlight request-headers events in flight on one
// connection (batching its writes like a proxy's writer task) against the
// echo handler. The client allocates nothing, so allocs/op are the
// agent's allocations per request; req/s is client and agent sharing this
// machine's cores.
func BenchmarkUDSPipelined(b *testing.B) {
	for _, enc := range []string{"json", "msgpack"} {
		for _, inFlight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", enc, inFlight), func(b *testing.B) {
				benchUDS(b, enc, inFlight)
			})
		}
	}
}

// BenchmarkUDSPipelinedInline is BenchmarkUDSPipelined with inline
// handlers (WithInlineHandlers), as `agentwire serve --agent echo` runs.
func BenchmarkUDSPipelinedInline(b *testing.B) {
	for _, enc := range []string{"json", "msgpack"} {
		for _, inFlight := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", enc, inFlight), func(b *testing.B) {
				benchUDS(b, enc, inFlight, WithInlineHandlers())
			})
		}
	}
}

func benchUDS(b *testing.B, enc string, inFlight int, opts ...Option) {
	e := startUDS(b, echoHandler{}, opts...)
	p := dialRaw(b, e.path)
	p.handshake(enc)
	const distinct = 256
	frames, offs := udsBenchFrames(distinct, enc == "msgpack")
	// Warm up: workers, pools, buffers.
	for i := range 4 * inFlight {
		j := i % distinct
		p.writeRaw(frames[offs[j]:offs[j+1]])
		if i >= inFlight {
			p.recvReply(enc == "msgpack")
		}
	}
	for range inFlight {
		p.recvReply(enc == "msgpack")
	}

	tokens := make(chan struct{}, inFlight)
	for range inFlight {
		tokens <- struct{}{}
	}
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	p.c.SetDeadline(time.Time{})
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	go func() {
		defer close(writerDone)
		next := 0
		for sent := 0; sent < b.N; {
			select {
			case <-tokens:
			case <-stop:
				return
			}
			k := 1
		more:
			for k < inFlight && sent+k < b.N {
				select {
				case <-tokens:
					k++
				default:
					break more
				}
			}
			// Write k frames starting at next, in at most two writes.
			for k > 0 {
				m := min(k, distinct-next)
				if _, err := p.c.Write(frames[offs[next]:offs[next+m]]); err != nil {
					return
				}
				next = (next + m) % distinct
				sent += m
				k -= m
			}
		}
	}()
	for range b.N {
		typ, _, err := p.rd.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if typ != frame.TypeAgentResponse {
			b.Fatalf("frame %v", typ)
		}
		tokens <- struct{}{}
	}
	el := time.Since(start)
	cpu := processCPU() - cpu0
	b.StopTimer()
	close(stop)
	<-writerDone
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
	// CPU of the whole test process (agent and the minimal raw client) per
	// request; steadier than req/s on a shared machine.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
}

// processCPU returns the user+system CPU time the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkUDSDecodeDispatch measures the agent's own per-event work
// without the socket: decode, routing id, handler, reply encode.
func BenchmarkUDSDecodeDispatch(b *testing.B) {
	for _, enc := range []string{"json", "msgpack"} {
		b.Run(enc, func(b *testing.B) {
			s := NewServer(echoHandler{})
			defer s.Close()
			uc := &udsConn{srv: s, msgpack: enc == "msgpack"}
			uc.ctx, uc.cancel = context.WithCancel(s.baseCtx)
			defer uc.cancel()
			frames, offs := udsBenchFrames(1, uc.msgpack)
			p := frames[frame.HeaderSize:offs[1]]
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				c := getUDSCall(uc)
				if err := c.decodeEvent(frame.TypeRequestHeaders, p, uc.msgpack); err != nil {
					b.Fatal(err)
				}
				uc.begin(c)
				s.invoke(&c.exchange)
				uc.encodeReply(c)
				uc.end(c)
				c.release()
			}
		})
	}
}
