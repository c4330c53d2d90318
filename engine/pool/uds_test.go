package pool

import (
	"testing"

	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/internal/testagent"
)

// udsAgent is a real agent on a Unix socket that can be killed and
// restarted (internal/testagent).
type udsAgent = testagent.UDS

func sockPath(tb testing.TB) string { return testagent.SockPath(tb) }

func newUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	return testagent.New(tb, h, opts...)
}

func startUDSAgent(tb testing.TB, h agent.Handler, opts ...agent.Option) *udsAgent {
	return testagent.Start(tb, h, opts...)
}
