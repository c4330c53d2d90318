package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/engine"
)

const benchSynopsis = `agentwire bench --agent ENDPOINT [--concurrency 64] [--duration 10s] [--conns 1] [--body-size 0] [--encoding json|msgpack] [--raw-bodies] [--gap 0] [--floor] [--window D] [--idle D] [--json]

Closed-loop load: --concurrency callers each keep one request-headers round
trip in flight (plus request body chunks of --body-size bytes when > 0,
as raw MessagePack bin with --raw-bodies, else base64), spread over --conns connections, for --duration after a warm-up; with --gap
each caller pauses that long between its round trips (the processes idle
between calls, as behind an HTTP proxy at low load). Prints
requests/s, p50/p90/p99/p99.9 latency, allocations and CPU time per request
of this (client) process. --json prints one JSON object with the keys
requests_per_sec, p50_us, p90_us, p99_us, p999_us, max_us,
allocs_per_request, bytes_per_request, cpu_us_per_request, cpu_cores,
errors, requests, concurrency and the run's settings (transport, encoding,
conns, body_size, raw_bodies when set, duration_s); with --agent-pid also
agent_cpu_us_per_request and agent_cpu_cores. --floor measures the machine's
floor right after the run with the same settings (--gap included; see agentwire floor) and
adds floor (its report), floor_fraction (requests/s over the floor's) and
floor_p50_ratio. --window D adds windows: requests/s, p50, p99 and max of
each consecutive window of D. --idle D measures resident memory per
connection: before connecting, with the connections open and idle for D
(before the load) and idle for D after the load, of this process and (with
--agent-pid) of the agent, and adds idle (its proxy_* and agent_* keys).`

// benchFlags are the flags of the bench command.
type benchFlags struct {
	agent        string
	concurrency  int
	duration     time.Duration
	warmup       time.Duration
	conns        int
	bodySize     int
	encoding     string
	rawBodies    bool
	json         bool
	agentPID     int
	cpuProfile   string
	memProfile   string
	mutexProfile string
	tls          tlsFlags
	floor        bool
	window       time.Duration
	idle         time.Duration
	gap          time.Duration
}

// benchReport is the --json output: the run's settings and bench.Result.
type benchReport struct {
	Transport string  `json:"transport"`
	Encoding  string  `json:"encoding,omitempty"`
	Conns     int     `json:"conns"`
	BodySize  int     `json:"body_size"`
	RawBodies bool    `json:"raw_bodies,omitempty"`
	GapUs     float64 `json:"gap_us,omitempty"` // --gap, in µs
	DurationS float64 `json:"duration_s"`
	bench.Result
	// Floor is the floor measured beside the run (--floor), and
	// FloorFraction the run's requests/s as a fraction of the floor's.
	Floor         *floorReport `json:"floor,omitempty"`
	FloorFraction float64      `json:"floor_fraction,omitempty"`
	// FloorP50Ratio is the run's p50 latency over the floor's.
	FloorP50Ratio float64 `json:"floor_p50_ratio,omitempty"`
	// Idle is the resident memory per idle connection (--idle).
	Idle *idleReport `json:"idle,omitempty"`
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f benchFlags
	fs := newFlagSet("bench", benchSynopsis, stderr)
	fs.StringVar(&f.agent, "agent", "", "agent endpoint")
	fs.IntVar(&f.concurrency, "concurrency", 64, "requests in flight (closed-loop callers, at most 10000)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured duration")
	fs.DurationVar(&f.warmup, "warmup", 500*time.Millisecond, "unmeasured warm-up before the measured window")
	fs.IntVar(&f.conns, "conns", 1, "connections to spread the callers over (at most 10000)")
	fs.IntVar(&f.bodySize, "body-size", 0, "request body bytes sent per round trip as body chunks (0: headers only; at most 1 GiB)")
	fs.StringVar(&f.encoding, "encoding", "", "Unix-socket payload encoding: json or msgpack (default: the engine's)")
	fs.BoolVar(&f.rawBodies, "raw-bodies", false, "with --encoding msgpack: body data as raw MessagePack bin instead of base64 (engine.WithRawMsgpackBodies; agentwire agents only)")
	fs.BoolVar(&f.json, "json", false, "print one JSON object")
	fs.IntVar(&f.agentPID, "agent-pid", 0, "pid of the agent process, to report its CPU time per request too")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured run to this file")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile to this file after the run")
	fs.StringVar(&f.mutexProfile, "mutexprofile", "", "write a mutex contention profile to this file after the run")
	fs.DurationVar(&f.gap, "gap", 0, "pause of each caller between its round trips, not counted in the latencies (0: back to back; see bench.Config.Gap)")
	fs.BoolVar(&f.floor, "floor", false, "also measure the machine's floor (agentwire floor) with the same settings and report the fraction of it reached")
	fs.DurationVar(&f.window, "window", 0, "also report requests/s and latency of each consecutive window of this length (0: none)")
	fs.DurationVar(&f.idle, "idle", 0, "also measure resident memory per idle connection, the connections idling this long before and after the load (0: no)")
	f.tls.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if f.window < 0 || f.idle < 0 {
		return usagef("--window and --idle must not be negative")
	}
	if f.agent == "" {
		return usagef("--agent is required")
	}
	ep, err := parseEndpoint(f.agent)
	if err != nil {
		return err
	}
	if f.concurrency <= 0 || f.conns <= 0 || f.duration <= 0 || f.bodySize < 0 || f.gap < 0 {
		return usagef("--concurrency, --conns and --duration must be positive, --body-size and --gap not negative")
	}
	if err := checkLoadSize(f.concurrency, f.conns, f.bodySize); err != nil {
		return err
	}
	if f.agentPID < 0 {
		return usagef("--agent-pid %d: want a process id", f.agentPID)
	}
	if f.encoding != "" && f.encoding != "json" && f.encoding != "msgpack" {
		return usagef("--encoding %q: want json or msgpack", f.encoding)
	}
	var extra []engine.Option
	if f.rawBodies {
		if f.encoding != "msgpack" {
			return usagef("--raw-bodies needs --encoding msgpack")
		}
		extra = append(extra, engine.WithRawMsgpackBodies())
	}

	var idle *idleReport
	var rssBefore, rssIdle rssPair
	if f.idle > 0 {
		idle = &idleReport{Conns: f.conns, WaitS: f.idle.Seconds()}
		if rssBefore, err = readRSS(ctx, 0, f.agentPID); err != nil {
			return err
		}
	}
	conns, err := dialConns(ctx, ep, &f.tls, f.encoding, f.conns, extra...)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", ep, err)
	}
	defer closeConns(conns)
	if idle != nil {
		if rssIdle, err = readRSS(ctx, f.idle, f.agentPID); err != nil {
			return err
		}
	}
	// What the handshake chose, not what was asked for: an agent may
	// answer a msgpack offer with json (every Rust agent does).
	enc := conns[0].Encoding()

	if f.mutexProfile != "" {
		runtime.SetMutexProfileFraction(5)
		defer runtime.SetMutexProfileFraction(0)
	}
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()

	var prog *progress
	if !f.json {
		prog = newProgress(stderr, f.duration, "bench")
	}
	cfg := bench.Config{Concurrency: f.concurrency, Duration: f.duration, Warmup: f.warmup, Gap: f.gap, AgentPID: f.agentPID, Window: f.window}
	if f.warmup == 0 {
		cfg.Warmup = -1 // bench.Config: 0 means the default warm-up
	}
	if prog != nil {
		cfg.Progress = prog.update
	}
	res, err := loadConns(ctx, conns, cfg, f.bodySize)
	prog.finish()
	if err != nil {
		return err
	}
	rep := benchReport{
		Transport: ep.transport(), Encoding: enc, Conns: f.conns, BodySize: f.bodySize, RawBodies: f.rawBodies,
		DurationS: res.Duration.Seconds(), Result: res, GapUs: float64(f.gap) / 1e3,
	}
	if idle != nil {
		rssAfter, err := readRSS(ctx, f.idle, f.agentPID)
		if err != nil {
			return err
		}
		idle.fill(rssBefore, rssIdle, rssAfter)
		rep.Idle = idle
	}
	if f.floor {
		if err := addFloor(ctx, &rep, f, stderr); err != nil {
			return fmt.Errorf("floor: %w", err)
		}
	}
	if f.memProfile != "" {
		if err := writeProfile("allocs", f.memProfile); err != nil {
			return err
		}
	}
	if f.mutexProfile != "" {
		if err := writeProfile("mutex", f.mutexProfile); err != nil {
			return err
		}
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		return enc.Encode(&rep)
	}
	printBenchReport(stdout, ep.String(), &rep)
	return nil
}

// dialConns opens n engine connections to ep, with extra options.
func dialConns(ctx context.Context, ep endpoint, tf *tlsFlags, encoding string, n int, extra ...engine.Option) ([]*engine.Conn, error) {
	conns := make([]*engine.Conn, 0, n)
	for range n {
		c, err := dialAgent(ctx, ep, tf, encoding, extra...)
		if err != nil {
			closeConns(conns)
			return nil, err
		}
		conns = append(conns, c)
	}
	return conns, nil
}

func closeConns(conns []*engine.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// Upper bounds of the load flags: the load generator allocates per caller
// state (a latency histogram each) and the body up front, so absurd values
// would exhaust memory or panic.
const (
	maxConcurrency = 10_000
	maxConns       = 10_000
	maxBodySize    = 1 << 30
)

// checkLoadSize refuses load sizes above the bounds (conns 0: not checked).
func checkLoadSize(concurrency, conns, bodySize int) error {
	switch {
	case concurrency > maxConcurrency:
		return usagef("--concurrency %d: at most %d", concurrency, maxConcurrency)
	case conns > maxConns:
		return usagef("--conns %d: at most %d", conns, maxConns)
	case bodySize > maxBodySize:
		return usagef("--body-size %d: at most %d (1 GiB)", bodySize, maxBodySize)
	}
	return nil
}

// stopGrace is how long calls still in flight when the measured window
// ends may take before they are cancelled: without it, an agent that stops
// answering keeps the run going for the engine's request timeout (30 s).
const stopGrace = 2 * time.Second

// loadConns runs the closed-loop load of cfg over conns.
func loadConns(ctx context.Context, conns []*engine.Conn, cfg bench.Config, bodySize int) (bench.Result, error) {
	rt, err := bench.EngineLoad{Conns: conns, Concurrency: cfg.Concurrency, BodySize: bodySize}.RoundTrip()
	if err != nil {
		return bench.Result{}, err
	}
	warm := cfg.Warmup // as bench.Run reads it
	if warm < 0 {
		warm = 0
	} else if warm == 0 {
		warm = 500 * time.Millisecond
	}
	rctx, cancel := context.WithTimeout(ctx, warm+cfg.Duration+stopGrace)
	defer cancel()
	res, err := bench.Run(rctx, cfg, rt)
	stalled := rctx.Err() != nil && ctx.Err() == nil
	switch {
	case errors.Is(err, bench.ErrNoRequests) && ctx.Err() != nil:
		// SIGTERM or SIGINT during the warm-up: say so, not the
		// cancelled calls' error.
		return res, fmt.Errorf("interrupted by a signal before any request was measured: %w", err)
	case errors.Is(err, bench.ErrNoRequests) && res.FirstError != "":
		return res, fmt.Errorf("no request completed; first error: %s", trimPrefix(res.FirstError))
	case errors.Is(err, bench.ErrNoRequests) && stalled:
		return res, fmt.Errorf("no request completed: the agent did not answer within %v", warm+cfg.Duration+stopGrace)
	}
	return res, err
}

func writeProfile(name, path string) error {
	pf, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(pf, 0); err != nil {
		pf.Close()
		return err
	}
	return pf.Close()
}

// printBenchReport prints rep as an aligned table.
func printBenchReport(w io.Writer, target string, rep *benchReport) {
	var b strings.Builder
	enc := ""
	if rep.Encoding != "" {
		enc = " " + rep.Encoding
	}
	fmt.Fprintf(&b, "agent            %s (%s%s)\n", target, rep.Transport, enc)
	fmt.Fprintf(&b, "load             %d in flight over %d connection(s), %.1fs", rep.Concurrency, rep.Conns, rep.DurationS)
	if rep.BodySize > 0 {
		fmt.Fprintf(&b, ", body %d B", rep.BodySize)
	}
	b.WriteString("\n")
	writeResultRows(&b, &rep.Result)
	writeIdleRows(&b, rep)
	if rep.AgentCPUCores > 0 {
		fmt.Fprintf(&b, "agent CPU/req    %.1f µs (%.2f cores)\n", rep.AgentCPUusPerRequest, rep.AgentCPUCores)
	}
	if fl := rep.Floor; fl != nil {
		fmt.Fprintf(&b, "floor            %.0f requests/s, p50 %s, CPU/req %.1f µs, echo CPU/req %.1f µs (%s, request %d B, reply %d B)\n",
			fl.RequestsPerSec, fmtUs(fl.P50us), fl.CPUusPerRequest, fl.AgentCPUusPerRequest, fl.Transport, fl.RequestBytes, fl.ReplyBytes)
		fmt.Fprintf(&b, "of the floor     %.0f%% of its requests/s, p50 %.2f× its p50\n", 100*rep.FloorFraction, rep.FloorP50Ratio)
	}
	io.WriteString(w, b.String())
}

// writeResultRows writes the measured rows shared by bench and demo.
func writeResultRows(b *strings.Builder, r *bench.Result) {
	fmt.Fprintf(b, "requests/s       %.0f (%d requests)\n", r.RequestsPerSec, r.Requests)
	fmt.Fprintf(b, "latency p50      %s\n", fmtUs(r.P50us))
	fmt.Fprintf(b, "latency p90      %s\n", fmtUs(r.P90us))
	fmt.Fprintf(b, "latency p99      %s\n", fmtUs(r.P99us))
	fmt.Fprintf(b, "latency p99.9    %s\n", fmtUs(r.P999us))
	fmt.Fprintf(b, "allocs/req       %.1f (%.0f B)\n", r.AllocsPerRequest, r.BytesPerRequest)
	fmt.Fprintf(b, "CPU/req          %.1f µs (%.2f cores)\n", r.CPUusPerRequest, r.CPUCores)
	fmt.Fprintf(b, "errors           %d", r.Errors)
	if r.FirstError != "" {
		fmt.Fprintf(b, " (first: %s)", trimPrefix(r.FirstError))
	}
	b.WriteString("\n")
}

func fmtUs(us float64) string {
	if us >= 10_000 {
		return fmt.Sprintf("%.1f ms", us/1000)
	}
	if us < 100 {
		return fmt.Sprintf("%.1f µs", us)
	}
	return fmt.Sprintf("%.0f µs", us)
}

// addFloor measures the floor with the run's settings (transport, encoding,
// concurrency, connections, duration) right after the run, and puts it
// beside the run's result.
func addFloor(ctx context.Context, rep *benchReport, f benchFlags, stderr io.Writer) error {
	ff := floorFlags{transport: "grpc", encoding: "msgpack", concurrency: f.concurrency, conns: f.conns, duration: f.duration, warmup: f.warmup, gap: f.gap}
	if rep.Transport == "uds" {
		ff.transport = "uds"
		if rep.Encoding != "" {
			ff.encoding = rep.Encoding
		}
	}
	fl, err := measureFloor(ctx, ff, stderr)
	if err != nil {
		return err
	}
	rep.Floor = &fl
	if fl.RequestsPerSec > 0 {
		rep.FloorFraction = rep.RequestsPerSec / fl.RequestsPerSec
	}
	if fl.P50us > 0 {
		rep.FloorP50Ratio = rep.P50us / fl.P50us
	}
	return nil
}
