package engine

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/agentwire/agentwire/agent"
)

// Benchmarks of a request-headers round trip over a real Unix socket to
// agent.Server (allow handler), 1 and 64 requests in flight, JSON and
// MessagePack. The agent runs in a child process (this test binary
// re-executed), so allocs/op and cpu-µs/op are the proxy process's only;
// ENGINE_BENCH_UDS_AGENT=/path/to.sock points them at an external agent
// instead.
//
//	go test ./engine -run '^$' -bench RoundTripUDS -benchtime=200ms -count=3

const childUDSAgentEnv = "ENGINE_TEST_CHILD_UDS_AGENT"

func BenchmarkRoundTripUDS(b *testing.B) {
	path := os.Getenv("ENGINE_BENCH_UDS_AGENT")
	if path == "" {
		path = startChildUDSAgent(b)
	}
	for _, m := range udsModes[:2] {
		c, err := Dial(context.Background(), "unix://"+path, m.opts...)
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/inflight=%d", m.name, n), func(b *testing.B) { runRoundTrips(b, c, n) })
		}
		c.Close()
	}
}

// startChildUDSAgent re-executes the test binary as an agent.Server on a
// Unix socket and returns the socket path. The child exits when its stdin
// closes.
func startChildUDSAgent(b *testing.B) string {
	b.Helper()
	path := sockPath(b)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childUDSAgentEnv+"="+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Wait()
	})
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		b.Fatalf("child agent: %v", err)
	}
	return path
}

// runChildUDSAgent serves agent.BaseHandler (allow everything) on the
// socket named by the environment until stdin closes.
func runChildUDSAgent() {
	path := os.Getenv(childUDSAgentEnv)
	ln, err := net.Listen("unix", path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := agent.NewServer(agent.BaseHandler{}, agent.WithAgentID("bench"))
	go func() { _ = srv.ServeUDS(ln) }()
	fmt.Println(path)
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = srv.Close()
}
