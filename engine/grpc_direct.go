package engine

import (
	"sync/atomic"

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
// Unlike a Unix socket's non-blocking write, SendMsg can wait: grpc-go
// lets a stream hand its writer at most grpcWriteQuota bytes that are not
// yet on the wire (they wait there while the agent's HTTP/2 window is
// full: the agent does not read, or reads slower than the stream is fed),
// and a SendMsg that finds that quota used up waits until the writer has
// written some, or until the send watch (sendwatch.go) fails the session
// after the write timeout. A message handed to SendMsg cannot be taken
// back, and a caller must not wait there past its own deadline. So a
// caller sends its own event only when grpc-go will take it at once: when
// fewer than grpcWriteQuota bytes can still be waiting to be written.
//
// The transport counts the bytes it hands to SendMsg (handed). The agent
// has read at least up to the end of every event it has answered: when an
// event is collected (by a direct caller or the writer), the end of the
// event in the stream is recorded in its pending (markSent), and the
// reader that claims the reply advances acked to it (ackReply). Every
// byte before acked has been written (grpc-go's writer gave back its
// quota before it wrote it), so at most handed-acked bytes wait, and a
// direct send with handed-acked < grpcWriteQuota finds quota left and
// does not wait. Otherwise (tryFlush) the event stays in the batch and the
// writer sends it: the writer may wait in SendMsg, under the write
// timeout, while the caller waits for its reply only until its deadline
// and then leaves (ErrTimeout) as any queued call does; the writer's send
// completes on its own once the agent reads again, and the stream goes on
// (the agent gets the cancel after the event). The writer holds the
// write role while it waits; callers then queue their events behind it,
// so nobody spins on the role meanwhile.
//
// At one call in flight the reply to each event acknowledges the whole
// stream up to it, and the next call goes direct. Every event that gets
// a reply is marked: request-headers events where they are collected,
// the others (body chunks and the rest, which their callers encode) by
// the writer just before it sends them (session.writeRound). Only a
// burst that the agent has not read yet sends calls through the writer,
// until a reply shows that the agent caught up. An agent that answered
// an event before reading it (it would have to know the correlation id
// beforehand) would break the rule: a direct send could then wait, at
// most until the write timeout. So does a late reply to a call that
// timed out, delivered to a new request that reuses its correlation id
// (see "Deadlines and cancellation" in doc.go): the reader takes it for the new
// request's reply and moves acked to the new event's end, which the
// agent may not have read yet; a direct send could then wait too, again
// at most until the write timeout. Messages with a compressor (none by
// default; a dial option could add one) may be larger
// on the wire than counted.

// grpcWriteQuota is the write quota of a grpc-go stream: the bytes handed
// to SendMsg and not yet written that make the next SendMsg wait
// (defaultWriteQuota in grpc-go's internal/transport/defaults.go, 64 KiB
// in v1.85.0; TestGRPCWriteQuota pins it).
const grpcWriteQuota = 64 << 10

// grpcPrefixLen is the length of gRPC's message prefix (flag and length),
// which grpc-go's quota counts with the message.
const grpcPrefixLen = 5

// grpcMarkShift scales the stream offsets kept in a pending's 32 bits
// (pending.sentEnd): units of 64 bytes, rounded down (so an offset is
// never taken for further than it is), which wrap after 256 GiB. The
// reader reads a mark relative to acked: right as long as a reply comes
// within 128 GiB of stream of the furthest one answered before; a reply
// further back (a call that waited for its reply while more than 128 GiB
// were sent and answered) could be read as further on than it is.
const grpcMarkShift = 6

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
	t.queued += uint64(buf.Len()) + grpcPrefixLen
	t.batch = append(t.batch, buf)
	return nil
}

// markSent records in p where the event just collected for it ends in the
// stream (see the comment at the top of this file). Write-role holder,
// after appendRequestHeadersEvent succeeded and before p.eventDone.
func (s *session) markSent(p *pending) {
	if t := s.grpc; t != nil {
		s.markSentAt(p, t.queued)
	}
}

// markSentAt records in p that its event ends at stream offset end. The
// writer, for an event its caller encoded (session.writeRound), before it
// sends the event and before p.eventDone.
func (s *session) markSentAt(p *pending, end uint64) {
	if m := uint32(end >> grpcMarkShift); m != 0 { // 0 (a wrap): not recorded
		atomic.StoreUint32(&p.sentEnd, m)
	}
}

// ackReply advances acked to the end of p's event, if recorded: the agent
// answered p, so it has read the stream up to there. Reader goroutine,
// between claiming p and completing it.
func (s *session) ackReply(p *pending) {
	t := s.grpc
	if t == nil {
		return
	}
	m := atomic.LoadUint32(&p.sentEnd)
	if m == 0 {
		return
	}
	a := t.acked.Load() // the reader is its only writer
	if d := int32(m - uint32(a)); d > 0 {
		t.acked.Store(a + uint64(d))
	}
}

// mayNotWait reports whether grpc-go takes the next message without
// waiting: fewer than grpcWriteQuota bytes handed to it can be unwritten.
// Write-role holder only.
func (t *grpcTransport) mayNotWait() bool {
	return int64(t.handed)-int64(t.acked.Load()<<grpcMarkShift) < grpcWriteQuota
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
		t.handed += uint64(buf.Len()) + grpcPrefixLen
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

// tryFlush sends the collected event (the direct caller's) now, when
// grpc-go takes it without waiting; otherwise it stays in the batch for
// the writer (see the comment at the top of this file).
func (t *grpcTransport) tryFlush() (bool, error) {
	if !t.mayNotWait() {
		return false, nil
	}
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
