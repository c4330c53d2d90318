package agent

import "testing"

// TestGRPCInlineCancelSkipsInflightTable: on a stream with inline
// handlers a cancel does not look in the in-flight table (inline events
// are never booked there): with the table's lock held by the test, the
// cancel still reaches OnCancel. Without the guard the reader waits for
// the lock and the hook is not called (waitCall fails after testTimeout).
func TestGRPCInlineCancelSkipsInflightTable(t *testing.T) {
	hh := newHookHandler()
	e := startEnv(t, hh, "tcp", WithInlineHandlers())
	p := e.open()
	st := onlyStream(t, e.srv)
	st.inflight.mu.Lock()
	locked := true
	defer func() {
		if locked {
			st.inflight.mu.Unlock()
		}
	}()
	p.send(cancelMsg("c-1", 1))
	hh.waitCall(t, "cancel")
	st.inflight.mu.Unlock()
	locked = false
}
