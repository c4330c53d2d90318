#!/usr/bin/env bash
# What running the WAF out of process costs: the WAF corpus
# (internal/wafcorpus) at CONC requests in flight, through the WAF agent
# versus Coraza evaluating the same requests in-process with the same
# rules (CRS at PARANOIA).
#
# Engine level (the default; no gateway needed):
#
#   bench/waf.sh                       # CYCLES=2 per run, REPS=3, CONC=64, MIXES="all benign"
#   CYCLES=5 REPS=5 ENCODING=json bench/waf.sh
#
# Each run is a fixed amount of work: every one of the CONC workers sends
# the whole corpus (of the mix) CYCLES times, so all paths complete the
# same requests (see bench/wafload).
#
#   agent:     `agentwire serve --agent waf` in a process of its own on a
#              Unix socket; bench/wafload --mode agent sends each request
#              through the engine (headers, then the body while the agent
#              answers needs_more).
#   inprocess: bench/wafload --mode inprocess runs Coraza's net/http
#              middleware on each request (parsed from its HTTP/1.1 bytes)
#              in its own process (the middleware also runs the response
#              phases on the handler's 200 "ok").
#   direct:    bench/wafload --mode direct calls the WAF agent's handler
#              in-process with the events the agent mode sends: the same
#              work as the agent without the transport.
#   It prints each run, then per mix the median throughput and the median
#   CPU per request (agent: the load generator's plus the agent
#   process's), and agent/inprocess and agent/direct for both: the share
#   of the in-process throughput kept when the WAF runs as an agent, and
#   the CPU the in-process evaluation needs per request relative to the
#   agent's (on a machine shared with other work the CPU ratio is the
#   steadier of the two: a process's throughput then also depends on the
#   CPU share the scheduler gives it). This is the engine-level cost (no
#   HTTP server, no upstream), not the gateway measurement of the issue.
#
# Gateway level (the issue's target: gateway + WAF agent over a Unix
# socket >= 85% of gateway + in-process Coraza, at 64 connections): start
# both gateways in front of the same upstream yourself, then
#
#   AGENT_URL=http://127.0.0.1:8080 INPROC_URL=http://127.0.0.1:8081 bench/waf.sh
#
#   bench/wafload --mode http sends the corpus over HTTP/1.1 (one
#   connection per worker) to each URL in turn, and the same summary is
#   printed with gw+agent / gw+inproc (throughput only: the gateways' CPU
#   is not measured).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

CYCLES="${CYCLES:-2}"
REPS="${REPS:-3}"
CONC="${CONC:-64}"
PARANOIA="${PARANOIA:-1}"
ENCODING="${ENCODING:-msgpack}"
MIXES="${MIXES:-all benign}"
GO="${GO:-go}"
AGENT_URL="${AGENT_URL:-}"
INPROC_URL="${INPROC_URL:-}"

bench_workdir
"$GO" build -o "$tmp/wafload" ./bench/wafload

results="$tmp/results"
: >"$results"
# run LABEL MIX ARGS...: one wafload run, its JSON line appended to results.
run() {
	local label=$1 mix=$2
	shift 2
	"$tmp/wafload" --json --mix "$mix" --concurrency "$CONC" --cycles "$CYCLES" "$@" >"$tmp/out.json"
	printf '%s %s ' "$label" "$mix" >>"$results"
	cat "$tmp/out.json" >>"$results"
	printf '%-10s %-7s %s\n' "$label" "$mix" "$(cat "$tmp/out.json")"
}

if [ -n "$AGENT_URL" ] || [ -n "$INPROC_URL" ]; then
	if [ -z "$AGENT_URL" ] || [ -z "$INPROC_URL" ]; then
		echo "waf.sh: set both AGENT_URL and INPROC_URL" >&2
		exit 2
	fi
	labels="gw+agent gw+inproc"
	for mix in $MIXES; do
		for _ in $(seq 1 "$REPS"); do
			run gw+agent "$mix" --mode http --url "$AGENT_URL"
			run gw+inproc "$mix" --mode http --url "$INPROC_URL"
		done
	done
else
	"$GO" build -o "$tmp/agentwire" ./cmd/agentwire
	start_agent "$tmp/agentwire" "$tmp/serve.log" "unix://$tmp/waf.sock" --agent waf --paranoia "$PARANOIA" || exit 1
	labels="agent inprocess direct"
	for mix in $MIXES; do
		for _ in $(seq 1 "$REPS"); do
			run agent "$mix" --mode agent --agent "$agent_ep" --encoding "$ENCODING" --agent-pid "$serve_pid"
			run inprocess "$mix" --mode inprocess --paranoia "$PARANOIA"
			run direct "$mix" --mode direct --paranoia "$PARANOIA"
		done
	done
fi

# median LABEL MIX FIELD: the median of FIELD over the runs of LABEL and
# MIX (cpu: cpu_us_per_request plus agent_cpu_us_per_request).
median() {
	awk -v l="$1" -v m="$2" -v f="$3" '$1 == l && $2 == m {
		line = $0; sub(/^[^{]*/, "", line)
		v = 0
		n = split(line, kv, ",")
		for (i = 1; i <= n; i++) {
			split(kv[i], p, ":"); k = p[1]; gsub(/[{"]/, "", k)
			if ((f == "rps" && k == "requests_per_sec") || (f == "cpu" && (k == "cpu_us_per_request" || k == "agent_cpu_us_per_request"))) v += p[2]
		}
		print v
	}' "$results" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

echo
echo "CONC=$CONC CYCLES=$CYCLES REPS=$REPS PARANOIA=$PARANOIA: medians (requests/s, CPU µs per request)"
set -- $labels
first=$1
shift
for mix in $MIXES; do
	ra=$(median "$first" "$mix" rps) ca=$(median "$first" "$mix" cpu)
	line=$(printf '%-7s %s %.0f/s %.0fµs' "$mix" "$first" "$ra" "$ca")
	for other in "$@"; do
		rb=$(median "$other" "$mix" rps) cb=$(median "$other" "$mix" cpu)
		line+=$(awk -v o="$other" -v f="$first" -v ra="$ra" -v rb="$rb" -v ca="$ca" -v cb="$cb" \
			'BEGIN { printf " | %s %.0f/s %.0fµs: %s/%s throughput %.1f%%", o, rb, cb, f, o, 100 * ra / rb; if (ca > 0 && cb > 0) printf ", cpu %.1f%%", 100 * cb / ca }')
	done
	echo "$line"
done
