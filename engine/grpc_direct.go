package engine

import (
	"github.com/agentwire/agentwire"
	"google.golang.org/grpc/mem"
)

// The gRPC transport as an eventWriter, flusher and directWriter (see
// transport.go and direct.go): request-headers events are encoded by the
// writer goroutine (or by a caller alone in flight that found the writer
// idle, direct.go) and collected in batch; flush hands them to grpc-go's
// SendMsg one after another, once nothing more is ready to be collected.
//
// With one call in flight the caller then sends its own event: no
// hand-off to the writer goroutine, as in the floor's bare grpc-go client,
// whose callers send under a mutex. With many, the writer collects what
// the woken callers queue while it yields (session.writer's flusher
// path), and grpc-go's writer gets them in one burst, which it writes
// together.
//
// Unlike a Unix socket's non-blocking write, SendMsg can wait: for
// grpc-go's per-stream write quota (64 KiB handed to its writer and not
// yet written, which happens only when the agent stops reading), until
// the send watch (sendwatch.go) fails the session after the write
// timeout. A caller must not wait there past its own deadline, so a
// caller sends its own event only when the agent has sent something (a
// reply, a pong) since the previous direct send: at one call in flight
// every reply re-opens the way, and an agent that stops reading stops
// the direct sends after one event, leaving the next ones, and any wait,
// to the writer. Not covered: an agent that still answers but reads
// slower than the stream is fed (say right after a burst that filled the
// quota) can keep a direct sender in SendMsg past its deadline, at most
// until the write timeout; the writer meanwhile waits for the write role
// (direct.go). No test pins that case yet.

// grpcMaxBatch bounds the events collected before a flush.
const grpcMaxBatch = 64

// appendRequestHeadersEvent encodes ev into a pooled buffer and collects
// it for the next flush (see eventWriter). Write-role holder only.
func (t *grpcTransport) appendRequestHeadersEvent(ev *agentwire.RequestHeadersEvent) error {
	var now uint64
	if ev.Metadata.Timestamp.IsZero() {
		now = nowMS()
	}
	buf, err := t.requestHeaders(ev, now)
	if err != nil {
		return err
	}
	t.batch = append(t.batch, buf)
	return nil
}

// batchFull flushes a batch of grpcMaxBatch events (see eventWriter).
func (t *grpcTransport) batchFull() error {
	if len(t.batch) >= grpcMaxBatch {
		return t.flush()
	}
	return nil
}

// flush sends the collected events in order (see flusher). After a send
// error the rest are freed. Write-role holder only.
func (t *grpcTransport) flush() error {
	var err error
	for i, buf := range t.batch {
		t.batch[i] = nil
		if err != nil {
			buf.Free()
			continue
		}
		t.watch.begin()
		err = sendOn(t.stream, &t.out, buf)
		t.watch.end()
	}
	t.batch = t.batch[:0]
	return err
}

// canDirect: callers may always send their own event (see directWriter).
func (t *grpcTransport) canDirect() bool { return true }

// batchEmpty reports whether no event waits for a flush.
func (t *grpcTransport) batchEmpty() bool { return len(t.batch) == 0 }

// tryFlush sends the collected event (the direct caller's) now, unless
// the agent has sent nothing since the previous direct send: the event is
// then left to the writer (see the comment at the top of this file).
func (t *grpcTransport) tryFlush() (bool, error) {
	if t.silent.Load() {
		return false, nil
	}
	// Set before the send: a reply that the reader sees right after it
	// clears the flag again (set afterwards, that clear could be lost).
	t.silent.Store(true)
	if err := t.flush(); err != nil {
		return false, err
	}
	t.directSends++
	return true, nil
}

// flushBefore sends the collected events before a message that is sent
// at once (send), so that the stream keeps the order in which the
// messages were queued. On error, o's buffer is freed.
func (t *grpcTransport) flushBefore(buf mem.Buffer) error {
	if len(t.batch) == 0 {
		return nil
	}
	if err := t.flush(); err != nil {
		buf.Free()
		return err
	}
	return nil
}
