#!/usr/bin/env bash
# Many connections: CONNS connections to one agent, PER requests in flight
# on each, held for DUR, with the latency of every WINDOW to show that it
# stays bounded, and the resident memory per idle connection of both sides.
#
#   bench/manyconns.sh                          # 1000 x 4 for 60 s over UDS, MessagePack
#   TRANSPORT=grpc bench/manyconns.sh           # gRPC over loopback TCP
#   CONNS=200 DUR=10s BIN=/tmp/x bench/manyconns.sh
#
# It starts `agentwire serve --agent echo` (Unix socket or loopback TCP)
# and, in a separate process, `agentwire bench --conns CONNS --concurrency
# CONNS*PER --window WINDOW --idle IDLE`: the bench reads both processes'
# VmRSS before it connects, with the connections open and idle for IDLE,
# and idle for IDLE again after the load (see `agentwire bench -h`), so
# KiB per connection = (idle - before) / CONNS for each side. Each side
# needs a file descriptor per connection: the script raises the soft limit
# (ulimit -n) to the hard one and refuses to run when that is below
# CONNS + 256. The run is appended as one JSON line to
# bench/results/<time>-manyconns-<commit>.jsonl (results_add in
# bench/lib.sh). Exit 1 when a run fails, or when a side holds more than
# MAX_KIB per idle connection (checked on the idle reading before the load).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

CONNS="${CONNS:-1000}"
PER="${PER:-4}"
DUR="${DUR:-60s}"
WINDOW="${WINDOW:-10s}"
IDLE="${IDLE:-5s}"
TRANSPORT="${TRANSPORT:-uds}"
ENCODING="${ENCODING:-msgpack}"
MAX_KIB="${MAX_KIB:-64}"
GO="${GO:-go}"

need=$((CONNS + 256))
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$need" ]; then
	echo "manyconns: the hard file-descriptor limit is $hard, below CONNS + 256 = $need" >&2
	exit 2
fi
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need" ]; then
	ulimit -n "$hard"
fi
echo "manyconns: file-descriptor limit $(ulimit -n) (need $need)" >&2

bench_workdir
results_open manyconns
bin="${BIN:-}"
if [ -z "$bin" ]; then
	bin="$tmp/agentwire"
	"$GO" build -o "$bin" ./cmd/agentwire
fi
case "$TRANSPORT" in
uds) listen="unix://$tmp/agent.sock" enc=(--encoding "$ENCODING") ;;
grpc) listen=127.0.0.1:0 enc=() ENCODING=protobuf ;;
*) echo "manyconns: TRANSPORT must be uds or grpc" >&2; exit 2 ;;
esac
start_agent "$bin" "$tmp/serve.log" "$listen" || exit 1
conc=$((CONNS * PER))
echo "manyconns: TRANSPORT=$TRANSPORT ENCODING=$ENCODING CONNS=$CONNS PER=$PER (concurrency $conc) DUR=$DUR WINDOW=$WINDOW IDLE=$IDLE" >&2
rc=0
json=$("$bin" bench --agent "$agent_ep" "${enc[@]}" --conns "$CONNS" --concurrency "$conc" \
	--duration "$DUR" --window "$WINDOW" --idle "$IDLE" --agent-pid "$serve_pid" --json) || rc=$?
[ "$rc" -eq 0 ] || { echo "manyconns: bench failed (rc=$rc)" >&2; exit 1; }

# jfield KEY: the first number under KEY in the bench's JSON.
jfield() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$json" | head -n1; }
# The windows' p99s, in order, and the largest.
w_p99=$(grep -o '"p99_us":[0-9.e+-]*' <<<"$json" | sed 's/.*://' | sed -n '2,$p' | tr '\n' ' ')
w_max=$(tr ' ' '\n' <<<"$w_p99" | sort -g | tail -n1)
idle=$(sed -n 's/.*"idle":\({[^}]*}\).*/\1/p' <<<"$json")
ifield() { sed -n "s/.*\"$1\":\([0-9.e+-]*\).*/\1/p" <<<"$idle"; }

results_add agentwire "$TRANSPORT" "$ENCODING" "$conc" "$DUR" \
	",\"conns\":$(json_num "$CONNS"),\"per_conn\":$(json_num "$PER"),\"window\":$(json_str "$WINDOW"),\"idle\":$(json_str "$IDLE"),\"nofile\":$(json_num "$(ulimit -n)")" \
	requests_per_sec="$(jfield requests_per_sec)" p50_us="$(jfield p50_us)" p99_us="$(jfield p99_us)" \
	max_window_p99_us="$w_max" errors="$(jfield errors)" \
	client_cpu_us_per_request="$(jfield cpu_us_per_request)" agent_cpu_us_per_request="$(jfield agent_cpu_us_per_request)" \
	proxy_kib_per_idle_conn="$(ifield proxy_kib_per_conn)" agent_kib_per_idle_conn="$(ifield agent_kib_per_conn)" \
	proxy_kib_per_conn_after_load="$(ifield proxy_kib_per_conn_after_load)" agent_kib_per_conn_after_load="$(ifield agent_kib_per_conn_after_load)" \
	bench:="$json"

echo "requests/s $(jfield requests_per_sec), p50 $(jfield p50_us) us, p99 $(jfield p99_us) us, errors $(jfield errors)"
echo "p99 per ${WINDOW} window (us): $w_p99"
echo "resident memory per idle connection (KiB): proxy $(ifield proxy_kib_per_conn), agent $(ifield agent_kib_per_conn);" \
	"after the load: proxy $(ifield proxy_kib_per_conn_after_load), agent $(ifield agent_kib_per_conn_after_load) (the agent's includes its uncollected garbage)"
echo "raw results: $results_file" >&2
fail=0
for side in proxy agent; do
	v=$(ifield "${side}_kib_per_conn")
	if awk -v v="$v" -v m="$MAX_KIB" 'BEGIN { exit !(v >= m) }'; then
		echo "manyconns: $side holds $v KiB per idle connection, at least MAX_KIB=$MAX_KIB" >&2
		fail=1
	fi
done
exit "$fail"
