#!/usr/bin/env bash
# A/B two builds of the proxy side only: one `serve --agent echo` (built
# from AGENT, default the OLD binary) runs for the whole comparison, and
# the two builds' `bench` runs alternate against it over the unix socket
# at 64 in flight. Client-side changes are then compared without the
# agent's run-to-run variance. Each run's client CPU per request and time
# per request (1/requests/s) are written as benchmark lines, and benchstat
# (installed into $GOBIN or GOPATH/bin on first use) compares the builds.
#
#   bench/abclient.sh OLD_BINARY NEW_BINARY            # 16 pairs, msgpack, 2 s
#   PAIRS=10 ENCODING=json DUR=3s bench/abclient.sh old new
#
# Every bench run is also appended as one JSON line (impl agentwire, "build"
# old or new with its binary, "pair" its number) to
# bench/results/<time>-abclient-<commit>.jsonl (see results_add in
# bench/lib.sh).
#
# The machine is shared and noisy: use at least a dozen pairs, and read
# the p-values.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

[ $# -eq 2 ] || { echo "usage: bench/abclient.sh OLD_BINARY NEW_BINARY" >&2; exit 2; }
old=$1 new=$2
PAIRS="${PAIRS:-16}"
ENCODING="${ENCODING:-msgpack}"
DUR="${DUR:-2s}"
CONC="${CONC:-64}"
AGENT="${AGENT:-$old}"

benchstat=$(command -v benchstat || true)
if [ -z "$benchstat" ]; then
	go install golang.org/x/perf/cmd/benchstat@latest
	benchstat="$(go env GOPATH)/bin/benchstat"
	[ -n "$(go env GOBIN)" ] && benchstat="$(go env GOBIN)/benchstat"
fi

bench_workdir
results_open abclient
start_agent "$AGENT" "$tmp/serve.err" "unix://$tmp/agent.sock" || exit 1

# jfield JSON KEY: the number under KEY in the bench's one-line JSON.
jfield() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1"; }

# run BIN OUT BUILD PAIR: one bench run, appended to OUT as benchmark lines
# and to results_file.
run() {
	local json="" rps cpu
	# A failed or hung run is reported on stderr (run_bench) and recorded
	# without values.
	run_bench json "$1" --agent "$agent_ep" --encoding "$ENCODING" --concurrency "$CONC" --duration "$DUR" \
		--agent-pid "$serve_pid" --json || json=""
	rps=$(jfield "$json" requests_per_sec)
	cpu=$(jfield "$json" cpu_us_per_request)
	results_add agentwire uds "$ENCODING" "$CONC" "$DUR" \
		",\"build\":$(json_str "$3"),\"binary\":$(json_str "$1"),\"agent_binary\":$(json_str "$AGENT"),\"pair\":$4" \
		requests_per_sec="$rps" allocs_per_request="$(jfield "$json" allocs_per_request)" \
		client_cpu_us_per_request="$cpu" agent_cpu_us_per_request="$(jfield "$json" agent_cpu_us_per_request)" \
		p50_us="$(jfield "$json" p50_us)" p99_us="$(jfield "$json" p99_us)" errors="$(jfield "$json" errors)" \
		bench:="$json"
	[ -n "$rps" ] || return 0 # no result: nothing for benchstat
	awk -v r="$rps" -v c="$cpu" 'BEGIN {
		printf "BenchmarkClient/cpu 1 %.0f ns/op\n", c * 1000
		printf "BenchmarkClient/per-request 1 %.0f ns/op\n", 1e9 / r
	}' >>"$2"
}

echo "ENCODING=$ENCODING CONC=$CONC DUR=$DUR PAIRS=$PAIRS, agent $AGENT" >&2
: >"$tmp/old.txt"
: >"$tmp/new.txt"
for i in $(seq "$PAIRS"); do
	run "$old" "$tmp/old.txt" old "$i"
	run "$new" "$tmp/new.txt" new "$i"
done
"$benchstat" old="$tmp/old.txt" new="$tmp/new.txt"
echo "raw results: $results_file" >&2
