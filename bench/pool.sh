#!/usr/bin/env bash
# The multi-agent layer's benchmarks (engine/pool), run as alternating
# pairs and compared with benchstat:
#
#   overhead  a bare engine.Conn vs a one-agent pipeline over a pool, at 1
#             and 64 requests in flight (cpu-µs/op, allocs/op, req/s);
#             the issue's budget is +0.5 µs CPU and +0 allocations
#   conns     a pool of 1 vs 4 connections to one agent at 256 in flight
#             (req/s: 4 must reach at least 1); bare Conns for reference
#   fanout    one agent vs a parallel fan-out to 3 agents at 1 in flight
#             (p50-µs: at most 1.5x), the agents in one child process
#             (FanOut) or in three (FanOutProcs), and the same without the
#             layer (FanOutBare: bare Conns, StartRequestHeaders + Wait)
#
#   bench/pool.sh                       # all three, 10 pairs of 300ms runs
#   RUNS=20 BENCHTIME=500ms bench/pool.sh overhead
#
# The agents run in a child process (the test binary re-executed), so the
# CPU and allocations reported are the proxy side's. Each round runs every
# variant once, so that a slow phase of the machine hits all of them; set
# RESULTS=dir to keep the raw outputs.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

RUNS="${RUNS:-10}"
BENCHTIME="${BENCHTIME:-300ms}"
GO="${GO:-go}"
WHAT="${*:-overhead conns fanout}"
BENCHSTAT="${BENCHSTAT:-benchstat}"

bench_workdir
"$GO" test -c -o "$tmp/pool.test" ./engine/pool

# run NAME REGEXP: RUNS rounds of the benchmarks matching REGEXP, raw
# output in $tmp/NAME.txt.
run() {
	local name=$1 re=$2 i
	: >"$tmp/$name.txt"
	for i in $(seq 1 "$RUNS"); do
		"$tmp/pool.test" -test.run '^$' -test.bench "$re" -test.benchtime "$BENCHTIME" -test.count 1 >>"$tmp/$name.txt"
		echo "$name: round $i/$RUNS" >&2
	done
}

# compare NAME A B: benchstat of the variants A and B of NAME's results
# (their names with A and B removed, so that benchstat pairs them).
compare() {
	local name=$1 a=$2 b=$3 la lb fa fb
	la=$(echo "$a" | tr '/=' '__')
	lb=$(echo "$b" | tr '/=' '__')
	fa="$tmp/$name-$la.txt"
	fb="$tmp/$name-$lb.txt"
	grep "/$a/" "$tmp/$name.txt" | sed "s|/$a/|/|" >"$fa"
	grep "/$b/" "$tmp/$name.txt" | sed "s|/$b/|/|" >"$fb"
	echo "== $name: $a vs $b"
	"$BENCHSTAT" "$la=$fa" "$lb=$fb" || true
}

for w in $WHAT; do
	case $w in
	overhead)
		run overhead 'Overhead'
		compare overhead bare pipeline
		;;
	conns)
		run conns 'Conns'
		compare conns pool/conns=1 pool/conns=4
		compare conns bare/conns=4 pool/conns=4
		;;
	fanout)
		run fanout 'FanOut'
		compare fanout agents=1 agents=3
		;;
	*)
		echo "unknown benchmark set $w (overhead, conns, fanout)" >&2
		exit 2
		;;
	esac
done
if [ -n "${RESULTS:-}" ]; then
	mkdir -p "$RESULTS"
	cp "$tmp"/*.txt "$RESULTS"/
fi
