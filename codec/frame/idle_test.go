//go:build unix && !race

package frame

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentwire/agentwire/internal/spinread"
)

// TestReaderIdleHoldsNoBuffer: Readers on Unix sockets that have returned
// every frame they read and wait for the next one hold no 64 KiB buffer
// (with the buffer kept while waiting, as before idle.go, each held
// readBufSize more: seen failing at 65 KiB per reader); a frame arriving
// later is read as usual.
func TestReaderIdleHoldsNoBuffer(t *testing.T) {
	t.Run("conn", func(t *testing.T) { testReaderIdleHoldsNoBuffer(t, func(c net.Conn) io.Reader { return c }) })
	// The engine and the agent read their Unix sockets through a spinning
	// reader (internal/spinread): it must not bring the buffer back while
	// the reader waits.
	t.Run("spinread", func(t *testing.T) {
		testReaderIdleHoldsNoBuffer(t, func(c net.Conn) io.Reader { return spinread.New(c, 50*time.Microsecond) })
	})
}

func testReaderIdleHoldsNoBuffer(t *testing.T, wrap func(net.Conn) io.Reader) {
	const n = 100
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "f.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type pair struct {
		w, r net.Conn
		rd   *Reader
	}
	pairs := make([]pair, n)
	for i := range pairs {
		w, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		pairs[i] = pair{w: w, r: r, rd: NewReader(wrap(r), 0)}
		defer w.Close()
		defer r.Close()
	}
	payload := make([]byte, 1000)
	frameBytes, _ := AppendFrame(nil, TypeRequestHeaders, payload)
	send := func() {
		for i := range pairs {
			if _, err := pairs[i].w.Write(frameBytes); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Every reader reads one frame (taking a buffer), then waits for the
	// next.
	var wg sync.WaitGroup
	got := make(chan int, 2*n)
	send()
	for i := range pairs {
		wg.Add(1)
		go func(p *pair) {
			defer wg.Done()
			for range 2 {
				typ, b, err := p.rd.ReadFrame()
				if err != nil || typ != TypeRequestHeaders || len(b) != len(payload) {
					t.Errorf("ReadFrame: %v %v %d", typ, err, len(b))
					return
				}
				got <- 1
			}
		}(&pairs[i])
	}
	for range n {
		<-got
	}
	// Wait until every reader is parked in its second ReadFrame (blocked
	// in the network poller), then measure.
	waitParked(t, n)
	for idleBufs.Get(0) != nil { // the cache's buffers are nobody's
	}
	held := heapInUse()
	send()
	wg.Wait()
	if len(got) != n {
		t.Fatalf("%d second frames read, want %d", len(got), n)
	}
	for i := range pairs {
		pairs[i].rd.Release()
	}
	base := heapInUse()
	per := (float64(held) - float64(base)) / n
	t.Logf("heap in use while %d readers wait: %.0f bytes per reader more than once they are released", n, per)
	if per >= 8<<10 {
		t.Fatalf("waiting readers hold %.0f bytes each, want < 8 KiB", per)
	}
}

// waitParked waits (up to 10 s) until n goroutines are blocked in the
// network poller inside ReadFrame.
func waitParked(t *testing.T, n int) {
	t.Helper()
	buf := make([]byte, 1<<20)
	deadline := time.Now().Add(10 * time.Second)
	for {
		k := runtime.Stack(buf, true)
		parked := 0
		for _, g := range strings.Split(string(buf[:k]), "\n\n") {
			if strings.Contains(g, "[IO wait") && strings.Contains(g, "frame.(*Reader).ReadFrame") {
				parked++
			}
		}
		if parked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d readers parked after 10 s", parked, n)
		}
		runtime.Gosched()
	}
}

// heapInUse is the heap in use after two collections (which also empty
// the sync.Pools).
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// TestReaderIdleErrors: through the buffer-less wait, the end of the
// stream on a frame boundary is io.EOF, a read deadline is a timeout
// (net.Error), and a connection closed under the waiting reader is
// net.ErrClosed, as with net.Conn.Read.
func TestReaderIdleErrors(t *testing.T) {
	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "e.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dial := func() (net.Conn, net.Conn) {
		w, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return w, r
	}
	fb, _ := AppendFrame(nil, TypePing, []byte("x"))

	w, r := dial()
	rd := NewReader(r, 0)
	if rd.raw == nil {
		t.Fatal("no raw connection on a *net.UnixConn")
	}
	w.Write(fb)
	w.Close()
	if typ, p, err := rd.ReadFrame(); err != nil || typ != TypePing || string(p) != "x" {
		t.Fatalf("first frame: %v %q %v", typ, p, err)
	}
	if _, _, err := rd.ReadFrame(); err != io.EOF {
		t.Fatalf("at the end of the stream: %v, want io.EOF", err)
	}
	rd.Release()
	r.Close()

	w, r = dial()
	defer w.Close()
	rd = NewReader(r, 0)
	r.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	var ne net.Error
	if _, _, err := rd.ReadFrame(); !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past the read deadline: %v, want a timeout", err)
	}
	rd.Release()
	r.Close()

	w2, r2 := dial()
	defer w2.Close()
	rd = NewReader(r2, 0)
	defer rd.Release()
	errc := make(chan error, 1)
	go func() { _, _, err := rd.ReadFrame(); errc <- err }()
	waitParked(t, 1)
	r2.Close()
	if err := <-errc; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("closed under the reader: %v, want net.ErrClosed", err)
	}
}
