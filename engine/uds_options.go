package engine

import (
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// udsOptions are the settings that only the binary Unix-socket transport
// (SPEC 6) uses.
type udsOptions struct {
	// encodings is the supported_encodings list of the handshake, in
	// preference order; nil means ["json"].
	encodings []string
	// rawBodies sends MessagePack body and WebSocket data as a bin of raw
	// bytes instead of a base64 str.
	rawBodies bool
	// writeTimeout bounds one batched write (0: none); see WithWriteTimeout.
	writeTimeout time.Duration
}

// DefaultWriteTimeout is how long one write to a Unix-socket or reverse
// connection may block before the agent is declared stuck
// (WithWriteTimeout).
const DefaultWriteTimeout = 10 * time.Second

// offered returns the supported_encodings list to send.
func (u *udsOptions) offered() []string {
	if len(u.encodings) == 0 {
		return jsonOnly
	}
	return u.encodings
}

var jsonOnly = []string{agentwire.EncodingJSON}

func (u *udsOptions) validate() error {
	if u.writeTimeout < 0 {
		return configErr("negative write timeout %v", u.writeTimeout)
	}
	seen := 0
	for _, e := range u.encodings {
		bit := 0
		switch e {
		case agentwire.EncodingJSON:
			bit = 1
		case agentwire.EncodingMsgpack:
			bit = 2
		default:
			return configErr("unknown encoding %q (want %q or %q)", e, agentwire.EncodingJSON, agentwire.EncodingMsgpack)
		}
		if seen&bit != 0 {
			return configErr("encoding %q listed twice", e)
		}
		seen |= bit
	}
	if u.encodings != nil && len(u.encodings) == 0 {
		return configErr("WithEncodings needs at least one encoding")
	}
	return nil
}

// WithEncodings sets the payload encodings a Unix-socket Conn offers in its
// handshake (supported_encodings), in preference order: "json" and/or
// "msgpack". Default: ["json"] only, like the shipped Rust proxy. The
// agent's answer must be one of them, else Dial fails with
// ErrHandshakeRejected (the Rust proxy does not check; SPEC 6.3). The
// handshake, cancel and ping frames are JSON whatever is negotiated.
// Unix-socket endpoints only: on gRPC endpoints (protobuf) and reverse
// listeners (always JSON) it is an ErrInvalidConfig error.
func WithEncodings(encodings ...string) Option {
	return optionFunc(func(o *options) {
		o.uds.encodings = append(make([]string, 0, len(encodings)), encodings...)
		o.set |= setEncodings
	})
}

// WithMsgpack offers ["msgpack","json"]: MessagePack preferred, JSON as
// the fallback for agents without it (Rust SDK agents support MessagePack
// only when built with the binary-uds feature). Unix-socket endpoints only,
// like WithEncodings.
func WithMsgpack() Option {
	return WithEncodings(agentwire.EncodingMsgpack, agentwire.EncodingJSON)
}

// WithRawMsgpackBodies makes a Unix-socket Conn that negotiated MessagePack
// send body-chunk and WebSocket-frame data as a bin of raw bytes (no base64,
// a third less on the wire, no encoding cost) instead of a base64 str.
// Only agentwire agents read that form; a Rust SDK agent rejects it
// (SPEC 6.4), and nothing in the handshake tells the two apart, so it is
// off by default. JSON connections always carry base64. Unix-socket
// endpoints only (ErrInvalidConfig on gRPC endpoints and reverse
// listeners).
func WithRawMsgpackBodies() Option {
	return optionFunc(func(o *options) { o.uds.rawBodies = true; o.set |= setRawBodies })
}

// WithWriteTimeout bounds how long the writer of a Unix-socket or reverse
// connection may stay blocked in one write: an agent that keeps its socket
// open but stops reading would otherwise leave the connection "up" while
// every call waits for its own deadline. When one write does not complete
// within d (the deadline is refreshed lazily, so the write gets between
// d/2 and d) the session fails: pending calls get ErrConnectionLost and the
// Conn reconnects. A reading agent takes a small fraction of that for any
// single write (at most WithMaxSendSize bytes plus a batch of small
// frames); raise d for agents that may stop reading for long on purpose.
// Default DefaultWriteTimeout; 0 disables it. Unix-socket endpoints and
// reverse listeners; gRPC Conns use HTTP/2 flow control and
// WithLivenessPing instead (ErrInvalidConfig on gRPC endpoints).
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(o *options) { o.uds.writeTimeout = d; o.set |= setWriteTimeout })
}

// udsLimits returns the largest payload a Unix-socket Conn sends and the
// largest frame LEN it accepts: WithMaxSendSize / WithMaxRecvSize, capped
// by the frame format (LEN <= frame.MaxLen, SPEC 6.1).
func udsLimits(o *options) (maxPayload, maxLen int) {
	maxPayload = min(o.maxSend, frame.MaxLen-1)
	maxLen = frame.MaxLen
	if o.maxRecv < frame.MaxLen-1 {
		maxLen = o.maxRecv + 1
	}
	return maxPayload, maxLen
}
