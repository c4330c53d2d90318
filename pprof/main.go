package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/engine"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config holds the command-line settings.
type config struct {
	transport     string
	agentEP       string
	encoding      string
	duration      time.Duration
	warmup        time.Duration
	concurrency   int
	conns         int
	bodySize      int
	out           string
	mutexFraction int
	memRate       int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c config
	fs := flag.NewFlagSet("pprof", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.transport, "transport", "grpc", "transport to the in-process echo agent: grpc or uds")
	fs.StringVar(&c.agentEP, "agent", "", "profile against this external agent endpoint instead of an in-process one")
	fs.StringVar(&c.encoding, "encoding", "msgpack", "unix-socket payload encoding the engine offers: json or msgpack (uds only: gRPC is protobuf)")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "profiled duration")
	fs.DurationVar(&c.warmup, "warmup", 500*time.Millisecond, "unprofiled warm-up")
	fs.IntVar(&c.concurrency, "concurrency", 64, "requests in flight")
	fs.IntVar(&c.conns, "conns", 1, "engine connections")
	fs.IntVar(&c.bodySize, "body-size", 0, "request body bytes per round trip (0: headers only)")
	fs.StringVar(&c.out, "out", "", "directory for cpu.pprof, cpu.folded, allocs.pprof and mutex.pprof (created)")
	fs.IntVar(&c.mutexFraction, "mutex-fraction", 5, "runtime.SetMutexProfileFraction during the window")
	fs.IntVar(&c.memRate, "mem-rate", 0, "runtime.MemProfileRate during the window (0: leave the default, 1: every allocation)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if c.out == "" || fs.NArg() > 0 || c.duration <= 0 || c.concurrency <= 0 || c.conns <= 0 {
		fmt.Fprintln(stderr, "pprof: need -out DIR, positive -duration, -concurrency and -conns, and no arguments")
		return 2
	}
	encodingSet := false
	fs.Visit(func(f *flag.Flag) { encodingSet = encodingSet || f.Name == "encoding" })
	if encodingSet && c.transport == "grpc" && c.agentEP == "" {
		fmt.Fprintln(stderr, "pprof: -encoding applies to -transport uds (gRPC messages are protobuf)")
		return 2
	}
	res, err := profile(ctx, &c, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "pprof: %s\n", strings.TrimPrefix(err.Error(), "agentwire: "))
		return 1
	}
	cpu := filepath.Join(c.out, "cpu.pprof")
	folded := filepath.Join(c.out, "cpu.folded")
	if err := writeFolded(cpu, folded); err != nil {
		fmt.Fprintf(stderr, "pprof: folded stacks: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "%s\n", res)
	fmt.Fprintf(stdout, "wrote %s, %s (folded stacks for flame-graph tools), %s and %s\n",
		cpu, folded, filepath.Join(c.out, "allocs.pprof"), filepath.Join(c.out, "mutex.pprof"))
	fmt.Fprintf(stdout, "view the CPU flame graph: go tool pprof -http=:0 %s\n", cpu)
	return 0
}

// profile runs the load and writes the profiles.
func profile(ctx context.Context, c *config, log io.Writer) (res bench.Result, err error) {
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return res, err
	}
	endpoint := c.agentEP
	var dialOpts []engine.Option
	if endpoint == "" {
		ep, stop, err := startAgent(ctx, c)
		if err != nil {
			return res, err
		}
		defer stop()
		endpoint = ep
	}
	if !strings.HasPrefix(endpoint, "/") && !strings.HasPrefix(endpoint, "unix:") &&
		!strings.HasPrefix(endpoint, "grpcs://") && !strings.HasPrefix(endpoint, "grpc+unix://") {
		dialOpts = append(dialOpts, engine.WithInsecure())
	}
	switch c.encoding {
	case agentwire.EncodingJSON, agentwire.EncodingMsgpack:
		// Unix-socket endpoints only: the engine refuses the option
		// on gRPC endpoints.
		if (strings.HasPrefix(endpoint, "/") || strings.HasPrefix(endpoint, "unix:") || strings.HasSuffix(endpoint, ".sock")) &&
			!strings.HasPrefix(endpoint, "grpc+unix://") {
			dialOpts = append(dialOpts, engine.WithEncodings(c.encoding))
		}
	default:
		return res, fmt.Errorf("unknown encoding %q (want json or msgpack)", c.encoding)
	}
	fmt.Fprintf(log, "profiling the engine against %s for %v\n", endpoint, c.duration)

	// The engine's goroutines and the load callers carry side=engine.
	engineCtx := pprof.WithLabels(ctx, pprof.Labels("side", "engine"))
	pprof.SetGoroutineLabels(engineCtx)
	defer pprof.SetGoroutineLabels(ctx)
	conns := make([]*engine.Conn, 0, c.conns)
	defer func() {
		for _, cn := range conns {
			cn.Close()
		}
	}()
	for range c.conns {
		cn, err := engine.Dial(engineCtx, endpoint, dialOpts...)
		if err != nil {
			return res, fmt.Errorf("connect to %s: %w", endpoint, err)
		}
		conns = append(conns, cn)
	}
	rt, err := bench.EngineLoad{Conns: conns, Concurrency: c.concurrency, BodySize: c.bodySize}.RoundTrip()
	if err != nil {
		return res, err
	}

	cpuFile, err := os.Create(filepath.Join(c.out, "cpu.pprof"))
	if err != nil {
		return res, err
	}
	defer cpuFile.Close()

	// The warm-up runs unprofiled; the measured window runs with every
	// profile on.
	if c.warmup > 0 {
		if _, err := bench.Run(engineCtx, bench.Config{Concurrency: c.concurrency, Duration: c.warmup, Warmup: -1}, rt); err != nil {
			return res, fmt.Errorf("warm-up: %w", err)
		}
	}
	oldRate := runtime.MemProfileRate
	if c.memRate > 0 {
		runtime.MemProfileRate = c.memRate
	}
	runtime.SetMutexProfileFraction(c.mutexFraction)
	if err := pprof.StartCPUProfile(cpuFile); err != nil {
		return res, err
	}
	res, err = bench.Run(engineCtx, bench.Config{Concurrency: c.concurrency, Duration: c.duration, Warmup: -1}, rt)
	pprof.StopCPUProfile()
	runtime.SetMutexProfileFraction(0)
	// The allocation profile reflects the allocations of the last
	// completed GC cycle: run one before writing it.
	runtime.GC()
	werr := errors.Join(writeProfile("allocs", filepath.Join(c.out, "allocs.pprof")),
		writeProfile("mutex", filepath.Join(c.out, "mutex.pprof")))
	runtime.MemProfileRate = oldRate
	if err != nil {
		return res, err
	}
	return res, werr
}

// startAgent starts the echo agent in-process on c.transport and returns its
// endpoint and a function stopping it.
func startAgent(ctx context.Context, c *config) (string, func(), error) {
	agentCtx := pprof.WithLabels(ctx, pprof.Labels("side", "agent"))
	srv := agent.NewServer(refagents.Echo{}, agent.WithAgentID("pprof-echo"))
	done := make(chan struct{})
	var endpoint string
	var dir string
	switch c.transport {
	case "grpc":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", nil, err
		}
		go pprof.Do(agentCtx, pprof.Labels(), func(context.Context) { defer close(done); _ = srv.ServeGRPC(ln) })
		endpoint = ln.Addr().String()
	case "uds":
		var err error
		if dir, err = os.MkdirTemp("", "awprof"); err != nil {
			return "", nil, err
		}
		path := filepath.Join(dir, "a.sock")
		ln, err := net.Listen("unix", path)
		if err != nil {
			os.RemoveAll(dir)
			return "", nil, err
		}
		go pprof.Do(agentCtx, pprof.Labels(), func(context.Context) { defer close(done); _ = srv.ServeUDS(ln) })
		endpoint = "unix://" + path
	default:
		return "", nil, fmt.Errorf("unknown transport %q (want grpc or uds)", c.transport)
	}
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		if dir != "" {
			os.RemoveAll(dir)
		}
	}
	return endpoint, stop, nil
}

func writeProfile(name, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
