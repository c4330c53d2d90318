#!/usr/bin/env bash
# A/B two builds of agentwire end to end, the way this project measures a
# performance change: in alternating pairs, each build runs its own
# `serve --agent echo` and `bench` (64 in flight) over the unix socket, and
# the means and medians of requests/s, of client and agent CPU µs per
# request and of the p50 latency are printed with new/old ratios, and the
# median of the per-pair new/old ratios (steadier on a machine whose speed
# drifts during the comparison).
#
#   bench/ab.sh OLD_BINARY NEW_BINARY                 # 10 pairs, msgpack, 3 s
#   PAIRS=8 ENCODING=json DUR=4s bench/ab.sh old new
#   TRANSPORT=grpc bench/ab.sh old new                # gRPC over loopback TCP
#   CONNS=4 CONC=4 bench/ab.sh old new                # 4 connections, 1 in flight each
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
CONNS="${CONNS:-1}"
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
	local json=""
	# A failed or hung bench is reported on stderr with its output (its
	# error or goroutine dump): the pair then lacks this run's fields and is
	# left out of the summary. A serve that does not stop is reported too
	# (its dump kept under bench/results/), but the bench's result stands.
	run_bench json "$1" --agent "$agent_ep" "${enc[@]}" --concurrency "$CONC" --conns "$CONNS" \
		--duration "$DUR" --agent-pid "$serve_pid" --json || json=""
	stop_agent "$tmp/serve.err" || true
	local k
	for k in requests_per_sec cpu_us_per_request agent_cpu_us_per_request p50_us; do
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

echo "TRANSPORT=$TRANSPORT ENCODING=$ENCODING CONC=$CONC DUR=$DUR PAIRS=$PAIRS: req/s, client µs/req, agent µs/req, p50 µs" >&2
: >"$tmp/pairs"
for i in $(seq "$PAIRS"); do
	a=$(run "$old" old "$i") b=$(run "$new" new "$i")
	echo "old $a| new $b" | tee -a "$tmp/pairs"
done
# A pair with a failed run (fewer fields) is left out of the summary.
awk 'NF == 11 { m++; for (k = 0; k < 4; k++) { o[k] += $(2+k); n[k] += $(8+k); O[k, m] = $(2+k); N[k, m] = $(8+k) } }
function median(a, k, m,   i, j, t, v) {
	for (i = 1; i <= m; i++) v[i] = a[k, i]
	for (i = 2; i <= m; i++) for (j = i; j > 1 && v[j-1] > v[j]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
	return m % 2 ? v[(m+1)/2] : (v[m/2] + v[m/2+1]) / 2
}
END {
	split("req/s client_us agent_us p50_us", name, " ")
	for (k = 0; k < 4; k++) {
		for (i = 1; i <= m; i++) R[k, i] = O[k, i] > 0 ? N[k, i] / O[k, i] : 1
		printf "%-10s mean old %10.2f  new %10.2f  new/old %.3f   median old %10.2f  new %10.2f  new/old %.3f   median of pair ratios %.3f\n", name[k+1],
			o[k]/m, n[k]/m, n[k]/o[k], median(O, k, m), median(N, k, m), median(N, k, m) / median(O, k, m), median(R, k, m)
	}
}' "$tmp/pairs"
echo "raw results: $results_file" >&2
