package frame

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// goldenFrame is one frame taken from testdata/golden.
type goldenFrame struct {
	name    string
	typ     Type
	payload []byte
	frame   []byte
}

// loadGolden returns every JSON and MessagePack frame of the golden vectors.
func loadGolden(tb testing.TB) []goldenFrame {
	tb.Helper()
	files, err := filepath.Glob("../../testdata/golden/*.json")
	if err != nil || len(files) == 0 {
		tb.Fatalf("no golden files: %v", err)
	}
	var out []goldenFrame
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		var recs []struct {
			Name            string  `json:"name"`
			TypeByte        *string `json:"type_byte"`
			JSONPayload     *string `json:"json_payload"`
			JSONFrameHex    *string `json:"json_frame_hex"`
			MsgpackPayload  *string `json:"msgpack_payload_hex"`
			MsgpackFrameHex *string `json:"msgpack_frame_hex"`
		}
		if err := json.Unmarshal(raw, &recs); err != nil {
			continue // manifest.json is an object, not a vector list
		}
		for _, r := range recs {
			if r.JSONFrameHex == nil {
				continue
			}
			if r.TypeByte == nil || r.JSONPayload == nil {
				tb.Fatalf("%s/%s: frame without type or payload", f, r.Name)
			}
			tv, err := strconv.ParseUint(strings.TrimPrefix(*r.TypeByte, "0x"), 16, 8)
			if err != nil {
				tb.Fatalf("%s/%s: type %q: %v", f, r.Name, *r.TypeByte, err)
			}
			out = append(out, goldenFrame{
				name:    filepath.Base(f) + "/" + r.Name + "/json",
				typ:     Type(tv),
				payload: []byte(*r.JSONPayload),
				frame:   mustHex(tb, *r.JSONFrameHex),
			})
			if r.MsgpackFrameHex != nil && r.MsgpackPayload != nil {
				out = append(out, goldenFrame{
					name:    filepath.Base(f) + "/" + r.Name + "/msgpack",
					typ:     Type(tv),
					payload: mustHex(tb, *r.MsgpackPayload),
					frame:   mustHex(tb, *r.MsgpackFrameHex),
				})
			}
		}
	}
	if len(out) < 80 {
		tb.Fatalf("only %d golden frames found", len(out))
	}
	return out
}

func mustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
