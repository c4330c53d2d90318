package pool

import (
	"context"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// RequestBodyChunkTo sends a request body chunk to the agent of step i of
// the pipeline only (to the connection of the request's headers, subject
// to the agent's request body limit), for proxies that plan bodies per
// agent: each agent its own body mode (buffered, streamed, hybrid), hence
// its own chunks. The other steps' verdicts in r are the zero Verdict
// with their agent's name, as for the steps a sequential phase did not
// reach; r's header operations and audit are the step's. It panics when
// i is not a step of the pipeline.
func (pl *Pipeline) RequestBodyChunkTo(ctx context.Context, r *Request, i int, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	return pl.one(ctx, r, i, call{kind: agentwire.EventRequestBodyChunk, cid: ev.CorrelationID, bc: ev}, opts)
}

// ResponseBodyChunkTo is RequestBodyChunkTo for a response body chunk
// (subject to the agent's response body limit).
func (pl *Pipeline) ResponseBodyChunkTo(ctx context.Context, r *Request, i int, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	return pl.one(ctx, r, i, call{kind: agentwire.EventResponseBodyChunk, cid: ev.CorrelationID, bc: ev}, opts)
}

// one runs c on step i only.
func (pl *Pipeline) one(ctx context.Context, r *Request, i int, c call, opts []CallOption) engine.Verdict {
	if i < 0 || i >= len(pl.steps) {
		panic("agentwire: pipeline step out of range")
	}
	r.begin(pl)
	for j := range pl.steps {
		if j != i {
			r.Verdicts[j] = engine.Verdict{Agent: pl.steps[j].Agent.name}
		}
	}
	if pl.admit(r, i, c.kind, opts) {
		pl.run(ctx, r, i, c, opts)
	}
	return pl.merge(r)
}

// BodyLimits returns the request and response body inspection limits in
// force, in bytes (-1: none): those of WithBodyLimits, capped by the
// max_body_size the agent's connections announced. A proxy that buffers a
// body for the agent holds at most that much. It takes no lock.
func (a *Agent) BodyLimits() (request, response int64) {
	return a.bodyLimit(false), a.bodyLimit(true)
}
