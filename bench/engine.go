package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"unsafe"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

// EngineLoad describes the unit of load sent through engine connections:
// one request-headers round trip (the SampleRequestHeaders event), followed,
// when BodySize > 0, by the request body of BodySize bytes sent as body
// chunks of at most ChunkSize bytes, each waited for in turn (as a proxy
// streams a body).
type EngineLoad struct {
	// Conns are the connections to spread the workers over (worker w uses
	// Conns[w % len(Conns)]). At least one.
	Conns []*engine.Conn
	// Concurrency is the number of workers that will call the RoundTrip
	// (the Config.Concurrency of the run); it sizes per-worker state.
	Concurrency int
	// BodySize is the request body size per round trip; 0 sends no body.
	BodySize int
	// ChunkSize bounds one body chunk; 0 means the first connection's
	// preferred chunk size (or 64 KiB when the agent announces none).
	ChunkSize int
}

// worker is the state one load worker reuses between round trips.
type worker struct {
	ids   idSlab
	ev    agentwire.RequestHeadersEvent
	resp  agentwire.AgentResponse
	chunk agentwire.BodyChunk
}

// RoundTrip returns the RoundTrip performing l's unit of load. The returned
// function keeps per-worker state: it is safe for concurrent use by
// different workers, but each worker index must be used by one goroutine at
// a time (as Run does). A reply other than allow counts as success: the
// load measures the transport, not the agent's verdict.
//
// Correlation ids are strings the engine may keep while the request is
// pending, so each round trip gets a fresh one; they are carved out of a
// per-worker slab (one allocation per idSlabSize bytes of ids, about 1/200
// per round trip) and never written again. Event structs, replies and the
// body buffer are reused. The request headers are sorted by name once, at
// setup (see the encoders' sorted fast path; the wire bytes do not change).
func (l EngineLoad) RoundTrip() (RoundTrip, error) {
	if len(l.Conns) == 0 {
		return nil, fmt.Errorf("agentwire: bench: no connection")
	}
	if l.Concurrency <= 0 {
		return nil, fmt.Errorf("agentwire: bench: concurrency %d must be positive", l.Concurrency)
	}
	if l.BodySize < 0 {
		return nil, fmt.Errorf("agentwire: bench: negative body size %d", l.BodySize)
	}
	chunkSize := l.ChunkSize
	if chunkSize <= 0 {
		chunkSize = int(l.Conns[0].Capabilities().Limits.PreferredChunkSize)
		if chunkSize <= 0 {
			chunkSize = 64 << 10
		}
	}
	var body []byte
	if l.BodySize > 0 {
		body = make([]byte, l.BodySize)
		for i := range body {
			body[i] = 'a' + byte(i%26)
		}
	}
	workers := make([]worker, l.Concurrency)
	for i := range workers {
		workers[i].ev = SampleRequestHeaders("")
		// Headers in byte-wise name order: the engine's encoders write
		// header maps in that order anyway (the bytes on the wire are
		// the same), and a sorted slice takes their no-sort fast path.
		slices.SortStableFunc(workers[i].ev.Headers, func(a, b agentwire.Header) int {
			return strings.Compare(a.Name, b.Name)
		})
	}
	conns := l.Conns
	return func(ctx context.Context, w int, seq uint64) error {
		st := &workers[w]
		c := conns[w%len(conns)]
		id := st.ids.next(w, seq)
		st.ev.Metadata.CorrelationID = id
		st.ev.Metadata.RequestID = id
		if err := c.RequestHeadersInto(ctx, &st.ev, &st.resp); err != nil {
			return err
		}
		if len(body) == 0 {
			return nil
		}
		var idx uint32
		for off := 0; off < len(body); off += chunkSize {
			end := min(off+chunkSize, len(body))
			st.chunk = agentwire.BodyChunk{
				CorrelationID:    id,
				Data:             body[off:end],
				IsLast:           end == len(body),
				TotalSize:        agentwire.Some(uint64(len(body))),
				ChunkIndex:       idx,
				BytesTransferred: uint64(end),
			}
			if err := c.RequestBodyChunkInto(ctx, &st.chunk, &st.resp); err != nil {
				return err
			}
			idx++
		}
		return nil
	}, nil
}

// idSlabSize is the size of one slab of correlation ids (an id is at most
// 25 bytes: 8 hex digits, '-', up to 16 hex digits).
const idSlabSize = 4096

// idSlab hands out immutable id strings backed by a shared byte slab: the
// bytes behind a returned string are never written again (a full slab is
// replaced, not reused), so the strings stay valid for as long as anyone
// holds them, and the garbage collector frees a slab once none is left.
// Not safe for concurrent use.
type idSlab struct {
	buf []byte
}

// next returns the correlation id of (worker, seq) (see AppendID).
func (s *idSlab) next(worker int, seq uint64) string {
	if cap(s.buf)-len(s.buf) < 32 {
		s.buf = make([]byte, 0, idSlabSize)
	}
	start := len(s.buf)
	s.buf = AppendID(s.buf, worker, seq)
	id := s.buf[start:len(s.buf):len(s.buf)]
	return unsafe.String(unsafe.SliceData(id), len(id))
}
