package agent

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/lathist"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestEventStats sends events over a Unix socket and checks the server's
// counters by event kind: each handled event once, under the decision
// of the reply actually sent (a handler error or panic under the error
// decision), and its handler latency in the histogram of its kind.
func TestEventStats(t *testing.T) {
	const slow = 5 * time.Millisecond
	h := Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			switch ev.URI {
			case "/block":
				r.Decision = agentwire.Block(403)
			case "/challenge":
				r.Decision = agentwire.Decision{Kind: agentwire.DecisionChallenge}
			case "/error":
				return errors.New("handler failed")
			case "/panic":
				panic("handler panicked")
			case "/slow":
				time.Sleep(slow) // a minimum handler duration, not a synchronization
			}
			return nil
		},
		RequestComplete: func(context.Context, *agentwire.RequestCompleteEvent, *agentwire.AgentResponse) error { return nil },
	}
	e := startUDS(t, h, WithErrorDecision(agentwire.Block(500)), WithLogger(slog.New(slog.DiscardHandler)))
	p := dialRaw(t, e.path)
	p.handshake()
	uris := []string{"/", "/slow", "/block", "/challenge", "/error", "/panic"}
	for i, u := range uris {
		p.send(frame.TypeRequestHeaders, reqHeadersJSON("c"+string(rune('0'+i)), u))
		p.recvReply(false)
	}
	p.send(frame.TypeRequestComplete, payload.AppendRequestCompleteJSON(nil, &agentwire.RequestCompleteEvent{CorrelationID: "c0", Status: 200}))
	p.recvReply(false)

	rh := e.srv.EventStats(agentwire.EventRequestHeaders)
	if want := (DecisionCounts{Allow: 2, Block: 3, Challenge: 1}); rh.Decisions != want {
		t.Errorf("request headers decisions %+v, want %+v", rh.Decisions, want)
	}
	if n := rh.Latency.Count(); n != uint64(len(uris)) {
		t.Errorf("request headers latency count %d, want %d", n, len(uris))
	}
	if rh.Latency.Sum < slow {
		t.Errorf("latency sum %v, below the slow handler's %v", rh.Latency.Sum, slow)
	}
	var atLeastSlow uint64
	for i := lathist.Bucket(slow); i < LatencyBuckets; i++ {
		atLeastSlow += rh.Latency.Counts[i]
	}
	if atLeastSlow == 0 {
		t.Errorf("no latency at or above %v: %v", slow, rh.Latency.Counts)
	}
	rc := e.srv.EventStats(agentwire.EventRequestComplete)
	if rc.Decisions != (DecisionCounts{Allow: 1}) || rc.Latency.Count() != 1 {
		t.Errorf("request complete %+v", rc)
	}
	var total uint64
	for k := agentwire.EventRequestHeaders; k <= agentwire.EventGuardrailInspect; k++ {
		st := e.srv.EventStats(k)
		total += st.Decisions.Total()
		if k != agentwire.EventRequestHeaders && k != agentwire.EventRequestComplete && st != (EventStats{}) {
			t.Errorf("kind %d counted: %+v", k, st)
		}
	}
	if st := e.srv.Stats(); total != st.Events || st.HandlerErrors != 1 || st.HandlerPanics != 1 {
		t.Errorf("%d events by kind, Stats %+v", total, st)
	}
	if e.srv.EventStats(0) != (EventStats{}) || e.srv.EventStats(8) != (EventStats{}) {
		t.Error("an event kind out of range has counts")
	}
}

// TestEventKindNumbering: the server's event kinds are indexed by the
// agentwire event codes, which EventStats takes.
func TestEventKindNumbering(t *testing.T) {
	for _, c := range []struct {
		k    eventKind
		code int32
	}{
		{kindRequestHeaders, agentwire.EventRequestHeaders}, {kindRequestBodyChunk, agentwire.EventRequestBodyChunk},
		{kindResponseHeaders, agentwire.EventResponseHeaders}, {kindResponseBodyChunk, agentwire.EventResponseBodyChunk},
		{kindRequestComplete, agentwire.EventRequestComplete}, {kindWebSocketFrame, agentwire.EventWebSocketFrame},
		{kindGuardrailInspect, agentwire.EventGuardrailInspect},
	} {
		if int32(c.k) != c.code {
			t.Errorf("%v is %d, agentwire code %d", c.k, c.k, c.code)
		}
	}
}
