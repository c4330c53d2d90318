package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Agent is one agent's pool of connections, with its load balancer,
// concurrency limit, circuit breaker, failure policy, timeouts, affinity
// table and statistics. Create it with Pool.AddAgent. All methods are safe
// for concurrent use; calls take no lock.
type Agent struct {
	name string
	p    *Pool
	o    agentOptions

	br  *breaker
	lim *limiter
	aff *affinity

	set    atomic.Pointer[memberSet]
	rr     atomic.Uint64
	nextID atomic.Uint32
	state  atomic.Int32  // agentOpen, agentDraining, agentClosed
	caps   atomic.Uint32 // event kinds the connections announced (0: not known yet)
	capMax atomic.Int64  // max_body_size the connections announced (0: none)

	ctr       callCounters // in flight and requests (the rest: ev)
	ev        eventCounters
	waits     atomic.Uint64
	saturated atomic.Uint64
	retries   atomic.Uint64
	flowWaits atomic.Uint64
	dialFails atomic.Uint64
	dialingN  atomic.Int32 // len(dialing)
	lastWarn  atomic.Int64 // unix ns of the last fail-open warning

	mu       sync.Mutex // membership changes, dial slots
	dialing  []*dialSlot
	changed  chan struct{} // closed and replaced when membership or states change
	ctx      context.Context
	cancel   context.CancelFunc
	dials    sync.WaitGroup
	drainSig chan struct{}
	closed   chan struct{}
	closeMu  sync.Mutex

	errBreaker  error
	errNoConn   error
	errSat      error
	errDraining error
	errClosed   error
	errTooLarge error
	errNotSub   error
}

const (
	agentOpen int32 = iota
	agentDraining
	agentClosed
)

// laterEvents are the event kinds that follow a request's headers: an
// agent that takes any of them pins requests to a connection.
const laterEvents = 1<<agentwire.EventRequestBodyChunk | 1<<agentwire.EventResponseHeaders |
	1<<agentwire.EventResponseBodyChunk | 1<<agentwire.EventRequestComplete | 1<<agentwire.EventWebSocketFrame

func newAgent(p *Pool, name string, o agentOptions) *Agent {
	a := &Agent{
		name:     name,
		p:        p,
		o:        o,
		lim:      newLimiter(o.maxConcurrent),
		aff:      newAffinity(p.seed, o.maxPins, o.pinTTL.Milliseconds()),
		changed:  make(chan struct{}),
		drainSig: make(chan struct{}, 1),
		closed:   make(chan struct{}),
	}
	lease := o.timeout
	for _, d := range o.phaseTimeouts {
		lease = max(lease, d)
	}
	a.br = newBreaker(o.breaker, lease+time.Second)
	a.set.Store(newMemberSet(nil))
	a.ctx, a.cancel = context.WithCancel(p.ctx)
	a.errBreaker = &Error{Kind: ErrBreakerOpen, Agent: name}
	a.errNoConn = &Error{Kind: ErrNoConnection, Agent: name}
	a.errSat = &Error{Kind: ErrSaturated, Agent: name}
	a.errDraining = &Error{Kind: ErrDraining, Agent: name}
	a.errClosed = &Error{Kind: ErrClosed, Agent: name}
	a.errTooLarge = &Error{Kind: ErrBodyTooLarge, Agent: name}
	a.errNotSub = &engine.Error{Kind: engine.ErrNotSubscribed, Detail: "agent " + name + " does not take this event kind"}
	return a
}

// Name returns the agent's name (the name verdicts carry).
func (a *Agent) Name() string { return a.name }

// timeoutFor returns the call timeout of an event kind.
func (a *Agent) timeoutFor(kind int32) time.Duration {
	if d := a.o.phaseTimeouts[kind&7]; d > 0 {
		return d
	}
	return a.o.timeout
}

// events returns the event kinds the agent receives: its configuration's,
// narrowed to what its connections announced once known.
func (a *Agent) events() uint32 {
	m := a.o.events
	if c := a.caps.Load(); c != 0 {
		m &= c
	}
	return m
}

// Subscribed reports whether the agent receives events of kind (its
// configuration and its connections' capabilities).
func (a *Agent) Subscribed(kind int32) bool {
	return kind > 0 && kind < 8 && a.events()&(1<<uint(kind)) != 0
}

// bodyLimit returns the inspection limit for request (or response)
// bodies, -1 for none.
func (a *Agent) bodyLimit(response bool) int64 {
	l := a.o.reqBodyLimit
	if response {
		l = a.o.respBodyLimit
	}
	if c := a.capMax.Load(); c > 0 && (l < 0 || c < l) {
		l = c
	}
	return l
}

// learn records what a connection announced.
func (a *Agent) learn(caps agentwire.Capabilities) {
	var m uint32
	for _, k := range caps.SupportedEvents {
		if k >= agentwire.EventRequestHeaders && k <= agentwire.EventGuardrailInspect {
			m |= 1 << uint(k)
		}
	}
	if len(caps.SupportedEvents) == 0 {
		m = allEvents
	}
	if m == 0 {
		// It announced only kinds this layer does not send: it takes none
		// of ours. Keep a bit outside 1..7 so that 0 still means unknown.
		m = 1
	}
	a.caps.Store(m)
	a.capMax.Store(int64(min(caps.Limits.MaxBodySize, 1<<62)))
}

// ---------------------------------------------------------------------------
// Calls

// call is one event for one agent.
type call struct {
	kind int32
	cid  string
	h    uint64 // affinity key of cid (0: not computed yet)
	// pin, when set, holds the request's pinned connection id for this
	// agent (a pipeline's Request keeps it; 0: none yet) instead of the
	// agent's table.
	pin *uint32
	rh  *agentwire.RequestHeadersEvent
	dst *agentwire.AgentResponse
	bc  *agentwire.BodyChunk
	rs  *agentwire.ResponseHeadersEvent
	rc  *agentwire.RequestCompleteEvent
	ws  *agentwire.WebSocketFrameEvent
	gr  *agentwire.GuardrailInspectEvent
}

func (c *call) key(a *Agent) uint64 {
	if c.h == 0 {
		c.h = a.aff.hash(c.cid)
	}
	return c.h
}

func invoke(ctx context.Context, m *member, c *call) (*agentwire.AgentResponse, error) {
	switch c.kind {
	case agentwire.EventRequestHeaders:
		if err := m.c.RequestHeadersInto(ctx, c.rh, c.dst); err != nil {
			return nil, err
		}
		return c.dst, nil
	case agentwire.EventRequestBodyChunk:
		return m.c.RequestBodyChunk(ctx, c.bc)
	case agentwire.EventResponseHeaders:
		return m.c.ResponseHeaders(ctx, c.rs)
	case agentwire.EventResponseBodyChunk:
		return m.c.ResponseBodyChunk(ctx, c.bc)
	case agentwire.EventRequestComplete:
		return m.c.RequestComplete(ctx, c.rc)
	case agentwire.EventWebSocketFrame:
		return m.c.WebSocketFrame(ctx, c.ws)
	default:
		return m.c.GuardrailInspect(ctx, c.gr)
	}
}

// RequestHeaders sends a request's headers to the agent and returns the
// verdict to enforce, decoding the agent's reply into dst (reset first;
// the verdict's Reply is dst when the agent answered; a nil dst gets a
// new reply). The connection
// chosen for it receives the request's later events (affinity), until End
// or the pin's expiry. ev and dst must not be used by anyone else until
// the call returns.
func (a *Agent) RequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventRequestHeaders}, true, opts)
	}
	if dst == nil {
		dst = new(agentwire.AgentResponse)
	}
	return a.send(ctx, call{kind: agentwire.EventRequestHeaders, cid: ev.Metadata.CorrelationID, rh: ev, dst: dst}, false, opts)
}

// send resolves c's options and makes the call; a call without an event
// (nilEvent) gets the failure policy's verdict for an error (the caller's
// mistake, not counted by the breaker), with an error of its own.
func (a *Agent) send(ctx context.Context, c call, nilEvent bool, opts []CallOption) engine.Verdict {
	r := a.resolve(c.kind, nil, opts)
	if nilEvent {
		a.ctr.requests.Add(1)
		return a.synthetic(c.kind, r.policy, engine.ReasonError, &engine.Error{Kind: engine.ErrInvalidEvent, Detail: "nil event"})
	}
	var v engine.Verdict
	a.do(ctx, &c, &r, &v)
	return v
}

// RequestBodyChunk sends a request body chunk, to the connection of the
// request's headers, subject to the agent's request body limit.
func (a *Agent) RequestBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventRequestBodyChunk}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventRequestBodyChunk, cid: ev.CorrelationID, bc: ev}, false, opts)
}

// ResponseHeaders sends the response headers, to the connection of the
// request's headers.
func (a *Agent) ResponseHeaders(ctx context.Context, ev *agentwire.ResponseHeadersEvent, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventResponseHeaders}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventResponseHeaders, cid: ev.CorrelationID, rs: ev}, false, opts)
}

// ResponseBodyChunk sends a response body chunk, to the connection of the
// request's headers, subject to the agent's response body limit.
func (a *Agent) ResponseBodyChunk(ctx context.Context, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventResponseBodyChunk}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventResponseBodyChunk, cid: ev.CorrelationID, bc: ev}, false, opts)
}

// RequestComplete sends the request-complete event, to the connection of
// the request's headers. It does not release the request's pin (End
// does).
func (a *Agent) RequestComplete(ctx context.Context, ev *agentwire.RequestCompleteEvent, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventRequestComplete}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventRequestComplete, cid: ev.CorrelationID, rc: ev}, false, opts)
}

// WebSocketFrame sends one WebSocket frame. The frames of one stream
// (correlation id) stick to one connection: the connection of the
// upgrade request's headers, or the first frame's, until End or the pin's
// idle expiry.
func (a *Agent) WebSocketFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventWebSocketFrame}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventWebSocketFrame, cid: ev.CorrelationID, ws: ev}, false, opts)
}

// GuardrailInspect sends a guardrail inspection to any connection (it has
// no affinity).
func (a *Agent) GuardrailInspect(ctx context.Context, ev *agentwire.GuardrailInspectEvent, opts ...CallOption) engine.Verdict {
	if ev == nil {
		return a.send(ctx, call{kind: agentwire.EventGuardrailInspect}, true, opts)
	}
	return a.send(ctx, call{kind: agentwire.EventGuardrailInspect, cid: ev.CorrelationID, gr: ev}, false, opts)
}

// End releases the request's pin (its later events would be balanced
// afresh). Call it when the request (or WebSocket stream) is over.
func (a *Agent) End(correlationID string) {
	if a.aff.slots.Load() != nil {
		a.aff.unpin(a.aff.hash(correlationID))
	}
}

// Cancel tells the connection the request is pinned to that the agent
// should stop working on it (engine.Conn.Cancel), and only that one (the
// Rust pool sends it on every connection). Without a pin it does nothing
// and returns nil: calls in flight are cancelled through their context.
func (a *Agent) Cancel(correlationID string, reason agentwire.CancelReason) error {
	if a.aff.slots.Load() == nil {
		return nil
	}
	now := time.Since(a.p.epoch).Milliseconds()
	id, ok := a.aff.lookup(a.aff.hash(correlationID), now)
	if !ok {
		return nil
	}
	if m := a.set.Load().byID(id); m != nil {
		return m.c.Cancel(correlationID, reason)
	}
	return nil
}

// synthetic makes and counts a verdict the agent did not give.
func (a *Agent) synthetic(kind int32, pol engine.FailurePolicy, reason engine.Reason, err error) engine.Verdict {
	v := pol.Synthetic(a.name, reason, own(err))
	a.ev.count(kind, &v)
	if v.Synthetic && reason != engine.ReasonNotSubscribed && v.Allowed() {
		a.warnFailOpen(reason, err)
	}
	return v
}

// own returns a copy of the agent's error templates (a.errNoConn, ...),
// so that the error a verdict hands to its caller is never a value shared
// with other calls; other errors (the connection's, already per call) are
// returned as they are. Failure paths only.
func own(err error) error {
	if e, ok := err.(*Error); ok {
		c := *e
		return &c
	}
	return err
}

// warnFailOpen logs a fail-open skip at warn level, at most once a second
// per agent (they are all counted).
func (a *Agent) warnFailOpen(reason engine.Reason, err error) {
	now := time.Now().UnixNano()
	last := a.lastWarn.Load()
	if now-last < int64(time.Second) || !a.lastWarn.CompareAndSwap(last, now) {
		return
	}
	a.p.o.log.Warn("agentwire: agent skipped (fail-open)", "agent", a.name, "reason", reason.String(), "err", err)
}

// do runs one call: subscription and body limit, breaker, concurrency
// slot, connection choice (affinity, balancing, refusals passed on),
// timeout, failure policy, accounting.
func (a *Agent) do(ctx context.Context, c *call, r *resolved, out *engine.Verdict) {
	tok, ok := a.begin(c, r, out)
	if !ok {
		return
	}
	a.slotAndAttempt(ctx, c, r, tok, out)
}

// begin counts a call in and runs its checks that need no connection
// (agent state, subscription, body limit, breaker). When it reports false
// the call is over: out holds its synthetic verdict and the call has been
// counted out (exit). Otherwise the caller continues with the breaker's
// token (slotAndAttempt, or a parallel fan-out's start).
func (a *Agent) begin(c *call, r *resolved, out *engine.Verdict) (probeToken, bool) {
	a.ctr.requests.Add(1)
	a.ctr.inFlight.Add(1)
	switch a.state.Load() {
	case agentDraining:
		*out = a.synthetic(c.kind, r.policy, engine.ReasonUnavailable, a.errDraining)
		a.exit()
		return 0, false
	case agentClosed:
		*out = a.synthetic(c.kind, r.policy, engine.ReasonUnavailable, a.errClosed)
		a.exit()
		return 0, false
	}
	if a.events()&(1<<uint(c.kind)) == 0 {
		*out = a.synthetic(c.kind, r.policy, engine.ReasonNotSubscribed, a.errNotSub)
		a.exit()
		return 0, false
	}
	if c.bc != nil {
		if l := a.bodyLimit(c.kind == agentwire.EventResponseBodyChunk); l >= 0 && bodySize(c.bc) > uint64(l) {
			*out = a.synthetic(c.kind, r.policy, engine.ReasonBodyTooLarge, a.errTooLarge)
			a.exit()
			return 0, false
		}
	}
	tok, ok := a.br.allow()
	if !ok {
		*out = a.synthetic(c.kind, r.policy, engine.ReasonBreakerOpen, a.errBreaker)
		a.exit()
		return 0, false
	}
	return tok, true
}

// slotAndAttempt is the rest of a call after begin: the concurrency slot
// (waited for when none is free), the attempts, the accounting, exit.
func (a *Agent) slotAndAttempt(ctx context.Context, c *call, r *resolved, tok probeToken, out *engine.Verdict) {
	defer a.exit()
	cctx := ctx
	var cancel context.CancelFunc
	if !a.lim.tryAcquire() {
		cctx, cancel = withTimeout(ctx, r.timeout)
		if err := a.waitSlot(cctx); err != nil {
			cancel()
			a.br.report(tok, outcomeIgnore)
			a.saturated.Add(1)
			switch {
			case ctx.Err() != nil:
				// The caller gave up (or its deadline passed) while waiting.
				*out = a.synthetic(c.kind, r.policy, engine.ReasonOf(err), &Error{Kind: ErrSaturated, Agent: a.name, Detail: "while waiting for a concurrency slot", Err: err})
				return
			case errors.Is(err, context.DeadlineExceeded) && cctx.Err() != nil:
				*out = a.synthetic(c.kind, r.policy, engine.ReasonTimeout, &Error{Kind: ErrSaturated, Agent: a.name, Detail: "no concurrency slot within the call's timeout", Err: err})
				return
			}
			*out = a.synthetic(c.kind, r.policy, engine.ReasonUnavailable, a.errSat)
			return
		}
	}
	var x try
	x.init(a, cctx, cancel != nil)
	m, o := a.attempts(ctx, &x, c, r, out)
	x.timer.stop()
	a.account(tok, cancel, m, o, c, out)
}

// account ends a call that held a concurrency slot: the slot, the slot
// wait's context (cancel, may be nil), the breaker's report, the decision
// and per-connection counts, the fail-open warning. The caller then calls
// exit.
func (a *Agent) account(tok probeToken, cancel context.CancelFunc, m *member, o outcome, c *call, out *engine.Verdict) {
	a.lim.release()
	if cancel != nil {
		cancel()
	}
	a.br.report(tok, o)
	a.ev.count(c.kind, out)
	if m != nil {
		m.ctr.count(out)
	}
	if out.Synthetic && out.Allowed() && out.Reason != engine.ReasonNotSubscribed {
		a.warnFailOpen(out.Reason, out.Err)
	}
}

// exit ends a call for Drain.
func (a *Agent) exit() {
	if a.ctr.inFlight.Add(-1) == 0 && a.state.Load() != agentOpen {
		select {
		case a.drainSig <- struct{}{}:
		default:
		}
	}
}

// waitSlot waits for a concurrency slot within ctx and the agent's
// maximum wait.
func (a *Agent) waitSlot(ctx context.Context) error {
	a.waits.Add(1)
	if a.o.maxWait > 0 {
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > a.o.maxWait {
			wctx, cancel := context.WithTimeoutCause(ctx, a.o.maxWait, a.errSat)
			defer cancel()
			if err := a.lim.acquireSlow(wctx); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return a.errSat
			}
			return nil
		}
	}
	return a.lim.acquireSlow(ctx)
}

// withTimeout bounds ctx by d when its own deadline is later.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// callTimer holds the timeout context a call made for itself, if any.
type callTimer struct{ cancel context.CancelFunc }

func (t *callTimer) bound(ctx context.Context, d time.Duration) context.Context {
	ctx, t.cancel = context.WithTimeout(ctx, d)
	return ctx
}

func (t *callTimer) stop() {
	if t.cancel != nil {
		t.cancel()
	}
}

// needTimer reports whether a call on m with timeout d needs a context
// deadline of its own: not when ctx ends sooner, nor when ctx has no
// deadline and m's connection enforces d itself.
func needTimer(ctx context.Context, d time.Duration, m *member) bool {
	if dl, ok := ctx.Deadline(); ok {
		return time.Until(dl) > d
	}
	return m.reqTimeout != d
}

// try is a call's progress through its attempts (connections tried,
// refusals passed on, flow-control waits), kept in a value so that a
// parallel fan-out can stop a call after its event went out (or before it
// would wait) and go on with it later (fanout.go).
type try struct {
	t         tried
	m         *member // the connection of the last attempt (nil: none chosen)
	lastErr   error   // the last refusal
	flowStuck bool
	timer     callTimer
	flowUntil time.Time
	rounds    int
	t0        time.Duration // the attempt's start, since the pool's epoch
	now       int64         // the call's start, ms since the pool's epoch (affinity)
	s         *memberSet
	cctx      context.Context // the call's context, with its timeout once needed
	bounded   bool            // cctx already carries the call's timeout
	resume    uint8           // where a stopped call goes on (fanout.go)
}

// The steps of an attempt (next, result).
const (
	tryNext  = iota // go on: an attempt on x.m (next), another choice (result)
	tryDone         // out holds the verdict
	tryNone         // no connection took the call: none decides
	tryBlock        // (nowait) the call must wait first; x.resume says for what
)

// init starts a call's attempts with context cctx (bounded: it carries the
// call's timeout).
func (x *try) init(a *Agent, cctx context.Context, bounded bool) {
	// One monotonic clock read per end of the call (time.Now reads the
	// wall clock too).
	x.t0 = time.Since(a.p.epoch)
	x.now = x.t0.Milliseconds()
	x.s = a.set.Load()
	x.cctx = cctx
	x.bounded = bounded
}

// attempts sends the call on a chosen connection, passing it on when a
// connection refuses it before sending, and turns the outcome into the
// verdict and what the breaker makes of it (a call no connection took is
// a failure when none of the agent's connections is connected, else
// neither a failure nor a success). It returns the connection of the
// last attempt.
func (a *Agent) attempts(ctx context.Context, x *try, c *call, r *resolved, out *engine.Verdict) (*member, outcome) {
	for a.next(x, c, r, false) == tryNext {
		reply, err := invoke(x.cctx, x.m, c)
		switch st, o := a.result(x, c, r, reply, err, out, false); st {
		case tryDone:
			return x.m, o
		case tryNone:
			return a.none(ctx, x, r, out)
		}
	}
	return a.none(ctx, x, r, out)
}

// next chooses and enters the connection of the call's next attempt:
// tryNext with x.m entered, tryNone when no connection will take the call,
// or, with nowait, tryBlock where a flow-control wait would begin (x.resume
// = resumePick: flowRetry then goes on).
func (a *Agent) next(x *try, c *call, r *resolved, nowait bool) int {
	for {
		m := a.choose(x.s, c, &x.t, x.now)
		x.m = m
		if m == nil {
			if !x.flowStuck && a.anyPaused(x.s) {
				x.flowStuck = true
			}
			if x.flowStuck && a.o.flow == FlowWaitAndRetry {
				if nowait {
					x.resume = resumePick
					return tryBlock
				}
				if a.flowRetry(x) {
					x.s = a.set.Load()
					continue
				}
			}
			return tryNone
		}
		x.t.add(m)
		if !m.enter() {
			// Taken out of the pool since the set was read: not sent.
			x.lastErr = a.errNoConn
			if x.t.n == maxAttempts {
				return tryNone
			}
			x.s = a.set.Load()
			continue
		}
		if !x.bounded && x.timer.cancel == nil && needTimer(x.cctx, r.timeout, m) {
			x.cctx = x.timer.bound(x.cctx, r.timeout)
		}
		m.ctr.requests.Add(1)
		if x.t.n > 1 {
			x.t0 = time.Since(a.p.epoch) // a retry: its own latency
		}
		return tryNext
	}
}

// flowRetry waits one round of FlowWaitAndRetry for a paused connection
// to resume; true (tried connections forgotten) when the call may try
// again.
func (a *Agent) flowRetry(x *try) bool {
	if x.flowUntil.IsZero() {
		x.flowUntil = time.Now().Add(a.o.flowWait)
		a.flowWaits.Add(1)
	}
	x.rounds++
	if !a.flowPause(x.cctx, x.flowUntil, x.rounds) {
		return false
	}
	x.t = tried{}
	x.flowStuck = false
	return true
}

// result takes the outcome of the attempt on x.m: tryDone with the
// verdict in out, tryNext to try again (a refusal passed on), tryNone when
// no connection will take the call, or, with nowait, tryBlock where a
// flow-control wait would begin (x.resume = resumeRefused).
func (a *Agent) result(x *try, c *call, r *resolved, reply *agentwire.AgentResponse, err error, out *engine.Verdict, nowait bool) (int, outcome) {
	m := x.m
	lat := time.Since(a.p.epoch) - x.t0
	m.exit()
	if err == nil {
		m.observe(lat)
		a.ev.latency[c.kind&7].observe(lat)
		*out = engine.Verdict{Decision: reply.Decision, Reply: reply, Agent: a.name}
		return tryDone, outcomeSuccess
	}
	refused, st := refusal(err)
	if !refused {
		m.observe(lat)
		a.ev.latency[c.kind&7].observe(lat)
		o := breakerOutcome(err)
		switch st {
		case ConnDown:
			// Lost: one breaker failure per loss of the connection,
			// however many calls were pending on it.
			m.setState(ConnDown)
			o = m.lossOutcome()
		case ConnClosed:
			a.retire(m)
		}
		*out = r.policy.Decide(a.name, nil, err)
		return tryDone, o
	}
	x.lastErr = err
	if st == ConnPaused {
		if h := m.c.Health(); !h.Paused {
			// A per-request pause or the in-flight cap the agent set:
			// this connection holds the request; flow control decides.
			x.flowStuck = true
			if a.o.flow == FlowWaitAndRetry {
				if nowait {
					x.resume = resumeRefused
					return tryBlock, 0
				}
				if a.flowRetry(x) {
					return tryNext, 0
				}
			}
			return tryNone, 0
		}
	}
	m.setState(st)
	if st == ConnPaused {
		x.flowStuck = true
	}
	if x.t.n == maxAttempts {
		return tryNone, 0
	}
	a.retries.Add(1)
	return tryNext, 0
}

// none decides a call that no connection took.
func (a *Agent) none(ctx context.Context, x *try, r *resolved, out *engine.Verdict) (*member, outcome) {
	if err := ctx.Err(); err != nil {
		*out = r.policy.Decide(a.name, nil, err)
		return x.m, outcomeIgnore
	}
	why := x.lastErr
	if why == nil {
		why = a.errNoConn
	}
	why = own(why)
	if x.flowStuck && a.o.flow == FlowFailOpen {
		*out = engine.FailurePolicy{Mode: engine.FailOpen}.Synthetic(a.name, engine.ReasonUnavailable, why)
		return x.m, outcomeIgnore
	}
	*out = r.policy.Synthetic(a.name, engine.ReasonUnavailable, why)
	if !x.flowStuck && a.down() {
		// No connection of the agent is connected: the agent as a whole
		// is down, a failure (one per call, as an error).
		return x.m, outcomeFailure
	}
	return x.m, outcomeIgnore
}

// down reports whether none of the agent's connections is connected
// (each is lost and reconnecting or still making its first connection,
// or there is none): the agent as a whole cannot be reached. Failure
// paths only.
func (a *Agent) down() bool {
	for _, m := range a.set.Load().list {
		if connected(ConnState(m.state.Load())) {
			return false
		}
	}
	return true
}

// comeBack is told that a connection of the agent (re)connected: an open
// breaker half-opens at once, so that the agent is probed without waiting
// for the end of the open period.
func (a *Agent) comeBack(m *member) {
	if a.br.wake() {
		a.p.o.log.Debug("agentwire: breaker half-open: a connection is back", "agent", a.name, "conn", m.id)
	}
}

// flowPause waits a little (doubling from 1 ms) for a paused connection to
// resume, re-reading the connections' health; false when flowUntil or
// ctx's end passed.
func (a *Agent) flowPause(ctx context.Context, until time.Time, round int) bool {
	wait := time.Until(until)
	if wait <= 0 || ctx.Err() != nil {
		return false
	}
	step := min(time.Millisecond<<min(round, 5), wait)
	tm := time.NewTimer(step)
	defer tm.Stop()
	select {
	case <-tm.C:
	case <-ctx.Done():
		return false
	}
	for _, m := range a.set.Load().list {
		if !m.gone.Load() && m.setState(stateOf(m.c.Health())) {
			a.comeBack(m)
		}
	}
	return true
}

func (a *Agent) anyPaused(s *memberSet) bool {
	for _, m := range s.list {
		if ConnState(m.state.Load()) == ConnPaused {
			return true
		}
	}
	return false
}

// choose picks the connection for a call: for a request's later events
// the connection pinned by its earlier ones while it is usable, else the
// balancer's choice (pinned for the events that follow).
func (a *Agent) choose(s *memberSet, c *call, t *tried, now int64) *member {
	switch {
	case c.kind == agentwire.EventGuardrailInspect:
		return a.pick(s, t)
	case c.pin != nil:
		// The request carries its pin.
		if id := *c.pin; id != 0 && t.n == 0 && c.kind != agentwire.EventRequestHeaders {
			if m := s.byID(id); m != nil && m.up() {
				return m
			}
			a.aff.fallbacks.Add(1)
		}
		m := a.pick(s, t)
		if m != nil {
			*c.pin = m.id
		}
		return m
	case c.kind == agentwire.EventRequestHeaders:
		m := a.pick(s, t)
		if m != nil && a.events()&laterEvents != 0 {
			a.aff.pin(c.key(a), m.id, now)
		}
		return m
	}
	h := c.key(a)
	if t.n == 0 {
		if id, ok := a.aff.lookup(h, now); ok {
			if m := s.byID(id); m != nil && m.up() {
				return m
			}
			a.aff.fallbacks.Add(1)
		}
	}
	m := a.pick(s, t)
	if m != nil {
		a.aff.pin(h, m.id, now)
	}
	return m
}

// bodySize is the size of the body a chunk belongs to, as far as known:
// its declared total, the bytes transferred so far, or the chunk itself.
func bodySize(ev *agentwire.BodyChunk) uint64 {
	n := max(ev.BytesTransferred, uint64(len(ev.Data)))
	if ts, ok := ev.TotalSize.Get(); ok {
		n = max(n, ts)
	}
	return n
}

// ---------------------------------------------------------------------------
// Membership

// addMember adds a connection to the pool and returns its member.
func (a *Agent) addMember(c link, src ConnSource, endpoint string, weight int, reqTimeout time.Duration, id uint32) (*member, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.state.Load() == agentClosed {
		return nil, a.errClosed
	}
	if id == 0 {
		id = a.newID()
	}
	m := &member{id: id, c: c, endpoint: endpoint, source: src, weight: max(weight, 1), reqTimeout: reqTimeout, idle: make(chan struct{}, 1)}
	h := c.Health()
	m.state.Store(uint32(stateOf(h)))
	if h.Connected {
		a.learn(c.Capabilities())
	}
	old := a.set.Load().list
	list := append(slices.Clip(old), m)
	a.set.Store(newMemberSet(list))
	a.notifyLocked()
	a.p.o.log.Info("agentwire: connection joined", "agent", a.name, "conn", id, "endpoint", endpoint, "source", src.String())
	if h.Connected {
		// A connection joined connected (an agent that started late, a
		// reverse connection that registered): probe at once.
		a.comeBack(m)
	}
	return m, nil
}

func (a *Agent) newID() uint32 {
	id := a.nextID.Add(1) & affMaxID
	if id == 0 {
		id = a.nextID.Add(1) & affMaxID
	}
	return id
}

// removeMember takes m out of the pool (its state becomes final). It
// reports false when m was not in it.
func (a *Agent) removeMember(m *member, final ConnState) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.set.Load().list
	i := slices.Index(old, m)
	if i < 0 {
		return false
	}
	list := make([]*member, 0, len(old)-1)
	list = append(append(list, old[:i]...), old[i+1:]...)
	a.set.Store(newMemberSet(list))
	m.leave(final)
	a.notifyLocked()
	a.p.o.log.Info("agentwire: connection left", "agent", a.name, "conn", m.id, "endpoint", m.endpoint, "state", final.String())
	return true
}

// retire removes a member whose connection closed, and closes it (its
// Close is idempotent and waits for its goroutines).
func (a *Agent) retire(m *member) {
	if a.removeMember(m, ConnClosed) {
		_ = m.c.Close()
	}
}

func (a *Agent) notifyLocked() {
	close(a.changed)
	a.changed = make(chan struct{})
}

// AddConn adds an established connection to the agent's pool, with a
// weight for BalanceWeighted (0: 1). The pool closes it when the agent
// or the pool is closed, or when it is removed (RemoveConn).
func (a *Agent) AddConn(c *engine.Conn, weight int) error {
	if c == nil {
		return configErr("nil connection")
	}
	if weight < 0 || weight > 1000 {
		return configErr(fmt.Sprintf("weight %d, want 1..1000", weight))
	}
	_, err := a.addMember(c, SourceAdded, c.AgentName(), weight, 0, 0)
	return err
}

// RemoveConn takes c out of the agent's pool while traffic flows: new
// calls no longer choose it, requests pinned to it move to another
// connection, its calls in flight are waited for within ctx (c.Drain),
// and it is closed (at once when ctx ends first; Drain's error is
// returned). It fails with ErrInvalidConfig when c is not in the pool.
func (a *Agent) RemoveConn(ctx context.Context, c *engine.Conn) error {
	var m *member
	for _, x := range a.set.Load().list {
		if x.c == link(c) {
			m = x
		}
	}
	if m == nil {
		return configErr("connection not in the agent's pool")
	}
	return a.removeConn(ctx, m)
}

func (a *Agent) removeConn(ctx context.Context, m *member) error {
	if !a.removeMember(m, ConnDraining) {
		return configErr("connection not in the agent's pool")
	}
	// Calls that chose it before it left are waited for here: one that
	// reached the connection only after its Drain closed it would fail.
	err := m.waitIdle(ctx)
	if err == nil {
		err = m.c.Drain(ctx)
	}
	if err != nil {
		_ = m.c.Close()
	}
	m.state.Store(uint32(ConnClosed))
	return err
}

// Conns returns the agent's connections (a snapshot).
func (a *Agent) Conns() []*engine.Conn {
	var out []*engine.Conn
	for _, m := range a.set.Load().list {
		if c, ok := m.c.(*engine.Conn); ok {
			out = append(out, c)
		}
	}
	return out
}

// WaitReady waits until at least n of the agent's connections take calls
// (n <= 0: every connection configured so far, dialled or added). It
// returns ctx's error when ctx ends first, ErrClosed when the agent is
// closed, and the error of an endpoint that can never connect (its
// address or options were refused).
func (a *Agent) WaitReady(ctx context.Context, n int) error {
	for {
		a.mu.Lock()
		ch := a.changed
		want := n
		if want <= 0 {
			want = len(a.set.Load().list) + len(a.dialing)
		}
		var failed error
		for _, d := range a.dialing {
			if d.err != nil {
				failed = d.err
			}
		}
		a.mu.Unlock()
		if failed != nil {
			return failed
		}
		if a.state.Load() == agentClosed {
			return a.errClosed
		}
		up := 0
		for _, m := range a.set.Load().list {
			if m.up() {
				up++
			}
		}
		if up >= want {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// check re-reads the health of every connection (the pool's maintenance
// tick): connections that recovered take calls again, closed reverse
// connections leave.
func (a *Agent) check() {
	changed, learned := false, false
	for _, m := range a.set.Load().list {
		h := m.c.Health()
		st := stateOf(h)
		if !h.Connected && m.source == SourceReverse {
			// A reverse connection never reconnects: it is gone.
			a.retire(m)
			continue
		}
		if h.Connected && !learned {
			// The capabilities of a connected connection: an agent that
			// was upgraded announces its new ones after reconnecting.
			a.learn(m.c.Capabilities())
			learned = true
		}
		if ConnState(m.state.Load()) != st {
			if m.setState(st) {
				a.comeBack(m)
			}
			changed = true
		}
	}
	if changed {
		a.mu.Lock()
		a.notifyLocked()
		a.mu.Unlock()
	}
}

// ---------------------------------------------------------------------------
// Drain and close

// Drain retires the agent gracefully: new calls get the failure policy
// with ReasonUnavailable (ErrDraining) at once, the calls in flight are
// waited for, then every connection is drained (engine.Conn.Drain: the
// agent is told, where it can be) and closed. If ctx ends first, Drain
// closes everything at once and returns ctx's error.
func (a *Agent) Drain(ctx context.Context) error {
	a.state.CompareAndSwap(agentOpen, agentDraining)
	var err error
wait:
	for a.ctr.inFlight.Load() > 0 {
		select {
		case <-a.drainSig:
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-a.closed:
			break wait
		}
	}
	if err != nil {
		a.close()
		return err
	}
	return a.shutdown(ctx, true)
}

// close closes the agent at once: calls in flight fail with the
// connections' ErrClosed.
func (a *Agent) close() { _ = a.shutdown(context.Background(), false) }

func (a *Agent) shutdown(ctx context.Context, drain bool) error {
	a.closeMu.Lock()
	defer a.closeMu.Unlock()
	if a.state.Swap(agentClosed) == agentClosed {
		return nil
	}
	a.cancel()
	a.dials.Wait()
	a.mu.Lock()
	list := a.set.Load().list
	a.set.Store(newMemberSet(nil))
	a.dialing = nil
	a.dialingN.Store(0)
	a.notifyLocked()
	a.mu.Unlock()
	close(a.closed)
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, m := range list {
		m.leave(ConnDraining)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if drain {
				if errs[i] = m.c.Drain(ctx); errs[i] == nil {
					m.state.Store(uint32(ConnClosed))
					return
				}
			}
			_ = m.c.Close()
			m.state.Store(uint32(ConnClosed))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil && !errors.Is(err, engine.ErrClosed) {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// Statistics

// Breaker returns the state of the agent's circuit breaker.
func (a *Agent) Breaker() BreakerState { return a.br.State() }

// Stats returns a snapshot of the agent's counters. It takes no lock and
// does not allocate.
func (a *Agent) Stats() AgentStats {
	s := a.set.Load()
	up := 0
	for _, m := range s.list {
		if m.up() {
			up++
		}
	}
	dialing := int(a.dialingN.Load())
	st := AgentStats{
		Name:                a.name,
		InFlight:            a.ctr.inFlight.Load(),
		Requests:            a.ctr.requests.Load(),
		QueueWaits:          a.waits.Load(),
		Saturated:           a.saturated.Load(),
		Retries:             a.retries.Load(),
		FlowWaits:           a.flowWaits.Load(),
		DialFailures:        a.dialFails.Load(),
		Breaker:             a.br.State(),
		BreakerOpens:        a.br.opens.Load(),
		BreakerRejected:     a.br.rejected.Load(),
		BreakerLeaseExpired: a.br.leaseLost.Load(),
		Conns:               len(s.list) + dialing,
		ConnsUp:             up,
		Healthy:             up > 0,
		Pins:                a.aff.live(time.Since(a.p.epoch).Milliseconds()),
		PinsRejected:        a.aff.rejected.Load(),
		PinsExpired:         a.aff.expired.Load(),
		AffinityFallbacks:   a.aff.fallbacks.Load(),
	}
	a.ev.totals(&st)
	return st
}

// ConnStats returns a snapshot of each connection's counters, including
// the connections still making their first connection.
func (a *Agent) ConnStats() []ConnStats {
	s := a.set.Load()
	out := make([]ConnStats, 0, len(s.list))
	for _, m := range s.list {
		out = append(out, ConnStats{
			ID: m.id, Endpoint: m.endpoint, Source: m.source, State: ConnState(m.state.Load()),
			Health: m.c.Health(), InFlight: m.ctr.inFlight.Load(), Requests: m.ctr.requests.Load(),
			Decisions: m.ctr.decisionsSnapshot(), Errors: m.ctr.reasonsSnapshot(),
			Latency: m.ctr.latency.snapshot(), LatencyEWMA: time.Duration(m.ewma.Load()), Weight: m.weight,
		})
	}
	a.mu.Lock()
	for _, d := range a.dialing {
		out = append(out, ConnStats{ID: d.id, Endpoint: d.endpoint, Source: SourceDialed, State: ConnConnecting, Weight: d.weight})
	}
	a.mu.Unlock()
	return out
}
