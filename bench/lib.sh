# Shared by the bench/*.sh scripts (sourced, not run).

# bench_workdir: makes the scratch directory $tmp and arranges that on exit
# the processes in serve_pid and bench_pid (when set) are stopped and $tmp
# is removed.
bench_workdir() {
	tmp=$(mktemp -d)
	serve_pid=""
	bench_pid=""
	trap bench_cleanup EXIT
}

bench_cleanup() {
	local p
	for p in $bench_pid $serve_pid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}

# start_agent BIN LOG LISTEN [SERVE FLAGS...]: starts `BIN serve --listen
# LISTEN --agent echo [FLAGS...]` in the background with its stderr in LOG,
# and waits (up to 10 s) for its "listening on ENDPOINT" line. It sets
# serve_pid and agent_ep; when the agent does not come up it prints LOG,
# clears serve_pid and returns 1.
start_agent() {
	local bin=$1 log=$2 listen=$3
	shift 3
	"$bin" serve --listen "$listen" --agent echo "$@" 2>"$log" &
	serve_pid=$!
	agent_ep=""
	local _
	for _ in $(seq 1 200); do
		agent_ep=$(sed -n 's/^listening on //p' "$log")
		[ -n "$agent_ep" ] && return 0
		kill -0 "$serve_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "agentwire serve did not start:" >&2
	cat "$log" >&2
	kill "$serve_pid" 2>/dev/null || true
	serve_pid=""
	return 1
}

# stop_agent LOG: stops the agent started by start_agent (serve_pid, its
# stderr in LOG) with SIGTERM and waits up to STOP_WAIT seconds (default 30;
# serve bounds its own stop by --drain-timeout + --stop-grace, 15 s by
# default) for it to exit; serve_pid is cleared only once the agent has
# been waited for (an exit trap meanwhile still finds it). An agent still running
# then gets SIGQUIT, so that the Go runtime writes every goroutine's stack
# to LOG, which is kept as bench/results/<time>-serve-hang-<pid>.txt (named
# on stderr), and SIGKILL; stop_agent returns 1 in that case and when serve
# exited non-zero (its LOG is printed).
stop_agent() {
	local log=$1 pid=$serve_pid rc=0 _ keep
	[ -n "$pid" ] || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 $((${STOP_WAIT:-30} * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -QUIT "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		serve_pid=""
		mkdir -p bench/results
		keep="bench/results/$(date -u +%Y-%m-%dT%H%M%SZ)-serve-hang-$pid.txt"
		cp "$log" "$keep"
		echo "agentwire serve (pid $pid) did not stop within ${STOP_WAIT:-30}s of SIGTERM; its goroutine dump: $keep" >&2
		return 1
	fi
	wait "$pid" 2>/dev/null || rc=$?
	serve_pid=""
	if [ "$rc" -ne 0 ]; then
		echo "agentwire serve (pid $pid) exited with $rc:" >&2
		cat "$log" >&2
		return 1
	fi
	return 0
}

# run_bench OUT BIN ARGS...: runs `BIN bench ARGS...` bounded by BENCH_WAIT
# seconds (default 300; SIGQUIT then, so that its goroutine stacks land in
# its stderr), its stdout in the variable named OUT. When it fails or
# prints nothing its stderr (the error, or the dump) is printed and
# run_bench returns 1: a run never ends silently without a result.
run_bench() {
	local __out=$1 __bin=$2 __rc=0 __err __o
	shift 2
	__err=$(mktemp "${tmp:-/tmp}/bench-err.XXXXXX")
	# --foreground: the bench stays in the terminal's process group, so
	# Ctrl-C reaches it (and ends it early, as it did without timeout).
	__o=$(timeout --foreground -s QUIT -k 10 "${BENCH_WAIT:-300}" "$__bin" bench "$@" 2>"$__err") || __rc=$?
	printf -v "$__out" '%s' "$__o"
	if [ "$__rc" -ne 0 ] || [ -z "$__o" ]; then
		echo "agentwire bench failed (exit $__rc, bound ${BENCH_WAIT:-300}s):" >&2
		cat "$__err" >&2
		rm -f "$__err"
		return 1
	fi
	rm -f "$__err"
}

# start_listener NAME CMD...: runs CMD in the background (stdout in
# $tmp/NAME.out, stderr in $tmp/NAME.err, the pid appended to the array
# pids, which the caller declares and stops on exit) and waits up to 20 s
# for its "listening on http://ADDR" line; sets url to http://ADDR and pid
# to its process. Exits the script when CMD does not come up.
start_listener() {
	local name=$1 _
	shift
	: >"$tmp/$name.out"
	"$@" >>"$tmp/$name.out" 2>"$tmp/$name.err" &
	pid=$!
	pids+=("$pid")
	url=""
	for _ in $(seq 1 400); do
		url=$(sed -n 's/^listening on //p' "$tmp/$name.out")
		[ -n "$url" ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "$name did not start:" >&2
	cat "$tmp/$name.err" >&2
	exit 1
}

# vegeta_num JSON KEY: the first number under "KEY" in a vegeta JSON report.
vegeta_num() { sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" <<<"$1" | head -n1; }

# ---------------------------------------------------------------------------
# Raw results: every measuring script (compare.sh, ab.sh, abclient.sh,
# soak.sh) appends one JSON object per run, one line each, to a file of its
# own under bench/results/ (bench/report turns them into the README's
# tables). The file is named after the start time (UTC), the script and
# the commit: bench/results/2026-12-06T213005Z-compare-f50cc00.jsonl.

# json_str S: S as a JSON string.
json_str() {
	local s=${1//\\/\\\\}
	s=${s//\"/\\\"}
	s=${s//$'\t'/ }
	printf '"%s"' "${s//$'\n'/ }"
}

# json_num V: V when it is a plain number, else null.
json_num() {
	if [[ "${1:-}" =~ ^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$ ]]; then
		printf '%s' "$1"
	else
		printf null
	fi
}

# results_open NAME: sets results_file and the fields every line carries:
# the script NAME, the commit (short hash, "-dirty" when tracked files
# differ from it), the start time, and the machine (cores, CPU model, Go
# version). Call it before the runs: the commit is read once.
results_open() {
	local name=$1 commit cpu gover stamp
	commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
	if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
		commit="$commit-dirty"
	fi
	cpu=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo 2>/dev/null | head -n1)
	gover=$("${GO:-go}" env GOVERSION 2>/dev/null || echo unknown)
	stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
	mkdir -p bench/results
	results_file="bench/results/$stamp-$name-$commit.jsonl"
	results_head="\"script\":$(json_str "$name"),\"commit\":$(json_str "$commit"),\"machine\":{\"nproc\":$(nproc),\"cpu\":$(json_str "${cpu:-unknown}"),\"go\":$(json_str "$gover"),\"os\":$(json_str "$(uname -sr)")}"
}

# results_add IMPL TRANSPORT ENCODING CONC DUR EXTRA VALUES...: appends one
# run to results_file. IMPL is baseline or agentwire; ENCODING json,
# msgpack or protobuf; EXTRA more settings as JSON members ("" for none,
# else starting with a comma); VALUES are the measured KEY=VALUE pairs,
# numbers (an empty or non-numeric value is stored as null), stored under
# "values"; a KEY:=JSON argument is stored as is beside them at the top
# level of the line (e.g. the bench's own JSON object, a baseline's line).
results_add() {
	local impl=$1 transport=$2 encoding=$3 conc=$4 dur=$5 extra=$6
	shift 6
	local vals="" more="" kv k v
	for kv in "$@"; do
		if [[ "$kv" == *:=* ]]; then
			k=${kv%%:=*} v=${kv#*:=}
			more="$more,\"$k\":${v:-null}"
		else
			k=${kv%%=*} v=$(json_num "${kv#*=}")
			vals="$vals,\"$k\":$v"
		fi
	done
	printf '{%s,"date":%s,"impl":%s,"settings":{"transport":%s,"encoding":%s,"concurrency":%s,"duration":%s,"gomaxprocs":%s%s},"values":{%s}%s}\n' \
		"$results_head" "$(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)")" "$(json_str "$impl")" \
		"$(json_str "$transport")" "$(json_str "$encoding")" "$(json_num "$conc")" "$(json_str "$dur")" \
		"$(json_str "${GOMAXPROCS:-default}")" "$extra" "${vals#,}" "$more" >>"$results_file"
}
