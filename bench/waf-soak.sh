#!/usr/bin/env bash
# Soak of the WAF agent: the WAF corpus (attacks and benign requests, with
# bodies) at CONC requests in flight for DUR against
# `agentwire serve --agent waf` on a Unix socket, sampling the agent's
# resident memory (VmRSS) every INTERVAL seconds. The first sample after
# WARM seconds is the reference: the run fails (exit 1) when the agent ends
# more than GROWTH_PCT percent above it. Linux only (/proc).
#
#   bench/waf-soak.sh                        # 10 minutes, 64 in flight
#   DUR=30m CONC=256 MIX=benign bench/waf-soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DUR="${DUR:-10m}"
CONC="${CONC:-64}"
MIX="${MIX:-all}"
INTERVAL="${INTERVAL:-30}"
WARM="${WARM:-60}"
GROWTH_PCT="${GROWTH_PCT:-10}"
GO="${GO:-go}"

bench_workdir
"$GO" build -o "$tmp/agentwire" ./cmd/agentwire
"$GO" build -o "$tmp/wafload" ./bench/wafload
start_agent "$tmp/agentwire" "$tmp/serve.log" "unix://$tmp/waf.sock" --agent waf || exit 1

"$tmp/wafload" --mode agent --agent "$agent_ep" --mix "$MIX" --concurrency "$CONC" \
	--duration "$DUR" --agent-pid "$serve_pid" >"$tmp/load.out" 2>&1 &
bench_pid=$!

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }

echo "DUR=$DUR CONC=$CONC MIX=$MIX: agent resident memory (KiB) every ${INTERVAL}s"
printf '%8s %12s\n' t_s agent_kib
t=0 ref="" last=""
while kill -0 "$bench_pid" 2>/dev/null; do
	a=$(rss "$serve_pid")
	if [ -n "$a" ]; then
		printf '%8d %12s\n' "$t" "$a"
		last=$a
		if [ -z "$ref" ] && [ "$t" -ge "$WARM" ]; then
			ref=$a
		fi
	fi
	sleep "$INTERVAL"
	t=$((t + INTERVAL))
done
rc=0
wait "$bench_pid" || rc=$?
bench_pid=""
cat "$tmp/load.out"
[ "$rc" -eq 0 ] || { echo "waf-soak: load failed (rc=$rc)" >&2; exit 1; }
if [ -z "$ref" ]; then
	echo "waf-soak: run shorter than WARM=${WARM}s: no reference sample, growth not checked"
	exit 0
fi
limit=$((ref + ref * GROWTH_PCT / 100))
if [ "$last" -gt "$limit" ]; then
	echo "waf-soak: the agent grew from $ref KiB (t=${WARM}s) to $last KiB, more than ${GROWTH_PCT}%" >&2
	exit 1
fi
echo "waf-soak: agent flat: $ref KiB at t=${WARM}s, $last KiB at the end (limit $limit)"
