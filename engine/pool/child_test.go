package pool

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire/agent"
)

// Benchmarks run their agents in a child process (this test binary
// re-executed), so that the allocations and CPU they report are the
// proxy side's only.

const childEnv = "POOL_TEST_CHILD_AGENTS"

// runChild serves agent.BaseHandler (allow everything) on every Unix
// socket path listed in the environment, until stdin closes. It reports
// whether this process is such a child.
func runChild() bool {
	paths := os.Getenv(childEnv)
	if paths == "" {
		return false
	}
	var srvs []*agent.Server
	for _, p := range strings.Split(paths, ",") {
		ln, err := net.Listen("unix", p)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		// Inline handlers, as agentwire serve runs its reference agents
		// (and agentwire bench measures them): the benchmarks measure the
		// layer, not the agent's hand-off to a worker goroutine.
		opts := []agent.Option{agent.WithAgentID("bench"), agent.WithInlineHandlers()}
		if os.Getenv(noSpinEnv) != "" {
			opts = append(opts, agent.WithReadSpin(0))
		}
		srv := agent.NewServer(childHandler(), opts...)
		srvs = append(srvs, srv)
		go func() { _ = srv.ServeUDS(ln) }()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, s := range srvs {
		_ = s.Close()
	}
	writeTimeline()
	return true
}

// startChildAgents starts a child process serving agents on n fresh
// sockets and returns their paths.
func startChildAgents(tb testing.TB, n int) []string {
	paths, _ := startChildAgentsEnv(tb, n)
	return paths
}

// startChildAgentsEnv is startChildAgents with extra environment
// variables for the child; stop ends the child and waits for it (also at
// cleanup).
func startChildAgentsEnv(tb testing.TB, n int, env ...string) (paths []string, stop func()) {
	tb.Helper()
	return startChild(tb, childEnv, n, env...)
}

// startChild re-executes this test binary with n fresh socket paths in
// the environment variable pathsEnv (which selects what the child serves:
// runChild, runEchoChild) and the extra variables env, and waits for the
// child's "ready" line. stop ends the child and waits for it (also at
// cleanup).
func startChild(tb testing.TB, pathsEnv string, n int, env ...string) (paths []string, stop func()) {
	tb.Helper()
	paths = make([]string, n)
	for i := range paths {
		paths[i] = sockPath(tb)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), env...), pathsEnv+"="+strings.Join(paths, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			stdin.Close()
			_ = cmd.Wait()
		})
	}
	tb.Cleanup(stop)
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		tb.Fatalf("child process: %v", err)
	}
	childMu.Lock()
	for _, p := range paths {
		childPID[p] = cmd.Process.Pid
	}
	childMu.Unlock()
	return paths, stop
}

var (
	childMu  sync.Mutex
	childPID = map[string]int{} // socket path -> the child process serving it
)

// childCPU returns the CPU time (user and system) used so far by the
// child processes serving paths (each counted once), read from
// /proc/PID/stat; ok is false where that cannot be read.
func childCPU(paths []string) (d time.Duration, ok bool) {
	seen := map[int]bool{}
	childMu.Lock()
	defer childMu.Unlock()
	for _, p := range paths {
		pid := childPID[p]
		if pid == 0 || seen[pid] {
			continue
		}
		seen[pid] = true
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, false
		}
		// The fields after the command name (in parentheses, which may
		// hold spaces): state is field 3, utime 14, stime 15.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			return 0, false
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 13 {
			return 0, false
		}
		ut, err1 := strconv.ParseUint(f[11], 10, 64)
		st, err2 := strconv.ParseUint(f[12], 10, 64)
		if err1 != nil || err2 != nil {
			return 0, false
		}
		d += time.Duration(ut+st) * time.Second / clockTicks
	}
	return d, true
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux
// for every architecture Go supports).
const clockTicks = 100
