// Package gwconfig reads the agent definitions of `agentwire gateway
// --config`: `agent "<id>" { ... }` blocks in the syntax of the Zentinel
// proxy's KDL configuration (SPEC 12.1), so that an agent developer can run
// the definitions of their proxy locally.
//
// # Syntax
//
// A file holds agent blocks, either at the top level or inside an
// `agents { ... }` block as in a complete Zentinel configuration (whose
// other top-level sections, such as server, listeners, routes or
// upstreams, are skipped and listed in Config.Ignored):
//
//	agents {
//	    agent "waf" type="waf" {
//	        unix-socket "/run/waf.sock"        // or: unix-socket path="..."
//	        events "request_headers" "request_body"
//	        timeout-ms 200
//	        failure-mode "closed"
//	        max-request-body-bytes 1048576
//	        request-body-mode "stream"
//	        circuit-breaker {
//	            failure-threshold 5
//	            success-threshold 2
//	            timeout-seconds 30
//	            half-open-max-requests 1
//	        }
//	        config {
//	            paranoia-level 2
//	            exclude-paths "/health" "/metrics"
//	        }
//	    }
//	}
//
// Keys of an agent block, as the Zentinel proxy reads them (crates/config,
// parse_single_agent), with their defaults:
//
//   - transport, at least one: `unix-socket "<path>"` (or path=) for the
//     binary Unix-socket protocol, `grpc "<address>"` (or address=; e.g.
//     "http://localhost:50051", "https://host:443", "host:port") with an
//     optional block of `tls`, `tls-insecure`, `ca-cert "<file>"`,
//     `client-cert "<file>"`, `client-key "<file>"`. `http` (protocol v1)
//     is refused, as Zentinel refuses it for protocol v2.
//   - `type "<name>"` (or the agent node's type= property): informational.
//   - `events "<event>" ...`: request_headers, request_body,
//     response_headers, response_body, request_complete (also "log"),
//     websocket_frame, guardrail; "-" and "_" spellings alike. Default:
//     request_headers only.
//   - `timeout-ms <n>`: per call, 1 to 3,600,000 (default: Defaults).
//   - `failure-mode "open"|"closed"` (also fail-open, fail_open,
//     fail-closed, fail_closed): default: Defaults.
//   - `circuit-breaker { failure-threshold 5; success-threshold 2;
//     timeout-seconds 30; half-open-max-requests 1 }`: each at least 1.
//   - `max-request-body-bytes <n>`, `max-response-body-bytes <n>`: the
//     body bytes the agent inspects, 0 to 2^40 (default 1 MiB).
//   - `request-body-mode`, `response-body-mode`: "buffer" (default),
//     "stream", "hybrid" (64 KiB threshold) or "hybrid:<bytes>".
//   - `chunk-timeout-ms <n>`: per streamed chunk, 1 to 3,600,000 (default
//     5000).
//   - `config { ... }`: the agent's configuration, turned into JSON as
//     Zentinel does: a child with properties or children becomes an
//     object, one argument a value, several an array, none true.
//   - `max-concurrent-calls <n>`: 1 to 1,000,000 (default 100).
//   - `protocol-version`: deprecated and ignored, as in Zentinel.
//
// Extensions of this gateway (the Zentinel proxy ignores unknown keys, so a
// file using them still loads there):
//
//   - `connections <n>`: connections per endpoint, 1 to 1024 (default 4,
//     the Rust pool's connections_per_agent).
//   - `load-balance "<strategy>"`: round-robin (default), least-in-flight
//     (also least-connections), power-of-two-choices (also p2c), random,
//     weighted.
//   - several transports make an agent with several endpoints (Zentinel
//     keeps the last); `weight=<n>` (1 to 1000, default 1) on a transport
//     is its share under "weighted".
//
// Unlike Zentinel, which skips keys it does not know and values of the
// wrong type, every unknown key, wrong type, value out of range or key
// given twice is an error that names its line.
//
// # Use
//
//	c, err := gwconfig.ParseFile(path, gwconfig.Defaults{
//		FailureMode: mode,    // --failure-mode (the zero value is fail-closed)
//		Timeout:     timeout, // --timeout (0: 1 s)
//	})
//	if err != nil {
//		// errors.Is(err, gwconfig.ErrConfig): print it (it names the line), exit 2
//	}
//	for _, a := range c.Agents {
//		for _, ep := range a.Endpoints {
//			_ = ep.Target() // what engine.Dial takes
//		}
//	}
//
// Parse and ParseFile are safe for concurrent use; a Config is a plain
// value owned by the caller.
package gwconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/httpguard"
)

// ErrConfig is the kind of every error Parse and ParseFile return for a
// bad file (errors.Is).
var ErrConfig = errors.New("agentwire: invalid config")

// Error is a configuration error at a line of a file, or a file that
// cannot be read (Err).
type Error struct {
	File string // as given to Parse
	Line int    // 1-based; 0 when the error concerns the whole file
	Msg  string
	Err  error // the read error of ParseFile, if that is the problem
}

// Error implements error: "agentwire: config FILE:LINE: MSG".
func (e *Error) Error() string {
	loc := e.File
	if loc == "" {
		loc = "<config>"
	}
	if e.Line > 0 {
		loc += ":" + strconv.Itoa(e.Line)
	}
	return "agentwire: config " + loc + ": " + e.Msg
}

// Is reports whether target is ErrConfig.
func (e *Error) Is(target error) bool { return target == ErrConfig }

// Unwrap returns the read error, if any.
func (e *Error) Unwrap() error { return e.Err }

// Defaults, as in the Zentinel proxy.
const (
	DefaultTimeout            = 1000 * time.Millisecond
	DefaultChunkTimeout       = 5000 * time.Millisecond
	DefaultMaxBodyBytes       = 1 << 20
	DefaultMaxConcurrentCalls = 100
	DefaultConnections        = 4
	DefaultWeight             = 1
)

// Event is a kind of event an agent subscribes to, as a bit.
type Event uint16

// Events.
const (
	EventRequestHeaders Event = 1 << iota
	EventRequestBody
	EventResponseHeaders
	EventResponseBody
	EventRequestComplete
	EventWebSocketFrame
	EventGuardrail
)

var eventNames = [...]string{"request_headers", "request_body", "response_headers", "response_body", "request_complete", "websocket_frame", "guardrail"}

// Events is a set of Event bits.
type Events uint16

// Has reports whether e is in the set.
func (s Events) Has(e Event) bool { return uint16(s)&uint16(e) != 0 }

// String lists the events in the canonical spelling, space-separated.
func (s Events) String() string {
	var parts []string
	for i, n := range eventNames {
		if uint16(s)&(1<<i) != 0 {
			parts = append(parts, n)
		}
	}
	return strings.Join(parts, " ")
}

// Transport is how an endpoint is reached.
type Transport uint8

// Transports.
const (
	TransportUnixSocket Transport = iota // the binary Unix-socket protocol
	TransportGRPC
)

// String returns "unix-socket" or "grpc".
func (t Transport) String() string {
	if t == TransportGRPC {
		return "grpc"
	}
	return "unix-socket"
}

// TLS is the TLS configuration of a gRPC endpoint.
type TLS struct {
	InsecureSkipVerify bool
	CACert             string
	ClientCert         string
	ClientKey          string
}

// Endpoint is one place an agent listens.
type Endpoint struct {
	Transport Transport
	// Address is the socket path (unix-socket) or the gRPC address as
	// written (grpc).
	Address string
	// Weight is the endpoint's share under weighted balancing.
	Weight int
	// TLS is set when the grpc block asks for TLS.
	TLS  *TLS
	Line int
}

// Target returns the endpoint in the form engine.Dial accepts:
// "unix:<path>" for a Unix socket, the address for gRPC.
func (e Endpoint) Target() string {
	if e.Transport == TransportUnixSocket {
		return "unix:" + e.Address
	}
	return e.Address
}

// Balance is a load-balancing strategy over an agent's connections.
type Balance uint8

// Strategies.
const (
	BalanceRoundRobin Balance = iota
	BalanceLeastInFlight
	BalancePowerOfTwo
	BalanceRandom
	BalanceWeighted
)

var balanceNames = [...]string{"round-robin", "least-in-flight", "power-of-two-choices", "random", "weighted"}

// String returns the strategy's canonical name.
func (b Balance) String() string {
	if int(b) < len(balanceNames) {
		return balanceNames[b]
	}
	return "unknown"
}

// CircuitBreaker is the agent's breaker configuration.
type CircuitBreaker struct {
	FailureThreshold    uint32        // consecutive failures that open it (5)
	SuccessThreshold    uint32        // successes in half-open that close it (2)
	Timeout             time.Duration // how long it stays open (30 s)
	HalfOpenMaxRequests uint32        // probes let through half-open (1)
}

// DefaultCircuitBreaker returns the Zentinel defaults.
func DefaultCircuitBreaker() CircuitBreaker {
	return CircuitBreaker{FailureThreshold: 5, SuccessThreshold: 2, Timeout: 30 * time.Second, HalfOpenMaxRequests: 1}
}

// BodyMode is how a body goes to the agent.
type BodyMode struct {
	Mode httpguard.BodyMode
	// Threshold is the hybrid mode's buffering threshold in bytes.
	Threshold int
}

// String returns the mode as written in the file.
func (m BodyMode) String() string {
	if m.Mode == httpguard.ModeHybrid {
		return "hybrid:" + strconv.Itoa(m.Threshold)
	}
	return m.Mode.String()
}

// Agent is one agent definition.
type Agent struct {
	ID   string
	Type string // "" when not given
	Line int    // of the agent node

	Endpoints   []Endpoint
	Connections int // per endpoint
	LoadBalance Balance

	Events      Events
	Timeout     time.Duration
	FailureMode engine.FailureMode
	// CircuitBreaker is the breaker configuration: Zentinel's defaults
	// unless a circuit-breaker block changed them (Zentinel runs a breaker
	// with its defaults when the block is absent).
	CircuitBreaker CircuitBreaker

	MaxRequestBodyBytes  int64
	MaxResponseBodyBytes int64
	RequestBodyMode      BodyMode
	ResponseBodyMode     BodyMode
	ChunkTimeout         time.Duration

	// Config is the agent's configuration as JSON; nil without a config
	// block.
	Config json.RawMessage

	MaxConcurrentCalls int
}

// Config is a parsed file.
type Config struct {
	Agents []Agent
	// Ignored lists the top-level nodes that are not agent definitions
	// (server, routes, ...), with their lines, e.g. "routes (line 40)".
	Ignored []string
	// Warnings are notes about accepted but ignored keys.
	Warnings []string
}

// Agent returns the agent with the given id.
func (c *Config) Agent(id string) (*Agent, bool) {
	for i := range c.Agents {
		if c.Agents[i].ID == id {
			return &c.Agents[i], true
		}
	}
	return nil, false
}

// Defaults are the values of keys an agent block leaves out that the
// command line may set.
type Defaults struct {
	// FailureMode applies to agents without failure-mode. The zero value is
	// engine.FailClosed, the gateway's default. Zentinel's KDL parser
	// defaults to open while its serde type defaults to closed
	// (REFERENCE-DEFECTS B-X10); use ZentinelDefaults to read a file
	// exactly as Zentinel's KDL parser does.
	FailureMode engine.FailureMode
	// Timeout applies to agents without timeout-ms (0: DefaultTimeout).
	Timeout time.Duration
}

// ZentinelDefaults are the Zentinel KDL parser's defaults: fail-open, 1 s.
var ZentinelDefaults = Defaults{FailureMode: engine.FailOpen, Timeout: DefaultTimeout}

// ParseFile reads and parses a configuration file. Every error, a file
// that cannot be read included, is an *Error (errors.Is(err, ErrConfig)).
func ParseFile(path string, d Defaults) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	if st.Size() > MaxSize {
		return nil, &Error{File: path, Msg: "file larger than " + strconv.Itoa(MaxSize) + " bytes"}
	}
	src := make([]byte, st.Size())
	if _, err := io.ReadFull(f, src); err != nil {
		return nil, &Error{File: path, Msg: err.Error(), Err: err}
	}
	return Parse(path, src, d)
}

// Parse parses the file named name (used in errors) with contents src. It
// never panics, and fails with an *Error (errors.Is(err, ErrConfig)) that
// names the line of the first problem.
func Parse(name string, src []byte, d Defaults) (*Config, error) {
	if d.Timeout <= 0 {
		d.Timeout = DefaultTimeout
	}
	nodes, err := parseKDL(src)
	if err != nil {
		var se *SyntaxError
		if errors.As(err, &se) {
			return nil, &Error{File: name, Line: se.Line, Msg: "column " + strconv.Itoa(se.Col) + ": " + se.Msg}
		}
		return nil, &Error{File: name, Msg: err.Error()}
	}
	c := &Config{}
	ids := map[string]int{}
	addAgent := func(n *Node) error {
		a, warn, err := parseAgent(n, d)
		if err != nil {
			return &Error{File: name, Line: err.line, Msg: err.msg}
		}
		if first, dup := ids[a.ID]; dup {
			return &Error{File: name, Line: n.Line, Msg: fmt.Sprintf("agent %q defined twice (first on line %d)", a.ID, first)}
		}
		ids[a.ID] = n.Line
		c.Agents = append(c.Agents, a)
		c.Warnings = append(c.Warnings, warn...)
		return nil
	}
	for _, n := range nodes {
		switch n.Name {
		case "agent":
			if err := addAgent(n); err != nil {
				return nil, err
			}
		case "agents":
			if len(n.Args) > 0 || len(n.Props) > 0 {
				return nil, &Error{File: name, Line: n.Line, Msg: "agents takes no arguments, only a block of agent definitions"}
			}
			for _, k := range n.Children {
				if k.Name != "agent" {
					return nil, &Error{File: name, Line: k.Line, Msg: fmt.Sprintf("unknown node %q in agents (only agent is allowed)", k.Name)}
				}
				if err := addAgent(k); err != nil {
					return nil, err
				}
			}
		default:
			c.Ignored = append(c.Ignored, fmt.Sprintf("%s (line %d)", n.Name, n.Line))
		}
	}
	if len(c.Agents) == 0 {
		return nil, &Error{File: name, Msg: "no agent definitions (agent \"<id>\" { ... } blocks, at the top level or in agents { ... })"}
	}
	return c, nil
}

// lineErr is an error at a line, before the file name is known.
type lineErr struct {
	line int
	msg  string
}

func errAt(line int, format string, args ...any) *lineErr {
	return &lineErr{line: line, msg: fmt.Sprintf(format, args...)}
}

// parseAgent reads one agent node.
func parseAgent(n *Node, d Defaults) (Agent, []string, *lineErr) {
	if len(n.Args) != 1 || n.Args[0].Kind != KindString || n.Args[0].Str == "" {
		return Agent{}, nil, errAt(n.Line, `agent needs one argument, its id: agent "<id>" { ... }`)
	}
	a := Agent{
		ID:                   n.Args[0].Str,
		Line:                 n.Line,
		Connections:          DefaultConnections,
		Timeout:              d.Timeout,
		FailureMode:          d.FailureMode,
		CircuitBreaker:       DefaultCircuitBreaker(),
		MaxRequestBodyBytes:  DefaultMaxBodyBytes,
		MaxResponseBodyBytes: DefaultMaxBodyBytes,
		ChunkTimeout:         DefaultChunkTimeout,
		MaxConcurrentCalls:   DefaultMaxConcurrentCalls,
	}
	var warnings []string
	for _, p := range n.Props {
		if p.Key != "type" {
			return a, nil, errAt(n.Line, "agent %q: unknown property %q (only type= is allowed)", a.ID, p.Key)
		}
		if p.Value.Kind != KindString {
			return a, nil, errAt(n.Line, "agent %q: type must be a string", a.ID)
		}
		a.Type = p.Value.Str
	}
	if !n.Block {
		return a, nil, errAt(n.Line, "agent %q needs a block: agent %q { unix-socket \"/path\" ... }", a.ID, a.ID)
	}
	seen := map[string]int{}
	for _, k := range n.Children {
		name := k.Name
		if name != "unix-socket" && name != "grpc" {
			if first, dup := seen[name]; dup {
				return a, nil, errAt(k.Line, "agent %q: %s given twice (first on line %d)", a.ID, name, first)
			}
			seen[name] = k.Line
		}
		var err *lineErr
		switch name {
		case "unix-socket", "grpc":
			var ep Endpoint
			ep, err = parseEndpoint(k)
			a.Endpoints = append(a.Endpoints, ep)
		case "http":
			err = errAt(k.Line, "agent %q: the http transport is not supported by protocol v2; use unix-socket or grpc", a.ID)
		case "type":
			var s string
			s, err = oneString(k)
			a.Type = s
		case "events":
			a.Events, err = parseEvents(k)
		case "timeout-ms":
			a.Timeout, err = millis(k, 1, 3_600_000)
		case "chunk-timeout-ms":
			a.ChunkTimeout, err = millis(k, 1, 3_600_000)
		case "failure-mode":
			a.FailureMode, err = parseFailureMode(k)
		case "circuit-breaker":
			a.CircuitBreaker, err = parseBreaker(k)
		case "max-request-body-bytes":
			a.MaxRequestBodyBytes, err = oneInt(k, 0, 1<<40)
		case "max-response-body-bytes":
			a.MaxResponseBodyBytes, err = oneInt(k, 0, 1<<40)
		case "request-body-mode":
			a.RequestBodyMode, err = parseBodyMode(k)
		case "response-body-mode":
			a.ResponseBodyMode, err = parseBodyMode(k)
		case "config":
			a.Config, err = parseAgentConfig(k)
		case "max-concurrent-calls":
			var v int64
			v, err = oneInt(k, 1, 1_000_000)
			a.MaxConcurrentCalls = int(v)
		case "connections":
			var v int64
			v, err = oneInt(k, 1, 1024)
			a.Connections = int(v)
		case "load-balance":
			a.LoadBalance, err = parseBalance(k)
		case "protocol-version":
			warnings = append(warnings, fmt.Sprintf("line %d: agent %q: protocol-version is deprecated and ignored", k.Line, a.ID))
		default:
			err = errAt(k.Line, "agent %q: unknown key %q", a.ID, name)
		}
		if err != nil {
			return a, nil, err
		}
	}
	if len(a.Endpoints) == 0 {
		return a, nil, errAt(n.Line, "agent %q has no transport: add unix-socket \"/path\" or grpc \"host:port\"", a.ID)
	}
	if a.Events == 0 {
		a.Events = Events(EventRequestHeaders)
	}
	return a, warnings, nil
}

// noBlock fails when k has a children block.
func noBlock(k *Node) *lineErr {
	if k.Block {
		return errAt(k.Line, "%s takes no block", k.Name)
	}
	return nil
}

// oneValue returns k's single argument (no properties, no block).
func oneValue(k *Node) (Value, *lineErr) {
	if len(k.Args) != 1 || len(k.Props) != 0 {
		return Value{}, errAt(k.Line, "%s takes exactly one value", k.Name)
	}
	if err := noBlock(k); err != nil {
		return Value{}, err
	}
	return k.Args[0], nil
}

func oneString(k *Node) (string, *lineErr) {
	v, err := oneValue(k)
	if err != nil {
		return "", err
	}
	if v.Kind != KindString {
		return "", errAt(v.Line, "%s must be a string, not a %s", k.Name, v.Kind)
	}
	return v.Str, nil
}

func oneInt(k *Node, lo, hi int64) (int64, *lineErr) {
	v, err := oneValue(k)
	if err != nil {
		return 0, err
	}
	return intIn(k.Name, v, lo, hi)
}

func intIn(name string, v Value, lo, hi int64) (int64, *lineErr) {
	if v.Kind != KindInt {
		return 0, errAt(v.Line, "%s must be an integer, not a %s", name, v.Kind)
	}
	if v.Int < lo || v.Int > hi {
		return 0, errAt(v.Line, "%s %d out of range (%d to %d)", name, v.Int, lo, hi)
	}
	return v.Int, nil
}

func millis(k *Node, lo, hi int64) (time.Duration, *lineErr) {
	v, err := oneInt(k, lo, hi)
	return time.Duration(v) * time.Millisecond, err
}

// parseEndpoint reads `unix-socket "<path>"` / `unix-socket path="..."`
// or `grpc "<address>"` / `grpc address="..." { tls ... }`.
func parseEndpoint(k *Node) (Endpoint, *lineErr) {
	ep := Endpoint{Line: k.Line, Weight: DefaultWeight}
	key := "path"
	if k.Name == "grpc" {
		ep.Transport, key = TransportGRPC, "address"
	}
	var addr *Value
	if len(k.Args) > 1 {
		return ep, errAt(k.Line, "%s takes one %s", k.Name, key)
	}
	if len(k.Args) == 1 {
		addr = &k.Args[0]
	}
	for i := range k.Props {
		p := &k.Props[i]
		switch p.Key {
		case key:
			if addr != nil {
				return ep, errAt(k.Line, "%s: %s given twice", k.Name, key)
			}
			addr = &p.Value
		case "weight":
			w, err := intIn("weight", p.Value, 1, 1000)
			if err != nil {
				return ep, err
			}
			ep.Weight = int(w)
		default:
			return ep, errAt(k.Line, "%s: unknown property %q (%s= and weight= are allowed)", k.Name, p.Key, key)
		}
	}
	if addr == nil {
		return ep, errAt(k.Line, "%s needs a %s: %s %q", k.Name, key, k.Name, "...")
	}
	if addr.Kind != KindString || addr.Str == "" {
		return ep, errAt(k.Line, "%s: the %s must be a non-empty string", k.Name, key)
	}
	ep.Address = addr.Str
	if ep.Transport == TransportUnixSocket {
		if k.Block {
			return ep, errAt(k.Line, "unix-socket takes no block")
		}
		if strings.ContainsRune(ep.Address, 0) {
			return ep, errAt(k.Line, "unix-socket: the path contains a NUL byte")
		}
		return ep, nil
	}
	if err := checkGRPCAddress(ep.Address); err != "" {
		return ep, errAt(k.Line, "grpc: address %q: %s", ep.Address, err)
	}
	for _, c := range k.Children {
		if ep.TLS == nil {
			ep.TLS = &TLS{}
		}
		switch c.Name {
		case "tls":
			if len(c.Args) != 0 || len(c.Props) != 0 || c.Block {
				return ep, errAt(c.Line, "tls takes no value")
			}
		case "tls-insecure":
			if len(c.Args) != 0 || len(c.Props) != 0 || c.Block {
				return ep, errAt(c.Line, "tls-insecure takes no value")
			}
			ep.TLS.InsecureSkipVerify = true
		case "ca-cert", "client-cert", "client-key":
			s, err := oneString(c)
			if err != nil {
				return ep, err
			}
			switch c.Name {
			case "ca-cert":
				ep.TLS.CACert = s
			case "client-cert":
				ep.TLS.ClientCert = s
			default:
				ep.TLS.ClientKey = s
			}
		default:
			return ep, errAt(c.Line, "grpc: unknown key %q (tls, tls-insecure, ca-cert, client-cert, client-key are allowed)", c.Name)
		}
	}
	if ep.TLS != nil && (ep.TLS.ClientCert == "") != (ep.TLS.ClientKey == "") {
		return ep, errAt(k.Line, "grpc: client-cert and client-key go together")
	}
	return ep, nil
}

// checkGRPCAddress checks an address the way engine.Dial reads it:
// [scheme://]host:port with scheme grpc, http, grpcs or https.
func checkGRPCAddress(a string) string {
	hostport := a
	if i := strings.Index(a, "://"); i >= 0 {
		switch a[:i] {
		case "grpc", "http", "grpcs", "https":
		default:
			return "unknown scheme " + strconv.Quote(a[:i]) + " (grpc, http, grpcs, https)"
		}
		hostport = strings.TrimSuffix(a[i+3:], "/")
	}
	_, port, err := net.SplitHostPort(hostport)
	if err != nil || port == "" {
		return "want host:port"
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return "invalid port " + strconv.Quote(port)
	}
	return ""
}

func parseEvents(k *Node) (Events, *lineErr) {
	if len(k.Args) == 0 || len(k.Props) != 0 {
		return 0, errAt(k.Line, `events lists at least one event: events "request_headers" "request_body"`)
	}
	if err := noBlock(k); err != nil {
		return 0, err
	}
	var s Events
	for _, v := range k.Args {
		if v.Kind != KindString {
			return 0, errAt(v.Line, "events: each event is a string, not a %s", v.Kind)
		}
		e, ok := eventByName(v.Str)
		if !ok {
			return 0, errAt(v.Line, "unknown event %q (%s)", v.Str, strings.Join(eventNames[:], ", "))
		}
		s |= Events(e)
	}
	return s, nil
}

// eventByName accepts the spellings Zentinel accepts.
func eventByName(s string) (Event, bool) {
	switch s {
	case "request_headers", "request-headers":
		return EventRequestHeaders, true
	case "request_body", "request-body":
		return EventRequestBody, true
	case "response_headers", "response-headers":
		return EventResponseHeaders, true
	case "response_body", "response-body":
		return EventResponseBody, true
	case "log", "request_complete", "request-complete":
		return EventRequestComplete, true
	case "websocket_frame", "websocket-frame", "web_socket_frame", "web-socket-frame":
		return EventWebSocketFrame, true
	case "guardrail":
		return EventGuardrail, true
	}
	return 0, false
}

func parseFailureMode(k *Node) (engine.FailureMode, *lineErr) {
	s, err := oneString(k)
	if err != nil {
		return 0, err
	}
	switch s {
	case "open", "fail-open", "fail_open":
		return engine.FailOpen, nil
	case "closed", "fail-closed", "fail_closed":
		return engine.FailClosed, nil
	}
	return 0, errAt(k.Line, "unknown failure-mode %q (open or closed)", s)
}

func parseBreaker(k *Node) (CircuitBreaker, *lineErr) {
	cb := DefaultCircuitBreaker()
	if len(k.Args) != 0 || len(k.Props) != 0 {
		return cb, errAt(k.Line, "circuit-breaker takes a block, not values")
	}
	seen := map[string]int{}
	for _, c := range k.Children {
		if first, dup := seen[c.Name]; dup {
			return cb, errAt(c.Line, "circuit-breaker: %s given twice (first on line %d)", c.Name, first)
		}
		seen[c.Name] = c.Line
		switch c.Name {
		case "failure-threshold", "success-threshold", "half-open-max-requests":
			v, err := oneInt(c, 1, math.MaxUint32)
			if err != nil {
				return cb, err
			}
			switch c.Name {
			case "failure-threshold":
				cb.FailureThreshold = uint32(v)
			case "success-threshold":
				cb.SuccessThreshold = uint32(v)
			default:
				cb.HalfOpenMaxRequests = uint32(v)
			}
		case "timeout-seconds":
			v, err := oneInt(c, 1, 86_400)
			if err != nil {
				return cb, err
			}
			cb.Timeout = time.Duration(v) * time.Second
		default:
			return cb, errAt(c.Line, "circuit-breaker: unknown key %q (failure-threshold, success-threshold, timeout-seconds, half-open-max-requests)", c.Name)
		}
	}
	return cb, nil
}

func parseBodyMode(k *Node) (BodyMode, *lineErr) {
	s, err := oneString(k)
	if err != nil {
		return BodyMode{}, err
	}
	switch s {
	case "buffer":
		return BodyMode{Mode: httpguard.ModeBuffer}, nil
	case "stream":
		return BodyMode{Mode: httpguard.ModeStream}, nil
	case "hybrid":
		return BodyMode{Mode: httpguard.ModeHybrid, Threshold: httpguard.DefaultHybridThreshold}, nil
	}
	if t, ok := strings.CutPrefix(s, "hybrid:"); ok {
		v, perr := strconv.ParseInt(t, 10, 64)
		if perr != nil || v < 1 || v > 1<<30 {
			return BodyMode{}, errAt(k.Line, "%s: invalid hybrid threshold %q (1 to %d bytes)", k.Name, t, 1<<30)
		}
		return BodyMode{Mode: httpguard.ModeHybrid, Threshold: int(v)}, nil
	}
	return BodyMode{}, errAt(k.Line, "unknown %s %q (buffer, stream, hybrid, hybrid:<bytes>)", k.Name, s)
}

func parseBalance(k *Node) (Balance, *lineErr) {
	s, err := oneString(k)
	if err != nil {
		return 0, err
	}
	switch strings.ReplaceAll(s, "_", "-") {
	case "round-robin":
		return BalanceRoundRobin, nil
	case "least-in-flight", "least-connections":
		return BalanceLeastInFlight, nil
	case "power-of-two-choices", "power-of-two", "p2c":
		return BalancePowerOfTwo, nil
	case "random":
		return BalanceRandom, nil
	case "weighted":
		return BalanceWeighted, nil
	}
	return 0, errAt(k.Line, "unknown load-balance %q (%s)", s, strings.Join(balanceNames[:], ", "))
}

// parseAgentConfig turns a config block into JSON the way Zentinel's
// kdl_to_json does (an object of the block's children).
func parseAgentConfig(k *Node) (json.RawMessage, *lineErr) {
	if len(k.Args) != 0 || len(k.Props) != 0 {
		return nil, errAt(k.Line, "config takes a block: config { key value ... }")
	}
	b, err := json.Marshal(kdlToJSON(k))
	if err != nil {
		return nil, errAt(k.Line, "config: %v", err)
	}
	return b, nil
}

// kdlToJSON converts a node's children: each child becomes a key whose
// value is an object when the child has properties or children (the
// children's keys merged over the properties), its argument when it has
// one, an array of its arguments when it has several, and true when it
// has none. A later child of the same name replaces an earlier one.
// Non-finite floats, which JSON cannot hold, are left out.
func kdlToJSON(n *Node) map[string]any {
	obj := make(map[string]any, len(n.Children))
	for _, c := range n.Children {
		var args []any
		for _, v := range c.Args {
			if j, ok := valueToJSON(v); ok {
				args = append(args, j)
			}
		}
		props := make(map[string]any)
		for _, p := range c.Props {
			if j, ok := valueToJSON(p.Value); ok {
				props[p.Key] = j
			}
		}
		if c.Block {
			for k, v := range kdlToJSON(c) {
				props[k] = v
			}
		}
		switch {
		case len(props) > 0:
			obj[c.Name] = props
		case len(args) == 1:
			obj[c.Name] = args[0]
		case len(args) > 1:
			obj[c.Name] = args
		default:
			obj[c.Name] = true
		}
	}
	return obj
}

func valueToJSON(v Value) (any, bool) {
	switch v.Kind {
	case KindString:
		return v.Str, true
	case KindInt:
		return v.Int, true
	case KindFloat:
		if math.IsInf(v.Float, 0) || math.IsNaN(v.Float) {
			return nil, false
		}
		return v.Float, true
	case KindBool:
		return v.Bool, true
	}
	return nil, true // null
}
