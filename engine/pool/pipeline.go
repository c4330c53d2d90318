package pool

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// Step is one agent of a pipeline.
type Step struct {
	// Agent is the agent to call.
	Agent *Agent
	// Policy, when set, overrides the agent's failure policy in this
	// pipeline (as a route's agent filter does in the Rust proxy). A call's
	// WithCallPolicy overrides it in turn.
	Policy *engine.FailurePolicy
}

// PipelineOption configures a Pipeline.
type PipelineOption interface{ applyPipeline(*Pipeline) }

type pipelineOptionFunc func(*Pipeline)

func (f pipelineOptionFunc) applyPipeline(p *Pipeline) { f(p) }

// WithSequentialHeaders sends request headers (and request-complete
// events) to the agents one after another, in order, stopping at the
// first verdict that is not allow. By default they go to every agent in
// parallel, as in the Rust proxy.
func WithSequentialHeaders() PipelineOption {
	return pipelineOptionFunc(func(p *Pipeline) { p.sequential = true })
}

// Pipeline is the ordered list of agents of a route. It is immutable and
// safe for concurrent use; per-request state lives in a Request.
//
// Phases:
//
//   - Request headers and request complete go to every subscribed agent,
//     in parallel (default) or in sequence (WithSequentialHeaders).
//   - Body chunks, response headers and WebSocket frames go to the
//     subscribed agents in sequence, in order, and stop at the first
//     verdict that is not allow (that verdict decides). The Rust proxy
//     ignores decisions and failure modes in the response phases; this
//     pipeline returns them, and the proxy decides what to enforce.
//
// Only agents subscribed to the event kind (Agent.Subscribed: their
// configuration and their capabilities) receive it; the others get a
// synthetic allow with ReasonNotSubscribed and nothing is sent. Body
// chunks over an agent's body limit are not sent to it: a synthetic 413
// block in fail-closed, a skip in fail-open (WithBodyLimits).
//
// Merging (the Rust proxy's rule): the verdict of a phase is the first
// verdict that is not allow in agent order, where an agent's own decision
// beats a synthetic one (a fail-closed timeout of the first agent does
// not hide an explicit block of the second); allow when every agent
// allowed or was skipped. Header operations of every agent that answered
// are concatenated in agent order (Request.RequestHeaderOps,
// Request.ResponseHeaderOps: applying them in order makes a later agent's
// set win), and so is audit data (Request.Audit).
type Pipeline struct {
	steps      []Step
	sequential bool
}

// NewPipeline returns a pipeline of the steps, in order. Each step needs
// an Agent; an agent may appear once.
func NewPipeline(steps []Step, opts ...PipelineOption) (*Pipeline, error) {
	if len(steps) == 0 {
		return nil, configErr("pipeline without steps")
	}
	pl := &Pipeline{steps: append([]Step(nil), steps...)}
	seen := map[*Agent]bool{}
	for i, s := range pl.steps {
		if s.Agent == nil {
			return nil, configErr(fmt.Sprintf("pipeline step %d has no agent", i))
		}
		if seen[s.Agent] {
			return nil, configErr(fmt.Sprintf("agent %s appears twice in the pipeline", s.Agent.name))
		}
		seen[s.Agent] = true
		if s.Policy != nil {
			p := *s.Policy
			pl.steps[i].Policy = &p
		}
	}
	for _, o := range opts {
		if o != nil {
			o.applyPipeline(pl)
		}
	}
	return pl, nil
}

// Steps returns a copy of the pipeline's steps.
func (pl *Pipeline) Steps() []Step { return append([]Step(nil), pl.steps...) }

// Request carries one HTTP request (or WebSocket stream) through a
// pipeline: the result of its last phase and its per-agent state (the
// connection each agent's events are pinned to). Use one Request for all
// the phases of a request, and reuse it for later requests after End (or
// Reset): with a reused Request the request-headers phase of a one-agent
// pipeline allocates nothing. A Request must not be used by two phases at
// once, nor with two pipelines.
type Request struct {
	// Verdicts holds the last phase's verdict of each step, in pipeline
	// order. A step that a sequential phase did not reach (an earlier
	// agent stopped it) has the zero Verdict but its Agent name.
	Verdicts []engine.Verdict
	// RequestHeaderOps and ResponseHeaderOps are the last phase's header
	// operations of every agent that answered, in agent order.
	RequestHeaderOps  []agentwire.HeaderOp
	ResponseHeaderOps []agentwire.HeaderOp
	// Audit is the last phase's audit data of every agent that answered:
	// tags, rule ids and reason codes concatenated in agent order, the
	// highest confidence, and custom keys (the first agent's value of a
	// key wins).
	Audit agentwire.AuditMetadata

	replies []agentwire.AgentResponse // request-headers replies (reused)
	pins    []uint32                  // per step: the connection the request is pinned to (0: none)
	calls   []pcall                   // per step: its call in a parallel request-headers phase (reused)
	state   []uint8                   // per step: its pcall's state (pcDone, pcStarted, pcBlock)
	wg      sync.WaitGroup
}

// Reset clears r for another request, keeping its storage.
func (r *Request) Reset() {
	for i := range r.Verdicts {
		r.Verdicts[i] = engine.Verdict{}
	}
	r.Verdicts = r.Verdicts[:0]
	r.RequestHeaderOps = r.RequestHeaderOps[:0]
	r.ResponseHeaderOps = r.ResponseHeaderOps[:0]
	resetAudit(&r.Audit)
	clear(r.pins)
}

func resetAudit(a *agentwire.AuditMetadata) {
	if len(a.Tags)+len(a.RuleIDs)+len(a.ReasonCodes) == 0 && a.Custom == nil && !a.Confidence.Valid {
		return
	}
	*a = agentwire.AuditMetadata{Tags: a.Tags[:0], RuleIDs: a.RuleIDs[:0], ReasonCodes: a.ReasonCodes[:0]}
}

// begin prepares r for a phase of pl: every step's verdict is written by
// the phase (or by unreached, for the steps it did not reach).
func (r *Request) begin(pl *Pipeline) {
	n := len(pl.steps)
	if cap(r.Verdicts) < n {
		r.Verdicts = make([]engine.Verdict, n)
	}
	r.Verdicts = r.Verdicts[:n]
	if len(r.pins) != n {
		// A Request used with another pipeline: its pins mean nothing.
		r.pins = append(r.pins[:0], make([]uint32, n)...)
	}
	r.RequestHeaderOps = r.RequestHeaderOps[:0]
	r.ResponseHeaderOps = r.ResponseHeaderOps[:0]
	resetAudit(&r.Audit)
}

// unreached gives the steps after i, which a sequential phase did not
// reach, the zero verdict with their agent's name.
func (r *Request) unreached(pl *Pipeline, i int) {
	for j := i + 1; j < len(pl.steps); j++ {
		r.Verdicts[j] = engine.Verdict{Agent: pl.steps[j].Agent.name}
	}
}

// RequestHeaders sends the request's headers to the subscribed agents
// (in parallel unless WithSequentialHeaders) and returns the merged
// verdict; r holds each agent's verdict and the merged header operations
// and audit. The agents' replies are decoded into storage of r, valid
// until r's next request-headers phase. ev must not be modified until the
// call returns.
func (pl *Pipeline) RequestHeaders(ctx context.Context, r *Request, ev *agentwire.RequestHeadersEvent, opts ...CallOption) engine.Verdict {
	cid := ev.Metadata.CorrelationID
	r.begin(pl)
	n := len(pl.steps)
	if cap(r.replies) < n {
		r.replies = make([]agentwire.AgentResponse, n)
	}
	r.replies = r.replies[:n]
	pl.fanOut(ctx, r, call{kind: agentwire.EventRequestHeaders, cid: cid, rh: ev}, opts)
	return pl.merge(r)
}

// RequestComplete sends the request-complete event to the subscribed
// agents (in parallel unless WithSequentialHeaders) and returns the merged
// verdict. It does not release the request's pins: End does.
func (pl *Pipeline) RequestComplete(ctx context.Context, r *Request, ev *agentwire.RequestCompleteEvent, opts ...CallOption) engine.Verdict {
	r.begin(pl)
	pl.fanOut(ctx, r, call{kind: agentwire.EventRequestComplete, cid: ev.CorrelationID, rc: ev}, opts)
	return pl.merge(r)
}

// fanOut sends c to every step subscribed to its kind (the others get a
// not-subscribed verdict): in sequence, stopping at the first verdict
// that is not allow, or in parallel. In parallel, request headers go out
// through startAll when more than one step takes them; other events run
// the first subscribed step on the calling goroutine and the others on
// goroutines of their own.
func (pl *Pipeline) fanOut(ctx context.Context, r *Request, c call, opts []CallOption) {
	if !pl.sequential && c.kind == agentwire.EventRequestHeaders && len(pl.steps) > 1 {
		pl.startAll(ctx, r, c, opts)
		return
	}
	first, spawned := -1, false
	for i := range pl.steps {
		if !pl.admit(r, i, c.kind, opts) {
			continue
		}
		if pl.sequential {
			pl.run(ctx, r, i, c, opts)
			if !r.Verdicts[i].Allowed() {
				r.unreached(pl, i)
				return
			}
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		r.wg.Add(1)
		spawned = true
		pl.spawn(ctx, r, i, c, opts)
	}
	if first >= 0 {
		pl.run(ctx, r, first, c, opts)
	}
	if spawned {
		r.wg.Wait()
	}
}

// startAll is the parallel request-headers phase (see fanout.go): every
// subscribed step's call is started on the calling goroutine, then each
// started call is waited for in pipeline order; a call that must wait for
// something before its event can go out goes on on a goroutine of its own
// (r.wg counts them). With one subscribed step, it is simply run.
func (pl *Pipeline) startAll(ctx context.Context, r *Request, c call, opts []CallOption) {
	n := len(pl.steps)
	if cap(r.calls) < n {
		r.calls = make([]pcall, n)
		r.state = make([]uint8, n)
	}
	r.calls, r.state = r.calls[:n], r.state[:n]
	subscribed, last := 0, -1
	for i := range pl.steps {
		r.state[i] = pcDone
		if pl.admit(r, i, c.kind, opts) {
			r.state[i] = pcStarted // to be started
			subscribed++
			last = i
		}
	}
	if subscribed == 1 {
		pl.run(ctx, r, last, c, opts)
		return
	}
	spawned := false
	for i := range pl.steps {
		if r.state[i] == pcDone {
			continue
		}
		st := &pl.steps[i]
		pc := &r.calls[i]
		pc.c = c
		pc.c.pin = &r.pins[i]
		pc.c.dst = &r.replies[i] // reset by the connection
		pc.r = st.Agent.resolve(c.kind, st.Policy, opts)
		r.state[i] = uint8(st.Agent.start(ctx, pc, &r.Verdicts[i]))
		if r.state[i] == pcBlock {
			r.wg.Add(1)
			spawned = true
			pl.cont(ctx, r, i)
		}
	}
	for i := range pl.steps {
		if r.state[i] == pcStarted {
			pl.steps[i].Agent.finish(ctx, &r.calls[i], &r.Verdicts[i])
		}
	}
	if spawned {
		r.wg.Wait()
	}
	for i := range r.calls {
		r.calls[i] = pcall{} // drop the references to the request's events
	}
}

// cont goes on with step i's stopped call on a goroutine of its own
// (r.wg counts it).
func (pl *Pipeline) cont(ctx context.Context, r *Request, i int) {
	go func() {
		defer r.wg.Done()
		pl.steps[i].Agent.cont(ctx, &r.calls[i], &r.Verdicts[i])
	}()
}

// run sends c to step i and records its verdict.
func (pl *Pipeline) run(ctx context.Context, r *Request, i int, c call, opts []CallOption) {
	st := &pl.steps[i]
	res := st.Agent.resolve(c.kind, st.Policy, opts)
	c.pin = &r.pins[i]
	if c.kind == agentwire.EventRequestHeaders {
		c.dst = &r.replies[i] // reset by the connection
	}
	st.Agent.do(ctx, &c, &res, &r.Verdicts[i])
}

// spawn runs step i on a goroutine of its own (r.wg counts it).
func (pl *Pipeline) spawn(ctx context.Context, r *Request, i int, c call, opts []CallOption) {
	go func() {
		defer r.wg.Done()
		pl.run(ctx, r, i, c, opts)
	}()
}

// admit reports whether step i takes events of kind; if not, its verdict
// is the not-subscribed allow.
func (pl *Pipeline) admit(r *Request, i int, kind int32, opts []CallOption) bool {
	st := &pl.steps[i]
	if st.Agent.Subscribed(kind) {
		return true
	}
	res := st.Agent.resolve(kind, st.Policy, opts)
	st.Agent.ctr.requests.Add(1)
	r.Verdicts[i] = st.Agent.synthetic(kind, res.policy, engine.ReasonNotSubscribed, st.Agent.errNotSub)
	return false
}

// sequence runs one event through the subscribed steps in order, stopping
// at the first verdict that is not allow.
func (pl *Pipeline) sequence(ctx context.Context, r *Request, c call, opts []CallOption) engine.Verdict {
	r.begin(pl)
	for i := range pl.steps {
		if !pl.admit(r, i, c.kind, opts) {
			continue
		}
		pl.run(ctx, r, i, c, opts)
		if !r.Verdicts[i].Allowed() {
			r.unreached(pl, i)
			break
		}
	}
	return pl.merge(r)
}

// RequestBodyChunk sends a request body chunk through the subscribed
// agents in sequence (each to the connection of the request's headers),
// stopping at the first verdict that is not allow.
func (pl *Pipeline) RequestBodyChunk(ctx context.Context, r *Request, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	return pl.sequence(ctx, r, call{kind: agentwire.EventRequestBodyChunk, cid: ev.CorrelationID, bc: ev}, opts)
}

// ResponseHeaders sends the response headers through the subscribed
// agents in sequence, stopping at the first verdict that is not allow.
func (pl *Pipeline) ResponseHeaders(ctx context.Context, r *Request, ev *agentwire.ResponseHeadersEvent, opts ...CallOption) engine.Verdict {
	return pl.sequence(ctx, r, call{kind: agentwire.EventResponseHeaders, cid: ev.CorrelationID, rs: ev}, opts)
}

// ResponseBodyChunk sends a response body chunk through the subscribed
// agents in sequence, stopping at the first verdict that is not allow.
func (pl *Pipeline) ResponseBodyChunk(ctx context.Context, r *Request, ev *agentwire.BodyChunk, opts ...CallOption) engine.Verdict {
	return pl.sequence(ctx, r, call{kind: agentwire.EventResponseBodyChunk, cid: ev.CorrelationID, bc: ev}, opts)
}

// WebSocketFrame sends one WebSocket frame through the subscribed agents
// in sequence, each on its sticky connection for the stream, stopping at
// the first verdict that is not allow. The agent's WebSocket decision, if
// any, is in its verdict's Reply.
func (pl *Pipeline) WebSocketFrame(ctx context.Context, r *Request, ev *agentwire.WebSocketFrameEvent, opts ...CallOption) engine.Verdict {
	return pl.sequence(ctx, r, call{kind: agentwire.EventWebSocketFrame, cid: ev.CorrelationID, ws: ev}, opts)
}

// End ends the request: its pins are released (they live in r) and r is
// reset for another request. Call it once the request (or WebSocket
// stream) is over.
func (pl *Pipeline) End(r *Request) { r.Reset() }

// Cancel asks every agent of the pipeline that saw the request to stop
// working on it (engine.Conn.Cancel on the connection the request is
// pinned to, and only there).
func (pl *Pipeline) Cancel(r *Request, correlationID string, reason agentwire.CancelReason) {
	if len(r.pins) != len(pl.steps) {
		return
	}
	for i := range pl.steps {
		id := r.pins[i]
		if id == 0 {
			continue
		}
		if m := pl.steps[i].Agent.set.Load().byID(id); m != nil {
			_ = m.c.Cancel(correlationID, reason)
		}
	}
}

// merge computes the phase's verdict from r.Verdicts and collects the
// replies' header operations and audit data.
func (pl *Pipeline) merge(r *Request) engine.Verdict {
	explicit, synthetic := -1, -1
	customs := 0
	var custom map[string]json.RawMessage
	for i := range r.Verdicts {
		v := &r.Verdicts[i]
		if !v.Allowed() {
			if !v.Synthetic && explicit < 0 {
				explicit = i
			}
			if v.Synthetic && synthetic < 0 {
				synthetic = i
			}
		}
		rep := v.Reply
		if rep == nil {
			continue
		}
		r.RequestHeaderOps = append(r.RequestHeaderOps, rep.RequestHeaders...)
		r.ResponseHeaderOps = append(r.ResponseHeaderOps, rep.ResponseHeaders...)
		au := &rep.Audit
		r.Audit.Tags = append(r.Audit.Tags, au.Tags...)
		r.Audit.RuleIDs = append(r.Audit.RuleIDs, au.RuleIDs...)
		r.Audit.ReasonCodes = append(r.Audit.ReasonCodes, au.ReasonCodes...)
		if c, ok := au.Confidence.Get(); ok {
			if cur, ok := r.Audit.Confidence.Get(); !ok || c > cur {
				r.Audit.Confidence = agentwire.Some(c)
			}
		}
		if len(au.Custom) > 0 {
			customs++
			switch customs {
			case 1:
				custom = au.Custom // shared with the reply: read-only
			case 2:
				merged := make(map[string]json.RawMessage, len(custom)+len(au.Custom))
				for k, v := range custom {
					merged[k] = v
				}
				custom = merged
				fallthrough
			default:
				for k, v := range au.Custom {
					if _, ok := custom[k]; !ok {
						custom[k] = v
					}
				}
			}
		}
	}
	r.Audit.Custom = custom
	switch {
	case explicit >= 0:
		return r.Verdicts[explicit]
	case synthetic >= 0:
		return r.Verdicts[synthetic]
	}
	return engine.Verdict{}
}
