package agent

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// fakeReverseListener plays the proxy's ReverseConnectionListener: it
// accepts, reads the registration, and answers according to decide.
type fakeReverseListener struct {
	t      *testing.T
	ln     net.Listener
	decide func(req *agentwire.RegistrationRequest, raw []byte) agentwire.RegistrationResponse
	conns  chan *rawProxy // registered connections
	regs   chan []byte    // raw registration payloads
}

func newFakeReverse(t *testing.T, ln net.Listener, decide func(*agentwire.RegistrationRequest, []byte) agentwire.RegistrationResponse) *fakeReverseListener {
	f := &fakeReverseListener{t: t, ln: ln, decide: decide, conns: make(chan *rawProxy, 8), regs: make(chan []byte, 32)}
	go f.acceptLoop()
	t.Cleanup(func() { ln.Close() })
	return f
}

func (f *fakeReverseListener) acceptLoop() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		p := &rawProxy{t: f.t, c: c, rd: frame.NewReader(c, 0)}
		f.t.Cleanup(p.close)
		c.SetReadDeadline(time.Now().Add(testTimeout))
		typ, b, err := p.rd.ReadFrame()
		if err != nil || typ != frame.TypeHandshakeRequest {
			f.t.Errorf("registration frame %v: %v", typ, err)
			c.Close()
			continue
		}
		raw := append([]byte(nil), b...)
		f.regs <- raw
		var req agentwire.RegistrationRequest
		if err := payload.DecodeRegistrationRequestJSON(raw, &req); err != nil {
			f.t.Errorf("registration %s: %v", raw, err)
			c.Close()
			continue
		}
		resp := f.decide(&req, raw)
		resp.ProxyID, resp.ProxyVersion = "zentinel-proxy", "0.6.20"
		buf, _ := frame.AppendFrame(nil, frame.TypeHandshakeResponse, payload.AppendRegistrationResponseJSON(nil, &resp))
		c.Write(buf)
		if !resp.Success {
			c.Close()
			continue
		}
		f.conns <- p
	}
}

func acceptAll(req *agentwire.RegistrationRequest, _ []byte) agentwire.RegistrationResponse {
	return agentwire.RegistrationResponse{Success: true, ConnectionID: req.AgentID + "-19ebb28a313"}
}

func unixListener(t *testing.T) (net.Listener, string) {
	t.Helper()
	path := filepath.Join(sockDir(t), "proxy.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	return ln, path
}

// serveReverse runs ServeReverse in the background and returns its result
// channel; the server is closed at cleanup.
func serveReverse(t *testing.T, srv *Server, ctx context.Context, ep string, opts ...ReverseOption) chan error {
	done := make(chan error, 1)
	go func() { done <- srv.ServeReverse(ctx, ep, opts...) }()
	t.Cleanup(func() {
		srv.Close()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("ServeReverse did not return")
		}
	})
	return done
}

func TestReverseRegistrationAndTraffic(t *testing.T) {
	ln, path := unixListener(t)
	f := newFakeReverse(t, ln, acceptAll)
	h := &funcHandler{reqHeaders: func(_ context.Context, ev *agentwire.RequestHeadersEvent, r *agentwire.AgentResponse) error {
		r.RequestHeaders = append(r.RequestHeaders, agentwire.HeaderOp{Kind: agentwire.HeaderSet, Name: "x-via", Value: "reverse"})
		return nil
	}}
	srv := NewServer(h, WithAgentID("waf-agent"), WithName("WAF Agent"), WithVersion("1.2.3"))
	var registered atomic.Value
	serveReverse(t, srv, context.Background(), "unix:"+path,
		WithAuthToken("s3cr3t-token"), WithRegistrationMetadata(json.RawMessage(`{"pod":"waf-7d9f","zone":"eu-1"}`)),
		WithOnRegistered(func(r agentwire.RegistrationResponse) { registered.Store(r.ConnectionID) }))

	raw := recvTimeout(t, f.regs, "registration")
	// Same keys as the golden RegistrationRequest, every capability key.
	golden := goldenByName(t, "reverse.json", "registration_request_full")
	if gk, wk := keysOf(t, raw), keysOf(t, []byte(golden.JSONPayload)); !slices.Equal(gk, wk) {
		t.Errorf("keys %v, want %v", gk, wk)
	}
	var got, want map[string]json.RawMessage
	json.Unmarshal(raw, &got)
	json.Unmarshal([]byte(golden.JSONPayload), &want)
	for _, k := range []string{"capabilities"} {
		if gk, wk := keysOf(t, got[k]), keysOf(t, want[k]); !slices.Equal(gk, wk) {
			t.Errorf("%s keys %v, want %v", k, gk, wk)
		}
	}
	var req agentwire.RegistrationRequest
	if err := payload.DecodeRegistrationRequestJSON(raw, &req); err != nil {
		t.Fatal(err)
	}
	if req.ProtocolVersion != 2 || req.AgentID != "waf-agent" || req.AuthToken.Value != "s3cr3t-token" ||
		string(req.Metadata) != `{"pod":"waf-7d9f","zone":"eu-1"}` || req.Capabilities.Name != "WAF Agent" ||
		!slices.Contains(req.Capabilities.SupportedEvents, 0) || req.Capabilities.Features != agentwire.FullFeatures() {
		t.Errorf("registration %s", raw)
	}

	p := recvTimeout(t, f.conns, "registered connection")
	waitFor(t, "OnRegistered", func() bool { return registered.Load() == "waf-agent-19ebb28a313" })
	// Ordinary JSON UDS traffic, no handshake.
	g := goldenByName(t, "events.json", "request_headers_typical")
	p.send(frame.TypeRequestHeaders, []byte(g.JSONPayload))
	r := p.recvReply(false)
	if r.CorrelationID != goldenCID || len(r.RequestHeaders) != 1 || r.RequestHeaders[0].Value != "reverse" {
		t.Fatalf("reply %+v", r)
	}
	p.ping(3)
	p.expectPongOnly()
	// Pushes reach reverse connections.
	srv.ReportHealth(agentwire.HealthStatus{State: agentwire.HealthHealthy})
	if typ, b := p.recv(); typ != frame.TypeHealthStatus || !strings.HasPrefix(string(b), `{"state":1`) {
		t.Fatalf("push %v %s", typ, b)
	}
}

func TestReverseRejectionRetriesThenSucceeds(t *testing.T) {
	ln, path := unixListener(t)
	var attempts atomic.Int32
	f := newFakeReverse(t, ln, func(req *agentwire.RegistrationRequest, _ []byte) agentwire.RegistrationResponse {
		if attempts.Add(1) < 3 {
			return agentwire.RegistrationResponse{Error: agentwire.Some("Invalid message format: Agent '" + req.AgentID + "' is not in the allowed list")}
		}
		return acceptAll(req, nil)
	})
	srv := NewServer(BaseHandler{})
	serveReverse(t, srv, context.Background(), path, WithReconnectBackoff(time.Millisecond, 5*time.Millisecond))
	p := recvTimeout(t, f.conns, "connection after two rejections")
	if attempts.Load() != 3 {
		t.Fatalf("attempts %d", attempts.Load())
	}
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("r-1", "/"))
	if r := p.recvReply(false); r.CorrelationID != "r-1" {
		t.Fatal(r)
	}
}

func TestReverseStopOnRejection(t *testing.T) {
	ln, path := unixListener(t)
	newFakeReverse(t, ln, func(*agentwire.RegistrationRequest, []byte) agentwire.RegistrationResponse {
		return agentwire.RegistrationResponse{Error: agentwire.Some("Protocol version mismatch: expected 2, got 99")}
	})
	srv := NewServer(BaseHandler{})
	done := serveReverse(t, srv, context.Background(), "unix://"+path, WithStopOnRejection())
	err := recvTimeout(t, done, "ServeReverse")
	var rej *RegistrationRejectedError
	if !errors.As(err, &rej) || rej.ProxyID != "zentinel-proxy" || !strings.Contains(rej.Message, "mismatch") {
		t.Fatalf("err %v", err)
	}
	done <- err // for the cleanup
}

// TestReverseReconnect: the proxy closes the connection, then restarts its
// listener; the agent comes back on its own.
func TestReverseReconnect(t *testing.T) {
	ln, path := unixListener(t)
	f := newFakeReverse(t, ln, acceptAll)
	srv := NewServer(BaseHandler{})
	serveReverse(t, srv, context.Background(), path, WithReconnectBackoff(time.Millisecond, 10*time.Millisecond))
	p := recvTimeout(t, f.conns, "first connection")
	waitFor(t, "first conn", func() bool { return srv.Stats().Conns == 1 })
	// Proxy goes away entirely: connection closed, listener gone.
	ln.Close()
	p.c.Close()
	waitFor(t, "disconnect noticed", func() bool { return srv.Stats().Conns == 0 })
	time.Sleep(30 * time.Millisecond) // a few failed dials
	ln2, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	f2 := newFakeReverse(t, ln2, acceptAll)
	p2 := recvTimeout(t, f2.conns, "connection after restart")
	p2.send(frame.TypeRequestHeaders, reqHeadersJSON("again", "/"))
	if r := p2.recvReply(false); r.CorrelationID != "again" {
		t.Fatal(r)
	}
	// The proxy closing the connection right after registering does not
	// make the agent spin or crash: it reconnects again.
	p2.c.Close()
	recvTimeout(t, f2.conns, "third connection")
}

func TestReverseContextAndShutdown(t *testing.T) {
	t.Run("ctx cancel while connected", func(t *testing.T) {
		ln, path := unixListener(t)
		f := newFakeReverse(t, ln, acceptAll)
		srv := NewServer(BaseHandler{})
		ctx, cancel := context.WithCancel(context.Background())
		done := serveReverse(t, srv, ctx, path)
		p := recvTimeout(t, f.conns, "connection")
		cancel()
		if err := recvTimeout(t, done, "ServeReverse"); !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		done <- nil
		p.expectClosed()
	})
	t.Run("ctx cancel while dialling", func(t *testing.T) {
		srv := NewServer(BaseHandler{})
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		done := serveReverse(t, srv, ctx, filepath.Join(sockDir(t), "nobody.sock"), WithReconnectBackoff(time.Millisecond, 2*time.Millisecond))
		if err := recvTimeout(t, done, "ServeReverse"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		done <- nil
	})
	t.Run("silent proxy", func(t *testing.T) {
		ln, path := unixListener(t)
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { c.Close() })
			}
		}()
		t.Cleanup(func() { ln.Close() })
		srv := NewServer(BaseHandler{}, WithHandshakeTimeout(20*time.Millisecond))
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		defer cancel()
		done := serveReverse(t, srv, ctx, path, WithReconnectBackoff(time.Millisecond, 2*time.Millisecond))
		if err := recvTimeout(t, done, "ServeReverse"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		done <- nil
	})
	t.Run("graceful shutdown", func(t *testing.T) {
		ln, path := unixListener(t)
		f := newFakeReverse(t, ln, acceptAll)
		started := make(chan struct{})
		release := make(chan struct{})
		srv := NewServer(&funcHandler{reqHeaders: func(context.Context, *agentwire.RequestHeadersEvent, *agentwire.AgentResponse) error {
			close(started)
			<-release
			return nil
		}})
		done := serveReverse(t, srv, context.Background(), path)
		p := recvTimeout(t, f.conns, "connection")
		p.send(frame.TypeRequestHeaders, reqHeadersJSON("g-1", "/"))
		<-started
		sd := make(chan error, 1)
		go func() { sd <- srv.Shutdown(context.Background()) }()
		time.Sleep(10 * time.Millisecond)
		close(release)
		if r := p.recvReply(false); r.CorrelationID != "g-1" {
			t.Fatal(r)
		}
		p.expectClosed()
		if err := recvTimeout(t, sd, "Shutdown"); err != nil {
			t.Fatal(err)
		}
		if err := recvTimeout(t, done, "ServeReverse"); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("err %v", err)
		}
		done <- nil
	})
}

func TestReverseTLS(t *testing.T) {
	cert := selfSigned(t)
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	tcpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(tcpLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	f := newFakeReverse(t, ln, acceptAll)
	srv := NewServer(BaseHandler{})
	_, port, _ := net.SplitHostPort(tcpLn.Addr().String())
	serveReverse(t, srv, context.Background(), "tcp://localhost:"+port, WithReverseTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}))
	p := recvTimeout(t, f.conns, "TLS connection")
	p.send(frame.TypeRequestHeaders, reqHeadersJSON("tls-1", "/"))
	if r := p.recvReply(false); r.CorrelationID != "tls-1" {
		t.Fatal(r)
	}
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func TestReverseOptionsAndEndpoints(t *testing.T) {
	srv := NewServer(BaseHandler{})
	defer srv.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		ep   string
		opts []ReverseOption
	}{
		{"", nil},
		{"unix:", nil},
		{"no-port", nil},
		{"/x.sock", []ReverseOption{WithRegistrationMetadata(json.RawMessage(`{bad`))}},
		{"/x.sock", []ReverseOption{WithReconnectBackoff(0, time.Second)}},
		{"/x.sock", []ReverseOption{WithReverseTLS(nil)}},
	} {
		if err := srv.ServeReverse(ctx, tc.ep, tc.opts...); err == nil || errors.Is(err, ErrServerClosed) {
			t.Errorf("%q: err %v", tc.ep, err)
		}
	}
	srv.Close()
	if err := srv.ServeReverse(ctx, "/x.sock"); !errors.Is(err, ErrServerClosed) {
		t.Errorf("after Close: %v", err)
	}
}

// TestReverseEOFDuringRegistration: a proxy that closes the socket before
// answering makes the agent retry, not fail or crash.
func TestReverseEOFDuringRegistration(t *testing.T) {
	ln, path := unixListener(t)
	t.Cleanup(func() { ln.Close() })
	accepts := make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			select {
			case accepts <- struct{}{}:
			default:
			}
		}
	}()
	srv := NewServer(BaseHandler{})
	done := serveReverse(t, srv, context.Background(), path, WithReconnectBackoff(time.Millisecond, 2*time.Millisecond))
	for range 3 {
		recvTimeout(t, accepts, "reconnect attempt")
	}
	select {
	case err := <-done:
		t.Fatalf("ServeReverse returned %v", err)
	default:
	}
}
