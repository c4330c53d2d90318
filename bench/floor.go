package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
	"github.com/agentwire/agentwire/internal/pbconv"
	"github.com/agentwire/agentwire/internal/pbwire"
	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// The floor is what this machine can do at all with the workload's bytes: a
// raw framed echo over a Unix socket, or a bare grpc-go bidirectional
// stream, carrying the same bytes as the request-headers round trip of the
// load runs but doing nothing else: no encoding, no decoding, no
// correlation, no timeouts. Replies come back in order, so each connection
// matches them to its callers through a FIFO. Measured beside a result, it
// says how far from the machine's limit that result is.

// FloorMessages returns the bytes one floor round trip carries: the
// workload's request-headers event and the echo agent's reply to it, as
// they travel on transport ("uds": frame payloads in encoding; "grpc":
// ProxyToAgent and AgentToProxy messages). With size > 0 both are size
// bytes of filler instead.
func FloorMessages(transport, encoding string, size int) (req, reply []byte, err error) {
	if size > 0 {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte('a' + i%26)
		}
		return b, b, nil
	}
	ev := SampleRequestHeaders(string(AppendID(nil, 1, 1)))
	ev.Metadata.Timestamp = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	r := agentwire.AgentResponse{Version: agentwire.ProtocolVersion, CorrelationID: ev.Metadata.CorrelationID}
	r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-agent-processed", Value: "true"})
	switch transport {
	case "uds":
		switch encoding {
		case "", agentwire.EncodingMsgpack:
			req = payload.AppendRequestHeadersMsgpack(nil, &ev)
			reply, err = payload.AppendAgentResponseMsgpack(nil, &r)
		case agentwire.EncodingJSON:
			req = payload.AppendRequestHeadersJSON(nil, &ev)
			reply = payload.AppendAgentResponseJSON(nil, &r)
		default:
			return nil, nil, fmt.Errorf("agentwire: floor: encoding %q: want json or msgpack", encoding)
		}
		return req, reply, err
	case "grpc":
		req = pbwire.AppendRequestHeaders(nil, &ev, uint64(ev.Metadata.Timestamp.UnixMilli()))
		msg := &pb.AgentToProxy{Message: &pb.AgentToProxy_Response{Response: pbconv.AgentResponseToPB(&r)}}
		reply, err = msg.MarshalVT()
		return req, reply, err
	}
	return nil, nil, fmt.Errorf("agentwire: floor: transport %q: want uds or grpc", transport)
}

// ServeFloorUDS answers every frame on connections accepted from ln with
// one frame carrying reply, in order, until ln is closed or ctx ends. Each
// connection is served by one goroutine that reads through a 64 KiB buffer
// and flushes its replies when no more input is buffered, so a burst of
// requests costs one write.
func ServeFloorUDS(ctx context.Context, ln net.Listener, reply []byte) error {
	out, err := frame.AppendFrame(nil, frame.TypeAgentResponse, reply)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
				c.Close()
			}()
			echoFrames(c, out)
		}()
	}
}

func echoFrames(c net.Conn, out []byte) {
	r := bufio.NewReaderSize(c, 64<<10)
	w := bufio.NewWriterSize(c, 64<<10)
	var hdr [frame.HeaderSize]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint32(hdr[:4])) - 1
		if n < 0 || n > frame.MaxLen {
			return
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		if _, err := w.Write(out); err != nil {
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// rawCodec passes pre-encoded protobuf bytes through gRPC untouched: the
// wire carries exactly the messages agentwire sends and receives, with none
// of the encoding work. Its name is "proto", so the content type is too.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("agentwire: floor: raw codec cannot marshal %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(*b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("agentwire: floor: raw codec cannot unmarshal into %T", v)
	}
	*b = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

// floorWindow is the fixed HTTP/2 window of both floor ends: the engine's
// default (engine.DefaultGRPCWindow), so both sides run with the same flow
// control.
const floorWindow = 4 << 20

var floorStreamDesc = grpc.StreamDesc{StreamName: "ProcessStream", ServerStreams: true, ClientStreams: true}

// ServeFloorGRPC serves ProcessStream on ln with a bare grpc-go server
// that answers every message with reply, until ctx ends.
func ServeFloorGRPC(ctx context.Context, ln net.Listener, reply []byte) error {
	srv := grpc.NewServer(
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.InitialWindowSize(floorWindow), grpc.InitialConnWindowSize(floorWindow),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			var in []byte
			out := reply
			for {
				if err := stream.RecvMsg(&in); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := stream.SendMsg(&out); err != nil {
					return err
				}
			}
		}))
	stop := context.AfterFunc(ctx, srv.Stop)
	defer stop()
	err := srv.Serve(ln)
	if ctx.Err() != nil || errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// FloorLoad is the client side of the floor: Conns connections to an echo
// at Addr ("unix:///path" for uds, "host:port" or "unix:///path" for grpc),
// each carrying Request and expecting one reply per request, in order.
type FloorLoad struct {
	Transport string // "uds" or "grpc"
	Addr      string
	Conns     int
	Request   []byte
}

// FloorClient holds the floor's connections.
type FloorClient struct {
	conns []floorConn
	cc    []*grpc.ClientConn
}

type floorConn interface {
	roundTrip(ctx context.Context, w *floorWaiter) error
	close()
}

// floorWaiter is one caller's completion slot, reused across its calls.
type floorWaiter struct{ done chan error }

// Dial opens the load's connections.
func (l FloorLoad) Dial(ctx context.Context) (*FloorClient, error) {
	if l.Conns <= 0 {
		l.Conns = 1
	}
	fc := &FloorClient{}
	for range l.Conns {
		var c floorConn
		var err error
		switch l.Transport {
		case "uds":
			c, err = dialFloorUDS(ctx, l.Addr, l.Request)
		case "grpc":
			var cc *grpc.ClientConn
			cc, c, err = dialFloorGRPC(ctx, l.Addr, l.Request)
			if cc != nil {
				fc.cc = append(fc.cc, cc)
			}
		default:
			err = fmt.Errorf("agentwire: floor: transport %q: want uds or grpc", l.Transport)
		}
		if err != nil {
			fc.Close()
			return nil, err
		}
		fc.conns = append(fc.conns, c)
	}
	return fc, nil
}

// Close closes every connection; calls in flight fail.
func (fc *FloorClient) Close() {
	for _, c := range fc.conns {
		c.close()
	}
	for _, cc := range fc.cc {
		cc.Close()
	}
}

// RoundTrip returns the RoundTrip of the floor for concurrency workers
// (worker w uses connection w % Conns).
func (fc *FloorClient) RoundTrip(concurrency int) RoundTrip {
	ws := make([]floorWaiter, concurrency)
	for i := range ws {
		ws[i].done = make(chan error, 1)
	}
	return func(ctx context.Context, worker int, _ uint64) error {
		return fc.conns[worker%len(fc.conns)].roundTrip(ctx, &ws[worker])
	}
}

// replyQueue matches in-order replies to the callers waiting for them: a
// caller enqueues itself (under mu) in the order its request is written,
// the reader completes the head for each reply, and a failure completes
// everyone. Both floor connections embed it.
type replyQueue struct {
	mu      sync.Mutex
	waiting fifo
	err     error
}

// failLocked fails every waiting caller and every later one. Caller must
// hold q.mu.
func (q *replyQueue) failLocked(err error) {
	if q.err == nil {
		q.err = err
	}
	for w := q.waiting.pop(); w != nil; w = q.waiting.pop() {
		w.done <- err
	}
}

// reply completes the oldest waiting caller, or fails them all when err
// (the read's error) is not nil; it reports whether reading goes on.
func (q *replyQueue) reply(err error) bool {
	q.mu.Lock()
	if err != nil {
		q.failLocked(err)
		q.mu.Unlock()
		return false
	}
	w := q.waiting.pop()
	q.mu.Unlock()
	if w != nil {
		w.done <- nil
	}
	return true
}

// wait waits for w's reply. The reply will come (or the connection fails)
// and must be consumed, so the caller's context does not cut it short.
func wait(w *floorWaiter) error { return <-w.done }

// fifo is the queue of callers waiting for the next replies, in the order
// their requests were written.
type fifo struct {
	q    []*floorWaiter
	head int
}

func (f *fifo) push(w *floorWaiter) {
	if f.head > 0 && f.head == len(f.q) {
		f.q, f.head = f.q[:0], 0
	}
	f.q = append(f.q, w)
}

func (f *fifo) pop() *floorWaiter {
	if f.head == len(f.q) {
		return nil
	}
	w := f.q[f.head]
	f.q[f.head] = nil
	f.head++
	return w
}

// udsFloorConn writes without a writer goroutine: a caller that finds no
// write in progress writes itself, taking along whatever other callers
// appended meanwhile (a combining write); a caller that finds one in
// progress leaves its frame for that writer. One reader goroutine reads the
// replies and wakes the callers in order.
type udsFloorConn struct {
	c   net.Conn
	out []byte // the request frame

	replyQueue        // its mu also guards the fields below
	buf        []byte // frames appended while a write is in progress
	spare      []byte
	writing    bool

	readerDone chan struct{}
}

func dialFloorUDS(ctx context.Context, addr string, req []byte) (*udsFloorConn, error) {
	path := unixPath(addr)
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	out, err := frame.AppendFrame(nil, frame.TypeRequestHeaders, req)
	if err != nil {
		c.Close()
		return nil, err
	}
	fc := &udsFloorConn{c: c, out: out, readerDone: make(chan struct{})}
	go fc.read()
	return fc, nil
}

func unixPath(addr string) string {
	switch {
	case len(addr) > 7 && addr[:7] == "unix://":
		return addr[7:]
	case len(addr) > 5 && addr[:5] == "unix:":
		return addr[5:]
	}
	return addr
}

func (fc *udsFloorConn) roundTrip(ctx context.Context, w *floorWaiter) error {
	fc.mu.Lock()
	if fc.err != nil {
		err := fc.err
		fc.mu.Unlock()
		return err
	}
	fc.waiting.push(w)
	fc.buf = append(fc.buf, fc.out...)
	if !fc.writing {
		fc.writing = true
		for len(fc.buf) > 0 {
			b := fc.buf
			fc.buf, fc.spare = fc.spare[:0], b
			fc.mu.Unlock()
			_, err := fc.c.Write(b)
			fc.mu.Lock()
			if err != nil {
				fc.failLocked(err)
				break
			}
		}
		fc.writing = false
	}
	fc.mu.Unlock()
	return wait(w)
}

func (fc *udsFloorConn) read() {
	defer close(fc.readerDone)
	r := bufio.NewReaderSize(fc.c, 64<<10)
	var hdr [frame.HeaderSize]byte
	for {
		_, err := io.ReadFull(r, hdr[:])
		if err == nil {
			n := int(binary.BigEndian.Uint32(hdr[:4])) - 1
			if n < 0 || n > frame.MaxLen {
				err = errors.New("agentwire: floor: bad frame length")
			} else {
				_, err = r.Discard(n)
			}
		}
		if err != nil {
			err = fmt.Errorf("agentwire: floor: connection lost: %w", err)
		}
		if !fc.reply(err) {
			return
		}
	}
}

func (fc *udsFloorConn) close() {
	fc.c.Close()
	<-fc.readerDone
}

// grpcFloorConn sends on one bidirectional stream (sends serialised by a
// mutex, as a grpc-go stream requires) and reads replies on one goroutine.
type grpcFloorConn struct {
	stream grpc.ClientStream
	cancel context.CancelFunc
	req    []byte

	replyQueue // its mu also serialises SendMsg

	readerDone chan struct{}
}

func dialFloorGRPC(ctx context.Context, addr string, req []byte) (*grpc.ClientConn, *grpcFloorConn, error) {
	target := addr
	if p := unixPath(addr); p != addr {
		target = "unix://" + p
	}
	cc, err := grpc.NewClient(target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})),
		grpc.WithInitialWindowSize(floorWindow), grpc.WithInitialConnWindowSize(floorWindow))
	if err != nil {
		return nil, nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, cancel)
	stream, err := cc.NewStream(sctx, &floorStreamDesc, pb.AgentServiceV2_ProcessStream_FullMethodName)
	if !stop() {
		err = errors.Join(err, ctx.Err())
	}
	if err != nil {
		cancel()
		return cc, nil, err
	}
	fc := &grpcFloorConn{stream: stream, cancel: cancel, req: req, readerDone: make(chan struct{})}
	go fc.read()
	return cc, fc, nil
}

func (fc *grpcFloorConn) roundTrip(ctx context.Context, w *floorWaiter) error {
	fc.mu.Lock()
	if fc.err != nil {
		err := fc.err
		fc.mu.Unlock()
		return err
	}
	fc.waiting.push(w)
	err := fc.stream.SendMsg(&fc.req)
	if err != nil {
		fc.failLocked(err)
	}
	fc.mu.Unlock()
	return wait(w)
}

func (fc *grpcFloorConn) read() {
	defer close(fc.readerDone)
	var in []byte
	for {
		err := fc.stream.RecvMsg(&in)
		if err != nil {
			err = fmt.Errorf("agentwire: floor: stream lost: %w", err)
		}
		if !fc.reply(err) {
			return
		}
	}
}

func (fc *grpcFloorConn) close() {
	fc.cancel()
	<-fc.readerDone
}
