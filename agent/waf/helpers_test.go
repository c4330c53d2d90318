package waf

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/wafcorpus"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testTimeout = 60 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// newAgent builds an agent and closes it at cleanup.
func newAgent(t testing.TB, opts ...Option) *Agent {
	t.Helper()
	a, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// smallRules is a rule set without the CRS, quick to build: it blocks
// "attack" in any argument or the request body (phase 2), and "leak" in the
// response body (phase 4).
func smallRules(extra ...Option) []Option {
	return append([]Option{
		WithoutCRS(),
		WithDirectives(`
SecRule ARGS|REQUEST_BODY "@contains attack" "id:1001,phase:2,deny,status:403,log,msg:'attack in the request'"
SecRule REQUEST_HEADERS:X-Block "@streq now" "id:1002,phase:1,deny,status:406,log,msg:'blocked on headers'"
SecRule REQUEST_HEADERS:X-Note "@streq yes" "id:1003,phase:1,pass,log,msg:'noted'"
SecRule RESPONSE_BODY "@contains leak" "id:1004,phase:4,deny,status:502,log,msg:'leak in the response'"
SecRule RESPONSE_HEADERS:X-Leak "@streq yes" "id:1005,phase:3,deny,status:503,log,msg:'leak header'"
`),
	}, extra...)
}

// sockPath returns a fresh short socket path.
func sockPath(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "waf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "a.sock")
}

// serverOpts are the options the tests serve an agent with: its
// capabilities and a fail-closed error decision.
func serverOpts(a *Agent) []agent.Option {
	return []agent.Option{
		agent.WithCapabilities(a.Capabilities()),
		agent.WithErrorDecision(agentwire.Block(500)),
	}
}

// serve runs an agent server for h on a Unix socket (binary protocol) and
// on loopback gRPC; it returns both endpoints. The server is closed at
// cleanup.
func serve(t testing.TB, h agent.Handler, opts ...agent.Option) (udsEP, grpcEP string) {
	t.Helper()
	srv := agent.NewServer(h, opts...)
	path := sockPath(t)
	uln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	gln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = srv.ServeUDS(uln) }()
	go func() { defer wg.Done(); _ = srv.ServeGRPC(gln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		wg.Wait()
	})
	return "unix://" + path, "grpc://" + gln.Addr().String()
}

// dial connects an engine Conn and closes it at cleanup.
func dial(t testing.TB, ep string, opts ...engine.Option) *engine.Conn {
	t.Helper()
	base := []engine.Option{engine.WithRequestTimeout(testTimeout)}
	if strings.HasPrefix(ep, "grpc://") {
		base = append(base, engine.WithInsecure()) // plaintext gRPC; a Unix-socket endpoint refuses the option
	}
	c, err := engine.Dial(testCtx(t), ep, append(base, opts...)...)
	if err != nil {
		t.Fatalf("dial %s: %v", ep, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// transports are the proxy connections of a differential run.
type transport struct {
	name string
	c    *engine.Conn
}

func transports(t testing.TB, a *Agent) []transport {
	t.Helper()
	uds, grpcEP := serve(t, a, serverOpts(a)...)
	return []transport{
		{"uds-json", dial(t, uds)},
		{"uds-msgpack", dial(t, uds, engine.WithMsgpack())},
		{"grpc", dial(t, grpcEP)},
	}
}

// sendRequest sends a corpus request through c as a proxy streaming the
// body does: the request headers, then, while the agent answers
// needs_more, body chunks of chunk bytes. It returns the last reply and
// the number of replies with needs_more.
func sendRequest(ctx context.Context, c *engine.Conn, r *wafcorpus.Request, cid string, chunk int) (*agentwire.AgentResponse, int, error) {
	ev := r.Event(cid)
	resp, err := c.RequestHeaders(ctx, &ev)
	if err != nil || !resp.NeedsMore {
		return resp, 0, err
	}
	more := 1
	chunks := r.Chunks(chunk)
	var sent uint64
	for i, d := range chunks {
		sent += uint64(len(d))
		resp, err = c.RequestBodyChunk(ctx, &agentwire.BodyChunk{
			CorrelationID:    cid,
			Data:             d,
			IsLast:           i == len(chunks)-1,
			TotalSize:        agentwire.Some(uint64(len(r.Body))),
			ChunkIndex:       uint32(i),
			BytesTransferred: sent,
		})
		if err != nil || !resp.NeedsMore {
			return resp, more, err
		}
		more++
	}
	return resp, more, nil
}

// chunk returns a body chunk event.
func chunk(cid string, data string, idx uint32, last bool) *agentwire.BodyChunk {
	return &agentwire.BodyChunk{CorrelationID: cid, Data: []byte(data), IsLast: last, ChunkIndex: idx}
}

// headers returns a request-headers event for method and uri with the
// given header pairs (plus Host).
func headers(cid, method, uri string, kv ...string) *agentwire.RequestHeadersEvent {
	ev := &agentwire.RequestHeadersEvent{
		Metadata: agentwire.RequestMetadata{CorrelationID: cid, ClientIP: "192.0.2.1", ClientPort: 1234, Protocol: "HTTP/1.1"},
		Method:   method,
		URI:      uri,
	}
	ev.Headers.Add("host", "example.test")
	for i := 0; i+1 < len(kv); i += 2 {
		ev.Headers.Add(kv[i], kv[i+1])
	}
	return ev
}

// closeLog records the close hook's calls.
type closeLog struct {
	mu     sync.Mutex
	counts map[string]int
	why    map[string]closeReason
	ch     chan string // every closed correlation id (buffered)
}

func newCloseLog() *closeLog {
	return &closeLog{counts: map[string]int{}, why: map[string]closeReason{}, ch: make(chan string, 4096)}
}

func (l *closeLog) hook(cid string, r closeReason) {
	l.mu.Lock()
	l.counts[cid]++
	l.why[cid] = r
	l.mu.Unlock()
	select {
	case l.ch <- cid:
	default:
	}
}

// option returns the unexported option installing the hook.
func (l *closeLog) option() Option {
	return optionFunc(func(c *config) error { c.closeHook = l.hook; return nil })
}

// wait waits until cid was closed and returns the reason.
func (l *closeLog) wait(t testing.TB, cid string) closeReason {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		l.mu.Lock()
		n, r := l.counts[cid], l.why[cid]
		l.mu.Unlock()
		if n > 0 {
			return r
		}
		select {
		case <-l.ch:
		case <-deadline:
			t.Fatalf("transaction %q was not closed", cid)
		}
	}
}

func (l *closeLog) count(cid string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[cid]
}
