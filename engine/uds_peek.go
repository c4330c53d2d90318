package engine

// Routing-id scan of JSON replies (SPEC 6.5).
//
// A reply is routed by audit.custom.correlation_id. Decoding the reply just
// to learn that id would either copy every string (and decode twice) or
// leave strings pointing into the frame reader's buffer, so the reader
// first locates the id's bytes with this scan, claims the waiting request
// with a view of them, and only then decodes the reply, once, into the
// caller's destination.
//
// The scan follows the shapes serde_json accepts for an AgentResponse —
// an object, or the array form whose sixth element is the audit struct
// (itself an object or an array whose fifth element is custom) — and skips
// every other value without validating it: the full decoder that runs
// afterwards does that. Anything unusual (an escaped key, an id that is not
// a string, a truncated document) makes the scan give up, and the caller
// falls back to decoding the reply in full.

// replyIDJSON returns the position of audit.custom.correlation_id's string
// body (between the quotes) in the JSON reply p. escaped reports that the
// body contains escape sequences and must be unescaped before use. As in a
// Rust HashMap, a repeated correlation_id key counts by its last value. ok
// is false when the scan cannot tell (see above). It never allocates.
func replyIDJSON(p []byte) (start, end int, escaped, ok bool) {
	i := jsonSkipWS(p, 0)
	if i >= len(p) {
		return 0, 0, false, false
	}
	var at int
	switch p[i] {
	case '{':
		at, ok = jsonObjectField(p, i, "audit")
	case '[':
		at, ok = jsonArrayElem(p, i, 5)
	}
	if !ok {
		return 0, 0, false, false
	}
	switch p[at] {
	case '{':
		at, ok = jsonObjectField(p, at, "custom")
	case '[':
		at, ok = jsonArrayElem(p, at, 4)
	default:
		ok = false
	}
	if !ok || p[at] != '{' {
		return 0, 0, false, false
	}
	// Walk custom to its end: the last correlation_id wins.
	found := false
	i = at + 1
	for {
		i = jsonSkipWS(p, i)
		if i >= len(p) {
			return 0, 0, false, false
		}
		if p[i] == '}' {
			break
		}
		if p[i] != '"' {
			return 0, 0, false, false
		}
		ks, ke, kesc, kok := jsonStringBody(p, i)
		if !kok || kesc {
			return 0, 0, false, false
		}
		i = jsonSkipWS(p, ke+1)
		if i >= len(p) || p[i] != ':' {
			return 0, 0, false, false
		}
		i = jsonSkipWS(p, i+1)
		if i >= len(p) {
			return 0, 0, false, false
		}
		if string(p[ks:ke]) == "correlation_id" {
			if p[i] != '"' {
				found = false // not a string: the Rust proxy routes it to ""
				if i, ok = jsonSkipValue(p, i); !ok {
					return 0, 0, false, false
				}
			} else {
				vs, ve, vesc, vok := jsonStringBody(p, i)
				if !vok {
					return 0, 0, false, false
				}
				start, end, escaped, found = vs, ve, vesc, true
				i = ve + 1
			}
		} else if i, ok = jsonSkipValue(p, i); !ok {
			return 0, 0, false, false
		}
		i = jsonSkipWS(p, i)
		if i >= len(p) {
			return 0, 0, false, false
		}
		switch p[i] {
		case ',':
			i++
		case '}':
			return start, end, escaped, found
		default:
			return 0, 0, false, false
		}
	}
	return start, end, escaped, found
}

// jsonObjectField returns the position of the value of the first key name
// in the object starting at p[i] == '{'.
func jsonObjectField(p []byte, i int, name string) (int, bool) {
	i++
	for {
		i = jsonSkipWS(p, i)
		if i >= len(p) || p[i] == '}' || p[i] != '"' {
			return 0, false
		}
		ks, ke, kesc, ok := jsonStringBody(p, i)
		if !ok || kesc {
			return 0, false
		}
		i = jsonSkipWS(p, ke+1)
		if i >= len(p) || p[i] != ':' {
			return 0, false
		}
		i = jsonSkipWS(p, i+1)
		if i >= len(p) {
			return 0, false
		}
		if string(p[ks:ke]) == name {
			return i, true
		}
		if i, ok = jsonSkipValue(p, i); !ok {
			return 0, false
		}
		i = jsonSkipWS(p, i)
		if i >= len(p) || p[i] != ',' {
			return 0, false
		}
		i++
	}
}

// jsonArrayElem returns the position of element n (0-based) of the array
// starting at p[i] == '['.
func jsonArrayElem(p []byte, i, n int) (int, bool) {
	i++
	for k := 0; ; k++ {
		i = jsonSkipWS(p, i)
		if i >= len(p) || p[i] == ']' {
			return 0, false
		}
		if k == n {
			return i, true
		}
		var ok bool
		if i, ok = jsonSkipValue(p, i); !ok {
			return 0, false
		}
		i = jsonSkipWS(p, i)
		if i >= len(p) || p[i] != ',' {
			return 0, false
		}
		i++
	}
}

// jsonStringBody returns the body of the string starting at p[i] == '"':
// p[start:end] lies between the quotes.
func jsonStringBody(p []byte, i int) (start, end int, escaped, ok bool) {
	start = i + 1
	for j := start; j < len(p); j++ {
		switch p[j] {
		case '"':
			return start, j, escaped, true
		case '\\':
			escaped = true
			j++
		}
	}
	return 0, 0, false, false
}

// jsonSkipValue returns the position just after the value starting at p[i].
// Containers are skipped by bracket depth (strings inside them are skipped
// whole); scalars up to the next delimiter.
func jsonSkipValue(p []byte, i int) (int, bool) {
	switch p[i] {
	case '"':
		_, end, _, ok := jsonStringBody(p, i)
		return end + 1, ok
	case '{', '[':
		depth := 0
		for j := i; j < len(p); j++ {
			switch p[j] {
			case '"':
				_, end, _, ok := jsonStringBody(p, j)
				if !ok {
					return 0, false
				}
				j = end
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(p) {
		switch p[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j, j > i
		}
		j++
	}
	return j, j > i
}

func jsonSkipWS(p []byte, i int) int {
	for i < len(p) {
		switch p[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}
