package agent

import (
	"context"
	"log/slog"
	"testing"
)

// TestDefaultLoggerDiscards: without WithLogger, the server's logger is
// enabled at no level (nothing is even formatted). The agent's lifecycle
// lines at Debug, and the absence of per-request lines under load, are
// checked end to end in package engine (TestLifecycleLogs).
func TestDefaultLoggerDiscards(t *testing.T) {
	s := NewServer(BaseHandler{})
	defer s.Close()
	for _, lv := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		if s.log.Enabled(context.Background(), lv) {
			t.Errorf("default logger enabled at %v", lv)
		}
	}
}
