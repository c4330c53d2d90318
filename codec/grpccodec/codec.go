// Package grpccodec is a grpc-go encoding.CodecV2 that marshals and
// unmarshals messages with their vtprotobuf-generated methods and pooled
// buffers, and falls back to google.golang.org/protobuf for messages
// without them.
//
// # Use
//
//	conn, err := grpc.NewClient(target, grpccodec.ClientOption(), ...)
//	srv := grpc.NewServer(grpccodec.ServerOption(), ...)
//
// The codec is wire-identical to grpc-go's default "proto" codec: either
// side may use it against a peer using the default codec, grpc-go's or
// tonic's. It is not registered globally; the options above install it for
// one connection or server.
//
// # Content type
//
// Name is "proto". grpc-go derives the request content-subtype from a forced
// codec's name, so a client using ClientOption sends
// "content-type: application/grpc+proto" instead of the default client's
// "application/grpc"; both are valid gRPC. A grpc-go server answers with the
// subtype the client sent, so a server using ServerOption answers a tonic
// client with "application/grpc". tonic 0.14 (what the reference proxy uses)
// never reads the content-type header in either direction. TestContentType
// records these values from the HTTP/2 frames on a loopback connection.
//
// # Memory
//
// Marshal computes SizeVT, takes one buffer of that size from Pool
// (uncleared power-of-two buffers of its own, 2 KiB to 1 MiB) and encodes into it with MarshalToSizedBufferVT;
// gRPC returns the buffer to the pool once the bytes are written. Pool is
// exported for encoders of their own that send the same way. Unmarshal
// decodes with UnmarshalVT, which copies every string and bytes field, so
// the decoded message never aliases gRPC's pooled receive buffers (the
// aliasing UnmarshalVTUnsafe is never used).
//
// # Concurrency
//
// The codec is stateless and safe for concurrent use.
package grpccodec

import (
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Name is the codec's name, the same as grpc-go's default protobuf codec.
const Name = "proto"

// pooledMin is the smallest capacity marshalVT and marshalProto ask their
// pool for. mem.NewBuffer only recycles buffers whose capacity exceeds 1
// KiB; a smaller one comes back as a SliceBuffer, which costs two
// allocations (the bytes, and boxing the slice into the mem.Buffer
// interface) and never returns to the pool. Asking for at least 1 KiB + 1
// makes small messages free of allocations once the pool is warm, also
// from a pool other than Pool (whose small buffers have 2 KiB anyway).
const pooledMin = 1<<10 + 1

// vtMessage is implemented by messages generated with vtprotobuf's
// marshal, size and unmarshal features.
type vtMessage interface {
	SizeVT() int
	MarshalToSizedBufferVT([]byte) (int, error)
	UnmarshalVT([]byte) error
}

type codec struct{}

var theCodec encoding.CodecV2 = codec{}

// Codec returns the codec. It is safe for concurrent use.
func Codec() encoding.CodecV2 { return theCodec }

// ClientOption returns a dial option that makes every call on the
// connection use the codec (grpc.ForceCodecV2 as a default call option).
func ClientOption() grpc.DialOption {
	return grpc.WithDefaultCallOptions(grpc.ForceCodecV2(theCodec))
}

// ServerOption returns a server option that makes the server use the codec
// for every request, whatever content-subtype the client sent.
func ServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(theCodec)
}

var errNotProto = errors.New("agentwire: grpccodec: value is not a protobuf message")

// errSizeMismatch reports a message that changed between SizeVT and
// MarshalToSizedBufferVT (a concurrent mutation by the caller).
var errSizeMismatch = errors.New("agentwire: grpccodec: message size changed while marshaling")

// Name returns "proto".
func (codec) Name() string { return Name }

// Marshal encodes v into a single buffer; the returned slice holds one
// reference, which gRPC frees after writing it.
func (codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(vtMessage); ok {
		buf, err := marshalVT(m, &thePool)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{buf}, nil
	}
	m := messageOf(v)
	if m == nil {
		return nil, errNotProto
	}
	buf, err := marshalProto(m, &thePool)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{buf}, nil
}

// marshalVT encodes m into one buffer from pool. The caller owns the
// returned buffer's reference and must Free it.
func marshalVT(m vtMessage, pool mem.BufferPool) (mem.Buffer, error) {
	size := m.SizeVT()
	bp := pool.Get(max(size, pooledMin))
	*bp = (*bp)[:size]
	if err := marshalSized(m, *bp); err != nil {
		pool.Put(bp)
		return nil, err
	}
	return mem.NewBuffer(bp, pool), nil
}

func marshalSized(m vtMessage, b []byte) error {
	n, err := m.MarshalToSizedBufferVT(b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return errSizeMismatch
	}
	return nil
}

// marshalProto is the fallback for messages without vtprotobuf methods.
func marshalProto(m proto.Message, pool mem.BufferPool) (mem.Buffer, error) {
	size := proto.Size(m)
	// UseCachedSize reuses the sizes proto.Size just stored in the message.
	opts := proto.MarshalOptions{UseCachedSize: true}
	bp := pool.Get(max(size, pooledMin))
	b, err := opts.MarshalAppend((*bp)[:0], m)
	if err != nil {
		pool.Put(bp)
		return nil, err
	}
	if len(b) != size {
		pool.Put(bp)
		return nil, errSizeMismatch
	}
	*bp = b
	return mem.NewBuffer(bp, pool), nil
}

// Unmarshal decodes data into v. Like UnmarshalVT, and unlike grpc-go's
// default codec, it merges into v without resetting it first: pass a new
// message or one fresh from a vtproto pool (which is already reset), as
// grpc-go's generated stubs do. data is only read during the call.
func (codec) Unmarshal(data mem.BufferSlice, v any) error {
	if m, ok := v.(vtMessage); ok {
		if len(data) == 1 {
			// A single buffer is read in place; UnmarshalVT copies what
			// it keeps.
			return m.UnmarshalVT(data[0].ReadOnlyData())
		}
		buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
		defer buf.Free()
		return m.UnmarshalVT(buf.ReadOnlyData())
	}
	m := messageOf(v)
	if m == nil {
		return errNotProto
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	return proto.UnmarshalOptions{Merge: true}.Unmarshal(buf.ReadOnlyData(), m)
}

func messageOf(v any) proto.Message {
	switch v := v.(type) {
	case protoadapt.MessageV2:
		return v
	case protoadapt.MessageV1:
		return protoadapt.MessageV2Of(v)
	}
	return nil
}
