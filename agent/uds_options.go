package agent

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
)

// Unix-socket defaults.
const (
	// DefaultSocketMode is the permission of a socket file created by
	// ListenAndServeUDS: only the owner may connect.
	DefaultSocketMode os.FileMode = 0o600
	// DefaultHandshakeTimeout bounds the wait for a proxy's handshake
	// frame and the write of the answer on a Unix-socket connection, and
	// the registration exchange of a reverse connection (the reference
	// listener uses the same 10 s).
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultWriteTimeout bounds one write to a Unix-socket or reverse
	// connection (WithWriteTimeout).
	DefaultWriteTimeout = 10 * time.Second
)

// udsConfig holds the Unix-socket and reverse-connection settings. Zero
// values mean "default"; see the accessors.
type udsConfig struct {
	socketMode   os.FileMode
	modeSet      bool
	noMsgpack    bool // WithEncodings without "msgpack"
	encodingsSet bool
	hsTimeout    time.Duration
	maxFrameLen  int
	rawMsgpack   bool
	inline       bool // WithInlineHandlers
	wTimeout     time.Duration
	wTimeoutSet  bool
	readSpin     time.Duration // WithReadSpin (readSpinSet: given)
	readSpinSet  bool
}

// writeTimeout returns the write timeout (0: none).
func (u *udsConfig) writeTimeout() time.Duration {
	if !u.wTimeoutSet {
		return DefaultWriteTimeout
	}
	return u.wTimeout
}

func (u *udsConfig) mode() os.FileMode {
	if !u.modeSet {
		return DefaultSocketMode
	}
	return u.socketMode
}

func (u *udsConfig) handshakeTimeout() time.Duration {
	if u.hsTimeout <= 0 {
		return DefaultHandshakeTimeout
	}
	return u.hsTimeout
}

func (u *udsConfig) frameLimit() int {
	if u.maxFrameLen <= 0 {
		return frame.MaxLen
	}
	return u.maxFrameLen
}

// WithSocketMode sets the permission bits of the socket file created by
// ListenAndServeUDS (default DefaultSocketMode, 0600). The file is created
// with these bits before it becomes visible under its name, so no other
// user can connect in between. Only permission bits (0777) are allowed.
func WithSocketMode(mode os.FileMode) Option {
	return optionFunc(func(c *config) error {
		if mode&^os.ModePerm != 0 {
			return fmt.Errorf("agentwire: socket mode %v has bits outside 0777", mode)
		}
		c.uds.socketMode = mode
		c.uds.modeSet = true
		return nil
	})
}

// WithEncodings sets the payload encodings the Unix-socket server may
// choose in the handshake: "json" (mandatory: a proxy that offers no list
// must be answered with json) and optionally "msgpack". Default: both. The
// server never chooses an encoding the proxy did not offer; among the
// offered ones it takes the proxy's first supported entry (the proxy's
// preference), like the Rust SDK. Reverse connections are always JSON.
func WithEncodings(encodings ...string) Option {
	return optionFunc(func(c *config) error {
		hasJSON, hasMsgpack := false, false
		for _, e := range encodings {
			switch e {
			case agentwire.EncodingJSON:
				hasJSON = true
			case agentwire.EncodingMsgpack:
				hasMsgpack = true
			default:
				return fmt.Errorf("agentwire: unknown encoding %q (want %q or %q)", e, agentwire.EncodingJSON, agentwire.EncodingMsgpack)
			}
		}
		if !hasJSON {
			return errors.New("agentwire: the json encoding cannot be disabled")
		}
		c.uds.noMsgpack = !hasMsgpack
		c.uds.encodingsSet = true
		return nil
	})
}

// WithHandshakeTimeout bounds the handshake of a Unix-socket connection
// (reading the proxy's 0x01 frame and writing the answer) and the
// registration of a reverse connection. Default DefaultHandshakeTimeout.
func WithHandshakeTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("agentwire: handshake timeout %v must be positive", d)
		}
		c.uds.hsTimeout = d
		return nil
	})
}

// WithWriteTimeout bounds how long one write to a Unix-socket or reverse
// connection may block: a proxy that keeps the socket open but stops
// reading would otherwise hold the connection (and, with inline handlers,
// its reader) forever. When one write does not complete within d (the
// deadline is refreshed lazily, so the write gets between d/2 and d) the
// connection is closed and its requests cancelled; the proxy reconnects.
// Default DefaultWriteTimeout; 0 disables it.
func WithWriteTimeout(d time.Duration) Option {
	return optionFunc(func(c *config) error {
		if d < 0 {
			return fmt.Errorf("agentwire: negative write timeout %v", d)
		}
		c.uds.wTimeout, c.uds.wTimeoutSet = d, true
		return nil
	})
}

// WithMaxFrameSize sets the largest frame LEN (type byte + payload) the
// Unix-socket and reverse-connection transports accept; a larger frame
// closes the connection. Default and maximum frame.MaxLen (16 MiB).
func WithMaxFrameSize(n int) Option {
	return optionFunc(func(c *config) error {
		if n < 1024 || n > frame.MaxLen {
			return fmt.Errorf("agentwire: max frame size %d out of range 1024..%d", n, frame.MaxLen)
		}
		c.uds.maxFrameLen = n
		return nil
	})
}

// WithRawMsgpackBodies makes MessagePack replies carry body-mutation data as
// a bin of raw bytes instead of a base64 str. Only an agentwire proxy reads
// that form; a Rust proxy built with binary-uds rejects it, and nothing on
// the wire tells the two apart, so it is off by default. JSON connections
// are not affected.
func WithRawMsgpackBodies() Option {
	return optionFunc(func(c *config) error { c.uds.rawMsgpack = true; return nil })
}

// WithInlineHandlers runs the Handler of Unix-socket and reverse
// connections, and of gRPC ProcessStreams, on the connection's (stream's)
// reader goroutine instead of handing each event to a worker goroutine: one
// goroutine switch less per event, and replies of the frames that arrived
// in one read go out in one write. Use it only for handlers that return
// within microseconds and never block (no I/O, no locks held for long):
// while a handler runs, the connection
// reads nothing, so further events, cancels and pings wait for it, and
// events of one connection are handled one at a time. A cancel is thus
// read only after its event was answered, on every transport (a gRPC
// ProcessStream carries its cancels on the same stream): it runs the
// Canceller and cancels nothing, so inline events take no concurrency slot
// and are not entered in the table of running events. WithMaxConcurrency
// then only bounds the backlog. The unary ProcessEvent RPC is not affected
// (grpc-go runs each call on a goroutine of its own).
func WithInlineHandlers() Option {
	return optionFunc(func(c *config) error {
		c.uds.inline = true
		return nil
	})
}
