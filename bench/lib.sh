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
