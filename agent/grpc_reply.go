package agent

import (
	"errors"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/agentwire/agentwire/internal/pbwire"
)

// grpcReply is the message the ProcessStream writer sends for a call: the
// call's reply, encoded when grpc-go's codec asks for it (on the writer's
// goroutine, inside SendMsg).
//
// Under a vtprotobuf-aware codec (codec/grpccodec, which ServeGRPC
// installs) the usual reply — an allow decision without audit.custom — is
// written straight from the call's AgentResponse by internal/pbwire, with
// no protobuf structs in between; the bytes equal vtprotobuf's for the
// message internal/pbconv builds (pbwire's TestAgentResponseMatchesVT).
// Every other reply, and every reply under a codec that uses protobuf
// reflection (grpc-go's default, on a server of the caller's own given to
// RegisterGRPC), goes through the call's ResponseEncoder and the generated
// code as before: ProtoReflect builds that message first.
//
// The response must not change between SizeVT and MarshalToSizedBufferVT
// (it does not: the handler has returned and only the writer reads it).
type grpcReply grpcCall

// errReplyDecode is returned by grpcReply.UnmarshalVT, which exists only
// to complete the codec's method set: a reply is never received.
var errReplyDecode = errors.New("agentwire: an outbound reply cannot be decoded into")

// measure decides the encoding of the reply once per send.
func (r *grpcReply) measure() {
	if r.measured {
		return
	}
	r.measured = true
	r.wsz, r.direct = pbwire.MeasureAgentResponse(&r.resp)
}

// build fills the call's protobuf message from the response (generic path).
func (r *grpcReply) build() {
	if r.out.Message == nil {
		r.wrp.Response = r.enc.Encode(&r.resp)
		r.out.Message = &r.wrp
	}
}

// ProtoReflect returns the reply as a protobuf message, for codecs that
// use reflection.
func (r *grpcReply) ProtoReflect() protoreflect.Message {
	r.build()
	return r.out.ProtoReflect()
}

// SizeVT returns the encoded length of the reply.
func (r *grpcReply) SizeVT() int {
	r.measure()
	if r.direct {
		return r.wsz.Len
	}
	r.build()
	return r.out.SizeVT()
}

// MarshalToSizedBufferVT writes the reply at the end of b, as vtprotobuf
// does, and returns its length.
func (r *grpcReply) MarshalToSizedBufferVT(b []byte) (int, error) {
	r.measure()
	if !r.direct {
		r.build()
		return r.out.MarshalToSizedBufferVT(b)
	}
	n := r.wsz.Len
	if len(b) < n {
		return 0, errReplySize
	}
	pbwire.AppendMeasuredAgentResponse(b[len(b)-n:len(b)-n], &r.resp, r.wsz)
	return n, nil
}

// MarshalVT returns the reply's encoding in a new slice.
func (r *grpcReply) MarshalVT() ([]byte, error) {
	r.measure()
	if !r.direct {
		r.build()
		return r.out.MarshalVT()
	}
	return pbwire.AppendMeasuredAgentResponse(make([]byte, 0, r.wsz.Len), &r.resp, r.wsz), nil
}

// UnmarshalVT always fails (see errReplyDecode).
func (r *grpcReply) UnmarshalVT([]byte) error { return errReplyDecode }

var errReplySize = errors.New("agentwire: reply buffer shorter than the reply")
