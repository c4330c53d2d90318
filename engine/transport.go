package engine

import (
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
)

// transport is one established stream to an agent (gRPC or the binary
// Unix-socket protocol). The core never touches the socket: callers encode
// through the transport's encoder on their own goroutine (or, with an
// eventWriter, leave request-headers events to the writer), the session's
// writer goroutine hands the encoded messages to send, and the session's
// reader goroutine runs readLoop, which decodes inbound messages and
// delivers them to the session.
//
// Ownership: send and sendControl take ownership of the buffer in every
// case (also on error); encoders return buffers the caller owns until it
// passes them on or frees them.
type transport interface {
	encoder

	// send writes one encoded event-stream message (o.ctl is false).
	// Writer goroutine only.
	send(o outbound) error
	// sendControl writes one encoded control-plane message. Writer
	// goroutine only; only called when hasControl is true.
	sendControl(buf mem.Buffer) error
	// readLoop delivers inbound event-stream messages to s until the stream
	// ends and returns the cause. Reader goroutine only.
	readLoop(s *session) error
	// hasControl reports whether a control-plane stream is open.
	hasControl() bool
	// readControlLoop is readLoop for the control-plane stream.
	readControlLoop(s *session) error
	// close ends the streams; blocked send and read calls return. It is
	// idempotent and safe for concurrent use.
	close()
}

// encoder encodes outbound messages. All methods are safe for concurrent
// use and fail with an ErrMessageTooLarge error when the encoded message
// would exceed the send limit. now is epoch milliseconds.
type encoder interface {
	requestHeaders(ev *agentwire.RequestHeadersEvent, now uint64) (mem.Buffer, error)
	bodyChunk(ev *agentwire.BodyChunk, response bool, now uint64) (mem.Buffer, error)
	responseHeaders(ev *agentwire.ResponseHeadersEvent) (mem.Buffer, error)
	requestComplete(ev *agentwire.RequestCompleteEvent) (mem.Buffer, error)
	webSocketFrame(ev *agentwire.WebSocketFrameEvent) (mem.Buffer, error)
	guardrail(ev *agentwire.GuardrailInspectEvent) (mem.Buffer, error)
	configure(ev *agentwire.ConfigureEvent, initial bool, now uint64) (mem.Buffer, error)
	cancel(cid string, reason agentwire.CancelReason, now uint64) (mem.Buffer, error)
	ping(seq, now uint64) (mem.Buffer, error)

	// Control plane (only used when the transport hasControl).
	drain(durationMS uint64, now uint64) (mem.Buffer, error)
	shutdown(graceMS uint64, now uint64) (mem.Buffer, error)
	configResponse(r *agentwire.ConfigUpdateResponse) (mem.Buffer, error)
}

// flusher is implemented by transports whose send only queues the message
// in a write buffer (the Unix-socket transport; the gRPC transport collects
// request-headers events, grpc_direct.go). The session's writer calls
// flush whenever the outbound queue is empty, so everything queued while
// the previous write was in progress goes out together (one system call on
// the Unix socket; one SendMsg per collected event, in one burst, on gRPC).
// A flush error ends the session like a send error.
type flusher interface {
	flush() error
}

// eventWriter is implemented by transports that encode request-headers
// events on the writer goroutine, straight into the buffer of the next
// write (the Unix-socket transport; the gRPC transport into a pooled
// buffer per event, grpc_direct.go): the caller queues its pending, the
// writer encodes the caller's event (see pending for who may read it when)
// into memory it has just written (on the Unix socket no per-request buffer
// is pooled, wrapped or freed; gRPC encodes into one pooled buffer per
// event). Measured at 64 in flight over a Unix socket
// (bench/abclient.sh, benchstat): 12.9 % less proxy CPU per request with
// MessagePack (16 pairs), 5.3 % with JSON (12 pairs).
type eventWriter interface {
	// appendRequestHeadersEvent encodes ev into the batch being collected.
	// It does no I/O, so that the caller's event is released before any
	// write can block; its error concerns this event only.
	appendRequestHeadersEvent(ev *agentwire.RequestHeadersEvent) error
	// batchFull writes the batch out when it has reached its limits (as
	// send does); its error ends the connection.
	batchFull() error
}

// outbound is one queued message for the writer: an encoded buf, or (p
// set, eventWriter transports) a pending whose event the writer encodes;
// until the writer ends its part (eventDone, or finish when the outbound
// is freed unsent) the caller does not recycle p (see pending).
type outbound struct {
	buf mem.Buffer
	p   *pending
	rh  *agentwire.RequestHeadersEvent // with p: the event to encode
	// ctl routes the message to the control-plane stream.
	ctl bool
	// notice, when set, receives the send result (nil once the transport
	// accepted the message). It must have room for one value.
	notice chan error
}

// free releases what o holds.
func (o *outbound) free() {
	if o.p != nil {
		o.p.finish()
		if o.buf == nil {
			return
		}
	}
	o.buf.Free()
}
