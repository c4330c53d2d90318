package main

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startProbeAccept runs "probe --accept args..." in-process and returns the
// endpoint it listens on and a channel with its result.
func startProbeAccept(t *testing.T, args ...string) (string, <-chan cliResult) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	var out, errb syncBuffer
	res := make(chan cliResult, 1)
	go func() {
		defer cancel()
		code := run(ctx, append([]string{"probe"}, args...), &out, &errb)
		res <- cliResult{code: code, stdout: out.String(), stderr: errb.String()}
	}()
	addr := waitMatch(t, &errb, listeningRE, 10*time.Second)
	return addr, res
}

// startDial runs "serve --dial args..." in-process until the test ends.
func startDial(t *testing.T, args ...string) *syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), &out, &errb) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve --dial exited with %d; stderr: %s", code, errb.String())
			}
		case <-time.After(15 * time.Second):
			t.Errorf("serve --dial did not stop; stderr: %s", errb.String())
		}
	})
	return &errb
}

func waitResult(t *testing.T, res <-chan cliResult) cliResult {
	t.Helper()
	select {
	case r := <-res:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("probe --accept did not finish")
		return cliResult{}
	}
}

func TestReverseProbeAcceptServeDial(t *testing.T) {
	cases := []struct {
		name, accept string
	}{
		{"unix-path", shortSocketPath(t, "rev.sock")},
		{"unix-scheme", "unix://" + shortSocketPath(t, "rev.sock")},
		{"tcp", "127.0.0.1:0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr, res := startProbeAccept(t, "--accept", c.accept, "--token", "s3cret", "--json",
				"--uri", "/admin/x", "--body", "payload", "--response-status", "200")
			dial := strings.TrimPrefix(addr, "unix://")
			errb := startDial(t, "--dial", dial, "--agent-id", "rev-deny", "--token", "s3cret", "--agent", "deny")
			r := waitResult(t, res)
			if r.code != 0 {
				t.Fatalf("probe --accept exit %d; stderr: %s", r.code, r.stderr)
			}
			got := normLines(r.stdout)
			want := []string{denyLine, bodyLine, respLine}
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			waitMatch(t, errb, regexpMust(`registered on \S+ as rev-deny \(connection rev-deny-[0-9a-f]+\)`), 5*time.Second)
		})
	}
}

func TestReverseProbeAcceptHuman(t *testing.T) {
	addr, res := startProbeAccept(t, "--accept", shortSocketPath(t, "h.sock"))
	startDial(t, "--dial", addr, "--agent-id", "rev-echo")
	r := waitResult(t, res)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"(reverse): agent \"rev-echo\"", "request_headers    allow", "X-Agent-Processed: true"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestReverseProbeAcceptWrongToken(t *testing.T) {
	addr, res := startProbeAccept(t, "--accept", shortSocketPath(t, "w.sock"), "--token", "right", "--accept-timeout", "1500ms", "--json")
	startDial(t, "--dial", addr, "--agent-id", "intruder", "--token", "wrong")
	r := waitResult(t, res)
	if r.code == 0 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q", r.code, r.stdout)
	}
	if !strings.Contains(r.stderr, "no agent registered within 1.5s") || !strings.Contains(r.stderr, "rejected") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

func TestReverseProbeAcceptTimeout(t *testing.T) {
	r := runCLI(t, "probe", "--accept", shortSocketPath(t, "t.sock"), "--accept-timeout", "200ms")
	if r.code != exitFail || !strings.Contains(r.stderr, "no agent registered within 200ms") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestServeBinaryDialSIGTERM(t *testing.T) {
	addr, res := startProbeAccept(t, "--accept", shortSocketPath(t, "d.sock"), "--json")
	cmd, stderr := startBinary(t, "serve", "--dial", addr, "--agent-id", "bin-echo")
	r := waitResult(t, res)
	if r.code != 0 || len(normLines(r.stdout)) != 1 || normLines(r.stdout)[0] != echoLine {
		t.Fatalf("probe: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	waitMatch(t, stderr, regexpMust(`registered on \S+ as bin-echo`), 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 20*time.Second); code != 0 {
		t.Fatalf("exit %d after SIGTERM; stderr:\n%s", code, stderr.String())
	}
}
