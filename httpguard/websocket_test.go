package httpguard

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/engine"
)

func TestParseFrame(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	big := bytes.Repeat([]byte("x"), 70000)
	for _, tc := range []struct {
		name   string
		b      []byte
		fin    bool
		op     Opcode
		masked bool
		pay    []byte
	}{
		{"empty text", AppendFrame(nil, true, OpText, nil, nil), true, OpText, false, nil},
		{"small masked", AppendFrame(nil, true, OpBinary, []byte("hello"), &key), true, OpBinary, true, []byte("hello")},
		{"16-bit length", AppendFrame(nil, false, OpText, big[:300], nil), false, OpText, false, big[:300]},
		{"64-bit length masked", AppendFrame(nil, true, OpContinuation, big, &key), true, OpContinuation, true, big},
		{"ping", AppendFrame(nil, true, OpPing, []byte("p"), nil), true, OpPing, false, []byte("p")},
		{"close", AppendCloseFrame(nil, 1000, "bye", &key), true, OpClose, true, []byte("\x03\xe8bye")},
		{"125-byte control", AppendFrame(nil, true, OpPong, big[:125], nil), true, OpPong, false, big[:125]},
	} {
		var f Frame
		// Every strict prefix is incomplete.
		for i := 0; i < len(tc.b); i += 1 + i/8 {
			if n, err := ParseFrame(tc.b[:i], 1<<20, &f); n != 0 || err != nil {
				t.Fatalf("%s: prefix %d: %d %v", tc.name, i, n, err)
			}
		}
		b := append(bytes.Clone(tc.b), "trailing"...)
		n, err := ParseFrame(b, 1<<20, &f)
		if err != nil || n != len(tc.b) {
			t.Fatalf("%s: %d %v", tc.name, n, err)
		}
		f.ToggleMask()
		if f.Fin != tc.fin || f.Opcode != tc.op || f.Masked != tc.masked || !bytes.Equal(f.Payload, tc.pay) || len(f.Raw) != n || f.RSV != 0 {
			t.Errorf("%s: %+v", tc.name, f)
		}
		if tc.masked && f.Key != key {
			t.Errorf("%s: key %v", tc.name, f.Key)
		}
	}
}

func TestParseFrameErrors(t *testing.T) {
	var f Frame
	long := AppendFrame(nil, true, OpBinary, make([]byte, 200), nil)
	top := []byte{0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 1}
	for _, tc := range []struct {
		name string
		b    []byte
		max  int
		err  error
	}{
		{"reserved data opcode", []byte{0x83, 0}, 100, ErrFrame},
		{"reserved control opcode", []byte{0x8B, 0}, 100, ErrFrame},
		{"fragmented ping", []byte{0x09, 0}, 100, ErrFrame},
		{"control over 125", []byte{0x89, 126, 0, 126}, 1000, ErrFrame},
		{"top bit of a 64-bit length", top, 1 << 30, ErrFrame},
		{"payload over the limit, header only", long[:4], 100, ErrFrameTooLarge},
		{"payload over the limit", long, 199, ErrFrameTooLarge},
	} {
		if n, err := ParseFrame(tc.b, tc.max, &f); n != 0 || !errors.Is(err, tc.err) || !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %d %v, want %v", tc.name, n, err, tc.err)
		}
	}
	// RSV bits are reported, not refused.
	if n, err := ParseFrame([]byte{0xC1, 0}, 10, &f); n != 2 || err != nil || f.RSV != 4 {
		t.Errorf("rsv1: %d %v %d", n, err, f.RSV)
	}
}

func TestMaskBytes(t *testing.T) {
	key := [4]byte{0xa1, 0xb2, 0xc3, 0xd4}
	for n := range 40 {
		for pos := range 4 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(i * 7)
			}
			want := bytes.Clone(b)
			for i := range want {
				want[i] ^= key[(pos+i)%4]
			}
			maskBytes(b, key, pos)
			if !bytes.Equal(b, want) {
				t.Fatalf("n=%d pos=%d: %x, want %x", n, pos, b, want)
			}
		}
	}
}

func TestAppendCloseFrame(t *testing.T) {
	var f Frame
	parse := func(b []byte) (uint16, string) {
		t.Helper()
		if n, err := ParseFrame(b, 1<<20, &f); err != nil || n != len(b) || f.Opcode != OpClose {
			t.Fatalf("%d %v %+v", n, err, f)
		}
		f.ToggleMask()
		return binary.BigEndian.Uint16(f.Payload), string(f.Payload[2:])
	}
	if c, r := parse(AppendCloseFrame(nil, 4001, "rule 942100", nil)); c != 4001 || r != "rule 942100" {
		t.Errorf("%d %q", c, r)
	}
	for _, bad := range []uint16{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000} {
		if c, _ := parse(AppendCloseFrame(nil, bad, "", nil)); c != ClosePolicyViolated {
			t.Errorf("code %d sent as %d", bad, c)
		}
	}
	long := strings.Repeat("é", 100) // 200 bytes
	if _, r := parse(AppendCloseFrame(nil, 1000, long, &[4]byte{9, 9, 9, 9})); len(r) != 122 || r != long[:122] {
		t.Errorf("long reason cut to %d bytes", len(r))
	}
	if _, r := parse(AppendCloseFrame(nil, 1000, "bad\xff", nil)); r != "" {
		t.Errorf("invalid UTF-8 reason kept: %q", r)
	}
}

func TestWebSocketStreamEvents(t *testing.T) {
	s := WebSocketStream{CorrelationID: "c", RouteID: agentwire.Some("ws"), ClientIP: "10.0.0.1"}
	var ev agentwire.WebSocketFrameEvent
	var f Frame
	for i, dir := range []bool{true, false, true, true, false} {
		b := AppendFrame(nil, i != 2, OpText, []byte{byte('a' + i)}, nil)
		_, _ = ParseFrame(b, 10, &f)
		s.Event(&ev, &f, dir)
		wantIndex := map[int]uint64{0: 0, 1: 0, 2: 1, 3: 2, 4: 1}[i]
		if ev.FrameIndex != wantIndex || ev.ClientToServer != dir || ev.Opcode != "text" || ev.Fin != (i != 2) ||
			string(ev.Data) != string(rune('a'+i)) || ev.CorrelationID != "c" || ev.ClientIP != "10.0.0.1" || ev.RouteID != agentwire.Some("ws") {
			t.Errorf("frame %d: %+v", i, ev)
		}
	}
}

func TestOpcodeNames(t *testing.T) {
	want := map[Opcode]string{0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong", 3: "reserved"}
	for op, name := range want {
		if op.String() != name {
			t.Errorf("%d: %q", op, op.String())
		}
	}
}

func TestWebSocketDecisionOf(t *testing.T) {
	closed := engine.FailurePolicy{}
	closeDec := agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 4000, Reason: "x"}
	for _, tc := range []struct {
		name string
		v    engine.Verdict
		want agentwire.WebSocketDecision
	}{
		{"agent ws decision", closed.Decide("a", &agentwire.AgentResponse{WebSocketDecision: agentwire.Some(closeDec)}, nil), closeDec},
		{"agent drop", closed.Decide("a", &agentwire.AgentResponse{WebSocketDecision: agentwire.Some(agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop})}, nil),
			agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop}},
		{"agent allow without ws decision", closed.Decide("a", &agentwire.AgentResponse{}, nil), agentwire.WebSocketDecision{}},
		{"agent block without ws decision", closed.Decide("a", &agentwire.AgentResponse{Decision: agentwire.Block(403)}, nil),
			agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: ClosePolicyViolated}},
		{"fail-closed timeout", closed.Synthetic("a", engine.ReasonTimeout, nil),
			agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: CloseInternalError, Reason: "Service Unavailable"}},
		{"fail-open error", engine.FailurePolicy{Mode: engine.FailOpen}.Synthetic("a", engine.ReasonError, nil), agentwire.WebSocketDecision{}},
	} {
		if got := WebSocketDecisionOf(&tc.v); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestIsWebSocketUpgrade(t *testing.T) {
	for _, tc := range []struct {
		conn, up []string
		want     bool
	}{
		{[]string{"Upgrade"}, []string{"websocket"}, true},
		{[]string{"keep-alive, Upgrade"}, []string{"WebSocket"}, true},
		{[]string{"keep-alive", " upgrade "}, []string{"h2c, websocket"}, true},
		{[]string{"keep-alive"}, []string{"websocket"}, false},
		{[]string{"Upgrade"}, []string{"h2c"}, false},
		{nil, nil, false},
		{[]string{"upgraded"}, []string{"websocket"}, false},
	} {
		r := &http.Request{Header: http.Header{"Connection": tc.conn, "Upgrade": tc.up}}
		if got := IsWebSocketUpgrade(r); got != tc.want {
			t.Errorf("%q %q: %v", tc.conn, tc.up, got)
		}
	}
	h := http.Header{"Sec-Websocket-Extensions": {"permessage-deflate"}, "X": {"1"}}
	StripWebSocketExtensions(h)
	if len(h) != 1 {
		t.Errorf("%v", h)
	}
}

// FuzzParseFrame: no input panics; a parsed frame lies within the input,
// and re-encoding it gives the same bytes when the input used the
// shortest length encoding and no RSV bits.
func FuzzParseFrame(f *testing.F) {
	key := [4]byte{1, 2, 3, 4}
	f.Add(AppendFrame(nil, true, OpText, []byte("hi"), nil))
	f.Add(AppendFrame(nil, false, OpBinary, make([]byte, 300), &key))
	f.Add(AppendFrame(nil, true, OpBinary, make([]byte, 70000), nil))
	f.Add(AppendCloseFrame(nil, 1001, "going", &key))
	f.Add([]byte{0x81, 127, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr Frame
		n, err := ParseFrame(b, 1<<16, &fr)
		if err != nil {
			if n != 0 || !errors.Is(err, ErrFrame) {
				t.Fatalf("%d %v", n, err)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(b) || len(fr.Raw) != n || len(fr.Payload) > n || len(fr.Payload) > 1<<16 {
			t.Fatalf("n %d of %d, raw %d, payload %d", n, len(b), len(fr.Raw), len(fr.Payload))
		}
		if fr.Opcode.IsControl() && (!fr.Fin || len(fr.Payload) > MaxControlPayload) {
			t.Fatalf("bad control frame accepted: %+v", fr)
		}
		raw := bytes.Clone(fr.Raw)
		fr.ToggleMask()
		var k *[4]byte
		if fr.Masked {
			k = &fr.Key
		}
		re := AppendFrame(nil, fr.Fin, fr.Opcode, fr.Payload, k)
		l7 := raw[1] & 0x7F
		minimal := (len(fr.Payload) < 126 && l7 < 126) || (l7 == 126 && len(fr.Payload) >= 126 && len(fr.Payload) <= 0xFFFF) ||
			(l7 == 127 && len(fr.Payload) > 0xFFFF)
		if fr.RSV == 0 && minimal && !bytes.Equal(re, raw) {
			t.Fatalf("re-encoded %x, parsed %x", re, raw)
		}
	})
}
