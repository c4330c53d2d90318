package httpguard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine/pool"
)

// ErrBlocked is the error a guarded handler's body read returns (and a
// response write, once the response was cut off) when an agent, or a
// fail-closed failure policy, stopped the request in a body phase.
var ErrBlocked = errors.New("agentwire: request stopped by an agent")

// errBodyOver is returned by reads of a request body after its request
// ended.
var errBodyOver = fmt.Errorf("%w: request body read after the request ended", ErrBodyState)

// BodyConfig says how one agent receives a body (see Planner). It is a
// plain value.
type BodyConfig struct {
	// Mode is how the body goes to the agent. The zero value is
	// ModeBuffer, the Rust proxy's default: the whole body, up to the
	// agent's limit, in one chunk, before anything of it goes on.
	Mode BodyMode
	// Threshold is ModeHybrid's buffering threshold in bytes (0:
	// DefaultHybridThreshold).
	Threshold int
}

// GuardOption configures a Guard (New validates it: an invalid option is
// an ErrInvalidOption error).
type GuardOption func(*guardConfig) error

type guardConfig struct {
	b      *Builder
	bodies map[*pool.Agent][2]BodyConfig
}

// WithBuilder sets the Builder of the request-headers events (route id,
// correlation id source, ...). Default: NewBuilder().
func WithBuilder(b *Builder) GuardOption {
	return func(c *guardConfig) error {
		if b == nil {
			return fmt.Errorf("%w: WithBuilder(nil)", ErrInvalidOption)
		}
		c.b = b
		return nil
	}
}

// WithBodyConfig sets how agent a, a step of the guard's pipeline,
// receives request and response bodies. Default for every agent:
// BodyConfig{} (buffered, as in the Rust proxy). It applies only to agents
// subscribed to body events (pool.WithEvents and what the agent
// announced); the agent's inspection limit is its limit in the pool
// (pool.WithBodyLimits, Agent.BodyLimits).
func WithBodyConfig(a *pool.Agent, request, response BodyConfig) GuardOption {
	return func(c *guardConfig) error {
		if a == nil {
			return fmt.Errorf("%w: WithBodyConfig: nil agent", ErrInvalidOption)
		}
		for _, bc := range []BodyConfig{request, response} {
			if bc.Mode > ModeHybrid || bc.Threshold < 0 {
				return fmt.Errorf("%w: WithBodyConfig(%s): mode %d, threshold %d", ErrInvalidOption, a.Name(), bc.Mode, bc.Threshold)
			}
		}
		if c.bodies == nil {
			c.bodies = map[*pool.Agent][2]BodyConfig{}
		}
		c.bodies[a] = [2]BodyConfig{request, response}
		return nil
	}
}

// Guard is the net/http middleware: an http.Handler that puts the agents
// of a pipeline (engine/pool) in front of another handler, as the Rust
// proxy does with agents (SPEC 12.1), without its defects
// (REFERENCE-DEFECTS 2.7). Per request:
//
//   - Request headers: the event (Builder.RequestHeaders) goes to the
//     pipeline (in parallel unless pool.WithSequentialHeaders). A
//     decision other than allow, or a fail-closed failure, is answered
//     at once (VerdictResponse: block with its status, body and headers;
//     redirect with its status and Location, never a 500; challenge as
//     401 with WWW-Authenticate; 503/504 for a failed agent) and the
//     handler is not called. Otherwise the agents' request-header
//     operations are applied to the request the handler sees
//     (ApplyRequestHeaderOps), and their response-header operations are
//     kept for the response (the Rust proxy drops them).
//   - Request body: agents subscribed to request bodies get it as
//     their BodyConfig says (Planner): streamed chunk by chunk as the
//     handler reads it, or buffered up to the agent's limit, or both
//     (hybrid). When some agent buffers, the body is read before the
//     handler is called, so that its decision comes first; otherwise the
//     chunks go out as the handler reads. needs_more is honoured
//     (BodyStream: a provisional block is not enforced, the end of the
//     body is announced to an agent still asking for more). Body
//     mutations reach the handler (the Content-Length is then dropped);
//     each agent sees the body as the agents before it left it. A body
//     over an agent's limit is a 413 for a fail-closed agent and skips a
//     fail-open one (the bytes it held go on). A block during the body
//     fails the handler's read with ErrBlocked and replaces whatever
//     response the handler then writes (a reverse proxy's 502) by the
//     block's response; the handler's response is cut off instead when
//     its headers were already sent.
//   - Response headers: subscribed agents get the status and headers
//     before the client does; a block (or a fail-closed failure)
//     replaces the response, otherwise their operations are applied
//     (the Rust proxy ignores response-phase decisions and failure
//     modes, REFERENCE-DEFECTS B-X6).
//   - Response body: as the request body, with mutations applied to
//     what the client gets (Content-Length dropped). While an agent
//     buffers, the status line and headers are held back too, so that a
//     decision on the buffered body can still replace the response; a
//     decision after the headers went out cuts the response off
//     (panic(http.ErrAbortHandler): the client sees a broken response,
//     never a truncated one that looks complete). No body is buffered
//     that no agent asked to buffer.
//   - Request complete: once the response is done, subscribed agents get
//     the status, the body sizes, the duration and the error, if any, on
//     a goroutine of its own (the client is not kept waiting; Wait waits
//     for them).
//   - A client that goes away (its request's context ends before the
//     guard is done) cancels the request at every agent that saw it
//     (pool.Pipeline.Cancel, reason client disconnect), besides the calls
//     in flight, which end with the context.
//   - An agent left waiting: when the request ends, every agent whose
//     last reply of the request phase (request headers or a request
//     body chunk) asked for more (needs_more) and that will not hear of
//     the request's end otherwise (it got no final body chunk: it is not
//     subscribed to request bodies, the body went over a limit (413 or
//     a fail-open skip), a block ended the request first, or the handler
//     did not read the body to its end; and it gets no request-complete
//     event) is sent a cancel for the request (pool.Pipeline.CancelStep,
//     reason manual: SPEC 8.3 has no reason for "the proxy is done with
//     the request", and manual is the one that claims no failure) on the
//     connection the request is pinned to, so that it frees at once what
//     it keeps for the request (the WAF agent's transaction) instead of
//     at its own expiry. Agents that did not ask for more get nothing
//     extra (GuardStats.WaitingCancels counts these cancels).
//   - WebSocket: frames of upgraded connections go to subscribed agents
//     when the handler is an httputil.ReverseProxy whose ModifyResponse
//     is Guard.ModifyResponse (the upgrade request's extensions are
//     stripped so that agents see plain payloads); their decisions
//     (allow, drop, close with a code) are enforced (WebSocketFilter).
//
// Which events an agent receives is the pipeline's business: its
// configuration (pool.WithEvents) and what it announced. A request
// through agents subscribed to request headers only costs the
// request-headers phase and nothing else: no wrapper around the
// request body or the response writer.
//
// Per-request state is pooled (sync.Pool): a request through a
// one-agent pipeline allocates nothing beyond the event's correlation id,
// the agent round trip and the header operations applied
// (TestGuardAllocs). A Guard is safe for concurrent use.
type Guard struct {
	next   http.Handler
	pl     *pool.Pipeline
	agents []*pool.Agent
	bodies [][2]BodyConfig // per step: request, response
	b      *Builder

	xs sync.Pool
	wg sync.WaitGroup // exchanges that outlive ServeHTTP

	st guardCounters
}

// New returns a Guard that puts the agents of pl in front of next.
func New(next http.Handler, pl *pool.Pipeline, opts ...GuardOption) (*Guard, error) {
	if next == nil || pl == nil {
		return nil, fmt.Errorf("%w: New needs a handler and a pipeline", ErrInvalidOption)
	}
	var c guardConfig
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&c); err != nil {
			return nil, err
		}
	}
	if c.b == nil {
		b, err := NewBuilder()
		if err != nil {
			return nil, err
		}
		c.b = b
	}
	steps := pl.Steps()
	g := &Guard{next: next, pl: pl, b: c.b, agents: make([]*pool.Agent, len(steps)), bodies: make([][2]BodyConfig, len(steps))}
	for i, s := range steps {
		g.agents[i] = s.Agent
		if bc, ok := c.bodies[s.Agent]; ok {
			g.bodies[i] = bc
			delete(c.bodies, s.Agent)
		}
	}
	for a := range c.bodies {
		return nil, fmt.Errorf("%w: WithBodyConfig: agent %s is not in the pipeline", ErrInvalidOption, a.Name())
	}
	g.xs.New = func() any { return &exchange{g: g} }
	return g, nil
}

// subscriptions returns the event kinds (bits 1 << kind) at least one
// agent of the pipeline receives now.
func (g *Guard) subscriptions() uint32 {
	var m uint32
	for _, a := range g.agents {
		for k := agentwire.EventRequestBodyChunk; k <= agentwire.EventWebSocketFrame; k++ {
			if a.Subscribed(k) {
				m |= 1 << uint(k)
			}
		}
	}
	return m
}

func has(m uint32, kind int32) bool { return m&(1<<uint(kind)) != 0 }

// ServeHTTP runs the request through the agents and the handler.
func (g *Guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.st.requests.Add(1)
	x := g.xs.Get().(*exchange)
	x.start = time.Now()
	x.w, x.r, x.ctx = w, r, r.Context()
	x.recycle = true
	defer x.serveEnd()

	g.b.RequestHeaders(r, &x.rh)
	x.cid = x.rh.Event.Metadata.CorrelationID
	v := g.pl.RequestHeaders(x.ctx, &x.pr, &x.rh.Event)
	for i := range x.pr.Verdicts {
		if rep := x.pr.Verdicts[i].Reply; rep != nil && rep.NeedsMore {
			x.setMore(i, true)
		}
	}
	x.subs = g.subscriptions()
	x.wantComplete = has(x.subs, agentwire.EventRequestComplete)
	if x.wantComplete {
		x.track()
	}
	if VerdictResponse(&v, &x.resp) {
		g.st.blocked[phaseRequestHeaders].Add(1)
		x.writeResponse(w)
		x.done = true
		return
	}
	if len(x.pr.RequestHeaderOps) > 0 {
		if err := ApplyRequestHeaderOps(r, x.pr.RequestHeaderOps); err != nil {
			g.st.refused.Add(1)
		}
	}
	x.respOps = append(x.respOps[:0], x.pr.ResponseHeaderOps...)

	if r.Body != nil && r.Body != http.NoBody {
		if stop := x.requestBody(); stop {
			x.done = true
			return
		}
	}

	h := r
	if has(x.subs, agentwire.EventWebSocketFrame) && IsWebSocketUpgrade(r) {
		StripWebSocketExtensions(r.Header)
		x.locking = true
		h = r.WithContext(context.WithValue(x.ctx, exchangeKey{}, x))
	}
	intercept := x.wantComplete || x.body != nil || len(x.respOps) > 0 ||
		has(x.subs, agentwire.EventResponseHeaders) || has(x.subs, agentwire.EventResponseBodyChunk)
	x.handled = true
	if !intercept {
		g.next.ServeHTTP(w, h)
		x.done = true
		return
	}
	x.ri.Reset((*clientWriter)(x), (*respHooks)(x))
	g.next.ServeHTTP(&x.ri, h)
	_ = x.ri.Finish()
	x.sendPendingHeader()
	if x.aborted {
		g.st.aborted.Add(1)
		x.done = true
		panic(http.ErrAbortHandler)
	}
	x.done = true
}

// Wait waits until every request the guard served is done with the
// agents (request-complete events sent, request bodies released), or ctx
// ends (its error is then returned). Call it after the server stopped
// serving (http.Server.Shutdown) and before closing the pool. Safe for
// concurrent use.
func (g *Guard) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		g.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// exchangeKey is the context key of an upgrade request's exchange.
type exchangeKey struct{}

// exchange is the pooled per-request state of a Guard.
type exchange struct {
	g     *Guard
	w     http.ResponseWriter // the client's writer
	r     *http.Request
	ctx   context.Context
	start time.Time
	cid   string
	subs  uint32 // event kinds some agent takes (bits)

	// mu serialises the agent phases of a request when they can run on
	// two goroutines: a request body read by a transport goroutine while
	// the handler's goroutine runs the response phases, the two
	// directions of a WebSocket stream.
	mu      sync.Mutex
	locking bool
	ws      bool // a WebSocketFilter inspects the upgraded connection
	wsOver  bool // ServeHTTP returned: frames are no longer inspected

	rh      RequestHeaders
	pr      pool.Request
	resp    Response             // the response that replaces the handler's
	respOps []agentwire.HeaderOp // response-header operations of the request-headers phase
	ev      agentwire.BodyChunk

	// Request body.
	body       *bodyHandle
	br         BodyReader
	reqSt      []stage
	first      []byte // read ahead of the handler, not yet handed over
	firstBuf   []byte
	reqBlocked bool // a request-body verdict is in resp

	// Response.
	ri         ResponseInterceptor
	respSt     []stage
	rsEv       agentwire.ResponseHeadersEvent
	pending    int  // status held back while a response agent buffers
	headerSent bool // the client's writer got its status
	replaced   bool // the response was replaced after the handler's headers
	aborted    bool // the response must be cut off
	status     int  // status the client got
	out        int64

	// more[i]: step i's last reply of the request phase asked for more
	// (needs_more) and it has not heard of the request's end; nmore
	// counts them (see cancelWaiting).
	more  []bool
	nmore int

	rcEv         agentwire.RequestCompleteEvent
	err          error // why the request failed
	gone         bool  // the request's context ended before ServeHTTP did
	duration     time.Duration
	wantComplete bool
	tracked      bool // counted in g.wg
	handled      bool // the handler was called
	done         bool // ServeHTTP ran to its end (no panic)
	recycle      bool
}

// stage is one body-subscribed agent's view of a body.
type stage struct {
	step  int
	pl    Planner
	bs    BodyStream
	skip  bool // fail-open skip: the bytes pass
	holds bool // buffering: nothing went out yet
}

func (x *exchange) lock() {
	if x.locking {
		x.mu.Lock()
	}
}

func (x *exchange) unlock() {
	if x.locking {
		x.mu.Unlock()
	}
}

// track counts x in g.wg: it may outlive ServeHTTP.
func (x *exchange) track() {
	if !x.tracked {
		x.tracked = true
		x.g.wg.Add(1)
	}
}

// writeResponse answers the request with x.resp before the handler ran.
func (x *exchange) writeResponse(w http.ResponseWriter) {
	x.resp.Write(w)
	x.headerSent = true
	x.status = x.resp.Status
	if bodyAllowed(x.resp.Status) {
		x.out = int64(len(x.resp.Body))
	}
}

// serveEnd ends ServeHTTP, also when the handler panicked, and hands x
// on (end), unless a request-body read is still running on another
// goroutine (a reverse proxy's transport), which then does it.
func (x *exchange) serveEnd() {
	if !x.done {
		// The handler (or a hook) panicked: x's state may be half
		// updated, so it is not reused.
		x.recycle = false
		if x.err == nil {
			x.err = errHandlerPanic
		}
	}
	x.gone = x.ctx.Err() != nil
	x.duration = time.Since(x.start)
	if x.ws {
		// Frames still in flight on the filter's goroutines get a close.
		x.mu.Lock()
		x.wsOver = true
		x.mu.Unlock()
	}
	if b := x.body; b != nil {
		for {
			if b.state.CompareAndSwap(bodyIdle, bodyOver) {
				break
			}
			if b.state.CompareAndSwap(bodyReading, bodyOverPending) {
				return // the reader ends x
			}
		}
	}
	x.end()
}

// end cancels the request at the agents when the client went away (its
// context ended), records how the request ended
// and sends the request-complete event (on a goroutine of its own) or
// releases x at once. Nothing else uses x by then.
func (x *exchange) end() {
	g := x.g
	// net/http ends the request's context when the client goes away,
	// also in the middle of its body (a read error of the connection).
	if x.gone {
		g.pl.Cancel(&x.pr, x.cid, agentwire.CancelClientDisconnect)
		g.st.disconnects.Add(1)
		if x.err == nil {
			x.err = errClientGone
		}
		x.clearMore() // every agent that saw the request got the cancel
	}
	if x.nmore > 0 {
		x.cancelWaiting()
	}
	if !x.wantComplete {
		x.release()
		return
	}
	c := Completion{Status: x.status, ResponseBodySize: x.out, Duration: x.duration, Err: x.err}
	if x.handled {
		c.UpstreamAttempts = 1
	}
	if x.ri.Hijacked() {
		c.Status = http.StatusSwitchingProtocols
	}
	if x.body != nil {
		c.RequestBodySize, _ = x.br.Sizes()
	}
	RequestComplete(&x.rcEv, x.cid, c)
	go x.complete()
}

// setMore records whether step i's last reply of the request phase asked
// for more. The storage is x's, grown once per pooled exchange.
func (x *exchange) setMore(i int, on bool) {
	if i >= len(x.more) {
		if !on {
			return
		}
		n := len(x.g.agents)
		if cap(x.more) < n {
			x.more = make([]bool, n)
		}
		x.more = x.more[:n]
	}
	if x.more[i] != on {
		x.more[i] = on
		if on {
			x.nmore++
		} else {
			x.nmore--
		}
	}
}

// clearMore forgets every step's request for more (they were told of the
// request's end, or x is reset).
func (x *exchange) clearMore() {
	if x.nmore > 0 || len(x.more) > 0 {
		clear(x.more)
		x.more = x.more[:0]
		x.nmore = 0
	}
}

// cancelWaiting tells every agent still waiting for more of the request
// (its last request-phase reply had needs_more, it got no final body
// chunk, and no request-complete event will reach it) that the request
// is over: a cancel on the connection the request is pinned to for that
// agent, so that it frees what it keeps for the request (the WAF agent's
// transaction) at once instead of at its own expiry. SPEC 8.3 has no
// cancel reason for "the proxy is done with the request"; manual is
// the one that names no failure (client disconnect, timeout, a block,
// an upstream error, shutdown would each claim something that did not
// happen), so it is the one sent.
func (x *exchange) cancelWaiting() {
	g := x.g
	for i, on := range x.more {
		if !on {
			continue
		}
		if x.wantComplete && g.agents[i].Subscribed(agentwire.EventRequestComplete) {
			continue // request complete tells it
		}
		_ = g.pl.CancelStep(&x.pr, i, x.cid, agentwire.CancelManual)
		g.st.endCancels.Add(1)
	}
	x.clearMore()
}

var (
	errHandlerPanic = errors.New("agentwire: handler panicked")
	errClientGone   = errors.New("agentwire: client went away")
)

// complete sends the request-complete event, then releases x.
func (x *exchange) complete() {
	x.g.pl.RequestComplete(context.Background(), &x.pr, &x.rcEv)
	x.release()
}

// release ends the request at the pipeline and puts x back in the pool.
func (x *exchange) release() {
	g := x.g
	g.pl.End(&x.pr)
	tracked, recycle := x.tracked, x.recycle
	if recycle {
		x.reset()
		g.xs.Put(x)
	}
	if tracked {
		g.wg.Done()
	}
}

// reset clears x for another request, keeping its storage.
func (x *exchange) reset() {
	x.w, x.r, x.ctx, x.cid = nil, nil, nil, ""
	x.locking = false
	x.respOps = x.respOps[:0]
	x.ev = agentwire.BodyChunk{}
	x.body = nil
	x.br.Reset(nil, nil)
	x.reqSt = x.reqSt[:0]
	x.first = nil
	x.reqBlocked = false
	x.ri.Reset(nil, nil)
	x.respSt = x.respSt[:0]
	x.pending, x.headerSent, x.replaced, x.aborted, x.status, x.out = 0, false, false, false, 0, 0
	x.err, x.gone = nil, false
	x.clearMore()
	x.wantComplete, x.tracked, x.handled, x.done = false, false, false, false
}

// ---------------------------------------------------------------------------
// Statistics

const (
	phaseRequestHeaders = iota
	phaseRequestBody
	phaseResponseHeaders
	phaseResponseBody
	numPhases
)

type guardCounters struct {
	requests    atomic.Uint64
	blocked     [numPhases]atomic.Uint64
	aborted     atomic.Uint64
	disconnects atomic.Uint64
	endCancels  atomic.Uint64
	refused     atomic.Uint64
	mutIgnored  atomic.Uint64
	wsStreams   atomic.Uint64
	wsCloses    atomic.Uint64
}

// GuardStats is a snapshot of a Guard's counters (cumulative since New),
// a plain value.
type GuardStats struct {
	// Requests counts the requests served.
	Requests uint64
	// Blocked counts the responses replaced by a decision or a failure
	// policy, by the phase that decided.
	RequestHeadersBlocked, RequestBodyBlocked, ResponseHeadersBlocked, ResponseBodyBlocked uint64
	// Aborted counts responses cut off because a decision came after
	// their headers went out.
	Aborted uint64
	// ClientDisconnects counts requests whose client went away before
	// the guard was done (cancelled at the agents).
	ClientDisconnects uint64
	// WaitingCancels counts the cancels (reason manual) the guard asked
	// for at the end of a request, one per agent that still waited for
	// more of it (asked for more and would not hear of its end
	// otherwise); one whose agent connection was gone by then is counted
	// too, though nothing could be sent.
	WaitingCancels uint64
	// HeaderOpsRefused counts the phases in which some agent header
	// operation was refused (ApplyHeaderOps).
	HeaderOpsRefused uint64
	// MutationsIgnored counts body mutations that could not be applied
	// (MutationIgnored).
	MutationsIgnored uint64
	// WebSocketStreams counts upgraded connections whose frames went to
	// agents; WebSocketCloses those an agent's decision (or a fail-closed
	// failure) closed.
	WebSocketStreams, WebSocketCloses uint64
}

// Stats returns a snapshot of the guard's counters. It takes no lock.
func (g *Guard) Stats() GuardStats {
	return GuardStats{
		Requests:               g.st.requests.Load(),
		RequestHeadersBlocked:  g.st.blocked[phaseRequestHeaders].Load(),
		RequestBodyBlocked:     g.st.blocked[phaseRequestBody].Load(),
		ResponseHeadersBlocked: g.st.blocked[phaseResponseHeaders].Load(),
		ResponseBodyBlocked:    g.st.blocked[phaseResponseBody].Load(),
		Aborted:                g.st.aborted.Load(),
		ClientDisconnects:      g.st.disconnects.Load(),
		WaitingCancels:         g.st.endCancels.Load(),
		HeaderOpsRefused:       g.st.refused.Load(),
		MutationsIgnored:       g.st.mutIgnored.Load(),
		WebSocketStreams:       g.st.wsStreams.Load(),
		WebSocketCloses:        g.st.wsCloses.Load(),
	}
}

// Pipeline returns the guard's pipeline (for its agents' statistics).
func (g *Guard) Pipeline() *pool.Pipeline { return g.pl }

var _ io.ReadCloser = (*bodyHandle)(nil)
