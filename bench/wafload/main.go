// Command wafload drives the WAF corpus (internal/wafcorpus) through one
// of three paths at a fixed number of requests in flight and prints the
// throughput, latency and CPU of the run (bench.Result), one JSON object
// with --json:
//
//	--mode agent --agent ENDPOINT   the engine sends each request (headers,
//	                                then its body while the agent answers
//	                                needs_more) to a WAF agent, e.g.
//	                                agentwire serve --agent waf
//	--mode inprocess                Coraza's net/http middleware evaluates
//	                                each request in this process, with the
//	                                rules the agent uses (waf.CorazaConfig),
//	                                parsed from its HTTP/1.1 bytes, with a
//	                                handler that answers 200 "ok" (the
//	                                middleware also runs the response phases)
//	--mode direct                   the WAF agent's handler (waf.Agent) is
//	                                called in this process with the events
//	                                the agent mode sends: the agent's own
//	                                work without the transport
//	--mode http --url URL           each request is sent over HTTP/1.1 to
//	                                URL (a gateway), one connection per
//	                                worker; a 403 counts as blocked
//
// bench/waf.sh runs the comparisons. Every mode counts the requests that
// were blocked, so a run that inspects nothing shows.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corazawaf/coraza/v3"
	corazahttp "github.com/corazawaf/coraza/v3/http"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent/waf"
	"github.com/agentwire/agentwire/bench"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/wafcorpus"
)

type flags struct {
	mode, agent, url, encoding, mix string
	concurrency, conns, paranoia    int
	duration, warmup                time.Duration
	agentPID                        int
	jsonOut                         bool
}

func main() {
	var f flags
	fs := flag.NewFlagSet("wafload", flag.ContinueOnError)
	fs.StringVar(&f.mode, "mode", "agent", "agent, inprocess, direct or http")
	fs.StringVar(&f.agent, "agent", "", "agent endpoint (--mode agent)")
	fs.StringVar(&f.url, "url", "", "base URL of the gateway (--mode http)")
	fs.StringVar(&f.encoding, "encoding", "msgpack", "Unix-socket payload encoding (--mode agent): json or msgpack")
	fs.StringVar(&f.mix, "mix", "all", "corpus requests to send: all, or benign (the cheapest for the rules: the agent's overhead weighs most)")
	fs.IntVar(&f.concurrency, "concurrency", 64, "requests in flight")
	fs.IntVar(&f.conns, "conns", 1, "engine connections (--mode agent)")
	fs.IntVar(&f.paranoia, "paranoia", 1, "CRS paranoia level (--mode inprocess and direct; match the agent's)")
	fs.DurationVar(&f.duration, "duration", 10*time.Second, "measured time")
	fs.DurationVar(&f.warmup, "warmup", 2*time.Second, "unmeasured time before it")
	fs.IntVar(&f.agentPID, "agent-pid", 0, "pid of the agent process, to report its CPU per request (--mode agent)")
	fs.BoolVar(&f.jsonOut, "json", false, "print one JSON object")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, &f); err != nil {
		fmt.Fprintln(os.Stderr, "wafload:", err)
		os.Exit(1)
	}
}

// corpus returns the requests of the mix.
func corpus(mix string) ([]wafcorpus.Request, error) {
	switch mix {
	case "all":
		return wafcorpus.All, nil
	case "benign":
		var out []wafcorpus.Request
		for _, r := range wafcorpus.All {
			if r.Family == wafcorpus.Benign {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return nil, fmt.Errorf("--mix %q: want all or benign", mix)
}

func run(ctx context.Context, f *flags) error {
	reqs, err := corpus(f.mix)
	if err != nil {
		return err
	}
	if f.concurrency < 1 || f.conns < 1 {
		return errors.New("--concurrency and --conns must be at least 1")
	}
	var blocked atomic.Int64
	var rt bench.RoundTrip
	cfg := bench.Config{Concurrency: f.concurrency, Duration: f.duration, Warmup: f.warmup}
	switch f.mode {
	case "agent":
		if f.agent == "" {
			return errors.New("--mode agent needs --agent")
		}
		var opts []engine.Option
		if strings.HasPrefix(f.agent, "unix:") || strings.HasPrefix(f.agent, "/") {
			opts = append(opts, engine.WithEncodings(f.encoding, agentwire.EncodingJSON))
		} else {
			opts = append(opts, engine.WithInsecure())
		}
		conns := make([]*engine.Conn, f.conns)
		for i := range conns {
			c, err := engine.Dial(ctx, f.agent, opts...)
			if err != nil {
				return err
			}
			defer c.Close()
			conns[i] = c
		}
		cfg.AgentPID = f.agentPID
		rt = agentRoundTrip(conns, reqs, f.concurrency, &blocked)
	case "inprocess":
		wc, err := waf.CorazaConfig(waf.WithParanoia(f.paranoia))
		if err != nil {
			return err
		}
		w, err := coraza.NewWAF(wc)
		if err != nil {
			return err
		}
		h := corazahttp.WrapHandler(w, http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			_, _ = rw.Write([]byte("ok"))
		}))
		rt = func(_ context.Context, worker int, seq uint64) error {
			req, err := reqs[pick(worker, seq, len(reqs))].HTTPRequest()
			if err != nil {
				return err
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code == http.StatusForbidden {
				blocked.Add(1)
			}
			return nil
		}
	case "direct":
		a, err := waf.New(waf.WithParanoia(f.paranoia))
		if err != nil {
			return err
		}
		defer a.Close()
		rt = directRoundTrip(a, reqs, f.concurrency, &blocked)
	case "http":
		if f.url == "" {
			return errors.New("--mode http needs --url")
		}
		rt = httpRoundTrip(strings.TrimSuffix(f.url, "/"), reqs, f.concurrency, &blocked)
	default:
		return fmt.Errorf("--mode %q: want agent, inprocess, direct or http", f.mode)
	}
	res, err := bench.Run(ctx, cfg, rt)
	if err != nil {
		return err
	}
	out := struct {
		Mode    string `json:"mode"`
		Mix     string `json:"mix"`
		Blocked int64  `json:"blocked"`
		bench.Result
	}{f.mode, f.mix, blocked.Load(), res}
	if f.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(out)
	}
	fmt.Printf("%s %s: %s blocked=%d\n", f.mode, f.mix, res, out.Blocked)
	return nil
}

// pick spreads the workers over the corpus.
func pick(worker int, seq uint64, n int) int { return int((uint64(worker)*7 + seq) % uint64(n)) }

// agentRoundTrip sends one corpus request through the engine as a proxy
// does: its headers, then while the agent answers needs_more its body (in
// one chunk: the corpus bodies are small).
func agentRoundTrip(conns []*engine.Conn, reqs []wafcorpus.Request, workers int, blocked *atomic.Int64) bench.RoundTrip {
	// Per worker: its own copy of every event (the engine reads an event
	// until its call returns) and a reply to decode into.
	type state struct {
		evs  []agentwire.RequestHeadersEvent
		resp agentwire.AgentResponse
		id   []byte
	}
	st := make([]state, workers)
	for w := range st {
		st[w].evs = make([]agentwire.RequestHeadersEvent, len(reqs))
		for i := range reqs {
			st[w].evs[i] = reqs[i].Event("")
		}
	}
	return func(ctx context.Context, worker int, seq uint64) error {
		s := &st[worker]
		c := conns[worker%len(conns)]
		i := pick(worker, seq, len(reqs))
		cid := string(bench.AppendID(s.id[:0], worker, seq))
		ev := &s.evs[i]
		ev.Metadata.CorrelationID, ev.Metadata.RequestID = cid, cid
		if err := c.RequestHeadersInto(ctx, ev, &s.resp); err != nil {
			return err
		}
		resp := &s.resp
		if resp.NeedsMore {
			body := []byte(reqs[i].Body)
			r, err := c.RequestBodyChunk(ctx, &agentwire.BodyChunk{
				CorrelationID: cid, Data: body, IsLast: true,
				TotalSize: agentwire.Some(uint64(len(body))), BytesTransferred: uint64(len(body)),
			})
			if err != nil {
				return err
			}
			resp = r
		}
		if resp.Decision.Kind == agentwire.DecisionBlock && resp.Decision.Status == http.StatusForbidden {
			blocked.Add(1)
		}
		return nil
	}
}

// directRoundTrip calls the agent's handler methods with the events
// agentRoundTrip sends, as the agent server would.
func directRoundTrip(a *waf.Agent, reqs []wafcorpus.Request, workers int, blocked *atomic.Int64) bench.RoundTrip {
	type state struct {
		evs  []agentwire.RequestHeadersEvent
		resp agentwire.AgentResponse
		id   []byte
	}
	st := make([]state, workers)
	for w := range st {
		st[w].evs = make([]agentwire.RequestHeadersEvent, len(reqs))
		for i := range reqs {
			st[w].evs[i] = reqs[i].Event("")
		}
	}
	return func(ctx context.Context, worker int, seq uint64) error {
		s := &st[worker]
		i := pick(worker, seq, len(reqs))
		cid := string(bench.AppendID(s.id[:0], worker, seq))
		ev := &s.evs[i]
		ev.Metadata.CorrelationID, ev.Metadata.RequestID = cid, cid
		s.resp.Reset()
		s.resp.CorrelationID = cid
		if err := a.OnRequestHeaders(ctx, ev, &s.resp); err != nil {
			return err
		}
		if s.resp.NeedsMore {
			body := []byte(reqs[i].Body)
			s.resp.Reset()
			s.resp.CorrelationID = cid
			if err := a.OnRequestBodyChunk(ctx, &agentwire.BodyChunk{
				CorrelationID: cid, Data: body, IsLast: true,
				TotalSize: agentwire.Some(uint64(len(body))), BytesTransferred: uint64(len(body)),
			}, &s.resp); err != nil {
				return err
			}
		}
		if s.resp.Decision.Kind == agentwire.DecisionBlock && s.resp.Decision.Status == http.StatusForbidden {
			blocked.Add(1)
		}
		return nil
	}
}

// httpRoundTrip sends one corpus request to the gateway at base. Each
// worker keeps one connection.
func httpRoundTrip(base string, reqs []wafcorpus.Request, workers int, blocked *atomic.Int64) bench.RoundTrip {
	clients := make([]*http.Client, workers)
	for w := range clients {
		clients[w] = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, MaxConnsPerHost: 1, DisableCompression: true}}
	}
	return func(ctx context.Context, worker int, seq uint64) error {
		r := &reqs[pick(worker, seq, len(reqs))]
		var body io.Reader
		if r.Body != "" || r.Method == http.MethodPost {
			body = bytes.NewReader([]byte(r.Body))
		}
		req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Target, body)
		if err != nil {
			return err
		}
		for _, h := range r.Header {
			if strings.EqualFold(h[0], "host") {
				req.Host = h[1]
				continue
			}
			req.Header.Add(h[0], h[1])
		}
		resp, err := clients[worker].Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusForbidden {
			blocked.Add(1)
		}
		return nil
	}
}
