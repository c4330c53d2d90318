package httpguard

import (
	"bufio"
	"net"
	"net/http"
)

// ResponseHooks receive a response from the handler before the client
// does. The middleware implements them with the agents' response phases:
// Headers sends the response-headers event and applies the operations,
// Body and End stream or buffer the body through Planner and BodyStream
// and apply mutations.
type ResponseHooks interface {
	// Headers is called once, with the final status and the handler's
	// header map (w.Header()), before either reaches the client. It may
	// change h (ApplyHeaderOps; and it must delete Content-Length when
	// Body or End may change the body's length). It returns nil to let
	// the response go on, or the Response to send instead: the handler's
	// status, headers and body are then discarded.
	Headers(status int, h http.Header) *Response
	// Body is called with each piece of body the handler writes, in
	// order (p is the handler's buffer: copy what must be kept). It
	// returns the bytes to send to the client now: p, a replacement, or
	// nothing (held for later, or dropped). An error aborts the response:
	// nothing more is sent and the handler's writes fail with it.
	Body(p []byte) ([]byte, error)
	// End is called once when the handler is done, and returns the bytes
	// still to send (a buffered body, a last chunk).
	End() ([]byte, error)
}

// ResponseInterceptor is the http.ResponseWriter a guarded handler writes
// to: it hands the status and headers, then every piece of body, to its
// ResponseHooks before anything reaches the client, and counts what the
// client gets for the request-complete event.
//
// It passes 1xx informational responses through, implements
// http.Flusher (Flush sends the headers through Headers first) and
// http.Hijacker (a hijacked connection is no longer intercepted: see
// WebSocketFilter), and unwraps (Unwrap) to the writer it wraps so that
// http.ResponseController reaches deadlines and full-duplex mode. It does
// not implement io.ReaderFrom, so that every byte goes through Body.
//
// Use one per request (Reset reuses it); call Finish when the handler
// has returned. Not safe for concurrent use, like any ResponseWriter.
type ResponseInterceptor struct {
	w     http.ResponseWriter
	hooks ResponseHooks

	status   int   // final status sent (0: none yet)
	headers  bool  // Headers ran
	replaced bool  // Headers replaced the response
	hijacked bool  // the connection was hijacked
	finished bool  // Finish ran
	err      error // the Body/End error that aborted the response, or a write error
	in       int64 // body bytes the handler wrote
	out      int64 // body bytes written to the client
}

// NewResponseInterceptor returns an interceptor writing to w through
// hooks.
func NewResponseInterceptor(w http.ResponseWriter, hooks ResponseHooks) *ResponseInterceptor {
	ri := &ResponseInterceptor{}
	ri.Reset(w, hooks)
	return ri
}

// Reset makes ri intercept a new response.
func (ri *ResponseInterceptor) Reset(w http.ResponseWriter, hooks ResponseHooks) {
	*ri = ResponseInterceptor{w: w, hooks: hooks}
}

// Header returns the header map of the wrapped writer: what the handler
// sets there goes to Headers before the client sees it.
func (ri *ResponseInterceptor) Header() http.Header { return ri.w.Header() }

// WriteHeader passes 1xx statuses (except 101) through and hands a final
// status to Headers once; later calls are ignored, as net/http ignores
// superfluous WriteHeader calls.
func (ri *ResponseInterceptor) WriteHeader(code int) {
	if ri.headers || ri.hijacked {
		return
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		ri.w.WriteHeader(code)
		return
	}
	ri.headers = true
	if resp := ri.hooks.Headers(code, ri.w.Header()); resp != nil {
		ri.replaced = true
		h := ri.w.Header()
		clear(h)
		resp.Write(ri.w)
		ri.status = resp.Status
		ri.out = int64(len(resp.Body))
		if !bodyAllowed(resp.Status) {
			ri.out = 0
		}
		return
	}
	ri.status = code
	ri.w.WriteHeader(code)
}

// Write hands p to Body and writes what it returns. It reports len(p)
// when the response goes on (also when it was replaced: the handler's
// body is then discarded), and the abort error otherwise.
func (ri *ResponseInterceptor) Write(p []byte) (int, error) {
	if ri.hijacked {
		return 0, http.ErrHijacked
	}
	if !ri.headers {
		ri.WriteHeader(http.StatusOK)
	}
	ri.in += int64(len(p))
	if ri.replaced {
		return len(p), nil
	}
	if ri.err != nil {
		return 0, ri.err
	}
	out, err := ri.hooks.Body(p)
	if err != nil {
		ri.err = err
		return 0, err
	}
	if err := ri.send(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// send writes b to the client and counts it.
func (ri *ResponseInterceptor) send(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	n, err := ri.w.Write(b)
	ri.out += int64(n)
	if err != nil {
		ri.err = err
	}
	return err
}

// Flush sends the headers (through Headers) if not yet sent, then
// flushes the wrapped writer. Bytes Body held back stay held.
func (ri *ResponseInterceptor) Flush() {
	if ri.hijacked {
		return
	}
	if !ri.headers {
		ri.WriteHeader(http.StatusOK)
	}
	_ = http.NewResponseController(ri.w).Flush()
}

// Hijack hijacks the wrapped writer's connection (http.Hijacker); the
// interceptor then stays out of the way.
func (ri *ResponseInterceptor) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(ri.w).Hijack()
	if err == nil {
		ri.hijacked = true
	}
	return c, brw, err
}

// Unwrap returns the wrapped writer (for http.ResponseController).
func (ri *ResponseInterceptor) Unwrap() http.ResponseWriter { return ri.w }

// Finish ends the response once the handler has returned: a handler that
// wrote nothing gets its implicit 200 through Headers, then End's bytes
// are written. It returns the error that aborted the response, if any.
// Calling it again does nothing.
func (ri *ResponseInterceptor) Finish() error {
	if ri.finished || ri.hijacked {
		return ri.err
	}
	ri.finished = true
	if !ri.headers {
		ri.WriteHeader(http.StatusOK)
	}
	if ri.replaced || ri.err != nil {
		return ri.err
	}
	out, err := ri.hooks.End()
	if err != nil {
		ri.err = err
		return err
	}
	return ri.send(out)
}

// Status returns the status the client got (0 before the headers went
// out, or for a hijacked connection).
func (ri *ResponseInterceptor) Status() int { return ri.status }

// Replaced reports whether Headers replaced the handler's response.
func (ri *ResponseInterceptor) Replaced() bool { return ri.replaced }

// Hijacked reports whether the connection was hijacked.
func (ri *ResponseInterceptor) Hijacked() bool { return ri.hijacked }

// BodySizes returns the body bytes the handler wrote and the body bytes
// the client was sent (they differ when agents mutated the body or the
// response was replaced).
func (ri *ResponseInterceptor) BodySizes() (handler, client int64) { return ri.in, ri.out }

// Err returns the error that aborted the response, if any.
func (ri *ResponseInterceptor) Err() error { return ri.err }

var (
	_ http.Flusher  = (*ResponseInterceptor)(nil)
	_ http.Hijacker = (*ResponseInterceptor)(nil)
)
