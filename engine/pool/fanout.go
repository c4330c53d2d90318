package pool

import (
	"context"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// The parallel fan-out of request headers without a goroutine per agent.
//
// A pipeline's parallel request-headers phase starts every subscribed
// agent's call on the calling goroutine and then waits for each, in
// pipeline order: start runs a call as do would (begin, the concurrency
// slot, the choice of a connection) up to the connection's
// engine.Conn.StartRequestHeaders, which writes the event (itself, when
// the connection's writer is idle) and returns; finish waits for the reply
// (engine.Call.Wait) and does the rest (the outcome, refusals passed on,
// accounting). The agents work at the same time while the caller pays
// neither a goroutine start nor a hand-off to it: the replies are the only
// wake-ups left.
//
// A call is never left holding what other calls need while it waits for
// something of its own: where do would wait (for a concurrency slot of
// the agent, a flow-control resume, a connection's admission: its
// max_concurrency, its flow control, a reconnection), start stops before
// waiting and the call goes on from there on a goroutine of its own (cont),
// exactly as before this split. So the failure policy, breaker, limiter,
// affinity and statistics are do's: the same functions run in the same
// order. The one difference is when a call's latency is read: when the
// caller takes its reply, which for the second and later agents may be a
// little after the reply arrived (the caller was taking an earlier
// agent's).

// pcall states.
const (
	pcDone    = iota // the call is over: its verdict is written
	pcStarted        // the event is on its way: finish waits for the reply
	pcBlock          // the call must wait for something: cont goes on with it
)

// Where a stopped call goes on (try.resume).
const (
	resumeSlot    = iota + 1 // wait for a concurrency slot, then attempt (slotAndAttempt)
	resumeInvoke             // make the call on x.m blocking (its connection would wait)
	resumePick               // a flow-control wait, then choose again (next)
	resumeRefused            // a flow-control wait after a refusal, then choose again (result)
)

// starter is implemented by connections that split a request-headers
// call into start and wait (engine.Conn).
type starter interface {
	StartRequestHeaders(ctx context.Context, ev *agentwire.RequestHeadersEvent, dst *agentwire.AgentResponse, call *engine.Call) (bool, error)
}

var _ starter = (*engine.Conn)(nil)

// pcall is one agent's call of a parallel fan-out, from its start to its
// end (a Request keeps one per step and reuses it).
type pcall struct {
	x   try
	ec  engine.Call
	c   call
	r   resolved
	tok probeToken
}

// start begins pc's call (a request-headers event) on the calling
// goroutine and returns without waiting for the agent: pcStarted when the
// event is on its way (finish must follow), pcDone when the call is over
// (out holds its verdict), pcBlock when it must wait for something first
// (cont must follow, on a goroutine of its own).
func (a *Agent) start(ctx context.Context, pc *pcall, out *engine.Verdict) int {
	tok, ok := a.begin(&pc.c, &pc.r, out)
	if !ok {
		return pcDone
	}
	pc.tok = tok
	pc.x = try{}
	if !a.lim.tryAcquire() {
		pc.x.resume = resumeSlot
		return pcBlock
	}
	x := &pc.x
	x.init(a, ctx, false)
	for {
		switch a.next(x, &pc.c, &pc.r, true) {
		case tryNone:
			m, o := a.none(ctx, x, &pc.r, out)
			a.end(pc, out, m, o)
			return pcDone
		case tryBlock:
			return pcBlock
		}
		st, ok := x.m.c.(starter)
		if !ok {
			x.resume = resumeInvoke // a connection that does not split
			return pcBlock
		}
		started, err := st.StartRequestHeaders(x.cctx, pc.c.rh, pc.c.dst, &pc.ec)
		if started {
			return pcStarted
		}
		if err == nil {
			x.resume = resumeInvoke // its admission would wait
			return pcBlock
		}
		switch res, o := a.result(x, &pc.c, &pc.r, nil, err, out, true); res {
		case tryDone:
			a.end(pc, out, x.m, o)
			return pcDone
		case tryNone:
			m, o := a.none(ctx, x, &pc.r, out)
			a.end(pc, out, m, o)
			return pcDone
		case tryBlock:
			return pcBlock
		}
	}
}

// finish waits for the reply of a call start left under way and ends the
// call (trying other connections if it was refused, as do would).
func (a *Agent) finish(ctx context.Context, pc *pcall, out *engine.Verdict) {
	x := &pc.x
	err := pc.ec.Wait()
	var reply *agentwire.AgentResponse
	if err == nil {
		reply = pc.c.dst
	}
	m, o := x.m, outcomeIgnore
	switch res, ro := a.result(x, &pc.c, &pc.r, reply, err, out, false); res {
	case tryDone:
		o = ro
	case tryNone:
		m, o = a.none(ctx, x, &pc.r, out)
	default:
		m, o = a.attempts(ctx, x, &pc.c, &pc.r, out)
	}
	a.end(pc, out, m, o)
}

// cont goes on with a call start stopped before a wait, blocking as do
// does, and ends it.
func (a *Agent) cont(ctx context.Context, pc *pcall, out *engine.Verdict) {
	x := &pc.x
	var (
		m *member
		o outcome
	)
	switch x.resume {
	case resumeSlot:
		a.slotAndAttempt(ctx, &pc.c, &pc.r, pc.tok, out)
		return
	case resumeInvoke:
		reply, err := invoke(x.cctx, x.m, &pc.c)
		switch res, ro := a.result(x, &pc.c, &pc.r, reply, err, out, false); res {
		case tryDone:
			m, o = x.m, ro
		case tryNone:
			m, o = a.none(ctx, x, &pc.r, out)
		default:
			m, o = a.attempts(ctx, x, &pc.c, &pc.r, out)
		}
	case resumePick, resumeRefused:
		if !a.flowRetry(x) {
			m, o = a.none(ctx, x, &pc.r, out)
			break
		}
		if x.resume == resumePick {
			x.s = a.set.Load()
		}
		m, o = a.attempts(ctx, x, &pc.c, &pc.r, out)
	}
	a.end(pc, out, m, o)
}

// end accounts a call of a fan-out that held a concurrency slot and
// counts it out.
func (a *Agent) end(pc *pcall, out *engine.Verdict, m *member, o outcome) {
	pc.x.timer.stop()
	a.account(pc.tok, nil, m, o, &pc.c, out)
	a.exit()
}
