package engine

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"os"
	"time"
)

// Reverse-listener defaults.
const (
	// DefaultRegistrationTimeout bounds reading an agent's registration
	// (and writing the answer) on a new reverse connection (SPEC 7: the
	// reference's handshake_timeout).
	DefaultRegistrationTimeout = 10 * time.Second
	// DefaultMaxConnectionsPerAgent caps the live reverse connections of
	// one agent id (the reference's max_connections_per_agent).
	DefaultMaxConnectionsPerAgent = 4
	// DefaultReverseSocketMode is the permission of the socket file
	// ListenReverse creates: only the owner may connect.
	DefaultReverseSocketMode os.FileMode = 0o600
	// DefaultMaxPendingRegistrations caps the connections that are still
	// registering (WithMaxPendingRegistrations).
	DefaultMaxPendingRegistrations = 64
	// maxRegistrationSize bounds the registration frame an
	// unauthenticated peer may make the listener read.
	maxRegistrationSize = 64 << 10
)

// ReverseOption configures ListenReverse. An invalid value makes
// ListenReverse fail with an ErrInvalidConfig error.
type ReverseOption interface{ applyReverse(*reverseOptions) error }

type reverseOptionFunc func(*reverseOptions) error

func (f reverseOptionFunc) applyReverse(o *reverseOptions) error { return f(o) }

type reverseOptions struct {
	regTimeout time.Duration
	allowed    map[string]struct{} // nil: every agent id
	verify     func(agentID, token string) bool
	maxPer     int
	maxPending int
	tls        *tls.Config
	mode       os.FileMode
	onAgent    func(agentID string, c *Conn)
	connOpts   []Option
}

func defaultReverseOptions() reverseOptions {
	return reverseOptions{
		regTimeout: DefaultRegistrationTimeout,
		maxPer:     DefaultMaxConnectionsPerAgent,
		maxPending: DefaultMaxPendingRegistrations,
		mode:       DefaultReverseSocketMode,
	}
}

// WithRegistrationTimeout bounds the registration of a new connection
// (default DefaultRegistrationTimeout). A peer that has not sent its
// registration by then is disconnected without an answer.
func WithRegistrationTimeout(d time.Duration) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if d <= 0 {
			return configErr("registration timeout %v must be positive", d)
		}
		o.regTimeout = d
		return nil
	})
}

// WithAllowedAgents admits only the listed agent ids (exact match; no
// patterns). Without it every non-empty id is admitted.
func WithAllowedAgents(ids ...string) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if o.allowed == nil {
			o.allowed = make(map[string]struct{}, len(ids))
		}
		for _, id := range ids {
			o.allowed[id] = struct{}{}
		}
		return nil
	})
}

// WithAuthToken requires every registration to carry auth_token equal to
// token. The comparison is constant-time (over SHA-256 digests, so the
// token's length does not leak either). A missing or different token is
// rejected; the Rust listener only checks that some token is present
// (REFERENCE-DEFECTS B-R3).
func WithAuthToken(token string) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if token == "" {
			return configErr("empty auth token")
		}
		want := sha256.Sum256([]byte(token))
		o.verify = func(_, got string) bool {
			sum := sha256.Sum256([]byte(got))
			return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
		}
		return nil
	})
}

// WithTokenVerifier makes registrations carry an auth_token that f accepts
// for the agent id (per-agent secrets, an external store). f runs on the
// connection's registration goroutine and must be safe for concurrent use;
// it should compare in constant time. It replaces WithAuthToken.
func WithTokenVerifier(f func(agentID, token string) bool) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if f == nil {
			return configErr("nil token verifier")
		}
		o.verify = f
		return nil
	})
}

// WithMaxConnectionsPerAgent caps the live connections of one agent id
// (default DefaultMaxConnectionsPerAgent). A registration beyond it is
// answered with a failure before anything else happens.
func WithMaxConnectionsPerAgent(n int) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if n < 1 {
			return configErr("connection limit %d must be at least 1", n)
		}
		o.maxPer = n
		return nil
	})
}

// WithReverseTLS terminates TLS with cfg (cloned) on the listener (TCP or
// Unix socket). Set cfg.ClientAuth and cfg.ClientCAs to require client
// certificates. The TLS handshake counts against the registration timeout.
func WithReverseTLS(cfg *tls.Config) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if cfg == nil {
			return configErr("WithReverseTLS: nil TLS config")
		}
		o.tls = cfg.Clone()
		return nil
	})
}

// WithReverseSocketMode sets the permission bits of the socket file
// (default DefaultReverseSocketMode, 0600). Only 0777 bits are allowed.
func WithReverseSocketMode(mode os.FileMode) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if mode&^os.ModePerm != 0 {
			return configErr("socket mode %v has bits outside 0777", mode)
		}
		o.mode = mode
		return nil
	})
}

// WithOnAgent calls f with every admitted connection, on that connection's
// registration goroutine (a slow f delays nobody else). Connections
// delivered to f are not queued for Accept.
func WithOnAgent(f func(agentID string, c *Conn)) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error { o.onAgent = f; return nil })
}

// WithConnOptions sets the options of the Conns the listener creates:
// request timeout, callbacks, logger, flow mode, size limits, proxy id and
// version (also sent in the registration answer), agent configuration
// (sent as a Configure right after registration), write timeout, liveness
// ping, state-change callback. Options that do not apply to reverse
// connections, which speak JSON over the accepted socket, have no
// handshake and are never redialled by the proxy (WithInsecure, WithTLS,
// WithConnectTimeout, WithHandshakeTimeout, WithReconnectBackoff,
// WithFailFastWhileReconnecting, WithKeepalive, WithGRPCWindow,
// WithGRPCDialOptions, WithEncodings, WithMsgpack, WithRawMsgpackBodies,
// WithOnLog), make ListenReverse fail with an ErrInvalidConfig error, as
// do invalid values.
func WithConnOptions(opts ...Option) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		o.connOpts = append(o.connOpts, opts...)
		return nil
	})
}

// WithMaxPendingRegistrations caps the accepted connections that are still
// registering (default DefaultMaxPendingRegistrations; at least 1). Each
// of them holds a goroutine, a descriptor and up to 64 KiB of registration
// frame for up to the registration timeout, before anything proves the
// peer is an agent; while n are in progress, a further connection is
// closed at once, unread and unanswered, and counted in
// ReverseStats.DroppedPending. Admitted connections do not count.
func WithMaxPendingRegistrations(n int) ReverseOption {
	return reverseOptionFunc(func(o *reverseOptions) error {
		if n < 1 {
			return configErr("pending registration limit %d must be at least 1", n)
		}
		o.maxPending = n
		return nil
	})
}
