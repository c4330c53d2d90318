package engine

import (
	"context"
	"crypto/tls"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace/noop"
	"google.golang.org/grpc"

	"github.com/agentwire/agentwire"
)

// optionCase is one option and the transports it applies to (gRPC,
// Unix socket, reverse).
type optionCase struct {
	name    string
	opt     Option
	applies [3]bool
}

var (
	all3     = [3]bool{true, true, true}
	grpcOnly = [3]bool{true, false, false}
	udsOnly  = [3]bool{false, true, false}
	dialled  = [3]bool{true, true, false}
)

func optionCases() []optionCase {
	return []optionCase{
		{"WithInsecure", WithInsecure(), grpcOnly},
		{"WithTLS", WithTLS(&tls.Config{}), grpcOnly},
		{"WithConnectTimeout", WithConnectTimeout(time.Second), dialled},
		{"WithHandshakeTimeout", WithHandshakeTimeout(time.Second), dialled},
		{"WithRequestTimeout", WithRequestTimeout(time.Second), all3},
		{"WithAgentConfig", WithAgentConfig([]byte(`{}`)), all3},
		{"WithProxyID", WithProxyID("p"), all3},
		{"WithProxyVersion", WithProxyVersion("1"), all3},
		{"WithMaxSendSize", WithMaxSendSize(1 << 16), all3},
		{"WithMaxRecvSize", WithMaxRecvSize(1 << 16), all3},
		{"WithLogger", WithLogger(slog.New(slog.DiscardHandler)), all3},
		{"WithFlowControl", WithFlowControl(FlowWait), all3},
		{"WithReconnectBackoff", WithReconnectBackoff(time.Millisecond, time.Second), dialled},
		{"WithFailFastWhileReconnecting", WithFailFastWhileReconnecting(false), dialled},
		{"WithRingSize", WithRingSize(64), all3},
		{"WithCallbackQueueSize", WithCallbackQueueSize(8), all3},
		{"WithKeepalive", WithKeepalive(time.Minute, time.Second), grpcOnly},
		{"WithLivenessPing", WithLivenessPing(time.Minute, time.Second), all3},
		{"WithGRPCWindow", WithGRPCWindow(1 << 20), grpcOnly},
		{"WithGRPCDialOptions", WithGRPCDialOptions(grpc.WithUserAgent("t")), grpcOnly},
		{"WithOnMetrics", WithOnMetrics(func(*agentwire.MetricsReport) {}), all3},
		{"WithOnLog", WithOnLog(func(*agentwire.LogMessage) {}), grpcOnly},
		{"WithOnHealth", WithOnHealth(func(agentwire.HealthStatus) {}), all3},
		{"WithOnConfigUpdate", WithOnConfigUpdate(func(*agentwire.ConfigUpdateRequest) agentwire.ConfigUpdateResponse {
			return agentwire.ConfigUpdateResponse{}
		}), all3},
		{"WithOnStateChange", WithOnStateChange(func(ConnState, ConnState) {}), all3},
		{"WithFailurePolicy", WithFailurePolicy(FailurePolicy{Mode: FailOpen}), all3},
		{"WithAgentName", WithAgentName("waf"), all3},
		{"WithTracerProvider", WithTracerProvider(noop.NewTracerProvider()), all3},
		{"WithSaturation", WithSaturation(FlowFailFast), all3},
		{"WithMaxStretchedTimeout", WithMaxStretchedTimeout(time.Minute), all3},
		{"WithEncodings", WithEncodings("json"), udsOnly},
		{"WithMsgpack", WithMsgpack(), udsOnly},
		{"WithRawMsgpackBodies", WithRawMsgpackBodies(), udsOnly},
		{"WithWriteTimeout", WithWriteTimeout(time.Second), [3]bool{true, true, true}},
		{"WithReadSpin", WithReadSpin(time.Microsecond), [3]bool{false, true, true}},
	}
}

// TestOptionsPerTransport: every option, on every transport, is accepted
// where it applies and refused with ErrInvalidConfig (naming the option)
// where it does not, by NewConn, Dial and ListenReverse.
func TestOptionsPerTransport(t *testing.T) {
	grpcEP := "grpc+unix://" + sockPath(t) // plaintext without WithInsecure; nothing listens
	udsEP := "unix://" + sockPath(t)
	for _, tc := range optionCases() {
		for k, ep := range []string{grpcEP, udsEP, ""} {
			kind := transportKind(k)
			t.Run(tc.name+"/"+kind.String(), func(t *testing.T) {
				var err error
				if kind == transportReverse {
					var l *ReverseListener
					l, err = ListenReverse(context.Background(), "unix://"+sockPath(t), WithConnOptions(tc.opt))
					if err == nil {
						l.Close()
					}
				} else {
					var c *Conn
					c, err = NewConn(ep, tc.opt)
					if err == nil {
						c.Close()
					}
					if !tc.applies[k] {
						// Dial refuses it the same way, before connecting.
						_, derr := Dial(testCtx(t), ep, tc.opt)
						mustKind(t, derr, ErrInvalidConfig)
					}
				}
				if tc.applies[k] {
					if err != nil {
						t.Fatalf("refused where it applies: %v", err)
					}
					return
				}
				mustKind(t, err, ErrInvalidConfig)
				name := strings.SplitN(tc.name, "/", 2)[0]
				if name == "WithMsgpack" {
					name = "WithEncodings"
				}
				if !strings.Contains(err.Error(), name) {
					t.Fatalf("error %q does not name the option", err)
				}
			})
		}
	}
}

// TestOptionsTableCoversEveryOption parses the package and fails when an
// exported constructor of Option has no row in optionCases: a new option
// must decide where it applies.
func TestOptionsTableCoversEveryOption(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi fs.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, tc := range optionCases() {
		have[tc.name] = true
	}
	n := 0
	for _, f := range pkgs["engine"].Files {
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || !fd.Name.IsExported() || fd.Type.Results == nil || len(fd.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fd.Type.Results.List[0].Type.(*ast.Ident); !ok || id.Name != "Option" {
				continue
			}
			n++
			if !have[fd.Name.Name] {
				t.Errorf("%s has no row in optionCases (where does it apply?)", fd.Name.Name)
			}
		}
	}
	if n != len(optionCases()) {
		t.Errorf("%d Option constructors, %d rows", n, len(optionCases()))
	}
}

// TestInvalidConfigKind: every option and endpoint validation error of
// Dial, NewConn and ListenReverse is of kind ErrInvalidConfig.
func TestInvalidConfigKind(t *testing.T) {
	udsEP := "unix://" + sockPath(t)
	cases := []struct {
		name string
		ep   string
		opts []Option
	}{
		{"empty endpoint", "", nil},
		{"unknown scheme", "ftp://x:1", nil},
		{"no port", "grpc://host", nil},
		{"relative grpc+unix", "grpc+unix://rel.sock", nil},
		{"empty socket path", "unix://", nil},
		{"plaintext without WithInsecure", "grpc://127.0.0.1:1", nil},
		{"WithInsecure on grpcs", "grpcs://127.0.0.1:1", []Option{WithInsecure()}},
		{"WithInsecure and WithTLS", "grpc://127.0.0.1:1", []Option{WithInsecure(), WithTLS(&tls.Config{})}},
		{"nil TLS", "grpcs://127.0.0.1:1", []Option{WithTLS(nil)}},
		{"connect timeout", udsEP, []Option{WithConnectTimeout(0)}},
		{"handshake timeout", udsEP, []Option{WithHandshakeTimeout(-1)}},
		{"request timeout", udsEP, []Option{WithRequestTimeout(0)}},
		{"request timeout too long", udsEP, []Option{WithRequestTimeout(maxStretchedTimeout + 1)}},
		{"send size", udsEP, []Option{WithMaxSendSize(0)}},
		{"recv size", udsEP, []Option{WithMaxRecvSize(-1)}},
		{"nil logger", udsEP, []Option{WithLogger(nil)}},
		{"flow mode", udsEP, []Option{WithFlowControl(7)}},
		{"backoff", udsEP, []Option{WithReconnectBackoff(time.Second, time.Millisecond)}},
		{"ring size", udsEP, []Option{WithRingSize(1)}},
		{"callback queue", udsEP, []Option{WithCallbackQueueSize(0)}},
		{"grpc window", "grpc+unix:///x.sock", []Option{WithGRPCWindow(1)}},
		{"keepalive", "grpc+unix:///x.sock", []Option{WithKeepalive(-1, 0)}},
		{"liveness", udsEP, []Option{WithLivenessPing(time.Second, 0)}},
		{"agent config", udsEP, []Option{WithAgentConfig([]byte(`{nope`))}},
		{"write timeout", udsEP, []Option{WithWriteTimeout(-1)}},
		{"read spin", udsEP, []Option{WithReadSpin(-1)}},
		{"unknown encoding", udsEP, []Option{WithEncodings("cbor")}},
		{"encoding twice", udsEP, []Option{WithEncodings("json", "json")}},
		{"no encoding", udsEP, []Option{WithEncodings()}},
		{"bad dial option", "grpc+unix:///x.sock", []Option{WithGRPCDialOptions(grpc.WithTransportCredentials(nil))}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConn(tc.ep, tc.opts...)
			if err == nil {
				c.Close()
			}
			mustKind(t, err, ErrInvalidConfig)
			c, err = Dial(testCtx(t), tc.ep, tc.opts...)
			if err == nil {
				c.Close()
			}
			mustKind(t, err, ErrInvalidConfig)
			var e *Error
			if !errors.As(err, &e) || strings.Count(err.Error(), "agentwire: ") != 1 {
				t.Fatalf("error %q: want one *Error with one prefix", err)
			}
		})
	}
	reverse := []struct {
		name string
		ep   string
		opts []ReverseOption
	}{
		{"endpoint", "unix:", nil},
		{"tcp endpoint", "tcp://nohost", nil},
		{"registration timeout", "", []ReverseOption{WithRegistrationTimeout(0)}},
		{"empty token", "", []ReverseOption{WithAuthToken("")}},
		{"nil verifier", "", []ReverseOption{WithTokenVerifier(nil)}},
		{"connection limit", "", []ReverseOption{WithMaxConnectionsPerAgent(0)}},
		{"pending limit", "", []ReverseOption{WithMaxPendingRegistrations(0)}},
		{"nil TLS", "", []ReverseOption{WithReverseTLS(nil)}},
		{"socket mode", "", []ReverseOption{WithReverseSocketMode(0o4777)}},
		{"conn option value", "", []ReverseOption{WithConnOptions(WithRingSize(0))}},
		{"conn option transport", "", []ReverseOption{WithConnOptions(WithMsgpack())}},
	}
	for _, tc := range reverse {
		t.Run("reverse/"+tc.name, func(t *testing.T) {
			ep := tc.ep
			if ep == "" {
				ep = "unix://" + sockPath(t)
			}
			l, err := ListenReverse(context.Background(), ep, tc.opts...)
			if err == nil {
				l.Close()
			}
			mustKind(t, err, ErrInvalidConfig)
		})
	}
}
