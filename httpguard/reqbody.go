package httpguard

import (
	"errors"
	"io"
)

// BodyHooks process a request body on its way to the handler. The
// middleware implements them with the request-body phase: Body feeds a
// Planner and, for each chunk due, sends the event to the agents, waits
// for their replies (needs_more included) and applies the mutations.
type BodyHooks interface {
	// Body is called with each piece the client sent, in order (p is the
	// reader's buffer: copy what must be kept), and returns the bytes the
	// handler gets now: p, a replacement, or nothing (held, or dropped).
	// An error stops the body: the handler's read fails with it (for
	// example when an agent blocked the request or the body is over a
	// fail-closed agent's limit).
	Body(p []byte) ([]byte, error)
	// End is called once at the end of the body and returns the bytes
	// still to hand over (a buffered body, a last mutated chunk).
	End() ([]byte, error)
}

// BodyReader wraps a request body so that every byte goes through
// BodyHooks before the handler reads it: install it as r.Body. Bytes the
// hooks hold back are not read ahead of need: the body is read only as
// fast as the handler consumes it, plus what the hooks buffer. A read
// error of the client's body (the client went away, a body cut short)
// is returned as is and ends the body; End is then not called.
//
// Not safe for concurrent use, like any request body.
type BodyReader struct {
	r       io.ReadCloser
	hooks   BodyHooks
	pending []byte // hook output not yet returned
	own     []byte // storage for pending output that did not fit
	done    bool   // End ran
	err     error  // the error to return once pending is drained
	in, out int64
}

// NewBodyReader returns a BodyReader over body.
func NewBodyReader(body io.ReadCloser, hooks BodyHooks) *BodyReader {
	br := &BodyReader{}
	br.Reset(body, hooks)
	return br
}

// Reset makes br read a new body.
func (br *BodyReader) Reset(body io.ReadCloser, hooks BodyHooks) {
	*br = BodyReader{r: body, hooks: hooks, own: br.own[:0]}
}

// Read returns the hooks' output for the client's body.
func (br *BodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if len(br.pending) > 0 {
			n := copy(p, br.pending)
			br.pending = br.pending[n:]
			br.out += int64(n)
			return n, nil
		}
		if br.err != nil {
			return 0, br.err
		}
		n, err := br.r.Read(p)
		br.in += int64(n)
		m := 0
		if n > 0 {
			out, herr := br.hooks.Body(p[:n])
			if herr != nil {
				br.err = herr
				return 0, herr
			}
			// out may alias p (pass-through, or a part of it): copy is a
			// memmove, and what does not fit is copied to br's own
			// storage, since the caller may reuse p before the next Read.
			m = copy(p, out)
			if m < len(out) {
				br.own = append(br.own[:0], out[m:]...)
				br.pending = br.own
			}
			br.out += int64(m)
		}
		if err != nil {
			br.setErr(err)
		}
		if m > 0 {
			return m, nil
		}
	}
}

// setErr records the body's read error: at io.EOF the hooks' End runs
// and its bytes are returned before io.EOF.
func (br *BodyReader) setErr(err error) {
	if err == nil || br.err != nil {
		return
	}
	if !errors.Is(err, io.EOF) {
		br.err = err
		return
	}
	br.err = io.EOF
	if br.done {
		return
	}
	br.done = true
	out, herr := br.hooks.End()
	if herr != nil {
		br.err = herr
		br.pending = nil
		return
	}
	if len(out) > 0 {
		if len(br.pending) == 0 {
			br.pending = out
		} else {
			br.own = append(br.own[:0:0], br.pending...)
			br.pending = append(br.own, out...)
		}
	}
}

// Close closes the client's body.
func (br *BodyReader) Close() error { return br.r.Close() }

// Sizes returns the bytes read from the client and the bytes handed to
// the handler so far.
func (br *BodyReader) Sizes() (client, handler int64) { return br.in, br.out }

// Buffered returns the number of bytes the hooks released that Read has
// not returned yet.
func (br *BodyReader) Buffered() int { return len(br.pending) }

// Err returns the error that ended the body, io.EOF after a complete
// one, or nil while it is being read.
func (br *BodyReader) Err() error { return br.err }
