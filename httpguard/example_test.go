package httpguard_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/agent/refagents"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/httpguard"
)

// An application guarded by one agent, by hand: the reference Deny agent
// (it blocks /admin and marks other requests with X-Agent-Processed)
// served in-process on a loopback port.
func Example() {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := agent.NewServer(refagents.Deny{})
	go func() { _ = srv.ServeGRPC(ln) }()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := engine.Dial(ctx, "grpc://"+ln.Addr().String(), engine.WithInsecure())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "app: x-agent-processed=%s", r.Header.Get("X-Agent-Processed"))
	})
	b, _ := httpguard.NewBuilder()
	guarded := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var rh httpguard.RequestHeaders
		b.RequestHeaders(r, &rh)
		v := conn.Decide(conn.RequestHeaders(r.Context(), &rh.Event))
		if httpguard.WriteVerdict(w, &v) {
			return // blocked, redirected, challenged, or failed closed
		}
		if v.Reply != nil {
			_ = httpguard.ApplyRequestHeaderOps(r, v.Reply.RequestHeaders)
		}
		app.ServeHTTP(w, r)
	})

	for _, path := range []string{"/x", "/admin/users"} {
		rec := httptest.NewRecorder()
		guarded.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code, strings.TrimSpace(rec.Body.String()))
	}
	// Output:
	// /x 200 app: x-agent-processed=true
	// /admin/users 403 Forbidden
}

// Header operations from an agent: valid ones are applied, the ones that
// would break HTTP are refused and reported.
func ExampleApplyHeaderOps() {
	h := http.Header{"Authorization": {"Bearer abc"}}
	err := httpguard.ApplyHeaderOps(h, []agentwire.HeaderOp{
		{Kind: agentwire.HeaderSet, Name: "x-user", Value: "alice"},
		{Kind: agentwire.HeaderRemove, Name: "authorization"},
		{Kind: agentwire.HeaderSet, Name: "content-length", Value: "0"},
		{Kind: agentwire.HeaderAdd, Name: "x-note", Value: "a\r\nInjected: 1"},
	})
	fmt.Println(h)
	fmt.Println(errors.Is(err, httpguard.ErrHeaderRefused), err)
	// Output:
	// map[X-User:[alice]]
	// true agentwire: header operation refused: set "content-length": protected (and 1 more)
}

// What the client gets for each kind of decision.
func ExampleDecisionResponse() {
	for _, d := range []agentwire.Decision{
		agentwire.Block(0),
		agentwire.Redirect("https://login.example/", 0),
		agentwire.Challenge("captcha", map[string]string{"site_key": "k1"}),
	} {
		var resp httpguard.Response
		httpguard.DecisionResponse(&d, &resp)
		fmt.Printf("%s: %d %q", d.Kind, resp.Status, resp.Body)
		for _, f := range resp.Header {
			if f.Name == "Location" || f.Name == "Www-Authenticate" {
				fmt.Printf(" %s: %s", f.Name, f.Value)
			}
		}
		fmt.Println()
	}
	// Output:
	// block: 403 "Forbidden\n"
	// redirect: 302 "" Location: https://login.example/
	// challenge: 401 "Unauthorized\n" Www-Authenticate: captcha site_key="k1"
}

// A body streamed to an agent in hybrid mode: small bodies go as one
// chunk, larger ones are streamed once the threshold is reached.
func ExamplePlanner() {
	var p httpguard.Planner
	_ = p.Reset(httpguard.ModeHybrid, 8, 1<<20, -1)
	var s httpguard.BodyStream
	s.Reset("req-1", httpguard.TotalFromContentLength(-1))
	var ev agentwire.BodyChunk
	for _, piece := range []string{"abc", "defgh", "ijk", ""} {
		chunk, last, send, _ := p.Feed([]byte(piece), piece == "")
		if send {
			_ = s.Chunk(&ev, chunk, last)
			fmt.Printf("chunk %d %q last=%v bytes=%d\n", ev.ChunkIndex, ev.Data, ev.IsLast, ev.BytesTransferred)
		}
	}
	// Output:
	// chunk 0 "abcdefgh" last=false bytes=8
	// chunk 1 "ijk" last=false bytes=11
	// chunk 2 "" last=true bytes=11
}

// Frames on an upgraded connection: parse a masked client frame, build
// its event, answer a close.
func ExampleParseFrame() {
	key := [4]byte{1, 2, 3, 4}
	wire := httpguard.AppendFrame(nil, true, httpguard.OpText, []byte("hello"), &key)

	var f httpguard.Frame
	n, err := httpguard.ParseFrame(wire, 1<<20, &f)
	f.ToggleMask()
	fmt.Println(n, err, f.Opcode, string(f.Payload))

	s := httpguard.WebSocketStream{CorrelationID: "ws-1", ClientIP: "192.0.2.1"}
	var ev agentwire.WebSocketFrameEvent
	s.Event(&ev, &f, true)
	fmt.Println(ev.Opcode, ev.FrameIndex, ev.ClientToServer, string(ev.Data))

	closeFrame := httpguard.AppendCloseFrame(nil, 4003, "forbidden content", nil)
	fmt.Printf("%x\n", closeFrame[:4])
	// Output:
	// 11 <nil> text hello
	// text 0 true hello
	// 88130fa3
}
