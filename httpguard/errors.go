package httpguard

import (
	"errors"
	"strconv"
)

// Error kinds of this package. Every error it returns satisfies errors.Is
// with one of them.
var (
	// ErrHeaderRefused: a header operation (or a block decision's header)
	// was not applied: its name or value is not valid HTTP, or it names a
	// header an agent may not change (see ApplyHeaderOps).
	ErrHeaderRefused = errors.New("agentwire: header operation refused")
	// ErrBodyTooLarge: a body exceeds what the agent inspects (its body
	// limit). The failure policy decides: a fail-closed agent blocks with
	// 413, a fail-open agent is skipped.
	ErrBodyTooLarge = errors.New("agentwire: body exceeds the agent's inspection limit")
	// ErrBodyState: a body-helper method was called out of order (a chunk
	// after the last one, a reply before any chunk).
	ErrBodyState = errors.New("agentwire: body chunk out of order")
	// ErrFrame: bytes on an upgraded connection are not a valid WebSocket
	// frame (RFC 6455 section 5.2) or exceed the configured frame limit.
	ErrFrame = errors.New("agentwire: invalid websocket frame")
	// ErrInvalidOption: an option given to a constructor is invalid.
	ErrInvalidOption = errors.New("agentwire: invalid option")
)

// HeaderError says which header operation was refused and why. It
// satisfies errors.Is(err, ErrHeaderRefused).
type HeaderError struct {
	// Op is the refused operation ("set", "add", "remove" or "block").
	Op string
	// Name is the header name as the agent sent it.
	Name string
	// Reason says why: "invalid name", "invalid value" or "protected".
	Reason string
	// Refused is the number of operations refused in the same call (the
	// error describes the first of them).
	Refused int
}

// Error implements error.
func (e *HeaderError) Error() string {
	s := "agentwire: header operation refused: " + e.Op + " " + strconv.Quote(e.Name) + ": " + e.Reason
	if e.Refused > 1 {
		s += " (and " + strconv.Itoa(e.Refused-1) + " more)"
	}
	return s
}

// Is reports whether target is ErrHeaderRefused.
func (e *HeaderError) Is(target error) bool { return target == ErrHeaderRefused }
