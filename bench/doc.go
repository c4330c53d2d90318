// Package bench holds the end-to-end load generator and its comparison with
// the baseline port of the reference design (../shared/baseline): round trips
// per second, latency percentiles, client CPU time and allocations per
// request, at several in-flight levels, over gRPC and the Unix socket.
package bench
