package agent

// Direct replies on inline ProcessStreams.
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
