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
# Gateway level (the issue's target: `agentwire gateway` with the WAF
# agent over a Unix socket keeps >= 85% of the throughput of the same
# gateway running Coraza in-process, at 64 connections, CRS paranoia 1):
#
#   bench/waf.sh gateway               # DUR=10s ROUNDS=3 CONC=64 MIX=gateway
#   flock /work/bench.lock bench/waf.sh gateway
#
#   It starts bench/upstream, `agentwire serve --agent waf --paranoia
#   PARANOIA` on a Unix socket, and two gateways in front of the upstream:
#     gw+agent:  agentwire gateway --config F, F an agent block for the
#                WAF agent's socket with events GW_EVENTS (default
#                request_headers request_body request_complete: the
#                request bodies go to the agent as Coraza's middleware
#                inspects them, and request complete closes the
#                transactions of requests whose body never reached the
#                agent, e.g. over the gateway's body limit: without it they
#                stay open until the agent's --transaction-ttl; bodies
#                buffered as GW_BODY_MODE says, default buffer), GW_CONNS
#                connections (default 4, what an agent block without
#                "connections" gets; 1 and 4 measured alike once compared
#                under the same machine load), timeout 10 s;
#     gw+inproc: agentwire gateway --waf-inprocess --paranoia PARANOIA
#                (Coraza's net/http middleware with the same rules,
#                waf.CorazaConfig).
#   vegeta (`make loadtools`, into .bin) sends the MIX of the WAF corpus
#   (bench/wafload --mode targets; gateway: every benign request 10 times,
#   every attack once, shuffled: 82% benign, 46% of the requests with a
#   body) with CONC workers on keep-alive connections, closed loop, for DUR
#   per run; ROUNDS rounds, each running both gateways (the order
#   alternating from round to round) after a warm-up. Every run is one JSON
#   line in bench/results/<time>-waf-gateway-<commit>.jsonl (requests/s,
#   p50/p99, status codes, CPU per request of the gateway and of the agent
#   process, and how long their threads waited for a CPU per second: the
#   machine's other load), the last line the summary: the medians and
#   agent/inproc, the median of the per-round ratios, and the ratio of the
#   CPU per request (in-process gateway / agent gateway + agent: what the
#   throughput ratio is when the WAF side has the CPUs to itself).
#
#   PROFILE=DIR adds one run of each gateway under perf record (see the
#   end of the gateway section).
#
#   AGENT_URL=http://… INPROC_URL=http://… bench/waf.sh gateway measures
#   two gateways started elsewhere instead (without CPU figures).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

GO="${GO:-go}"
CONC="${CONC:-64}"
PARANOIA="${PARANOIA:-1}"

# ---------------------------------------------------------------------------
# Gateway level: bench/waf.sh gateway
if [ "${1:-}" = gateway ]; then
	DUR="${DUR:-10s}"
	ROUNDS="${ROUNDS:-3}"
	WARM="${WARM:-3s}"
	MIX="${MIX:-gateway}"
	GW_EVENTS="${GW_EVENTS:-request_headers request_body request_complete}"
	GW_BODY_MODE="${GW_BODY_MODE:-buffer}"
	GW_CONNS="${GW_CONNS:-4}"
	VEGETA="${VEGETA:-.bin/vegeta}"
	AGENT_URL="${AGENT_URL:-}"
	INPROC_URL="${INPROC_URL:-}"
	if [ -n "$AGENT_URL$INPROC_URL" ] && { [ -z "$AGENT_URL" ] || [ -z "$INPROC_URL" ]; }; then
		echo "waf.sh: set both AGENT_URL and INPROC_URL, or neither" >&2
		exit 2
	fi
	[ -x "$VEGETA" ] || make -s loadtools GO="$GO"

	bench_workdir
	pids=()
	trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; bench_cleanup' EXIT
	results_open waf-gateway
	"$GO" build -o "$tmp/wafload" ./bench/wafload
	agent_gw_pid="" inproc_gw_pid=""
	if [ -z "$AGENT_URL" ]; then
		"$GO" build -o "$tmp/agentwire" ./cmd/agentwire
		"$GO" build -o "$tmp/upstream" ./bench/upstream
		start_agent "$tmp/agentwire" "$tmp/serve.log" "unix://$tmp/waf.sock" --agent waf --paranoia "$PARANOIA" || exit 1
		start_listener upstream "$tmp/upstream"
		up_url=$url
		events=""
		for e in $GW_EVENTS; do events="$events \"$e\""; done
		cat >"$tmp/waf.kdl" <<KDL
agent "waf" {
    unix-socket "${agent_ep#unix://}"
    events$events
    request-body-mode "$GW_BODY_MODE"
    failure-mode "closed"
    timeout-ms 10000
    connections $GW_CONNS
}
KDL
		start_listener gw-agent "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$up_url" --config "$tmp/waf.kdl"
		AGENT_URL=$url agent_gw_pid=$pid
		start_listener gw-inproc "$tmp/agentwire" gateway --listen 127.0.0.1:0 --upstream "$up_url" --waf-inprocess --paranoia "$PARANOIA"
		INPROC_URL=$url inproc_gw_pid=$pid
	fi
	"$tmp/wafload" --mode targets --mix "$MIX" --url "$AGENT_URL" >"$tmp/agent.targets"
	"$tmp/wafload" --mode targets --mix "$MIX" --url "$INPROC_URL" >"$tmp/inproc.targets"
	ntargets=$(wc -l <"$tmp/inproc.targets")

	# ticks PID: the process's user+system CPU in clock ticks (0 without PID).
	hz=$(getconf CLK_TCK)
	ticks() { if [ -n "$1" ]; then awk '{ print $14 + $15 }' "/proc/$1/stat"; else echo 0; fi; }
	# runq PID: nanoseconds the process's threads have spent runnable but
	# waiting for a CPU (the second field of /proc/PID/task/*/schedstat;
	# threads that ended are not counted).
	runq() { if [ -n "$1" ]; then cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $2 } END { printf "%.0f", s }'; else echo 0; fi; }
	# per_req T0 T1 N: CPU microseconds per request from ticks T0 to T1.
	per_req() { awk -v a="$1" -v b="$2" -v n="$3" -v hz="$hz" 'BEGIN { if (n > 0) printf "%.1f", (b - a) * 1e6 / hz / n }'; }
	# status REPORT CODE: how many responses had status CODE.
	status() { sed -n "s/.*\"status_codes\":{[^}]*\"$2\":\([0-9]*\).*/\1/p" <<<"$1"; }
	# us REPORT KEY: a latency of the report in microseconds.
	us() { awk -v v="$(vegeta_num "$1" "$2")" 'BEGIN { printf "%.1f", v / 1000 }'; }
	# attack WHICH DUR: a closed-loop vegeta run of CONC workers over the
	# targets of WHICH (agent or inproc); prints vegeta's JSON report.
	attack() {
		"$VEGETA" attack -format=json -targets="$tmp/$1.targets" -rate=0 -workers="$CONC" -max-workers="$CONC" \
			-duration="$2" -keepalive=true -timeout=30s | "$VEGETA" report -type=json
	}
	settings() {
		printf ',"paranoia":%s,"mix":%s,"targets":%s,"gw_events":%s,"gw_body_mode":%s,"gw_conns":%s' \
			"$PARANOIA" "$(json_str "$MIX")" "$ntargets" "$(json_str "$GW_EVENTS")" "$(json_str "$GW_BODY_MODE")" "$GW_CONNS"
	}
	# measure WHICH ROUND: one run, recorded; appends the throughput to
	# rps_WHICH.
	measure() {
		local which=$1 round=$2 gpid a0 a1 g0 g1 w0 w1 v0 v1 rep n gw_cpu="" agent_cpu="" gw_wait="" agent_wait="" transport=uds encoding=msgpack
		if [ "$which" = agent ]; then gpid=$agent_gw_pid; else gpid=$inproc_gw_pid transport=inprocess encoding=none; fi
		g0=$(ticks "$gpid") a0=$(ticks "$serve_pid") w0=$(runq "$gpid") v0=$(runq "$serve_pid")
		rep=$(attack "$which" "$DUR")
		g1=$(ticks "$gpid") a1=$(ticks "$serve_pid") w1=$(runq "$gpid") v1=$(runq "$serve_pid")
		n=$(vegeta_num "$rep" requests)
		# Run-queue wait per second of the run: how much CPU the process
		# wanted and did not get (the machine is shared).
		wait_s() { awk -v a="$1" -v b="$2" -v d="${DUR%s}" 'BEGIN { printf "%.3f", (b - a) / 1e9 / d }'; }
		if [ -n "$gpid" ]; then gw_cpu=$(per_req "$g0" "$g1" "$n") gw_wait=$(wait_s "$w0" "$w1"); fi
		if [ "$which" = agent ] && [ -n "$serve_pid" ]; then agent_cpu=$(per_req "$a0" "$a1" "$n") agent_wait=$(wait_s "$v0" "$v1"); fi
		results_add gateway "$transport" "$encoding" "$CONC" "$DUR" \
			",\"waf\":$(json_str "$which"),\"measure\":\"throughput\",\"round\":$round$(settings)" \
			requests_per_sec="$(vegeta_num "$rep" throughput)" requests="$n" \
			p50_us="$(us "$rep" 50th)" p99_us="$(us "$rep" 99th)" \
			status_200="$(status "$rep" 200)" status_403="$(status "$rep" 403)" \
			gateway_cpu_us_per_request="$gw_cpu" agent_cpu_us_per_request="$agent_cpu" \
			gateway_runq_wait_per_sec="$gw_wait" agent_runq_wait_per_sec="$agent_wait" \
			vegeta:="$rep"
		eval "rps_$which+=(\"$(vegeta_num "$rep" throughput)\")"
		# CPU per request of the WAF side: the gateway, plus the agent.
		eval "cpu_$which+=(\"$(awk -v g="${gw_cpu:-0}" -v a="${agent_cpu:-0}" 'BEGIN { print g + a }')\")"
		printf '  round %s %-6s %8.1f req/s  p50 %8s us  statuses %s  CPU/request: gateway %s us%s  run-queue wait/s: gateway %s%s\n' \
			"$round" "$which" "$(vegeta_num "$rep" throughput)" "$(us "$rep" 50th)" \
			"$(sed -n 's/.*"status_codes":\({[^}]*}\).*/\1/p' <<<"$rep")" "${gw_cpu:-?}" \
			"${agent_cpu:+, agent $agent_cpu us}" "${gw_wait:-?}" "${agent_wait:+, agent $agent_wait}" >&2
	}

	echo "warm-up: $WARM each" >&2
	attack agent "$WARM" >/dev/null
	attack inproc "$WARM" >/dev/null
	echo "$ROUNDS rounds of $DUR at $CONC connections, CRS paranoia $PARANOIA, mix $MIX ($ntargets targets), agent gateway events: $GW_EVENTS ($GW_BODY_MODE)" >&2
	rps_agent=() rps_inproc=() cpu_agent=() cpu_inproc=()
	for i in $(seq "$ROUNDS"); do
		if [ $((i % 2)) = 1 ]; then
			measure agent "$i"
			measure inproc "$i"
		else
			measure inproc "$i"
			measure agent "$i"
		fi
	done
	med() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
	ra=$(med "${rps_agent[@]}") ri=$(med "${rps_inproc[@]}")
	pairs=()
	for i in "${!rps_agent[@]}"; do
		pairs+=("$(awk -v a="${rps_agent[$i]}" -v b="${rps_inproc[$i]}" 'BEGIN { printf "%.4f", a / b }')")
	done
	frac=$(awk -v a="$ra" -v b="$ri" 'BEGIN { printf "%.3f", a / b }')
	pmed=$(med "${pairs[@]}")
	ca=$(med "${cpu_agent[@]}") ci=$(med "${cpu_inproc[@]}")
	cfrac=$(awk -v a="$ca" -v b="$ci" 'BEGIN { if (a > 0) printf "%.3f", b / a }')
	results_add gateway uds msgpack "$CONC" "$DUR" ",\"waf\":\"summary\",\"measure\":\"summary\",\"rounds\":$ROUNDS$(settings)" \
		agent_requests_per_sec="$ra" inproc_requests_per_sec="$ri" throughput_fraction="$frac" median_round_ratio="$pmed" \
		agent_path_cpu_us_per_request="$ca" inproc_cpu_us_per_request="$ci" cpu_fraction="$cfrac"
	cat >&2 <<SUMMARY
summary (medians of $ROUNDS rounds): gateway + WAF agent over a Unix socket $ra req/s, gateway + Coraza in-process $ri req/s:
  agent/inproc $frac (per-round ratios ${pairs[*]}, median $pmed; target >= 0.85)
CPU per request (medians; gateway + agent vs gateway): ${ca:-?} us vs ${ci:-?} us: the in-process CPU is $cfrac of the agent path's
  (the throughput ratio on CPUs given to the WAF alone; on a shared machine the measured throughput also depends on the CPU share each process gets)
raw results: $results_file
SUMMARY
	# With PROFILE=DIR: one more run of each gateway under perf record
	# (the gateway process, and the agent's), DIR/agent.perf.data and
	# DIR/inproc.perf.data; read with perf report -i FILE --no-children
	# --sort comm,sym.
	if [ -n "${PROFILE:-}" ] && [ -n "$agent_gw_pid" ]; then
		mkdir -p "$PROFILE"
		for which in agent inproc; do
			plist=$inproc_gw_pid
			[ "$which" = agent ] && plist="$agent_gw_pid,$serve_pid"
			perf record -q -F 499 -g -p "$plist" -o "$PROFILE/$which.perf.data" -- sleep "${DUR%s}" 2>/dev/null &
			ppid=$!
			rep=$(attack "$which" "$DUR")
			wait "$ppid" || true
			echo "profiled $which: $(vegeta_num "$rep" throughput) req/s -> $PROFILE/$which.perf.data" >&2
		done
	fi
	exit 0
fi

# ---------------------------------------------------------------------------
# Engine level (the default).
CYCLES="${CYCLES:-2}"
REPS="${REPS:-3}"
ENCODING="${ENCODING:-msgpack}"
MIXES="${MIXES:-all benign}"

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
