package httpguard

import (
	"bytes"
	"errors"
	"testing"

	"github.com/agentwire/agentwire"
)

func TestApplyBodyMutation(t *testing.T) {
	chunk := []byte("original")
	for _, tc := range []struct {
		m    agentwire.Opt[agentwire.BodyMutation]
		want []byte
		res  MutationResult
	}{
		{agentwire.Opt[agentwire.BodyMutation]{}, chunk, MutationNone},
		{agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationPass}), chunk, MutationNone},
		{agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationDrop}), nil, MutationDropped},
		{agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: []byte("masked")}), []byte("masked"), MutationReplaced},
		{agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationReplace, Data: []byte{}}), []byte{}, MutationReplaced},
		{agentwire.Some(agentwire.BodyMutation{Action: agentwire.MutationInvalid, Data: []byte("not base64!")}), chunk, MutationIgnored},
		{agentwire.Some(agentwire.BodyMutation{Action: 77}), chunk, MutationIgnored},
	} {
		got, res := ApplyBodyMutation(chunk, tc.m)
		if res != tc.res || !bytes.Equal(got, tc.want) || (tc.want == nil) != (got == nil) {
			t.Errorf("%+v: %q %v, want %q %v", tc.m, got, res, tc.want, tc.res)
		}
	}
}

func reply(d agentwire.Decision, needsMore bool) *agentwire.AgentResponse {
	return &agentwire.AgentResponse{Decision: d, NeedsMore: needsMore}
}

// TestBodyStreamNeedsMore walks the needs_more rules of BodyStream.
func TestBodyStreamNeedsMore(t *testing.T) {
	var s BodyStream
	s.Reset("c1", TotalFromContentLength(11))
	var ev agentwire.BodyChunk

	if _, err := s.Reply(reply(agentwire.Allow(), false)); !errors.Is(err, ErrBodyState) {
		t.Errorf("reply before a chunk: %v", err)
	}
	if err := s.Chunk(&ev, []byte("hello"), false); err != nil {
		t.Fatal(err)
	}
	want := agentwire.BodyChunk{CorrelationID: "c1", Data: []byte("hello"), TotalSize: agentwire.Some[uint64](11), ChunkIndex: 0, BytesTransferred: 5}
	if !bodyChunkEqual(ev, want) {
		t.Errorf("chunk 0: %+v", ev)
	}
	// A provisional block (needs_more) is not enforced.
	if enforce, _ := s.Reply(reply(agentwire.Block(403), true)); enforce {
		t.Error("provisional block enforced")
	}
	if err := s.Chunk(&ev, []byte(" world"), false); err != nil {
		t.Fatal(err)
	}
	if ev.ChunkIndex != 1 || ev.BytesTransferred != 11 || ev.IsLast {
		t.Errorf("chunk 1: %+v", ev)
	}
	if enforce, _ := s.Reply(reply(agentwire.Allow(), true)); enforce {
		t.Error("allow enforced")
	}
	// The body ended (EOF after chunk 1) and the agent asked for more: it
	// must get an empty last chunk.
	if !s.NeedsEnd() {
		t.Fatal("NeedsEnd false after needs_more")
	}
	if err := s.EndChunk(&ev); err != nil {
		t.Fatal(err)
	}
	if ev.ChunkIndex != 2 || len(ev.Data) != 0 || !ev.IsLast || ev.BytesTransferred != 11 {
		t.Errorf("end chunk: %+v", ev)
	}
	// A reply to the last chunk is final even with needs_more.
	if enforce, _ := s.Reply(reply(agentwire.Block(403), true)); !enforce {
		t.Error("block on the last chunk not enforced")
	}
	if s.NeedsEnd() {
		t.Error("NeedsEnd after the last chunk")
	}
	if err := s.Chunk(&ev, []byte("x"), false); !errors.Is(err, ErrBodyState) {
		t.Errorf("chunk after the last: %v", err)
	}
	if n, b := s.Sent(); n != 3 || b != 11 {
		t.Errorf("Sent %d %d", n, b)
	}
}

func TestBodyStreamFinalDecisions(t *testing.T) {
	var s BodyStream
	var ev agentwire.BodyChunk
	s.Reset("c", agentwire.Opt[uint64]{})
	_ = s.Chunk(&ev, []byte("a"), false)
	if ev.TotalSize.Valid {
		t.Error("unknown total written")
	}
	// A final allow mid-body: no enforcement, and no end chunk is owed.
	if enforce, _ := s.Reply(reply(agentwire.Allow(), false)); enforce {
		t.Error("allow enforced")
	}
	if s.NeedsEnd() {
		t.Error("NeedsEnd after a final reply")
	}
	// A final block mid-body is enforced at once and ends the stream.
	_ = s.Chunk(&ev, []byte("b"), false)
	if enforce, _ := s.Reply(reply(agentwire.Block(403), false)); !enforce {
		t.Error("final block not enforced")
	}
	if s.NeedsEnd() {
		t.Error("NeedsEnd after a block")
	}
	if err := s.Chunk(&ev, []byte("c"), true); !errors.Is(err, ErrBodyState) {
		t.Errorf("chunk after a block: %v", err)
	}
	// Redirect and challenge are non-allow decisions too.
	for _, d := range []agentwire.Decision{agentwire.Redirect("/x", 302), agentwire.Challenge("c", nil)} {
		s.Reset("c", agentwire.Opt[uint64]{})
		_ = s.Chunk(&ev, []byte("a"), true)
		if enforce, _ := s.Reply(reply(d, false)); !enforce {
			t.Errorf("%v not enforced", d.Kind)
		}
	}
}

func bodyChunkEqual(a, b agentwire.BodyChunk) bool {
	return a.CorrelationID == b.CorrelationID && bytes.Equal(a.Data, b.Data) && a.IsLast == b.IsLast &&
		a.TotalSize == b.TotalSize && a.ChunkIndex == b.ChunkIndex && a.BytesTransferred == b.BytesTransferred
}

type fed struct {
	data string
	eof  bool
}

type planned struct {
	chunk string
	last  bool
	send  bool
	err   error
}

func TestPlanner(t *testing.T) {
	cases := []struct {
		name      string
		mode      BodyMode
		threshold int
		limit     int64
		cl        int64
		resetErr  error
		feed      []fed
		want      []planned
	}{
		{name: "buffer", mode: ModeBuffer, limit: 100, cl: -1,
			feed: []fed{{"ab", false}, {"cd", false}, {"e", true}},
			want: []planned{{}, {}, {"abcde", true, true, nil}}},
		{name: "buffer eof after data", mode: ModeBuffer, limit: 100, cl: -1,
			feed: []fed{{"ab", false}, {"", true}},
			want: []planned{{}, {"ab", true, true, nil}}},
		{name: "buffer empty body", mode: ModeBuffer, limit: 100, cl: 0,
			feed: []fed{{"", true}},
			want: []planned{{"", true, true, nil}}},
		{name: "buffer at the limit", mode: ModeBuffer, limit: 4, cl: -1,
			feed: []fed{{"ab", false}, {"cd", true}},
			want: []planned{{}, {"abcd", true, true, nil}}},
		{name: "buffer over the limit", mode: ModeBuffer, limit: 4, cl: -1,
			feed: []fed{{"ab", false}, {"cde", false}, {"f", true}},
			want: []planned{{}, {err: ErrBodyTooLarge}, {err: ErrBodyTooLarge}}},
		{name: "content-length over the limit", mode: ModeStream, limit: 4, cl: 5, resetErr: ErrBodyTooLarge,
			feed: []fed{{"a", false}},
			want: []planned{{err: ErrBodyTooLarge}}},
		{name: "no limit", mode: ModeBuffer, limit: NoLimit, cl: 1 << 40,
			feed: []fed{{"abc", true}},
			want: []planned{{"abc", true, true, nil}}},
		{name: "limit 0 takes an empty body", mode: ModeBuffer, limit: 0, cl: -1,
			feed: []fed{{"", true}},
			want: []planned{{"", true, true, nil}}},
		{name: "limit 0 refuses one byte", mode: ModeStream, limit: 0, cl: -1,
			feed: []fed{{"a", false}},
			want: []planned{{err: ErrBodyTooLarge}}},
		{name: "limit 0 refuses a content-length of 1", mode: ModeStream, limit: 0, cl: 1, resetErr: ErrBodyTooLarge,
			feed: []fed{{"", true}},
			want: []planned{{err: ErrBodyTooLarge}}},
		{name: "stream", mode: ModeStream, limit: 100, cl: -1,
			feed: []fed{{"ab", false}, {"", false}, {"cd", false}, {"", true}},
			want: []planned{{"ab", false, true, nil}, {}, {"cd", false, true, nil}, {"", true, true, nil}}},
		{name: "stream over the limit", mode: ModeStream, limit: 3, cl: -1,
			feed: []fed{{"ab", false}, {"cd", false}},
			want: []planned{{"ab", false, true, nil}, {err: ErrBodyTooLarge}}},
		{name: "hybrid small body is one chunk", mode: ModeHybrid, threshold: 4, limit: 100, cl: -1,
			feed: []fed{{"a", false}, {"b", false}, {"c", true}},
			want: []planned{{}, {}, {"abc", true, true, nil}}},
		{name: "hybrid large body streams", mode: ModeHybrid, threshold: 4, limit: 100, cl: -1,
			feed: []fed{{"ab", false}, {"cde", false}, {"fg", false}, {"h", true}},
			want: []planned{{}, {"abcde", false, true, nil}, {"fg", false, true, nil}, {"h", true, true, nil}}},
		{name: "after the last chunk", mode: ModeStream, limit: 100, cl: -1,
			feed: []fed{{"a", true}, {"b", true}},
			want: []planned{{"a", true, true, nil}, {}}},
	}
	var p Planner // reused across cases: Reset must clear everything
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := p.Reset(tc.mode, tc.threshold, tc.limit, tc.cl); !errors.Is(err, tc.resetErr) || (err != nil) != (tc.resetErr != nil) {
				t.Fatalf("Reset: %v, want %v", err, tc.resetErr)
			}
			for i, f := range tc.feed {
				chunk, last, send, err := p.Feed([]byte(f.data), f.eof)
				w := tc.want[i]
				if string(chunk) != w.chunk || last != w.last || send != w.send || !errors.Is(err, w.err) || (err != nil) != (w.err != nil) {
					t.Errorf("feed %d %+v: %q %v %v %v, want %+v", i, f, chunk, last, send, err, w)
				}
			}
		})
	}
}

// TestPlannerBoundedMemory: in stream mode the planner never copies, and
// in buffer mode it never holds more than the limit, whatever the body's
// size.
func TestPlannerBoundedMemory(t *testing.T) {
	var p Planner
	_ = p.Reset(ModeStream, 0, NoLimit, -1)
	piece := make([]byte, 32<<10)
	for range 1000 { // 32 MiB streamed
		chunk, _, _, _ := p.Feed(piece, false)
		if &chunk[0] != &piece[0] {
			t.Fatal("stream mode copied the data")
		}
	}
	if cap(p.buf) != 0 {
		t.Errorf("stream mode buffered %d bytes", cap(p.buf))
	}
	_ = p.Reset(ModeBuffer, 0, 1<<20, -1)
	for range 100 {
		if _, _, _, err := p.Feed(piece, false); err != nil {
			break
		}
	}
	if cap(p.buf) > 2<<20 {
		t.Errorf("buffer mode holds %d bytes with a 1 MiB limit", cap(p.buf))
	}
	if len(p.buf) != 0 {
		t.Errorf("buffer kept %d bytes after the limit", len(p.buf))
	}
}
