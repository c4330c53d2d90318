package waf

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/corazawaf/coraza/v3"
	corazahttp "github.com/corazawaf/coraza/v3/http"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
	"github.com/agentwire/agentwire/internal/wafcorpus"
)

// heapInUse returns the live heap after collecting twice (the second
// collection also empties sync.Pool victim caches, Coraza's transaction
// pool among them).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkOpenTransactionMemory measures the heap one open transaction
// holds: n requests (a browser's headers, a form body announced) are
// opened and left waiting for their bodies, the live heap is compared
// before and after, then they are closed. "headers": nothing of the body
// arrived yet; "body4k": 4 KiB of it was written into the transaction.
// Reported as B/open-txn (the allocation columns are those of the whole
// iteration, not per transaction).
func BenchmarkOpenTransactionMemory(b *testing.B) {
	a, err := New()
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	body := []byte("text=" + strings.Repeat("lorem+ipsum+", 4096/12))
	for _, tc := range []struct {
		name string
		body []byte
	}{{"headers", nil}, {"body4k", body}} {
		b.Run(tc.name, func(b *testing.B) {
			const n = 1000
			evs := make([]agentwire.RequestHeadersEvent, n)
			for i := range evs {
				evs[i] = *headers(fmt.Sprint("mem-", i), "POST", "/api/notes?draft=1",
					"user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
					"accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
					"accept-language", "en-US,en;q=0.5", "cookie", "session=7f3a9c1e2b",
					"content-type", "application/x-www-form-urlencoded", "content-length", "100000")
			}
			var total float64
			for b.Loop() {
				before := heapInUse()
				for i := range evs {
					r := &agentwire.AgentResponse{}
					if err := a.OnRequestHeaders(context.Background(), &evs[i], r); err != nil || !r.NeedsMore {
						b.Fatal(err, r)
					}
					if tc.body != nil {
						if err := a.OnRequestBodyChunk(context.Background(), &agentwire.BodyChunk{CorrelationID: evs[i].Metadata.CorrelationID, Data: tc.body}, r); err != nil {
							b.Fatal(err)
						}
					}
				}
				after := heapInUse()
				total += float64(after-before) / n
				for i := range evs {
					_ = a.OnRequestComplete(context.Background(), &agentwire.RequestCompleteEvent{CorrelationID: evs[i].Metadata.CorrelationID}, &agentwire.AgentResponse{})
				}
				if a.Stats().Open != 0 {
					b.Fatal("transactions left open")
				}
			}
			b.ReportMetric(total/float64(b.N), "B/open-txn")
		})
	}
}

// BenchmarkEngineVsInProcess compares, at 64 requests in flight over the
// corpus, the engine calling the WAF agent over a Unix socket (agent
// server in the same process, MessagePack) with Coraza's net/http
// middleware evaluating the same requests in-process with the same rules
// (it also runs the response phases), and with the agent's handler called
// directly (the agent's work without the transport). ns/op is the inverse
// of the throughput; compare the sub-benchmarks with benchstat over
// -count runs. This is the engine-level cost of
// running the WAF out of process, not a gateway measurement (see
// bench/waf.sh for that, with the agent in a process of its own).
func BenchmarkEngineVsInProcess(b *testing.B) {
	par := (64 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	corpus := wafcorpus.All
	b.Run("agent-uds", func(b *testing.B) {
		a, err := New()
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		uds, _ := serve(b, a, serverOpts(a)...)
		c := dial(b, uds, engine.WithMsgpack())
		var seq atomic.Uint64
		ctx := context.Background()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				r := &corpus[n%uint64(len(corpus))]
				if _, _, err := sendRequest(ctx, c, r, fmt.Sprint("b", n), 64<<10); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("direct", func(b *testing.B) {
		a, err := New()
		if err != nil {
			b.Fatal(err)
		}
		defer a.Close()
		var seq atomic.Uint64
		ctx := context.Background()
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				r := &corpus[n%uint64(len(corpus))]
				cid := fmt.Sprint("d", n)
				ev := r.Event(cid)
				resp := &agentwire.AgentResponse{}
				if err := a.OnRequestHeaders(ctx, &ev, resp); err != nil {
					b.Error(err)
					return
				}
				if resp.NeedsMore {
					if err := a.OnRequestBodyChunk(ctx, &agentwire.BodyChunk{CorrelationID: cid, Data: []byte(r.Body), IsLast: true}, &agentwire.AgentResponse{}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	})
	b.Run("in-process", func(b *testing.B) {
		wc, err := CorazaConfig()
		if err != nil {
			b.Fatal(err)
		}
		w, err := coraza.NewWAF(wc)
		if err != nil {
			b.Fatal(err)
		}
		h := corazahttp.WrapHandler(w, http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			_, _ = io.Copy(io.Discard, req.Body)
		}))
		var seq atomic.Uint64
		b.SetParallelism(par)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				n := seq.Add(1)
				req, err := corpus[n%uint64(len(corpus))].HTTPRequest()
				if err != nil {
					b.Error(err)
					return
				}
				h.ServeHTTP(httptest.NewRecorder(), req)
			}
		})
	})
}
