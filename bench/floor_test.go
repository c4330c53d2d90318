package bench

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/pbwire"
)

// TestFloorMessagesAreTheWorkload checks that the floor carries the
// workload's own messages: they decode as the sample event and as the echo
// agent's reply.
func TestFloorMessagesAreTheWorkload(t *testing.T) {
	for _, enc := range []string{"msgpack", "json"} {
		req, reply, err := FloorMessages("uds", enc, 0)
		if err != nil {
			t.Fatal(err)
		}
		var ev agentwire.RequestHeadersEvent
		var r agentwire.AgentResponse
		if enc == "msgpack" {
			err = payload.DecodeRequestHeadersMsgpack(req, &ev)
			if err == nil {
				err = payload.DecodeAgentResponseMsgpack(reply, &r)
			}
		} else {
			err = payload.DecodeRequestHeadersJSON(req, &ev)
			if err == nil {
				err = payload.DecodeAgentResponseJSON(reply, &r)
			}
		}
		if err != nil || len(ev.Headers) != len(SampleHeaders()) || ev.Metadata.CorrelationID == "" || r.CorrelationID != ev.Metadata.CorrelationID || len(r.RequestHeaders) != 1 {
			t.Fatalf("%s: %v %+v %+v", enc, err, ev, r)
		}
		t.Logf("uds %s: request %d bytes, reply %d bytes", enc, len(req), len(reply))
	}
	req, reply, err := FloorMessages("grpc", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := pbwire.ScanAgentToProxy(reply); err != nil || len(req) < 500 {
		t.Fatalf("grpc: %v, request %d bytes", err, len(req))
	}
	req, reply, _ = FloorMessages("uds", "", 4096)
	if len(req) != 4096 || len(reply) != 4096 {
		t.Fatalf("--size: %d/%d", len(req), len(reply))
	}
	if _, _, err := FloorMessages("tcp", "", 0); err == nil {
		t.Fatal("unknown transport accepted")
	}
}

// TestFloorRoundTrips runs the floor's client and echo over a Unix socket
// on both transports: every call completes, in order, without errors.
func TestFloorRoundTrips(t *testing.T) {
	for _, tr := range []string{"uds", "grpc"} {
		t.Run(tr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			path := filepath.Join(t.TempDir(), "floor.sock")
			ln, err := net.Listen("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			req, reply, err := FloorMessages(tr, "msgpack", 0)
			if err != nil {
				t.Fatal(err)
			}
			sctx, stop := context.WithCancel(ctx)
			served := make(chan error, 1)
			go func() {
				if tr == "uds" {
					served <- ServeFloorUDS(sctx, ln, reply)
				} else {
					served <- ServeFloorGRPC(sctx, ln, reply)
				}
			}()
			fc, err := FloorLoad{Transport: tr, Addr: "unix://" + path, Conns: 2, Request: req}.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(ctx, Config{Concurrency: 8, Duration: 200 * time.Millisecond, Warmup: 20 * time.Millisecond}, fc.RoundTrip(8))
			fc.Close()
			stop()
			if serr := <-served; serr != nil {
				t.Fatalf("echo: %v", serr)
			}
			if err != nil || res.Errors != 0 || res.Requests < 100 {
				t.Fatalf("run: %v, %d requests, %d errors (%s)", err, res.Requests, res.Errors, res.FirstError)
			}
		})
	}
}
