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
	// writeTimeout (WithWriteTimeout, 0: none) bounds how long the agent
	// may accept nothing of a batched write, and on gRPC too (despite the
	// struct's name) how long one SendMsg may block.
	writeTimeout time.Duration
	// readSpin is WithReadSpin's budget (readSpinSet: given).
	readSpin    time.Duration
	readSpinSet bool
}

// DefaultWriteTimeout is how long the agent may accept nothing of a write
// (Unix-socket and reverse connections) or leave one gRPC message
// unaccepted before it is declared stuck (WithWriteTimeout).
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
	if u.readSpin < 0 || u.readSpin > MaxReadSpin {
		return configErr("read spin %v: want 0..%v", u.readSpin, MaxReadSpin)
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

// WithWriteTimeout detects an agent that keeps its connection open but
// stops reading, which would otherwise leave the connection "up" while
// every call waits for its own deadline: the session then fails, pending
// calls get ErrConnectionLost (the cause says the agent is not reading)
// and the Conn reconnects. Default DefaultWriteTimeout; 0 disables it.
//
// Unix-socket and reverse connections: a write fails when the agent
// accepts no byte of it for d (noticed between d and 2d after its last
// byte). A busy agent that reads slowly is not stuck, however long a
// write takes; the Conn also keeps at most the agent's announced
// max_concurrency requests in flight (WithSaturation), so an agent within
// its limit has no reason to stop reading.
//
// gRPC: one SendMsg that does not complete within d fails the session
// (noticed within d/4 past it by the session's expirer). SendMsg blocks
// only while the stream's HTTP/2 flow-control window is full, i.e. while
// the agent has not read the messages before it; a message larger than
// the window waits for the agent to read it piecewise, which a reading
// agent does within d. HTTP/2 keep-alive (WithKeepalive) cannot see this:
// the agent's transport answers pings whether or not its handler reads.
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
