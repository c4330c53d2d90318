package httpguard

import (
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// preReadSize is the buffer a request body is read into before the
// handler runs, when an agent buffers it.
const preReadSize = 32 << 10

// requestBody prepares the request-body phase: a stage per subscribed
// agent, the body wrapped for them (and for the request-complete event's
// size), and, when an agent buffers, the body read before the handler
// runs. It reports whether the request was answered already.
func (x *exchange) requestBody() bool {
	g, r := x.g, x.r
	if has(x.subs, agentwire.EventRequestBodyChunk) {
		for i, a := range g.agents {
			if !a.Subscribed(agentwire.EventRequestBodyChunk) {
				continue
			}
			limit, _ := a.BodyLimits()
			s := addStage(&x.reqSt, i, g.bodies[i][0])
			s.bs.Reset(x.cid, TotalFromContentLength(r.ContentLength))
			if err := s.pl.Reset(g.bodies[i][0].Mode, g.bodies[i][0].Threshold, limit, r.ContentLength); err != nil {
				v := x.tooLarge(s, false)
				if !v.Allowed() {
					g.st.blocked[phaseRequestBody].Add(1)
					x.setBlock(&v)
					x.writeResponse(x.w)
					return true
				}
				s.skip, s.holds = true, false
			}
		}
	}
	if len(x.reqSt) == 0 && !x.wantComplete {
		return false
	}
	x.track()
	x.locking = true
	x.body = &bodyHandle{x: x, orig: r.Body}
	x.br.Reset(r.Body, (*reqHooks)(x))
	r.Body = x.body
	holding, mutable := false, false
	for i := range x.reqSt {
		if s := &x.reqSt[i]; !s.skip {
			mutable = true
			holding = holding || s.holds
		}
	}
	if !mutable {
		return false
	}
	if holding {
		// An agent buffers: its decision comes before the handler runs.
		if x.firstBuf == nil {
			x.firstBuf = make([]byte, preReadSize)
		}
		n, err := x.br.Read(x.firstBuf)
		x.first = x.firstBuf[:n]
		switch {
		case x.reqBlocked:
			x.writeResponse(x.w)
			return true
		case err != nil && !errors.Is(err, io.EOF):
			// The client's body failed (the client went away, or the
			// body is malformed): nothing goes to the handler.
			x.resp = Response{Header: x.resp.Header[:0]}
			textBody(&x.resp, http.StatusBadRequest)
			x.writeResponse(x.w)
			return true
		case errors.Is(x.br.Err(), io.EOF):
			// The whole body is known: the handler gets its length.
			size := int64(n + x.br.Buffered())
			r.ContentLength = size
			r.TransferEncoding = nil
			r.Header.Set("Content-Length", strconv.FormatInt(size, 10))
			return false
		}
	}
	// Mutations may change the body's length.
	r.ContentLength = -1
	r.Header.Del("Content-Length")
	return false
}

// addStage appends a stage for step to *sts, reusing the storage of a
// stage of an earlier request.
func addStage(sts *[]stage, step int, bc BodyConfig) *stage {
	if n := len(*sts); n < cap(*sts) {
		*sts = (*sts)[:n+1]
	} else {
		*sts = append(*sts, stage{})
	}
	s := &(*sts)[len(*sts)-1]
	s.step, s.skip, s.holds = step, false, bc.Mode != ModeStream
	return s
}

// tooLarge returns the verdict of s's agent on a body over its limit:
// the pool refuses a chunk whose declared size exceeds the agent's limit
// with the agent's failure policy (413 when fail-closed, a skip when
// fail-open), counted in its statistics, and sends nothing.
func (x *exchange) tooLarge(s *stage, response bool) engine.Verdict {
	x.ev = agentwire.BodyChunk{
		CorrelationID:    x.cid,
		TotalSize:        agentwire.Some(uint64(math.MaxUint64)),
		BytesTransferred: uint64(max(s.pl.Seen(), 0)),
	}
	if response {
		return x.g.pl.ResponseBodyChunkTo(x.ctx, &x.pr, s.step, &x.ev)
	}
	return x.g.pl.RequestBodyChunkTo(x.ctx, &x.pr, s.step, &x.ev)
}

// setBlock makes v (which does not allow) the response.
func (x *exchange) setBlock(v *engine.Verdict) { VerdictResponse(v, &x.resp) }

// runStages passes data (eof: the body ends with it) through the stages
// in order, each agent seeing what the ones before it let through, and
// returns the bytes that go on now. An error (ErrBlocked) means a stage's
// agent stopped the body; x.resp holds the response.
func (x *exchange) runStages(sts []stage, data []byte, eof, response bool) ([]byte, error) {
	for i := range sts {
		if len(data) == 0 && !eof {
			return nil, nil
		}
		out, err := x.runStage(&sts[i], data, eof, response)
		if err != nil {
			return nil, err
		}
		data = out
	}
	return data, nil
}

// runStage feeds data to one agent's stage: the Planner says when a
// chunk goes out, the BodyStream numbers it and applies needs_more, the
// verdict is enforced or the agent's mutation applied.
func (x *exchange) runStage(s *stage, data []byte, eof, response bool) ([]byte, error) {
	if s.skip {
		return data, nil
	}
	held := s.pl.Held()
	chunk, last, send, err := s.pl.Feed(data, eof)
	if err != nil {
		v := x.tooLarge(s, response)
		if !v.Allowed() {
			x.setBlock(&v)
			return nil, ErrBlocked
		}
		// Fail-open: the agent is skipped and what it held goes on.
		s.skip, s.holds = true, false
		if len(held) == 0 {
			return data, nil
		}
		return append(held, data...), nil
	}
	if !send {
		return nil, nil
	}
	s.holds = false
	if len(chunk) == 0 && last && !s.bs.NeedsEnd() {
		// The body ended after a chunk the agent answered finally: it is
		// not sent an empty last chunk (BodyStream).
		return nil, nil
	}
	if err := s.bs.Chunk(&x.ev, chunk, last); err != nil {
		return chunk, nil // the agent decided already (cannot happen: a final block stops the body)
	}
	if response {
		x.g.pl.ResponseBodyChunkTo(x.ctx, &x.pr, s.step, &x.ev)
	} else {
		x.g.pl.RequestBodyChunkTo(x.ctx, &x.pr, s.step, &x.ev)
	}
	x.ev.Data = nil
	// The step's own verdict: the merged one of an allow has no reply.
	v := &x.pr.Verdicts[s.step]
	if !response && v.Reply != nil {
		// An agent that got the last chunk knows the body ended.
		x.setMore(s.step, v.Reply.NeedsMore && !x.ev.IsLast)
	}
	if v.Reply == nil {
		// No reply: the failure policy (or a skip) decided.
		if !v.Allowed() {
			x.setBlock(v)
			return nil, ErrBlocked
		}
		return chunk, nil
	}
	if enforce, _ := s.bs.Reply(v.Reply); enforce {
		x.setBlock(v)
		return nil, ErrBlocked
	}
	m := v.Reply.RequestBodyMutation
	if response {
		m = v.Reply.ResponseBodyMutation
	}
	out, res := ApplyBodyMutation(chunk, m)
	if res == MutationIgnored {
		x.g.st.mutIgnored.Add(1)
	}
	return out, nil
}

// reqHooks are the BodyHooks of the request body.
type reqHooks exchange

// Body passes a piece of the client's body through the agents.
func (h *reqHooks) Body(p []byte) ([]byte, error) {
	x := (*exchange)(h)
	if len(x.reqSt) == 0 {
		return p, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	out, err := x.runStages(x.reqSt, p, false, false)
	if err != nil {
		x.requestBlocked()
	}
	return out, err
}

// End ends the body at the agents and returns what they still held.
func (h *reqHooks) End() ([]byte, error) {
	x := (*exchange)(h)
	if len(x.reqSt) == 0 {
		return nil, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	out, err := x.runStages(x.reqSt, nil, true, false)
	if err != nil {
		x.requestBlocked()
	}
	return out, err
}

// requestBlocked records a block in the request-body phase: its response
// replaces the handler's, and the agents still working on the request
// are told.
func (x *exchange) requestBlocked() {
	x.reqBlocked = true
	x.g.st.blocked[phaseRequestBody].Add(1)
	x.g.pl.Cancel(&x.pr, x.cid, agentwire.CancelBlockedByAgent)
	x.clearMore() // they were all told
}

// bodyHandle is the request body a guarded handler reads. It is a small
// value of its own, not part of the pooled exchange, because a reverse
// proxy's transport may still read or close the body after the handler
// returned: such a late read gets an error once the request is over, or,
// when it started before, finishes the request itself (state machine
// below), so that the exchange is never reused while a read runs.
type bodyHandle struct {
	x     *exchange
	orig  io.ReadCloser
	state atomic.Int32
}

const (
	bodyIdle        = iota // no read running, the request goes on
	bodyReading            // a read is running
	bodyOver               // the request is over: reads fail
	bodyOverPending        // the request ended during a read: the read finishes it
)

// Read returns the body as the agents let it through.
func (b *bodyHandle) Read(p []byte) (int, error) {
	if !b.state.CompareAndSwap(bodyIdle, bodyReading) {
		return 0, errBodyOver
	}
	x := b.x
	var n int
	var err error
	if len(x.first) > 0 {
		n = copy(p, x.first)
		x.first = x.first[n:]
	} else {
		n, err = x.br.Read(p)
	}
	if !b.state.CompareAndSwap(bodyReading, bodyIdle) {
		// ServeHTTP returned during the read: finish the request here.
		b.state.Store(bodyOver)
		x.end()
	}
	return n, err
}

// Close closes the client's body.
func (b *bodyHandle) Close() error { return b.orig.Close() }
