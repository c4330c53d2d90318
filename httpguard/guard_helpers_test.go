package httpguard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
	"github.com/agentwire/agentwire/internal/testagent"
)

// udsAgent is a real agent on a Unix socket that can be killed and
// restarted (internal/testagent).
type udsAgent = testagent.UDS

func sockPath(tb testing.TB) string { return testagent.SockPath(tb) }

func startUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	return testagent.Start(tb, h, opts...)
}

// testAgent describes one agent of a test pipeline.
type testAgent struct {
	endpoint string
	opts     []pool.AgentOption
	body     *[2]BodyConfig
}

// agentOpts are the pool options of a test agent: a short reconnect
// backoff so that restarts are seen quickly.
func agentOpts(endpoint string, extra ...pool.AgentOption) testAgent {
	return testAgent{endpoint: endpoint, opts: extra}
}

// newPipeline builds a pool with the agents (one connection each,
// connected before it returns unless wait is false) and a pipeline of
// them in order.
func newPipeline(t testing.TB, wait bool, agents ...testAgent) (*pool.Pool, *pool.Pipeline, []*pool.Agent) {
	t.Helper()
	p, err := pool.New(pool.WithDialBackoff(5*time.Millisecond, 50*time.Millisecond), pool.WithHealthCheckInterval(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	var steps []pool.Step
	var as []*pool.Agent
	for i, ta := range agents {
		opts := append([]pool.AgentOption{pool.WithEndpoint(ta.endpoint, 1, engine.WithReconnectBackoff(5*time.Millisecond, 50*time.Millisecond))}, ta.opts...)
		a, err := p.AddAgent(string(rune('a'+i)), opts...)
		if err != nil {
			t.Fatal(err)
		}
		if wait {
			if err := a.WaitReady(testCtx(t), 1); err != nil {
				t.Fatal(err)
			}
		}
		steps = append(steps, pool.Step{Agent: a})
		as = append(as, a)
	}
	pl, err := pool.NewPipeline(steps)
	if err != nil {
		t.Fatal(err)
	}
	return p, pl, as
}

// newGuard wraps next in a Guard over pl and serves it on a loopback
// httptest server; the guard's requests are waited for at cleanup.
func newGuard(t testing.TB, next http.Handler, pl *pool.Pipeline, opts ...GuardOption) (*Guard, *httptest.Server) {
	t.Helper()
	g, err := New(next, pl, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if rp, ok := next.(*httputil.ReverseProxy); ok {
		rp.ModifyResponse = g.ModifyResponse
	}
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		if err := g.Wait(testCtx(t)); err != nil {
			t.Errorf("guard wait: %v", err)
		}
	})
	return g, srv
}

// reverseProxy returns a reverse proxy to upstream that keeps quiet about
// the errors it answers with 502.
func reverseProxy(t testing.TB, upstream string) *httputil.ReverseProxy {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.Out.Host = pr.In.Host },
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return rp
}

// newClient returns an HTTP client whose idle connections are closed at
// cleanup.
func newClient(t testing.TB) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 20 * time.Second}
}

// do sends a request and returns the status, the body and the response.
func do(t testing.TB, c *http.Client, req *http.Request) (int, string, *http.Response) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", req.Method, req.URL, err)
	}
	return res.StatusCode, string(b), res
}

func mustReq(t testing.TB, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(testCtx(t), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// recorder collects the events an agent saw, safe for concurrent use.
type recorder struct {
	mu       sync.Mutex
	chunks   []agentwire.BodyChunk // request body chunks (data copied)
	rchunks  []agentwire.BodyChunk // response body chunks
	rheads   []agentwire.ResponseHeadersEvent
	complete []agentwire.RequestCompleteEvent
	cancels  []agentwire.Cancel
	frames   []agentwire.WebSocketFrameEvent
	signal   chan struct{} // gets a value after every recorded event (buffered)
}

func newRecorder() *recorder { return &recorder{signal: make(chan struct{}, 1024)} }

func (r *recorder) note() {
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func copyChunk(ev *agentwire.BodyChunk) agentwire.BodyChunk {
	c := *ev
	c.Data = append([]byte(nil), ev.Data...)
	return c
}

// wait waits until cond holds (re-checked after each event).
func (r *recorder) wait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		r.mu.Lock()
		ok := cond()
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.signal:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// ctxDone reports whether ctx is done.
func ctxDone(ctx context.Context) bool { return ctx.Err() != nil }

// idMap maps strings to strings, safe for concurrent use.
type idMap struct {
	mu sync.Mutex
	m  map[string]string
}

func (m *idMap) store(k, v string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]string{}
	}
	m.m[k] = v
}

func (m *idMap) load(k string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[k]
}

// newTestServer serves h on a loopback httptest server closed at cleanup.
func newTestServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s
}
