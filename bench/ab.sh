#!/usr/bin/env bash
# A/B two builds of agentwire end to end, the way this project measures a
# performance change: in alternating pairs, each build runs its own
# `serve --agent echo` and `bench` (64 in flight) over the unix socket, and
# the means of requests/s and of client and agent CPU µs per request are
# printed with new/old ratios.
#
#   bench/ab.sh OLD_BINARY NEW_BINARY                 # 10 pairs, msgpack, 3 s
#   PAIRS=8 ENCODING=json DUR=4s bench/ab.sh old new
#   TRANSPORT=grpc bench/ab.sh old new                # gRPC over loopback TCP
#
# Every run is also appended as one JSON line (impl agentwire, "build" old
# or new with its binary, "pair" its number) to
# bench/results/<time>-ab-<commit>.jsonl (see results_add in bench/lib.sh).
#
# Build the two binaries first, e.g. `git stash; go build -o /tmp/old
# ./cmd/agentwire; git stash pop; go build -o /tmp/new ./cmd/agentwire`.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

[ $# -eq 2 ] || { echo "usage: bench/ab.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
old=$1 new=$2
PAIRS="${PAIRS:-10}"
ENCODING="${ENCODING:-msgpack}"
DUR="${DUR:-3s}"
CONC="${CONC:-64}"
TRANSPORT="${TRANSPORT:-uds}"
case "$TRANSPORT" in uds | grpc) ;; *)
	echo "TRANSPORT must be uds or grpc" >&2
	exit 2
	;;
esac

bench_workdir
results_open ab

# run BIN BUILD PAIR: one serve+bench run; prints "req/s client_us
# agent_us" and appends the run to results_file.
run() {
	local listen="unix://$tmp/agent.sock" enc=(--encoding "$ENCODING")
	if [ "$TRANSPORT" = grpc ]; then
		listen=127.0.0.1:0 enc=()
	fi
	start_agent "$1" "$tmp/serve.err" "$listen" || exit 1
	local json
	json=$("$1" bench --agent "$agent_ep" "${enc[@]}" --concurrency "$CONC" \
		--duration "$DUR" --agent-pid "$serve_pid" --json)
	kill -TERM "$serve_pid"
	wait "$serve_pid" 2>/dev/null || true
	serve_pid=""
	local k
	for k in requests_per_sec cpu_us_per_request agent_cpu_us_per_request; do
		printf '%s ' "$(jfield "$json" "$k")"
	done
	echo
	local enc=$ENCODING
	[ "$TRANSPORT" = grpc ] && enc=protobuf
	results_add agentwire "$TRANSPORT" "$enc" "$CONC" "$DUR" \
		",\"build\":$(json_str "$2"),\"binary\":$(json_str "$1"),\"pair\":$3" \
		requests_per_sec="$(jfield "$json" requests_per_sec)" allocs_per_request="$(jfield "$json" allocs_per_request)" \
		client_cpu_us_per_request="$(jfield "$json" cpu_us_per_request)" \
		agent_cpu_us_per_request="$(jfield "$json" agent_cpu_us_per_request)" \
		p50_us="$(jfield "$json" p50_us)" p99_us="$(jfield "$json" p99_us)" errors="$(jfield "$json" errors)" \
		bench:="$json"
}

# jfield JSON KEY: the number under KEY in the bench's one-line JSON.
jfield() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"; }

echo "TRANSPORT=$TRANSPORT ENCODING=$ENCODING CONC=$CONC DUR=$DUR PAIRS=$PAIRS: req/s, client µs/req, agent µs/req" >&2
: >"$tmp/pairs"
for i in $(seq "$PAIRS"); do
	a=$(run "$old" old "$i") b=$(run "$new" new "$i")
	echo "old $a| new $b" | tee -a "$tmp/pairs"
done
awk '{ for (k = 0; k < 3; k++) { o[k] += $(2+k); n[k] += $(7+k) } }
END {
	split("req/s client_us agent_us", name, " ")
	for (k = 0; k < 3; k++)
		printf "%-10s old %10.2f  new %10.2f  new/old %.3f\n", name[k+1], o[k]/NR, n[k]/NR, n[k]/o[k]
}' "$tmp/pairs"
echo "raw results: $results_file" >&2
