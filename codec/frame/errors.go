package frame

import (
	"errors"
	"strconv"
)

// ErrZeroLength is returned by Reader.ReadFrame for a frame whose LEN field
// is 0 (there is not even a type byte). The stream is out of sync afterwards:
// the caller must close the connection.
var ErrZeroLength = errors.New("agentwire: frame: zero length")

// errReleased is returned by ReadFrame after Release.
var errReleased = errors.New("agentwire: frame: reader released")

// TooLargeError reports a frame whose LEN (type byte + payload) exceeds the
// limit. From a Reader it is fatal: the payload was not consumed, the
// stream cannot continue and the caller must close the connection. From
// AppendFrame or EndFrame it means nothing was written.
type TooLargeError struct {
	Len uint64 // the frame's LEN: 1 + payload length
	Max int    // the limit that was exceeded
}

func (e *TooLargeError) Error() string {
	return "agentwire: frame: length " + strconv.FormatUint(e.Len, 10) +
		" exceeds limit " + strconv.Itoa(e.Max)
}

// UnknownTypeError reports a type byte that is not in SPEC 6.2. From a
// Reader the payload has been consumed, so the stream is still in sync and
// the caller may keep reading (or close, as a Rust peer would). From
// AppendFrame or EndFrame it means nothing valid was written.
type UnknownTypeError struct {
	Type Type
}

func (e *UnknownTypeError) Error() string {
	return "agentwire: frame: unknown type " + e.Type.String()
}
