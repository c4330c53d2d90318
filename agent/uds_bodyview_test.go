package agent

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// bodyProbe records what its handler saw of each body chunk: the data (a
// copy) and whether the data's capacity ended at its length (a view of the
// frame, which the decoder caps; the call's own storage has room left
// after the first chunk).
type bodyProbe struct {
	BaseHandler
	mu     sync.Mutex
	data   [][]byte
	capped []bool
}

func (h *bodyProbe) OnRequestBodyChunk(_ context.Context, ev *agentwire.BodyChunk, _ *agentwire.AgentResponse) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.data = append(h.data, bytes.Clone(ev.Data))
	h.capped = append(h.capped, cap(ev.Data) == len(ev.Data))
	return nil
}

// TestUDSInlineRawBodyIsNotCopied: with inline handlers, raw (bin) body
// data reaches the handler as a view of the frame, not copied; base64 data
// and raw data on a worker are decoded into the call's own storage. The
// chunks alternate so that a pooled call that held a view next decodes
// base64: it must write into its own storage, never into the frame reader's
// buffer (the data of every chunk is checked).
func TestUDSInlineRawBodyIsNotCopied(t *testing.T) {
	for _, inline := range []bool{true, false} {
		name := "worker"
		var opts []Option
		if inline {
			name = "inline"
			opts = append(opts, WithInlineHandlers())
		}
		t.Run(name, func(t *testing.T) {
			h := &bodyProbe{}
			e := startUDS(t, h, opts...)
			p := dialRaw(t, e.path)
			defer p.close()
			p.handshake("msgpack")
			var want [][]byte
			var raw []bool
			for i := range 8 {
				data := bytes.Repeat([]byte{byte('a' + i)}, 100<<10+i) // a large frame
				if i%4 == 3 {
					data = data[:10] // a small one, inside the reader's buffer
				}
				ch := &agentwire.BodyChunk{CorrelationID: "b", Data: data, ChunkIndex: uint32(i)}
				isRaw := i%2 == 0
				var pl []byte
				if isRaw {
					pl = payload.AppendRequestBodyChunkMsgpackRaw(nil, ch)
				} else {
					pl = payload.AppendRequestBodyChunkMsgpack(nil, ch)
				}
				p.send(frame.TypeRequestBodyChunk, pl)
				if r := p.recvReply(true); r.Decision.Kind != agentwire.DecisionAllow {
					t.Fatalf("chunk %d: %+v", i, r.Decision)
				}
				want = append(want, data)
				raw = append(raw, isRaw)
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(h.data) != len(want) {
				t.Fatalf("handler saw %d chunks, want %d", len(h.data), len(want))
			}
			for i := range want {
				if !bytes.Equal(h.data[i], want[i]) {
					t.Fatalf("chunk %d: handler saw different data (%d bytes, want %d)", i, len(h.data[i]), len(want[i]))
				}
				if view := inline && raw[i]; view && !h.capped[i] {
					t.Errorf("chunk %d: raw data on an inline handler was copied", i)
				}
			}
		})
	}
}
