package agent

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func TestOptionValidation(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Option
		want string
	}{
		{"empty id", WithAgentID(""), "agent id"},
		{"zero concurrency", WithMaxConcurrency(0), "max concurrency"},
		{"huge concurrency", WithMaxConcurrency(1 << 20), "max concurrency"},
		{"nil logger", WithLogger(nil), "nil logger"},
		{"tiny recv", WithMaxRecvSize(10), "receive size"},
		{"tiny send", WithMaxSendSize(10), "send size"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newServer(BaseHandler{}, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "agentwire: ") {
				t.Fatalf("err = %v", err)
			}
			defer func() {
				if recover() == nil {
					t.Fatal("NewServer did not panic on an invalid option")
				}
			}()
			NewServer(BaseHandler{}, tc.opt)
		})
	}
	if _, err := newServer(nil); err == nil {
		t.Fatal("nil handler accepted")
	}
}

func TestCapabilitiesOption(t *testing.T) {
	caps := agentwire.Capabilities{
		SupportedEvents: []int32{agentwire.EventRequestHeaders},
		Features:        agentwire.Features{Cancellation: true, ConcurrentRequests: 7},
		Limits:          agentwire.Limits{MaxBodySize: 1024, MaxConcurrency: 7},
	}
	s := NewServer(BaseHandler{}, WithCapabilities(caps), WithAgentID("cap"), WithName("Cap"), WithVersion("9"), WithMaxConcurrency(7))
	defer s.Close()
	caps.SupportedEvents[0] = 99 // the server keeps its own copy
	got := s.Capabilities()
	if got.ProtocolVersion != 2 || got.AgentID != "cap" || got.Name != "Cap" || got.Version != "9" ||
		!slices.Equal(got.SupportedEvents, []int32{1}) || got.Features.ConcurrentRequests != 7 || got.Limits.MaxBodySize != 1024 {
		t.Fatalf("capabilities = %+v", got)
	}
	// The default: full features, every event, concurrency bound announced.
	d := NewServer(BaseHandler{}, WithMaxConcurrency(12))
	defer d.Close()
	dc := d.Capabilities()
	if dc.Name != DefaultAgentID || dc.Features.ConcurrentRequests != 12 || dc.Limits.MaxConcurrency != 12 || len(dc.SupportedEvents) != 8 {
		t.Fatalf("default capabilities = %+v", dc)
	}
}

// TestServeGRPCTwoListeners serves one server on TCP and a Unix socket at
// once; both reach the same handler, and Close ends both Serve calls.
func TestServeGRPCTwoListeners(t *testing.T) {
	srv := NewServer(echoHandler{})
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s.sock")
	unix, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	go func() { done <- srv.ServeGRPC(tcp) }()
	go func() { done <- srv.ServeGRPC(unix) }()
	for _, target := range []string{"passthrough:///" + tcp.Addr().String(), "unix://" + path} {
		cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		r, err := pb.NewAgentServiceV2Client(cc).ProcessEvent(testCtx(t), reqHeaders("x", "/"))
		cc.Close()
		if err != nil || !hasSetOp(r.GetResponse().GetRequestHeaders(), "X-Agent-Processed", "true") {
			t.Fatalf("%s: %v %v", target, r, err)
		}
	}
	srv.Close()
	for range 2 {
		if err := recvTimeout(t, done, "ServeGRPC return"); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("ServeGRPC = %v", err)
		}
	}
}
