package httpguard

import (
	"net/http"
	"strconv"

	"github.com/agentwire/agentwire"
)

// respHooks are the ResponseHooks of a guarded response.
type respHooks exchange

// Headers applies the request phase's response-header operations, runs
// the response-headers phase and prepares the response-body phase. It
// returns the response that replaces the handler's, if any.
func (h *respHooks) Headers(status int, hdr http.Header) *Response {
	x := (*exchange)(h)
	g := x.g
	x.lock()
	defer x.unlock()
	if x.reqBlocked {
		// The request body was stopped while the handler ran: the block's
		// response replaces what the handler answered (a reverse proxy's
		// 502).
		return &x.resp
	}
	if len(x.respOps) > 0 {
		if err := ApplyHeaderOps(hdr, x.respOps); err != nil {
			g.st.refused.Add(1)
		}
	}
	if status == http.StatusSwitchingProtocols {
		return nil
	}
	if has(x.subs, agentwire.EventResponseHeaders) {
		ResponseHeaders(&x.rsEv, x.cid, status, hdr)
		v := g.pl.ResponseHeaders(x.ctx, &x.pr, &x.rsEv)
		if VerdictResponse(&v, &x.resp) {
			g.st.blocked[phaseResponseHeaders].Add(1)
			return &x.resp
		}
		if len(x.pr.ResponseHeaderOps) > 0 {
			if err := ApplyHeaderOps(hdr, x.pr.ResponseHeaderOps); err != nil {
				g.st.refused.Add(1)
			}
		}
	}
	if !has(x.subs, agentwire.EventResponseBodyChunk) || !bodyAllowed(status) || x.r.Method == http.MethodHead {
		return nil
	}
	cl := int64(-1)
	if v := hdr["Content-Length"]; len(v) == 1 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			cl = n
		}
	}
	mutable := false
	for i, a := range g.agents {
		if !a.Subscribed(agentwire.EventResponseBodyChunk) {
			continue
		}
		_, limit := a.BodyLimits()
		bc := g.bodies[i][1]
		s := addStage(&x.respSt, i, bc)
		s.bs.Reset(x.cid, TotalFromContentLength(cl))
		if err := s.pl.Reset(bc.Mode, bc.Threshold, limit, cl); err != nil {
			v := x.tooLarge(s, true)
			if !v.Allowed() {
				g.st.blocked[phaseResponseBody].Add(1)
				x.respSt = x.respSt[:0]
				x.setBlock(&v)
				return &x.resp
			}
			s.skip, s.holds = true, false
			continue
		}
		mutable = true
	}
	if mutable {
		// Mutations may change the body's length.
		delete(hdr, "Content-Length")
	}
	return nil
}

// Body passes a piece of the handler's body through the agents.
func (h *respHooks) Body(p []byte) ([]byte, error) {
	x := (*exchange)(h)
	x.lock()
	defer x.unlock()
	switch {
	case x.replaced:
		return nil, nil
	case x.reqBlocked:
		return x.cutOff()
	case len(x.respSt) == 0:
		return p, nil
	}
	out, err := x.runStages(x.respSt, p, false, true)
	if err != nil {
		return x.responseBlocked()
	}
	return out, nil
}

// End ends the body at the agents and returns what they still held.
func (h *respHooks) End() ([]byte, error) {
	x := (*exchange)(h)
	x.lock()
	defer x.unlock()
	switch {
	case x.replaced:
		return nil, nil
	case x.reqBlocked:
		return x.cutOff()
	case len(x.respSt) == 0:
		return nil, nil
	}
	out, err := x.runStages(x.respSt, nil, true, true)
	if err != nil {
		return x.responseBlocked()
	}
	return out, nil
}

// responseBlocked enforces a response-body verdict (in x.resp): it
// replaces the response while its status is still held back, and cuts
// it off otherwise.
func (x *exchange) responseBlocked() ([]byte, error) {
	x.g.st.blocked[phaseResponseBody].Add(1)
	x.g.pl.Cancel(&x.pr, x.cid, agentwire.CancelBlockedByAgent)
	if x.headerSent {
		return x.cutOff()
	}
	clear(x.w.Header())
	x.pending = 0
	x.replaced = true
	x.writeResponse(x.w)
	return nil, nil
}

// cutOff aborts a response whose headers went out: the handler's writes
// fail and ServeHTTP panics with http.ErrAbortHandler.
func (x *exchange) cutOff() ([]byte, error) {
	if !x.aborted {
		x.aborted = true
		x.g.st.aborted.Add(1)
		if x.err == nil {
			x.err = ErrBlocked
		}
	}
	return nil, ErrBlocked
}

// holdingResponse reports whether a response agent still buffers without
// having been sent anything: the status is then held back.
func (x *exchange) holdingResponse() bool {
	for i := range x.respSt {
		if s := &x.respSt[i]; !s.skip && s.holds {
			return true
		}
	}
	return false
}

// sendHeader sends the status (and the header map) to the client.
func (x *exchange) sendHeader(code int) {
	x.headerSent = true
	x.status = code
	x.w.WriteHeader(code)
}

// sendPendingHeader sends a status held back.
func (x *exchange) sendPendingHeader() {
	if x.pending != 0 && !x.headerSent {
		x.sendHeader(x.pending)
	}
	x.pending = 0
}

// clientWriter is the ResponseWriter the interceptor writes to: the
// client's, except that the status is held back while a response agent
// buffers (so that its decision can still replace the response), and
// that it counts what the client got.
type clientWriter exchange

func (c *clientWriter) Header() http.Header { return c.w.Header() }

func (c *clientWriter) WriteHeader(code int) {
	x := (*exchange)(c)
	if code < 200 {
		x.w.WriteHeader(code)
		return
	}
	if x.headerSent || x.pending != 0 {
		return
	}
	if x.holdingResponse() {
		x.pending = code
		return
	}
	x.sendHeader(code)
}

func (c *clientWriter) Write(b []byte) (int, error) {
	x := (*exchange)(c)
	if !x.headerSent {
		if x.pending == 0 {
			x.pending = http.StatusOK
		}
		x.sendPendingHeader()
	}
	n, err := x.w.Write(b)
	x.out += int64(n)
	return n, err
}

// FlushError flushes the client's writer, unless the status is held back
// (a buffering agent has not decided yet: there is nothing to flush).
func (c *clientWriter) FlushError() error {
	x := (*exchange)(c)
	if !x.headerSent && x.pending != 0 && x.holdingResponse() {
		return nil
	}
	x.sendPendingHeader()
	return http.NewResponseController(x.w).Flush()
}

// Flush is FlushError without the error.
func (c *clientWriter) Flush() { _ = c.FlushError() }

// Unwrap returns the client's writer (http.ResponseController: hijacking,
// deadlines).
func (c *clientWriter) Unwrap() http.ResponseWriter { return c.w }
