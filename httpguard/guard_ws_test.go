package httpguard

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine/pool"
)

// TestGuardWebSocket: through a Guard in front of a reverse proxy (with
// Guard.ModifyResponse), the frames of an upgraded connection go to the
// agent, in both directions, under the upgrade request's correlation id;
// its decisions are enforced: allow passes, drop leaves the frame out,
// close sends its code and reason to both sides. The Rust proxy never
// sends frames (REFERENCE-DEFECTS B-X1).
func TestGuardWebSocket(t *testing.T) {
	var mu sync.Mutex
	var events []string
	var upgradeCID string
	h := agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
			mu.Lock()
			upgradeCID = ev.Metadata.CorrelationID
			mu.Unlock()
			return nil
		},
		WebSocketFrame: func(_ context.Context, ev *agentwire.WebSocketFrameEvent, r *agentwire.AgentResponse) error {
			dir := "s2c"
			if ev.ClientToServer {
				dir = "c2s"
			}
			mu.Lock()
			events = append(events, fmt.Sprintf("%s:%d:%s:%s:%s", dir, ev.FrameIndex, ev.Opcode, ev.Data, ev.CorrelationID))
			mu.Unlock()
			switch string(ev.Data) {
			case "drop":
				r.WebSocketDecision = agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop})
			case "close me":
				r.WebSocketDecision = agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 4001, Reason: "closed by agent"})
			}
			return nil
		},
	}
	ag := startUDSAgent(t, h)
	_, pl, _ := newPipeline(t, true, agentOpts(ag.Endpoint(), pool.WithEvents(agentwire.EventRequestHeaders, agentwire.EventWebSocketFrame)))
	up := &echoUpstream{done: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	g, srv := newGuard(t, reverseProxy(t, upSrv.URL), pl)
	c, br := dialWS(t, srv.URL)
	send := func(op Opcode, s string) {
		t.Helper()
		if _, err := c.Write(AppendFrame(nil, true, op, []byte(s), &clientKey)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(op Opcode, s string) {
		t.Helper()
		f, err := readFrame(br)
		if err != nil || f.Opcode != op || string(f.Payload) != s {
			t.Fatalf("got %v %q (%v), want %v %q", f.Opcode, f.Payload, err, op, s)
		}
	}
	send(OpText, "hello")
	expect(OpText, "hello")
	send(OpText, "drop")
	send(OpText, "push:drop") // the upstream's "drop" is dropped on the way back
	send(OpText, "after")
	expect(OpText, "after")
	send(OpText, "close me")
	f, err := readFrame(br)
	if err != nil || f.Opcode != OpClose || closeString(f.Payload) != "4001 closed by agent" {
		t.Fatalf("close: %v %v %q", err, f.Opcode, closeString(f.Payload))
	}
	select {
	case <-up.done:
	case <-time.After(testTimeout):
		t.Fatal("upstream still running")
	}
	if got, want := strings.Join(up.received(), "|"), "hello|push:drop|after|close:4001 closed by agent"; got != want {
		t.Fatalf("upstream received %q, want %q", got, want)
	}
	c.Close()
	if err := g.Wait(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	all := strings.Join(events, "|")
	for _, e := range []string{"c2s:0:text:hello:", "s2c:0:text:hello:", "c2s:1:text:drop:", "s2c:1:text:drop:", "c2s:4:text:close me:"} {
		if !strings.Contains(all, e+upgradeCID) {
			t.Errorf("event %s%s missing from %s", e, upgradeCID, all)
		}
	}
	if s := g.Stats(); s.WebSocketStreams != 1 || s.WebSocketCloses != 1 {
		t.Fatalf("stats %+v", s)
	}
}
