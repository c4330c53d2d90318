package engine

import (
	"context"
	"errors"
	"strings"
)

// The closed set of error kinds a Conn returns. Every error of a Conn's
// methods, of Dial once its options and endpoint were accepted, and of a
// ReverseListener's Accept satisfies errors.Is with one of them (an *Error
// also unwraps to its cause, e.g. context.Canceled). Invalid options or
// endpoints given to Dial and ListenReverse, and ListenReverse's own
// listen errors, are plain errors of no kind.
var (
	// ErrClosed: the Conn was closed (before or during the call).
	ErrClosed = errors.New("agentwire: connection closed")
	// ErrConnectionLost: the stream to the agent died while the request
	// was pending; every pending request fails at once with it.
	ErrConnectionLost = errors.New("agentwire: connection to agent lost")
	// ErrNotConnected: the Conn is reconnecting and fails fast (see
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
	// ErrInvalidEvent: the event cannot be sent (nil, empty correlation id).
	ErrInvalidEvent = errors.New("agentwire: invalid event")
	// ErrTimeout: the call's deadline passed (the context's, or the
	// WithRequestTimeout default). Such errors also satisfy
	// errors.Is(err, context.DeadlineExceeded).
	ErrTimeout = errors.New("agentwire: request timed out")
	// ErrCanceled: the call was cancelled, by its context (the error then
	// also satisfies errors.Is(err, context.Canceled)) or by Conn.Cancel.
	// Cancellation never counts against the agent's health.
	ErrCanceled = errors.New("agentwire: request canceled")
)

// Error is the typed error of this package: a Kind from the closed set plus
// context. Use errors.Is(err, ErrX) to branch and errors.As to read the
// details. Errors on the per-request path are preallocated or shared, so
// an Error must be treated as immutable.
type Error struct {
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// CorrelationID is the request's correlation id when known.
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

// Preallocated errors of the request path (no allocation when returned).
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
