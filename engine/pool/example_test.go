package pool_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/engine/pool"
)

// waf blocks /admin.
type waf struct{ agent.BaseHandler }

func (waf) OnRequestHeaders(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	if strings.HasPrefix(ev.URI, "/admin") {
		r.Decision = agentwire.Block(403)
		r.Audit.Tags = append(r.Audit.Tags, "waf:admin")
	}
	return nil
}

// auth tags every request with a user header.
type auth struct{ agent.BaseHandler }

func (auth) OnRequestHeaders(_ context.Context, _ *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-user", Value: "alice"})
	return nil
}

// serve runs an agent on a Unix socket and returns its endpoint and a stop
// function.
func serve(dir, name string, h agent.Handler) (string, func()) {
	path := filepath.Join(dir, name+".sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		panic(err)
	}
	srv := agent.NewServer(h, agent.WithAgentID(name))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDS(ln) }()
	return "unix://" + path, func() { _ = srv.Close(); <-done }
}

// A route with two agents: a WAF behind two connections, and an auth
// agent that fails open, whose second endpoint is not up at all.
func Example() {
	dir, _ := os.MkdirTemp("", "pool-example")
	defer os.RemoveAll(dir)
	wafEndpoint, stopWAF := serve(dir, "waf", waf{})
	defer stopWAF()
	authEndpoint, stopAuth := serve(dir, "auth", auth{})
	defer stopAuth()

	p, err := pool.New()
	if err != nil {
		panic(err)
	}
	defer p.Close()
	wafAgent, err := p.AddAgent("waf", pool.WithEndpoint(wafEndpoint, 2), pool.WithTimeout(time.Second))
	if err != nil {
		panic(err)
	}
	authAgent, err := p.AddAgent("auth",
		pool.WithEndpoints(pool.Endpoint{Address: authEndpoint}, pool.Endpoint{Address: "unix://" + filepath.Join(dir, "down.sock")}),
		pool.WithFailurePolicy(engine.FailurePolicy{Mode: engine.FailOpen}))
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Wait for the WAF's two connections and one of auth's (the other is
	// retried in the background until its agent comes up).
	if err := wafAgent.WaitReady(ctx, 2); err != nil {
		panic(err)
	}
	if err := authAgent.WaitReady(ctx, 1); err != nil {
		panic(err)
	}

	route, err := pool.NewPipeline([]pool.Step{{Agent: wafAgent}, {Agent: authAgent}})
	if err != nil {
		panic(err)
	}
	var r pool.Request
	for i, uri := range []string{"/index.html", "/admin/users"} {
		cid := fmt.Sprint("req-", i)
		ev := &agentwire.RequestHeadersEvent{
			Metadata: agentwire.RequestMetadata{CorrelationID: cid, ClientIP: "192.0.2.1"},
			Method:   "GET", URI: uri,
		}
		v := route.RequestHeaders(ctx, &r, ev)
		if v.Allowed() {
			fmt.Printf("%s: allow, headers %v\n", uri, r.RequestHeaderOps)
		} else {
			fmt.Printf("%s: %s %d by %s (synthetic %v), tags %v\n", uri, v.Decision.Kind, v.Decision.Status, v.Agent, v.Synthetic, r.Audit.Tags)
		}
		route.End(&r)
	}
	st := wafAgent.Stats()
	fmt.Printf("waf: %d requests, %d allowed, %d blocked, breaker %v\n", st.Requests, st.Decisions.Allow, st.Decisions.Block, st.Breaker)

	// Output:
	// /index.html: allow, headers [{set x-user alice}]
	// /admin/users: block 403 by waf (synthetic false), tags [waf:admin]
	// waf: 2 requests, 1 allowed, 1 blocked, breaker closed
}
