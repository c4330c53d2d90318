package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/internal/unixsock"
)

const serveSynopsis = `agentwire serve --listen ENDPOINT --agent echo|deny [--deny-prefix /admin]
       agentwire serve --listen ENDPOINT --agent waf [--paranoia 1-4] [--detection-only] [--rules FILE]... [--inspect-response]
       agentwire serve --dial ENDPOINT --agent-id ID [--token T] --agent echo|deny|waf

Runs a reference agent until SIGTERM or SIGINT, then drains gracefully and
exits 0. The stop is bounded: requests in flight get --drain-timeout, then
every connection is closed hard, and if the agent has still not stopped
--stop-grace later serve exits 1 anyway; a second SIGTERM or SIGINT while
draining closes every connection at once (exit 1 within --stop-grace).
With --listen it prints one line "listening on ENDPOINT" to stderr when
ready; with --dial it registers on a proxy's reverse-connection
listener and prints "registered on ENDPOINT as ID" after each registration.
With --metrics-listen HOST:PORT it also serves the agent's Prometheus
metrics on http://HOST:PORT/metrics and prints "metrics on URL" to stderr.`

// serveFlags are the flags of the serve command.
type serveFlags struct {
	listen, dial  string
	agentKind     string
	denyPrefix    string
	agentID       string
	token         string
	drainTimeout  time.Duration
	stopGrace     time.Duration // serve_stop.go
	encodings     string
	verbose       bool
	cpuProfile    string
	tls           tlsFlags
	waf           wafFlags
	metricsListen string          // serve_metrics.go
	listenAddress func(string)    // test hook: receives the "listening on" address
	handler       agent.Handler   // test hook: served instead of --agent's (inline, as echo)
	force         <-chan struct{} // test hook: stands for the second signal (serve_stop.go)
}

// newHandler returns the reference agent named kind.
func newHandler(kind, denyPrefix string) (agent.Handler, error) {
	switch kind {
	case "echo":
		return refagents.Echo{}, nil
	case "deny":
		return refagents.Deny{Prefix: denyPrefix}, nil
	case "waf":
		return nil, nil // built by serve once the other flags are valid (serve_waf.go)
	}
	return nil, usagef("--agent %q: want echo, deny or waf", kind)
}

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	f, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(f.cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	return serve(ctx, f, stderr)
}

// parseServeFlags parses the serve command line.
func parseServeFlags(args []string, stderr io.Writer) (*serveFlags, error) {
	f := new(serveFlags)
	fs := newFlagSet("serve", serveSynopsis, stderr)
	fs.StringVar(&f.listen, "listen", "", "endpoint to listen on (grpc://host:port, host:port, grpcs://host:port, grpc+unix:///path, unix:///path, /path)")
	fs.StringVar(&f.dial, "dial", "", "reverse-connection listener to register on (unix:///path, /path, host:port)")
	fs.StringVar(&f.agentKind, "agent", "echo", "agent: echo (allow, set X-Agent-Processed: true), deny (block 403 under --deny-prefix) or waf (Coraza with the OWASP Core Rule Set)")
	fs.StringVar(&f.denyPrefix, "deny-prefix", refagents.DefaultDenyPrefix, "URI prefix the deny agent blocks")
	fs.StringVar(&f.agentID, "agent-id", "", "agent id announced in the handshake or registration (default agentwire-<agent>; required with --dial)")
	fs.StringVar(&f.token, "token", "", "auth token sent in the reverse registration (--dial)")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "how long a graceful stop may wait for requests in flight")
	fs.DurationVar(&f.stopGrace, "stop-grace", defaultStopGrace, "after --drain-timeout (or a second signal) every connection is closed hard; how long that may take before serve exits 1 anyway")
	fs.StringVar(&f.encodings, "encodings", "json,msgpack", "Unix-socket payload encodings the agent accepts (json,msgpack or json)")
	fs.BoolVar(&f.verbose, "v", false, "log connection events to stderr")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file (for performance work)")
	f.tls.register(fs, true)
	f.waf.register(fs)
	f.registerMetricsFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	return f, nil
}

// serve runs the agent described by f until ctx ends, then stops it
// gracefully. It returns nil after a graceful stop.
func serve(ctx context.Context, f *serveFlags, stderr io.Writer) error {
	if (f.listen == "") == (f.dial == "") {
		return usagef("give exactly one of --listen and --dial")
	}
	h, err := newHandler(f.agentKind, f.denyPrefix)
	if err != nil {
		return err
	}
	if f.handler != nil {
		h = f.handler
	}
	if err := f.waf.check(f.agentKind); err != nil {
		return err
	}
	id := f.agentID
	if id == "" {
		if f.dial != "" {
			return usagef("--dial needs --agent-id")
		}
		id = "agentwire-" + f.agentKind
	}
	if f.token != "" && f.dial == "" {
		return usagef("--token applies to --dial only")
	}
	if f.dial != "" {
		if _, _, err := unixsock.SplitEndpoint(f.dial); err != nil {
			return usagef("--dial: %s", trimPrefix(err.Error()))
		}
	}
	if f.drainTimeout <= 0 {
		return usagef("--drain-timeout must be positive")
	}
	if f.stopGrace <= 0 {
		return usagef("--stop-grace must be positive")
	}
	encs, err := parseEncodings(f.encodings)
	if err != nil {
		return err
	}
	logLevel := slog.LevelWarn
	if f.verbose {
		// Debug, not Info: the reverse dialer reports failed dials
		// (nobody listening, wrong path) at that level only.
		logLevel = slog.LevelDebug
	}
	opts := []agent.Option{
		agent.WithAgentID(id),
		agent.WithName("agentwire " + f.agentKind),
		agent.WithVersion(version),
		agent.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel}))),
		agent.WithEncodings(encs...),
	}

	var ep endpoint
	if f.listen != "" {
		if ep, err = parseEndpoint(f.listen); err != nil {
			return err
		}
		if ep.kind == epGRPCS {
			cfg, err := f.tls.serverConfig()
			if err != nil {
				return err
			}
			opts = append(opts, agent.WithGRPCServerOptions(grpc.Creds(credentials.NewTLS(cfg))))
		} else if f.tls.set() {
			return usagef("--tls-* flags need a grpcs:// endpoint")
		}
	} else if f.tls.set() {
		return usagef("--tls-* flags apply to --listen grpcs:// only")
	}
	if f.agentKind == "waf" {
		w, wopts, err := f.waf.build()
		if err != nil {
			return err
		}
		defer w.Close()
		h, opts = w, append(opts, wopts...)
	} else {
		// The reference agents decide in well under a microsecond and
		// never block: run them on the connection reader.
		opts = append(opts, agent.WithInlineHandlers())
	}
	srv := agent.NewServer(h, opts...)
	stopMetrics, err := startServeMetrics(f.metricsListen, srv, stderr)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopMetrics()

	errc := make(chan error, 1)
	if f.listen != "" {
		if err := startListener(ctx, srv, ep, errc, func(addr string) {
			fmt.Fprintf(stderr, "listening on %s\n", addr)
			if f.listenAddress != nil {
				f.listenAddress(addr)
			}
		}); err != nil {
			srv.Close()
			return err
		}
	} else {
		onReg := agent.WithOnRegistered(func(r agentwire.RegistrationResponse) {
			fmt.Fprintf(stderr, "registered on %s as %s (connection %s)\n", f.dial, id, r.ConnectionID)
		})
		ropts := []agent.ReverseOption{onReg}
		if f.token != "" {
			ropts = append(ropts, agent.WithAuthToken(f.token))
		}
		// The reverse connection must not see the signal context: Shutdown
		// ends it gracefully instead.
		go func() { errc <- srv.ServeReverse(context.WithoutCancel(ctx), f.dial, ropts...) }()
	}

	select {
	case err := <-errc:
		// The transport ended on its own (listener failure, rejected
		// configuration): nothing to drain.
		srv.Close()
		if errors.Is(err, agent.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}

	return stopServe(srv, f, errc, stderr)
}

// parseEncodings splits the --encodings list.
func parseEncodings(s string) ([]string, error) {
	var out []string
	for _, e := range splitList(s) {
		if e != agentwire.EncodingJSON && e != agentwire.EncodingMsgpack {
			return nil, usagef("--encodings: unknown encoding %q", e)
		}
		out = append(out, e)
	}
	if !slices.Contains(out, agentwire.EncodingJSON) {
		return nil, usagef("--encodings must include json (the encoding every proxy can fall back to)")
	}
	return out, nil
}

// startListener binds ep and serves srv on it in the background; the
// serving goroutine's result goes to errc. ready is called with the
// endpoint actually bound once connections are accepted.
func startListener(ctx context.Context, srv *agent.Server, ep endpoint, errc chan<- error, ready func(string)) error {
	switch ep.kind {
	case epGRPC, epGRPCS:
		ln, err := net.Listen("tcp", ep.addr)
		if err != nil {
			return err
		}
		go func() { errc <- srv.ServeGRPC(ln) }()
		scheme := "grpc://"
		if ep.kind == epGRPCS {
			scheme = "grpcs://"
		}
		ready(scheme + ln.Addr().String())
		return nil
	case epGRPCUnix:
		ln, err := net.Listen("unix", ep.addr)
		if err != nil {
			return err
		}
		go func() { errc <- srv.ServeGRPC(ln) }()
		ready("grpc+unix://" + ep.addr)
		return nil
	}
	// The binary protocol: ListenUDS binds the socket file (a stale one
	// left by a killed process is replaced, a live one refused) and the
	// socket accepts connections once it returns. (Watching for a new
	// socket file instead missed a restart whose new socket got the
	// stale one's inode: TestServeRestartAfterKill.)
	ln, err := srv.ListenUDS(ep.addr)
	if err != nil {
		return err
	}
	go func() { errc <- srv.ServeUDS(ln) }()
	ready("unix://" + ep.addr)
	return nil
}
