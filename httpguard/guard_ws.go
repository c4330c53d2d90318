package httpguard

import (
	"context"
	"io"
	"net/http"

	"github.com/agentwire/agentwire"
)

// ModifyResponse is an httputil.ReverseProxy ModifyResponse hook that
// puts a WebSocketFilter around the upstream side of an upgraded
// connection, when the guard's agents take WebSocket frames: every frame
// of both directions then goes to them (Pipeline.WebSocketFrame, on the
// connections of the upgrade request) and their decisions are enforced
// (WebSocketDecisionOf: allow, drop, close with the agent's code; a
// fail-closed failure closes with 1011). Other responses are left alone.
// Chain it with a ModifyResponse of your own by calling it first. Safe for
// concurrent use.
//
//	g, _ := httpguard.New(rp, pipeline)
//	rp.ModifyResponse = g.ModifyResponse
//	http.ListenAndServe(addr, g)
func (g *Guard) ModifyResponse(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols || res.Request == nil {
		return nil
	}
	x, ok := res.Request.Context().Value(exchangeKey{}).(*exchange)
	if !ok || x.g != g {
		return nil
	}
	up, ok := res.Body.(io.ReadWriteCloser)
	if !ok {
		return nil
	}
	md := &x.rh.Event.Metadata
	f, err := NewWebSocketFilter(res.Request.Context(), up, WebSocketConfig{
		Stream:  WebSocketStream{CorrelationID: x.cid, RouteID: md.RouteID, ClientIP: md.ClientIP},
		Inspect: x.inspectFrame,
	})
	if err != nil {
		return err
	}
	// The filter's goroutines may outlive the handler (the reverse
	// proxy returns when one direction ends): the exchange is then left
	// to them, never reused.
	x.mu.Lock()
	x.ws = true
	x.recycle = false
	x.mu.Unlock()
	g.st.wsStreams.Add(1)
	res.Body = f
	return nil
}

// inspectFrame sends one frame to the agents. The two directions of a
// stream take turns (the request's pipeline state is one).
func (x *exchange) inspectFrame(ctx context.Context, ev *agentwire.WebSocketFrameEvent) agentwire.WebSocketDecision {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.wsOver {
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: CloseGoingAway}
	}
	v := x.g.pl.WebSocketFrame(ctx, &x.pr, ev)
	d := WebSocketDecisionOf(&v)
	if v.Allowed() {
		// Every agent allowed the frame as a request, but one may drop or
		// close it (its reply's websocket_decision; the merged verdict of
		// an allow carries no reply): a close beats a drop, the first
		// agent's of each wins.
		for i := range x.pr.Verdicts {
			if sd := WebSocketDecisionOf(&x.pr.Verdicts[i]); sd.Kind > d.Kind {
				d = sd
			}
		}
	}
	if d.Kind == agentwire.WebSocketClose {
		x.g.st.wsCloses.Add(1)
	}
	return d
}
