package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// Bad values of the reverse-connection and timing flags are command-line
// mistakes: exit 2 with a message, before anything is bound or dialled.
func TestUsageErrorsBadValues(t *testing.T) {
	sock := shortSocketPath(t, "u.sock")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"probe", "--accept", "localhost"}, "missing port"},
		{[]string{"probe", "--accept", "unix://"}, "empty address"},
		{[]string{"serve", "--dial", "localhost", "--agent-id", "a"}, "missing port"},
		{[]string{"probe", "--accept", sock, "--accept-timeout", "0"}, "--accept-timeout must be positive"},
		{[]string{"probe", "--accept", sock, "--accept-timeout", "-1s"}, "--accept-timeout must be positive"},
		{[]string{"probe", "--accept", sock, "--encoding", "msgpack"}, "--encoding"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--drain-timeout", "0"}, "--drain-timeout must be positive"},
		{[]string{"serve", "--listen", "127.0.0.1:0", "--stop-grace", "0"}, "--stop-grace must be positive"},
		{[]string{"bench", "--agent", "127.0.0.1:1", "--agent-pid", "-5"}, "--agent-pid"},
		{[]string{"bench", "--agent", sock, "--raw-bodies"}, "--raw-bodies needs --encoding msgpack"},
		{[]string{"bench", "--agent", sock, "--encoding", "json", "--raw-bodies"}, "--raw-bodies needs --encoding msgpack"},
	}
	for _, c := range cases {
		r := runCLI(t, c.args...)
		if r.code != exitUsage || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q (want 2 and %q)", c.args, r.code, r.stderr, c.want)
		}
	}
}

// Absurd sizes are refused as usage errors instead of panicking in
// makeslice (run as a separate process: the panic would end this one).
func TestBenchHugeValuesNoPanic(t *testing.T) {
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "echo")
	const huge = "9223372036854775807"
	for _, args := range [][]string{
		{"bench", "--agent", addr, "--duration", "100ms", "--concurrency", huge},
		{"bench", "--agent", addr, "--duration", "100ms", "--conns", huge},
		{"bench", "--agent", addr, "--duration", "100ms", "--body-size", huge},
		{"demo", "--duration", "100ms", "--concurrency", huge},
	} {
		cmd := exec.Command(binary(t), args...)
		cmd.WaitDelay = 5 * time.Second
		out, _ := cmd.CombinedOutput()
		code := cmd.ProcessState.ExitCode()
		if code != exitUsage || strings.Contains(string(out), "panic") || !strings.Contains(string(out), "at most") {
			t.Errorf("%v: exit %d, output:\n%s", args[3:], code, out)
		}
	}
}

// With -v, serve --dial shows why it is not registering (here: nobody
// listens), instead of waiting in silence.
func TestServeDialVerboseShowsDialFailures(t *testing.T) {
	errb := startDial(t, "--dial", shortSocketPath(t, "nobody.sock"), "--agent-id", "lonely", "-v")
	waitMatch(t, errb, regexpMust(`reverse dial failed`), 5*time.Second)
}

// stallHandler never answers request headers (until the call is cancelled).
type stallHandler struct{ agent.BaseHandler }

func (stallHandler) OnRequestHeaders(ctx context.Context, _ *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
	<-ctx.Done()
	return ctx.Err()
}

// An agent that stops answering must not keep bench running for the
// engine's 30 s request timeout after the measured window: the calls still
// in flight are given stopGrace (2 s) and then cancelled, so that bench
// ends within its window (no warm-up, 300 ms) + 2 s + a small slack for
// connecting and closing (measured: 2.30 s in all). The failure must say
// what happened.
func TestBenchStalledAgent(t *testing.T) {
	srv := agent.NewServer(stallHandler{})
	ep := endpoint{kind: epUnix, addr: shortSocketPath(t, "stall.sock")}
	errc := make(chan error, 1)
	if err := startListener(context.Background(), srv, ep, errc, func(string) {}); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Close(); <-errc }()

	const window = 300 * time.Millisecond
	start := time.Now()
	r := runCLI(t, "bench", "--agent", ep.addr, "--duration", window.String(), "--warmup", "0", "--concurrency", "2", "--json")
	took := time.Since(start)
	// Not before the grace has run out (the agent never answers: an
	// earlier end would be another failure), and within a slack of it.
	const slack = 400 * time.Millisecond
	if want := window + stopGrace; took < want || took > want+slack {
		t.Errorf("bench took %v against a stalled agent, want %v (window %v + grace %v) to %v", took, want, window, stopGrace, want+slack)
	}
	if r.code != exitFail || r.stdout != "" || !strings.Contains(r.stderr, "did not answer") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

func TestCommandErrorNamesTheCommandOnce(t *testing.T) {
	for _, c := range []struct{ cmd, err, want string }{
		{"bench", "agentwire: bench: no request completed", "agentwire bench: no request completed"},
		{"probe", "agentwire: connect failed: agentwire: refused", "agentwire probe: connect failed: refused"},
	} {
		if got := commandError(c.cmd, errors.New(c.err)); got != c.want {
			t.Errorf("commandError(%q, %q) = %q, want %q", c.cmd, c.err, got, c.want)
		}
	}
}
