package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/httpguard"
	"github.com/agentwire/agentwire/internal/gwconfig"
	"github.com/agentwire/agentwire/promstats"
)

const gatewaySynopsis = `agentwire gateway --listen HOST:PORT --upstream URL --agent ENDPOINT [--agent ENDPOINT]...
                  [--failure-mode open|closed] [--timeout DURATION] [--metrics-listen HOST:PORT]
                  [--config FILE] [--waf-inprocess [--paranoia 1-4]]

A reverse proxy to URL with agents in front of it (package httpguard).
The --agent endpoints (the forms of probe) form the pipeline of every
request, in flag order, request headers going to them in parallel; they
receive request headers only, as an agent block without "events" does
(use --config for bodies, responses, request-complete and WebSocket
frames). --failure-mode (default closed) and --timeout (default 1s)
apply to every agent unless its --config block says otherwise. --config
reads agent blocks of a Zentinel proxy configuration (KDL); its agents
come first in the pipeline, then the --agent ones. Without any agent it
is a plain reverse proxy.

Once it accepts connections it prints one line "listening on
http://HOST:PORT" on stdout (the real port when PORT is 0). SIGTERM or
SIGINT stops it gracefully (requests in flight finish) and it exits 0.
--metrics-listen serves /metrics (Prometheus text format).` + gatewayWAFHelp

// Gateway defaults.
const (
	gatewayDialBackoffBase = 100 * time.Millisecond
	// gatewayDialBackoffMax bounds how long a restarted agent may wait to
	// be reconnected: a developer's gateway should notice within a second.
	gatewayDialBackoffMax = time.Second
	// gatewayAgentWait bounds the wait for the agents' first connections
	// before the gateway starts serving.
	gatewayAgentWait = 2 * time.Second
	// gatewayFlagConns is the number of connections to each --agent
	// endpoint: one multiplexed connection carries a gateway's load, and
	// batches best (bench/gateway.sh measured 1, 2 and 4: the echo agent's
	// CPU per request was lowest with one). --config sets more.
	gatewayFlagConns = 1
)

// gatewayFlags are the flags of the gateway command.
type gatewayFlags struct {
	listen, upstream string
	agents           []string
	failureMode      string
	timeout          time.Duration
	metricsListen    string
	config           string
	drainTimeout     time.Duration
	waf              gatewayWAF // gateway_waf.go
}

func runGateway(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f gatewayFlags
	fs := newFlagSet("gateway", gatewaySynopsis, stderr)
	fs.StringVar(&f.listen, "listen", "", "HOST:PORT to serve HTTP on (required; port 0 picks one)")
	fs.StringVar(&f.upstream, "upstream", "", "URL of the service to proxy to (required; http:// or https://)")
	fs.Func("agent", "agent ENDPOINT (grpc://host:port, host:port, grpcs://host:port, grpc+unix:///path, unix:///path, /path); repeatable, in pipeline order", func(s string) error {
		f.agents = append(f.agents, s)
		return nil
	})
	fs.StringVar(&f.failureMode, "failure-mode", "closed", "what a request gets when an agent fails: closed (503, or 504 on a timeout) or open (the agent is skipped)")
	fs.DurationVar(&f.timeout, "timeout", time.Second, "bound of each agent call")
	fs.StringVar(&f.metricsListen, "metrics-listen", "", "HOST:PORT to serve /metrics on (Prometheus text format)")
	fs.StringVar(&f.config, "config", "", "file of Zentinel agent blocks (KDL) to add to the pipeline")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 10*time.Second, "how long a graceful stop may wait for requests in flight")
	f.waf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	return gateway(ctx, &f, stdout, stderr)
}

// gateway runs the gateway described by f until ctx ends.
func gateway(ctx context.Context, f *gatewayFlags, stdout, stderr io.Writer) error {
	if f.listen == "" {
		return usagef("--listen HOST:PORT is required")
	}
	if _, _, err := net.SplitHostPort(f.listen); err != nil {
		return usagef("--listen %q: want HOST:PORT", f.listen)
	}
	if f.metricsListen != "" {
		if _, _, err := net.SplitHostPort(f.metricsListen); err != nil {
			return usagef("--metrics-listen %q: want HOST:PORT", f.metricsListen)
		}
	}
	up, err := url.Parse(f.upstream)
	if f.upstream == "" || err != nil || (up.Scheme != "http" && up.Scheme != "https") || up.Host == "" {
		return usagef("--upstream %q: want an http:// or https:// URL", f.upstream)
	}
	var mode engine.FailureMode
	switch f.failureMode {
	case "closed":
		mode = engine.FailClosed
	case "open":
		mode = engine.FailOpen
	default:
		return usagef("--failure-mode %q: want open or closed", f.failureMode)
	}
	if f.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if f.drainTimeout <= 0 {
		return usagef("--drain-timeout must be positive")
	}
	if err := f.waf.check(); err != nil {
		return err
	}
	eps := make([]endpoint, len(f.agents))
	seen := map[string]bool{}
	for i, a := range f.agents {
		ep, err := parseEndpoint(a)
		if err != nil {
			return usagef("--agent: %s", err.(*usageError).msg)
		}
		if seen[ep.raw] {
			return usagef("--agent %s given twice", ep.raw)
		}
		seen[ep.raw] = true
		eps[i] = ep
	}
	var cfg *gwconfig.Config
	if f.config != "" {
		if cfg, err = gwconfig.ParseFile(f.config, gwconfig.Defaults{FailureMode: mode, Timeout: f.timeout}); err != nil {
			return usagef("%s", trimPrefix(err.Error()))
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(stderr, "agentwire gateway: %s\n", w)
		}
	}

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	p, err := pool.New(pool.WithLogger(logger), pool.WithDialBackoff(gatewayDialBackoffBase, gatewayDialBackoffMax))
	if err != nil {
		return err
	}
	defer p.Close()
	gm, err := newGatewayMetrics()
	if err != nil {
		return err
	}
	var steps []pool.Step
	var gopts []httpguard.GuardOption
	if cfg != nil {
		for i := range cfg.Agents {
			a := &cfg.Agents[i]
			if seen[a.ID] {
				return usagef("config %s:%d: agent %q: also given as --agent", f.config, a.Line, a.ID)
			}
			opts, err := configAgentOptions(f.config, a, gm.sink)
			if err != nil {
				return err
			}
			ag, err := p.AddAgent(a.ID, opts...)
			if err != nil {
				return usagef("config %s:%d: agent %q: %s", f.config, a.Line, a.ID, trimPrefix(err.Error()))
			}
			steps = append(steps, pool.Step{Agent: ag})
			gopts = append(gopts, httpguard.WithBodyConfig(ag,
				httpguard.BodyConfig{Mode: a.RequestBodyMode.Mode, Threshold: a.RequestBodyMode.Threshold},
				httpguard.BodyConfig{Mode: a.ResponseBodyMode.Mode, Threshold: a.ResponseBodyMode.Threshold}))
		}
	}
	for _, ep := range eps {
		eopts := []engine.Option{engine.WithReconnectBackoff(gatewayDialBackoffBase, gatewayDialBackoffMax), gm.sink.Option(ep.raw)}
		switch ep.kind {
		case epGRPC:
			eopts = append(eopts, engine.WithInsecure())
		case epUnix:
			// MessagePack when the agent takes it, JSON otherwise.
			eopts = append(eopts, engine.WithMsgpack())
		}
		ag, err := p.AddAgent(ep.raw,
			pool.WithEndpoint(ep.raw, gatewayFlagConns, eopts...),
			pool.WithTimeout(f.timeout),
			pool.WithFailurePolicy(engine.FailurePolicy{Mode: mode}),
			pool.WithEvents(agentwire.EventRequestHeaders))
		if err != nil {
			return usagef("--agent %s: %s", ep.raw, trimPrefix(err.Error()))
		}
		steps = append(steps, pool.Step{Agent: ag})
	}

	rp := newReverseProxy(up, stderr)
	defer rp.Transport.(*http.Transport).CloseIdleConnections()
	var handler http.Handler = rp
	var guard *httpguard.Guard
	if len(steps) > 0 {
		pl, err := pool.NewPipeline(steps)
		if err != nil {
			return err
		}
		if guard, err = httpguard.New(rp, pl, gopts...); err != nil {
			return err
		}
		rp.ModifyResponse = guard.ModifyResponse
		handler = guard
	}
	if handler, err = f.waf.wrap(handler); err != nil {
		return err
	}

	// Give the agents a moment to connect, so that the first requests do
	// not get the failure policy only because the gateway started first;
	// an agent still down is retried forever.
	wctx, wcancel := context.WithTimeout(ctx, gatewayAgentWait)
	for _, st := range steps {
		if err := st.Agent.WaitReady(wctx, 1); err != nil {
			fmt.Fprintf(stderr, "agentwire gateway: agent %s is not connected yet (requests get its failure policy until it is): %s\n",
				st.Agent.Name(), trimPrefix(err.Error()))
		}
	}
	wcancel()
	if ctx.Err() != nil {
		return nil
	}

	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 30 * time.Second,
		ErrorLog:          log.New(stderr, "agentwire gateway: ", 0),
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if f.metricsListen != "" {
		mln, err := net.Listen("tcp", f.metricsListen)
		if err != nil {
			_ = srv.Close()
			<-errc
			return err
		}
		mh, err := gm.handler(p, guard)
		if err != nil {
			_ = srv.Close()
			<-errc
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", mh)
		msrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- msrv.Serve(mln) }()
		fmt.Fprintf(stderr, "metrics on http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(stdout, "listening on http://%s\n", ln.Addr())

	select {
	case err := <-errc:
		_ = srv.Close()
		if msrv != nil {
			_ = msrv.Close()
		}
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stderr, "draining")
	dctx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
	defer cancel()
	err = srv.Shutdown(dctx)
	if msrv != nil {
		_ = msrv.Shutdown(dctx)
	}
	if guard != nil && err == nil {
		err = guard.Wait(dctx)
	}
	if err != nil {
		_ = srv.Close()
		return fmt.Errorf("graceful stop did not finish within %v: %w", f.drainTimeout, err)
	}
	fmt.Fprintln(stderr, "stopped")
	return nil
}

// newReverseProxy returns the gateway's reverse proxy to up: the incoming
// Host is kept (agents may change it with a "host" header operation),
// X-Forwarded-* are set, the transport keeps many idle connections to the
// upstream.
func newReverseProxy(up *url.URL, stderr io.Writer) *httputil.ReverseProxy {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	var warnMu sync.Mutex
	var lastWarn time.Time
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			// A body an agent stopped (the guard answers with the block
			// instead) or a client that went away is not an upstream
			// failure worth a log line.
			if !errors.Is(err, httpguard.ErrBlocked) && r.Context().Err() == nil {
				warnMu.Lock()
				if now := time.Now(); now.Sub(lastWarn) >= time.Second {
					lastWarn = now
					fmt.Fprintf(stderr, "agentwire gateway: upstream: %v\n", err)
				}
				warnMu.Unlock()
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
}

// configAgentOptions turns an agent block into pool options.
func configAgentOptions(file string, a *gwconfig.Agent, sink *promstats.ReportSink) ([]pool.AgentOption, error) {
	bad := func(format string, args ...any) error {
		return usagef("config %s:%d: agent %q: %s", file, a.Line, a.ID, fmt.Sprintf(format, args...))
	}
	if a.MaxRequestBodyBytes == 0 || a.MaxResponseBodyBytes == 0 {
		return nil, bad("a body limit of 0 is not supported by the gateway (it inspects at least one byte; leave the body events out instead)")
	}
	var eps []pool.Endpoint
	for _, ep := range a.Endpoints {
		eopts := []engine.Option{engine.WithReconnectBackoff(gatewayDialBackoffBase, gatewayDialBackoffMax), sink.Option(a.ID)}
		if a.Config != nil {
			eopts = append(eopts, engine.WithAgentConfig(a.Config))
		}
		if ep.Transport == gwconfig.TransportUnixSocket {
			eopts = append(eopts, engine.WithMsgpack())
		}
		if ep.Transport == gwconfig.TransportGRPC {
			switch {
			case ep.TLS != nil:
				cfg, err := endpointTLS(ep.TLS)
				if err != nil {
					return nil, usagef("config %s:%d: agent %q: %s", file, ep.Line, a.ID, err)
				}
				eopts = append(eopts, engine.WithTLS(cfg))
			case !strings.HasPrefix(ep.Address, "https://") && !strings.HasPrefix(ep.Address, "grpcs://"):
				eopts = append(eopts, engine.WithInsecure())
			}
		}
		eps = append(eps, pool.Endpoint{Address: ep.Target(), Conns: a.Connections, Weight: ep.Weight, Options: eopts})
	}
	var kinds []int32
	for _, m := range []struct {
		e gwconfig.Event
		k int32
	}{
		{gwconfig.EventRequestHeaders, agentwire.EventRequestHeaders},
		{gwconfig.EventRequestBody, agentwire.EventRequestBodyChunk},
		{gwconfig.EventResponseHeaders, agentwire.EventResponseHeaders},
		{gwconfig.EventResponseBody, agentwire.EventResponseBodyChunk},
		{gwconfig.EventRequestComplete, agentwire.EventRequestComplete},
		{gwconfig.EventWebSocketFrame, agentwire.EventWebSocketFrame},
		{gwconfig.EventGuardrail, agentwire.EventGuardrailInspect},
	} {
		if a.Events.Has(m.e) {
			kinds = append(kinds, m.k)
		}
	}
	balance := map[gwconfig.Balance]pool.Balance{
		gwconfig.BalanceRoundRobin:    pool.BalanceRoundRobin,
		gwconfig.BalanceLeastInFlight: pool.BalanceLeastInFlight,
		gwconfig.BalancePowerOfTwo:    pool.BalanceP2C,
		gwconfig.BalanceRandom:        pool.BalanceRandom,
		gwconfig.BalanceWeighted:      pool.BalanceWeighted,
	}[a.LoadBalance]
	cb := a.CircuitBreaker
	opts := []pool.AgentOption{
		pool.WithEndpoints(eps...),
		pool.WithEvents(kinds...),
		pool.WithTimeout(a.Timeout),
		pool.WithFailurePolicy(engine.FailurePolicy{Mode: a.FailureMode}),
		pool.WithBodyLimits(a.MaxRequestBodyBytes, a.MaxResponseBodyBytes),
		pool.WithConcurrency(a.MaxConcurrentCalls, 0),
		pool.WithBalance(balance),
		pool.WithBreaker(pool.BreakerConfig{
			FailureThreshold: int(cb.FailureThreshold),
			SuccessThreshold: int(cb.SuccessThreshold),
			OpenDuration:     cb.Timeout,
			HalfOpenProbes:   int(cb.HalfOpenMaxRequests),
		}),
	}
	// chunk-timeout-ms bounds each chunk of a streamed body.
	if a.RequestBodyMode.Mode != httpguard.ModeBuffer {
		opts = append(opts, pool.WithPhaseTimeout(agentwire.EventRequestBodyChunk, a.ChunkTimeout))
	}
	if a.ResponseBodyMode.Mode != httpguard.ModeBuffer {
		opts = append(opts, pool.WithPhaseTimeout(agentwire.EventResponseBodyChunk, a.ChunkTimeout))
	}
	return opts, nil
}

// endpointTLS builds the TLS configuration of a gRPC endpoint's tls block.
func endpointTLS(t *gwconfig.TLS) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CACert != "" {
		p, err := loadCAPool(t.CACert)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = p
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		return nil, errors.New("client-cert and client-key go together")
	}
	if t.ClientCert != "" {
		kp, err := tls.LoadX509KeyPair(t.ClientCert, t.ClientKey)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}
