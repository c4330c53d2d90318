package bench

import (
	"bytes"
	"context"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/payload"
)

// chunkCounter is the echo agent counting body chunks and their bytes.
type chunkCounter struct {
	refagents.Echo
	chunks, bytes, last atomic.Int64
}

func (c *chunkCounter) OnRequestBodyChunk(_ context.Context, ev *agentwire.BodyChunk, _ *agentwire.AgentResponse) error {
	c.chunks.Add(1)
	c.bytes.Add(int64(len(ev.Data)))
	if ev.IsLast {
		c.last.Add(1)
	}
	return nil
}

func startEcho(t *testing.T, h agent.Handler) string {
	t.Helper()
	srv := agent.NewServer(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeGRPC(ln) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return ln.Addr().String()
}

func TestEngineLoadBodyChunks(t *testing.T) {
	h := &chunkCounter{}
	addr := startEcho(t, h)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var conns []*engine.Conn
	for range 2 {
		c, err := engine.Dial(ctx, addr, engine.WithInsecure())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	rt, err := EngineLoad{Conns: conns, Concurrency: 3, BodySize: 1000, ChunkSize: 300}.RoundTrip()
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, Config{Concurrency: 3, Duration: 200 * time.Millisecond, Warmup: -1}, rt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Requests == 0 {
		t.Fatalf("result %+v", res)
	}
	// Every round trip sends 4 chunks (300+300+300+100), the last one marked.
	chunks, last, n := h.chunks.Load(), h.last.Load(), h.bytes.Load()
	if chunks != 4*last || n != 1000*last || last < res.Requests {
		t.Fatalf("chunks %d, last %d, bytes %d for %d requests", chunks, last, n, res.Requests)
	}
	for _, c := range conns {
		if c.Stats().Received == 0 {
			t.Fatal("a connection carried no request")
		}
	}
}

func TestEngineLoadValidation(t *testing.T) {
	if _, err := (EngineLoad{Concurrency: 1}).RoundTrip(); err == nil {
		t.Error("no connection accepted")
	}
	if _, err := (EngineLoad{Conns: []*engine.Conn{nil}}).RoundTrip(); err == nil {
		t.Error("zero concurrency accepted")
	}
}

func TestIDSlab(t *testing.T) {
	var s idSlab
	var ids []string
	for seq := uint64(0); seq < 1000; seq++ {
		ids = append(ids, s.next(3, seq))
	}
	// Ids handed out earlier keep their value after later ones (and new
	// slabs) were made.
	for seq, id := range ids {
		if want := string(AppendID(nil, 3, uint64(seq))); id != want {
			t.Fatalf("id %d = %q, want %q", seq, id, want)
		}
	}
}

// The load's headers are sorted once at setup; that must not change a
// byte on the wire in either encoding.
func TestSortedSampleHeadersSameWire(t *testing.T) {
	ev := SampleRequestHeaders("id-1")
	sorted := SampleRequestHeaders("id-1")
	slices.SortStableFunc(sorted.Headers, func(a, b agentwire.Header) int { return strings.Compare(a.Name, b.Name) })
	if slices.EqualFunc(ev.Headers, sorted.Headers, func(a, b agentwire.Header) bool { return a.Name == b.Name }) {
		t.Fatal("sample headers already sorted: the test proves nothing")
	}
	if a, b := payload.AppendRequestHeadersMsgpack(nil, &ev), payload.AppendRequestHeadersMsgpack(nil, &sorted); !bytes.Equal(a, b) {
		t.Fatal("msgpack encoding differs")
	}
	if a, b := payload.AppendRequestHeadersJSON(nil, &ev), payload.AppendRequestHeadersJSON(nil, &sorted); !bytes.Equal(a, b) {
		t.Fatal("json encoding differs")
	}
}
