package engine

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// memEvents records the request-headers events a memEventTransport's
// writer encoded; hold, when set, stops the writer in the middle of
// reading an event until it is closed.
type memEvents struct {
	mu      sync.Mutex
	ids     []string
	reading chan string // receives each id as the writer starts on it
	hold    chan struct{}
	maxSend int // the encoders' send limit (0: the default)
}

func (e *memEvents) written() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ids)
}

// memEventTransport is a memTransport whose writer encodes request-headers
// events itself (eventWriter), as the Unix-socket transport does: the
// encoded event is sent (through memTransport.send and its gate) by
// batchFull.
type memEventTransport struct {
	*memTransport
	ev      *memEvents
	encoded []outbound
}

func (m *memEventTransport) appendRequestHeadersEvent(ev *agentwire.RequestHeadersEvent) error {
	id := ev.Metadata.CorrelationID
	if m.ev.reading != nil {
		m.ev.reading <- id
	}
	if m.ev.hold != nil {
		<-m.ev.hold
	}
	buf, err := m.requestHeaders(ev, nowMS())
	if err != nil {
		return err
	}
	m.ev.mu.Lock()
	m.ev.ids = append(m.ev.ids, id)
	m.ev.mu.Unlock()
	m.encoded = append(m.encoded, outbound{buf: buf})
	return nil
}

func (m *memEventTransport) batchFull() error {
	for len(m.encoded) > 0 {
		o := m.encoded[0]
		m.encoded = m.encoded[1:]
		if err := m.send(o); err != nil {
			for _, o := range m.encoded {
				o.buf.Free()
			}
			m.encoded = nil
			return err
		}
	}
	return nil
}

// writerStuckOnFirst returns a Conn whose writer has encoded the event of
// a call "first" (no deadline of its own) and is stuck writing it until
// release is called; first receives that call's outcome.
func writerStuckOnFirst(t *testing.T, opts ...Option) (c *Conn, ev *memEvents, first <-chan error, release func()) {
	t.Helper()
	gate := make(chan struct{})
	ev = &memEvents{reading: make(chan string, 8)}
	c = memConnWith(t, memDialer{gate: gate, events: ev}, opts...)
	var once sync.Once
	release = func() { once.Do(func() { close(gate) }) }
	t.Cleanup(release) // before c closes
	ch := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), headersEvent("first"))
		ch <- err
	}()
	if id := <-ev.reading; id != "first" {
		t.Fatalf("writer started on %q", id)
	}
	return c, ev, ch, release
}

// checkFirstAndAfterOnly sends a call "after" on c (whose writer is no
// longer stuck) and checks that the writer encoded "first" and "after"
// only, and that cancels CancelRequests went out. The writer handles the
// queue in order, so "after" goes out after whatever became of the calls
// queued before it.
func checkFirstAndAfterOnly(t *testing.T, c *Conn, ev *memEvents, cancels uint64) {
	t.Helper()
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("after")); err != nil {
		t.Fatal(err)
	}
	if got := ev.written(); !slices.Equal(got, []string{"first", "after"}) {
		t.Fatalf("writer encoded %q, want first and after only", got)
	}
	if st := c.Stats(); st.CancelsSent != cancels {
		t.Fatalf("stats %+v: want %d cancels sent", st, cancels)
	}
}

// TestAbandonedEventIsNeverSent: a call that ends (here: its context is
// cancelled) while its event still waits for the writer returns at once;
// the writer then skips the event, so the caller may change it as soon as
// the call returned, and no cancel goes out for a request the agent never
// saw.
func TestAbandonedEventIsNeverSent(t *testing.T) {
	c, ev, first, release := writerStuckOnFirst(t)
	ctx, cancel := context.WithCancel(testCtx(t))
	abandoned := headersEvent("abandoned")
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, abandoned)
		errs <- err
	}()
	waitUntil(t, "second call in flight", nil, func() bool { return c.Stats().InFlight == 2 })
	cancel()
	mustKind(t, <-errs, ErrCanceled)
	abandoned.URI = "/changed-after-return" // the writer must not be reading it (-race)

	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkFirstAndAfterOnly(t, c, ev, 0)
	if st := c.Stats(); st.Sent != 2 {
		t.Fatalf("stats %+v: want 2 sent", st)
	}
}

// TestCallWaitsForWriterReadingItsEvent: a call that ends while the writer
// is in the middle of encoding its event returns only once the writer is
// done with it; the event did go out, so its cancel does too.
func TestCallWaitsForWriterReadingItsEvent(t *testing.T) {
	ev := &memEvents{reading: make(chan string, 8), hold: make(chan struct{})}
	c := memConnWith(t, memDialer{events: ev})
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(ev.hold) }) }) // before c closes

	ctx, cancel := context.WithCancel(testCtx(t))
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(ctx, headersEvent("slow"))
		errs <- err
	}()
	<-ev.reading // the writer claimed the event and holds it
	cancel()
	select {
	case err := <-errs:
		t.Fatalf("call returned (%v) while the writer was reading its event", err)
	case <-time.After(50 * time.Millisecond):
	}
	release.Do(func() { close(ev.hold) })
	mustKind(t, <-errs, ErrCanceled)
	waitUntil(t, "cancel sent", nil, func() bool { return c.Stats().CancelsSent == 1 })
	if got := ev.written(); !slices.Equal(got, []string{"slow"}) {
		t.Fatalf("writer encoded %q", got)
	}
}

// TestWriterEncodeErrorFailsOnlyItsCall: an event the writer cannot
// encode (over the send limit) fails its own call with
// ErrMessageTooLarge; the session goes on.
func TestWriterEncodeErrorFailsOnlyItsCall(t *testing.T) {
	c := memConnWith(t, memDialer{events: &memEvents{maxSend: 1024}})
	big := headersEvent("big")
	big.URI = "/" + string(make([]byte, 2048))
	_, err := c.RequestHeaders(testCtx(t), big)
	mustKind(t, err, ErrMessageTooLarge)
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("small")); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Sent != 1 || st.Reconnects != 0 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestExpiredQueuedEventIsDropped: the default request timeout (the
// session's expirer) drops an event still waiting for the writer, without
// a cancel; an event the writer has encoded gets its cancel, and its call
// returns although the write that carries it is still blocked.
func TestExpiredQueuedEventIsDropped(t *testing.T) {
	c, ev, first, release := writerStuckOnFirst(t, WithRequestTimeout(100*time.Millisecond))
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), headersEvent("queued"))
		errs <- err
	}()
	mustKind(t, <-first, ErrTimeout)
	mustKind(t, <-errs, ErrTimeout) // both returned with the write still blocked
	release()
	checkFirstAndAfterOnly(t, c, ev, 1) // the one cancel is first's
}

// TestExpiredEventThatFailsToEncodeGetsNoCancel: the expirer times out a
// call while the writer is reading its event, and the event then fails to
// encode: it never went out, so no cancel follows it.
func TestExpiredEventThatFailsToEncodeGetsNoCancel(t *testing.T) {
	ev := &memEvents{reading: make(chan string, 8), hold: make(chan struct{}), maxSend: 1024}
	c := memConnWith(t, memDialer{events: ev}, WithRequestTimeout(50*time.Millisecond))
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(ev.hold) }) }) // before c closes

	big := headersEvent("big")
	big.URI = "/" + string(make([]byte, 2048)) // over the 1 KiB send limit
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(context.Background(), big)
		errs <- err
	}()
	<-ev.reading // the writer holds the event
	waitUntil(t, "the expirer took the call", nil, func() bool {
		_, ok := c.sess.Load().pending.load("big")
		return !ok
	})
	release.Do(func() { close(ev.hold) }) // the encode fails now
	if err := <-errs; err == nil {
		t.Fatal("call succeeded")
	}
	if got := ev.written(); len(got) != 0 {
		t.Fatalf("writer encoded %q", got)
	}
	if st := c.Stats(); st.CancelsSent != 0 {
		t.Fatalf("stats %+v: a cancel for an event that never went out", st)
	}
}

// TestManualCancelOfQueuedEvent: Conn.Cancel of a call whose event still
// waits for the writer ends the call and takes the event back: neither the
// event nor a cancel reaches the agent.
func TestManualCancelOfQueuedEvent(t *testing.T) {
	c, ev, first, release := writerStuckOnFirst(t)
	errs := make(chan error, 1)
	go func() {
		_, err := c.RequestHeaders(testCtx(t), headersEvent("queued"))
		errs <- err
	}()
	waitUntil(t, "queued event", nil, func() bool {
		s := c.sess.Load()
		_, ok := s.pending.load("queued")
		return ok && s.out.Len() > 0
	})
	if err := c.Cancel("queued", agentwire.CancelManual); err != nil {
		t.Fatal(err)
	}
	mustKind(t, <-errs, ErrCanceled)
	release()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	checkFirstAndAfterOnly(t, c, ev, 0)
}

// TestUDSOversizedEventReleasesBuffer: an event over the send limit, which
// the encoder wrote out in full before the size check, does not leave the
// writer's buffer at that size.
func TestUDSOversizedEventReleasesBuffer(t *testing.T) {
	tr := newUDSTransport(&countingConn{}, nil, 1024, true, false, nil)
	big := headersEvent("big")
	big.URI = "/" + strings.Repeat("u", 4*udsEncKeep)
	mustKind(t, tr.appendRequestHeadersEvent(big), ErrMessageTooLarge)
	if c := cap(tr.enc); c > udsEncKeep {
		t.Fatalf("write buffer kept %d bytes of capacity", c)
	}
	if len(tr.segs) != 0 || tr.frames != 0 {
		t.Fatalf("failed event left %d segments, %d frames", len(tr.segs), tr.frames)
	}
}
