#!/usr/bin/env bash
# Regenerate cmd/agentwire/default.pgo, the CPU profile `go build` uses for
# profile-guided optimization of the agentwire binary (-pgo=auto): it runs
# `agentwire serve --agent echo` and `agentwire bench` (64 in flight) over
# the unix socket with MessagePack and with JSON, and over gRPC, profiles
# both processes, and merges the six profiles.
#
#   bench/pgo.sh            # 15 s per configuration
#   DUR=30s bench/pgo.sh
#   make pgo
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DUR="${DUR:-15s}"
GO="${GO:-go}"
bench_workdir

# Profile a binary built without the current profile, so the new one does
# not describe already-optimised code only.
"$GO" build -pgo=off -o "$tmp/agentwire" ./cmd/agentwire

run() { # name listen [encoding]
	start_agent "$tmp/agentwire" "$tmp/serve.err" "$2" --cpuprofile "$tmp/serve-$1.prof" || exit 1
	"$tmp/agentwire" bench --agent "$agent_ep" --duration "$DUR" --cpuprofile "$tmp/bench-$1.prof" ${3:+--encoding "$3"} >/dev/null
	kill -INT "$serve_pid"
	wait "$serve_pid" || true
	serve_pid=""
	echo "profiled $1" >&2
}
run uds-msgpack "unix://$tmp/agent.sock" msgpack
run uds-json "unix://$tmp/agent.sock" json
run grpc 127.0.0.1:0

"$GO" tool pprof -proto "$tmp"/*.prof >cmd/agentwire/default.pgo
echo "wrote cmd/agentwire/default.pgo" >&2
