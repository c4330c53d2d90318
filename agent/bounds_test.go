package agent

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	pb "github.com/agentwire/agentwire/proto/agentv2"
)

// TestGRPCPooledCallRetainsNoMessages: on the gRPC fast path an event's
// strings are views of the received message's text. A pooled grpcCall must
// not keep them after release: its header slots beyond the last event's
// count (and their Values beyond their length) would otherwise each pin the
// message that last wrote them, so a proxy that sends events with ever
// fewer headers makes one pooled call keep every one of those messages
// (each up to the receive limit) for as long as the pool keeps it in use.
func TestGRPCPooledCallRetainsNoMessages(t *testing.T) {
	const (
		n   = 128      // events, with n, n-1, ..., 1 headers
		pad = 64 << 10 // bytes of URI per event: 8 MiB of messages in all
	)
	s := NewServer(echoHandler{})
	defer s.Close()
	var tbl inflightTable
	var slab reqCtxSlab
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	raws := make([]string, 0, n) // every message text, kept to identify views
	big := strings.Repeat("u", pad)
	for k := n; k >= 1; k-- {
		m := &pb.ProxyToAgent{Message: &pb.ProxyToAgent_RequestHeaders{RequestHeaders: &pb.RequestHeadersEvent{
			Metadata: &pb.RequestMetadata{CorrelationId: fmt.Sprint("c-", k), RequestId: "r", ClientIp: "10.0.0.1", Protocol: "HTTP/1.1"},
			Method:   "GET",
			Uri:      "/" + big,
		}}}
		h := m.GetRequestHeaders()
		for i := range k {
			// Two values per name on the first event, one later: Values
			// keep stale elements past their length too.
			h.Headers = append(h.Headers, &pb.Header{Name: fmt.Sprint("h", i), Value: "v"})
			if k == n {
				h.Headers = append(h.Headers, &pb.Header{Name: fmt.Sprint("h", i), Value: "w"})
			}
		}
		in, err := m.MarshalVT()
		if err != nil {
			t.Fatal(err)
		}
		raw := string(in) // what inbound.UnmarshalVT keeps
		raws = append(raws, raw)
		c := grpcCallPool.Get().(*grpcCall)
		if !decodeFast(raw, &c.exchange) {
			t.Fatal("fast decode failed")
		}
		s.beginWith(slab.get(ctx), &tbl, &c.exchange)
		c.process(s, &tbl)
		c.release()
	}

	// Which messages do the pooled calls still reference?
	owner := func(str string) int {
		if len(str) == 0 {
			return -1
		}
		p := uintptr(unsafe.Pointer(unsafe.StringData(str)))
		for i, r := range raws {
			b := uintptr(unsafe.Pointer(unsafe.StringData(r)))
			if p >= b && p < b+uintptr(len(r)) {
				return i
			}
		}
		return -1
	}
	var calls []*grpcCall
	for range 16 {
		calls = append(calls, grpcCallPool.Get().(*grpcCall))
	}
	pinned := map[int]bool{}
	note := func(str string) {
		if i := owner(str); i >= 0 {
			pinned[i] = true
		}
	}
	for _, c := range calls {
		x := &c.exchange
		md := &x.reqHeaders.Metadata
		for _, str := range []string{x.cid, md.CorrelationID, md.RequestID, md.ClientIP, md.Protocol, md.Traceparent,
			x.reqHeaders.Method, x.reqHeaders.URI, x.resp.CorrelationID} {
			note(str)
		}
		for _, hd := range x.reqHeaders.Headers[:cap(x.reqHeaders.Headers)] {
			note(hd.Name)
			for _, v := range hd.Values[:cap(hd.Values)] {
				note(v)
			}
		}
		if r := c.wrp.Response; r != nil {
			note(r.CorrelationId)
		}
	}
	for _, c := range calls {
		grpcCallPool.Put(c)
	}
	bytes := 0
	for i := range pinned {
		bytes += len(raws[i])
	}
	t.Logf("pooled calls pin %d of %d messages (%d bytes)", len(pinned), n, bytes)
	if len(pinned) > 0 {
		t.Fatalf("released calls still pin %d received messages (%d bytes)", len(pinned), bytes)
	}
}
