package httpguard

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
)

// wsAccept computes Sec-WebSocket-Accept (RFC 6455 section 4.2.2).
func wsAccept(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// readFrame reads one whole frame from r.
func readFrame(r *bufio.Reader) (Frame, error) {
	var f Frame
	var buf []byte
	for {
		b, err := r.ReadByte()
		if err != nil {
			return f, err
		}
		buf = append(buf, b)
		n, err := ParseFrame(buf, 1<<24, &f)
		if err != nil {
			return f, err
		}
		if n > 0 {
			f.ToggleMask()
			return f, nil
		}
	}
}

// echoUpstream is a WebSocket server that echoes text frames, sends
// "push:<text>" frames on request, records every frame it receives, and
// answers a close with a close.
type echoUpstream struct {
	mu     sync.Mutex
	frames []Frame
	done   chan struct{}
}

func (u *echoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !IsWebSocketUpgrade(r) {
		http.Error(w, "not a websocket", 400)
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	defer close(u.done)
	_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		wsAccept(r.Header.Get("Sec-WebSocket-Key")) + "\r\n\r\n")
	_ = brw.Flush()
	for {
		f, err := readFrame(brw.Reader)
		if err != nil {
			return
		}
		f.Payload = bytes.Clone(f.Payload)
		u.mu.Lock()
		u.frames = append(u.frames, f)
		u.mu.Unlock()
		switch {
		case f.Opcode == OpClose:
			_, _ = conn.Write(AppendFrame(nil, true, OpClose, f.Payload, nil))
			return
		case strings.HasPrefix(string(f.Payload), "push:"):
			_, _ = conn.Write(AppendFrame(nil, true, OpText, f.Payload[5:], nil))
		default:
			_, _ = conn.Write(AppendFrame(nil, true, f.Opcode, f.Payload, nil))
		}
	}
}

func (u *echoUpstream) received() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for _, f := range u.frames {
		if f.Opcode == OpClose {
			out = append(out, "close:"+closeString(f.Payload))
			continue
		}
		out = append(out, string(f.Payload))
	}
	return out
}

func closeString(p []byte) string {
	if len(p) < 2 {
		return ""
	}
	return strconv.Itoa(int(binary.BigEndian.Uint16(p))) + " " + string(p[2:])
}

// policyInspector drops frames saying "drop", closes on "close me" with
// 4001, and records every event it saw.
type policyInspector struct {
	mu     sync.Mutex
	events []string
}

func (p *policyInspector) inspect(_ context.Context, ev *agentwire.WebSocketFrameEvent) agentwire.WebSocketDecision {
	dir := "s2c"
	if ev.ClientToServer {
		dir = "c2s"
	}
	p.mu.Lock()
	p.events = append(p.events, dir+":"+strconv.Itoa(int(ev.FrameIndex))+":"+ev.Opcode+":"+string(ev.Data))
	p.mu.Unlock()
	switch {
	case string(ev.Data) == "drop":
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop}
	case string(ev.Data) == "close me":
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketClose, Code: 4001, Reason: "closed by agent"}
	}
	return agentwire.WebSocketDecision{}
}

// guardedProxy is a reverse proxy to upstream whose upgraded connections
// go through a WebSocketFilter, as the gateway wires it.
func guardedProxy(t *testing.T, upstream string, insp FrameInspector, maxPayload int) *httptest.Server {
	u, _ := url.Parse(upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	rp.Transport = tr
	rp.ModifyResponse = func(res *http.Response) error {
		if res.StatusCode != http.StatusSwitchingProtocols {
			return nil
		}
		rwc, ok := res.Body.(io.ReadWriteCloser)
		if !ok {
			return errors.New("101 body is not a ReadWriteCloser")
		}
		f, err := NewWebSocketFilter(res.Request.Context(), rwc, WebSocketConfig{
			Stream:     WebSocketStream{CorrelationID: "ws-1", ClientIP: "127.0.0.1"},
			Inspect:    insp,
			MaxPayload: maxPayload,
		})
		if err != nil {
			return err
		}
		res.Body = f
		return nil
	}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		StripWebSocketExtensions(r.Header)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	return front
}

// dialWS opens a WebSocket connection to server by hand.
func dialWS(t *testing.T, server string) (net.Conn, *bufio.Reader) {
	t.Helper()
	addr := strings.TrimPrefix(server, "http://")
	c, err := net.DialTimeout("tcp", addr, testTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(testTimeout))
	key := "dGhlIHNhbXBsZSBub25jZQ=="
	_, _ = io.WriteString(c, "GET /ws HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: "+key+"\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 101 || resp.Header.Get("Sec-Websocket-Accept") != wsAccept(key) {
		t.Fatalf("handshake: %d %v", resp.StatusCode, resp.Header)
	}
	return c, br
}

var clientKey = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// TestWebSocketFilterThroughReverseProxy runs a real WebSocket session
// through httputil.ReverseProxy with the filter on the upgraded
// connection: allowed frames pass both ways byte for byte, dropped frames
// (either direction) never arrive, events carry unmasked payloads with
// per-direction indexes, and a close decision sends the agent's code and
// reason to both the client and the upstream.
func TestWebSocketFilterThroughReverseProxy(t *testing.T) {
	up := &echoUpstream{done: make(chan struct{})}
	upSrv := httptest.NewServer(up)
	defer upSrv.Close()
	insp := &policyInspector{}
	front := guardedProxy(t, upSrv.URL, insp.inspect, 0)
	c, br := dialWS(t, front.URL)

	send := func(op Opcode, s string) {
		t.Helper()
		if _, err := c.Write(AppendFrame(nil, true, op, []byte(s), &clientKey)); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(op Opcode, s string) {
		t.Helper()
		f, err := readFrame(br)
		if err != nil {
			t.Fatalf("waiting for %q: %v", s, err)
		}
		if f.Opcode != op || string(f.Payload) != s || f.Masked {
			t.Fatalf("got %v %q (masked %v), want %v %q", f.Opcode, f.Payload, f.Masked, op, s)
		}
	}
	send(OpText, "hello")
	expect(OpText, "hello")
	send(OpText, "drop") // never reaches the upstream
	send(OpBinary, "\x00\x01")
	expect(OpBinary, "\x00\x01")
	send(OpText, "push:drop") // the upstream's answer "drop" is dropped on the way back
	send(OpPing, "p")
	expect(OpPing, "p") // the echo of the ping comes next: "drop" was left out
	send(OpText, "close me")
	f, err := readFrame(br)
	if err != nil || f.Opcode != OpClose || closeString(f.Payload) != "4001 closed by agent" {
		t.Fatalf("close: %v %+v %q", err, f, closeString(f.Payload))
	}
	// The connection then ends.
	if _, err := readFrame(br); err == nil {
		t.Fatal("frames after the close")
	}
	select {
	case <-up.done:
	case <-time.After(testTimeout):
		t.Fatal("upstream still running")
	}
	got := up.received()
	want := []string{"hello", "\x00\x01", "push:drop", "p", "close:4001 closed by agent"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("upstream received %q, want %q", got, want)
	}
	insp.mu.Lock()
	events := strings.Join(insp.events, "|")
	insp.mu.Unlock()
	for _, e := range []string{"c2s:0:text:hello", "s2c:0:text:hello", "c2s:1:text:drop", "c2s:3:text:push:drop", "s2c:2:text:drop", "c2s:4:ping:p", "s2c:3:ping:p", "c2s:5:text:close me"} {
		if !strings.Contains(events, e) {
			t.Errorf("event %s missing from %s", e, events)
		}
	}
}

// TestWebSocketFilterProtocolErrors: the filter closes both sides with
// 1002 on an unmasked client frame and 1009 on a frame over the limit.
func TestWebSocketFilterProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		frame []byte
		code  string
	}{
		{"unmasked client frame", AppendFrame(nil, true, OpText, []byte("x"), nil), "1002 "},
		{"frame over the limit", AppendFrame(nil, true, OpBinary, make([]byte, 2000), &clientKey), "1009 "},
		{"reserved opcode", []byte{0x83, 0x80, 1, 2, 3, 4}, "1002 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &echoUpstream{done: make(chan struct{})}
			upSrv := httptest.NewServer(up)
			defer upSrv.Close()
			insp := &policyInspector{}
			front := guardedProxy(t, upSrv.URL, insp.inspect, 1024)
			c, br := dialWS(t, front.URL)
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			f, err := readFrame(br)
			if err != nil || f.Opcode != OpClose || closeString(f.Payload) != tc.code {
				t.Fatalf("%v %v %q", err, f.Opcode, closeString(f.Payload))
			}
			<-up.done
			if got := up.received(); len(got) != 1 || got[0] != "close:"+tc.code {
				t.Errorf("upstream received %q", got)
			}
			insp.mu.Lock()
			defer insp.mu.Unlock()
			if len(insp.events) != 0 {
				t.Errorf("refused frame inspected: %q", insp.events)
			}
		})
	}
}

// recordingUpstream is an upstream without deadlines: it records what is
// written to it and reads from a pipe.
type recordingUpstream struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	r      *io.PipeReader
	closed bool
}

func (u *recordingUpstream) Write(p []byte) (int, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.buf.Write(p)
}
func (u *recordingUpstream) Read(p []byte) (int, error) { return u.r.Read(p) }
func (u *recordingUpstream) Close() error {
	u.mu.Lock()
	u.closed = true
	u.mu.Unlock()
	return u.r.Close()
}

// TestWebSocketFilterSplitWrites: client bytes arriving in pieces of any
// size give the same upstream bytes and the same decisions as whole
// frames; with no deadline support, a close decided on the write side
// still ends the read side.
func TestWebSocketFilterSplitWrites(t *testing.T) {
	var stream []byte
	for _, s := range []string{"one", "drop", strings.Repeat("long", 100), "two", "close me", "after"} {
		stream = AppendFrame(stream, true, OpText, []byte(s), &clientKey)
	}
	var want []byte
	for _, s := range []string{"one", strings.Repeat("long", 100), "two"} {
		want = AppendFrame(want, true, OpText, []byte(s), &clientKey)
	}
	for _, piece := range []int{1, 2, 3, 7, 64, 1000, len(stream)} {
		pr, pw := io.Pipe()
		up := &recordingUpstream{r: pr}
		insp := &policyInspector{}
		f, err := NewWebSocketFilter(context.Background(), up, WebSocketConfig{Inspect: insp.inspect})
		if err != nil {
			t.Fatal(err)
		}
		readDone := make(chan []byte)
		go func() {
			b, _ := io.ReadAll(f)
			readDone <- b
		}()
		for off := 0; off < len(stream); off += piece {
			if n, err := f.Write(stream[off:min(off+piece, len(stream))]); err != nil || n != min(piece, len(stream)-off) {
				t.Fatalf("piece %d: %d %v", piece, n, err)
			}
		}
		toClient := <-readDone
		_ = pw.Close()
		up.mu.Lock()
		got := up.buf.Bytes()
		closed := up.closed
		up.mu.Unlock()
		if !bytes.HasPrefix(got, want) {
			t.Fatalf("piece %d: upstream got %x", piece, got)
		}
		var cf Frame
		if n, err := ParseFrame(got[len(want):], 1<<20, &cf); err != nil || n != len(got)-len(want) || !cf.Masked {
			t.Fatalf("piece %d: upstream close frame %d %v %+v", piece, n, err, cf)
		}
		cf.ToggleMask()
		if closeString(cf.Payload) != "4001 closed by agent" {
			t.Errorf("piece %d: upstream close %q", piece, closeString(cf.Payload))
		}
		if n, err := ParseFrame(toClient, 1<<20, &cf); err != nil || n != len(toClient) || cf.Masked || closeString(cf.Payload) != "4001 closed by agent" {
			t.Errorf("piece %d: client got %x", piece, toClient)
		}
		if !closed {
			t.Errorf("piece %d: upstream without deadlines not closed to wake the reader", piece)
		}
		insp.mu.Lock()
		if len(insp.events) != 5 { // "after" is never inspected
			t.Errorf("piece %d: %d events: %q", piece, len(insp.events), insp.events)
		}
		insp.mu.Unlock()
	}
}

func TestNewWebSocketFilterErrors(t *testing.T) {
	insp := (&policyInspector{}).inspect
	if _, err := NewWebSocketFilter(context.Background(), nil, WebSocketConfig{Inspect: insp}); err == nil {
		t.Error("nil upstream accepted")
	}
	if _, err := NewWebSocketFilter(context.Background(), &recordingUpstream{}, WebSocketConfig{}); err == nil {
		t.Error("nil inspector accepted")
	}
	if _, err := NewWebSocketFilter(context.Background(), &recordingUpstream{}, WebSocketConfig{Inspect: insp, MaxPayload: -1}); err == nil {
		t.Error("negative limit accepted")
	}
}

// TestWebSocketFilterCloseWakesReader: when the close is decided on the
// client's side and the upstream never answers, the Read side is woken
// (read deadline) to give the client its close frame, then io.EOF.
func TestWebSocketFilterCloseWakesReader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	upConn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	silent := <-accepted // never reads, never writes
	defer silent.Close()
	insp := &policyInspector{}
	reading := make(chan struct{})
	up := &signalingConn{Conn: upConn, reading: reading}
	f, err := NewWebSocketFilter(context.Background(), up, WebSocketConfig{Inspect: insp.inspect})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(f)
		got <- b
	}()
	// The Read side is about to block reading the upstream. The pause is
	// not synchronisation (the test passes whatever the timing); it makes
	// the read block before the close is decided, so that the test fails
	// when nothing wakes it (checked by removing the read deadline).
	<-reading
	time.Sleep(10 * time.Millisecond)
	if _, err := f.Write(AppendFrame(nil, true, OpText, []byte("close me"), &clientKey)); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		var cf Frame
		if n, err := ParseFrame(b, 1<<20, &cf); err != nil || n != len(b) || closeString(cf.Payload) != "4001 closed by agent" {
			t.Errorf("client got %x", b)
		}
	case <-time.After(testTimeout):
		t.Fatal("Read not woken by a close decided on the write side")
	}
}

// TestWebSocketFilterCloseFramesAlwaysPass: a close frame goes through
// even when the inspector drops it; other dropped frames do not.
func TestWebSocketFilterCloseFramesAlwaysPass(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	up := &recordingUpstream{r: pr}
	dropAll := func(context.Context, *agentwire.WebSocketFrameEvent) agentwire.WebSocketDecision {
		return agentwire.WebSocketDecision{Kind: agentwire.WebSocketDrop}
	}
	f, err := NewWebSocketFilter(context.Background(), up, WebSocketConfig{Inspect: dropAll})
	if err != nil {
		t.Fatal(err)
	}
	closeFrame := AppendCloseFrame(nil, 1000, "bye", &clientKey)
	in := append(AppendFrame(nil, true, OpText, []byte("x"), &clientKey), closeFrame...)
	if _, err := f.Write(in); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	if !bytes.Equal(up.buf.Bytes(), closeFrame) {
		t.Errorf("upstream got %x, want only the close frame %x", up.buf.Bytes(), closeFrame)
	}
}

// signalingConn closes reading when Read is first called.
type signalingConn struct {
	net.Conn
	once    sync.Once
	reading chan struct{}
}

func (c *signalingConn) Read(p []byte) (int, error) {
	c.once.Do(func() { close(c.reading) })
	return c.Conn.Read(p)
}

// TestWebSocketFilterBadFrameAfterGoodOnes: frames allowed before a bad
// frame in the same write still reach the upstream, then both sides get
// the protocol-error close.
func TestWebSocketFilterBadFrameAfterGoodOnes(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	up := &recordingUpstream{r: pr}
	insp := &policyInspector{}
	f, err := NewWebSocketFilter(context.Background(), up, WebSocketConfig{Inspect: insp.inspect})
	if err != nil {
		t.Fatal(err)
	}
	good := AppendFrame(nil, true, OpText, []byte("ok"), &clientKey)
	in := append(bytes.Clone(good), AppendFrame(nil, true, OpText, []byte("unmasked"), nil)...)
	if _, err := f.Write(in); err != nil {
		t.Fatal(err)
	}
	up.mu.Lock()
	got := bytes.Clone(up.buf.Bytes())
	up.mu.Unlock()
	if !bytes.HasPrefix(got, good) {
		t.Fatalf("upstream got %x, want the good frame first", got)
	}
	var cf Frame
	if n, err := ParseFrame(got[len(good):], 1<<20, &cf); err != nil || n == 0 || cf.Opcode != OpClose {
		t.Fatalf("then %x", got[len(good):])
	}
	cf.ToggleMask()
	if closeString(cf.Payload) != "1002 " {
		t.Errorf("close %q", closeString(cf.Payload))
	}
	b, _ := io.ReadAll(f)
	if n, err := ParseFrame(b, 1<<20, &cf); err != nil || n != len(b) || closeString(cf.Payload) != "1002 " {
		t.Errorf("client got %x", b)
	}
}

// FuzzWebSocketFilterWrite: whatever bytes a client sends, in whatever
// pieces, the filter never panics, and with an inspector that allows
// everything the upstream receives a prefix of the client's bytes made
// of whole frames, followed by nothing or by one close frame of its own.
func FuzzWebSocketFilterWrite(f *testing.F) {
	f.Add(AppendFrame(AppendFrame(nil, true, OpText, []byte("a"), &clientKey), false, OpBinary, make([]byte, 300), &clientKey), uint8(3))
	f.Add(append(AppendFrame(nil, true, OpText, []byte("a"), &clientKey), 0x81, 0x05, 'x'), uint8(1))
	f.Add(AppendCloseFrame(nil, 1000, "x", &clientKey), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, piece uint8) {
		pr, pw := io.Pipe()
		defer pw.Close()
		up := &recordingUpstream{r: pr}
		allow := func(context.Context, *agentwire.WebSocketFrameEvent) agentwire.WebSocketDecision {
			return agentwire.WebSocketDecision{}
		}
		flt, err := NewWebSocketFilter(context.Background(), up, WebSocketConfig{Inspect: allow, MaxPayload: 1024})
		if err != nil {
			t.Fatal(err)
		}
		step := int(piece) + 1
		for off := 0; off < len(in); off += step {
			if _, err := flt.Write(in[off:min(off+step, len(in))]); err != nil {
				t.Fatal(err)
			}
		}
		up.mu.Lock()
		got := bytes.Clone(up.buf.Bytes())
		up.mu.Unlock()
		// The longest prefix of whole, valid, masked frames.
		k := 0
		var fr Frame
		for {
			n, err := ParseFrame(in[k:], 1024, &fr)
			if err != nil || n == 0 || !fr.Masked {
				break
			}
			k += n
		}
		if !bytes.HasPrefix(got, in[:k]) {
			t.Fatalf("upstream %x is not the input's first %d bytes", got, k)
		}
		if rest := got[k:]; len(rest) > 0 {
			if n, err := ParseFrame(rest, 1024, &fr); err != nil || n != len(rest) || fr.Opcode != OpClose || !fr.Masked {
				t.Fatalf("after the frames: %x", rest)
			}
		}
	})
}
