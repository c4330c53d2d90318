package engine

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// BenchmarkTraceOff is the request-headers round trip with tracing off: no
// tracer provider, no span in the caller's context and an event without a
// traceparent, the path whose cost the trace support must not change.
// Compare before/after with benchstat over -count runs:
//
//	go test ./engine -run '^$' -bench TraceOff -count 10 > new.txt
//
// mem is the engine alone (in-memory agent); uds is a real Unix socket to a
// child agent process (JSON).
func BenchmarkTraceOff(b *testing.B) {
	b.Run("mem", func(b *testing.B) { benchTraceOff(b, memConn(b)) })
	b.Run("uds", func(b *testing.B) {
		c, err := Dial(context.Background(), "unix://"+startChildUDSAgent(b))
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		benchTraceOff(b, c)
	})
}

func benchTraceOff(b *testing.B, c *Conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ev := benchEvent("")
	ev.Metadata.Traceparent = ""
	dst := new(agentwire.AgentResponse)
	id := make([]byte, 0, 24)
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		seq++
		id = strconv.AppendUint(append(id[:0], "off-"...), seq, 36)
		ev.Metadata.CorrelationID = string(id)
		if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTraceparentLookup is the work the trace support adds to a
// request-headers call: "off" is the whole cost with tracing off (the
// context lookup of a span context that is not there, through a
// cancellable context with a deadline as a gateway's would be), "on" the
// propagation (pooled event copy, traceparent formatted, copy recycled).
func BenchmarkTraceparentLookup(b *testing.B) {
	ev := benchEvent("lookup")
	ev.Metadata.Traceparent = ""
	base, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for _, tc := range []struct {
		name string
		ctx  context.Context
	}{{"off", base}, {"on", ContextWithTraceparent(base, sampleTP)}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if te := withTraceparent(tc.ctx, &ev); te != nil {
					te.release()
				}
			}
		})
	}
}
