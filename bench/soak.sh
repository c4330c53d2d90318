#!/usr/bin/env bash
# Soak: run one load for a long time and check that neither process grows.
#
#   bench/soak.sh                                  # 10 minutes, UDS, MessagePack, 64 in flight
#   DUR=30m ENCODING=json CONC=256 bench/soak.sh
#   TRANSPORT=grpc bench/soak.sh
#   make soak SOAK_DUR=10m
#
# It starts `agentwire serve --agent echo` on a Unix socket (TRANSPORT=uds,
# the default; ENCODING applies) or on loopback TCP (TRANSPORT=grpc) and
# `agentwire bench` against it in separate processes, samples the resident memory
# (VmRSS) of both every INTERVAL seconds, and prints the samples and the
# bench result. The first sample after WARM seconds is the reference: the
# run fails (exit 1) when either process ends more than GROWTH_PCT percent
# above it. Linux only (/proc). The run (the bench's JSON result and the
# reference and last resident sizes) is also appended as one JSON line to
# bench/results/<time>-soak-<commit>.jsonl (see results_add in bench/lib.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DUR="${DUR:-10m}"
TRANSPORT="${TRANSPORT:-uds}"
ENCODING="${ENCODING:-msgpack}"
CONC="${CONC:-64}"
INTERVAL="${INTERVAL:-30}"
WARM="${WARM:-60}"
GROWTH_PCT="${GROWTH_PCT:-10}"
GO="${GO:-go}"

bench_workdir
results_open soak

"$GO" build -o "$tmp/agentwire" ./cmd/agentwire
case "$TRANSPORT" in
uds) listen="unix://$tmp/agent.sock" enc=(--encoding "$ENCODING") ;;
grpc) listen=127.0.0.1:0 enc=() ENCODING=protobuf ;;
*) echo "soak: TRANSPORT must be uds or grpc" >&2; exit 2 ;;
esac
start_agent "$tmp/agentwire" "$tmp/serve.log" "$listen" || exit 1

"$tmp/agentwire" bench --agent "$agent_ep" "${enc[@]}" --concurrency "$CONC" \
	--duration "$DUR" --agent-pid "$serve_pid" --json >"$tmp/bench.out" 2>"$tmp/bench.err" &
bench_pid=$!

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

echo "DUR=$DUR TRANSPORT=$TRANSPORT ENCODING=$ENCODING CONC=$CONC: resident memory (KiB) every ${INTERVAL}s"
printf '%8s %12s %12s\n' t_s bench_kib agent_kib
t=0
ref_b="" ref_a="" last_b="" last_a=""
while kill -0 "$bench_pid" 2>/dev/null; do
	b=$(rss "$bench_pid") a=$(rss "$serve_pid")
	if [ -n "$b" ] && [ -n "$a" ]; then
		printf '%8d %12s %12s\n' "$t" "$b" "$a"
		last_b=$b last_a=$a
		if [ -z "$ref_b" ] && [ "$t" -ge "$WARM" ]; then
			ref_b=$b ref_a=$a
		fi
	fi
	sleep "$INTERVAL"
	t=$((t + INTERVAL))
done
rc=0
wait "$bench_pid" || rc=$?
bench_pid=""
cat "$tmp/bench.err" "$tmp/bench.out"
[ "$rc" -eq 0 ] || { echo "soak: bench failed (rc=$rc)" >&2; exit 1; }
json=$(tail -n1 "$tmp/bench.out")
jfield() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"; }
results_add agentwire "$TRANSPORT" "$ENCODING" "$CONC" "$DUR" \
	",\"warm_s\":$(json_num "$WARM"),\"interval_s\":$(json_num "$INTERVAL"),\"growth_pct\":$(json_num "$GROWTH_PCT")" \
	requests_per_sec="$(jfield "$json" requests_per_sec)" allocs_per_request="$(jfield "$json" allocs_per_request)" \
	client_cpu_us_per_request="$(jfield "$json" cpu_us_per_request)" \
	agent_cpu_us_per_request="$(jfield "$json" agent_cpu_us_per_request)" \
	p50_us="$(jfield "$json" p50_us)" p99_us="$(jfield "$json" p99_us)" errors="$(jfield "$json" errors)" \
	bench_rss_kib_ref="$ref_b" bench_rss_kib_end="$last_b" agent_rss_kib_ref="$ref_a" agent_rss_kib_end="$last_a" \
	bench:="$json"
echo "raw results: $results_file" >&2
if [ -z "$ref_b" ]; then
	echo "soak: run shorter than WARM=${WARM}s: no reference sample, growth not checked"
	exit 0
fi
fail=0
check() { # name ref last
	local limit=$(($2 + $2 * GROWTH_PCT / 100))
	if [ "$3" -gt "$limit" ]; then
		echo "soak: $1 grew from $2 KiB (t=${WARM}s) to $3 KiB, more than ${GROWTH_PCT}%" >&2
		fail=1
	else
		echo "soak: $1 flat: $2 KiB at t=${WARM}s, $3 KiB at the end (limit $limit)"
	fi
}
check bench "$ref_b" "$last_b"
check agent "$ref_a" "$last_a"
exit "$fail"
