package payload

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// stdDecodeStrict is the reference: base64.StdEncoding.Strict() with CR
// and LF rejected (encoding/base64 skips them, Rust's STANDARD engine
// does not).
func stdDecodeStrict(dst, src []byte) ([]byte, bool) {
	if bytes.IndexByte(src, '\n') >= 0 || bytes.IndexByte(src, '\r') >= 0 {
		return dst, false
	}
	out, err := base64.StdEncoding.Strict().AppendDecode(dst, src)
	return out, err == nil
}

func checkBase64(t *testing.T, data []byte) {
	t.Helper()
	prefix := []byte("pre")
	enc := b64AppendEncode(bytes.Clone(prefix), data)
	if want := base64.StdEncoding.AppendEncode(bytes.Clone(prefix), data); !bytes.Equal(enc, want) {
		t.Fatalf("encode %x:\n got %q\nwant %q", data, enc, want)
	}
	checkDecode(t, enc[len(prefix):])
	checkDecode(t, data) // as input to the decoder too
}

func checkDecode(t *testing.T, src []byte) {
	t.Helper()
	got, ok := b64AppendDecodeStrict([]byte("pre"), src)
	want, wantOK := stdDecodeStrict(nil, src)
	if ok != wantOK {
		t.Fatalf("decode %q: ok %v, encoding/base64 %v", src, ok, wantOK)
	}
	if !ok {
		if string(got) != "pre" {
			t.Fatalf("decode %q failed but changed dst to %q", src, got)
		}
		return
	}
	if !bytes.Equal(got[3:], want) || string(got[:3]) != "pre" {
		t.Fatalf("decode %q: got %x, want %x", src, got, want)
	}
}

// TestBase64MatchesEncodingBase64: every length up to 200 of random bytes,
// then corrupted encodings (each position replaced by every byte value,
// padding moved, CR/LF inserted), against encoding/base64.
func TestBase64MatchesEncodingBase64(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n <= 200; n++ {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		checkBase64(t, data)
	}
	for _, n := range []int{1, 2, 3, 7, 8, 9, 14} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		enc := base64.StdEncoding.EncodeToString(data)
		for pos := range enc {
			for c := 0; c < 256; c++ {
				b := []byte(enc)
				b[pos] = byte(c)
				checkDecode(t, b)
			}
		}
		checkDecode(t, []byte(enc+"\n"))
		checkDecode(t, []byte("\r\n"+enc))
		checkDecode(t, []byte(enc[:len(enc)-1]))
		checkDecode(t, []byte(enc+"===="))
	}
	for _, s := range []string{"", "=", "==", "===", "====", "A===", "AA==", "AB==", "AAA=", "AAB=", "QQ==QQ==", "QUFB", "QUFBQUFBQUE=", "QUFBQUFBQUFB"} {
		checkDecode(t, []byte(s))
	}
}

func FuzzBase64(f *testing.F) {
	f.Add([]byte("hello, world"))
	f.Add([]byte("QUFBQUFBQUE="))
	f.Add([]byte("AB=="))
	f.Fuzz(func(t *testing.T, data []byte) { checkBase64(t, data) })
}

// BenchmarkBase64: 64 KiB body chunks each way, this package's codec
// against encoding/base64 (MB/s of raw bytes).
func BenchmarkBase64(b *testing.B) {
	data := make([]byte, 64<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.AppendEncode(nil, data)
	buf := make([]byte, 0, len(enc)+16)
	b.Run("encode/agentwire", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf = b64AppendEncode(buf[:0], data)
		}
	})
	b.Run("encode/encoding_base64", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf = base64.StdEncoding.AppendEncode(buf[:0], data)
		}
	})
	b.Run("decode/agentwire", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf, _ = b64AppendDecodeStrict(buf[:0], enc)
		}
	})
	b.Run("decode/encoding_base64", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf, _ = stdDecodeStrict(buf[:0], enc)
		}
	})
}

// jsonChunkWithData returns a request body chunk payload whose "data"
// string literal is lit (quotes included).
func jsonChunkWithData(lit string) []byte {
	return []byte(`{"bytes_received":3,"chunk_index":0,"correlation_id":"c","data":` + lit + `,"is_last":true,"total_size":null}`)
}

// checkJSONData decodes a chunk whose data literal is lit and compares the
// outcome with encoding/json's reading of the literal followed by the
// strict reference decoder.
func checkJSONData(t *testing.T, lit string) {
	t.Helper()
	var s string
	refErr := json.Unmarshal([]byte(lit), &s)
	want, wantOK := stdDecodeStrict(nil, []byte(s))
	wantOK = wantOK && refErr == nil
	c := BodyChunk{Data: []byte("dirty dirty dirty")}
	err := DecodeRequestBodyChunkJSON(jsonChunkWithData(lit), &c)
	if (err == nil) != wantOK {
		t.Fatalf("data %s: error %v, reference accepts: %v", lit, err, wantOK)
	}
	if err == nil && !bytes.Equal(c.Data, want) {
		t.Fatalf("data %s: got %x, want %x", lit, c.Data, want)
	}
}

// TestJSONBase64DataFastPath: the body data fast path (decode up to the
// next quote) agrees with unescaping first: escapes that spell base64
// characters, an escaped quote, control characters and non-ASCII bytes.
func TestJSONBase64DataFastPath(t *testing.T) {
	for _, lit := range []string{
		`""`, `"QUFB"`, `"QUFBQQ=="`, `"\u0051UFB"`, `"QUF\u0042"`, `"a\/b+"`, `"QUFBQQ\u003d="`,
		`"QU\"FB"`, `"QUFB\\"`, `"QUFB\n"`, "\"QUFB\x01\"", "\"QU\xc3\xa9B\"", `"QUFB" `, `"QUF"`, `"QUFB`, `"QUFB\"`,
		`"Q\u0055FB"`, `"\r\nQUFB"`, `"QUFB\r\n"`, `"QUFB\u000a"`,
	} {
		checkJSONData(t, lit)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for range 2000 {
		data := make([]byte, r.IntN(40))
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		enc := []byte(base64.StdEncoding.EncodeToString(data))
		var b strings.Builder
		b.WriteByte('"')
		for _, ch := range enc {
			switch r.IntN(12) {
			case 0:
				fmt.Fprintf(&b, `\u%04x`, ch)
			case 1:
				if ch == '/' {
					b.WriteString(`\/`)
					continue
				}
				b.WriteByte(ch)
			case 2:
				b.WriteByte(byte(r.IntN(128))) // maybe a quote, backslash or control
			default:
				b.WriteByte(ch)
			}
		}
		b.WriteByte('"')
		lit := b.String()
		if !json.Valid([]byte(lit)) {
			continue // the whole payload would be invalid for both
		}
		checkJSONData(t, lit)
	}
}
