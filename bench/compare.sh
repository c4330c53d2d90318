#!/usr/bin/env bash
# Compare agentwire with the naive baseline (../shared/baseline beside the
# repository) in ONE run, with the same layout for both: the echo agent runs
# as a separate process (agentwire serve / naive agent) and the load
# generator in another (agentwire bench / naive load), on the same cores.
#
#   bench/compare.sh                                  # grpc and uds, c = 1 16 64 256, 5 s each
#   TRANSPORTS=grpc CONC=64 DUR=5s bench/compare.sh   # one configuration
#   make compare TRANSPORTS=uds CONC="16 64"
#
# For every transport and concurrency it runs the baseline, then agentwire
# (on uds: --encoding json and --encoding msgpack; the baseline speaks JSON
# there), and prints a table: requests/s, its ratio to the baseline,
# allocations per request of the client process and their ratio, CPU µs per
# request of the client and agent processes, p50/p99 latency. Every run is
# also appended as one JSON line to bench/results/<time>-compare-<commit>.jsonl
# (see results_add in bench/lib.sh; `make bench-report` turns the newest such
# file into the README's table). Set RESULTS=file to keep the table's raw
# lines as well. BASELINE=dir overrides where the
# baseline lives; without it the baseline is skipped with a message.
# PROCS=n runs every measured process (baseline and agentwire, client and
# agent alike) with GOMAXPROCS=n; unset, each uses the Go default (the
# number of cores).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
. bench/lib.sh

TRANSPORTS="${TRANSPORTS:-grpc uds}"
CONC="${CONC:-1 16 64 256}"
DUR="${DUR:-5s}"
GO="${GO:-go}"
BASELINE="${BASELINE:-$root/../shared/baseline}"
PROCS="${PROCS:-}"
# FLOOR=1 (the default) also runs `agentwire floor` beside agentwire at
# every setting: the machine's raw echo carrying the same bytes (rows
# "floor" and "floor-msgpack"); FLOOR=0 skips it.
FLOOR="${FLOOR:-1}"

bench_workdir
results_open compare

echo "building agentwire" >&2
"$GO" build -o "$tmp/agentwire" ./cmd/agentwire
if [ -n "$PROCS" ]; then
	export GOMAXPROCS="$PROCS" # after the build: only the measured processes
fi

have_baseline=1
if [ ! -x "$BASELINE/run.sh" ]; then
	echo "baseline not found at $BASELINE (run.sh): skipping it; ratios will be empty" >&2
	have_baseline=0
fi

raw="$tmp/raw"
: >"$raw"

# field JSON KEY: the number stored under KEY in a one-line JSON object.
field() {
	printf '%s' "$1" | grep -o "\"$2\":[^,}]*" | head -n1 | cut -d: -f2
}

# kv LINE KEY: the value of KEY=value in a baseline result line.
kv() {
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1
}

# row TRANSPORT C IMPL RPS ALLOCS CLIENT_CPU AGENT_CPU P50 P99 ERRORS
# (an empty value is stored as "-")
row() {
	local out="" v
	for v in "$@"; do
		out="$out ${v:--}"
	done
	echo "${out# }" >>"$raw"
}

run_baseline() { # transport conc
	local line
	if ! line=$(TRANSPORTS="$1" CONC="$2" DUR="$DUR" "$BASELINE/run.sh" 2>"$tmp/baseline.err" | grep '^naive ' | tail -n1) || [ -z "$line" ]; then
		echo "baseline $1 c=$2 failed:" >&2
		cat "$tmp/baseline.err" >&2
		return 0
	fi
	echo "$line" >&2
	local impl=baseline
	[ "$1" = uds ] && impl=baseline-json
	row "$1" "$2" "$impl" "$(kv "$line" rps)" "$(kv "$line" allocs_per_req)" \
		"$(kv "$line" client_cpu_us_per_req)" "$(kv "$line" agent_cpu_us_per_req)" \
		"$(kv "$line" p50_us)" "$(kv "$line" p99_us)" "$(kv "$line" errors)"
	local enc=protobuf
	[ "$1" = uds ] && enc=json
	results_add baseline "$1" "$enc" "$2" "$DUR" "" \
		requests_per_sec="$(kv "$line" rps)" allocs_per_request="$(kv "$line" allocs_per_req)" \
		client_cpu_us_per_request="$(kv "$line" client_cpu_us_per_req)" \
		agent_cpu_us_per_request="$(kv "$line" agent_cpu_us_per_req)" \
		p50_us="$(kv "$line" p50_us)" p99_us="$(kv "$line" p99_us)" errors="$(kv "$line" errors)" \
		raw:="$(json_str "$line")"
}

run_agentwire() { # transport conc [encoding]
	local listen
	if [ "$1" = grpc ]; then
		listen=127.0.0.1:0
	else
		listen="unix://$tmp/agent.sock"
	fi
	start_agent "$tmp/agentwire" "$tmp/serve.err" "$listen" || return 1
	local json status=0
	json=$("$tmp/agentwire" bench --agent "$agent_ep" --concurrency "$2" --duration "$DUR" --json \
		--agent-pid "$serve_pid" ${3:+--encoding "$3"} 2>"$tmp/bench.err") || status=$?
	stop_agent "$tmp/serve.err" || true
	if [ "$status" -ne 0 ]; then
		echo "agentwire bench $1 ${3:-} c=$2 failed:" >&2
		cat "$tmp/bench.err" >&2
		return 0
	fi
	echo "agentwire $1${3:+ $3} c=$2 $json" >&2
	row "$1" "$2" "agentwire${3:+-$3}" "$(field "$json" requests_per_sec)" "$(field "$json" allocs_per_request)" \
		"$(field "$json" cpu_us_per_request)" "$(field "$json" agent_cpu_us_per_request)" \
		"$(field "$json" p50_us)" "$(field "$json" p99_us)" "$(field "$json" errors)"
	results_add agentwire "$1" "${3:-protobuf}" "$2" "$DUR" "" \
		requests_per_sec="$(field "$json" requests_per_sec)" allocs_per_request="$(field "$json" allocs_per_request)" \
		client_cpu_us_per_request="$(field "$json" cpu_us_per_request)" \
		agent_cpu_us_per_request="$(field "$json" agent_cpu_us_per_request)" \
		p50_us="$(field "$json" p50_us)" p99_us="$(field "$json" p99_us)" errors="$(field "$json" errors)" \
		bench:="$json"
}

run_floor() { # transport conc [encoding]: agentwire floor, same settings and bytes
	local json status=0
	json=$("$tmp/agentwire" floor --transport "$1" --concurrency "$2" --duration "$DUR" --json \
		${3:+--encoding "$3"} 2>"$tmp/floor.err") || status=$?
	if [ "$status" -ne 0 ]; then
		echo "agentwire floor $1 ${3:-} c=$2 failed:" >&2
		cat "$tmp/floor.err" >&2
		return 0
	fi
	echo "floor $1${3:+ $3} c=$2 $json" >&2
	row "$1" "$2" "floor${3:+-$3}" "$(field "$json" requests_per_sec)" "$(field "$json" allocs_per_request)" \
		"$(field "$json" cpu_us_per_request)" "$(field "$json" agent_cpu_us_per_request)" \
		"$(field "$json" p50_us)" "$(field "$json" p99_us)" "$(field "$json" errors)"
	results_add floor "$1" "${3:-protobuf}" "$2" "$DUR" "" \
		requests_per_sec="$(field "$json" requests_per_sec)" allocs_per_request="$(field "$json" allocs_per_request)" \
		client_cpu_us_per_request="$(field "$json" cpu_us_per_request)" \
		agent_cpu_us_per_request="$(field "$json" agent_cpu_us_per_request)" \
		p50_us="$(field "$json" p50_us)" p99_us="$(field "$json" p99_us)" errors="$(field "$json" errors)" \
		bench:="$json"
}

for t in $TRANSPORTS; do
	case "$t" in grpc | uds) ;; *)
		echo "unknown transport $t (want grpc or uds)" >&2
		exit 2
		;;
	esac
	for c in $CONC; do
		[ "$have_baseline" = 1 ] && run_baseline "$t" "$c"
		if [ "$t" = grpc ]; then
			run_agentwire grpc "$c"
			[ "$FLOOR" = 1 ] && run_floor grpc "$c"
		else
			run_agentwire uds "$c" json
			run_agentwire uds "$c" msgpack
			[ "$FLOOR" = 1 ] && run_floor uds "$c" msgpack
		fi
	done
done

[ -n "${RESULTS:-}" ] && cp "$raw" "$RESULTS"
echo "raw results: $results_file" >&2
# The comparison drawn (requests/s and p50/p99 against requests in flight,
# agentwire beside the baseline and the floor), next to the results and as
# bench/results/compare-latest.svg, which the README shows.
if "$GO" run ./bench/report -format svg -o "${results_file%.jsonl}.svg" "$results_file"; then
	cp "${results_file%.jsonl}.svg" bench/results/compare-latest.svg
	echo "plot: ${results_file%.jsonl}.svg (and bench/results/compare-latest.svg)" >&2
else
	echo "plot failed" >&2
fi

echo
echo "DUR=$DUR; client and agent are separate processes on this machine ($(nproc) cores); GOMAXPROCS ${PROCS:-default} in every process."
echo "ratios: requests/s and allocations per request of agentwire / baseline, same transport and c."
awk '
function fmt(v, f) { return (v == "-" ? "-" : sprintf(f, v)) }
function ratio(a, b) { return (a == "-" || b == "" || b == "-" || b + 0 == 0) ? "-" : sprintf("%.2f", a / b) }
{
	key = $1 " " $2
	if ($3 ~ /^baseline/) { brps[key] = $4; ballocs[key] = $5 }
	n++; t[n] = $1; c[n] = $2; impl[n] = $3; rps[n] = $4; allocs[n] = $5
	ccpu[n] = $6; acpu[n] = $7; p50[n] = $8; p99[n] = $9; errs[n] = $10
}
END {
	printf "%-5s %4s  %-17s %9s %6s %10s %6s %13s %12s %8s %8s %6s\n", \
		"tr", "c", "impl", "req/s", "ratio", "allocs/req", "ratio", "client µs/req", "agent µs/req", "p50 µs", "p99 µs", "errors"
	for (i = 1; i <= n; i++) {
		key = t[i] " " c[i]
		printf "%-5s %4s  %-17s %9s %6s %10s %6s %13s %12s %8s %8s %6s\n", \
			t[i], c[i], impl[i], fmt(rps[i], "%.0f"), ratio(rps[i], brps[key]), fmt(allocs[i], "%.1f"), \
			ratio(allocs[i], ballocs[key]), fmt(ccpu[i], "%.1f"), fmt(acpu[i], "%.1f"), \
			fmt(p50[i], "%.0f"), fmt(p99[i], "%.0f"), errs[i]
	}
}' "$raw"
