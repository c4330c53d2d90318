package httpguard

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// TestGuardRequestHeadersDecisions: every decision of the request-headers
// phase is enforced as the issue asks: block with the agent's status,
// body and headers; redirect with its status and Location (the Rust proxy
// answers 500); challenge as 401 with WWW-Authenticate (the Rust proxy
// lets it through); allow with the request-header operations applied to
// the request the handler sees and the response-header operations applied
// to the response (the Rust proxy drops those). The handler never runs for
// a stopped request. The event carries the request as the client sent it.
func TestGuardRequestHeadersDecisions(t *testing.T) {
	var seen atomic.Pointer[agentwire.RequestHeadersEvent]
	h := agent.Funcs{RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		switch {
		case strings.HasPrefix(ev.URI, "/admin"):
			r.Decision = agentwire.Decision{Kind: agentwire.DecisionBlock, Status: 451, Body: agentwire.Some("nope"), BlockHeaders: map[string]string{"x-why": "policy"}}
		case strings.HasPrefix(ev.URI, "/old"):
			r.Decision = agentwire.Redirect("https://example.com/new", 301)
		case strings.HasPrefix(ev.URI, "/chal"):
			r.Decision = agentwire.Challenge("captcha", map[string]string{"site_key": "k"})
		default:
			c := *ev
			c.Headers = nil
			for _, hd := range ev.Headers {
				c.Headers = append(c.Headers, agentwire.Header{Name: hd.Name, Values: append([]string(nil), hd.Values...)})
			}
			seen.Store(&c)
			r.RequestHeaders = append(r.RequestHeaders,
				agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-user", Value: "alice"},
				agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "authorization"})
			r.ResponseHeaders = append(r.ResponseHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-frame-options", Value: "DENY"})
		}
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders)))
	var calls atomic.Int64
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Set("X-Seen-User", r.Header.Get("X-User"))
		w.Header().Set("X-Seen-Auth", r.Header.Get("Authorization"))
		io.WriteString(w, "app")
	})
	_, srv := newGuard(t, app, pl)
	c := newClient(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	req := mustReq(t, "GET", srv.URL+"/x?q=1", nil)
	req.Header.Set("Authorization", "Bearer s")
	req.Header.Add("X-Multi", "1")
	req.Header.Add("X-Multi", "2")
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	st, body, res := do(t, c, req)
	if st != 200 || body != "app" || res.Header.Get("X-Seen-User") != "alice" || res.Header.Get("X-Seen-Auth") != "" || res.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("allow: %d %q %v", st, body, res.Header)
	}
	ev := seen.Load()
	if ev.Method != "GET" || ev.URI != "/x?q=1" || strings.Join(ev.Headers.Values("x-multi"), ",") != "1,2" || ev.Metadata.ClientIP != "127.0.0.1" ||
		ev.Metadata.ClientPort == 0 || ev.Metadata.Traceparent == "" || ev.Metadata.Protocol != "HTTP/1.1" {
		t.Fatalf("event %+v", ev)
	}

	st, body, res = do(t, c, mustReq(t, "GET", srv.URL+"/admin", nil))
	if st != 451 || body != "nope" || res.Header.Get("X-Why") != "policy" {
		t.Fatalf("block: %d %q %v", st, body, res.Header)
	}
	st, _, res = do(t, c, mustReq(t, "GET", srv.URL+"/old", nil))
	if st != 301 || res.Header.Get("Location") != "https://example.com/new" {
		t.Fatalf("redirect: %d %v", st, res.Header)
	}
	st, _, res = do(t, c, mustReq(t, "GET", srv.URL+"/chal", nil))
	if st != 401 || res.Header.Get("Www-Authenticate") != `captcha site_key="k"` {
		t.Fatalf("challenge: %d %v", st, res.Header)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1 (stopped requests must not reach it)", n)
	}
}

// TestGuardFailurePolicy: an agent that is down answers the failure
// policy (fail-closed 503, fail-open passes), one that times out 504, in
// the request-headers and in the response-headers phase (where the Rust
// proxy always fails open, REFERENCE-DEFECTS B-X6).
func TestGuardFailurePolicy(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	slow := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			if ev.URI == "/slow" {
				<-hang
			}
			return nil
		},
		ResponseHeaders: func(_ context.Context, ev *agentwire.ResponseHeadersEvent, _ *agentwire.AgentResponse) error {
			if ev.Status == 299 {
				<-hang
			}
			return nil
		},
	}
	ag := startUDSAgent(t, slow)
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/resp-slow" {
			w.WriteHeader(299)
		}
		io.WriteString(w, "app")
	})
	events := pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventResponseHeaders)
	c := newClient(t)
	for _, tc := range []struct {
		name string
		mode engine.FailureMode
		path string
		want int
	}{
		{"closed-timeout", engine.FailClosed, "/slow", 504},
		{"open-timeout", engine.FailOpen, "/slow", 200},
		{"closed-response-timeout", engine.FailClosed, "/resp-slow", 504},
		{"open-response-timeout", engine.FailOpen, "/resp-slow", 299},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), events, pool.WithTimeout(50*time.Millisecond),
				pool.WithFailurePolicy(engine.FailurePolicy{Mode: tc.mode}), pool.WithBreaker(pool.BreakerConfig{Disabled: true})))
			_, srv := newGuard(t, app, pl)
			if st, _, _ := do(t, c, mustReq(t, "GET", srv.URL+tc.path, nil)); st != tc.want {
				t.Fatalf("%s: %d, want %d", tc.path, st, tc.want)
			}
		})
	}
	down := sockPath(t) // nobody listens
	for _, tc := range []struct {
		mode engine.FailureMode
		want int
	}{{engine.FailClosed, 503}, {engine.FailOpen, 200}} {
		_, pl, _ := newPipeline(t, false, agentOpts("unix://"+down, pool.WithFailurePolicy(engine.FailurePolicy{Mode: tc.mode})))
		_, srv := newGuard(t, app, pl)
		if st, body, _ := do(t, c, mustReq(t, "GET", srv.URL+"/x", nil)); st != tc.want || (st == 503 && strings.Contains(body, "unix")) {
			t.Fatalf("agent down, %v: %d %q", tc.mode, st, body)
		}
	}
}

// TestGuardResponseHeaders: agents see the handler's status and headers
// before the client does; their operations are applied; their block
// replaces the response (the Rust proxy ignores it).
func TestGuardResponseHeaders(t *testing.T) {
	rec := newRecorder()
	h := agent.Funcs{ResponseHeaders: func(_ context.Context, ev *agentwire.ResponseHeadersEvent, r *agentwire.AgentResponse) error {
		rec.mu.Lock()
		rec.rheads = append(rec.rheads, *ev)
		rec.mu.Unlock()
		if ev.Status == 500 {
			r.Decision = agentwire.Block(502)
			return nil
		}
		r.ResponseHeaders = append(r.ResponseHeaders,
			agentwire.HeaderOp{Kind: agentwire.HeaderRemove, Name: "server"},
			agentwire.HeaderOp{Kind: agentwire.HeaderAdd, Name: "x-checked", Value: "1"})
		return nil
	}}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventResponseHeaders)))
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "secret/1.0")
		if r.URL.Path == "/fail" {
			w.WriteHeader(500)
			io.WriteString(w, "stack trace")
			return
		}
		io.WriteString(w, "ok")
	})
	_, srv := newGuard(t, app, pl)
	c := newClient(t)
	st, body, res := do(t, c, mustReq(t, "GET", srv.URL+"/", nil))
	if st != 200 || body != "ok" || res.Header.Get("Server") != "" || res.Header.Get("X-Checked") != "1" {
		t.Fatalf("allow: %d %q %v", st, body, res.Header)
	}
	st, body, _ = do(t, c, mustReq(t, "GET", srv.URL+"/fail", nil))
	if st != 502 || strings.Contains(body, "stack") {
		t.Fatalf("block: %d %q", st, body)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.rheads) != 2 || rec.rheads[0].Status != 200 || rec.rheads[0].Headers.Get("server") != "secret/1.0" || rec.rheads[1].Status != 500 {
		t.Fatalf("events %+v", rec.rheads)
	}
}

// TestGuardRequestComplete: subscribed agents get the request-complete
// event after the response, with the status the client got, the body
// sizes, the duration, the upstream attempts (0 when stopped) and the
// error; on the correlation id of the request's headers.
func TestGuardRequestComplete(t *testing.T) {
	rec := newRecorder()
	var cids idMap
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			cids.store(ev.URI, ev.Metadata.CorrelationID)
			if ev.URI == "/blocked" {
				r.Decision = agentwire.Block(403)
			}
			return nil
		},
		RequestComplete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) error {
			rec.mu.Lock()
			rec.complete = append(rec.complete, *ev)
			rec.mu.Unlock()
			rec.note()
			return nil
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventRequestComplete)))
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(201)
		w.Write(append(b, "!!"...))
	})
	g, srv := newGuard(t, app, pl)
	c := newClient(t)
	if st, body, _ := do(t, c, mustReq(t, "POST", srv.URL+"/up", strings.NewReader("hello"))); st != 201 || body != "hello!!" {
		t.Fatalf("%d %q", st, body)
	}
	if st, _, _ := do(t, c, mustReq(t, "GET", srv.URL+"/blocked", nil)); st != 403 {
		t.Fatalf("blocked: %d", st)
	}
	rec.wait(t, "two request-complete events", func() bool { return len(rec.complete) == 2 })
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	byID := map[string]agentwire.RequestCompleteEvent{}
	for _, ev := range rec.complete {
		byID[ev.CorrelationID] = ev
	}
	up, blocked := byID[cids.load("/up")], byID[cids.load("/blocked")]
	if up.Status != 201 || up.RequestBodySize != 5 || up.ResponseBodySize != 7 || up.UpstreamAttempts != 1 || up.Error.Valid {
		t.Fatalf("/up complete %+v", up)
	}
	if blocked.Status != 403 || blocked.UpstreamAttempts != 0 || blocked.ResponseBodySize != uint64(len("Forbidden\n")) {
		t.Fatalf("/blocked complete %+v", blocked)
	}
}

// TestGuardNew: invalid arguments are ErrInvalidOption.
func TestGuardNew(t *testing.T) {
	ag := startUDSAgent(t, agent.Funcs{})
	_, pl, as := newPipeline(t, false, agentOpts(ag.Endpoint()))
	_, plOther, other := newPipeline(t, false, agentOpts(ag.Endpoint()))
	_ = plOther
	app := http.NotFoundHandler()
	for name, f := range map[string]func() (*Guard, error){
		"nil handler":   func() (*Guard, error) { return New(nil, pl) },
		"nil pipeline":  func() (*Guard, error) { return New(app, nil) },
		"nil builder":   func() (*Guard, error) { return New(app, pl, WithBuilder(nil)) },
		"foreign agent": func() (*Guard, error) { return New(app, pl, WithBodyConfig(other[0], BodyConfig{}, BodyConfig{})) },
		"bad mode":      func() (*Guard, error) { return New(app, pl, WithBodyConfig(as[0], BodyConfig{Mode: 9}, BodyConfig{})) },
		"bad threshold": func() (*Guard, error) {
			return New(app, pl, WithBodyConfig(as[0], BodyConfig{}, BodyConfig{Threshold: -1}))
		},
		"nil agent option": func() (*Guard, error) { return New(app, pl, WithBodyConfig(nil, BodyConfig{}, BodyConfig{})) },
	} {
		if _, err := f(); !errors.Is(err, ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
	if _, err := New(app, pl, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{Mode: ModeHybrid, Threshold: 10})); err != nil {
		t.Fatal(err)
	}
	_ = httptest.NewRecorder
}

// TestGuardClientDisconnectWhileWaiting: a client that goes away while the
// handler works (its request's context ends) cancels the request at the
// agent that saw its headers, with reason client disconnect.
func TestGuardClientDisconnectWhileWaiting(t *testing.T) {
	rec := newRecorder()
	var cid atomic.Value
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			cid.Store(ev.Metadata.CorrelationID)
			return nil
		},
		Cancel: func(_ context.Context, c agentwire.Cancel) {
			rec.mu.Lock()
			rec.cancels = append(rec.cancels, c)
			rec.mu.Unlock()
			rec.note()
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders)))
	started := make(chan struct{})
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	g, srv := newGuard(t, app, pl)
	nc, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(nc, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	nc.Close()
	rec.wait(t, "a cancel", func() bool { return len(rec.cancels) == 1 })
	rec.mu.Lock()
	c := rec.cancels[0]
	rec.mu.Unlock()
	if c.CorrelationID != cid.Load().(string) || c.Reason != agentwire.CancelClientDisconnect {
		t.Fatalf("cancel %+v, want client disconnect of %s", c, cid.Load())
	}
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if s := g.Stats(); s.ClientDisconnects != 1 {
		t.Fatalf("stats %+v", s)
	}
}
