package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/payload"
)

// stuckHandler blocks in OnRequestHeaders, ignoring its context, until
// release is closed: what keeps agent.Server.Close waiting without end.
type stuckHandler struct {
	agent.BaseHandler
	entered chan struct{}
	release chan struct{}
}

func (h *stuckHandler) OnRequestHeaders(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
	select {
	case h.entered <- struct{}{}:
	default:
	}
	<-h.release
	return nil
}

// startStuckServe runs serve in-process on a Unix socket with a stuck
// handler, sends it one request and waits until the handler holds it. It
// returns the signal context's cancel (the first SIGTERM) and serve's
// result channel. The cleanup releases the handler and waits for serve
// and the request.
func startStuckServe(t *testing.T, setup func(*serveFlags), args ...string) (f *serveFlags, cancel func(), result <-chan error) {
	t.Helper()
	h := &stuckHandler{entered: make(chan struct{}, 1), release: make(chan struct{})}
	addrc := make(chan string, 1)
	f, err := parseServeFlags(append([]string{"--listen", "unix://" + shortSocketPath(t, "stop.sock")}, args...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	f.handler = h
	if setup != nil {
		setup(f)
	}
	f.listenAddress = func(a string) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- serve(ctx, f, &syncBuffer{}) }()
	var addr string
	select {
	case addr = <-addrc:
	case err := <-res:
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not listen")
	}
	conn, err := engine.Dial(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	reqDone := make(chan struct{})
	go func() {
		defer close(reqDone)
		rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer rcancel()
		ev := agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "stuck-1"}, Method: "GET", URI: "/"}
		_, _ = conn.RequestHeaders(rctx, &ev)
	}()
	// The serve result is read by the test or, if it failed early, here.
	final := make(chan error, 1)
	t.Cleanup(func() {
		close(h.release)
		cancel()
		select {
		case <-final:
		case <-time.After(20 * time.Second):
			t.Error("serve did not return after the handler was released")
		}
		conn.Close()
		<-reqDone
	})
	select {
	case <-h.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the handler")
	}
	out := make(chan error, 1)
	go func() {
		err := <-res
		out <- err
		final <- err
	}()
	return f, cancel, out
}

// TestServeStopIsBoundedWithStuckHandler: after the first signal serve
// returns an error wrapping errStopTimeout about --drain-timeout plus
// --stop-grace later even though a handler never returns (agent.Server's
// Close waits for it for ever). Without the bound serve never returned.
func TestServeStopIsBoundedWithStuckHandler(t *testing.T) {
	f, cancel, res := startStuckServe(t, nil, "--drain-timeout", "100ms", "--stop-grace", "200ms")
	start := time.Now()
	cancel()
	select {
	case err := <-res:
		if !errors.Is(err, errStopTimeout) {
			t.Fatalf("serve = %v, want errStopTimeout", err)
		}
		if took := time.Since(start); took < f.drainTimeout+f.stopGrace {
			t.Errorf("serve gave up after %v, before --drain-timeout + --stop-grace", took)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of the signal")
	}
}

// TestServeSecondSignalForcesStop: a second signal during a long drain
// closes every connection at once; serve returns errForcedStop (exit 1)
// within --stop-grace, long before --drain-timeout. Before, further
// signals were swallowed by the signal context while the drain waited.
func TestServeSecondSignalForcesStop(t *testing.T) {
	force := make(chan struct{})
	_, cancel, res := startStuckServe(t, func(f *serveFlags) { f.force = force }, "--drain-timeout", "1m", "--stop-grace", "200ms")
	cancel()
	close(force)
	select {
	case err := <-res:
		if !errors.Is(err, errForcedStop) {
			t.Fatalf("serve = %v, want errForcedStop", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of the second signal")
	}
}

// floodWithoutReading handshakes on the Unix socket at path and writes
// request-headers events without ever reading, until the agent stops
// reading too (a write of ours times out): the agent's reader is then
// blocked writing replies nobody reads. It returns the connection.
func floodWithoutReading(t *testing.T, path string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "stop-test", ProxyVersion: "0"}
	hs, err := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &req))
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(hs); err != nil {
		t.Fatal(err)
	}
	rd := frame.NewReader(c, 0)
	defer rd.Release()
	if typ, _, err := rd.ReadFrame(); err != nil || typ != frame.TypeHandshakeResponse {
		t.Fatalf("handshake answer %v, %v", typ, err)
	}
	ev := agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: "flood"}, Method: "GET", URI: "/"}
	one, err := frame.AppendFrame(nil, frame.TypeRequestHeaders, payload.AppendRequestHeadersJSON(nil, &ev))
	if err != nil {
		t.Fatal(err)
	}
	batch := make([]byte, 0, 64*len(one))
	for range 64 {
		batch = append(batch, one...)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.Write(batch); err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return c
			}
			t.Fatalf("flood: %v", err)
		}
	}
	t.Fatal("the agent kept reading a peer that never reads")
	return nil
}

// TestServeBinarySecondSIGTERMForces: the agentwire binary, draining with
// a long --drain-timeout behind a proxy that stopped reading, exits 1
// within --stop-grace of a second SIGTERM. Before, the signal context
// swallowed the second signal and serve went on waiting (here until the
// 10 s write timeout ended the connection).
func TestServeBinarySecondSIGTERMForces(t *testing.T) {
	sock := shortSocketPath(t, "force.sock")
	cmd, stderr := startBinary(t, "serve", "--listen", "unix://"+sock, "--agent", "echo", "--drain-timeout", "1m", "--stop-grace", "1s")
	waitMatch(t, stderr, listeningRE, 20*time.Second)
	floodWithoutReading(t, sock)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitMatch(t, stderr, regexpMust(`draining\n`), 10*time.Second)
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, cmd, 5*time.Second); code != exitFail {
		t.Fatalf("exit %d after a second SIGTERM, want %d; stderr:\n%s", code, exitFail, stderr.String())
	}
	if !strings.Contains(stderr.String(), "second signal") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}

// TestServeBinarySecondSIGTERMWhileBinding: a serve held up before it
// listens (here waiting, up to 10 s, for the lock of its socket's
// directory, which the test holds) does not see its context; the first
// SIGTERM is caught, and the second ends the process. Before, the signal
// context swallowed every later SIGTERM as well, and such a serve could
// only be killed.
func TestServeBinarySecondSIGTERMWhileBinding(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("watches the lock wait through /proc/PID/fd")
	}
	dir := filepath.Dir(shortSocketPath(t, "bind.sock"))
	lock, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	cmd, stderr := startBinary(t, "serve", "--listen", "unix://"+filepath.Join(dir, "bind.sock"), "--agent", "echo")
	// serve polls the lock (for up to 10 s) with the directory open: wait
	// for that descriptor, opened after the signal handling is in place.
	fds := fmt.Sprintf("/proc/%d/fd", cmd.Process.Pid)
	deadline := time.Now().Add(20 * time.Second)
	for !hasOpen(fds, dir) {
		if time.Now().After(deadline) {
			t.Fatalf("serve is not waiting for the directory lock; stderr:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The first SIGTERM is handled on a goroutine of the process; whether
	// a second one sent at once comes after it cannot be seen from here,
	// so SIGTERM is repeated until the process ends (one more suffices).
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	giveUp := time.After(5 * time.Second)
	for sent := 0; ; {
		select {
		case <-exited:
			if sent < 2 {
				t.Fatalf("serve ended after %d SIGTERM; stderr:\n%s", sent, stderr.String())
			}
			return
		case <-giveUp:
			cmd.Process.Kill()
			<-exited
			t.Fatalf("serve still running after %d SIGTERMs over 5s; stderr:\n%s", sent, stderr.String())
		case <-tick.C:
			if err := cmd.Process.Signal(syscall.SIGTERM); err == nil {
				sent++
			}
		}
	}
}

// hasOpen reports whether a descriptor listed in the /proc fd directory
// fds refers to path.
func hasOpen(fds, path string) bool {
	ents, _ := os.ReadDir(fds)
	for _, e := range ents {
		if l, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && l == path {
			return true
		}
	}
	return false
}

// TestBenchInterruptedBeforeMeasuring: a bench stopped by a signal (its
// context cancelled) before any request completed fails with an error
// that says so, instead of a bare "no request completed" (or the
// cancelled calls' "context canceled").
func TestBenchInterruptedBeforeMeasuring(t *testing.T) {
	srv := agent.NewServer(stallHandler{})
	ep, err := parseEndpoint("unix://" + shortSocketPath(t, "intr.sock"))
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	if err := startListener(context.Background(), srv, ep, errc, func(string) {}); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Close(); <-errc }()
	conns, err := dialConns(context.Background(), ep, &tlsFlags{}, "", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer closeConns(conns)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = loadConns(ctx, conns, bench.Config{Concurrency: 2, Duration: time.Second}, 0)
	if err == nil || !strings.Contains(err.Error(), "interrupted by a signal") || !errors.Is(err, bench.ErrNoRequests) {
		t.Fatalf("loadConns after a signal = %v, want an error saying it was interrupted", err)
	}
}
