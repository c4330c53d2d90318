package agent

// Inline events and direct replies on inline ProcessStreams.
//
// With WithInlineHandlers the reader runs each event's handler before it
// receives the next message (runInline). A cancel for an event arrives on
// the same ProcessStream, which only the reader receives: it is read
// after the handler of every event before it has returned, so it never
// finds an inline event in flight. Inline events are therefore not
// registered in the in-flight table (a lock and two map operations per
// event that no cancel could use; their request contexts still end with
// the stream), and they take no concurrency slot (a channel send and
// receive per event that bound nothing: one inline event runs at a time).
// The slots did one more thing: Shutdown (waitHandlers) waited for the
// event being handled by taking every slot. waitInline does that for
// inline streams: inlineSeq is odd from the reader's stopping check until
// the event's reply is sent or queued, which costs two uncontended atomic
// adds per event.
//
// With WithInlineHandlers the reader runs the handler; queueing the reply
// for the writer goroutine then costs a goroutine hand-off per event (the
// reader wakes the parked writer, often on the other core, which calls
// SendMsg, which hands the message to grpc-go's own writer). The bare
// grpc-go echo the floor measures answers from the goroutine that
// received. So the reader sends the reply itself when the writer is idle:
// it takes the send lock without waiting (TryLock) and, holding it, sends
// only when nothing is queued. Everything the reader queued before (a
// pong, the handshake answer) has then been sent, since the writer holds
// the lock from taking items off the queue until it has sent them: the
// stream's messages keep their order. If the lock is taken or something
// is queued, the reply is queued as before.
//
// grpc-go forbids SendMsg once processStream has returned:
// finishWriter's stopDirect takes the lock after the writer has exited,
// waiting for a send in progress, and bars later ones.

// sendDirect sends c's reply on the reader's goroutine when the writer is
// idle and nothing is queued, and releases c; it reports false (c not
// sent, still the caller's) otherwise. Reader only, inline streams only.
func (st *procStream) sendDirect(c *grpcCall) bool {
	if !st.sendMu.TryLock() {
		return false
	}
	if st.directOff || st.out.Len() != 0 || st.broken.Load() || st.abandon.Load() {
		st.sendMu.Unlock()
		return false
	}
	if err := st.ss.SendMsg((*grpcReply)(c)); err != nil {
		st.sendFailed(err)
	}
	st.sendMu.Unlock()
	c.release()
	return true
}

// runInline handles c on the reader (WithInlineHandlers), unless Shutdown
// has begun: the handler runs, and the reply goes out from the reader when
// the writer is idle (sendDirect), or with the writer's next burst. Reader
// only; it takes ownership of c.
func (st *procStream) runInline(c *grpcCall) {
	st.inlineSeq.Add(1) // odd: see waitInline
	if st.stopping.Load() {
		// Shutdown: events that arrive now are not handled.
		st.endInline()
		c.release()
		return
	}
	s := st.srv
	c.st = st
	s.beginWith(st.ctxSlab.get(st.ctx), nil, &c.exchange)
	c.process(s, nil)
	if !st.sendDirect(c) && !st.enqueueReply(c) {
		c.release()
	}
	st.endInline()
}

// endInline ends the reader's inline event (inlineSeq even again) and
// wakes waitInline if Shutdown has begun.
func (st *procStream) endInline() {
	st.inlineSeq.Add(1)
	if st.stopping.Load() {
		select {
		case st.inlineIdle <- struct{}{}:
		default:
		}
	}
}

// waitInline is waitHandlers for an inline stream's event being handled
// (stopping must be set): it returns once no inline event runs, after
// which none will (runInline checks stopping after making inlineSeq odd,
// waitInline reads inlineSeq after stopping was set; both sequentially
// consistent). It returns false if abort is closed first (the request
// contexts are then cancelled). True at once on a stream without inline
// handlers.
func (st *procStream) waitInline(abort <-chan struct{}) bool {
	for st.inlineSeq.Load()&1 != 0 {
		select {
		case <-st.inlineIdle:
		case <-abort:
			st.cancel()
			return false
		}
	}
	return true
}
