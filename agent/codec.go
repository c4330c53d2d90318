package agent

import "google.golang.org/grpc"

// codecServerOptions returns the codec options of the grpc.Server created by
// ServeGRPC.
func codecServerOptions() []grpc.ServerOption { return nil }
