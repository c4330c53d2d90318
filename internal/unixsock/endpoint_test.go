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
