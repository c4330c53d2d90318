// Package pprof is the profiling harness: it runs the engine against an
// in-process agent under load and writes CPU, allocation and mutex profiles,
// so hot-path regressions can be inspected with `go tool pprof`.
package pprof
