package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/agentwire/agentwire"
)

// memTransport replaces the gRPC stream with an in-memory agent: send
// reads the correlation id out of the encoded ProxyToAgent and queues a
// pre-encoded allow reply, which readLoop feeds through the same inbound
// path as the gRPC transport (handleAgentToProxy). Encoding is the gRPC
// transport's own. Nothing here allocates per message, so allocation
// counts measure the engine's per-request path alone.
type memTransport struct {
	*grpcEncoder // the gRPC transport's encoders

	// gate, when set, holds every send until it is closed (a stuck writer).
	gate     chan struct{}
	slots    [][]byte
	next     int
	replies  chan int
	done     chan struct{}
	stopOnce sync.Once
}

const memSlots = 4096

func newMemTransport() *memTransport {
	m := &memTransport{
		grpcEncoder: &grpcEncoder{maxSend: DefaultMaxMessageSize},
		slots:       make([][]byte, memSlots),
		replies:     make(chan int, memSlots),
		done:        make(chan struct{}),
	}
	for i := range m.slots {
		m.slots[i] = make([]byte, 0, 512)
	}
	return m
}

var errMemClosed = errors.New("memtransport closed")

// send answers request-headers events with allow; everything else (cancel,
// configure, ...) is swallowed.
func (m *memTransport) send(o outbound) error {
	buf := o.buf
	defer buf.Free()
	if m.gate != nil {
		select {
		case <-m.gate:
		case <-m.done:
			return errMemClosed
		}
	}
	select {
	case <-m.done:
		return errMemClosed
	default:
	}
	cid, ok := requestHeadersCID(buf.ReadOnlyData())
	if !ok {
		return nil
	}
	i := m.next
	m.next = (m.next + 1) % memSlots
	b := m.slots[i][:0]
	// AgentToProxy{response{correlation_id, allow{}}}
	inner := protowire.SizeTag(1) + protowire.SizeBytes(len(cid)) + 2
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(inner))
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, cid)
	b = append(b, 0x12, 0x00)
	m.slots[i] = b
	select {
	case m.replies <- i:
		return nil
	case <-m.done:
		return errMemClosed
	}
}

// requestHeadersCID digs metadata.correlation_id out of an encoded
// ProxyToAgent{request_headers}.
func requestHeadersCID(b []byte) ([]byte, bool) {
	field := func(b []byte, want protowire.Number) ([]byte, bool) {
		for len(b) > 0 {
			num, typ, n := protowire.ConsumeTag(b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
			if typ == protowire.BytesType {
				v, n := protowire.ConsumeBytes(b)
				if n < 0 {
					return nil, false
				}
				if num == want {
					return v, true
				}
				b = b[n:]
				continue
			}
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return nil, false
			}
			b = b[n:]
		}
		return nil, false
	}
	ev, ok := field(b, 2)
	if !ok {
		return nil, false
	}
	md, ok := field(ev, 1)
	if !ok {
		return nil, false
	}
	return field(md, 1)
}

func (m *memTransport) sendControl(buf mem.Buffer) error { buf.Free(); return nil }

func (m *memTransport) readLoop(s *session) error {
	for {
		select {
		case i := <-m.replies:
			handleAgentToProxy(m.slots[i], s)
		case <-m.done:
			return errMemClosed
		}
	}
}

func (m *memTransport) hasControl() bool               { return false }
func (m *memTransport) readControlLoop(*session) error { return nil }
func (m *memTransport) close()                         { m.stopOnce.Do(func() { close(m.done) }) }

type memDialer struct {
	gate chan struct{}
	// maxConcurrency is the agent's announced limits.max_concurrency.
	maxConcurrency uint32
	// events, when set, makes the transport an eventWriter that records
	// what it encodes there.
	events *memEvents
}

func (d memDialer) open(context.Context, *agentwire.HandshakeRequest) (transport, agentwire.Capabilities, error) {
	m := newMemTransport()
	m.gate = d.gate
	caps := agentwire.Capabilities{ProtocolVersion: 2, AgentID: "mem"}
	caps.Limits.MaxConcurrency = d.maxConcurrency
	if d.events != nil {
		if d.events.maxSend > 0 {
			m.maxSend = d.events.maxSend
		}
		return &memEventTransport{memTransport: m, ev: d.events}, caps, nil
	}
	return m, caps, nil
}

func (memDialer) close() error { return nil }

// memConn returns a Conn whose agent is in memory.
func memConn(t testing.TB, opts ...Option) *Conn {
	t.Helper()
	return memConnWith(t, memDialer{}, opts...)
}

func memConnWith(t testing.TB, d memDialer, opts ...Option) *Conn {
	t.Helper()
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		t.Fatal(err)
	}
	c, err := newConn(context.Background(), d, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestMemTransportRoundTrip(t *testing.T) {
	c := memConn(t)
	for i := range 100 {
		ev := headersEvent("mem-" + string(rune('a'+i%26)))
		r, err := c.RequestHeaders(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		if r.CorrelationID != ev.Metadata.CorrelationID || r.Decision.Kind != agentwire.DecisionAllow || r.Version != 2 {
			t.Fatalf("reply %+v", r)
		}
	}
}

func TestFullQueueWaitIsBoundedByTheCallDeadline(t *testing.T) {
	gate := make(chan struct{})
	c := memConnWith(t, memDialer{gate: gate}, WithRingSize(2), WithRequestTimeout(50*time.Millisecond))
	defer close(gate)
	// The writer is stuck on the first message; the ring holds two more.
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := c.RequestHeaders(context.Background(), headersEvent("q"+string(rune('a'+i))))
			errs <- err
		}()
	}
	for range 4 {
		select {
		case err := <-errs:
			mustKind(t, err, ErrTimeout)
		case <-time.After(5 * time.Second):
			t.Fatal("a call waiting for queue space ignored the request timeout")
		}
	}
}
