package agent

import (
	"errors"
	"unsafe"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire/codec/grpccodec"
	"github.com/agentwire/agentwire/internal/pbwire"
)

// serverCodec is the CodecV2 of the grpc.Server that ServeGRPC creates:
// codec/grpccodec (vtprotobuf on pooled buffers, wire-identical to the
// default protobuf codec), except for the two messages every event of a
// ProcessStream costs.
//
// Received: a hot event (inbound, see wire.go) that grpc-go hands over as
// one mem.SliceBuffer is kept without copying it. A SliceBuffer is the
// unpooled kind of mem.Buffer (grpc-go reads every DATA frame of at most
// 1 KiB into one of its own, as the usual request headers event is):
// its Free does nothing and its bytes are never handed out again, so the
// reference the codec takes (Ref, CodecV2's rule for keeping data past
// Unmarshal) never has to be given back, and the bytes stay valid, and
// unchanged, for as long as a string points into them, which is what the
// handler's strings need (they used to point into a private copy of the
// same bytes). Any other buffer (pooled: a larger frame; several: a
// message split across frames) is copied as before.
//
// Sent: the usual reply (grpcReply on its direct path) is written by
// internal/pbwire into a buffer of grpccodec.Pool, the pool grpccodec
// marshals into, which, unlike grpc-go's default pool, neither clears the
// buffer on Get nor hands out 4 KiB for a reply of tens of bytes.
//
// It is stateless and safe for concurrent use.
type serverCodec struct{}

var _ encoding.CodecV2 = serverCodec{}

// Name returns "proto", as grpccodec does.
func (serverCodec) Name() string { return grpccodec.Name }

// Marshal encodes v; see serverCodec.
func (serverCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*grpcReply); ok {
		if b, ok, err := r.marshalDirect(); ok {
			return mem.BufferSlice{b}, err
		}
	}
	return grpccodec.Codec().Marshal(v)
}

// Unmarshal decodes data into v; see serverCodec.
func (serverCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if in, ok := v.(*inbound); ok && len(data) == 1 {
		if sb, ok := data[0].(mem.SliceBuffer); ok && len(sb) > 0 && isHotTag(sb[0]) {
			sb.Ref() // kept, never freed (a no-op for a SliceBuffer)
			in.raw = unsafe.String(unsafe.SliceData(sb), len(sb))
			return nil
		}
	}
	return grpccodec.Codec().Unmarshal(data, v)
}

// errReplyLength reports a direct reply whose encoding did not have the
// measured length (it cannot happen: the response does not change between
// the two, see grpcReply).
var errReplyLength = errors.New("agentwire: reply encoding differs from its measured length")

// marshalDirect writes the reply into a buffer of grpccodec.Pool when
// internal/pbwire encodes it (ok); otherwise ok is false and nothing was
// done.
func (r *grpcReply) marshalDirect() (b mem.Buffer, ok bool, err error) {
	r.measure()
	if !r.direct {
		return nil, false, nil
	}
	n := r.wsz.Len
	pool := grpccodec.Pool()
	bp := pool.Get(n)
	*bp = pbwire.AppendMeasuredAgentResponse((*bp)[:0], &r.resp, r.wsz)
	if len(*bp) != n {
		pool.Put(bp)
		return nil, true, errReplyLength
	}
	return mem.NewBuffer(bp, pool), true, nil
}
