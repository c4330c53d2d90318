package agent

import (
	"google.golang.org/grpc"
)

// codecServerOptions returns the codec options of the grpc.Server created by
// ServeGRPC: the vtprotobuf codec with pooled buffers (wire-identical to the
// default protobuf codec), with the ProcessStream's own handling of events
// and replies (serverCodec, grpc_codec.go).
func codecServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{grpc.ForceServerCodecV2(serverCodec{})}
}
