package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/bench"
)

const floorSynopsis = `agentwire floor --transport uds|grpc [--size BYTES] [--encoding msgpack|json] [--concurrency 64] [--conns 1] [--duration 10s] [--json]

The machine's floor for the workload: a raw framed echo over a Unix socket
(uds), or a bare grpc-go bidirectional stream over loopback TCP (grpc), with
the echo side in a separate process, carrying the same bytes as bench's
request-headers round trip (the sample event and the echo agent's reply,
in --encoding on uds) and doing nothing else. --size BYTES carries BYTES of
filler each way instead. Prints the keys of bench --json (the echo's CPU as
agent_cpu_us_per_request) plus request_bytes and reply_bytes.`

type floorFlags struct {
	transport   string
	size        int
	encoding    string
	concurrency int
	conns       int
	duration    time.Duration
	warmup      time.Duration
	gap         time.Duration // bench --gap: the callers' pause between round trips
	json        bool
}

// floorReport is the --json output of floor.
type floorReport struct {
	benchReport
	RequestBytes int `json:"request_bytes"`
	ReplyBytes   int `json:"reply_bytes"`
}

func runFloor(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f floorFlags
	fs := newFlagSet("floor", floorSynopsis, stderr)
	fs.StringVar(&f.transport, "transport", "uds", "uds or grpc")
	fs.IntVar(&f.size, "size", 0, "bytes each way (0: the workload's own request-headers event and reply)")
	fs.StringVar(&f.encoding, "encoding", "msgpack", "uds payload encoding of the workload's messages: msgpack or json")
	fs.IntVar(&f.concurrency, "concurrency", 64, "requests in flight (at most 10000)")
	fs.IntVar(&f.conns, "conns", 1, "connections (at most 10000)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&f.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up")
	fs.BoolVar(&f.json, "json", false, "print one JSON object")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	rep, err := measureFloor(ctx, f, stderr)
	if err != nil {
		return err
	}
	if f.json {
		return json.NewEncoder(stdout).Encode(&rep)
	}
	printFloorReport(stdout, &rep)
	return nil
}

func (f *floorFlags) check() error {
	switch {
	case f.transport != "uds" && f.transport != "grpc":
		return usagef("--transport %q: want uds or grpc", f.transport)
	case f.encoding != "msgpack" && f.encoding != "json":
		return usagef("--encoding %q: want msgpack or json", f.encoding)
	case f.size < 0 || f.size > maxBodySize:
		return usagef("--size %d: want 0..%d", f.size, maxBodySize)
	case f.concurrency <= 0 || f.conns <= 0 || f.duration <= 0 || f.warmup < 0:
		return usagef("--concurrency, --conns and --duration must be positive, --warmup not negative")
	}
	return checkLoadSize(f.concurrency, f.conns, 0)
}

// measureFloor starts the echo process, runs the closed-loop load of f
// against it and stops it.
func measureFloor(ctx context.Context, f floorFlags, stderr io.Writer) (floorReport, error) {
	req, reply, err := bench.FloorMessages(f.transport, f.encoding, f.size)
	if err != nil {
		return floorReport{}, err
	}
	echo, addr, err := startFloorEcho(ctx, f, stderr)
	if err != nil {
		return floorReport{}, err
	}
	defer echo.stop()
	fc, err := bench.FloorLoad{Transport: f.transport, Addr: addr, Conns: f.conns, Request: req}.Dial(ctx)
	if err != nil {
		return floorReport{}, fmt.Errorf("connect to the echo at %s: %w", addr, err)
	}
	cfg := bench.Config{Concurrency: f.concurrency, Duration: f.duration, Warmup: f.warmup, Gap: f.gap, AgentPID: echo.cmd.Process.Pid}
	if f.warmup == 0 {
		cfg.Warmup = -1
	}
	rctx, cancel := context.WithTimeout(ctx, f.warmup+f.duration+stopGrace)
	res, err := bench.Run(rctx, cfg, fc.RoundTrip(f.concurrency))
	cancel()
	fc.Close()
	if err != nil {
		return floorReport{}, err
	}
	enc := ""
	if f.transport == "uds" && f.size == 0 {
		enc = f.encoding
	}
	return floorReport{
		benchReport:  benchReport{Transport: f.transport, Encoding: enc, Conns: f.conns, DurationS: res.Duration.Seconds(), Result: res, GapUs: float64(f.gap) / 1e3},
		RequestBytes: len(req), ReplyBytes: len(reply),
	}, nil
}

// floorEcho is the echo side of the floor, in a process of its own.
type floorEcho struct {
	cmd  *exec.Cmd
	dir  string // the socket's directory, removed by stop
	done chan error
}

// startFloorEcho runs "agentwire floor-echo" (this binary) and waits for
// its address.
func startFloorEcho(ctx context.Context, f floorFlags, stderr io.Writer) (*floorEcho, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	listen, dir := "127.0.0.1:0", ""
	if f.transport == "uds" {
		if dir, err = os.MkdirTemp("", "agentwire-floor-"); err != nil {
			return nil, "", err
		}
		listen = "unix://" + filepath.Join(dir, "echo.sock")
	}
	cmd := exec.Command(self, "floor-echo", "--transport", f.transport, "--listen", listen,
		"--size", strconv.Itoa(f.size), "--encoding", f.encoding)
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("start the echo process: %w", err)
	}
	e := &floorEcho{cmd: cmd, dir: dir, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- strings.TrimSpace(line)
		_, _ = io.Copy(io.Discard, out)
		e.done <- cmd.Wait()
	}()
	select {
	case line := <-lines:
		addr, ok := strings.CutPrefix(line, "listening ")
		if !ok {
			e.stop()
			return nil, "", fmt.Errorf("the echo process did not start (said %q)", line)
		}
		return e, addr, nil
	case <-time.After(10 * time.Second):
		e.stop()
		return nil, "", errors.New("the echo process did not start within 10s")
	case <-ctx.Done():
		e.stop()
		return nil, "", ctx.Err()
	}
}

func (e *floorEcho) stop() {
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.done:
	case <-time.After(5 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.done
	}
	if e.dir != "" {
		os.RemoveAll(e.dir)
	}
}

// runFloorEcho is the hidden "floor-echo" command: the echo side of floor.
// It prints "listening ADDR" once it accepts connections and serves until
// SIGTERM.
func runFloorEcho(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f floorFlags
	var listen string
	fs := newFlagSet("floor-echo", "agentwire floor-echo --transport uds|grpc --listen ADDR [--size BYTES] [--encoding msgpack|json]", stderr)
	fs.StringVar(&f.transport, "transport", "uds", "uds or grpc")
	fs.StringVar(&listen, "listen", "", "unix:///path or host:port")
	fs.IntVar(&f.size, "size", 0, "reply bytes (0: the workload's reply)")
	fs.StringVar(&f.encoding, "encoding", "msgpack", "uds payload encoding")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	_, reply, err := bench.FloorMessages(f.transport, f.encoding, f.size)
	if err != nil {
		return usagef("%v", err)
	}
	var ln net.Listener
	if p, ok := strings.CutPrefix(listen, "unix://"); ok {
		ln, err = net.Listen("unix", p)
	} else {
		ln, err = net.Listen("tcp", listen)
	}
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	if ln.Addr().Network() == "unix" {
		addr = "unix://" + addr
	}
	fmt.Fprintf(stdout, "listening %s\n", addr)
	if f.transport == "grpc" {
		return bench.ServeFloorGRPC(ctx, ln, reply)
	}
	return bench.ServeFloorUDS(ctx, ln, reply)
}

func printFloorReport(w io.Writer, rep *floorReport) {
	var b strings.Builder
	what := "raw framed echo over a Unix socket"
	if rep.Transport == "grpc" {
		what = "bare grpc-go stream over loopback TCP"
	}
	fmt.Fprintf(&b, "floor            %s (request %d B, reply %d B)\n", what, rep.RequestBytes, rep.ReplyBytes)
	fmt.Fprintf(&b, "load             %d in flight over %d connection(s), %.1fs\n", rep.Concurrency, rep.Conns, rep.DurationS)
	writeResultRows(&b, &rep.Result)
	if rep.AgentCPUCores > 0 {
		fmt.Fprintf(&b, "echo CPU/req     %.1f µs (%.2f cores)\n", rep.AgentCPUusPerRequest, rep.AgentCPUCores)
	}
	io.WriteString(w, b.String())
}
