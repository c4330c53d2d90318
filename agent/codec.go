package agent

import (
	"github.com/agentwire/agentwire/codec/grpccodec"
	"google.golang.org/grpc"
)

// codecServerOptions returns the codec options of the grpc.Server created by
// ServeGRPC: the vtprotobuf codec with pooled buffers (wire-identical to the
// default protobuf codec).
func codecServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpccodec.ServerOption()}
}
