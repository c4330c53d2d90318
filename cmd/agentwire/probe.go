package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/unixsock"
)

const probeSynopsis = `agentwire probe --agent ENDPOINT [--method GET] [--uri /] [-H 'Name: value']... [--body TEXT] [--response-status N] [--json]
       agentwire probe --accept ENDPOINT [--token T] [...]

Sends one request's events to an agent and prints each decision: the
request headers (names lower-cased), then --body as request body chunks,
then response headers when --response-status is given. With --accept it
listens for a reverse connection and probes the first agent that registers.

With --json it prints exactly one JSON object per line per decision:
  {"event":"request_headers"|"request_body_chunk"|"response_headers",
   "decision":"allow"|"block"|"redirect"|"challenge",
   "status":N (block and redirect only),
   "request_headers":[{"op":"set"|"add"|"remove","name":"...","value":"..."}],
   "response_headers":[...], "latency_us":N}
A remove operation has no "value" key. The exit status is 0 when every
event got a decision (whatever it was), non-zero otherwise.`

// headerFlags collects repeated -H 'Name: value' flags.
type headerFlags []agentwire.Header

func (h *headerFlags) String() string {
	var b strings.Builder
	for i, x := range *h {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.Name + ": " + strings.Join(x.Values, ","))
	}
	return b.String()
}

// Set parses "Name: value"; the name is lower-cased, the value trimmed.
// A repeated name adds a value.
func (h *headerFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, ":")
	name = strings.ToLower(strings.TrimSpace(name))
	if !ok || name == "" || strings.ContainsAny(name, " \t\r\n") {
		return fmt.Errorf("want 'Name: value', got %q", s)
	}
	value = strings.TrimSpace(value)
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("header %q: value contains a line break", name)
	}
	hs := agentwire.Headers(*h)
	hs.Add(name, value)
	*h = headerFlags(hs)
	return nil
}

// probeFlags are the flags of the probe command.
type probeFlags struct {
	agent, accept  string
	token          string
	method, uri    string
	headers        headerFlags
	body           string
	bodySet        bool
	responseStatus int
	json           bool
	timeout        time.Duration
	acceptTimeout  time.Duration
	encoding       string
	tls            tlsFlags
}

func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f probeFlags
	fs := newFlagSet("probe", probeSynopsis, stderr)
	fs.StringVar(&f.agent, "agent", "", "agent endpoint to connect to")
	fs.StringVar(&f.accept, "accept", "", "reverse-connection endpoint to listen on (the agent dials in)")
	fs.StringVar(&f.token, "token", "", "with --accept: the auth token the registering agent must present")
	fs.StringVar(&f.method, "method", "GET", "request method")
	fs.StringVar(&f.uri, "uri", "/", "request path and query")
	fs.Var(&f.headers, "H", "request header 'Name: value' (repeatable)")
	fs.StringVar(&f.body, "body", "", "request body, sent as request body chunks")
	fs.IntVar(&f.responseStatus, "response-status", 0, "when set, also send response headers with this status")
	fs.BoolVar(&f.json, "json", false, "print one JSON object per decision")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "connect and per-event timeout")
	fs.DurationVar(&f.acceptTimeout, "accept-timeout", time.Minute, "with --accept: how long to wait for an agent to register")
	fs.StringVar(&f.encoding, "encoding", "", "Unix-socket payload encoding to offer: json or msgpack (default: the engine's)")
	f.tls.register(fs, false)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "body" {
			f.bodySet = true
		}
	})
	return probe(ctx, &f, stdout, stderr)
}

// probe runs the probe described by f.
func probe(ctx context.Context, f *probeFlags, stdout, stderr io.Writer) error {
	if (f.agent == "") == (f.accept == "") {
		return usagef("give exactly one of --agent and --accept")
	}
	if f.token != "" && f.accept == "" {
		return usagef("--token applies to --accept only")
	}
	if f.responseStatus < 0 || f.responseStatus > 999 {
		return usagef("--response-status %d out of range", f.responseStatus)
	}
	if f.timeout <= 0 {
		return usagef("--timeout must be positive")
	}
	if f.method == "" || f.uri == "" {
		return usagef("--method and --uri must not be empty")
	}
	if f.accept != "" {
		if _, _, err := unixsock.SplitEndpoint(f.accept); err != nil {
			return usagef("--accept: %s", trimPrefix(err.Error()))
		}
		if f.acceptTimeout <= 0 {
			return usagef("--accept-timeout must be positive")
		}
		if f.encoding != "" {
			// Reverse connections speak JSON: there is nothing to offer.
			return usagef("--encoding applies to --agent unix-socket endpoints only (reverse connections use JSON)")
		}
	}

	var (
		conn    *engine.Conn
		release func()
		where   string
		err     error
	)
	if f.agent != "" {
		ep, perr := parseEndpoint(f.agent)
		if perr != nil {
			return perr
		}
		conn, err = dialAgent(ctx, ep, &f.tls, f.encoding, engine.WithConnectTimeout(f.timeout), engine.WithHandshakeTimeout(f.timeout))
		if err != nil {
			return fmt.Errorf("connect to %s: %w", ep, err)
		}
		release = func() { conn.Close() }
		where = ep.String()
	} else {
		if f.tls.set() {
			return usagef("--tls-* flags do not apply to --accept")
		}
		conn, release, where, err = acceptAgent(ctx, f, stderr)
		if err != nil {
			return err
		}
	}
	defer release()

	out := newDecisionPrinter(stdout, f.json)
	if !f.json {
		caps := conn.Capabilities()
		fmt.Fprintf(stdout, "connected to %s: agent %q (%s), %s payloads\n", where, caps.AgentID, strings.TrimSpace(caps.Name+" "+caps.Version), conn.Encoding())
	}
	return probeConn(ctx, conn, f, out)
}

// newCorrelationID returns a random id for one probe request.
func newCorrelationID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "probe-" + hex.EncodeToString(b[:])
}

// probeConn sends the probe's events on conn and prints every decision.
func probeConn(ctx context.Context, conn *engine.Conn, f *probeFlags, out *decisionPrinter) error {
	cid := newCorrelationID()
	call := func(event string, send func(context.Context) (*agentwire.AgentResponse, error)) error {
		cctx, cancel := context.WithTimeout(ctx, f.timeout)
		defer cancel()
		t0 := time.Now()
		r, err := send(cctx)
		lat := time.Since(t0)
		if err != nil {
			return fmt.Errorf("%s: %w", event, err)
		}
		return out.print(event, r, lat)
	}

	rh := agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{
			CorrelationID: cid,
			RequestID:     cid,
			ClientIP:      "127.0.0.1",
			ClientPort:    40000,
			Protocol:      "HTTP/1.1",
			Timestamp:     time.Now().UTC(),
		},
		Method:  f.method,
		URI:     f.uri,
		Headers: agentwire.Headers(f.headers),
	}
	if host := rh.Headers.Get("host"); host != "" {
		rh.Metadata.ServerName = agentwire.Some(host)
	}
	if rh.Headers == nil {
		rh.Headers = agentwire.Headers{}
	}
	if err := call("request_headers", func(ctx context.Context) (*agentwire.AgentResponse, error) {
		return conn.RequestHeaders(ctx, &rh)
	}); err != nil {
		return err
	}

	if f.bodySet {
		body := []byte(f.body)
		chunk := int(conn.Capabilities().Limits.PreferredChunkSize)
		if chunk <= 0 {
			chunk = 64 << 10
		}
		var idx uint32
		for off := 0; ; off += chunk {
			end := min(off+chunk, len(body))
			ev := agentwire.BodyChunk{
				CorrelationID:    cid,
				Data:             body[off:end],
				IsLast:           end == len(body),
				TotalSize:        agentwire.Some(uint64(len(body))),
				ChunkIndex:       idx,
				BytesTransferred: uint64(end),
			}
			if err := call("request_body_chunk", func(ctx context.Context) (*agentwire.AgentResponse, error) {
				return conn.RequestBodyChunk(ctx, &ev)
			}); err != nil {
				return err
			}
			idx++
			if end == len(body) {
				break
			}
		}
	}

	if f.responseStatus > 0 {
		ev := agentwire.ResponseHeadersEvent{CorrelationID: cid, Status: uint16(f.responseStatus), Headers: agentwire.Headers{}}
		if err := call("response_headers", func(ctx context.Context) (*agentwire.AgentResponse, error) {
			return conn.ResponseHeaders(ctx, &ev)
		}); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Output

// decisionLine is the --json shape of one decision; the field order is the
// key order of the contract.
type decisionLine struct {
	Event           string         `json:"event"`
	Decision        string         `json:"decision"`
	Status          *uint16        `json:"status,omitempty"`
	RequestHeaders  []headerOpJSON `json:"request_headers"`
	ResponseHeaders []headerOpJSON `json:"response_headers"`
	LatencyUS       int64          `json:"latency_us"`
}

// headerOpJSON is one header operation; Value is absent for removals.
type headerOpJSON struct {
	Op    string  `json:"op"`
	Name  string  `json:"name"`
	Value *string `json:"value,omitempty"`
}

func headerOpsJSON(ops []agentwire.HeaderOp) []headerOpJSON {
	out := make([]headerOpJSON, 0, len(ops))
	for _, op := range ops {
		j := headerOpJSON{Op: op.Kind.String(), Name: op.Name}
		if op.Kind != agentwire.HeaderRemove {
			v := op.Value
			j.Value = &v
		}
		out = append(out, j)
	}
	return out
}

// decisionPrinter writes decisions as JSON lines or human-readable text.
type decisionPrinter struct {
	w    io.Writer
	json bool
	enc  *json.Encoder
}

func newDecisionPrinter(w io.Writer, asJSON bool) *decisionPrinter {
	p := &decisionPrinter{w: w, json: asJSON}
	if asJSON {
		p.enc = json.NewEncoder(w)
		p.enc.SetEscapeHTML(false)
	}
	return p
}

func (p *decisionPrinter) print(event string, r *agentwire.AgentResponse, lat time.Duration) error {
	d := r.Decision
	if p.json {
		line := decisionLine{
			Event:           event,
			Decision:        d.Kind.String(),
			RequestHeaders:  headerOpsJSON(r.RequestHeaders),
			ResponseHeaders: headerOpsJSON(r.ResponseHeaders),
			LatencyUS:       lat.Microseconds(),
		}
		if d.Kind == agentwire.DecisionBlock || d.Kind == agentwire.DecisionRedirect {
			st := d.Status
			line.Status = &st
		}
		return p.enc.Encode(&line)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s %s", event, d.Kind)
	switch d.Kind {
	case agentwire.DecisionBlock:
		fmt.Fprintf(&b, " %d", d.Status)
		if body, ok := d.Body.Get(); ok {
			fmt.Fprintf(&b, " body=%q", body)
		}
	case agentwire.DecisionRedirect:
		fmt.Fprintf(&b, " %d -> %s", d.Status, d.URL)
	case agentwire.DecisionChallenge:
		fmt.Fprintf(&b, " %s", d.ChallengeType)
	}
	fmt.Fprintf(&b, "  (%s)\n", fmtMicros(lat))
	for _, op := range r.RequestHeaders {
		writeOp(&b, "request header ", op)
	}
	for _, op := range r.ResponseHeaders {
		writeOp(&b, "response header", op)
	}
	if r.NeedsMore {
		b.WriteString("  needs more data\n")
	}
	_, err := io.WriteString(p.w, b.String())
	return err
}

func writeOp(b *strings.Builder, what string, op agentwire.HeaderOp) {
	if op.Kind == agentwire.HeaderRemove {
		fmt.Fprintf(b, "  %s %-6s %s\n", what, op.Kind, op.Name)
		return
	}
	fmt.Fprintf(b, "  %s %-6s %s: %s\n", what, op.Kind, op.Name, op.Value)
}

// fmtMicros formats a latency in µs (ms above 10 ms).
func fmtMicros(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

// errNoAgent is returned when --accept saw no registration in time.
var errNoAgent = errors.New("no agent registered")
