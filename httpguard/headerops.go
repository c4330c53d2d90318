package httpguard

import (
	"net/http"

	"golang.org/x/net/http/httpguts"

	"github.com/agentwire/agentwire"
)

// ProtectedHeader reports whether an agent's header operation on the
// canonical header name is refused. These headers carry the message's
// framing or belong to one connection (RFC 9110 section 7.6.1):
//
//   - Content-Length and Transfer-Encoding: net/http computes them from the
//     body it actually sends; an agent that set them could announce a
//     length that differs from the body and desynchronise the connection
//     (request smuggling, truncated responses);
//   - Connection, Keep-Alive, Proxy-Connection, TE, Trailer and Upgrade:
//     hop-by-hop; changing them would alter how this hop's connection is
//     managed (a forged Upgrade could switch protocols), and a reverse
//     proxy removes them before forwarding anyway;
//   - Host: the request's host is r.Host, not a header; use
//     ApplyRequestHeaderOps to let agents set it.
//
// Every other header may be set, added or removed.
func ProtectedHeader(canonical string) bool {
	switch canonical {
	case "Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "Te", "Trailer", "Upgrade", "Host":
		return true
	}
	return false
}

// ApplyHeaderOps applies an agent's header operations to h in order, as
// the Rust proxy does: set replaces every value of the name with one
// value, add appends a value, remove deletes the name. Agents send
// lower-case names; they are canonicalised ("x-user" → "X-User", no
// allocation for common names).
//
// An operation is refused, and the others still applied, when its name is
// not a valid field name (RFC 9110 section 5.1: a token, so no spaces,
// colons or pseudo-headers), when the value of a set or add is not a valid
// field value (CR, LF, NUL or another control character other than tab:
// header injection), or when the name is a ProtectedHeader. The result is
// then a *HeaderError (errors.Is(err, ErrHeaderRefused)) that names the
// first refused operation and counts them all; nil when every operation
// was applied. A refused operation never leaves h half-changed.
//
// A set allocates the one-value slice it stores; common names, add and
// remove allocate nothing else. h must not be nil (a nil map cannot be
// written to). Not safe for concurrent use of h.
func ApplyHeaderOps(h http.Header, ops []agentwire.HeaderOp) error {
	var herr *HeaderError
	for i := range ops {
		if reason := applyOp(h, nil, &ops[i]); reason != "" {
			herr = refuse(herr, ops[i].Kind.String(), ops[i].Name, reason)
		}
	}
	if herr != nil {
		return herr
	}
	return nil
}

// ApplyRequestHeaderOps is ApplyHeaderOps on r.Header, except that an
// operation on "host" changes r.Host (the host the request is forwarded
// with): set and add replace it when the value is a valid Host header
// value; remove is refused.
func ApplyRequestHeaderOps(r *http.Request, ops []agentwire.HeaderOp) error {
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	var herr *HeaderError
	for i := range ops {
		if reason := applyOp(r.Header, r, &ops[i]); reason != "" {
			herr = refuse(herr, ops[i].Kind.String(), ops[i].Name, reason)
		}
	}
	if herr != nil {
		return herr
	}
	return nil
}

func refuse(herr *HeaderError, op, name, reason string) *HeaderError {
	if herr == nil {
		return &HeaderError{Op: op, Name: name, Reason: reason, Refused: 1}
	}
	herr.Refused++
	return herr
}

// applyOp applies one operation and returns "" or why it was refused.
// With r non-nil, "host" operations go to r.Host.
func applyOp(h http.Header, r *http.Request, op *agentwire.HeaderOp) string {
	if !httpguts.ValidHeaderFieldName(op.Name) {
		return "invalid name"
	}
	name := canonicalName(op.Name)
	if op.Kind != agentwire.HeaderRemove && op.Kind != agentwire.HeaderSet && op.Kind != agentwire.HeaderAdd {
		return "unknown operation"
	}
	if op.Kind != agentwire.HeaderRemove && !httpguts.ValidHeaderFieldValue(op.Value) {
		return "invalid value"
	}
	if r != nil && name == "Host" {
		if op.Kind == agentwire.HeaderRemove || op.Value == "" || !httpguts.ValidHostHeader(op.Value) {
			return "protected"
		}
		r.Host = op.Value
		return ""
	}
	if ProtectedHeader(name) {
		return "protected"
	}
	switch op.Kind {
	case agentwire.HeaderSet:
		h[name] = []string{op.Value}
	case agentwire.HeaderAdd:
		h[name] = append(h[name], op.Value)
	case agentwire.HeaderRemove:
		delete(h, name)
	}
	return ""
}
