package engine

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// trickle writes b to nc one byte every interval, from start, until the
// peer closes nc (a read returns an error) or limit has passed since start.
// It returns how long after start the peer closed, or ok false when it was
// still open at limit. Every read made before the close must find nothing
// to read: a peer that answers fails the test.
func trickle(t *testing.T, nc net.Conn, b []byte, start time.Time, interval, limit time.Duration) (closedAfter time.Duration, ok bool) {
	t.Helper()
	closed := make(chan time.Duration, 1)
	go func() {
		var buf [64]byte
		nc.SetReadDeadline(start.Add(limit))
		n, err := nc.Read(buf[:])
		at := time.Since(start)
		if n > 0 {
			t.Errorf("peer answered %q before dropping the connection", buf[:n])
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			at = -1 // still open at limit
		}
		closed <- at
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	sent := 0
	for {
		select {
		case at := <-closed:
			if at < 0 {
				t.Logf("peer still connected after %v, %d of %d bytes sent", limit, sent, len(b))
				return 0, false
			}
			t.Logf("peer closed %v after the connection opened, %d of %d bytes sent", at, sent, len(b))
			return at, true
		case <-tick.C:
			if sent < len(b) {
				if _, err := nc.Write(b[sent : sent+1]); err == nil {
					sent++
				}
			}
		}
	}
}

// TestReverseRegistrationDeadlineIsAbsolute: WithRegistrationTimeout
// bounds the whole registration, not the time between two bytes. A peer
// that sends its registration one byte every 50 ms (never silent for the
// 300 ms timeout, but needing some 20 s for the frame) is dropped at the
// timeout, without an answer and without a Conn. (With the deadline
// renewed on every read, the peer was still connected at the 1.5 s bound:
// checked once by breaking readRegistration that way.)
func TestReverseRegistrationDeadlineIsAbsolute(t *testing.T) {
	const timeout = 300 * time.Millisecond
	l, path := listenReverse(t, WithRegistrationTimeout(timeout))
	b, err := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, regRequest("slow", nil)))
	if err != nil {
		t.Fatal(err)
	}
	if len(b)*50*int(time.Millisecond) < int(4*timeout) {
		t.Fatalf("registration of %d bytes too short for the test", len(b))
	}
	start := time.Now()
	nc, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	at, ok := trickle(t, nc, b, start, 50*time.Millisecond, 5*timeout)
	if !ok {
		t.Fatalf("registration trickling in one byte per 50 ms still connected %v after it began (timeout %v)", 5*timeout, timeout)
	}
	// The listener starts its clock at accept, after start; the close
	// comes at the timeout, give or take the scheduling of a shared
	// machine.
	if at < timeout-20*time.Millisecond || at > timeout+400*time.Millisecond {
		t.Fatalf("dropped %v after connecting, want about the registration timeout %v", at, timeout)
	}
	if st := l.Stats(); st.Abandoned != 1 || st.Registered != 0 || st.Rejected != 0 || st.Active != 0 {
		t.Fatalf("stats %+v, want one abandoned peer and nothing registered", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if c, err := l.Accept(ctx); err == nil {
		c.Close()
		t.Fatal("a Conn was accepted for the dropped peer")
	}
}
