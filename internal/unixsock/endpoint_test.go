package unixsock

import "testing"

func TestSplitEndpoint(t *testing.T) {
	for ep, want := range map[string][2]string{
		"unix:/a/b":      {"unix", "/a/b"},
		"unix:///a/b":    {"unix", "/a/b"},
		"/run/x":         {"unix", "/run/x"},
		"./rel.sock":     {"unix", "./rel.sock"},
		"agent.sock":     {"unix", "agent.sock"},
		"tcp://h:1":      {"tcp", "h:1"},
		"127.0.0.1:9000": {"tcp", "127.0.0.1:9000"},
	} {
		n, a, err := SplitEndpoint(ep)
		if err != nil || n != want[0] || a != want[1] {
			t.Errorf("%q: %s %s %v", ep, n, a, err)
		}
	}
	for _, ep := range []string{"", "unix://", "tcp://", "localhost", "tcp://h"} {
		if _, _, err := SplitEndpoint(ep); err == nil {
			t.Errorf("%q: no error", ep)
		}
	}
}

func TestPathFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"unix:///run/a.sock": "/run/a.sock",
		"unix://run/a.sock":  "/run/a.sock", // the Rust pool keeps "//run/a.sock": absolute
		"unix:/run/a.sock":   "/run/a.sock",
		"unix:a.sock":        "a.sock",
		"unix://":            "",
		"unix:":              "",
	} {
		got, ok := PathFromURL(in)
		if !ok || got != want {
			t.Errorf("PathFromURL(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := PathFromURL("/run/a.sock"); ok {
		t.Error("a plain path reported as a unix: URL")
	}
}
