package pbconv

// Valid UTF-8 in proto string fields.
//
// A proto3 string must be valid UTF-8, and the reference enforces it: its
// prost decoder rejects such a field, tonic reports a stream error, and the
// Rust peer's stream loop ends (the Rust SDK agent drops the whole
// ProcessStream; the Rust proxy's reader stops for good). Go strings may
// hold any bytes (an HTTP header value with obs-text, a handler's output),
// so every string this package and internal/pbwire put on the wire goes
// through ValidUTF8 first: each byte that does not begin a valid UTF-8
// sequence becomes U+FFFD, the rule the JSON encoders apply on the Unix
// socket (appendJSONString).

import (
	"unicode/utf8"

	"google.golang.org/protobuf/reflect/protoreflect"
)

const replacement = "\uFFFD"

// ValidUTF8 returns s when it is valid UTF-8, else a copy with every invalid
// byte replaced by U+FFFD.
func ValidUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(appendInvalid(make([]byte, 0, ValidUTF8Len(s)), s))
}

// ValidUTF8Len returns len(ValidUTF8(s)) without allocating.
func ValidUTF8Len(s string) int {
	if utf8.ValidString(s) {
		return len(s)
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += len(replacement)
		} else {
			n += size
		}
		i += size
	}
	return n
}

// AppendValidUTF8 appends ValidUTF8(s) to dst.
func AppendValidUTF8(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(dst, s...)
	}
	return appendInvalid(dst, s)
}

func appendInvalid(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, replacement...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return dst
}

// validStrings returns ss, or a repaired copy when an element is not valid
// UTF-8 (the caller's slice is never modified).
func validStrings(ss []string) []string {
	for i, s := range ss {
		if !utf8.ValidString(s) {
			out := make([]string, len(ss))
			copy(out, ss[:i])
			for j := i; j < len(ss); j++ {
				out[j] = ValidUTF8(ss[j])
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
				out[ValidUTF8(k)] = ValidUTF8(v)
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
						k = protoreflect.ValueOfString(ValidUTF8(k.String())).MapKey()
					}
					if strVal {
						e = protoreflect.ValueOfString(ValidUTF8(e.String()))
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
						nl.Append(protoreflect.ValueOfString(ValidUTF8(lv.Get(i).String())))
					}
					changes = append(changes, change{fd, nv})
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				changes = append(changes, change{fd, protoreflect.ValueOfString(ValidUTF8(s))})
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
