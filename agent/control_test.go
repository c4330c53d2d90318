package agent

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var controlDesc = &grpc.StreamDesc{StreamName: "ControlStream", ServerStreams: true, ClientStreams: true}

// openControl opens a ControlStream as a raw client stream (message types are
// chosen per call), with or without the agentwire marker.
func (e *env) openControl(agentwire bool) grpc.ClientStream {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	e.t.Cleanup(cancel)
	if agentwire {
		ctx = metadata.AppendToOutgoingContext(ctx, "agentwire-control", "1")
	}
	cs, err := e.cc.NewStream(ctx, controlDesc, pb.AgentServiceV2_ControlStream_FullMethodName)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := cs.Header(); err != nil {
		e.t.Fatal(err)
	}
	return cs
}

func TestControlStreamRustSDKMode(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp")
	cs := e.openControl(false)
	// The keep-alive configure comes first, at once.
	var ka pb.ProxyControl
	if err := cs.RecvMsg(&ka); err != nil {
		t.Fatal(err)
	}
	if c := ka.GetConfigure(); c == nil || c.ConfigJson != "{}" || c.IsInitial || c.ConfigVersion != nil || c.TimestampMs == 0 {
		t.Fatalf("keep-alive = %v", &ka)
	}
	// Health, metrics and log are consumed silently; config_update is
	// answered with an accepting config_response.
	for _, m := range []*pb.AgentControl{
		{Message: &pb.AgentControl_Health{Health: &pb.HealthStatus{State: 1}}},
		{Message: &pb.AgentControl_Metrics{Metrics: &pb.MetricsReport{AgentId: "x"}}},
		{Message: &pb.AgentControl_Log{Log: &pb.LogMessage{Level: 4, Message: "hi"}}},
		{Message: &pb.AgentControl_ConfigUpdate{ConfigUpdate: &pb.ConfigUpdateRequest{RequestId: "req-1",
			UpdateType: &pb.ConfigUpdateRequest_RuleUpdate{RuleUpdate: &pb.RuleUpdate{RuleSet: "x"}}}}},
	} {
		if err := cs.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	var resp pb.ProxyControl
	if err := cs.RecvMsg(&resp); err != nil {
		t.Fatal(err)
	}
	cr := resp.GetConfigResponse()
	if cr.GetRequestId() != "req-1" || !cr.GetAccepted() || cr.Error != nil || cr.GetTimestampMs() == 0 {
		t.Fatalf("config response = %v", &resp)
	}
	if err := cs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var end pb.ProxyControl
	for {
		err := cs.RecvMsg(&end)
		if err != nil {
			if !errors.Is(err, io.EOF) && status.Code(err) != codes.OK {
				t.Fatalf("stream end = %v", err)
			}
			break
		}
		if end.GetConfigure() == nil {
			t.Fatalf("unexpected message %v", &end)
		}
	}
}

func TestControlStreamRustSDKModeZeroInterval(t *testing.T) {
	caps := agentwire.Capabilities{Features: agentwire.FullFeatures(), Limits: agentwire.DefaultLimits()} // report interval 0, metrics_export on
	e := startEnv(t, BaseHandler{}, "tcp", WithCapabilities(caps))
	cs := e.openControl(false)
	if err := cs.SendMsg(&pb.AgentControl{Message: &pb.AgentControl_ConfigUpdate{ConfigUpdate: &pb.ConfigUpdateRequest{RequestId: "z"}}}); err != nil {
		t.Fatal(err)
	}
	// No keep-alive: the first message is the answer.
	var m pb.ProxyControl
	if err := cs.RecvMsg(&m); err != nil {
		t.Fatal(err)
	}
	if m.GetConfigResponse().GetRequestId() != "z" {
		t.Fatalf("first message = %v, want the config response (no keep-alive at interval 0)", &m)
	}
}

func TestControlStreamAgentwireMode(t *testing.T) {
	h := newHookHandler()
	e := startEnv(t, h, "tcp")
	if _, err := e.srv.RequestConfigUpdate(testCtx(t), &agentwire.ConfigUpdateRequest{Kind: agentwire.ConfigRequestReload}); !errors.Is(err, ErrNoControlStream) {
		t.Fatalf("without control stream: %v", err)
	}
	cs := e.openControl(true)

	// Agent → proxy: config_update, answered by the proxy with config_response.
	type result struct {
		r   agentwire.ConfigUpdateResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The stream is registered before its headers are sent, so it is
		// usable now.
		r, err := e.srv.RequestConfigUpdate(testCtx(t), &agentwire.ConfigUpdateRequest{
			Kind: agentwire.ConfigListUpdate, RequestID: "cu-1", ListID: "ips", Add: []string{"1.2.3.4"},
		})
		done <- result{r, err}
	}()
	var req pb.AgentControl
	if err := cs.RecvMsg(&req); err != nil {
		t.Fatal(err)
	}
	cu := req.GetConfigUpdate()
	if cu.GetRequestId() != "cu-1" || cu.GetListUpdate().GetListId() != "ips" || cu.GetListUpdate().GetAdd()[0] != "1.2.3.4" || cu.GetTimestampMs() == 0 {
		t.Fatalf("config update = %v", &req)
	}
	reason := "no lists here"
	if err := cs.SendMsg(&pb.ProxyControl{Message: &pb.ProxyControl_ConfigResponse{ConfigResponse: &pb.ConfigUpdateResponse{
		RequestId: "cu-1", Accepted: false, Error: &reason, TimestampMs: 5,
	}}}); err != nil {
		t.Fatal(err)
	}
	res := recvTimeout(t, done, "RequestConfigUpdate")
	if res.err != nil || res.r != (agentwire.ConfigUpdateResponse{RequestID: "cu-1", Error: agentwire.Some(reason), TimestampMS: 5}) {
		t.Fatalf("RequestConfigUpdate = %+v, %v", res.r, res.err)
	}

	// Proxy → agent: configure push, drain, shutdown reach the hooks.
	v := "v2"
	for _, m := range []*pb.ProxyControl{
		{Message: &pb.ProxyControl_Configure{Configure: &pb.ConfigureEvent{ConfigJson: `{"x":1}`, ConfigVersion: &v}}},
		{Message: &pb.ProxyControl_Drain{Drain: &pb.DrainRequest{DurationMs: 3000, Reason: 2, TimestampMs: 9}}},
		{Message: &pb.ProxyControl_Shutdown{Shutdown: &pb.ShutdownRequest{Reason: 1, GracePeriodMs: 500, TimestampMs: 10}}},
	} {
		if err := cs.SendMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	h.waitCall(t, "configure")
	h.waitCall(t, "drain")
	h.waitCall(t, "shutdown")
	h.mu.Lock()
	if len(h.configs) != 1 || h.configs[0] != `v2={"x":1}` {
		t.Errorf("configs = %q", h.configs)
	}
	if len(h.drains) != 1 || h.drains[0] != (DrainNotice{DurationMS: 3000, Reason: DrainMaintenance, TimestampMS: 9}) {
		t.Errorf("drains = %+v", h.drains)
	}
	if len(h.shutdowns) != 1 || h.shutdowns[0] != (ShutdownNotice{Reason: ShutdownGraceful, GracePeriodMS: 500, TimestampMS: 10}) {
		t.Errorf("shutdowns = %+v", h.shutdowns)
	}
	h.mu.Unlock()

	// A pending request fails when the server closes.
	go func() {
		_, err := e.srv.RequestConfigUpdate(context.Background(), &agentwire.ConfigUpdateRequest{RequestID: "never"})
		done <- result{err: err}
	}()
	var pending pb.AgentControl
	if err := cs.RecvMsg(&pending); err != nil || pending.GetConfigUpdate().GetRequestId() != "never" {
		t.Fatalf("second request = %v, %v", &pending, err)
	}
	e.srv.Close()
	if res := recvTimeout(t, done, "RequestConfigUpdate after Close"); !errors.Is(res.err, ErrServerClosed) {
		t.Fatalf("pending request after Close: %v", res.err)
	}
}

func TestRequestConfigUpdateContext(t *testing.T) {
	e := startEnv(t, BaseHandler{}, "tcp")
	e.openControl(true)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.srv.RequestConfigUpdate(ctx, &agentwire.ConfigUpdateRequest{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded (nobody answers)", err)
	}
}
