package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	binDir  string
	binOnce sync.Once
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	var err error
	binDir, err = os.MkdirTemp("", "agentwire-cli-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(binDir)
	os.Exit(code)
}

// binary builds the agentwire command once per test binary and returns its
// path.
func binary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		p := filepath.Join(binDir, "agentwire")
		out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitMatch waits until re matches the buffer's content and returns the
// first submatch (or the whole match).
func waitMatch(t *testing.T, buf *syncBuffer, re *regexp.Regexp, d time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if m := re.FindStringSubmatch(buf.String()); m != nil {
			return m[len(m)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no match for %s within %v; output:\n%s", re, d, buf.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

var listeningRE = regexp.MustCompile(`listening on (\S+)\n`)

func regexpMust(s string) *regexp.Regexp { return regexp.MustCompile(s) }

// cliResult is the outcome of one in-process run.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process, bounded by 60 s.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errb syncBuffer
	code := run(ctx, args, &out, &errb)
	return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// startServe runs "serve args..." in-process until the test ends, and
// returns the endpoint it listens on. The cleanup stops it and checks that
// it exited 0.
func startServe(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := startCommand(t, "serve", listeningRE, true, args...)
	return addr
}

// startCommand runs the CLI command cmd with args in-process until the
// test ends. It waits up to 15 s for re's first submatch in the command's
// stdout (stderr when onStderr) and returns it and the command's stderr;
// the cleanup stops the command and checks that it exited 0.
func startCommand(t *testing.T, cmd string, re *regexp.Regexp, onStderr bool, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errb syncBuffer
	watch := &out
	if onStderr {
		watch = &errb
	}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{cmd}, args...), &out, &errb) }()
	var addr string
	deadline := time.Now().Add(15 * time.Second)
	for addr == "" {
		if m := re.FindStringSubmatch(watch.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			cancel()
			t.Fatalf("%s exited with %d before listening: %s", cmd, code, errb.String())
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("%s did not report listening; stderr: %s", cmd, errb.String())
		}
	}
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("%s exited with %d; stderr: %s", cmd, code, errb.String())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("%s did not stop; stderr: %s", cmd, errb.String())
		}
	})
	return addr, &errb
}

// deadTCPAddr returns a loopback address nobody listens on.
func deadTCPAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// shortSocketPath returns a socket path short enough for sockaddr_un.
func shortSocketPath(t *testing.T, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, name)
}

// latencyRE matches the latency value of a --json line.
var latencyRE = regexp.MustCompile(`"latency_us":\d+}`)

// normLines replaces latency values by 0 and splits into lines.
func normLines(s string) []string {
	s = latencyRE.ReplaceAllString(s, `"latency_us":0}`)
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate (both signed by the CA) as PEM files into dir.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	writePEM := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "agentwire test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(serial int64, cn string, usage x509.ExtKeyUsage) ([]byte, *ecdsa.PrivateKey) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	sDER, sKey := leaf(2, "server", x509.ExtKeyUsageServerAuth)
	cDER, cKey := leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return testPKI{
		ca:         writePEM("ca.pem", "CERTIFICATE", caDER),
		serverCert: writePEM("server.pem", "CERTIFICATE", sDER),
		serverKey:  writePEM("server-key.pem", "PRIVATE KEY", keyDER(sKey)),
		clientCert: writePEM("client.pem", "CERTIFICATE", cDER),
		clientKey:  writePEM("client-key.pem", "PRIVATE KEY", keyDER(cKey)),
	}
}
