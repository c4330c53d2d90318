package httpguard

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/internal/loopagent"
	"github.com/agentwire/agentwire/internal/payload"
)

// faultTimeout is the agents' timeout in the fault tests, and hangSlack
// what a request may take beyond it (loaded race-detector runs on two
// shared cores) before it counts as hanging.
const (
	faultTimeout = 100 * time.Millisecond
	hangSlack    = 2 * time.Second
)

// loadResult is what a load run saw.
type loadResult struct {
	mu       sync.Mutex
	statuses map[int]int
	errs     []error
	slowest  time.Duration
	n        atomic.Int64
	byStatus [600]atomic.Int64
}

// runLoad sends GET requests from conc goroutines until stop is closed
// and records every answer.
func runLoad(t *testing.T, c *http.Client, url string, conc int, stop <-chan struct{}) (*loadResult, func()) {
	res := &loadResult{statuses: map[int]int{}}
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				req, _ := http.NewRequest("GET", url, nil)
				r, err := c.Do(req)
				d := time.Since(start)
				res.mu.Lock()
				res.slowest = max(res.slowest, d)
				if err != nil {
					res.errs = append(res.errs, err)
					res.mu.Unlock()
					continue
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				res.statuses[r.StatusCode]++

				res.mu.Unlock()
				res.n.Add(1)
				if r.StatusCode < 600 {
					res.byStatus[r.StatusCode].Add(1)
				}
			}
		})
	}
	return res, wg.Wait
}

// waitCount waits until f() reaches n (the load runs meanwhile).
func waitCount(t *testing.T, what string, n int64, f func() int64) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for f() < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (%d of %d)", what, f(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGuardFaultsUnderLoad: an agent killed, hung, slow or restarting
// while HTTP requests flow: every request gets the failure policy's
// answer (fail-closed 503 or 504, fail-open the upstream's 200), none
// hangs past the timeout, none gets a 502 or a transport error, and a
// restarted agent serves again without touching the guard.
func TestGuardFaultsUnderLoad(t *testing.T) {
	for _, fault := range []string{"killed", "hung", "slow", "restarting"} {
		for _, mode := range []engine.FailureMode{engine.FailClosed, engine.FailOpen} {
			t.Run(fmt.Sprint(fault, "-", mode), func(t *testing.T) { testFault(t, fault, mode) })
		}
	}
}

func testFault(t *testing.T, fault string, mode engine.FailureMode) {
	var state atomic.Int32 // 0 healthy, 1 hung, 2 slow
	hang := make(chan struct{})
	defer close(hang)
	h := agent.Funcs{RequestHeaders: func(ctx context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		switch state.Load() {
		case 1:
			select {
			case <-hang:
			case <-ctx.Done():
			}
		case 2:
			select {
			case <-time.After(3 * faultTimeout):
			case <-ctx.Done():
			}
		}
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"})
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders),
		pool.WithTimeout(faultTimeout), pool.WithFailurePolicy(engine.FailurePolicy{Mode: mode}),
		pool.WithBreaker(pool.BreakerConfig{OpenDuration: 50 * time.Millisecond})))
	var processed atomic.Int64
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Agent-Processed") == "true" {
			processed.Add(1)
		}
		io.WriteString(w, "ok")
	}))
	_, srv := newGuard(t, reverseProxy(t, up.URL), pl)
	stop := make(chan struct{})
	res, wait := runLoad(t, newClient(t), srv.URL+"/", 8, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wait()
		}
	}()
	policy := http.StatusOK
	if mode == engine.FailClosed {
		policy = http.StatusServiceUnavailable
		if fault == "hung" || fault == "slow" {
			policy = http.StatusGatewayTimeout
		}
	}
	waitCount(t, "requests through the healthy agent", 50, processed.Load)
	before := res.n.Load()
	switch fault {
	case "killed", "restarting":
		ag.Stop()
	case "hung":
		state.Store(1)
	case "slow":
		state.Store(2)
	}
	if policy == http.StatusOK {
		waitCount(t, "requests answered during the fault", before+50, res.n.Load)
	} else {
		waitCount(t, "policy answers", 20, res.byStatus[policy].Load)
	}
	if fault == "restarting" {
		ag.Start()
		if err := as[0].WaitReady(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		n := processed.Load()
		waitCount(t, "requests through the restarted agent", n+50, processed.Load)
	}
	close(stop)
	wait()
	res.mu.Lock()
	defer res.mu.Unlock()
	if len(res.errs) > 0 {
		t.Fatalf("%d requests failed, first: %v", len(res.errs), res.errs[0])
	}
	for st, n := range res.statuses {
		ok := st == http.StatusOK
		if mode == engine.FailClosed {
			// The breaker may open on timeouts: its refusal is a 503.
			ok = ok || st == policy || (policy == http.StatusGatewayTimeout && st == http.StatusServiceUnavailable)
		}
		if !ok {
			t.Errorf("%d requests answered %d", n, st)
		}
	}
	if res.slowest > faultTimeout+hangSlack {
		t.Errorf("the slowest request took %v (timeout %v)", res.slowest, faultTimeout)
	}
	t.Logf("%v, slowest %v", res.statuses, res.slowest)
}

// startGarbageAgent runs a Unix-socket peer that answers the handshake
// properly and then every event with junk: reply frames that do not
// decode ("reply") or a frame length of zero, which breaks the framing
// ("framing").
func startGarbageAgent(t *testing.T, kind string) string {
	t.Helper()
	return "unix://" + loopagent.Listen(t, func(nc net.Conn) { serveGarbage(nc, kind) })
}

func serveGarbage(nc net.Conn, kind string) {
	defer nc.Close()
	rd := frame.NewReader(nc, 0)
	defer rd.Release()
	typ, p, err := rd.ReadFrame()
	if err != nil || typ != frame.TypeHandshakeRequest {
		return
	}
	var hs agentwire.HandshakeRequest
	if payload.DecodeHandshakeRequestJSON(p, &hs) != nil {
		return
	}
	caps := agentwire.Capabilities{AgentID: "junk", Name: "junk", Version: "1", SupportedEvents: []int32{0, 1, 2, 3, 4, 5, 6, 7},
		Features: agentwire.FullFeatures(), Limits: agentwire.DefaultLimits()}
	resp := agentwire.HandshakeResponse{ProtocolVersion: 2, Capabilities: caps, Success: true, Encoding: agentwire.EncodingJSON}
	b, _ := frame.AppendFrame(nil, frame.TypeHandshakeResponse, payload.AppendHandshakeResponseJSON(nil, &resp))
	if _, err := nc.Write(b); err != nil {
		return
	}
	for {
		if _, _, err := rd.ReadFrame(); err != nil {
			return
		}
		var junk []byte
		switch kind {
		case "reply":
			junk, _ = frame.AppendFrame(nil, frame.TypeAgentResponse, []byte(`{"decision": [}}} not json`))
		default:
			junk = []byte{0, 0, 0, 0, 0x20, 0xde, 0xad}
		}
		if _, err := nc.Write(junk); err != nil {
			return
		}
	}
}

// TestGuardGarbageAgent: an agent that completes the handshake and then
// answers junk gets its failure policy's answer for every request, in
// time: a reply that does not decode (the call times out: 504, or the
// breaker's 503 once it opened), a broken frame (the connection is lost:
// 503); fail-open passes.
func TestGuardGarbageAgent(t *testing.T) {
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	c := newClient(t)
	for _, kind := range []string{"reply", "framing"} {
		for _, mode := range []engine.FailureMode{engine.FailClosed, engine.FailOpen} {
			t.Run(fmt.Sprint(kind, "-", mode), func(t *testing.T) {
				ep := startGarbageAgent(t, kind)
				_, pl, _ := newPipeline(t, false, agentOpts(ep, pool.WithTimeout(faultTimeout), pool.WithFailurePolicy(engine.FailurePolicy{Mode: mode})))
				_, srv := newGuard(t, reverseProxy(t, up.URL), pl)
				for i := range 20 {
					start := time.Now()
					st, body, _ := do(t, c, mustReq(t, "GET", srv.URL+"/", nil))
					if d := time.Since(start); d > faultTimeout+hangSlack {
						t.Fatalf("request %d took %v", i, d)
					}
					switch {
					case mode == engine.FailOpen && (st != 200 || body != "ok"),
						mode == engine.FailClosed && st != 503 && st != 504:
						t.Fatalf("request %d: %d %q", i, st, body)
					}
				}
			})
		}
	}
}

// TestGuardConcurrentRequests: 1,000 concurrent HTTP requests (half with
// a streamed body) through a guard and a reverse proxy, under -race: each
// is answered exactly once with its own answer, the upstream sees each
// once, and the agent gets each request's headers and its
// request-complete event once.
func TestGuardConcurrentRequests(t *testing.T) {
	const n = 1000
	var mu sync.Mutex
	heads := map[string]int{}
	completes := map[string]int{}
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			mu.Lock()
			heads[ev.Metadata.CorrelationID]++
			mu.Unlock()
			r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-cid", Value: ev.Metadata.CorrelationID})
			return nil
		},
		RequestComplete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) error {
			mu.Lock()
			completes[ev.CorrelationID]++
			mu.Unlock()
			return nil
		},
	}
	ag := startUDSAgent(t, h)
	// The test is about answering each request once, not about the
	// agent keeping up on a loaded race-detector run: a generous timeout,
	// no breaker.
	_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithConcurrency(2*n, 0), pool.WithTimeout(testTimeout),
		pool.WithBreaker(pool.BreakerConfig{Disabled: true})))
	var upMu sync.Mutex
	seen := map[string]int{}
	up := newTestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		id := r.URL.Query().Get("id")
		upMu.Lock()
		seen[id]++
		upMu.Unlock()
		w.Header().Set("X-Cid", r.Header.Get("X-Cid"))
		fmt.Fprintf(w, "%s:%s", id, b)
	}))
	g, srv := newGuard(t, reverseProxy(t, up.URL), pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{Mode: ModeStream}))
	c := newClient(t)
	var wg sync.WaitGroup
	answers := make([]int, n)
	cids := make([]string, n)
	for i := range n {
		wg.Go(func() {
			var body io.Reader
			method := "GET"
			if i%2 == 1 {
				method, body = "POST", strings.NewReader(fmt.Sprint("body", i))
			}
			req, _ := http.NewRequest(method, fmt.Sprintf("%s/?id=%d", srv.URL, i), body)
			res, err := c.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			answers[i]++
			want := fmt.Sprintf("%d:", i)
			if i%2 == 1 {
				want += fmt.Sprint("body", i)
			}
			if res.StatusCode != 200 || string(b) != want {
				t.Errorf("request %d: %d %q", i, res.StatusCode, b)
			}
			cids[i] = res.Header.Get("X-Cid")
		})
	}
	wg.Wait()
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	upMu.Lock()
	defer upMu.Unlock()
	for i := range n {
		id := fmt.Sprint(i)
		if answers[i] != 1 || seen[id] != 1 || heads[cids[i]] != 1 || completes[cids[i]] != 1 {
			t.Fatalf("request %d: answered %d, upstream %d, headers %d, complete %d (cid %q)", i, answers[i], seen[id], heads[cids[i]], completes[cids[i]], cids[i])
		}
	}
	if len(heads) != n || len(completes) != n {
		t.Fatalf("%d request-headers events, %d request-complete, want %d", len(heads), len(completes), n)
	}
}
