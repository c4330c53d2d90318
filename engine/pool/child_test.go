package pool

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

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
		srv := agent.NewServer(agent.BaseHandler{}, agent.WithAgentID("bench"))
		srvs = append(srvs, srv)
		go func() { _ = srv.ServeUDS(ln) }()
	}
	fmt.Println("ready")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	for _, s := range srvs {
		_ = s.Close()
	}
	return true
}

// startChildAgents starts a child process serving agents on n fresh
// sockets and returns their paths.
func startChildAgents(tb testing.TB, n int) []string {
	tb.Helper()
	paths := make([]string, n)
	for i := range paths {
		paths[i] = sockPath(tb)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(paths, ","))
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
	tb.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		tb.Fatalf("child agents: %v", err)
	}
	return paths
}
