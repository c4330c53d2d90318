package agent_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
)

// waf blocks admin paths and tags everything else.
type waf struct{ agent.BaseHandler }

func (waf) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	if strings.HasPrefix(ev.URI, "/admin") {
		r.Decision = agentwire.Block(403)
		r.Audit.RuleIDs = append(r.Audit.RuleIDs, "admin-path")
		return nil
	}
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "X-Waf", Value: "checked"})
	return nil
}

func Example() {
	srv := agent.NewServer(waf{}, agent.WithAgentID("waf-1"), agent.WithMaxConcurrency(64))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	done := make(chan error, 1)
	go func() { done <- srv.ServeGRPC(ln) }()

	// ... proxies connect to ln.Addr() and send events ...

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), <-done)
	// Output: <nil> agentwire: agent server closed
}
