package agentwire_test

import (
	"testing"

	"github.com/agentwire/agentwire"
)

func TestHeadersCaseInsensitive(t *testing.T) {
	var h agentwire.Headers
	h.Add("Content-Type", "text/plain")
	h.Add("content-type", "charset=utf-8")
	h.Add("X-Trace", "1")
	if h.Len() != 2 || h[0].Name != "content-type" || h[1].Name != "x-trace" {
		t.Fatalf("names not lowered or not merged: %+v", h)
	}
	if got := h.Get("CONTENT-TYPE"); got != "text/plain" {
		t.Fatalf("Get = %q", got)
	}
	if got := h.Values("Content-type"); len(got) != 2 {
		t.Fatalf("Values = %q", got)
	}
	// A name that arrived in upper case (a non-Rust peer) is still found.
	h = append(h, agentwire.Header{Name: "X-Upper", Values: []string{"v"}})
	if h.Get("x-upper") != "v" {
		t.Fatal("mixed-case wire name not matched")
	}
	h.Del("X-TRACE")
	if h.Get("x-trace") != "" || h.Len() != 2 {
		t.Fatalf("Del: %+v", h)
	}
	if h.Get("x-upperx") != "" || h.Values("nope") != nil {
		t.Fatal("unexpected match")
	}
}
