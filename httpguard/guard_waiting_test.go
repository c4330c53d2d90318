package httpguard

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/agent"
	"github.com/agentwire/agentwire/engine/pool"
)

// waitingAgent is a test agent that answers request headers (and body
// chunks, but the last) with needs_more when more is set, and records the
// correlation ids of the headers, the cancels and the request-complete
// events it gets.
type waitingAgent struct {
	rec   *recorder
	heads []string // correlation ids, in order
}

func (w *waitingAgent) funcs(more bool) agent.Funcs {
	return agent.Funcs{
		RequestHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
			w.rec.mu.Lock()
			w.heads = append(w.heads, ev.Metadata.CorrelationID)
			w.rec.mu.Unlock()
			w.rec.note()
			r.NeedsMore = more && ev.Method == http.MethodPost
			return nil
		},
		RequestBodyChunk: func(_ context.Context, ev *agentwire.BodyChunk, r *agentwire.AgentResponse) error {
			w.rec.mu.Lock()
			w.rec.chunks = append(w.rec.chunks, copyChunk(ev))
			w.rec.mu.Unlock()
			w.rec.note()
			r.NeedsMore = more && !ev.IsLast
			return nil
		},
		RequestComplete: func(_ context.Context, ev *agentwire.RequestCompleteEvent, _ *agentwire.AgentResponse) error {
			w.rec.mu.Lock()
			w.rec.complete = append(w.rec.complete, *ev)
			w.rec.mu.Unlock()
			w.rec.note()
			return nil
		},
		Cancel: func(_ context.Context, c agentwire.Cancel) {
			w.rec.mu.Lock()
			w.rec.cancels = append(w.rec.cancels, c)
			w.rec.mu.Unlock()
			w.rec.note()
		},
	}
}

// TestGuardCancelsWaitingAgent: when a request ends, an agent whose last
// request-phase reply asked for more (needs_more) and that will not hear
// of the end otherwise (no final body chunk, no request complete) gets
// exactly one cancel for the request (reason manual) on its connection;
// agents that did not ask for more, that got the body to its end, or that
// get request complete, get none. Each case sends one POST, then a GET
// on the same (single) agent connection as a barrier: the agent reads a
// cancel of the POST, sent before the POST's response, before the GET's
// headers.
func TestGuardCancelsWaitingAgent(t *testing.T) {
	const body = "name=ada&email=ada%40example.com"
	cases := []struct {
		name       string
		more       bool
		events     []int32
		extra      []pool.AgentOption
		stream     bool
		wantStatus int
		wantCancel bool
		wantChunks int
	}{
		{name: "headers only, needs_more", more: true,
			events: []int32{agentwire.EventRequestHeaders}, wantStatus: 200, wantCancel: true},
		{name: "headers only, no needs_more",
			events: []int32{agentwire.EventRequestHeaders}, wantStatus: 200},
		{name: "request complete, needs_more", more: true,
			events: []int32{agentwire.EventRequestHeaders, agentwire.EventRequestComplete}, wantStatus: 200},
		// The data chunk is answered needs_more, so an empty last chunk
		// follows it (BodyStream).
		{name: "body to its end, needs_more", more: true, stream: true,
			events: []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk}, wantStatus: 200, wantChunks: 2},
		{name: "body over the limit (413), needs_more", more: true,
			events: []int32{agentwire.EventRequestHeaders, agentwire.EventRequestBodyChunk},
			extra:  []pool.AgentOption{pool.WithBodyLimits(8, -1)}, wantStatus: http.StatusRequestEntityTooLarge, wantCancel: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wa := &waitingAgent{rec: newRecorder()}
			ag := startUDSAgent(t, wa.funcs(tc.more))
			opts := append([]pool.AgentOption{pool.WithEvents(tc.events...)}, tc.extra...)
			_, pl, as := newPipeline(t, true, agentOpts(ag.Endpoint(), opts...))
			var gopts []GuardOption
			if tc.stream {
				gopts = append(gopts, WithBodyConfig(as[0], BodyConfig{Mode: ModeStream}, BodyConfig{}))
			}
			rp, _ := bodyUpstream(t)
			g, srv := newGuard(t, rp, pl, gopts...)
			c := newClient(t)

			req := mustReq(t, http.MethodPost, srv.URL+"/form", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if st, b, _ := do(t, c, req); st != tc.wantStatus {
				t.Fatalf("POST: %d %q, want %d", st, b, tc.wantStatus)
			}
			if err := g.Wait(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			if st, b, _ := do(t, c, mustReq(t, http.MethodGet, srv.URL+"/barrier", nil)); st != 200 {
				t.Fatalf("GET: %d %q", st, b)
			}
			wa.rec.wait(t, "the barrier's headers", func() bool { return len(wa.heads) == 2 })
			if has(g.subscriptions(), agentwire.EventRequestComplete) {
				wa.rec.wait(t, "request complete", func() bool { return len(wa.rec.complete) >= 1 })
			}
			if err := g.Wait(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			wa.rec.mu.Lock()
			defer wa.rec.mu.Unlock()
			cid := wa.heads[0]
			if tc.wantCancel {
				if len(wa.rec.cancels) != 1 || wa.rec.cancels[0].CorrelationID != cid || wa.rec.cancels[0].Reason != agentwire.CancelManual {
					t.Fatalf("cancels %+v, want exactly one (manual) for %s", wa.rec.cancels, cid)
				}
			} else if len(wa.rec.cancels) != 0 {
				t.Fatalf("cancels %+v, want none", wa.rec.cancels)
			}
			if len(wa.rec.chunks) != tc.wantChunks {
				t.Fatalf("%d body chunks, want %d", len(wa.rec.chunks), tc.wantChunks)
			}
			if tc.wantChunks > 0 && !wa.rec.chunks[len(wa.rec.chunks)-1].IsLast {
				t.Fatalf("the agent did not get the last chunk: %+v", wa.rec.chunks)
			}
			if has(g.subscriptions(), agentwire.EventRequestComplete) {
				if len(wa.rec.complete) < 1 || wa.rec.complete[0].CorrelationID != cid {
					t.Fatalf("request complete %+v, want one for %s", wa.rec.complete, cid)
				}
			}
			want := uint64(0)
			if tc.wantCancel {
				want = 1
			}
			if s := g.Stats(); s.WaitingCancels != want {
				t.Fatalf("WaitingCancels %d, want %d", s.WaitingCancels, want)
			}
		})
	}
}
