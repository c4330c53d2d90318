package agent

import "errors"

// ErrInvalidConfig is the kind of every error that reports invalid
// configuration given to this package: an invalid Option or a nil Handler
// (NewServer panics with such an error; newServer's error is the panic
// value), an invalid ReverseOption or endpoint (ServeReverse), an empty
// socket path (ListenUDS, ListenAndServeUDS) and a nil listener (ServeGRPC,
// ServeUDS). Test for it with errors.Is(err, ErrInvalidConfig); the error's
// text says what is wrong. Errors of the environment (a socket path in use,
// a failed dial) are not of this kind.
var ErrInvalidConfig = errors.New("agentwire: invalid configuration")

// configError gives err the kind ErrInvalidConfig and keeps its text.
type configError struct{ err error }

func (e *configError) Error() string   { return e.err.Error() }
func (e *configError) Unwrap() []error { return []error{ErrInvalidConfig, e.err} }

// invalidConfig marks err (nil stays nil) as ErrInvalidConfig.
func invalidConfig(err error) error {
	if err == nil || errors.Is(err, ErrInvalidConfig) {
		return err
	}
	return &configError{err: err}
}
