package engine_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/engine"
)

// A proxy asks an agent about a request. The agent here is the reference
// Deny agent served in-process on a loopback port.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := agent.NewServer(refagents.Deny{})
	go func() { _ = srv.ServeGRPC(ln) }()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := engine.Dial(ctx, "grpc://"+ln.Addr().String(), engine.WithInsecure())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	for _, uri := range []string{"/index.html", "/admin/users"} {
		// Decide enforces the failure policy (fail-closed by default): an
		// error becomes a synthetic block, never a silent allow.
		v := c.Decide(c.RequestHeaders(ctx, &agentwire.RequestHeadersEvent{
			Metadata: agentwire.RequestMetadata{CorrelationID: "req" + uri, ClientIP: "203.0.113.7", Protocol: "HTTP/1.1"},
			Method:   "GET",
			URI:      uri,
		}))
		fmt.Println(uri, v.Decision.Kind, v.Decision.Status, v.Synthetic)
	}
	srv.Close() // the agent goes away: the failure policy answers
	v := c.Decide(c.RequestHeaders(ctx, &agentwire.RequestHeadersEvent{Method: "GET", URI: "/index.html"}))
	fmt.Println("agent down:", v.Decision.Kind, v.Decision.Status, v.Synthetic, v.Reason)
	// Output:
	// /index.html allow 0 false
	// /admin/users block 403 false
	// agent down: block 503 true error
}

// A proxy that starts before its agent: NewConn returns at once and
// connects in the background. The request goes without a correlation id:
// the Conn generates one and writes it into the event.
func ExampleNewConn() {
	dir, _ := os.MkdirTemp("", "aw")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "agent.sock")

	c, err := engine.NewConn("unix://"+path, engine.WithReconnectBackoff(10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		fmt.Println(err) // errors.Is(err, engine.ErrInvalidConfig)
		return
	}
	defer c.Close()
	fmt.Println(c.State())

	// The agent comes up later.
	ln, _ := net.Listen("unix", path)
	srv := agent.NewServer(refagents.Deny{})
	go func() { _ = srv.ServeUDS(ln) }()
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.WaitConnected(ctx); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.State())
	ev := &agentwire.RequestHeadersEvent{Method: "GET", URI: "/admin/users"}
	v := c.Decide(c.RequestHeaders(ctx, ev))
	fmt.Println(v.Decision.Kind, v.Decision.Status, v.Reply.CorrelationID == ev.Metadata.CorrelationID)
	// Output:
	// connecting
	// connected
	// block 403 true
}
