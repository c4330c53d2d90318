package engine

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// pausedKeyBytes sums the correlation-id bytes the session keeps for
// per-request pauses.
func pausedKeyBytes(s *session) int {
	n := 0
	s.pausedIDs.get().Range(func(k string, _ struct{}) bool {
		n += len(k)
		return true
	})
	return n
}

// TestUDSPerRequestPauseBytesBounded: the per-request pause set is bounded
// in bytes, not only in entries. An agent that pauses ever new, long
// correlation ids (each up to the receive limit) must not make the proxy
// keep maxPausedIDs times that many bytes: past the byte budget the pauses
// are refused and counted like those past the count bound.
func TestUDSPerRequestPauseBytesBounded(t *testing.T) {
	const (
		n      = 256
		cidLen = 64 << 10 // 16 MiB of ids in all
	)
	ready := make(chan struct{})
	fa := startRawAgent(t, func(rc *rawConn) {
		if rc.handshake("") != nil {
			return
		}
		pad := strings.Repeat("x", cidLen)
		for i := range n {
			f := agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some(fmt.Sprint(i, "-", pad))}
			b, _ := frame.AppendFrame(nil, frame.TypeFlowControl, payload.AppendFlowControlSignalJSON(nil, &f))
			if rc.writeRaw(b) != nil {
				return
			}
		}
		close(ready)
		rc.echoLoop()
	})
	c := dialUDS(t, fa.path)
	<-ready
	waitUntil(t, "every flow signal", nil, func() bool { return c.Stats().FlowSignals == n })
	s := c.sess.Load()
	got := pausedKeyBytes(s)
	t.Logf("%d paused ids holding %d bytes of ids; %d refused", s.pausedIDs.size(), got, c.Stats().ProtocolErrors)
	if got > maxPausedIDBytes {
		t.Fatalf("paused ids hold %d bytes, want at most %d", got, maxPausedIDBytes)
	}
	if int(s.nPaused.Load()) != s.pausedIDs.size() || s.pausedBytes.Load() != int64(got) {
		t.Fatalf("bookkeeping: count %d, size %d, bytes %d (actual %d)", s.nPaused.Load(), s.pausedIDs.size(), s.pausedBytes.Load(), got)
	}
	if st := c.Stats(); st.ProtocolErrors != uint64(n-s.pausedIDs.size()) {
		t.Fatalf("%d protocol errors, want one per refused pause (%d)", st.ProtocolErrors, n-s.pausedIDs.size())
	}
	// Resuming releases the budget: a new long pause is taken again.
	var first string
	s.pausedIDs.get().Range(func(k string, _ struct{}) bool { first = k; return false })
	s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowResume, CorrelationID: agentwire.Some(first)})
	s.onFlow(agentwire.FlowControlSignal{Action: agentwire.FlowPause, CorrelationID: agentwire.Some("again-" + first)})
	if _, ok := s.pausedIDs.load("again-" + first); !ok {
		t.Fatal("a pause after a resume freed room was refused")
	}
	if s.pausedBytes.Load() != int64(pausedKeyBytes(s)) {
		t.Fatalf("byte count %d, actual %d", s.pausedBytes.Load(), pausedKeyBytes(s))
	}
}

// TestReverseUnacceptedClosedConnsNotKept: admitted connections wait for
// Accept (they are usable through Conns meanwhile). One whose agent hangs
// up before it was accepted must not keep its serve goroutine (and the
// closed Conn) parked on the Accept queue until the listener closes: an
// agent that registers and hangs up in a loop would grow the proxy by one
// goroutine per registration.
func TestReverseUnacceptedClosedConnsNotKept(t *testing.T) {
	const n = 100
	l, path := listenReverse(t)
	before := runtime.NumGoroutine()
	for i := range n {
		r, nc := register(t, "unix", path, regRequest(fmt.Sprint("agent-", i), nil))
		if r == nil || !r.Success {
			t.Fatalf("registration %d: %+v", i, r)
		}
		nc.Close()
	}
	waitUntil(t, "every connection gone", nil, func() bool { return l.Stats().Active == 0 })
	var after int
	deadline := time.Now().Add(5 * time.Second)
	for {
		after = runtime.NumGoroutine()
		if after-before <= 20 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("goroutines: %d before, %d after %d registrations that hung up", before, after, n)
	if after-before > 20 {
		t.Fatalf("%d goroutines more after %d closed, never accepted connections", after-before, n)
	}
}
