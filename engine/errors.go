package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The closed set of error kinds of this package. Every error of a Conn's
// methods, of Dial and NewConn, and of a ReverseListener's Accept satisfies
// errors.Is with one of them (an *Error also unwraps to its cause, e.g.
// context.Canceled). Invalid options or endpoints given to Dial, NewConn
// and ListenReverse are of kind ErrInvalidConfig; ListenReverse's own
// listen errors (address in use, permissions) are the operating system's,
// wrapped.
var (
	// ErrInvalidConfig: an option or endpoint given to Dial, NewConn or
	// ListenReverse is invalid, or an option does not apply to the
	// endpoint's transport (see each option's documentation). Such errors
	// are returned at once, before anything is connected.
	ErrInvalidConfig = errors.New("agentwire: invalid configuration")
	// ErrClosed: the Conn was closed (before or during the call).
	ErrClosed = errors.New("agentwire: connection closed")
	// ErrConnectionLost: the stream to the agent died while the request
	// was pending; every pending request fails at once with it.
	ErrConnectionLost = errors.New("agentwire: connection to agent lost")
	// ErrNotConnected: the Conn has no session (it is still connecting
	// after NewConn, or reconnecting) and fails fast (see
	// WithFailFastWhileReconnecting).
	ErrNotConnected = errors.New("agentwire: not connected to agent")
	// ErrConnectFailed: Dial could not reach the agent (connect or
	// transport error, connect timeout).
	ErrConnectFailed = errors.New("agentwire: connect failed")
	// ErrHandshakeRejected: the agent refused the handshake, answered
	// something other than a handshake, or a protocol version other than 2.
	ErrHandshakeRejected = errors.New("agentwire: handshake rejected")
	// ErrDuplicateCorrelationID: a request with the same correlation id is
	// already in flight on this Conn.
	ErrDuplicateCorrelationID = errors.New("agentwire: duplicate correlation id in flight")
	// ErrFlowPaused: the agent paused the connection or the correlation id
	// (or the in-flight cap it set is reached) and the flow-control mode is
	// FlowFailFast, or FlowWait ran out of time.
	ErrFlowPaused = errors.New("agentwire: agent flow control paused")
	// ErrDraining: Drain was called, or the agent reported DRAINING.
	ErrDraining = errors.New("agentwire: draining, no new requests")
	// ErrAgentUnhealthy: the agent reported UNHEALTHY (and the report has
	// not expired).
	ErrAgentUnhealthy = errors.New("agentwire: agent reported unhealthy")
	// ErrNotSubscribed: the agent's capabilities do not list the event kind.
	ErrNotSubscribed = errors.New("agentwire: agent did not subscribe to this event kind")
	// ErrMessageTooLarge: the encoded message exceeds WithMaxSendSize, or an
	// agent message exceeded WithMaxRecvSize (the stream is then lost).
	ErrMessageTooLarge = errors.New("agentwire: message too large")
	// ErrProtocol: the agent sent something undecodable or unexpected (for a
	// request: a reply that could be routed but not decoded).
	ErrProtocol = errors.New("agentwire: protocol violation")
	// ErrInvalidEvent: the event cannot be sent (nil event or destination,
	// correlation id not valid UTF-8; Cancel: empty correlation id or
	// reason out of range; Configure: configuration not valid JSON). An
	// empty correlation id of a request call is not an error: the Conn
	// generates one.
	ErrInvalidEvent = errors.New("agentwire: invalid event")
	// ErrTimeout: the call's deadline passed (the context's, or the
	// WithRequestTimeout default). Such errors also satisfy
	// errors.Is(err, context.DeadlineExceeded).
	ErrTimeout = errors.New("agentwire: request timed out")
	// ErrCanceled: the call was cancelled, by its context (the error then
	// also satisfies errors.Is(err, context.Canceled)) or by Conn.Cancel.
	// Cancellation never counts against the agent's health.
	ErrCanceled = errors.New("agentwire: request canceled")
	// ErrSaturated: the agent's announced limits.max_concurrency requests
	// are already in flight on the connection and
	// WithSaturation(FlowFailFast) is set. (With the default FlowWait the
	// call waits for a slot; if its context ends first it fails with
	// ErrTimeout or ErrCanceled, wrapping ErrSaturated.)
	ErrSaturated = errors.New("agentwire: agent's announced concurrency limit reached")
)

// Error is the typed error of this package: a Kind from the closed set plus
// context. Use errors.Is(err, ErrX) to branch and errors.As to read the
// details. Every *Error a function or method of this package returns is a
// value of its own (never shared with another failure or another caller):
// the caller may keep or modify it.
type Error struct {
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// CorrelationID is the request's correlation id. Every error of a
	// request call (RequestHeaders, RequestBodyChunk, ..., GuardrailInspect)
	// carries the id the request was sent with (the generated one when the
	// event had none), whatever the failure: timeout, cancellation,
	// connection lost, not connected, flow control, protocol error, size
	// limit, and so on. Errors of Cancel carry the id given to it; other
	// errors have none.
	CorrelationID string
	// Detail is a human-readable explanation (may be empty).
	Detail string
	// Err is the underlying cause, if any (returned by Unwrap).
	Err error
}

// Error implements error: "<kind>: <detail>: <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.CorrelationID != "" {
		b.WriteString(" (correlation id ")
		b.WriteString(e.CorrelationID)
		b.WriteString(")")
	}
	if e.Detail != "" {
		b.WriteString(": ")
		b.WriteString(e.Detail)
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool { return target == e.Kind }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Preallocated errors of the request path. They are templates: the
// exported methods never return them as they are, but a copy of their own
// (see withCID), so that no caller can observe or modify another's error.
var (
	errCtxCanceled   = &Error{Kind: ErrCanceled, Err: context.Canceled}
	errCtxDeadline   = &Error{Kind: ErrTimeout, Err: context.DeadlineExceeded}
	errEngineTimeout = &Error{Kind: ErrTimeout, Detail: "no reply within the request timeout", Err: context.DeadlineExceeded}
	errManualCancel  = &Error{Kind: ErrCanceled, Detail: "canceled by Conn.Cancel"}
	errAgentDraining = &Error{Kind: ErrDraining, Detail: "agent reported DRAINING"}
	errNoCID         = &Error{Kind: ErrInvalidEvent, Detail: "empty correlation id"}
	errBadCID        = &Error{Kind: ErrInvalidEvent, Detail: "correlation id is not valid UTF-8 (the wire carries it as text: it would come back changed and match nothing)"}
	errNilEvent      = &Error{Kind: ErrInvalidEvent, Detail: "nil event"}
	errCapacity      = &Error{Kind: ErrFlowPaused, Detail: "agent in-flight capacity reached"}
	errPausedCID     = &Error{Kind: ErrFlowPaused, Detail: "agent paused this correlation id"}
)

// ctxError maps a finished context to the package's error.
func ctxError(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return errCtxDeadline
	}
	return errCtxCanceled
}

// withCID returns a copy of err, which belongs to the caller alone, with
// CorrelationID set to cid (kept as it is when cid is empty). Every error
// of the request path is an *Error of this package; anything else is
// wrapped as an ErrProtocol error. It is called on failure paths only (it
// allocates).
func withCID(err error, cid string) error {
	if err == nil {
		return nil
	}
	e, ok := err.(*Error)
	if !ok {
		return &Error{Kind: ErrProtocol, CorrelationID: cid, Detail: "unexpected failure", Err: err}
	}
	cp := *e
	if cid != "" {
		cp.CorrelationID = cid
	}
	return &cp
}

// fresh returns a copy of err of its own (see withCID) for the methods that
// have no correlation id to add; an error that is not an *Error is returned
// as it is.
func fresh(err error) error {
	if _, ok := err.(*Error); !ok {
		return err
	}
	return withCID(err, "")
}

// configErr returns an ErrInvalidConfig error with a formatted detail.
func configErr(format string, args ...any) error {
	return &Error{Kind: ErrInvalidConfig, Detail: fmt.Sprintf(format, args...)}
}
