package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// Server.Shutdown: "If ctx ends first, Shutdown falls back to Close and
// returns ctx.Err()." When ctx ended while the grpc.Server created by
// ServeGRPC was still stopping gracefully (here: a unary interceptor of
// WithGRPCServerOptions that holds the RPC after the handler returned),
// Shutdown stopped it hard but returned nil.
func TestShutdownReturnsCtxErrWhenGracefulStopOutlastsCtx(t *testing.T) {
	entered := make(chan struct{}, 1)
	hold := grpc.UnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		resp, err := handler(ctx, req)
		entered <- struct{}{}
		<-ctx.Done() // released by a hard stop
		return resp, err
	})
	e := startEnv(t, &funcHandler{}, "tcp", WithGRPCServerOptions(hold))
	go func() { _, _ = e.client.ProcessEvent(testCtx(t), ping(1)) }()
	recvTimeout(t, entered, "the unary call to be answered and held")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want context.DeadlineExceeded (ctx ended before the server stopped)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Shutdown did not return")
	}
}
