package agent

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/unixsock"
)

// Reverse connections (SPEC 7): the agent dials the proxy, registers, and
// then serves the socket like an accepted Unix-socket connection, without a
// handshake and always in JSON.

// Reverse-connection defaults.
const (
	// DefaultReconnectMin is the first delay before a reverse connection
	// is dialled again.
	DefaultReconnectMin = 100 * time.Millisecond
	// DefaultReconnectMax caps the reconnect delay.
	DefaultReconnectMax = 30 * time.Second
)

// RegistrationRejectedError is returned by ServeReverse, when
// WithStopOnRejection is set, if the proxy answers the registration with
// success=false.
type RegistrationRejectedError struct {
	// Message is the proxy's error text (e.g. "Invalid message format:
	// Agent 'x' is not in the allowed list").
	Message string
	// ProxyID is the rejecting proxy's id.
	ProxyID string
}

func (e *RegistrationRejectedError) Error() string {
	return "agentwire: reverse registration rejected by " + e.ProxyID + ": " + e.Message
}

// ReverseOption configures ServeReverse.
type ReverseOption interface {
	applyReverse(*reverseConfig) error
}

type reverseOptionFunc func(*reverseConfig) error

func (f reverseOptionFunc) applyReverse(c *reverseConfig) error { return f(c) }

type reverseConfig struct {
	tls          *tls.Config
	token        agentwire.Opt[string]
	metadata     json.RawMessage
	minDelay     time.Duration
	maxDelay     time.Duration
	stopOnReject bool
	onRegistered func(agentwire.RegistrationResponse)
}

// WithReverseTLS dials the proxy with TLS using cfg (cloned; for TCP
// endpoints an empty ServerName is set to the endpoint's host). The
// reference proxy only listens on plain Unix sockets; an agentwire proxy
// may terminate TLS.
func WithReverseTLS(cfg *tls.Config) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error {
		if cfg == nil {
			return errors.New("agentwire: nil TLS config")
		}
		c.tls = cfg.Clone()
		return nil
	})
}

// WithAuthToken sends token as the registration's auth_token (default:
// null).
func WithAuthToken(token string) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error {
		c.token = agentwire.Some(token)
		return nil
	})
}

// WithRegistrationMetadata sends md (any JSON value) as the registration's
// metadata (default: null).
func WithRegistrationMetadata(md json.RawMessage) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error {
		if !json.Valid(md) {
			return errors.New("agentwire: registration metadata is not valid JSON")
		}
		c.metadata = append(json.RawMessage(nil), md...)
		return nil
	})
}

// WithReconnectBackoff sets the reconnect delays: after a failed dial, a
// failed or rejected registration or a closed connection, ServeReverse waits
// a random duration in [d/2, d], where d starts at minDelay and doubles up
// to maxDelay; a successful registration resets d. Defaults
// DefaultReconnectMin and DefaultReconnectMax.
func WithReconnectBackoff(minDelay, maxDelay time.Duration) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error {
		if minDelay <= 0 || maxDelay < minDelay {
			return fmt.Errorf("agentwire: invalid reconnect backoff %v..%v", minDelay, maxDelay)
		}
		c.minDelay, c.maxDelay = minDelay, maxDelay
		return nil
	})
}

// WithStopOnRejection makes ServeReverse return a *RegistrationRejectedError
// when the proxy rejects the registration, instead of logging it and
// retrying with backoff (the default: a proxy's allow-list may be updated
// while the agent waits).
func WithStopOnRejection() ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error { c.stopOnReject = true; return nil })
}

// WithOnRegistered calls f (on ServeReverse's goroutine) with the proxy's
// answer after every successful registration, e.g. to log the
// connection_id.
func WithOnRegistered(f func(agentwire.RegistrationResponse)) ReverseOption {
	return reverseOptionFunc(func(c *reverseConfig) error { c.onRegistered = f; return nil })
}

// ServeReverse connects to a proxy's reverse-connection listener at endpoint
// (see below) and serves the server's Handler on that connection: it
// registers (0x01 RegistrationRequest with protocol_version 2, the agent id,
// the capabilities with every feature and limit key and Unix-socket event
// numbering, the auth token and metadata of the options; the proxy answers
// 0x02), then handles events exactly like an accepted Unix-socket
// connection, in JSON. Pushes (ReportHealth, ReportMetrics, …) reach the
// connection too.
//
// When the connection cannot be made, the registration fails or is
// rejected, or the connection ends, ServeReverse reconnects after a capped,
// jittered exponential backoff (WithReconnectBackoff) — forever, until ctx
// ends (it then returns ctx.Err()) or the server shuts down or closes (it
// returns ErrServerClosed). With WithStopOnRejection a rejection returns a
// *RegistrationRejectedError instead. Invalid options or endpoints are
// reported at once, with errors satisfying errors.Is(err, ErrInvalidConfig).
//
// Endpoints: "unix:PATH" ("unix://a.sock" is /a.sock, as the Rust proxy
// reads it), or a path starting with "/" or "."
// for a Unix socket (the only kind the reference proxy listens on);
// "tcp://HOST:PORT" or "HOST:PORT" for TCP. WithReverseTLS adds TLS on
// either.
//
// One call keeps one connection; call it several times (from several
// goroutines) for more. While the server drains, an existing connection
// keeps being served but no new one is dialled. Shutdown ends the connection
// gracefully (events already received are answered); cancelling ctx ends it
// at once (request contexts are cancelled).
func (s *Server) ServeReverse(ctx context.Context, endpoint string, opts ...ReverseOption) error {
	rc := reverseConfig{minDelay: DefaultReconnectMin, maxDelay: DefaultReconnectMax}
	for _, o := range opts {
		if o == nil {
			return invalidConfig(errors.New("agentwire: nil reverse option"))
		}
		if err := o.applyReverse(&rc); err != nil {
			return invalidConfig(err)
		}
	}
	network, addr, err := unixsock.SplitEndpoint(endpoint)
	if err != nil {
		return invalidConfig(err)
	}
	if rc.tls != nil && rc.tls.ServerName == "" && network == "tcp" {
		host, _, _ := net.SplitHostPort(addr)
		rc.tls.ServerName = host
	}
	if s.closed() {
		return ErrServerClosed
	}

	// life ends with ctx, Shutdown or Close: it bounds dialling,
	// registration and backoff. The connection itself watches ctx and the
	// server separately (so that Shutdown is graceful).
	life, cancel := context.WithCancel(ctx)
	defer cancel()
	stopBase := context.AfterFunc(s.baseCtx, cancel)
	defer stopBase()
	watchDone := make(chan struct{})
	defer func() { cancel(); <-watchDone }()
	go func() {
		defer close(watchDone)
		select {
		case <-s.shutdownCh:
			cancel()
		case <-life.Done():
		}
	}()

	exitErr := func() error {
		if s.closed() {
			return ErrServerClosed
		}
		return ctx.Err()
	}
	delay := rc.minDelay
	log := s.log.With(slog.String("endpoint", endpoint))
	for {
		if life.Err() != nil {
			return exitErr()
		}
		if s.draining.Load() {
			<-life.Done()
			return exitErr()
		}
		nc, err := dialReverse(life, &rc, network, addr, s.cfg.uds.handshakeTimeout())
		if err == nil {
			rd, sr := s.newFrameReader(nc)
			resp, rerr := s.register(life, nc, rd, &rc)
			switch {
			case rerr != nil:
				nc.Close()
				rd.Release()
				if life.Err() != nil {
					return exitErr()
				}
				log.LogAttrs(ctx, slog.LevelWarn, "agentwire: reverse registration failed", slog.Any("error", rerr))
			case !resp.Success:
				nc.Close()
				rd.Release()
				rej := &RegistrationRejectedError{Message: resp.Error.Value, ProxyID: resp.ProxyID}
				if rc.stopOnReject {
					return rej
				}
				log.LogAttrs(ctx, slog.LevelWarn, "agentwire: reverse registration rejected; retrying", slog.String("error", rej.Message))
			default:
				delay = rc.minDelay
				log.LogAttrs(ctx, slog.LevelInfo, "agentwire: reverse connection registered",
					slog.String("connection_id", resp.ConnectionID), slog.String("proxy_id", resp.ProxyID))
				if rc.onRegistered != nil {
					rc.onRegistered(resp)
				}
				if !s.track(1) {
					nc.Close()
					rd.Release()
					return ErrServerClosed
				}
				s.serveConn(ctx, nc, rd, sr, true)
				s.wg.Done()
				log.LogAttrs(ctx, slog.LevelInfo, "agentwire: reverse connection ended", slog.String("connection_id", resp.ConnectionID))
			}
		} else {
			if life.Err() != nil {
				return exitErr()
			}
			log.LogAttrs(ctx, slog.LevelDebug, "agentwire: reverse dial failed", slog.Any("error", err))
		}
		// Equal jitter: a random wait in [delay/2, delay].
		wait := delay/2 + rand.N(delay/2+1)
		delay = min(2*delay, rc.maxDelay)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-life.Done():
			t.Stop()
			return exitErr()
		}
	}
}

// dialReverse connects to the proxy, bounded by timeout and ctx.
func dialReverse(ctx context.Context, rc *reverseConfig, network, addr string, timeout time.Duration) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	if rc.tls != nil {
		td := &tls.Dialer{NetDialer: d, Config: rc.tls}
		return td.DialContext(ctx, network, addr)
	}
	return d.DialContext(ctx, network, addr)
}

// register sends the RegistrationRequest and reads the proxy's answer,
// bounded by the handshake timeout and ctx.
func (s *Server) register(ctx context.Context, nc net.Conn, rd *frame.Reader, rc *reverseConfig) (agentwire.RegistrationResponse, error) {
	var resp agentwire.RegistrationResponse
	nc.SetDeadline(time.Now().Add(s.cfg.uds.handshakeTimeout()))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	caps := s.caps
	caps.SupportedEvents = udsEventCodes(caps.SupportedEvents)
	req := agentwire.RegistrationRequest{
		ProtocolVersion: agentwire.ProtocolVersion,
		AgentID:         caps.AgentID,
		Capabilities:    caps,
		AuthToken:       rc.token,
		Metadata:        rc.metadata,
	}
	buf, start := frame.BeginFrame(nil, frame.TypeHandshakeRequest)
	buf = payload.AppendRegistrationRequestJSON(buf, &req)
	if err := frame.EndFrame(buf, start); err != nil {
		return resp, err
	}
	if _, err := nc.Write(buf); err != nil {
		return resp, fmt.Errorf("agentwire: send registration: %w", err)
	}
	typ, p, err := rd.ReadFrame()
	if err != nil {
		return resp, fmt.Errorf("agentwire: read registration response: %w", err)
	}
	if typ != frame.TypeHandshakeResponse {
		return resp, fmt.Errorf("agentwire: expected a registration response (0x02), got %v", typ)
	}
	if err := payload.DecodeRegistrationResponseJSON(p, &resp); err != nil {
		return resp, fmt.Errorf("agentwire: invalid registration response: %w", err)
	}
	if !stop() {
		// ctx ended meanwhile: the deadline may already be in the past.
		return resp, ctx.Err()
	}
	nc.SetDeadline(time.Time{})
	return resp, nil
}
