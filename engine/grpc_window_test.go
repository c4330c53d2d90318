package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

func TestGRPCWindowValidation(t *testing.T) {
	ctx := testCtx(t)
	for _, n := range []int{-1, 1, 64<<10 - 1, 1 << 31} {
		_, err := Dial(ctx, "grpc://127.0.0.1:1", WithInsecure(), WithGRPCWindow(n))
		if err == nil || !strings.Contains(err.Error(), "gRPC window") {
			t.Fatalf("window %d: %v", n, err)
		}
	}
}

// bodySizeAgent answers every request body chunk with a header mutation
// carrying the chunk's length and a checksum of its bytes.
type bodySizeAgent struct{ agent.BaseHandler }

func (bodySizeAgent) OnRequestBodyChunk(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
	var sum byte
	for _, b := range ev.Data {
		sum += b
	}
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-len", Value: fmt.Sprintf("%d/%d", len(ev.Data), sum)})
	return nil
}

// TestGRPCWindowLargeMessages sends messages far larger than the smallest
// window, with the engine and agent windows fixed (small, default) or
// dynamic (0), so that every combination needs window updates to finish.
func TestGRPCWindowLargeMessages(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	var sum byte
	for _, b := range data {
		sum += b
	}
	want := fmt.Sprintf("%d/%d", len(data), sum)
	for _, w := range []struct{ engine, agent int }{{64 << 10, 64 << 10}, {0, 0}, {DefaultGRPCWindow, 0}, {0, agent.DefaultGRPCWindow}} {
		t.Run(fmt.Sprintf("engine=%d/agent=%d", w.engine, w.agent), func(t *testing.T) {
			a := startAgent(t, bodySizeAgent{}, agent.WithGRPCWindow(w.agent))
			c := dial(t, a.addr, WithGRPCWindow(w.engine))
			for i := range 3 {
				r, err := c.RequestBodyChunk(testCtx(t), &agentwire.BodyChunk{CorrelationID: fmt.Sprintf("c%d", i), Data: data, IsLast: true})
				if err != nil {
					t.Fatal(err)
				}
				if len(r.RequestHeaders) != 1 || r.RequestHeaders[0].Value != want {
					t.Fatalf("reply %+v, want x-len %s", r.RequestHeaders, want)
				}
			}
		})
	}
}
