// Command wafload drives the WAF corpus (internal/wafcorpus) through one
// of four paths with a fixed number of requests in flight and prints the
// throughput, latency and CPU of the run, one JSON object with --json:
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
//	--mode targets --url URL        prints the mix as vegeta targets for
//	                                URL (its JSON format, one per line)
//	                                and exits: what bench/waf.sh gateway
//	                                sends to the two gateways
//
// The mixes: all (the corpus), benign (its benign requests: the cheapest
// for the rules, so the agent's overhead weighs most), and gateway (a
// realistic benign mix with some attacks: every benign request
// gatewayBenignWeight times and every other entry once, in a fixed
// shuffled order; about 82% benign, 18% of the corpus's attacks).
//
// The work is fixed, not the time: after a warm-up, each of the
// --concurrency workers sends the whole corpus --cycles times (starting at
// a different entry), so every mode completes exactly the same mix of
// requests. (A run measured over a time window completes a mix biased
// towards whatever is cheap on that path: the corpus's requests cost from
// half a millisecond to tens of milliseconds of rules each.) Throughput is
// requests / wall time; CPU per request is this process's, plus the agent
// process's with --agent-pid. bench/waf.sh runs the comparisons. Every
// mode counts the requests that were blocked, so a run that inspects
// nothing shows.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
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
	cycles, warm                    int
	duration                        time.Duration
	agentPID                        int
	jsonOut                         bool
}

func main() {
	var f flags
	fs := flag.NewFlagSet("wafload", flag.ContinueOnError)
	fs.StringVar(&f.mode, "mode", "agent", "agent, inprocess, direct, http or targets")
	fs.StringVar(&f.agent, "agent", "", "agent endpoint (--mode agent)")
	fs.StringVar(&f.url, "url", "", "base URL of the gateway (--mode http)")
	fs.StringVar(&f.encoding, "encoding", "msgpack", "Unix-socket payload encoding (--mode agent): json or msgpack")
	fs.StringVar(&f.mix, "mix", "all", "corpus requests to send: all, benign (the cheapest for the rules: the agent's overhead weighs most) or gateway (benign with some attacks)")
	fs.IntVar(&f.concurrency, "concurrency", 64, "requests in flight")
	fs.IntVar(&f.conns, "conns", 1, "engine connections (--mode agent)")
	fs.IntVar(&f.paranoia, "paranoia", 1, "CRS paranoia level (--mode inprocess and direct; match the agent's)")
	fs.IntVar(&f.cycles, "cycles", 2, "times each worker sends the whole corpus (measured)")
	fs.IntVar(&f.warm, "warm", 8, "requests each worker sends before the measurement")
	fs.DurationVar(&f.duration, "duration", 0, "when set, run for this long instead of --cycles (for soaks; the mix is then only about even)")
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
	case "gateway":
		var out []wafcorpus.Request
		for _, r := range wafcorpus.All {
			n := 1
			if r.Family == wafcorpus.Benign {
				n = gatewayBenignWeight
			}
			for range n {
				out = append(out, r)
			}
		}
		rng := rand.New(rand.NewPCG(16, 16))
		rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out, nil
	}
	return nil, fmt.Errorf("--mix %q: want all, benign or gateway", mix)
}

// gatewayBenignWeight is how many times the gateway mix holds each benign
// corpus request (each other entry is there once).
const gatewayBenignWeight = 10

// writeTargets prints reqs as vegeta targets (vegeta attack -format=json)
// for the gateway at base: method, URL, headers (Host among them: vegeta
// sends it as the request's host) and body, with Content-Length for a body
// as the corpus sends it.
func writeTargets(w io.Writer, base string, reqs []wafcorpus.Request) error {
	type target struct {
		Method string              `json:"method"`
		URL    string              `json:"url"`
		Body   []byte              `json:"body,omitempty"`
		Header map[string][]string `json:"header,omitempty"`
	}
	enc := json.NewEncoder(w)
	for _, r := range reqs {
		t := target{Method: r.Method, URL: base + r.Target, Header: map[string][]string{}}
		if r.Body != "" {
			t.Body = []byte(r.Body)
		}
		for _, h := range r.Header {
			k := http.CanonicalHeaderKey(h[0])
			t.Header[k] = append(t.Header[k], h[1])
		}
		if err := enc.Encode(&t); err != nil {
			return err
		}
	}
	return nil
}

func run(ctx context.Context, f *flags) error {
	reqs, err := corpus(f.mix)
	if err != nil {
		return err
	}
	if f.concurrency < 1 || f.conns < 1 || f.cycles < 1 || f.warm < 0 {
		return errors.New("--concurrency, --conns and --cycles must be at least 1, --warm at least 0")
	}
	var blocked atomic.Int64
	var rt bench.RoundTrip
	switch f.mode {
	case "targets":
		if f.url == "" {
			return errors.New("--mode targets needs --url")
		}
		return writeTargets(os.Stdout, strings.TrimSuffix(f.url, "/"), reqs)
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
		return fmt.Errorf("--mode %q: want agent, inprocess, direct, http or targets", f.mode)
	}
	res, err := runCycles(ctx, f, len(reqs), rt, &blocked)
	if err != nil {
		return err
	}
	if f.jsonOut {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Printf("%s %s: c=%d requests=%d rps=%.0f p50=%.0fµs p90=%.0fµs p99=%.0fµs cpu/req=%.0fµs agent_cpu/req=%.0fµs blocked=%d errors=%d\n",
		res.Mode, res.Mix, res.Concurrency, res.Requests, res.RequestsPerSec, res.P50us, res.P90us, res.P99us,
		res.CPUusPerRequest, res.AgentCPUusPerRequest, res.Blocked, res.Errors)
	return nil
}

// result is what one run measured.
type result struct {
	Mode                 string  `json:"mode"`
	Mix                  string  `json:"mix"`
	Concurrency          int     `json:"concurrency"`
	Requests             int64   `json:"requests"`
	Blocked              int64   `json:"blocked"`
	Errors               int64   `json:"errors"`
	Seconds              float64 `json:"seconds"`
	RequestsPerSec       float64 `json:"requests_per_sec"`
	P50us                float64 `json:"p50_us"`
	P90us                float64 `json:"p90_us"`
	P99us                float64 `json:"p99_us"`
	CPUusPerRequest      float64 `json:"cpu_us_per_request"`
	AgentCPUusPerRequest float64 `json:"agent_cpu_us_per_request,omitempty"`
	FirstError           string  `json:"first_error,omitempty"`
}

// runCycles runs f.concurrency workers: each sends f.warm requests, waits
// for the others, then sends the corpus (n requests) f.cycles times from
// its own starting entry (rt's seq picks the entry: pick(worker, seq, n)
// visits every entry once per n consecutive seqs), or, with f.duration,
// until that time has passed. The measurement runs from the common start to
// the end of the last worker.
func runCycles(ctx context.Context, f *flags, n int, rt bench.RoundTrip, blocked *atomic.Int64) (result, error) {
	res := result{Mode: f.mode, Mix: f.mix, Concurrency: f.concurrency}
	cpu := func(pid int) time.Duration {
		d, _ := bench.ProcessCPU(pid)
		return d
	}
	var (
		warmed, finished sync.WaitGroup
		start            = make(chan struct{})
		errs             atomic.Int64
		firstErr         atomic.Pointer[string]
		deadline         atomic.Int64 // unix ns; 0: none (--cycles)
	)
	hists := make([]*hdrhistogram.Histogram, f.concurrency)
	for w := range hists {
		hists[w] = hdrhistogram.New(1, 600_000_000, 2)
	}
	warmed.Add(f.concurrency)
	finished.Add(f.concurrency)
	for w := range f.concurrency {
		go func() {
			defer finished.Done()
			seq := uint64(0)
			for ; seq < uint64(f.warm); seq++ {
				_ = rt(ctx, w, seq)
			}
			warmed.Done()
			<-start
			seq = uint64(n) * ((seq + uint64(n) - 1) / uint64(n)) // a cycle boundary: the measured entries are whole cycles
			end := seq + uint64(f.cycles*n)
			if f.duration > 0 {
				end = ^uint64(0)
			}
			for ; seq < end && ctx.Err() == nil; seq++ {
				if d := deadline.Load(); d != 0 && time.Now().UnixNano() >= d {
					break
				}
				t0 := time.Now()
				if err := rt(ctx, w, seq); err != nil {
					if errs.Add(1) == 1 {
						s := err.Error()
						firstErr.Store(&s)
					}
					continue
				}
				_ = hists[w].RecordValue(time.Since(t0).Microseconds())
			}
		}()
	}
	warmed.Wait()
	blocked.Store(0)
	self := os.Getpid()
	cpu0, agent0 := cpu(self), time.Duration(0)
	if f.agentPID > 0 {
		agent0 = cpu(f.agentPID)
	}
	t0 := time.Now()
	if f.duration > 0 {
		deadline.Store(t0.Add(f.duration).UnixNano())
	}
	close(start)
	finished.Wait()
	el := time.Since(t0)
	cpu1 := cpu(self)
	total := hdrhistogram.New(1, 600_000_000, 2)
	for _, h := range hists {
		total.Merge(h)
	}
	res.Requests = total.TotalCount()
	res.Errors = errs.Load()
	res.Blocked = blocked.Load()
	res.Seconds = el.Seconds()
	if p := firstErr.Load(); p != nil {
		res.FirstError = *p
	}
	if res.Requests == 0 {
		return res, errors.New("no request completed")
	}
	res.RequestsPerSec = float64(res.Requests) / el.Seconds()
	res.P50us = float64(total.ValueAtQuantile(50))
	res.P90us = float64(total.ValueAtQuantile(90))
	res.P99us = float64(total.ValueAtQuantile(99))
	res.CPUusPerRequest = float64((cpu1 - cpu0).Microseconds()) / float64(res.Requests)
	if f.agentPID > 0 {
		res.AgentCPUusPerRequest = float64((cpu(f.agentPID) - agent0).Microseconds()) / float64(res.Requests)
	}
	return res, ctx.Err()
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
