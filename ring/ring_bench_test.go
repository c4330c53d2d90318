package ring

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/puzpuzpuz/xsync/v4"
)

// Each benchmark moves b.N pointers from P producer goroutines to one
// consumer that takes them in batches of up to benchBatch; ns/op is per item.
// All bounded queues get benchCap slots.
const (
	benchCap   = 1024
	benchBatch = 64
)

// benchFrame stands for a queued frame; only its pointer travels.
type benchFrame struct{ _ [64]byte }

var benchProducers = []int{1, 2, 8, 64}

// split returns how many of n items producer p of total sends.
func split(n, p, total int) int {
	k := n / total
	if p < n%total {
		k++
	}
	return k
}

func runProducers(b *testing.B, producers int, produce func(count int)) *sync.WaitGroup {
	var wg sync.WaitGroup
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			produce(split(b.N, p, producers))
		}()
	}
	return &wg
}

func BenchmarkRing(b *testing.B) {
	for _, producers := range benchProducers {
		b.Run(fmt.Sprintf("P%d", producers), func(b *testing.B) {
			b.ReportAllocs()
			r := New[*benchFrame](benchCap)
			f := &benchFrame{}
			ctx := context.Background()
			dst := make([]*benchFrame, benchBatch)
			b.ResetTimer()
			wg := runProducers(b, producers, func(count int) {
				for range count {
					if err := r.Enqueue(ctx, f); err != nil {
						panic(err)
					}
				}
			})
			for got := 0; got < b.N; {
				n, err := r.DequeueBatch(dst)
				if err != nil {
					b.Fatal(err)
				}
				got += n
			}
			wg.Wait()
		})
	}
}

func BenchmarkChan(b *testing.B) {
	for _, producers := range benchProducers {
		b.Run(fmt.Sprintf("P%d", producers), func(b *testing.B) {
			b.ReportAllocs()
			ch := make(chan *benchFrame, benchCap)
			f := &benchFrame{}
			dst := make([]*benchFrame, benchBatch)
			b.ResetTimer()
			wg := runProducers(b, producers, func(count int) {
				for range count {
					ch <- f
				}
			})
			for got := 0; got < b.N; {
				// Block for the first item, then drain without blocking:
				// the usual batching writer loop over a channel.
				dst[0] = <-ch
				n := 1
			drain:
				for n < len(dst) {
					select {
					case v := <-ch:
						dst[n] = v
						n++
					default:
						break drain
					}
				}
				got += n
			}
			wg.Wait()
		})
	}
}

// BenchmarkXsyncMPMC uses xsync's bounded MPMCQueue, which has no blocking
// operations: producers and the consumer yield and retry on full/empty.
func BenchmarkXsyncMPMC(b *testing.B) {
	for _, producers := range benchProducers {
		b.Run(fmt.Sprintf("P%d", producers), func(b *testing.B) {
			b.ReportAllocs()
			q := xsync.NewMPMCQueue[*benchFrame](benchCap)
			f := &benchFrame{}
			dst := make([]*benchFrame, benchBatch)
			b.ResetTimer()
			wg := runProducers(b, producers, func(count int) {
				for range count {
					for !q.TryEnqueue(f) {
						runtime.Gosched()
					}
				}
			})
			for got := 0; got < b.N; {
				n := 0
				for n < len(dst) {
					v, ok := q.TryDequeue()
					if !ok {
						break
					}
					dst[n] = v
					n++
				}
				if n == 0 {
					runtime.Gosched()
				}
				got += n
			}
			wg.Wait()
		})
	}
}

// BenchmarkXsyncUMPSC uses xsync's unbounded MPSC queue: producers never
// block (no back-pressure), the consumer blocks per item.
func BenchmarkXsyncUMPSC(b *testing.B) {
	for _, producers := range benchProducers {
		b.Run(fmt.Sprintf("P%d", producers), func(b *testing.B) {
			b.ReportAllocs()
			q := xsync.NewUMPSCQueue[*benchFrame]()
			f := &benchFrame{}
			b.ResetTimer()
			wg := runProducers(b, producers, func(count int) {
				for range count {
					q.Enqueue(f)
				}
			})
			for range b.N {
				if q.Dequeue() == nil {
					b.Fatal("nil item")
				}
			}
			wg.Wait()
		})
	}
}
