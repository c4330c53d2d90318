package httpguard

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/agentwire/agentwire/internal/loopagent"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine/pool"
)

// startLoopAgent runs an allocation-free fake agent on a Unix socket: it
// answers the handshake (JSON), then every request-headers event with an
// allow setting x-agent-processed: true, built in a reused buffer (as the
// reference echo agent answers). Allocation counts are the whole
// process's, so the agent must not allocate per request for them to be
// the proxy side's.
func startLoopAgent(tb testing.TB) string {
	tb.Helper()
	return "unix://" + loopagent.Start(tb, loopagent.Config{SetProcessed: true})
}

// nopWriter is a ResponseWriter that allocates nothing.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(int)             {}

// loopSetup is a one-agent pipeline to the loop agent, a guard over a
// handler that answers 204, and the same steps by hand.
type loopSetup struct {
	pl      *pool.Pipeline
	g       *Guard
	b       *Builder
	handler http.Handler
}

func newLoopSetup(tb testing.TB) *loopSetup {
	tb.Helper()
	ep := startLoopAgent(tb)
	_, pl, _ := newPipeline(tb, true, agentOpts(ep, pool.WithEvents(agentwire.EventRequestHeaders)))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	g, err := New(handler, pl)
	if err != nil {
		tb.Fatal(err)
	}
	b, _ := NewBuilder()
	return &loopSetup{pl: pl, g: g, b: b, handler: handler}
}

// byHand is what the guard does for such a request, written out: the
// event, the pipeline, the header operations, the handler, End.
type byHand struct {
	s  *loopSetup
	rh RequestHeaders
	pr pool.Request
}

func (h *byHand) serve(w http.ResponseWriter, r *http.Request) {
	h.s.b.RequestHeaders(r, &h.rh)
	v := h.s.pl.RequestHeaders(r.Context(), &h.pr, &h.rh.Event)
	if WriteVerdict(w, &v) {
		h.s.pl.End(&h.pr)
		return
	}
	_ = ApplyRequestHeaderOps(r, h.pr.RequestHeaderOps)
	h.s.handler.ServeHTTP(w, r)
	h.s.pl.End(&h.pr)
}

// BenchmarkGuard measures a GET through a one-agent guard (request headers
// only) against the same steps by hand, with an agent that answers at once
// on a Unix socket in this process: the guard's own cost is the
// difference. Parallel variants run GOMAXPROCS×8 requests in flight.
func BenchmarkGuard(b *testing.B) {
	s := newLoopSetup(b)
	b.Run("by-hand", func(b *testing.B) {
		h := &byHand{s: s}
		w := &nopWriter{h: http.Header{}}
		r := httptest.NewRequest("GET", "/x", nil)
		b.ReportAllocs()
		for b.Loop() {
			h.serve(w, r)
		}
	})
	b.Run("guard", func(b *testing.B) {
		w := &nopWriter{h: http.Header{}}
		r := httptest.NewRequest("GET", "/x", nil)
		b.ReportAllocs()
		for b.Loop() {
			s.g.ServeHTTP(w, r)
		}
	})
	b.Run("by-hand-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			h := &byHand{s: s}
			w := &nopWriter{h: http.Header{}}
			r := httptest.NewRequest("GET", "/x", nil)
			for pb.Next() {
				h.serve(w, r)
			}
		})
	})
	b.Run("guard-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			w := &nopWriter{h: http.Header{}}
			r := httptest.NewRequest("GET", "/x", nil)
			for pb.Next() {
				s.g.ServeHTTP(w, r)
			}
		})
	})
}
