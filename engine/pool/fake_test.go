package pool

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

func TestMain(m *testing.M) {
	if runChild() || runEchoChild() {
		return
	}
	goleak.VerifyTestMain(m)
}

const testTimeout = 10 * time.Second

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// fakeLink is a connection whose answers are scripted: handle is called
// for every event (nil: allow). Health and capabilities are settable.
type fakeLink struct {
	name   string
	handle func(ctx context.Context, kind int32, cid string) (*agentwire.AgentResponse, error)

	mu      sync.Mutex
	health  engine.HealthSnapshot
	caps    agentwire.Capabilities
	cancels []string
	closed  bool
	drained bool

	calls atomic.Int64
	seen  sync.Map // cid -> []int32 kinds seen, guarded by mu
}

func newFake(name string) *fakeLink {
	return &fakeLink{name: name, health: engine.HealthSnapshot{Connected: true, AcceptsRequests: true, Capacity: -1}}
}

func (f *fakeLink) setHealth(h engine.HealthSnapshot) {
	f.mu.Lock()
	f.health = h
	f.mu.Unlock()
}

func (f *fakeLink) kinds(cid string) []int32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, _ := f.seen.Load(cid)
	k, _ := v.([]int32)
	return append([]int32(nil), k...)
}

func (f *fakeLink) serve(ctx context.Context, kind int32, cid string, dst *agentwire.AgentResponse) (*agentwire.AgentResponse, error) {
	f.calls.Add(1)
	f.mu.Lock()
	closed := f.closed
	v, _ := f.seen.Load(cid)
	k, _ := v.([]int32)
	f.seen.Store(cid, append(k, kind))
	f.mu.Unlock()
	if closed {
		return nil, &engine.Error{Kind: engine.ErrClosed}
	}
	var rep *agentwire.AgentResponse
	var err error
	if f.handle != nil {
		rep, err = f.handle(ctx, kind, cid)
	}
	if err != nil {
		return nil, err
	}
	if dst == nil {
		dst = new(agentwire.AgentResponse)
	}
	if rep != nil {
		*dst = *rep
	}
	dst.CorrelationID = cid
	return dst, nil
}

func (f *fakeLink) RequestHeadersInto(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse) error {
	_, err := f.serve(ctx, agentwire.EventRequestHeaders, ev.Metadata.CorrelationID, dst)
	return err
}
func (f *fakeLink) RequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventRequestBodyChunk, ev.CorrelationID, nil)
}
func (f *fakeLink) ResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventResponseHeaders, ev.CorrelationID, nil)
}
func (f *fakeLink) ResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventResponseBodyChunk, ev.CorrelationID, nil)
}
func (f *fakeLink) RequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventRequestComplete, ev.CorrelationID, nil)
}
func (f *fakeLink) WebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventWebSocketFrame, ev.CorrelationID, nil)
}
func (f *fakeLink) GuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent) (*agentwire.AgentResponse, error) {
	return f.serve(ctx, agentwire.EventGuardrailInspect, ev.CorrelationID, nil)
}
func (f *fakeLink) Cancel(cid string, _ agentwire.CancelReason) error {
	f.mu.Lock()
	f.cancels = append(f.cancels, cid)
	f.mu.Unlock()
	return nil
}
func (f *fakeLink) Health() engine.HealthSnapshot {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return engine.HealthSnapshot{Capacity: -1}
	}
	return f.health
}
func (f *fakeLink) Capabilities() agentwire.Capabilities {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.caps
}
func (f *fakeLink) Drain(context.Context) error {
	f.mu.Lock()
	f.drained, f.closed = true, true
	f.mu.Unlock()
	return nil
}
func (f *fakeLink) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

// newTestPool returns a pool closed at cleanup.
func newTestPool(t testing.TB, opts ...Option) *Pool {
	t.Helper()
	p, err := New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// addFakes adds an agent with the fakes as its connections.
func addFakes(t testing.TB, p *Pool, name string, fakes []*fakeLink, opts ...AgentOption) *Agent {
	t.Helper()
	a, err := p.AddAgent(name, opts...)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fakes {
		if _, err := a.addMember(f, SourceAdded, f.name, 1, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	return a
}

func fakes(n int) []*fakeLink {
	out := make([]*fakeLink, n)
	for i := range out {
		out[i] = newFake(string(rune('a' + i)))
	}
	return out
}

func rhEvent(cid string) *agentwire.RequestHeadersEvent {
	return &agentwire.RequestHeadersEvent{Metadata: agentwire.RequestMetadata{CorrelationID: cid}, Method: "GET", URI: "/"}
}

// blockReply returns a reply with a block decision.
func blockReply(status uint16) *agentwire.AgentResponse {
	return &agentwire.AgentResponse{Decision: agentwire.Block(status)}
}

// waitFor polls cond (every ms) until it holds or the test times out; for
// conditions with no event to wait on (a state read through atomics).
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
