package gwconfig

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

// dump renders nodes compactly: name(args;props){children}, values with
// their kind, for comparing parse results.
func dump(nodes []*Node) string {
	var b strings.Builder
	for i, n := range nodes {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.Name)
		b.WriteByte('(')
		for j, a := range n.Args {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(dumpValue(a))
		}
		for _, p := range n.Props {
			b.WriteString(";" + p.Key + "=" + dumpValue(p.Value))
		}
		b.WriteByte(')')
		if n.Block {
			b.WriteString("{" + dump(n.Children) + "}")
		}
	}
	return b.String()
}

func dumpValue(v Value) string {
	switch v.Kind {
	case KindString:
		s, _ := json.Marshal(v.Str)
		return string(s)
	case KindInt:
		return "i" + itoa(v.Int)
	case KindFloat:
		switch {
		case math.IsInf(v.Float, 1):
			return "f+inf"
		case math.IsInf(v.Float, -1):
			return "f-inf"
		case math.IsNaN(v.Float):
			return "fnan"
		}
		s, _ := json.Marshal(v.Float)
		return "f" + string(s)
	case KindBool:
		if v.Bool {
			return "true"
		}
		return "false"
	}
	return "null"
}

func TestKDLSyntax(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"a", "a()"},
		{"a 1 2; b", "a(i1,i2) b()"},
		{"a;;;b;", "a() b()"},
		{"a {}", "a(){}"},
		{"a { b; c { d } }", "a(){b() c(){d()}}"},
		{"a {\n b\n}\n\n", "a(){b()}"},
		{`"quoted name" 1`, `quoted name(i1)`},
		{`a "s" r"raw\n" r#"has "quotes""# #"v2 raw"# ##"two#"##`, `a("s","raw\\n","has \"quotes\"","v2 raw","two#")`},
		{`a "esc \n\t\\\"\/\b\f\s\u{41}\u{1F600}"`, `a("esc \n\t\\\"/\b\f A😀")`},
		{"a \"line \\\n    continued\"", `a("line continued")`},
		{"a true false null #true #false #null", "a(true,false,null,true,false,null)"},
		{"a #inf #-inf #nan", "a(f+inf,f-inf,fnan)"},
		{"a 0 -1 +2 1_000 0x1F 0xff_ff 0o17 0b1010 -0x10", "a(i0,i-1,i2,i1000,i31,i65535,i15,i10,i-16)"},
		{"a 9223372036854775807 -9223372036854775808", "a(i9223372036854775807,i-9223372036854775808)"},
		{"a 1.5 -2.25 1e3 1.5E-2 +0.5 1_0.2_5", "a(f1.5,f-2.25,f1000,f0.015,f0.5,f10.25)"},
		{"a k=1 \"q k\"=\"v\" x = y", `a(;k=i1;q k="v";x="y")`},
		{"a bare-string other.value", `a("bare-string","other.value")`},
		{"a - -b +c .d", `a("-","-b","+c",".d")`},
		{"a k=1 k=2", "a(;k=i1;k=i2)"},
		{"a /-1 2 /-k=v /- 3 4", "a(i2,i4)"},
		{"a /-{ b } { c }", "a(){c()}"},
		{"a { b } /-{ c }", "a(){b()}"},
		{"/-a 1\nb", "b()"},
		{"/- a { b }\nc", "c()"},
		{"/-\na\nb", "b()"},
		{"a // comment\nb", "a() b()"},
		{"a /* inline */ 1 /* nested /* deeper */ still */ 2", "a(i1,i2)"},
		{"/* before */ a", "a()"},
		{"a 1 \\\n  2 \\ // comment\n  3", "a(i1,i2,i3)"},
		{"(t)a (u8)1 k=(s)\"v\"", `a(i1;k="v")`},
		{"\ufeffa", "a()"},
		{"a\r\nb\rc\u2028d\u0085e\ff", "a() b() c() d() e() f()"},
		{"a\u00a01\u30002", "a(i1,i2)"},
		{"a {\n}\n", "a(){}"},
		{"a{b}", "a(){b()}"},
		{"ünïcödé 1", "ünïcödé(i1)"},
	} {
		nodes, err := parseKDL([]byte(tc.src))
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if got := dump(nodes); got != tc.want {
			t.Errorf("%q:\n got %s\nwant %s", tc.src, got, tc.want)
		}
	}
}

// TestKDLLines: node and value lines count \n, \r\n, \r and the Unicode
// newlines once each, also inside strings and block comments.
func TestKDLLines(t *testing.T) {
	src := "a\r\nb \"x\ny\" c\n/* 1\n2\r\n3 */ d\u2028e\n  f \\\n   7"
	nodes, err := parseKDL([]byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"a": 1, "b": 2, "d": 6, "e": 7, "f": 8}
	for _, n := range nodes {
		if want[n.Name] != n.Line {
			t.Errorf("%s on line %d, want %d", n.Name, n.Line, want[n.Name])
		}
	}
	if nodes[1].Args[1].Line != 3 {
		t.Errorf("b's second argument on line %d, want 3", nodes[1].Args[1].Line)
	}
	if f := nodes[len(nodes)-1]; f.Args[0].Line != 9 {
		t.Errorf("f's argument on line %d, want 9", f.Args[0].Line)
	}
}

func TestKDLErrorColumns(t *testing.T) {
	_, err := parseKDL([]byte("a {\n  ünï 1x\n}"))
	se, ok := err.(*SyntaxError)
	if !ok || se.Line != 2 || se.Col != 7 {
		t.Errorf("%v", err)
	}
	if _, err := parseKDL([]byte("a r" + strings.Repeat("#", maxRawHashes+1) + `"x"` + strings.Repeat("#", maxRawHashes+1))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("long raw delimiter: %v", err)
	}
	big := make([]byte, MaxSize+1)
	if _, err := parseKDL(big); err == nil {
		t.Error("oversized input accepted")
	}
}

// TestKDLRejects: inputs the parser must refuse (never accept silently).
func TestKDLRejects(t *testing.T) {
	for _, src := range []string{
		"a 1.", "a .5.", "a 1e", "a 1e+", "a 0x", "a 0xg", "a 0b2", "a 0o8", "a 1._5", "a 0x_1",
		"a 9223372036854775808", "a -9223372036854775809",
		`a "\u{110000}"`, `a "\u{}"`, `a "\u{1234567}"`, `a "\x"`, `a "open`,
		"a {", "}", "a { b", "a (t", "a (t)", "a k=", "a =1", "a #", "a #truthy",
		"a \"x\"y", "null 1", "a true=1", "a {} b", "/* never", "a \\ x",
		"a \x01", "a \"\xc3\"",
	} {
		if nodes, err := parseKDL([]byte(src)); err == nil {
			t.Errorf("%q accepted: %s", src, dump(nodes))
		}
	}
}

// FuzzParse: no input makes the parser panic or allocate more than a
// bound linear in its size, and a document that parses prints back
// (through dump) without surprises.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"agent \"a\" { unix-socket \"/a\" }",
		"agents { agent \"a\" type=\"waf\" { grpc \"h:1\" { tls }; events \"request_headers\"; config { k v; n 1 { m #true } } } }",
		"a r#\"x\"# #\"y\"# /-z 0x1f 1.5e3 \"\\u{41}\\s\" \\\n b",
		"/* /* */ */ a /-{ b } { c }",
		"a \"\\\n  x\"",
		"(t)a (u)1",
	} {
		f.Add([]byte(s))
	}
	if b, err := readGolden(); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		var c *Config
		var err error
		allocated := allocatedBytes(func() { c, err = Parse("fuzz.kdl", src, Defaults{}) })
		if bound := 1024*uint64(len(src)) + 64<<10; allocated > bound {
			t.Fatalf("%d input bytes allocated %d bytes (bound %d)", len(src), allocated, bound)
		}
		if err != nil {
			if !utf8.ValidString(err.Error()) {
				t.Fatalf("error message is not UTF-8: %q", err.Error())
			}
			return
		}
		for _, a := range c.Agents {
			if a.ID == "" || len(a.Endpoints) == 0 || a.Timeout <= 0 || a.Events == 0 {
				t.Fatalf("incomplete agent %+v", a)
			}
			if a.Config != nil && !json.Valid(a.Config) {
				t.Fatalf("invalid config JSON %s", a.Config)
			}
		}
	})
}
