package engine

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/agentwire/agentwire"
)

// TestGeneratedCorrelationIDs: an event sent with an empty correlation id
// gets a generated one, written into the event (the caller reads it back)
// and routed like any other: the reply carries it, over gRPC and over a
// Unix socket, for every request call.
func TestGeneratedCorrelationIDs(t *testing.T) {
	srv := startAgent(t, newTestAgent())
	ua := startUDSAgent(t, newTestAgent())
	for name, c := range map[string]*Conn{
		"grpc": dial(t, srv.addr),
		"uds":  dialUDS(t, ua.path),
	} {
		t.Run(name, func(t *testing.T) {
			ctx := testCtx(t)
			seen := map[string]bool{}
			check := func(what, id string, r *agentwire.AgentResponse, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if !strings.HasPrefix(id, "aw") || len(id) < cidPrefixLen+1 {
					t.Fatalf("%s: generated id %q", what, id)
				}
				if seen[id] {
					t.Fatalf("%s: id %q generated twice", what, id)
				}
				seen[id] = true
				if r != nil && r.CorrelationID != id {
					t.Fatalf("%s: reply for %q, event id %q", what, r.CorrelationID, id)
				}
			}
			rh := headersEvent("")
			r, err := c.RequestHeaders(ctx, rh)
			check("RequestHeaders", rh.Metadata.CorrelationID, r, err)
			rh2 := headersEvent("")
			dst := new(agentwire.AgentResponse)
			err = c.RequestHeadersInto(ctx, rh2, dst)
			check("RequestHeadersInto", rh2.Metadata.CorrelationID, dst, err)
			bc := &agentwire.BodyChunk{Data: []byte("x")}
			r, err = c.RequestBodyChunk(ctx, bc)
			check("RequestBodyChunk", bc.CorrelationID, r, err)
			rs := &agentwire.ResponseHeadersEvent{Status: 200}
			r, err = c.ResponseHeaders(ctx, rs)
			check("ResponseHeaders", rs.CorrelationID, r, err)
			rb := &agentwire.BodyChunk{Data: []byte("y"), IsLast: true}
			r, err = c.ResponseBodyChunk(ctx, rb)
			check("ResponseBodyChunk", rb.CorrelationID, r, err)
			ws := &agentwire.WebSocketFrameEvent{Opcode: "text", Data: []byte("hi")}
			r, err = c.WebSocketFrame(ctx, ws)
			check("WebSocketFrame", ws.CorrelationID, r, err)
			gr := &agentwire.GuardrailInspectEvent{InspectionType: agentwire.InspectionPromptInjection, Content: "hi"}
			r, err = c.GuardrailInspect(ctx, gr)
			check("GuardrailInspect", gr.CorrelationID, r, err)
			rc := &agentwire.RequestCompleteEvent{Status: 200}
			r, err = c.RequestComplete(ctx, rc)
			check("RequestComplete", rc.CorrelationID, r, err)
			// A set id is left alone.
			set := headersEvent("mine")
			if r, err := c.RequestHeaders(ctx, set); err != nil || set.Metadata.CorrelationID != "mine" || r.CorrelationID != "mine" {
				t.Fatalf("set id: %v, %q, %+v", err, set.Metadata.CorrelationID, r)
			}
		})
	}
}

// TestGeneratedCorrelationIDsUnique: ids generated concurrently on one Conn
// never repeat, and two Conns use different prefixes.
func TestGeneratedCorrelationIDsUnique(t *testing.T) {
	c1 := &Conn{cidPrefix: newCIDPrefix()}
	c2 := &Conn{cidPrefix: newCIDPrefix()}
	if c1.cidPrefix == c2.cidPrefix {
		t.Fatalf("two Conns drew the same prefix %q", c1.cidPrefix)
	}
	if len(c1.cidPrefix) != cidPrefixLen {
		t.Fatalf("prefix %q: length %d, want %d", c1.cidPrefix, len(c1.cidPrefix), cidPrefixLen)
	}
	const workers, each = 8, 2000
	var mu sync.Mutex
	all := make(map[string]bool, workers*each)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := make([]string, each)
			for i := range ids {
				ids[i] = c1.newCID()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if all[id] {
					t.Errorf("id %q generated twice", id)
				}
				all[id] = true
			}
		}()
	}
	wg.Wait()
	if id := c2.newCID(); all[id] {
		t.Fatalf("another Conn generated %q too", id)
	}
}

// BenchmarkGenerateCID measures the id generator alone: an atomic add, a
// copy into a stack buffer, the string's one allocation
// (TestGenerateCIDAllocations counts them exactly).
func BenchmarkGenerateCID(b *testing.B) {
	c := &Conn{cidPrefix: newCIDPrefix()}
	b.ReportAllocs()
	var sink string
	for b.Loop() {
		sink = c.newCID()
	}
	_ = sink
}

// BenchmarkRequestHeadersGeneratedCID compares a round trip (in-memory
// agent) with and without a generated correlation id.
func BenchmarkRequestHeadersGeneratedCID(b *testing.B) {
	c := memConn(b)
	ctx := context.Background()
	dst := new(agentwire.AgentResponse)
	b.Run("set", func(b *testing.B) {
		ev := headersEvent("bench-set")
		b.ReportAllocs()
		for b.Loop() {
			if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generated", func(b *testing.B) {
		ev := headersEvent("")
		b.ReportAllocs()
		for b.Loop() {
			ev.Metadata.CorrelationID = ""
			if err := c.RequestHeadersInto(ctx, ev, dst); err != nil {
				b.Fatal(err)
			}
		}
	})
}
