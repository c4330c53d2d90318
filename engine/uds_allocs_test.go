//go:build !race

package engine

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/loopagent"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/allocs"
)

// loopAgent is an allocation-free fake agent on a real Unix socket: it
// answers the handshake, then every request-headers event with a minimal
// allow reply built in a reused buffer. The exact count (internal/allocs)
// covers the whole process, so the fake must not allocate per request for the numbers
// to be the engine's own.
func startLoopAgent(t testing.TB, enc string) string {
	t.Helper()
	return loopagent.Start(t, loopagent.Config{Encoding: enc})
}

// TestUDSAllocsPerRoundTrip measures the proxy side of a Unix-socket round
// trip (encode into a pooled frame, pending registration, ring hand-off,
// writev, frame read, routing-id scan, decode into the caller's reply,
// completion) against the allocation-free loopAgent. Counted exactly (Go
// 1.26): RequestHeadersInto no allocation per round trip in MessagePack
// (the pending map threads the pooled entry, pendmap.go) and RequestHeaders
// 1 (the returned reply);
// a zero Metadata.Timestamp (filled in by the encoder) costs nothing extra.
// JSON counts the same: loopAgent's reply has a shape the one-pass reply
// scan takes (payload.ScanReplyJSON), which keeps an unchanged audit.custom
// value instead of copying it into the general decoder's arena.
func TestUDSAllocsPerRoundTrip(t *testing.T) {
	for _, m := range udsModes[:2] {
		t.Run(m.name, func(t *testing.T) {
			enc := agentwire.EncodingJSON
			if m.msgpack {
				enc = agentwire.EncodingMsgpack
			}
			path := startLoopAgent(t, enc)
			c := dialUDS(t, path, m.opts...)
			if udsOf(t, c).msgpack != m.msgpack {
				t.Fatal("encoding not negotiated")
			}
			ctx := context.Background()
			ev := benchEvent("alloc-probe")
			zeroTS := headersEvent("alloc-zero-ts")
			dst := new(agentwire.AgentResponse)
			for range 200 {
				if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil {
					t.Fatal(err)
				}
				if err := c.RequestHeadersInto(ctx, zeroTS, dst); err != nil {
					t.Fatal(err)
				}
			}
			const n = 2000
			into := allocs.AtMost(t, m.name+": RequestHeadersInto", n, 0, func() {
				if err := c.RequestHeadersInto(ctx, &ev, dst); err != nil || dst.CorrelationID != "alloc-probe" {
					t.Fatal(err)
				}
			})
			intoZero := allocs.AtMost(t, m.name+": RequestHeadersInto, zero timestamp", n, 0, func() {
				if err := c.RequestHeadersInto(ctx, zeroTS, dst); err != nil {
					t.Fatal(err)
				}
			})
			plain := allocs.AtMost(t, m.name+": RequestHeaders", n, 1, func() {
				r, err := c.RequestHeaders(ctx, &ev)
				if err != nil || r.CorrelationID != "alloc-probe" {
					t.Fatal(err)
				}
			})
			t.Logf("%s: allocations in %d round trips: RequestHeadersInto %d (zero timestamp %d), RequestHeaders %d", m.name, n, into, intoZero, plain)
		})
	}
}

// TestUDSAllocsPerBodyChunk: a 64 KiB request body chunk sent with
// RequestBodyChunkInto costs no allocation (JSON: a share of the reply
// decoder's arena),
// as raw MessagePack bin (agentwire peers) and as base64 (Rust peers);
// counted exactly.
func TestUDSAllocsPerBodyChunk(t *testing.T) {
	for _, m := range udsModes {
		t.Run(m.name, func(t *testing.T) {
			enc := agentwire.EncodingJSON
			if m.msgpack {
				enc = agentwire.EncodingMsgpack
			}
			path := startLoopAgent(t, enc)
			c := dialUDS(t, path, m.opts...)
			if udsOf(t, c).raw != m.raw {
				t.Fatal("raw bodies not negotiated")
			}
			ctx := context.Background()
			ev := &agentwire.BodyChunk{CorrelationID: "alloc-chunk", Data: bytes.Repeat([]byte("b"), 64<<10),
				TotalSize: agentwire.Some[uint64](1 << 20), ChunkIndex: 1, BytesTransferred: 128 << 10}
			dst := new(agentwire.AgentResponse)
			for range 200 {
				if err := c.RequestBodyChunkInto(ctx, ev, dst); err != nil {
					t.Fatal(err)
				}
			}
			const n = 1000
			arena := 0.0 // JSON replies: see TestUDSAllocsPerRoundTrip
			if !m.msgpack {
				arena = 1.0 / 200
			}
			got := allocs.AtMost(t, m.name+": RequestBodyChunkInto, 64 KiB", n, arena, func() {
				if err := c.RequestBodyChunkInto(ctx, ev, dst); err != nil || dst.CorrelationID != "alloc-chunk" {
					t.Fatal(err)
				}
			})
			t.Logf("%s: allocations in %d chunks of 64 KiB: %d", m.name, n, got)
		})
	}
}

// discardConn is a net.Conn whose writes succeed and go nowhere.
type discardConn struct{ net.Conn }

func (discardConn) Write(b []byte) (int, error) { return len(b), nil }

// TestUDSAllocsEncode: the Unix-socket encoders allocate nothing, nor does
// the writer's own path (a request-headers event encoded into its batch,
// the batch written out).
func TestUDSAllocsEncode(t *testing.T) {
	for _, m := range udsModes {
		t.Run(m.name, func(t *testing.T) {
			tr := newUDSTransport(nil, nil, frame.MaxLen-1, m.msgpack, m.raw, nil)
			wr := newUDSTransport(discardConn{}, nil, frame.MaxLen-1, m.msgpack, m.raw, nil)
			ev := benchEvent("enc")
			zero := headersEvent("enc")
			chunk := &agentwire.BodyChunk{CorrelationID: "enc", Data: make([]byte, 16<<10), IsLast: true}
			for _, tc := range []struct {
				name string
				f    func() error
			}{
				{"request headers", func() error { b, err := tr.requestHeaders(&ev, 1); b.Free(); return err }},
				{"request headers, zero timestamp", func() error { b, err := tr.requestHeaders(zero, uint64(time.Now().UnixMilli())); b.Free(); return err }},
				{"16 KiB body chunk", func() error { b, err := tr.bodyChunk(chunk, false, 1); b.Free(); return err }},
				{"cancel", func() error { b, err := tr.cancel("enc", agentwire.CancelTimeout, 1); b.Free(); return err }},
				{"writer: request headers into the batch, then flush", func() error {
					if err := wr.appendRequestHeadersEvent(&ev); err != nil {
						return err
					}
					if err := wr.appendRequestHeadersEvent(zero); err != nil {
						return err
					}
					return wr.flush()
				}},
			} {
				for range 10 {
					_ = tc.f()
				}
				allocs.Zero(t, tc.name, 1000, func() {
					if err := tc.f(); err != nil {
						t.Fatal(err)
					}
				})
			}
		})
	}
}
