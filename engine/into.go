package engine

import (
	"context"

	"github.com/agentwire/agentwire"
)

// RequestBodyChunkInto is RequestBodyChunk decoding the reply into dst
// (reset first) instead of a new value: with a reused dst a chunk costs no
// allocation for a plain reply, whatever its size, in memory or over a
// Unix socket; grpc-go adds its own per-message allocations. dst must
// not be used by anyone else until the call returns; on error its content is
// undefined. ev.Data is copied into the outbound message before the call
// blocks, but ev must not be modified until the call returns. An empty
// ev.CorrelationID is generated and set (see RequestHeaders). Safe for
// concurrent use.
func (c *Conn) RequestBodyChunkInto(ctx context.Context, ev *agentwire.BodyChunk, dst *agentwire.AgentResponse) error {
	return c.bodyChunkInto(ctx, ev, dst, false)
}

// ResponseBodyChunkInto is ResponseBodyChunk decoding the reply into dst,
// like RequestBodyChunkInto. Safe for concurrent use.
func (c *Conn) ResponseBodyChunkInto(ctx context.Context, ev *agentwire.BodyChunk, dst *agentwire.AgentResponse) error {
	return c.bodyChunkInto(ctx, ev, dst, true)
}

func (c *Conn) bodyChunkInto(ctx context.Context, ev *agentwire.BodyChunk, dst *agentwire.AgentResponse, response bool) error {
	if ev == nil || dst == nil {
		var cid string
		if ev != nil {
			cid = ev.CorrelationID
		}
		return withCID(c.invalid(errNilEvent), cid)
	}
	if ev.CorrelationID == "" {
		ev.CorrelationID = c.newCID()
	}
	kind := int32(agentwire.EventRequestBodyChunk)
	if response {
		kind = agentwire.EventResponseBodyChunk
	}
	return c.call(ctx, ev.CorrelationID, event{kind: kind, bc: ev, response: response}, dst)
}
