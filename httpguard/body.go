package httpguard

import (
	"github.com/agentwire/agentwire"
)

// MutationResult says what ApplyBodyMutation did with a chunk.
type MutationResult uint8

const (
	// MutationNone: the reply carried no mutation, or a pass-through one;
	// the chunk is unchanged.
	MutationNone MutationResult = iota
	// MutationDropped: the agent dropped the chunk; nothing of it goes on.
	MutationDropped
	// MutationReplaced: the agent replaced the chunk's bytes.
	MutationReplaced
	// MutationIgnored: the mutation's data was not valid base64
	// (agentwire.MutationInvalid) or its action unknown; the chunk is
	// unchanged, as the Rust proxy's response path keeps the original body.
	// Count it as a protocol error of the agent.
	MutationIgnored
)

// String returns "none", "dropped", "replaced" or "ignored".
func (r MutationResult) String() string {
	switch r {
	case MutationNone:
		return "none"
	case MutationDropped:
		return "dropped"
	case MutationReplaced:
		return "replaced"
	case MutationIgnored:
		return "ignored"
	}
	return "unknown"
}

// ApplyBodyMutation applies an agent's body mutation (the reply's
// RequestBodyMutation or ResponseBodyMutation) to the chunk it answered
// and returns the bytes to pass on: chunk itself (no mutation, pass, or
// an invalid one), nil (drop) or the mutation's data (replace), which
// belongs to the reply: use it before the reply is reused. The mutation's
// chunk_index is not checked: a reply answers the chunk it was sent for
// (the Rust proxy ignores the index too).
func ApplyBodyMutation(chunk []byte, m agentwire.Opt[agentwire.BodyMutation]) ([]byte, MutationResult) {
	if !m.Valid {
		return chunk, MutationNone
	}
	switch m.Value.Action {
	case agentwire.MutationPass:
		return chunk, MutationNone
	case agentwire.MutationDrop:
		return nil, MutationDropped
	case agentwire.MutationReplace:
		return m.Value.Data, MutationReplaced
	}
	return chunk, MutationIgnored
}

// BodyStream numbers the chunks of one body sent to one agent and follows
// the agent's needs_more answers (SPEC 2.3). Use one per agent and body;
// the zero value is ready once CorrelationID is set. Not safe for
// concurrent use.
//
// The protocol's rules, as this type applies them:
//
//   - chunk_index counts from 0; bytes_received (request) or bytes_sent
//     (response) is the number of bytes this agent has been sent,
//     including the chunk; total_size is Total when known (a
//     Content-Length), else absent.
//   - A reply with needs_more=true carries a provisional decision: the
//     agent wants more of the body before it decides, so a block in it is
//     not enforced yet and the next chunk goes to the agent. A reply with
//     needs_more=false is final: a non-allow decision is enforced at once.
//     A reply to the last chunk (is_last) is final whatever needs_more
//     says: there is nothing more to wait for, and an agent that blocks
//     at the end of the body is obeyed.
//   - When the body ends after a chunk that went out with is_last=false
//     (the end is often only known when the next read returns io.EOF) and
//     the agent's latest reply asked for more, the agent must still be
//     told: NeedsEnd reports it, and an empty chunk with is_last=true is
//     sent (as the Rust proxy's streaming path does). An agent whose latest
//     reply was final gets no such chunk.
type BodyStream struct {
	// CorrelationID is the request's correlation id.
	CorrelationID string
	// Total is the body's total size when known before it is read
	// (Content-Length); absent for a body of unknown length.
	Total agentwire.Opt[uint64]

	index     uint32 // chunks sent so far
	bytes     uint64 // bytes sent so far
	lastSent  bool   // a chunk with is_last went out
	needsMore bool   // the latest reply asked for more
	ended     bool   // a final non-allow decision was reached
}

// Reset makes s ready for a new body.
func (s *BodyStream) Reset(correlationID string, total agentwire.Opt[uint64]) {
	*s = BodyStream{CorrelationID: correlationID, Total: total}
}

// TotalFromContentLength returns the total size of a body of the given
// Content-Length (http.Request.ContentLength: -1 when unknown).
func TotalFromContentLength(n int64) agentwire.Opt[uint64] {
	if n < 0 {
		return agentwire.Opt[uint64]{}
	}
	return agentwire.Some(uint64(n))
}

// Chunk fills dst with the next chunk event: data (aliased, not copied:
// keep it unchanged until the event is sent) and whether it is the last.
// It fails with ErrBodyState after the last chunk or after a final
// non-allow decision.
func (s *BodyStream) Chunk(dst *agentwire.BodyChunk, data []byte, isLast bool) error {
	if s.lastSent || s.ended {
		return ErrBodyState
	}
	s.bytes += uint64(len(data))
	*dst = agentwire.BodyChunk{
		CorrelationID:    s.CorrelationID,
		Data:             data,
		IsLast:           isLast,
		TotalSize:        s.Total,
		ChunkIndex:       s.index,
		BytesTransferred: s.bytes,
	}
	s.index++
	s.lastSent = isLast
	return nil
}

// EndChunk fills dst with the empty last chunk NeedsEnd asks for.
func (s *BodyStream) EndChunk(dst *agentwire.BodyChunk) error {
	return s.Chunk(dst, nil, true)
}

// Reply takes the agent's reply to the latest chunk and reports whether
// its decision must be enforced now: true for a final (see BodyStream)
// non-allow decision. After true, no further chunk may be sent.
func (s *BodyStream) Reply(r *agentwire.AgentResponse) (enforce bool, err error) {
	if s.index == 0 {
		return false, ErrBodyState
	}
	final := !r.NeedsMore || s.lastSent
	s.needsMore = r.NeedsMore && !s.lastSent
	if final && r.Decision.Kind != agentwire.DecisionAllow {
		s.ended = true
		return true, nil
	}
	return false, nil
}

// NeedsEnd reports, once the body has ended, whether the agent must still
// be sent an empty last chunk (EndChunk): it has not seen is_last and its
// latest reply asked for more.
func (s *BodyStream) NeedsEnd() bool {
	return !s.lastSent && !s.ended && s.needsMore
}

// Sent returns the number of chunks and bytes sent so far.
func (s *BodyStream) Sent() (chunks uint32, bytes uint64) { return s.index, s.bytes }

// BodyMode says how a body goes to an agent.
type BodyMode uint8

const (
	// ModeBuffer collects the whole body (up to the agent's limit) and
	// sends it as one chunk with is_last=true. The default, as in the
	// Rust proxy.
	ModeBuffer BodyMode = iota
	// ModeStream sends each piece of the body as it arrives.
	ModeStream
	// ModeHybrid buffers up to a threshold and streams the rest: a body no
	// larger than the threshold goes as one chunk.
	ModeHybrid
)

// String returns "buffer", "stream" or "hybrid".
func (m BodyMode) String() string {
	switch m {
	case ModeBuffer:
		return "buffer"
	case ModeStream:
		return "stream"
	case ModeHybrid:
		return "hybrid"
	}
	return "unknown"
}

// DefaultHybridThreshold is the buffering threshold of ModeHybrid when
// none is given: 64 KiB, as in the Rust proxy.
const DefaultHybridThreshold = 64 << 10

// Planner decides when the bytes of a body go to one agent, following
// the agent's body mode and enforcing its inspection limit. Feed it what
// the client (or upstream) sends, in order; it returns the chunks to send.
// It never holds more than the limit (buffer mode; with NoLimit it holds
// the whole body) or the threshold (hybrid mode), and never copies in
// stream mode: a body no agent asked to buffer is never buffered.
// Reuse one per agent and body with Reset; the zero value is not ready.
// Not safe for concurrent use.
type Planner struct {
	mode      BodyMode
	threshold int
	limit     int64
	seen      int64
	buf       []byte
	flushed   bool // hybrid: the buffered part went out
	done      bool // the last chunk went out, or the limit was exceeded
	over      bool // the limit was exceeded
}

// Reset prepares p for a body: mode and hybrid threshold (0:
// DefaultHybridThreshold), the agent's inspection limit in bytes (NoLimit:
// none; 0: not even one byte, as a max-*-body-bytes of 0 means) and the
// body's Content-Length (-1 when unknown). It fails with
// ErrBodyTooLarge at once when the Content-Length exceeds the limit, so
// the failure policy can answer before any byte is read. p keeps its
// buffer's storage across Resets.
func (p *Planner) Reset(mode BodyMode, threshold int, limit int64, contentLength int64) error {
	if threshold <= 0 {
		threshold = DefaultHybridThreshold
	}
	*p = Planner{mode: mode, threshold: threshold, limit: limit, buf: p.buf[:0]}
	if limit >= 0 && contentLength > limit {
		p.done, p.over = true, true
		return ErrBodyTooLarge
	}
	return nil
}

// Feed takes the next bytes of the body (eof: the body ends with them;
// data may then be empty) and returns the chunk to send to the agent now,
// if any (send), and whether it is the last. The chunk is data itself or
// p's buffer: send it before the next Feed. Once the bytes seen exceed
// the limit, Feed fails with ErrBodyTooLarge (and keeps failing): the
// failure policy decides (413 when fail-closed, skip the agent when
// fail-open). After the last chunk Feed returns nothing.
func (p *Planner) Feed(data []byte, eof bool) (chunk []byte, last, send bool, err error) {
	if p.done {
		if p.over {
			return nil, false, false, ErrBodyTooLarge
		}
		return nil, false, false, nil
	}
	p.seen += int64(len(data))
	if p.limit >= 0 && p.seen > p.limit {
		p.done, p.over = true, true
		p.buf = p.buf[:0]
		return nil, false, false, ErrBodyTooLarge
	}
	switch p.mode {
	case ModeStream:
		if len(data) == 0 && !eof {
			return nil, false, false, nil
		}
		p.done = eof
		return data, eof, true, nil
	case ModeHybrid:
		if p.flushed {
			if len(data) == 0 && !eof {
				return nil, false, false, nil
			}
			p.done = eof
			return data, eof, true, nil
		}
		p.buf = append(p.buf, data...)
		if len(p.buf) < p.threshold && !eof {
			return nil, false, false, nil
		}
		p.flushed = true
		p.done = eof
		return p.buf, eof, true, nil
	}
	// ModeBuffer (and unknown modes).
	p.buf = append(p.buf, data...)
	if !eof {
		return nil, false, false, nil
	}
	p.done = true
	return p.buf, true, true, nil
}

// NoLimit is the Planner limit that lets a body of any size through.
const NoLimit = -1

// Seen returns the number of body bytes fed so far.
func (p *Planner) Seen() int64 { return p.seen }

// Held returns the bytes p holds and has not sent (buffer mode, hybrid
// mode below the threshold), aliasing p's buffer: valid until the next
// Feed or Reset. A Feed that fails with ErrBodyTooLarge discards them,
// so a proxy that then skips the agent (fail-open) takes them first and
// passes them on.
func (p *Planner) Held() []byte {
	if p.done || (p.mode == ModeHybrid && p.flushed) {
		return nil
	}
	return p.buf
}
