package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/agentwire/agentwire/internal/unixsock"
)

// version is announced by the reference agents of serve.
const version = "0.1.0"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // bad command line
)

const usageText = `agentwire — Zentinel agent protocol v2 tool

Usage:
  agentwire serve --listen ENDPOINT --agent echo|deny [--deny-prefix /admin]
  agentwire serve --listen ENDPOINT --agent waf [--paranoia 1-4] [--detection-only] [--rules FILE]... [--inspect-response]
  agentwire serve --dial ENDPOINT --agent-id ID [--token T] --agent echo|deny|waf
  agentwire probe --agent ENDPOINT [--method GET] [--uri /] [-H 'Name: value']... [--json]
  agentwire probe --accept ENDPOINT [--token T] [...]
  agentwire bench --agent ENDPOINT [--concurrency 64] [--duration 10s] [--conns 1] [--floor] [--json]
  agentwire floor --transport uds|grpc [--size BYTES] [--concurrency 64] [--duration 10s] [--json]
  agentwire gateway --listen HOST:PORT --upstream URL [--agent ENDPOINT]... [--failure-mode open|closed] [--timeout 1s] [--metrics-listen HOST:PORT] [--config FILE]
  agentwire demo

Endpoints:
  grpc://host:port, host:port    gRPC, plaintext
  grpcs://host:port              gRPC with TLS (--tls-ca, --tls-cert, --tls-key)
  grpc+unix:///path              gRPC over a Unix socket
  unix:///path, /path            the binary Unix-socket protocol

Run "agentwire COMMAND -h" for the flags of a command.
`

// usageError marks command-line mistakes (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// run executes the command line args (without the program name) and
// returns the process exit code. SIGINT and SIGTERM cancel the command's
// context: serve drains and exits 0, bench and demo stop early. A second
// signal ends the process (serve: closes every connection and exits 1).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// Only the first signal is the command's to handle: after it the
	// signals get their default action again (the process ends), unless
	// the command catches them itself (serve's stop does: a second signal
	// closes every connection at once). Before, every later signal was
	// swallowed too, so a command stuck where it does not look at ctx (a
	// serve still binding its socket, waiting for the directory lock)
	// could not be stopped by SIGTERM at all.
	go func() {
		<-ctx.Done()
		stop()
	}()

	var err error
	switch cmd, rest := args[0], args[1:]; cmd {
	case "serve":
		err = runServe(ctx, rest, stdout, stderr)
	case "probe":
		err = runProbe(ctx, rest, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, stdout, stderr)
	case "demo":
		err = runDemo(ctx, rest, stdout, stderr)
	case "floor":
		err = runFloor(ctx, rest, stdout, stderr)
	case "gateway":
		err = runGateway(ctx, rest, stdout, stderr)
	case "floor-echo": // the echo process floor starts; not for direct use
		err = runFloorEcho(ctx, rest, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	default:
		fmt.Fprintf(stderr, "agentwire: unknown command %q\n\n%s", cmd, usageText)
		return exitUsage
	}
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "agentwire %s: %s\n", args[0], ue.msg)
		return exitUsage
	default:
		fmt.Fprintln(stderr, commandError(args[0], err))
		return exitFail
	}
}

// trimPrefix drops the libraries' "agentwire: " prefixes (leading and
// wrapped): the command prints its own.
// commandError is the line printed for a command's failure: "agentwire
// CMD: message", without the library's "agentwire: " prefixes and without
// repeating CMD when the message starts with it (the bench package's
// errors read "agentwire: bench: ...").
func commandError(cmd string, err error) string {
	return "agentwire " + cmd + ": " + strings.TrimPrefix(trimPrefix(err.Error()), cmd+": ")
}

func trimPrefix(s string) string {
	return strings.ReplaceAll(strings.TrimPrefix(s, "agentwire: "), ": agentwire: ", ": ")
}

// newFlagSet returns a FlagSet for one command that reports errors (not
// exits) and prints its help to stderr.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs; extra positional arguments are an error.
// Parse errors were already printed by fs, so they become a usage error
// with a short message.
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("invalid arguments")
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

// ---------------------------------------------------------------------------
// Endpoints

type endpointKind uint8

const (
	epGRPC     endpointKind = iota // plaintext gRPC over TCP
	epGRPCS                        // gRPC with TLS over TCP
	epGRPCUnix                     // gRPC over a Unix socket
	epUnix                         // the binary Unix-socket protocol
)

// endpoint is a parsed ENDPOINT argument.
type endpoint struct {
	kind endpointKind
	addr string // host:port or socket path
	raw  string // as given
}

func (e endpoint) String() string {
	switch e.kind {
	case epGRPCS:
		return "grpcs://" + e.addr
	case epGRPCUnix:
		return "grpc+unix://" + e.addr
	case epUnix:
		return "unix://" + e.addr
	}
	return "grpc://" + e.addr
}

// transport names the transport for summaries.
func (e endpoint) transport() string {
	switch e.kind {
	case epUnix:
		return "uds"
	case epGRPCUnix:
		return "grpc+unix"
	case epGRPCS:
		return "grpcs"
	}
	return "grpc"
}

// parseEndpoint understands the endpoint forms listed in the usage text.
func parseEndpoint(s string) (endpoint, error) {
	e := endpoint{raw: s}
	switch {
	case s == "":
		return e, usagef("empty endpoint")
	case strings.HasPrefix(s, "grpc+unix://"):
		e.kind, e.addr = epGRPCUnix, strings.TrimPrefix(s, "grpc+unix://")
	case strings.HasPrefix(s, "unix:"):
		e.kind = epUnix
		e.addr, _ = unixsock.PathFromURL(s)
	case strings.HasPrefix(s, "/"):
		e.kind, e.addr = epUnix, s
	case strings.HasPrefix(s, "grpcs://"):
		e.kind, e.addr = epGRPCS, strings.TrimSuffix(strings.TrimPrefix(s, "grpcs://"), "/")
	case strings.HasPrefix(s, "grpc://"):
		e.kind, e.addr = epGRPC, strings.TrimSuffix(strings.TrimPrefix(s, "grpc://"), "/")
	case strings.Contains(s, "://"):
		return e, usagef("endpoint %q: unknown scheme (want grpc://, grpcs://, grpc+unix:// or unix://)", s)
	default:
		e.kind, e.addr = epGRPC, s
	}
	switch e.kind {
	case epUnix, epGRPCUnix:
		if !strings.HasPrefix(e.addr, "/") {
			return e, usagef("endpoint %q: want an absolute socket path", s)
		}
	default:
		if i := strings.LastIndexByte(e.addr, ':'); i < 0 || i == len(e.addr)-1 {
			return e, usagef("endpoint %q: want host:port", s)
		}
	}
	return e, nil
}

// ---------------------------------------------------------------------------
// TLS

// tlsFlags are the certificate flags shared by serve, probe and bench.
type tlsFlags struct{ ca, cert, key string }

func (t *tlsFlags) register(fs *flag.FlagSet, server bool) {
	if server {
		fs.StringVar(&t.cert, "tls-cert", "", "server certificate (PEM) for grpcs://")
		fs.StringVar(&t.key, "tls-key", "", "server private key (PEM) for grpcs://")
		fs.StringVar(&t.ca, "tls-ca", "", "CA bundle (PEM) that client certificates must chain to (enables mTLS)")
		return
	}
	fs.StringVar(&t.ca, "tls-ca", "", "CA bundle (PEM) to verify the agent's certificate (default: system roots)")
	fs.StringVar(&t.cert, "tls-cert", "", "client certificate (PEM) for mTLS")
	fs.StringVar(&t.key, "tls-key", "", "client private key (PEM) for mTLS")
}

func (t *tlsFlags) set() bool { return t.ca != "" || t.cert != "" || t.key != "" }

func loadCAPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", path)
	}
	return pool, nil
}

// serverConfig builds the TLS configuration of a grpcs:// listener.
func (t *tlsFlags) serverConfig() (*tls.Config, error) {
	if t.cert == "" || t.key == "" {
		return nil, usagef("grpcs:// needs --tls-cert and --tls-key")
	}
	kp, err := tls.LoadX509KeyPair(t.cert, t.key)
	if err != nil {
		return nil, fmt.Errorf("load server certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{kp}}
	if t.ca != "" {
		pool, err := loadCAPool(t.ca)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// clientConfig builds the TLS configuration for dialling a grpcs:// agent;
// nil means the engine's default (system roots, no client certificate).
func (t *tlsFlags) clientConfig() (*tls.Config, error) {
	if !t.set() {
		return nil, nil
	}
	if (t.cert == "") != (t.key == "") {
		return nil, usagef("--tls-cert and --tls-key go together")
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if t.ca != "" {
		pool, err := loadCAPool(t.ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if t.cert != "" {
		kp, err := tls.LoadX509KeyPair(t.cert, t.key)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{kp}
	}
	return cfg, nil
}

// splitList splits a comma-separated list, dropping empty entries.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
