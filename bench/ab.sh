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

# run BIN: one serve+bench run; prints "req/s client_us agent_us".
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
		printf '%s ' "$(sed -n "s/.*\"$k\":\([0-9.e+-]*\).*/\1/p" <<<"$json")"
	done
	echo
}

echo "TRANSPORT=$TRANSPORT ENCODING=$ENCODING CONC=$CONC DUR=$DUR PAIRS=$PAIRS: req/s, client µs/req, agent µs/req" >&2
: >"$tmp/pairs"
for i in $(seq "$PAIRS"); do
	a=$(run "$old") b=$(run "$new")
	echo "old $a| new $b" | tee -a "$tmp/pairs"
done
awk '{ for (k = 0; k < 3; k++) { o[k] += $(2+k); n[k] += $(7+k) } }
END {
	split("req/s client_us agent_us", name, " ")
	for (k = 0; k < 3; k++)
		printf "%-10s old %10.2f  new %10.2f  new/old %.3f\n", name[k+1], o[k]/NR, n[k]/NR, n[k]/o[k]
}' "$tmp/pairs"
