package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/engine"
)

const demoSynopsis = `agentwire demo [--duration 3s] [--concurrency 64] [--transport auto|grpc|uds]

Starts the echo reference agent in this process on a temporary endpoint
(auto: the Unix-socket protocol with MessagePack; grpc: gRPC over
loopback), checks one decision, runs a short closed-loop load
with a progress bar (on a terminal) and prints a summary. Client and agent
share this process, so CPU and allocations per request cover both sides.`

type demoFlags struct {
	duration    time.Duration
	concurrency int
	transport   string
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f demoFlags
	fs := newFlagSet("demo", demoSynopsis, stderr)
	fs.DurationVar(&f.duration, "duration", 3*time.Second, "measured duration of the load")
	fs.IntVar(&f.concurrency, "concurrency", 64, "requests in flight (at most 10000)")
	fs.StringVar(&f.transport, "transport", "auto", "auto, grpc or uds")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.duration <= 0 || f.concurrency <= 0 {
		return usagef("--duration and --concurrency must be positive")
	}
	if err := checkLoadSize(f.concurrency, 0, 0); err != nil {
		return err
	}
	switch f.transport {
	case "auto":
		f.transport = "uds"
	case "grpc", "uds":
	default:
		return usagef("--transport %q: want auto, grpc or uds", f.transport)
	}
	return demo(ctx, &f, stdout, stderr)
}

func demo(ctx context.Context, f *demoFlags, stdout, stderr io.Writer) (err error) {
	dir, err := os.MkdirTemp("", "agentwire-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	srv := agent.NewServer(refagents.Echo{}, agent.WithAgentID("demo-echo"), agent.WithName("agentwire echo"))
	var ep endpoint
	encoding := ""
	if f.transport == "uds" {
		ep = endpoint{kind: epUnix, addr: filepath.Join(dir, "agent.sock")}
		ep.raw = ep.String()
		encoding = agentwire.EncodingMsgpack
	} else {
		ep = endpoint{kind: epGRPC, addr: "127.0.0.1:0"}
	}
	errc := make(chan error, 1)
	if err := startListener(ctx, srv, ep, errc, func(addr string) {
		ep.raw = addr
		ep, _ = parseEndpoint(addr)
	}); err != nil {
		srv.Close()
		return fmt.Errorf("start the echo agent: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := srv.Shutdown(sctx); serr != nil && err == nil {
			err = fmt.Errorf("stop the echo agent: %w", serr)
		}
		<-errc
	}()
	fmt.Fprintf(stderr, "echo agent listening on %s\n", ep)

	conn, err := dialAgent(ctx, ep, &tlsFlags{}, encoding)
	if err != nil {
		return fmt.Errorf("connect to the echo agent: %w", err)
	}
	defer conn.Close()

	check, err := demoCheck(ctx, conn)
	if err != nil {
		return err
	}

	prog := newProgress(stderr, f.duration, "load")
	cfg := bench.Config{Concurrency: f.concurrency, Duration: f.duration, Warmup: 300 * time.Millisecond}
	if prog != nil {
		cfg.Progress = prog.update
	}
	res, err := loadConns(ctx, []*engine.Conn{conn}, cfg, 0)
	prog.finish()
	if err != nil {
		return err
	}

	var b strings.Builder
	b.WriteString("agentwire demo: echo agent and engine in one process\n\n")
	enc := ""
	if encoding != "" {
		enc = ", " + encoding
	}
	fmt.Fprintf(&b, "transport        %s (%s%s)\n", ep.transport(), ep, enc)
	fmt.Fprintf(&b, "decision check   %s\n", check)
	fmt.Fprintf(&b, "load             %d in flight, 1 connection, %.1fs\n", res.Concurrency, res.Duration.Seconds())
	writeResultRows(&b, &res)
	b.WriteString("\n(CPU and allocations cover client and agent: both run in this process.\n")
	b.WriteString(" Measure with separate processes: agentwire serve + agentwire bench, or make compare.)\n")
	_, err = io.WriteString(stdout, b.String())
	return err
}

// demoCheck sends one request and verifies the echo agent's answer: allow
// with the request header operation set X-Agent-Processed: true.
func demoCheck(ctx context.Context, conn *engine.Conn) (string, error) {
	ev := bench.SampleRequestHeaders("demo-check")
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	t0 := time.Now()
	r, err := conn.RequestHeaders(cctx, &ev)
	if err != nil {
		return "", fmt.Errorf("first request: %w", err)
	}
	lat := time.Since(t0)
	ok := r.Decision.Kind == agentwire.DecisionAllow && len(r.RequestHeaders) == 1 &&
		r.RequestHeaders[0] == agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: refagents.ProcessedHeader, Value: "true"}
	if !ok {
		return "", fmt.Errorf("unexpected answer from the echo agent: %s %+v", r.Decision.Kind, r.RequestHeaders)
	}
	return fmt.Sprintf("allow, set %s: true (%s, first request)", refagents.ProcessedHeader, fmtMicros(lat)), nil
}
