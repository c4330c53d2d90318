package engine

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/agentwire/agentwire/agent"
)

// testPKI is a throw-away CA with one server and one client certificate.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
	rogue  tls.Certificate // signed by another CA
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	ca, caKey := newCA(t, "agentwire test CA")
	rogueCA, rogueKey := newCA(t, "rogue CA")
	p := &testPKI{pool: x509.NewCertPool()}
	p.pool.AddCert(ca)
	p.server = leaf(t, ca, caKey, "agent", x509.ExtKeyUsageServerAuth)
	p.client = leaf(t, ca, caKey, "proxy", x509.ExtKeyUsageClientAuth)
	p.rogue = leaf(t, rogueCA, rogueKey, "proxy", x509.ExtKeyUsageClientAuth)
	return p
}

func newCA(t *testing.T, name string) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

func leaf(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestTLS(t *testing.T) {
	p := newTestPKI(t)
	srvCfg := &tls.Config{Certificates: []tls.Certificate{p.server}, MinVersion: tls.VersionTLS12}
	srv := startAgent(t, newTestAgent(), agent.WithGRPCServerOptions(grpc.Creds(credentials.NewTLS(srvCfg))))
	c, err := Dial(testCtx(t), "grpcs://"+srv.addr, WithTLS(&tls.Config{RootCAs: p.pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("tls")); err != nil {
		t.Fatal(err)
	}
	// WithTLS also upgrades a grpc:// endpoint; no silent plaintext.
	c2, err := Dial(testCtx(t), "grpc://"+srv.addr, WithTLS(&tls.Config{RootCAs: p.pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if _, err := c2.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// An untrusted server certificate fails the dial.
	_, err = Dial(testCtx(t), "grpcs://"+srv.addr, WithTLS(&tls.Config{RootCAs: x509.NewCertPool()}), WithConnectTimeout(500*time.Millisecond))
	mustKind(t, err, ErrConnectFailed)
	// Plaintext against a TLS agent fails too.
	_, err = Dial(testCtx(t), "grpc://"+srv.addr, WithInsecure(), WithConnectTimeout(500*time.Millisecond))
	mustKind(t, err, ErrConnectFailed)
}

func TestMutualTLS(t *testing.T) {
	p := newTestPKI(t)
	srvCfg := &tls.Config{
		Certificates: []tls.Certificate{p.server},
		ClientCAs:    p.pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	srv := startAgent(t, newTestAgent(), agent.WithGRPCServerOptions(grpc.Creds(credentials.NewTLS(srvCfg))))
	c, err := Dial(testCtx(t), "grpcs://"+srv.addr, WithTLS(&tls.Config{RootCAs: p.pool, Certificates: []tls.Certificate{p.client}}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("mtls")); err != nil {
		t.Fatal(err)
	}
	for name, certs := range map[string][]tls.Certificate{"no client certificate": nil, "untrusted client certificate": {p.rogue}} {
		_, err := Dial(testCtx(t), "grpcs://"+srv.addr, WithTLS(&tls.Config{RootCAs: p.pool, Certificates: certs}), WithConnectTimeout(time.Second))
		if err == nil {
			t.Fatalf("%s: dial succeeded", name)
		}
		mustKind(t, err, ErrConnectFailed)
	}
}

func TestGRPCOverUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	serveAgent(t, ln, newTestAgent())
	c, err := Dial(testCtx(t), "grpc+unix://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.RequestHeaders(testCtx(t), headersEvent("uds-grpc")); err != nil {
		t.Fatal(err)
	}
}
