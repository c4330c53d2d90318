package pbconv

// Valid UTF-8 in proto string fields.
//
// A proto3 string must be valid UTF-8, and the reference enforces it: its
// prost decoder rejects such a field, tonic reports a stream error, and the
// Rust peer's stream loop ends (the Rust SDK agent drops the whole
// ProcessStream; the Rust proxy's reader stops for good). Go strings may
// hold any bytes (an HTTP header value with obs-text, a handler's output),
// so every string this package and internal/pbwire put on the wire goes
// through internal/wiretext first (the rule of the Unix-socket encoders).

import (
	"unicode/utf8"

	"github.com/agentwire/agentwire/internal/wiretext"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// validStrings returns ss, or a repaired copy when an element is not valid
// UTF-8 (the caller's slice is never modified).
func validStrings(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := make([]string, len(ss))
			copy(out, ss[:i])
			for j := i; j < len(ss); j++ {
				out[j] = wiretext.Valid(ss[j])
			}
			return out
		}
	}
	return ss
}

// validMap returns m, or a repaired copy when a key or value is not valid
// UTF-8 (the caller's map is never modified).
func validMap(m map[string]string) map[string]string {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			out := make(map[string]string, len(m))
			for k, v := range m {
				out[wiretext.Valid(k)] = wiretext.Valid(v)
			}
			return out
		}
	}
	return m
}

// validPB repairs the strings of m (see sanitize) and returns m.
func validPB[M protoreflect.ProtoMessage](m M) M {
	sanitize(m.ProtoReflect())
	return m
}

// sanitize repairs every string in m and its sub-messages (cold paths).
// Lists and maps are replaced, not modified, so that slices and maps the
// message shares with its caller stay untouched.
func sanitize(m protoreflect.Message) {
	type change struct {
		fd protoreflect.FieldDescriptor
		v  protoreflect.Value
	}
	var changes []change
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			mv := v.Map()
			strKey := fd.MapKey().Kind() == protoreflect.StringKind
			strVal := fd.MapValue().Kind() == protoreflect.StringKind
			bad := false
			mv.Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					sanitize(e.Message())
				}
				if (strKey && !utf8.ValidString(k.String())) || (strVal && !utf8.ValidString(e.String())) {
					bad = true
				}
				return true
			})
			if bad {
				nv := m.NewField(fd)
				nm := nv.Map()
				mv.Range(func(k protoreflect.MapKey, e protoreflect.Value) bool {
					if strKey {
						k = protoreflect.ValueOfString(wiretext.Valid(k.String())).MapKey()
					}
					if strVal {
						e = protoreflect.ValueOfString(wiretext.Valid(e.String()))
					}
					nm.Set(k, e)
					return true
				})
				changes = append(changes, change{fd, nv})
			}
		case fd.IsList():
			lv := v.List()
			switch fd.Kind() {
			case protoreflect.MessageKind:
				for i := 0; i < lv.Len(); i++ {
					sanitize(lv.Get(i).Message())
				}
			case protoreflect.StringKind:
				bad := false
				for i := 0; i < lv.Len(); i++ {
					if !utf8.ValidString(lv.Get(i).String()) {
						bad = true
						break
					}
				}
				if bad {
					nv := m.NewField(fd)
					nl := nv.List()
					for i := 0; i < lv.Len(); i++ {
						nl.Append(protoreflect.ValueOfString(wiretext.Valid(lv.Get(i).String())))
					}
					changes = append(changes, change{fd, nv})
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				changes = append(changes, change{fd, protoreflect.ValueOfString(wiretext.Valid(s))})
			}
		case fd.Kind() == protoreflect.MessageKind:
			sanitize(v.Message())
		}
		return true
	})
	for _, c := range changes {
		m.Set(c.fd, c.v)
	}
}
