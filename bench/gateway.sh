#!/usr/bin/env bash
# What the agents cost behind `agentwire gateway` (issue 13), measured with
# vegeta (a common HTTP load tool, installed into .bin by `make loadtools`
# on first use) against bench/upstream:
#
#  1. throughput at CONC (64) concurrent HTTP connections: the gateway
#     with one echo agent over a Unix socket (`agentwire serve --agent
#     echo`, MessagePack) against the same gateway without agent, ROUNDS
#     alternating runs of DUR each (target: with the agent >= 80% of
#     without);
#  2. p50 at 1 connection: what the agent adds (gateway with the agent
#     minus without) against a bare engine round trip to the same agent
#     (`agentwire bench --concurrency 1`), LAT_ROUNDS alternating runs of
#     LAT_DUR each (target: added p50 <= 1.5x the round trip). vegeta runs
#     closed-loop here too (-rate=0, one worker: the next request leaves
#     when the last answer is in), but each agent call then sits in an
#     HTTP round trip of a few hundred µs during which the agent (and the
#     gateway's connection to it) idles. A back-to-back bench loop keeps
#     both processes busy instead, so its round trip is not like for like.
#     The bare round trip is therefore measured with the same idle time
#     between calls (`bench --gap`, the gap being the p50 of the gateway
#     without agent in that round), and the target is checked against it;
#     the back-to-back round trip is reported beside it;
#  3. memory per in-flight request with bodies streaming: INFLIGHT POSTs
#     of each size in BODIES (bytes), which the upstream reads at SINK_RATE
#     bytes/s (so they stay in flight), through a gateway whose agent takes
#     request bodies in stream mode (--config), and through the gateway
#     without agent; (peak RSS during the run - RSS before it) / INFLIGHT.
#     Bounded memory: the same per request whatever the body size.
#
#   bench/gateway.sh                     # defaults below
#   DUR=5s ROUNDS=2 INFLIGHT=128 bench/gateway.sh
#   BIN=/tmp/agentwire UPSTREAM_BIN=/tmp/upstream bench/gateway.sh   # prebuilt
#
# Every measurement is appended as one JSON line to
# bench/results/<time>-gateway-<commit>.jsonl (results_add in bench/lib.sh;
# "impl" is gateway or engine, settings.agent none or echo), the last line
# being the summary against the targets. The machine is shared and noisy:
# read the per-round numbers, not only the medians.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

GO="${GO:-go}"
DUR="${DUR:-10s}"
CONC="${CONC:-64}"
ROUNDS="${ROUNDS:-3}"
LAT_DUR="${LAT_DUR:-5s}"
LAT_ROUNDS="${LAT_ROUNDS:-3}"
INFLIGHT="${INFLIGHT:-256}"
BODIES="${BODIES:-8388608 67108864}"
SINK_RATE="${SINK_RATE:-262144}"
MEM_DUR="${MEM_DUR:-8s}"
VEGETA="${VEGETA:-.bin/vegeta}"

[ -x "$VEGETA" ] || make -s loadtools GO="$GO"

bench_workdir
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; bench_cleanup' EXIT
results_open gateway
# BIN and UPSTREAM_BIN reuse binaries built beforehand (so that a run
# under the shared measurement lock does not compile).
if [ -n "${BIN:-}" ]; then cp "$BIN" "$tmp/agentwire"; else "$GO" build -o "$tmp/agentwire" ./cmd/agentwire; fi
if [ -n "${UPSTREAM_BIN:-}" ]; then cp "$UPSTREAM_BIN" "$tmp/upstream"; else "$GO" build -o "$tmp/upstream" ./bench/upstream; fi

# attack URL WORKERS DUR [vegeta attack flags...]: a closed-loop run of
# WORKERS concurrent connections; prints vegeta's JSON report.
attack() {
	local url=$1 workers=$2 dur=$3
	shift 3
	echo "GET $url/" | "$VEGETA" attack -rate=0 -workers="$workers" -max-workers="$workers" \
		-duration="$dur" -keepalive=true -timeout=30s "$@" | "$VEGETA" report -type=json
}

# record AGENT MEASURE CONC DUR REPORT EXTRA: one vegeta run in results_file.
record() {
	local agent=$1 measure=$2 conc=$3 dur=$4 rep=$5 extra=${6:-}
	results_add gateway uds msgpack "$conc" "$dur" ",\"agent\":$(json_str "$agent"),\"measure\":$(json_str "$measure")$extra" \
		requests_per_sec="$(vegeta_num "$rep" throughput)" \
		p50_us="$(awk -v n="$(vegeta_num "$rep" 50th)" 'BEGIN { printf "%.1f", n / 1000 }')" \
		p99_us="$(awk -v n="$(vegeta_num "$rep" 99th)" 'BEGIN { printf "%.1f", n / 1000 }')" \
		success="$(vegeta_num "$rep" success)" requests="$(vegeta_num "$rep" requests)" \
		vegeta:="$rep"
}

# median V...: the median of the numbers.
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

start_agent "$tmp/agentwire" "$tmp/serve.err" "unix://$tmp/agent.sock" || exit 1
start_listener upstream "$tmp/upstream"
up_url=$url
start_listener gw-none "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$up_url"
none_url=$url
metrics_addr=127.0.0.1:$((20000 + RANDOM % 20000))
start_listener gw-echo "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$up_url" --agent "$agent_ep" --metrics-listen "$metrics_addr"
echo_url=$url

# hist: the echo gateway's agent-call latency histogram (cumulative counts
# by upper bound in seconds), one "LE COUNT" line per bucket.
hist() {
	local host=${metrics_addr%:*} port=${metrics_addr##*:}
	exec 3<>"/dev/tcp/$host/$port"
	printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$metrics_addr" >&3
	sed -n 's/^agentwire_agent_request_duration_seconds_bucket{[^}]*event="request_headers"[^}]*le="\([^"]*\)"} \([0-9]*\).*$/\1 \2/p' <&3
	exec 3<&-
}

# Warm up both (connections, pools, the agent's connections).
attack "$none_url" 8 1s >/dev/null
attack "$echo_url" 8 1s >/dev/null

echo "throughput: $ROUNDS rounds of $DUR at $CONC connections" >&2
none_rps=() echo_rps=()
for i in $(seq "$ROUNDS"); do
	rep=$(attack "$none_url" "$CONC" "$DUR")
	record none throughput "$CONC" "$DUR" "$rep" ",\"round\":$i"
	none_rps+=("$(vegeta_num "$rep" throughput)")
	rep=$(attack "$echo_url" "$CONC" "$DUR")
	record echo throughput "$CONC" "$DUR" "$rep" ",\"round\":$i"
	echo_rps+=("$(vegeta_num "$rep" throughput)")
	echo "  round $i: none ${none_rps[-1]} req/s, echo ${echo_rps[-1]} req/s" >&2
done

echo "latency: $LAT_ROUNDS rounds of $LAT_DUR at 1 connection" >&2
none_p50=() echo_p50=() bare_p50=() gap_p50=()
hist >"$tmp/hist0"
for i in $(seq "$LAT_ROUNDS"); do
	rep=$(attack "$none_url" 1 "$LAT_DUR")
	record none latency 1 "$LAT_DUR" "$rep" ",\"round\":$i"
	none_p50+=("$(vegeta_num "$rep" 50th)")
	rep=$(attack "$echo_url" 1 "$LAT_DUR")
	record echo latency 1 "$LAT_DUR" "$rep" ",\"round\":$i"
	echo_p50+=("$(vegeta_num "$rep" 50th)")
	json=$("$tmp/agentwire" bench --agent "$agent_ep" --encoding msgpack --concurrency 1 --duration "$LAT_DUR" --agent-pid "$serve_pid" --json)
	bare=$(sed -n 's/.*"p50_us":\([0-9.e+-]*\).*/\1/p' <<<"$json")
	results_add engine uds msgpack 1 "$LAT_DUR" ",\"agent\":\"echo\",\"measure\":\"latency\",\"round\":$i" p50_us="$bare" bench:="$json"
	bare_p50+=("$bare")
	# Like for like: the same idle time between calls as in the gateway.
	gap_ns=${none_p50[-1]%.*}
	json=$("$tmp/agentwire" bench --agent "$agent_ep" --encoding msgpack --concurrency 1 --duration "$LAT_DUR" --gap "${gap_ns}ns" --agent-pid "$serve_pid" --json)
	gapped=$(sed -n 's/.*"p50_us":\([0-9.e+-]*\).*/\1/p' <<<"$json")
	results_add engine uds msgpack 1 "$LAT_DUR" ",\"agent\":\"echo\",\"measure\":\"latency-gap\",\"gap_ns\":$gap_ns,\"round\":$i" p50_us="$gapped" bench:="$json"
	gap_p50+=("$gapped")
	echo "  round $i: p50 none $(awk -v n="${none_p50[-1]}" 'BEGIN { print n / 1000 }') us, echo $(awk -v n="${echo_p50[-1]}" 'BEGIN { print n / 1000 }') us, bare engine $bare us back to back, $gapped us with a ${gap_ns} ns gap" >&2
done

# The agent calls' own p50 inside the echo gateway during the latency
# rounds (the pool's histogram: the upper bound of the bucket holding the
# median, buckets doubling from 16 us): what a round trip costs when the
# processes idle between requests, as they do at 1 connection.
hist >"$tmp/hist1"
in_gw_p50=$(awk 'NR == FNR { before[FNR] = $2; next } { le[FNR] = $1; d[FNR] = $2 - before[FNR]; n = FNR }
	END { for (i = 1; i <= n; i++) if (d[n] > 0 && d[i] * 2 >= d[n]) { printf "%.0f", le[i] * 1e6; exit } }' "$tmp/hist0" "$tmp/hist1")
echo "  agent calls inside the gateway meanwhile: p50 <= ${in_gw_p50:-?} us (histogram bucket)" >&2

# Memory: a slow upstream keeps the uploads in flight.
start_listener upstream-slow "$tmp/upstream" --sink-rate "$SINK_RATE"
slow_url=$url
cat >"$tmp/stream.kdl" <<EOF
agent "echo" {
    unix-socket "${agent_ep#unix://}"
    events "request_headers" "request_body"
    request-body-mode "stream"
    max-request-body-bytes 1073741824
    connections 2
}
EOF
rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\).*/\1/p' "/proc/$1/status"; }

# memory AGENT BODY: peak RSS of a fresh gateway (AGENT none: without
# agent; echo-stream: with the agent taking request bodies in stream mode)
# over INFLIGHT streaming uploads of BODY bytes.
memory() {
	local agent=$1 body=$2 idle peak cur vpid p url
	if [ "$agent" = none ]; then
		start_listener "gw-mem-$agent-$body" "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$slow_url"
	else
		start_listener "gw-mem-$agent-$body" "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$slow_url" --config "$tmp/stream.kdl"
	fi
	p=$pid
	head -c "$body" /dev/zero | tr '\0' 'a' >"$tmp/body"
	attack "$url" 4 1s -body="$tmp/body" -timeout=2s >/dev/null 2>&1 || true
	idle=$(rss "$p")
	echo "POST $url/" | "$VEGETA" attack -rate=0 -workers="$INFLIGHT" -max-workers="$INFLIGHT" -duration="$MEM_DUR" \
		-keepalive=true -timeout="$MEM_DUR" -body="$tmp/body" >"$tmp/mem.bin" &
	vpid=$!
	peak=$idle
	while kill -0 "$vpid" 2>/dev/null; do
		cur=$(rss "$p")
		[ "${cur:-0}" -gt "$peak" ] && peak=$cur
		sleep 0.2
	done
	wait "$vpid" || true
	local per
	per=$(awk -v a="$peak" -v b="$idle" -v n="$INFLIGHT" 'BEGIN { printf "%.1f", (a - b) / n }')
	results_add gateway uds msgpack "$INFLIGHT" "$MEM_DUR" ",\"agent\":$(json_str "$agent"),\"measure\":\"memory\",\"body_bytes\":$body,\"sink_rate\":$SINK_RATE" \
		rss_idle_kib="$idle" rss_peak_kib="$peak" kib_per_inflight_request="$per"
	echo "  $agent, $body-byte bodies: RSS idle $idle KiB, peak $peak KiB with $INFLIGHT uploads in flight: $per KiB per request" >&2
	mem_per=$per
	kill "$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
echo "memory: $INFLIGHT uploads in flight for $MEM_DUR (upstream reads $SINK_RATE B/s each)" >&2
mem_none="" mem_stream=""
for body in $BODIES; do
	memory none "$body"
	mem_none="$mem_none${mem_none:+/}$mem_per"
	memory echo-stream "$body"
	mem_stream="$mem_stream${mem_stream:+/}$mem_per"
done

# Summary against the targets.
n_rps=$(median "${none_rps[@]}") e_rps=$(median "${echo_rps[@]}")
n_p50=$(median "${none_p50[@]}") e_p50=$(median "${echo_p50[@]}") b_p50=$(median "${bare_p50[@]}") g_p50=$(median "${gap_p50[@]}")
frac=$(awk -v e="$e_rps" -v n="$n_rps" 'BEGIN { printf "%.3f", e / n }')
added=$(awk -v e="$e_p50" -v n="$n_p50" 'BEGIN { printf "%.1f", (e - n) / 1000 }')
ratio=$(awk -v a="$added" -v b="$g_p50" 'BEGIN { printf "%.2f", a / b }')
ratio_b2b=$(awk -v a="$added" -v b="$b_p50" 'BEGIN { printf "%.2f", a / b }')
results_add gateway uds msgpack "$CONC" "$DUR" ",\"agent\":\"echo\",\"measure\":\"summary\",\"rounds\":$ROUNDS" \
	none_requests_per_sec="$n_rps" echo_requests_per_sec="$e_rps" throughput_fraction="$frac" \
	p50_none_us="$(awk -v n="$n_p50" 'BEGIN { printf "%.1f", n / 1000 }')" p50_echo_us="$(awk -v n="$e_p50" 'BEGIN { printf "%.1f", n / 1000 }')" \
	p50_added_us="$added" engine_p50_us="$g_p50" p50_added_ratio="$ratio" \
	engine_back_to_back_p50_us="$b_p50" p50_added_ratio_back_to_back="$ratio_b2b" in_gateway_call_p50_bucket_us="${in_gw_p50:-}" \
	kib_per_inflight_request_none="${mem_none%%/*}" kib_per_inflight_request_stream="${mem_stream%%/*}"
cat >&2 <<EOF
summary (medians):
  throughput at $CONC connections: none $n_rps req/s, echo $e_rps req/s: $frac of the gateway without agent (target >= 0.80)
  p50 at 1 connection: added by the agent $added us, bare engine round trip with the gateway's idle time between calls
    $g_p50 us: ratio $ratio (target <= 1.5); back to back $b_p50 us (ratio $ratio_b2b, not like for like);
    the agent calls themselves took <= ${in_gw_p50:-?} us (p50 bucket) inside the gateway
  memory per in-flight streaming upload (bodies of $BODIES bytes): $mem_stream KiB with the agent, $mem_none KiB without
raw results: $results_file
EOF
