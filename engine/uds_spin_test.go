package engine

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// Tests of read spinning on Unix-socket connections (uds_spin.go).

// TestReadSpinOptions: WithReadSpin accepts 0..MaxReadSpin on Unix-socket
// endpoints and refuses other values, and gRPC endpoints, with
// ErrInvalidConfig.
func TestReadSpinOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		ep   string
		d    time.Duration
	}{
		{"negative", "unix:///x.sock", -time.Microsecond},
		{"above the maximum", "unix:///x.sock", MaxReadSpin + 1},
		{"gRPC endpoint", "grpc+unix:///x.sock", time.Microsecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConn(tc.ep, WithReadSpin(tc.d))
			if err == nil {
				c.Close()
			}
			mustKind(t, err, ErrInvalidConfig)
		})
	}
	for _, d := range []time.Duration{0, MaxReadSpin} {
		c, err := NewConn("unix:///x.sock", WithReadSpin(d))
		if err != nil {
			t.Fatalf("WithReadSpin(%v): %v", d, err)
		}
		c.Close()
	}
}

// TestReadSpinWhileDue: by default the reader of a Unix-socket connection
// spins, and only while a call is in flight (a reply is due): an idle
// connection's reader parks at once. WithReadSpin(0) turns it off.
func TestReadSpinWhileDue(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2) // spinning needs two processors
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	entered := make(chan struct{}, 1)
	entered2 := make(chan struct{}, 1)
	release := make(chan struct{})
	ta := newTestAgent()
	ta.reqHeaders = func(_ context.Context, ev *agentwire.RequestHeadersEvent, _ *agentwire.AgentResponse) error {
		switch ev.Metadata.CorrelationID {
		case "held2":
			entered2 <- struct{}{}
			<-release
		case "held":
			entered <- struct{}{}
			<-release
		}
		return nil
	}
	a := startUDSAgent(t, ta)

	c := dialUDS(t, a.path)
	// A completed call orders the reader's setup before the checks.
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("first")); err != nil {
		t.Fatal(err)
	}
	tr := udsOf(t, c)
	if tr.sr == nil || !tr.sr.Spinning() {
		t.Fatal("the reader does not spin by default")
	}
	if tr.sr.Want == nil || tr.sr.Want() {
		t.Fatal("the reader would spin with no call in flight")
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("held"))
		done <- err
	}()
	<-entered
	if !tr.sr.Want() {
		t.Error("the reader would not spin while a reply is due")
	}
	// A second call in flight: replies come in batches, no spinning.
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("held"+"2"))
		done <- err
	}()
	<-entered2 // both calls are in flight
	if tr.sr.Want() {
		t.Error("the reader would spin with two calls in flight")
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if tr.sr.Want() {
		t.Fatal("the reader would spin after the last reply")
	}

	off := dialUDS(t, a.path, WithReadSpin(0))
	if _, err := off.RequestHeaders(testCtx(t), headersEvent("off")); err != nil {
		t.Fatal(err)
	}
	if sr := udsOf(t, off).sr; sr == nil || sr.Spinning() {
		t.Fatal("WithReadSpin(0): the reader spins")
	}
}
