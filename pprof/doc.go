// Command pprof is the profiling harness: it runs the engine against an
// agent under closed-loop load (the same request-headers round trips as
// agentwire bench) for a while and writes CPU, allocation and mutex
// profiles, so hot-path regressions can be inspected with `go tool pprof`.
//
//	go run ./pprof -transport grpc -duration 10s -out /tmp/prof
//	go run ./pprof -transport uds -encoding json -out /tmp/prof
//	go run ./pprof -agent grpc://127.0.0.1:50051 -out /tmp/prof   # an external agent
//	go tool pprof -http=:0 /tmp/prof/cpu.pprof
//
// It writes cpu.pprof (the measured window), cpu.folded (the same samples
// as folded stacks, "root;...;leaf count" per line, which flame-graph
// tools such as flamegraph.pl, inferno or speedscope read), allocs.pprof
// (the allocation profile; -mem-rate 1 samples every allocation) and
// mutex.pprof (contention during the window) to -out, and prints as its
// last line the command that opens the CPU flame graph in a browser
// (go tool pprof -http=:0 .../cpu.pprof, View > Flame Graph). -encoding
// (json or msgpack) applies to the Unix-socket transport; gRPC messages
// are protobuf. By default the echo reference
// agent runs in the same process; samples are labelled side=engine (the
// engine and the load callers) or side=agent (the agent server), so
// `go tool pprof -tagfocus side=engine cpu.pprof` shows the proxy side
// alone (labels apply to CPU samples only; the allocation profile covers
// both sides of an in-process run).
package main
