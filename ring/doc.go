// Package ring provides Ring, a bounded lock-free multi-producer
// single-consumer queue built for per-connection outbound frames.
//
// # Quick start
//
//	r := ring.New[*Frame](1024)
//
//	// any number of producer goroutines:
//	if err := r.Enqueue(ctx, f); err != nil { ... } // blocks while full
//	// or, never blocking:
//	switch r.TryEnqueue(f) { case ring.ErrFull: ...; case ring.ErrClosed: ... }
//
//	// exactly one consumer goroutine (the connection writer):
//	batch := make([]*Frame, 64)
//	for {
//		n, err := r.DequeueBatch(batch)
//		if err != nil { // ErrClosed: everything enqueued before Close was delivered
//			return
//		}
//		write(batch[:n])
//	}
//
// # Concurrency
//
// TryEnqueue, Enqueue, Close, Len and Cap are safe for concurrent use by
// any number of goroutines. DequeueBatch, TryDequeueBatch and Wait must only
// ever be called by one goroutine at a time (the single consumer; the role
// may pass between goroutines that hand it over with a happens-before
// edge, a lock say). A Ring must not be copied after first use (go vet
// reports copies).
//
// # Design
//
// The ring is a power-of-two array of slots, each with a sequence number, in
// the style of Dmitry Vyukov's bounded queue: a producer claims a position
// with one compare-and-swap on the shared tail counter and publishes the item
// by storing the slot's sequence; the consumer, alone on its side, needs no
// atomic read-modify-write at all. Waiting (consumer on empty, producers on
// full) parks the goroutine on a channel instead of spinning, and the
// wake-up is only paid for when somebody actually sleeps: a producer that
// finds the consumer awake pays one atomic load. The full protocol is
// written down next to the code in ring.go.
package ring
