package gwconfig

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file is a parser for the subset of KDL (https://kdl.dev) that
// Zentinel configuration files use, in both KDL 1 and KDL 2 spellings (the
// Rust proxy's kdl crate reads either):
//
//   - nodes: a name (bare identifier or string), arguments, properties
//     (key=value, spaces around "=" allowed), an optional children block
//     in braces; a node ends at a newline, ";", "}" or the end of input;
//   - values: strings with escapes (\n \r \t \\ \" \/ \b \f \s, \u{hex}
//     and KDL 2's escaped whitespace), raw strings (r"..", r#".."#,
//     #".."#), bare identifiers as strings (KDL 2), integers (decimal,
//     0x, 0o, 0b, with "_" separators) and floats, true/false/null and
//     #true/#false/#null, #inf, #-inf, #nan;
//   - comments: "//" to the end of the line, nested "/* */", and "/-"
//     (slashdash), which comments out the next node, argument, property
//     or children block; "\" continues a node on the next line;
//   - type annotations such as (u8)5 or (author)node are accepted and
//     ignored.
//
// Not supported (a clear error): KDL 2 multi-line strings ("""...""").
// The parser never panics; nesting is limited to maxDepth levels and the
// input to MaxSize bytes, so memory use is linear in the input.

// MaxSize is the largest configuration file Parse accepts.
const MaxSize = 4 << 20

// maxDepth is the deepest nesting of children blocks.
const maxDepth = 64

// maxRawHashes bounds the # of a raw string's delimiter (r##"..."##), so
// that looking for the closing delimiter stays linear in the input.
const maxRawHashes = 16

// ValueKind is the type of a KDL value.
type ValueKind uint8

// Value kinds.
const (
	KindString ValueKind = iota
	KindInt
	KindFloat
	KindBool
	KindNull
)

// String returns the kind's name as used in error messages.
func (k ValueKind) String() string {
	switch k {
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindFloat:
		return "number"
	case KindBool:
		return "boolean"
	case KindNull:
		return "null"
	}
	return "value"
}

// Value is one KDL value.
type Value struct {
	Kind  ValueKind
	Str   string  // KindString
	Int   int64   // KindInt
	Float float64 // KindFloat
	Bool  bool    // KindBool
	Line  int     // where the value starts (1-based)
}

// Prop is a property key=value.
type Prop struct {
	Key   string
	Value Value
}

// Node is one KDL node.
type Node struct {
	Name     string
	Line     int // where the node's name is (1-based)
	Args     []Value
	Props    []Prop // in order; a repeated key is kept (the last one counts)
	Children []*Node
	// Block is true when the node has a children block, even an empty one.
	Block bool
}

// Prop returns the last property named key.
func (n *Node) Prop(key string) (Value, bool) {
	for i := len(n.Props) - 1; i >= 0; i-- {
		if n.Props[i].Key == key {
			return n.Props[i].Value, true
		}
	}
	return Value{}, false
}

// SyntaxError is a KDL syntax error at a line and column (1-based; the
// column counts characters).
type SyntaxError struct {
	Line, Col int
	Msg       string
}

// Error implements error: "line L, column C: MSG".
func (e *SyntaxError) Error() string {
	return "line " + strconv.Itoa(e.Line) + ", column " + strconv.Itoa(e.Col) + ": " + e.Msg
}

// parseKDL parses a KDL document into its top-level nodes.
func parseKDL(src []byte) ([]*Node, error) {
	if len(src) > MaxSize {
		return nil, &SyntaxError{Line: 1, Col: 1, Msg: "file larger than " + strconv.Itoa(MaxSize) + " bytes"}
	}
	if !utf8.Valid(src) {
		p := &kdlParser{src: src, line: 1}
		for p.pos < len(src) {
			r, size := utf8.DecodeRune(src[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return nil, p.errf("invalid UTF-8")
			}
			p.advance(size, r)
		}
	}
	p := &kdlParser{src: src, line: 1, lineStart: 0}
	if len(src) >= 3 && src[0] == 0xEF && src[1] == 0xBB && src[2] == 0xBF {
		p.pos = 3
		p.lineStart = 3
	}
	return p.nodes(false)
}

type kdlParser struct {
	src       []byte
	pos       int
	line      int
	lineStart int // byte offset where the current line starts
	depth     int
	lastNL    rune // the previous newline rune, to count \r\n once
}

func (p *kdlParser) errf(msg string) *SyntaxError {
	col := 1 + utf8.RuneCount(p.src[p.lineStart:min(p.pos, len(p.src))])
	return &SyntaxError{Line: p.line, Col: col, Msg: msg}
}

func (p *kdlParser) errAt(line int, msg string) *SyntaxError {
	return &SyntaxError{Line: line, Col: 1, Msg: msg}
}

// peekRune returns the rune at pos and its size (0 at the end).
func (p *kdlParser) peekRune() (rune, int) {
	if p.pos >= len(p.src) {
		return -1, 0
	}
	if c := p.src[p.pos]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRune(p.src[p.pos:])
}

func (p *kdlParser) hasPrefix(s string) bool {
	if len(p.src)-p.pos < len(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if p.src[p.pos+i] != s[i] {
			return false
		}
	}
	return true
}

// advance moves past one rune, counting lines.
func (p *kdlParser) advance(size int, r rune) {
	p.pos += size
	if isNewline(r) {
		if r == '\n' && p.lastNL == '\r' && p.lineStart == p.pos-1 {
			// The \n of a \r\n: the line was counted at the \r.
			p.lineStart = p.pos
			p.lastNL = 0
			return
		}
		p.line++
		p.lineStart = p.pos
		p.lastNL = r
		return
	}
	p.lastNL = 0
}

func isNewline(r rune) bool {
	switch r {
	case '\n', '\r', 0x0B, 0x0C, 0x85, 0x2028, 0x2029:
		return true
	}
	return false
}

func isSpace(r rune) bool {
	switch r {
	case '\t', ' ', 0xA0, 0x1680, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// isIdentRune reports whether r may appear in a bare identifier.
func isIdentRune(r rune) bool {
	if r <= 0x20 || r == 0x7F || isSpace(r) || isNewline(r) {
		return false
	}
	switch r {
	case '\\', '/', '(', ')', '{', '}', '<', '>', ';', '[', ']', '=', ',', '"', '#':
		return false
	}
	// Direction-control and other invisible format characters are not
	// allowed in identifiers (KDL 2).
	if r >= 0x200E && r <= 0x200F || r >= 0x202A && r <= 0x202E || r >= 0x2066 && r <= 0x2069 {
		return false
	}
	return true
}

// skipBlockComment skips a (nested) /* */ comment starting at pos.
func (p *kdlParser) skipBlockComment() error {
	startLine := p.line
	p.pos += 2
	depth := 1
	for depth > 0 {
		if p.pos >= len(p.src) {
			return p.errAt(startLine, "unterminated /* comment")
		}
		switch {
		case p.hasPrefix("/*"):
			depth++
			p.pos += 2
		case p.hasPrefix("*/"):
			depth--
			p.pos += 2
		default:
			r, size := p.peekRune()
			p.advance(size, r)
		}
	}
	return nil
}

// skipLineComment skips a // comment, not its newline.
func (p *kdlParser) skipLineComment() {
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		if isNewline(r) {
			return
		}
		p.advance(size, r)
	}
}

// skipLineSpace skips whitespace, newlines, comments and stray ";"
// between nodes.
func (p *kdlParser) skipLineSpace() error {
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		switch {
		case isSpace(r) || isNewline(r) || r == ';':
			p.advance(size, r)
		case p.hasPrefix("//"):
			p.skipLineComment()
		case p.hasPrefix("/*"):
			if err := p.skipBlockComment(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

// skipNodeSpace skips whitespace, block comments and line continuations
// inside a node and reports whether it skipped anything.
func (p *kdlParser) skipNodeSpace() (bool, error) {
	skipped := false
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		switch {
		case isSpace(r):
			p.advance(size, r)
		case p.hasPrefix("/*"):
			if err := p.skipBlockComment(); err != nil {
				return skipped, err
			}
		case r == '\\':
			// Line continuation: "\" then spaces, an optional // comment
			// and a newline (or the end of input).
			p.advance(size, r)
			for {
				r, size = p.peekRune()
				if size == 0 || !isSpace(r) {
					break
				}
				p.advance(size, r)
			}
			if p.hasPrefix("//") {
				p.skipLineComment()
			}
			r, size = p.peekRune()
			if size != 0 && !isNewline(r) {
				return skipped, p.errf("line continuation \\ must be followed by a newline")
			}
			if size != 0 {
				p.advance(size, r)
			}
		default:
			return skipped, nil
		}
		skipped = true
	}
	return skipped, nil
}

// nodes parses nodes until the end of input (top level) or the "}" that
// closes the current block.
func (p *kdlParser) nodes(inBlock bool) ([]*Node, error) {
	var out []*Node
	openLine := p.line
	for {
		if err := p.skipLineSpace(); err != nil {
			return nil, err
		}
		r, size := p.peekRune()
		if size == 0 {
			if inBlock {
				return nil, p.errAt(openLine, "{ is never closed")
			}
			return out, nil
		}
		if r == '}' {
			if !inBlock {
				return nil, p.errf("} without a matching {")
			}
			p.advance(size, r)
			return out, nil
		}
		slashdash := false
		if p.hasPrefix("/-") {
			slashdash = true
			p.pos += 2
			if err := p.skipLineSpace(); err != nil {
				return nil, err
			}
		}
		n, err := p.node()
		if err != nil {
			return nil, err
		}
		if !slashdash {
			out = append(out, n)
		}
	}
}

// typeAnnotation skips a "(type)" annotation when there is one.
func (p *kdlParser) typeAnnotation() error {
	if r, _ := p.peekRune(); r != '(' {
		return nil
	}
	p.pos++
	if _, err := p.skipNodeSpace(); err != nil {
		return err
	}
	if _, err := p.stringOrIdent(); err != nil {
		return err
	}
	if _, err := p.skipNodeSpace(); err != nil {
		return err
	}
	if r, _ := p.peekRune(); r != ')' {
		return p.errf("expected ) to close the type annotation")
	}
	p.pos++
	return nil
}

// node parses one node, up to and including its terminator (a "}" that
// closes the parent is left for the caller).
func (p *kdlParser) node() (*Node, error) {
	if err := p.typeAnnotation(); err != nil {
		return nil, err
	}
	line := p.line
	name, err := p.stringOrIdent()
	if err != nil {
		return nil, err
	}
	n := &Node{Name: name, Line: line}
	for {
		spaced, err := p.skipNodeSpace()
		if err != nil {
			return nil, err
		}
		r, size := p.peekRune()
		switch {
		case size == 0:
			return n, nil
		case isNewline(r) || r == ';':
			p.advance(size, r)
			return n, nil
		case r == '}':
			return n, nil
		case p.hasPrefix("//"):
			p.skipLineComment()
			continue
		case r == '{':
			if err := p.children(n, false); err != nil {
				return nil, err
			}
			return n, p.afterChildren()
		case p.hasPrefix("/-"):
			p.pos += 2
			if _, err := p.skipLineSpaceInNode(); err != nil {
				return nil, err
			}
			if r, _ := p.peekRune(); r == '{' {
				if err := p.children(n, true); err != nil {
					return nil, err
				}
				continue
			}
			if err := p.entry(&Node{}); err != nil {
				return nil, err
			}
			continue
		}
		if !spaced {
			return nil, p.errf("expected a space, a newline or ; after " + strconv.Quote(n.Name) + "'s previous entry")
		}
		if n.Block {
			return nil, p.errf("arguments after a children block")
		}
		if err := p.entry(n); err != nil {
			return nil, err
		}
	}
}

// skipLineSpaceInNode skips the space after a slashdash inside a node
// (newlines included, as KDL 2 allows).
func (p *kdlParser) skipLineSpaceInNode() (bool, error) {
	skipped := false
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		switch {
		case isSpace(r) || isNewline(r):
			p.advance(size, r)
		case p.hasPrefix("/*"):
			if err := p.skipBlockComment(); err != nil {
				return skipped, err
			}
		default:
			return skipped, nil
		}
		skipped = true
	}
	return skipped, nil
}

// children parses a children block into n (or discards it).
func (p *kdlParser) children(n *Node, discard bool) error {
	if p.depth >= maxDepth {
		return p.errf("children blocks nested deeper than " + strconv.Itoa(maxDepth) + " levels")
	}
	p.pos++ // {
	p.depth++
	kids, err := p.nodes(true)
	p.depth--
	if err != nil {
		return err
	}
	if !discard {
		if n.Block {
			return p.errf("node " + strconv.Quote(n.Name) + " has two children blocks")
		}
		n.Block = true
		n.Children = kids
	}
	return nil
}

// afterChildren checks what follows a children block: only space,
// comments, slashdashed blocks and the node's terminator.
func (p *kdlParser) afterChildren() error {
	for {
		if _, err := p.skipNodeSpace(); err != nil {
			return err
		}
		r, size := p.peekRune()
		switch {
		case size == 0 || r == '}':
			return nil
		case isNewline(r) || r == ';':
			p.advance(size, r)
			return nil
		case p.hasPrefix("//"):
			p.skipLineComment()
		case p.hasPrefix("/-"):
			p.pos += 2
			if _, err := p.skipLineSpaceInNode(); err != nil {
				return err
			}
			if r, _ := p.peekRune(); r != '{' {
				return p.errf("only a children block may follow a children block")
			}
			if err := p.children(nil, true); err != nil {
				return err
			}
		default:
			return p.errf("unexpected text after a children block")
		}
	}
}

// entry parses an argument or a property into n.
func (p *kdlParser) entry(n *Node) error {
	if err := p.typeAnnotation(); err != nil {
		return err
	}
	line := p.line
	r, _ := p.peekRune()
	bare := p.isIdentStart()
	if !bare && r != '"' && !((r == '#' || r == 'r') && p.isRawStart()) {
		v, err := p.value()
		if err != nil {
			return err
		}
		n.Args = append(n.Args, v)
		return nil
	}
	// A string or identifier: a property key when "=" follows.
	var s string
	var err error
	if bare {
		s, err = p.ident()
	} else if r == '"' {
		s, err = p.quoted()
	} else {
		s, err = p.raw()
	}
	if err != nil {
		return err
	}
	save, saveLine, saveStart, saveNL := p.pos, p.line, p.lineStart, p.lastNL
	if _, err := p.skipNodeSpace(); err != nil {
		return err
	}
	if r, _ := p.peekRune(); r == '=' {
		if bare && (s == "true" || s == "false" || s == "null") {
			return p.errf(strconv.Quote(s) + " cannot be a property name; quote it")
		}
		p.pos++
		if _, err := p.skipNodeSpace(); err != nil {
			return err
		}
		if err := p.typeAnnotation(); err != nil {
			return err
		}
		v, err := p.value()
		if err != nil {
			return err
		}
		n.Props = append(n.Props, Prop{Key: s, Value: v})
		return nil
	}
	// An argument: give the space back to node(), which needs to see it.
	p.pos, p.line, p.lineStart, p.lastNL = save, saveLine, saveStart, saveNL
	v := Value{Kind: KindString, Str: s, Line: line}
	if bare {
		switch s {
		case "true", "false":
			v = Value{Kind: KindBool, Bool: s == "true", Line: line}
		case "null":
			v = Value{Kind: KindNull, Line: line}
		}
	}
	n.Args = append(n.Args, v)
	return nil
}

// isRawStart reports whether a raw string starts at pos: r" r#" #" ##"...
func (p *kdlParser) isRawStart() bool {
	i := p.pos
	if i < len(p.src) && p.src[i] == 'r' {
		i++
	}
	for i < len(p.src) && p.src[i] == '#' {
		i++
	}
	return i < len(p.src) && p.src[i] == '"' && i > p.pos
}

// isIdentStart reports whether a bare identifier starts at pos (not a
// number: no digit first, nor a sign or dot followed by a digit).
func (p *kdlParser) isIdentStart() bool {
	r, size := p.peekRune()
	if size == 0 || !isIdentRune(r) || (r >= '0' && r <= '9') {
		return false
	}
	if r == 'r' && p.isRawStart() {
		return false
	}
	if r == '+' || r == '-' || r == '.' {
		next := p.pos + 1
		if (r == '+' || r == '-') && next < len(p.src) && p.src[next] == '.' {
			next++
		}
		if next < len(p.src) && p.src[next] >= '0' && p.src[next] <= '9' {
			return false
		}
	}
	return true
}

// stringOrIdent parses a node name or property key.
func (p *kdlParser) stringOrIdent() (string, error) {
	r, size := p.peekRune()
	switch {
	case size == 0:
		return "", p.errf("expected a name, found the end of the file")
	case r == '"':
		return p.quoted()
	case (r == '#' || r == 'r') && p.isRawStart():
		return p.raw()
	case p.isIdentStart():
		s, err := p.ident()
		if err != nil {
			return "", err
		}
		if s == "true" || s == "false" || s == "null" {
			return "", p.errf(strconv.Quote(s) + " cannot be a name; quote it")
		}
		return s, nil
	}
	return "", p.errf("expected a name, found " + strconv.QuoteRune(r))
}

// ident parses a bare identifier.
func (p *kdlParser) ident() (string, error) {
	start := p.pos
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		if !isIdentRune(r) {
			break
		}
		p.advance(size, r)
	}
	if p.pos == start {
		return "", p.errf("expected an identifier")
	}
	return string(p.src[start:p.pos]), nil
}

// value parses an argument or property value.
func (p *kdlParser) value() (Value, error) {
	line := p.line
	r, size := p.peekRune()
	switch {
	case size == 0:
		return Value{}, p.errf("expected a value, found the end of the file")
	case r == '"':
		s, err := p.quoted()
		return Value{Kind: KindString, Str: s, Line: line}, err
	case (r == '#' || r == 'r') && p.isRawStart():
		s, err := p.raw()
		return Value{Kind: KindString, Str: s, Line: line}, err
	case r == '#':
		return p.keyword(line)
	case r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.':
		if !p.isIdentStart() {
			return p.number(line)
		}
	}
	if p.isIdentStart() {
		s, err := p.ident()
		if err != nil {
			return Value{}, err
		}
		switch s {
		case "true", "false":
			return Value{Kind: KindBool, Bool: s == "true", Line: line}, nil
		case "null":
			return Value{Kind: KindNull, Line: line}, nil
		}
		return Value{Kind: KindString, Str: s, Line: line}, nil
	}
	return Value{}, p.errf("expected a value, found " + strconv.QuoteRune(r))
}

// keyword parses #true, #false, #null, #inf, #-inf, #nan.
func (p *kdlParser) keyword(line int) (Value, error) {
	start := p.pos
	p.pos++ // #
	for p.pos < len(p.src) {
		r, size := p.peekRune()
		if !isIdentRune(r) {
			break
		}
		p.advance(size, r)
	}
	switch string(p.src[start:p.pos]) {
	case "#true":
		return Value{Kind: KindBool, Bool: true, Line: line}, nil
	case "#false":
		return Value{Kind: KindBool, Line: line}, nil
	case "#null":
		return Value{Kind: KindNull, Line: line}, nil
	case "#inf":
		return Value{Kind: KindFloat, Float: math.Inf(1), Line: line}, nil
	case "#-inf":
		return Value{Kind: KindFloat, Float: math.Inf(-1), Line: line}, nil
	case "#nan":
		return Value{Kind: KindFloat, Float: math.NaN(), Line: line}, nil
	}
	p.pos = start
	return Value{}, p.errf("unknown keyword " + strconv.Quote(string(p.src[start:min(len(p.src), start+16)])))
}

// number parses an integer or a float.
func (p *kdlParser) number(line int) (Value, error) {
	start := p.pos
	for p.pos < len(p.src) {
		c := p.src[p.pos]
		if c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.' ||
			((c == '+' || c == '-') && (p.pos == start || p.src[p.pos-1] == 'e' || p.src[p.pos-1] == 'E')) {
			p.pos++
			continue
		}
		break
	}
	text := string(p.src[start:p.pos])
	if r, size := p.peekRune(); size != 0 && isIdentRune(r) {
		return Value{}, p.errf("invalid number " + strconv.Quote(text+string(r)))
	}
	bad := func() (Value, error) {
		p.pos = start
		return Value{}, p.errf("invalid number " + strconv.Quote(text))
	}
	body, neg := text, false
	if body[0] == '+' || body[0] == '-' {
		neg = body[0] == '-'
		body = body[1:]
	}
	base := 10
	switch {
	case strings.HasPrefix(body, "0x"):
		base, body = 16, body[2:]
	case strings.HasPrefix(body, "0o"):
		base, body = 8, body[2:]
	case strings.HasPrefix(body, "0b"):
		base, body = 2, body[2:]
	}
	if body == "" || body[0] == '_' {
		return bad()
	}
	digits := strings.ReplaceAll(body, "_", "")
	if base != 10 || !strings.ContainsAny(digits, ".eE") {
		for _, c := range digits {
			if digitValue(c) >= base {
				return bad()
			}
		}
		u, err := strconv.ParseUint(digits, base, 64)
		if err != nil || (!neg && u > math.MaxInt64) || (neg && u > 1<<63) {
			p.pos = start
			return Value{}, p.errf("integer " + text + " out of range")
		}
		v := int64(u)
		if neg {
			v = -v
		}
		return Value{Kind: KindInt, Int: v, Line: line}, nil
	}
	// Decimal float: digits [. digits] [e [sign] digits].
	mant, exp, hasExp := digits, "", false
	if i := strings.IndexAny(digits, "eE"); i >= 0 {
		mant, exp, hasExp = digits[:i], digits[i+1:], true
	}
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if !allDigits(intPart) || (hasDot && !allDigits(frac)) || strings.Contains(body, "._") {
		return bad()
	}
	if hasExp {
		e := strings.TrimLeft(exp, "+-")
		if len(exp)-len(e) > 1 || !allDigits(e) {
			return bad()
		}
	}
	f, err := strconv.ParseFloat(digits, 64)
	if err != nil && !isRangeErr(err) {
		return bad()
	}
	if neg {
		f = -f
	}
	return Value{Kind: KindFloat, Float: f, Line: line}, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func digitValue(c rune) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return 99
}

// quoted parses a "..." string with escapes.
func (p *kdlParser) quoted() (string, error) {
	if p.hasPrefix(`"""`) {
		return "", p.errf(`multi-line strings (""") are not supported; use a string with \n escapes`)
	}
	startLine := p.line
	p.pos++ // "
	var b strings.Builder
	for {
		if p.pos >= len(p.src) {
			return "", p.errAt(startLine, "unterminated string")
		}
		r, size := p.peekRune()
		switch r {
		case '"':
			p.pos++
			return b.String(), nil
		case '\\':
			p.pos++
			if err := p.escape(&b); err != nil {
				return "", err
			}
		default:
			b.WriteString(string(p.src[p.pos : p.pos+size]))
			p.advance(size, r)
		}
	}
}

// escape parses the escape after a backslash inside a string.
func (p *kdlParser) escape(b *strings.Builder) error {
	r, size := p.peekRune()
	if size == 0 {
		return p.errf("unterminated string")
	}
	if c, ok := simpleEscape(r); ok {
		p.pos++
		b.WriteByte(c)
		return nil
	}
	if isSpace(r) || isNewline(r) {
		// KDL 2 whitespace escape: the backslash and all whitespace after
		// it are dropped.
		for {
			r, size = p.peekRune()
			if size == 0 || !(isSpace(r) || isNewline(r)) {
				return nil
			}
			p.advance(size, r)
		}
	}
	if r == 'u' {
		p.pos++
		if r, _ := p.peekRune(); r != '{' {
			return p.errf(`\u must be followed by {hex}`)
		}
		p.pos++
		start := p.pos
		for p.pos < len(p.src) && p.pos-start <= 6 && p.src[p.pos] != '}' {
			p.pos++
		}
		hexDigits := string(p.src[start:min(p.pos, len(p.src))])
		if p.pos >= len(p.src) || p.src[p.pos] != '}' || hexDigits == "" || len(hexDigits) > 6 {
			return p.errf(`invalid \u{...} escape`)
		}
		p.pos++
		v, err := strconv.ParseUint(hexDigits, 16, 32)
		if err != nil || v > utf8.MaxRune || (v >= 0xD800 && v <= 0xDFFF) {
			return p.errf(`invalid \u{...} escape`)
		}
		b.WriteRune(rune(v))
		return nil
	}
	return p.errf("invalid escape \\" + string(r))
}

// raw parses a raw string: r"..", r#".."#, #".."#, ##".."## ...
func (p *kdlParser) raw() (string, error) {
	startLine := p.line
	if p.src[p.pos] == 'r' {
		p.pos++
	}
	hashes := 0
	for p.pos < len(p.src) && p.src[p.pos] == '#' {
		hashes++
		p.pos++
	}
	if hashes > maxRawHashes {
		return "", p.errf("raw string with more than " + strconv.Itoa(maxRawHashes) + " #")
	}
	if p.hasPrefix(`"""`) {
		return "", p.errf(`multi-line raw strings are not supported`)
	}
	p.pos++ // "
	closing := `"` + strings.Repeat("#", hashes)
	start := p.pos
	for {
		if p.pos >= len(p.src) {
			return "", p.errAt(startLine, "unterminated raw string")
		}
		if p.hasPrefix(closing) {
			s := string(p.src[start:p.pos])
			p.pos += len(closing)
			return s, nil
		}
		r, size := p.peekRune()
		p.advance(size, r)
	}
}

// simpleEscape returns the character a one-letter escape stands for.
func simpleEscape(r rune) (byte, bool) {
	switch r {
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case '\\':
		return '\\', true
	case '"':
		return '"', true
	case '/':
		return '/', true
	case 'b':
		return '\b', true
	case 'f':
		return '\f', true
	case 's':
		return ' ', true
	}
	return 0, false
}
