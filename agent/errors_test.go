package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// invalidOptions is one invalid value for every validated Option.
var invalidOptions = []struct {
	name string
	opt  Option
}{
	{"nil option", nil},
	{"empty agent id", WithAgentID("")},
	{"zero concurrency", WithMaxConcurrency(0)},
	{"huge concurrency", WithMaxConcurrency(1 << 20)},
	{"nil logger", WithLogger(nil)},
	{"tiny recv", WithMaxRecvSize(10)},
	{"tiny send", WithMaxSendSize(10)},
	{"small gRPC window", WithGRPCWindow(1024)},
	{"socket mode bits", WithSocketMode(os.ModeSetuid | 0o600)},
	{"unknown encoding", WithEncodings("json", "cbor")},
	{"no json encoding", WithEncodings("msgpack")},
	{"zero handshake timeout", WithHandshakeTimeout(0)},
	{"negative write timeout", WithWriteTimeout(-time.Second)},
	{"tiny frame size", WithMaxFrameSize(10)},
	{"huge frame size", WithMaxFrameSize(1 << 30)},
	{"unknown event code", WithSupportedEvents(agentwire.EventRequestHeaders, 42)},
	{"UDS configure code", WithSupportedEvents(agentwire.EventConfigureUDS)},
	{"repeated event code", WithSupportedEvents(agentwire.EventRequestHeaders, agentwire.EventRequestHeaders)},
	{"nil tracer provider", WithTracerProvider(nil)},
}

// TestInvalidConfigKind: every option validation error of NewServer (its
// panic value) and newServer, and a nil handler, satisfy
// errors.Is(err, ErrInvalidConfig) and keep their own text.
func TestInvalidConfigKind(t *testing.T) {
	for _, tc := range invalidOptions {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newServer(BaseHandler{}, tc.opt)
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "agentwire: ") {
				t.Fatalf("newServer: err = %v, want an ErrInvalidConfig", err)
			}
			defer func() {
				r := recover()
				perr, ok := r.(error)
				if !ok || !errors.Is(perr, ErrInvalidConfig) || perr.Error() != err.Error() {
					t.Fatalf("NewServer panicked with %#v, want the ErrInvalidConfig %q", r, err)
				}
			}()
			NewServer(BaseHandler{}, tc.opt)
		})
	}
	if _, err := newServer(nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("nil handler: err = %v", err)
	}
	// Valid options are not errors at all.
	s, err := newServer(BaseHandler{}, WithAgentID("a"), WithGRPCWindow(0), WithWriteTimeout(0))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestInvalidConfigKindServe: the Serve and Listen methods report invalid
// arguments as ErrInvalidConfig, and errors of the environment as not.
func TestInvalidConfigKindServe(t *testing.T) {
	s := NewServer(BaseHandler{})
	defer s.Close()
	for name, err := range map[string]error{
		"ServeGRPC(nil)":          s.ServeGRPC(nil),
		"ServeUDS(nil)":           s.ServeUDS(nil),
		"ListenAndServeUDS(\"\")": s.ListenAndServeUDS(""),
	} {
		if !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s = %v, want an ErrInvalidConfig", name, err)
		}
	}
	if _, err := s.ListenUDS(""); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ListenUDS(\"\") = %v, want an ErrInvalidConfig", err)
	}
	// A path nobody can bind (its directory does not exist) is the
	// environment's fault.
	if _, err := s.ListenUDS(filepath.Join(sockDir(t), "missing", "a.sock")); err == nil || errors.Is(err, ErrInvalidConfig) {
		t.Errorf("ListenUDS in a missing directory = %v, want a non-configuration error", err)
	}
}

// TestInvalidConfigKindReverse: invalid reverse options and endpoints are
// reported at once as ErrInvalidConfig.
func TestInvalidConfigKindReverse(t *testing.T) {
	s := NewServer(BaseHandler{})
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, tc := range []struct {
		name string
		ep   string
		opts []ReverseOption
	}{
		{"nil option", "/x.sock", []ReverseOption{nil}},
		{"nil TLS", "/x.sock", []ReverseOption{WithReverseTLS(nil)}},
		{"bad metadata", "/x.sock", []ReverseOption{WithRegistrationMetadata(json.RawMessage("{"))}},
		{"bad backoff", "/x.sock", []ReverseOption{WithReconnectBackoff(time.Second, time.Millisecond)}},
		{"zero backoff", "/x.sock", []ReverseOption{WithReconnectBackoff(0, time.Second)}},
		{"empty endpoint", "", nil},
		{"empty unix path", "unix://", nil},
		{"tcp without port", "tcp://localhost", nil},
	} {
		if err := s.ServeReverse(ctx, tc.ep, tc.opts...); !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "agentwire: ") {
			t.Errorf("%s: ServeReverse = %v, want an ErrInvalidConfig", tc.name, err)
		}
	}
}
