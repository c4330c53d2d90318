package agent_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
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

// A Funcs handler: a misspelt field name does not compile, unset events
// are allowed, and unset hooks do not exist. WithSupportedEvents announces
// only the events that have a function.
func ExampleFuncs() {
	f := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			if strings.HasPrefix(ev.URI, "/admin") {
				r.Decision = agentwire.Block(403)
			}
			return nil
		},
		Configure: func(_ context.Context, cfg json.RawMessage, version string) error {
			fmt.Printf("configuration %s: %s\n", version, cfg)
			return nil
		},
	}
	srv := agent.NewServer(f, agent.WithAgentID("waf-1"), agent.WithSupportedEvents(f.Events()...))
	defer srv.Close()
	fmt.Println("announced events:", srv.Capabilities().SupportedEvents)

	// The server calls the handler like this for every event.
	r := &agentwire.AgentResponse{}
	_ = f.OnRequestHeaders(context.Background(), &agentwire.RequestHeadersEvent{URI: "/admin/users"}, r)
	fmt.Println("request headers:", r.Decision.Kind == agentwire.DecisionBlock, r.Decision.Status)
	_ = f.OnConfigure(context.Background(), json.RawMessage(`{"paranoia":2}`), "v7")
	// Output:
	// announced events: [1 8]
	// request headers: true 403
	// configuration v7: {"paranoia":2}
}

// Middleware around a handler: a counter of failed calls and an audit tag
// on every request-headers reply. The handler's hooks (here none) are kept
// as they are.
func ExampleWrap() {
	var events, failed atomic.Int64
	count := func(next agent.HandlerFunc) agent.HandlerFunc {
		return func(ctx context.Context, ev agent.Event, r *agentwire.AgentResponse) error {
			events.Add(1)
			err := next(ctx, ev, r)
			if err != nil {
				failed.Add(1)
			}
			return err
		}
	}
	tag := func(next agent.HandlerFunc) agent.HandlerFunc {
		return func(ctx context.Context, ev agent.Event, r *agentwire.AgentResponse) error {
			err := next(ctx, ev, r)
			if ev.Kind == agentwire.EventRequestHeaders {
				r.Audit.Tags = append(r.Audit.Tags, "waf-v2")
			}
			return err
		}
	}
	h := agent.Wrap(waf{}, count, tag)
	srv := agent.NewServer(h)
	defer srv.Close()

	r := &agentwire.AgentResponse{}
	_ = h.OnRequestHeaders(context.Background(), &agentwire.RequestHeadersEvent{URI: "/admin"}, r)
	fmt.Println(r.Decision.Status, r.Audit.RuleIDs, r.Audit.Tags, events.Load(), failed.Load())
	// Output: 403 [admin-path] [waf-v2] 1 0
}
