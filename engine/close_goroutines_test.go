package engine

import (
	"bytes"
	"context"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// goroutineStacks returns the stacks of all goroutines but the caller's,
// keyed by their "goroutine N" header.
func goroutineStacks() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := make(map[string]string)
	for i, g := range bytes.Split(buf, []byte("\n\n")) {
		if i == 0 {
			continue // the caller
		}
		head, _, _ := strings.Cut(string(g), " [")
		out[head] = string(g)
	}
	return out
}

// engineGoroutinesSince returns the goroutines running code of this
// package that did not exist in before: a check like goleak.VerifyNone,
// but at once, without goleak's retries (which wait out a goroutine that
// is merely late to exit).
func engineGoroutinesSince(before map[string]string) []string {
	var left []string
	for id, st := range goroutineStacks() {
		if _, ok := before[id]; ok {
			continue
		}
		if strings.Contains(st, "agentwire/engine.(*") {
			left = append(left, st)
		}
	}
	return left
}

// oneShotMemDialer is memDialer as the dialer of a reverse connection:
// when its one session ends, the Conn closes itself.
type oneShotMemDialer struct {
	memDialer
	closes atomic.Int32
}

func (d *oneShotMemDialer) close() error { d.closes.Add(1); return nil }
func (*oneShotMemDialer) oneShot()       {}

// TestCloseLeavesNoGoroutine: when Close returns, every goroutine the Conn
// started has exited — checked at once, not eventually — also when Close
// races the supervisor handling a lost one-shot (reverse) session, which
// used to close the Conn on a goroutine of its own (go c.Close()) that
// could still be running after the caller's Close returned. One P makes
// the scheduling that exposed it the usual one.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	t.Run("one-shot session lost", func(t *testing.T) {
		for i := range 20 {
			before := goroutineStacks()
			d := &oneShotMemDialer{}
			// The supervisor logs the loss just before it closes a
			// one-shot Conn: hold it there until Close has begun.
			var c *Conn
			proceed := make(chan struct{})
			o := defaultOptions()
			WithLogger(slog.New(onLog{msg: "agentwire: connection to agent lost", f: func() {
				<-proceed
				for c.state.Load() != stateClosed {
					runtime.Gosched()
				}
			}})).apply(&o)
			c, err := newConn(context.Background(), d, o)
			if err != nil {
				t.Fatal(err)
			}
			c.sess.Load().t.close() // the agent hangs up
			close(proceed)
			c.Close()
			if left := engineGoroutinesSince(before); len(left) > 0 {
				t.Fatalf("iteration %d: %d goroutines left after Close:\n%s", i, len(left), strings.Join(left, "\n\n"))
			}
			if n := d.closes.Load(); n != 1 {
				t.Fatalf("dialer closed %d times", n)
			}
		}
	})
	t.Run("one-shot session lost, no Close", func(t *testing.T) {
		// The Conn closes itself and releases its dialer.
		d := &oneShotMemDialer{}
		c, err := newConn(context.Background(), d, defaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		c.sess.Load().t.close()
		waitUntil(t, "the dialer released", nil, func() bool { return d.closes.Load() == 1 })
		_, err = c.RequestHeaders(testCtx(t), headersEvent("after"))
		mustKind(t, err, ErrClosed)
		c.Close()
	})
	t.Run("mid-reconnect", func(t *testing.T) {
		// The supervisor waits in its backoff or a failing attempt.
		for i := range 50 {
			before := goroutineStacks()
			o := defaultOptions()
			WithReconnectBackoff(time.Microsecond, time.Millisecond).apply(&o)
			c, err := newConn(context.Background(), &failingAfterFirstDialer{}, o)
			if err != nil {
				t.Fatal(err)
			}
			c.sess.Load().t.close()
			for c.Stats().ReconnectFailures == 0 {
				runtime.Gosched()
			}
			c.Close()
			if left := engineGoroutinesSince(before); len(left) > 0 {
				t.Fatalf("iteration %d: %d goroutines left after Close:\n%s", i, len(left), strings.Join(left, "\n\n"))
			}
		}
	})
}

// onLog is a slog handler that runs f on every record with message msg.
type onLog struct {
	msg string
	f   func()
}

func (h onLog) Enabled(context.Context, slog.Level) bool { return true }
func (h onLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.f()
	}
	return nil
}
func (h onLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h onLog) WithGroup(string) slog.Handler      { return h }

// failingAfterFirstDialer opens one in-memory session, then fails every
// attempt.
type failingAfterFirstDialer struct{ opened atomic.Bool }

func (d *failingAfterFirstDialer) open(ctx context.Context, hs *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	if d.opened.Swap(true) {
		return nil, agentwire.Capabilities{}, &Error{Kind: ErrConnectFailed, Detail: "agent gone"}
	}
	return memDialer{}.open(ctx, hs)
}

func (*failingAfterFirstDialer) close() error { return nil }
