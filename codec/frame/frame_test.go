package frame

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

func TestTypeTable(t *testing.T) {
	want := map[byte]string{
		0x01: "HandshakeRequest", 0x02: "HandshakeResponse",
		0x10: "RequestHeaders", 0x11: "RequestBodyChunk", 0x12: "ResponseHeaders",
		0x13: "ResponseBodyChunk", 0x14: "RequestComplete", 0x15: "WebSocketFrame",
		0x16: "GuardrailInspect", 0x17: "Configure", 0x20: "AgentResponse",
		0x30: "HealthStatus", 0x31: "MetricsReport", 0x32: "ConfigUpdateRequest",
		0x33: "FlowControl", 0x40: "Cancel", 0x41: "Ping", 0x42: "Pong",
	}
	for b := range 256 {
		typ := Type(b)
		name, ok := want[byte(b)]
		if typ.Valid() != ok {
			t.Errorf("Type(%#x).Valid() = %v, want %v", b, typ.Valid(), ok)
		}
		if ok && typ.String() != name {
			t.Errorf("Type(%#x).String() = %q, want %q", b, typ.String(), name)
		}
	}
	// The documentation's table (0x21, 0xF0, 0xF1) is not the wire's.
	for _, b := range []Type{0x00, 0x03, 0x21, 0xF0, 0xF1, 0xFF} {
		if b.Valid() {
			t.Errorf("%v must not be valid", b)
		}
	}
	if got := Type(0x0a).String(); got != "Type(0x0a)" {
		t.Errorf("String of unknown = %q", got)
	}
	if got := Type(0xf1).String(); got != "Type(0xf1)" {
		t.Errorf("String of unknown = %q", got)
	}
}

func TestGolden(t *testing.T) {
	frames := loadGolden(t)
	var stream []byte
	for _, g := range frames {
		rd := NewReader(bytes.NewReader(g.frame), 0)
		typ, p, err := rd.ReadFrame()
		if err != nil || typ != g.typ || !bytes.Equal(p, g.payload) {
			t.Errorf("%s: ReadFrame = %v, %q, %v; want %v, %q", g.name, typ, p, err, g.typ, g.payload)
		}
		if _, _, err := rd.ReadFrame(); err != io.EOF {
			t.Errorf("%s: second ReadFrame = %v, want io.EOF", g.name, err)
		}
		rd.Release()

		got, err := AppendFrame(nil, g.typ, g.payload)
		if err != nil || !bytes.Equal(got, g.frame) {
			t.Errorf("%s: AppendFrame = %x, %v; want %x", g.name, got, err, g.frame)
		}
		b, start := BeginFrame([]byte("prefix"), g.typ)
		b = append(b, g.payload...)
		if err := EndFrame(b, start); err != nil || !bytes.Equal(b[start:], g.frame) || string(b[:start]) != "prefix" {
			t.Errorf("%s: BeginFrame/EndFrame = %x, %v", g.name, b[start:], err)
		}
		stream = append(stream, g.frame...)
	}

	// All frames back to back, through readers that deliver the bytes in
	// different chunkings.
	for name, mk := range map[string]func([]byte) io.Reader{
		"whole":      func(b []byte) io.Reader { return bytes.NewReader(b) },
		"onebyte":    func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":       func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"dataerreof": func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
	} {
		rd := NewReader(mk(stream), 0)
		for _, g := range frames {
			typ, p, err := rd.ReadFrame()
			if err != nil || typ != g.typ || !bytes.Equal(p, g.payload) {
				t.Fatalf("%s: %s: ReadFrame = %v, %q, %v", name, g.name, typ, p, err)
			}
		}
		if _, _, err := rd.ReadFrame(); err != io.EOF {
			t.Fatalf("%s: end of stream = %v, want io.EOF", name, err)
		}
		rd.Release()
	}
}

func header(n uint32, t Type) []byte {
	h := binary.BigEndian.AppendUint32(nil, n)
	return append(h, byte(t))
}

// countingReader counts the bytes handed out.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestLengthLimits(t *testing.T) {
	t.Run("zero", func(t *testing.T) {
		rd := NewReader(bytes.NewReader(append(header(0, TypePing), header(1, TypePing)...)), 0)
		defer rd.Release()
		for range 2 { // sticky
			if _, _, err := rd.ReadFrame(); !errors.Is(err, ErrZeroLength) {
				t.Fatalf("ReadFrame = %v, want ErrZeroLength", err)
			}
		}
	})
	t.Run("one", func(t *testing.T) {
		rd := NewReader(bytes.NewReader(header(1, TypePong)), 0)
		defer rd.Release()
		typ, p, err := rd.ReadFrame()
		if err != nil || typ != TypePong || len(p) != 0 {
			t.Fatalf("ReadFrame = %v, %q, %v", typ, p, err)
		}
	})
	for _, n := range []uint32{MaxLen + 1, MaxLen + 1000, 1<<32 - 1} {
		t.Run("too_large", func(t *testing.T) {
			// The payload bytes that follow must never be read: LEN is
			// checked on the header alone, before any allocation.
			src := &countingReader{r: iotest.OneByteReader(io.MultiReader(
				bytes.NewReader(header(n, TypeRequestBodyChunk)),
				bytes.NewReader(make([]byte, 1<<20))))}
			rd := NewReader(src, 0)
			defer rd.Release()
			_, _, err := rd.ReadFrame()
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Len != uint64(n) || tl.Max != MaxLen {
				t.Fatalf("ReadFrame = %v, want *TooLargeError{%d, %d}", err, n, MaxLen)
			}
			if src.n != HeaderSize {
				t.Fatalf("reader consumed %d bytes, want only the %d-byte header", src.n, HeaderSize)
			}
			if rd.hasLarge {
				t.Fatal("a payload buffer was acquired for an oversized frame")
			}
			if _, _, err2 := rd.ReadFrame(); err2 != err {
				t.Fatalf("error is not sticky: %v", err2)
			}
		})
	}
	t.Run("custom_max", func(t *testing.T) {
		stream := append(header(100, TypeAgentResponse), make([]byte, 99)...)
		stream = append(stream, header(101, TypeAgentResponse)...)
		rd := NewReader(bytes.NewReader(stream), 100)
		defer rd.Release()
		if _, p, err := rd.ReadFrame(); err != nil || len(p) != 99 {
			t.Fatalf("LEN == max: %d bytes, %v", len(p), err)
		}
		var tl *TooLargeError
		if _, _, err := rd.ReadFrame(); !errors.As(err, &tl) || tl.Max != 100 {
			t.Fatalf("LEN == max+1: %v", err)
		}
	})
	t.Run("max_len_exactly", func(t *testing.T) {
		payload := bytes.Repeat([]byte{0xab}, MaxLen-1)
		payload[0], payload[len(payload)-1] = 1, 2
		f, err := AppendFrame(nil, TypeRequestBodyChunk, payload)
		if err != nil {
			t.Fatalf("AppendFrame with LEN == MaxLen: %v", err)
		}
		if binary.BigEndian.Uint32(f) != MaxLen {
			t.Fatalf("LEN = %d", binary.BigEndian.Uint32(f))
		}
		f, _ = AppendFrame(f, TypePing, []byte("{}"))
		rd := NewReader(iotest.HalfReader(bytes.NewReader(f)), 0)
		defer rd.Release()
		typ, p, err := rd.ReadFrame()
		if err != nil || typ != TypeRequestBodyChunk || !bytes.Equal(p, payload) {
			t.Fatalf("ReadFrame of a MaxLen frame: %v %d %v", typ, len(p), err)
		}
		typ, p, err = rd.ReadFrame()
		if err != nil || typ != TypePing || string(p) != "{}" {
			t.Fatalf("frame after the MaxLen frame: %v %q %v", typ, p, err)
		}

		var tl *TooLargeError
		big := append(payload, 0)
		if out, err := AppendFrame([]byte("x"), TypeRequestBodyChunk, big); !errors.As(err, &tl) || tl.Len != MaxLen+1 || string(out) != "x" {
			t.Fatalf("AppendFrame with LEN == MaxLen+1: %v, %d bytes", err, len(out))
		}
		b, start := BeginFrame(nil, TypeRequestBodyChunk)
		b = append(b, big...)
		if err := EndFrame(b, start); !errors.As(err, &tl) {
			t.Fatalf("EndFrame with LEN == MaxLen+1: %v", err)
		}
	})
}

func TestUnknownTypeThenValid(t *testing.T) {
	for _, size := range []int{0, 10, readBufSize - 5, readBufSize + 12345, 3 * readBufSize} {
		stream := append(header(uint32(size+1), 0xF0), bytes.Repeat([]byte{0x41}, size)...)
		stream, _ = AppendFrame(stream, TypeAgentResponse, []byte(`{"version":2,"decision":"allow"}`))
		for _, src := range []io.Reader{bytes.NewReader(stream), iotest.HalfReader(bytes.NewReader(stream))} {
			rd := NewReader(src, 0)
			_, _, err := rd.ReadFrame()
			var ut *UnknownTypeError
			if !errors.As(err, &ut) || ut.Type != 0xF0 {
				t.Fatalf("size %d: ReadFrame = %v, want *UnknownTypeError{0xf0}", size, err)
			}
			typ, p, err := rd.ReadFrame()
			if err != nil || typ != TypeAgentResponse || string(p) != `{"version":2,"decision":"allow"}` {
				t.Fatalf("size %d: frame after unknown type: %v %q %v", size, typ, p, err)
			}
			if _, _, err := rd.ReadFrame(); err != io.EOF {
				t.Fatalf("size %d: end = %v", size, err)
			}
			rd.Release()
		}
	}
	// An unknown type whose payload is cut short.
	rd := NewReader(bytes.NewReader(append(header(10, 0x99), 1, 2, 3)), 0)
	if _, _, err := rd.ReadFrame(); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated unknown frame: %v", err)
	}
}

func TestTruncatedStreams(t *testing.T) {
	var stream []byte
	sizes := []int{0, 7, 300, readBufSize, readBufSize + 1, 200000}
	for i, n := range sizes {
		stream, _ = AppendFrame(stream, TypeRequestBodyChunk, bytes.Repeat([]byte{byte(i)}, n))
	}
	var bounds []int // offsets where a frame ends
	off := 0
	for _, n := range sizes {
		off += HeaderSize + n
		bounds = append(bounds, off)
	}
	cuts := []int{0, 1, 4, 5, 6, 11, 12, 13, 16, 17}
	for _, b := range bounds {
		cuts = append(cuts, b-1, b, b+1, b+3, b+5)
	}
	for _, cut := range cuts {
		if cut > len(stream) {
			continue
		}
		complete := 0
		for _, b := range bounds {
			if b <= cut {
				complete++
			}
		}
		wantEnd := io.ErrUnexpectedEOF
		if cut == 0 || (complete > 0 && bounds[complete-1] == cut) {
			wantEnd = io.EOF
		}
		for _, src := range []io.Reader{bytes.NewReader(stream[:cut]), iotest.OneByteReader(bytes.NewReader(stream[:cut]))} {
			rd := NewReader(src, 0)
			for i := range complete {
				_, p, err := rd.ReadFrame()
				if err != nil || len(p) != sizes[i] {
					t.Fatalf("cut %d: frame %d: %d bytes, %v", cut, i, len(p), err)
				}
			}
			if _, _, err := rd.ReadFrame(); err != wantEnd {
				t.Fatalf("cut %d after %d frames: %v, want %v", cut, complete, err, wantEnd)
			}
			if _, _, err := rd.ReadFrame(); err != wantEnd {
				t.Fatalf("cut %d: error not sticky: %v", cut, err)
			}
			rd.Release()
		}
	}
}

func TestEmptyStreamAndReaderErrors(t *testing.T) {
	rd := NewReader(bytes.NewReader(nil), 0)
	if _, _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("empty stream: %v", err)
	}
	rd.Release()
	if _, _, err := rd.ReadFrame(); err == nil || err == io.EOF {
		t.Fatalf("ReadFrame after Release = %v", err)
	}
	rd.Release() // idempotent

	boom := errors.New("boom")
	f, _ := AppendFrame(nil, TypePing, []byte(`{"sequence":1}`))
	rd = NewReader(io.MultiReader(bytes.NewReader(f), iotest.ErrReader(boom)), 0)
	if _, p, err := rd.ReadFrame(); err != nil || string(p) != `{"sequence":1}` {
		t.Fatalf("frame before error: %q %v", p, err)
	}
	if _, _, err := rd.ReadFrame(); err != boom {
		t.Fatalf("reader error: %v", err)
	}
	rd.Release()

	// A large frame whose tail fails with an error.
	big := append(header(200001, TypeRequestBodyChunk), make([]byte, 1000)...)
	rd = NewReader(io.MultiReader(bytes.NewReader(big), iotest.ErrReader(boom)), 0)
	if _, _, err := rd.ReadFrame(); err != boom {
		t.Fatalf("large frame reader error: %v", err)
	}
	rd.Release()

	rd = NewReader(zeroReader{}, 0)
	if _, _, err := rd.ReadFrame(); err != io.ErrNoProgress {
		t.Fatalf("zero reader: %v", err)
	}
	rd.Release()
}

type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestAppendFrameRejectsUnknownType(t *testing.T) {
	var ut *UnknownTypeError
	if out, err := AppendFrame([]byte("x"), 0xF0, []byte("{}")); !errors.As(err, &ut) || string(out) != "x" {
		t.Fatalf("AppendFrame(0xF0) = %q, %v", out, err)
	}
	b, start := BeginFrame(nil, 0x21)
	if err := EndFrame(b, start); !errors.As(err, &ut) || ut.Type != 0x21 {
		t.Fatalf("EndFrame(0x21) = %v", err)
	}
	if (&TooLargeError{Len: 5, Max: 4}).Error() != "agentwire: frame: length 5 exceeds limit 4" {
		t.Fatal((&TooLargeError{Len: 5, Max: 4}).Error())
	}
	if ut.Error() != "agentwire: frame: unknown type Type(0x21)" {
		t.Fatal(ut.Error())
	}
}

func TestPayloadAliasesUntilNextRead(t *testing.T) {
	var stream []byte
	stream, _ = AppendFrame(stream, TypePing, []byte("first"))
	stream, _ = AppendFrame(stream, TypePing, []byte("second"))
	rd := NewReader(bytes.NewReader(stream), 0)
	defer rd.Release()
	_, p1, _ := rd.ReadFrame()
	if string(p1) != "first" || cap(p1) != len(p1) {
		t.Fatalf("p1 = %q cap %d (capacity must be clipped so appends cannot clobber the next frame)", p1, cap(p1))
	}
	_, p2, _ := rd.ReadFrame()
	if string(p2) != "second" {
		t.Fatalf("p2 = %q", p2)
	}
}
