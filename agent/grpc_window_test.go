package agent

import (
	"strings"
	"testing"
)

func TestGRPCWindowOption(t *testing.T) {
	for _, n := range []int{-1, 1, 64<<10 - 1, 1 << 31} {
		if _, err := newServer(BaseHandler{}, WithGRPCWindow(n)); err == nil || !strings.Contains(err.Error(), "gRPC window") {
			t.Fatalf("window %d: %v", n, err)
		}
	}
	for _, n := range []int{0, 64 << 10, DefaultGRPCWindow} {
		s, err := newServer(BaseHandler{}, WithGRPCWindow(n))
		if err != nil {
			t.Fatalf("window %d: %v", n, err)
		}
		if s.cfg.grpcWindow != n {
			t.Fatalf("window %d stored as %d", n, s.cfg.grpcWindow)
		}
	}
	if s, _ := newServer(BaseHandler{}); s.cfg.grpcWindow != DefaultGRPCWindow {
		t.Fatalf("default window %d", s.cfg.grpcWindow)
	}
}
