package agent

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestListenUDSReadiness: once ListenUDS returns, the socket exists with
// the configured mode and accepts connections; a proxy that connected and
// sent its handshake before ServeUDS ran is served once it runs. Closing
// the server removes the socket file.
func TestListenUDSReadiness(t *testing.T) {
	srv := NewServer(BaseHandler{}, WithSocketMode(0o640))
	path := filepath.Join(sockDir(t), "ready.sock")
	ln, err := srv.ListenUDS(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o640 {
		t.Fatalf("socket file mode %v (%v), want a socket with 0640", fi.Mode(), err)
	}
	// Before ServeUDS: connect and send the handshake; both complete (the
	// connection waits in the backlog).
	c, err := net.DialTimeout("unix", path, testTimeout)
	if err != nil {
		t.Fatalf("dial right after ListenUDS: %v", err)
	}
	p := &rawProxy{t: t, c: c, rd: frame.NewReader(c, 0)}
	t.Cleanup(p.close)
	req := agentwire.HandshakeRequest{SupportedVersions: []uint32{2}, ProxyID: "early-proxy", SupportedEncodings: []string{"json"}}
	p.send(frame.TypeHandshakeRequest, payload.AppendHandshakeRequestJSON(nil, &req))

	served := make(chan error, 1)
	go func() { served <- srv.ServeUDS(ln) }()
	typ, b := p.recv()
	var hs agentwire.HandshakeResponse
	if typ != frame.TypeHandshakeResponse || payload.DecodeHandshakeResponseJSON(b, &hs) != nil || !hs.Success {
		t.Fatalf("handshake answer %v %s", typ, b)
	}
	p.ping(1)
	p.expectPongOnly()

	srv.Close()
	if err := recvTimeout(t, served, "ServeUDS to return"); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeUDS = %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 0 {
		t.Fatalf("directory not clean: %v", ents)
	}
}

// TestListenUDSListenerClose: closing a ListenUDS listener that was never
// served removes its socket file, repeated Close is harmless, and a file
// that replaced the socket meanwhile is left alone.
func TestListenUDSListenerClose(t *testing.T) {
	srv := NewServer(BaseHandler{})
	defer srv.Close()
	dir := sockDir(t)
	path := filepath.Join(dir, "a.sock")
	ln, err := srv.ListenUDS(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left behind: %v", err)
	}

	ln, err = srv.ListenUDS(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("someone else's"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if b, err := os.ReadFile(path); err != nil || string(b) != "someone else's" {
		t.Fatalf("replacing file touched: %q %v", b, err)
	}
}

// TestListenUDSAfterClose: a closed server binds nothing.
func TestListenUDSAfterClose(t *testing.T) {
	srv := NewServer(BaseHandler{})
	srv.Close()
	path := filepath.Join(sockDir(t), "a.sock")
	if _, err := srv.ListenUDS(path); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ListenUDS after Close = %v, want ErrServerClosed", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket created after Close: %v", err)
	}
}
