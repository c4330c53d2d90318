package pool

import (
	"errors"
	"strings"

	"github.com/agentwire/agentwire/engine"
)

// Error kinds of this package. The errors in synthetic verdicts made by
// the layer itself (not by a connection) and the errors of its methods
// satisfy errors.Is with one of them; errors of a connection's call are
// the engine's (engine.ErrTimeout, engine.ErrConnectionLost, ...).
var (
	// ErrInvalidConfig: an option, endpoint or pipeline step was refused.
	// It is engine.ErrInvalidConfig, so one errors.Is covers the pool's
	// and the connections' configuration errors.
	ErrInvalidConfig = engine.ErrInvalidConfig
	// ErrBreakerOpen: the agent's circuit breaker refused the call.
	ErrBreakerOpen = errors.New("agentwire: agent circuit breaker open")
	// ErrNoConnection: the agent has no connection that takes calls (none
	// connected yet, all lost, unhealthy, draining or paused).
	ErrNoConnection = errors.New("agentwire: no usable connection to agent")
	// ErrSaturated: the agent's concurrency limit was reached and no slot
	// freed up within the wait allowed (WithConcurrency).
	ErrSaturated = errors.New("agentwire: agent concurrency limit reached")
	// ErrBodyTooLarge: the body exceeds the agent's inspection limit.
	ErrBodyTooLarge = errors.New("agentwire: body exceeds the agent's inspection limit")
	// ErrDraining: the agent or the pool is draining and takes no new calls.
	ErrDraining = errors.New("agentwire: agent draining")
	// ErrClosed: the pool is closed, or the agent was removed from it.
	ErrClosed = errors.New("agentwire: pool closed")
	// ErrUnknownAgent: no agent of that name is in the pool.
	ErrUnknownAgent = errors.New("agentwire: unknown agent")
	// ErrDuplicateAgent: an agent of that name is already in the pool.
	ErrDuplicateAgent = errors.New("agentwire: duplicate agent name")
)

// Error is the typed error of this package: a Kind from the set above,
// the agent it is about and context. The Error in a verdict is the
// caller's own (a copy made on the failure path, never a value shared
// with other calls), so it may be kept or wrapped.
type Error struct {
	// Kind is one of the Err* sentinels of this package.
	Kind error
	// Agent names the agent (empty when the error is about the pool).
	Agent string
	// Detail is a human-readable explanation (may be empty).
	Detail string
	// Err is the underlying cause, if any (returned by Unwrap).
	Err error
}

// Error implements error: "<kind> (agent <name>): <detail>: <cause>".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Kind.Error())
	if e.Agent != "" {
		b.WriteString(" (agent ")
		b.WriteString(e.Agent)
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

func configErr(format string) error {
	return &Error{Kind: ErrInvalidConfig, Detail: format}
}
