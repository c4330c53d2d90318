package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentwire/agentwire"
)

// BenchmarkFlowWaiters runs requests from 36 goroutines on a connection
// whose agent capped the requests in flight at 4 (UPDATE_CAPACITY,
// FlowWait): 32 callers wait at any time. wakeups/op counts the waiters
// woken per request; one per freed slot is the least there can be.
func BenchmarkFlowWaiters(b *testing.B) {
	const capacity, waiters = 4, 32
	c := memConn(b, WithFlowControl(FlowWait))
	c.sess.Load().onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowUpdateCapacity, BufferAvailable: agentwire.Some[uint64](capacity)})
	w0 := flowWakeups(c)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	for g := range capacity + waiters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := headersEvent(fmt.Sprint("w", g))
			var dst agentwire.AgentResponse
			for next.Add(1) <= int64(b.N) {
				if err := c.RequestHeadersInto(context.Background(), ev, &dst); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(flowWakeups(c)-w0)/float64(b.N), "wakeups/op")
}

// BenchmarkSaturationWaiters is BenchmarkFlowWaiters with the agent's
// announced max_concurrency as the limit: 256 callers, 100 slots (the
// default agent's limit under bench at 256 in flight).
func BenchmarkSaturationWaiters(b *testing.B) {
	const limit, callers = 100, 256
	c := memConnWith(b, memDialer{maxConcurrency: limit})
	w0 := flowWakeups(c)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for g := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ev := headersEvent(fmt.Sprint("s", g))
			var dst agentwire.AgentResponse
			for next.Add(1) <= int64(b.N) {
				if err := c.RequestHeadersInto(ctx, ev, &dst); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(flowWakeups(c)-w0)/float64(b.N), "wakeups/op")
}
