// Command agentwire runs reference agents, probes and benchmarks agents of
// the Zentinel agent protocol v2.
//
//	agentwire serve --listen ENDPOINT --agent echo|deny [--deny-prefix /admin]
//	agentwire serve --dial ENDPOINT --agent-id ID [--token T] --agent echo|deny
//	agentwire probe --agent ENDPOINT [--method GET] [--uri /] [-H 'Name: value']... [--json]
//	agentwire probe --accept ENDPOINT [--token T] ...
//	agentwire bench --agent ENDPOINT [--concurrency 64] [--duration 10s] [--json]
//	agentwire demo
//
// Endpoints: "grpc://host:port" or "host:port" (plaintext gRPC),
// "grpcs://host:port" (gRPC with TLS: --tls-ca, --tls-cert, --tls-key),
// "grpc+unix:///path" (gRPC over a Unix socket), "unix:///path" or "/path"
// (the binary Unix-socket protocol; --encoding json|msgpack). Reverse
// endpoints (serve --dial, probe --accept) are Unix sockets or host:port.
//
// Exit status: 0 on success (serve: after a graceful stop on SIGTERM or
// SIGINT), 1 when the command failed (message on stderr), 2 for a bad
// command line.
//
// The output of probe --json and bench --json is a stable contract; see
// the help of each command (agentwire CMD -h).
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}
