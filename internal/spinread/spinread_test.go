//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package spinread

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// unixPair returns both ends of a Unix stream connection.
func unixPair(t *testing.T) (a, b net.Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	a, err = net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	b = <-acc
	if b == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// needProcs makes spinning possible (GOMAXPROCS >= 2) for the test.
func needProcs(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2)
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
}

// await waits for ch, failing the test after a bound instead of hanging
// when the behaviour under test is broken.
func await[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s within 10s", what)
		var zero T
		return zero
	}
}

type result struct {
	n   int
	err error
}

// readAsync runs one Read of r on a goroutine of its own.
func readAsync(r *Reader, b []byte) <-chan result {
	ch := make(chan result, 1)
	go func() {
		n, err := r.Read(b)
		ch <- result{n, err}
	}()
	return ch
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

// TestSpinFindsData: data written while the reader spins is read without
// parking, and counted as a spin that paid.
func TestSpinFindsData(t *testing.T) {
	needProcs(t)
	a, b := unixPair(t)
	r := New(a, 20*time.Second) // the spin does not run out here
	if !r.Spinning() {
		t.Fatal("a Unix connection does not spin")
	}
	spinning := make(chan struct{})
	r.Want = func() bool { close(spinning); return true }
	r.parking = func() { t.Error("parked while spinning") }
	buf := make([]byte, 16)
	got := readAsync(r, buf)
	await(t, spinning, "spin")
	write(t, b, "hello")
	res := await(t, got, "read")
	if res.err != nil || string(buf[:res.n]) != "hello" {
		t.Fatalf("read %q, %v", buf[:res.n], res.err)
	}
	if r.Spins != 1 || r.Failed != 0 || r.Parks != 0 {
		t.Fatalf("spins %d failed %d parks %d, want 1 0 0", r.Spins, r.Failed, r.Parks)
	}
}

// TestFailedSpinsBackOff: a spin that finds nothing parks, and the next
// reads park at once, a number doubling with each failed spin; a spin
// that pays resets it.
func TestFailedSpinsBackOff(t *testing.T) {
	needProcs(t)
	a, b := unixPair(t)
	r := New(a, time.Microsecond)
	parked := make(chan struct{}, 1)
	r.parking = func() { parked <- struct{}{} }
	buf := make([]byte, 16)
	// readParked reads once: the read parks (the peer writes only then)
	// and returns the data written.
	readParked := func() {
		t.Helper()
		got := readAsync(r, buf)
		await(t, parked, "park")
		write(t, b, "x")
		if res := await(t, got, "read"); res.err != nil || res.n != 1 {
			t.Fatalf("read %d, %v", res.n, res.err)
		}
	}
	// Failed spins, then reads that park at once: 1, 2, 4, 8.
	wantFailed, wantParks := uint64(0), uint64(0)
	for _, skip := range []int{1, 2, 4, 8} {
		readParked() // spins, fails, parks
		wantFailed++
		wantParks++
		for range skip {
			readParked() // parks at once
			wantParks++
		}
		if r.Failed != wantFailed || r.Parks != wantParks || r.Spins != 0 {
			t.Fatalf("after skipping %d: failed %d parks %d spins %d, want %d %d 0", skip, r.Failed, r.Parks, r.Spins, wantFailed, wantParks)
		}
	}
	// A spin that pays (data within the budget) resets the back-off.
	r.budget = int64(20 * time.Second)
	spinning := make(chan struct{}, 1)
	r.Want = func() bool { spinning <- struct{}{}; return true }
	got := readAsync(r, buf)
	select {
	case <-spinning:
	case <-parked:
		t.Fatal("parked without trying a spin")
	case <-time.After(10 * time.Second):
		t.Fatal("no spin within 10s")
	}
	write(t, b, "y")
	if res := await(t, got, "read"); res.err != nil || res.n != 1 {
		t.Fatalf("read %d, %v", res.n, res.err)
	}
	if r.Spins != 1 || r.nextSkip != 1 || r.skip != 0 {
		t.Fatalf("after a spin that paid: spins %d nextSkip %d skip %d, want 1 1 0", r.Spins, r.nextSkip, r.skip)
	}
}

// TestBackOffBounded: the reads skipped after failed spins never exceed
// MaxSkip.
func TestBackOffBounded(t *testing.T) {
	r := &Reader{budget: 1, nextSkip: 1}
	for range 20 {
		r.start = 1
		spinners.Add(1) // the slot a spin holds
		r.spun(10, false)
	}
	if r.skip != MaxSkip || r.nextSkip != MaxSkip {
		t.Fatalf("skip %d nextSkip %d, want %d", r.skip, r.nextSkip, MaxSkip)
	}
	// Data found only after the budget (the thread lost its CPU) is a
	// failed spin too.
	r = &Reader{budget: 5, nextSkip: 1}
	r.start = 1
	spinners.Add(1)
	r.spun(100, true)
	if r.Failed != 1 || r.Spins != 0 || r.skip != 1 {
		t.Fatalf("late data: failed %d spins %d skip %d, want 1 0 1", r.Failed, r.Spins, r.skip)
	}
}

// TestWantFalseParks: with Want false a read parks at once, and that is
// not a failed spin.
func TestWantFalseParks(t *testing.T) {
	needProcs(t)
	a, b := unixPair(t)
	r := New(a, 20*time.Second)
	r.Want = func() bool { return false }
	parked := make(chan struct{}, 1)
	r.parking = func() { parked <- struct{}{} }
	buf := make([]byte, 16)
	got := readAsync(r, buf)
	await(t, parked, "park")
	write(t, b, "z")
	if res := await(t, got, "read"); res.err != nil || res.n != 1 {
		t.Fatalf("read %d, %v", res.n, res.err)
	}
	if r.Parks != 1 || r.Failed != 0 || r.Spins != 0 || r.skip != 0 {
		t.Fatalf("parks %d failed %d spins %d skip %d, want 1 0 0 0", r.Parks, r.Failed, r.Spins, r.skip)
	}
}

// TestEndsAndErrors: end of stream is io.EOF; a read deadline and a close
// end a parked read with the connection's errors.
func TestEndsAndErrors(t *testing.T) {
	needProcs(t)
	t.Run("eof", func(t *testing.T) {
		a, b := unixPair(t)
		r := New(a, time.Microsecond)
		write(t, b, "ab")
		b.Close()
		buf := make([]byte, 16)
		if n, err := r.Read(buf); n != 2 || err != nil {
			t.Fatalf("read %d, %v", n, err)
		}
		if n, err := r.Read(buf); n != 0 || err != io.EOF {
			t.Fatalf("read %d, %v; want io.EOF", n, err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		a, _ := unixPair(t)
		r := New(a, time.Microsecond)
		parked := make(chan struct{}, 1)
		r.parking = func() { parked <- struct{}{} }
		got := readAsync(r, make([]byte, 16))
		await(t, parked, "park")
		a.SetReadDeadline(time.Unix(1, 0))
		res := await(t, got, "read")
		var ne net.Error
		if !errors.As(res.err, &ne) || !ne.Timeout() || !errors.Is(res.err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after the deadline: %v, want a timeout", res.err)
		}
	})
	t.Run("close", func(t *testing.T) {
		a, _ := unixPair(t)
		r := New(a, time.Microsecond)
		parked := make(chan struct{}, 1)
		r.parking = func() { parked <- struct{}{} }
		got := readAsync(r, make([]byte, 16))
		await(t, parked, "park")
		a.Close()
		if res := await(t, got, "read"); !errors.Is(res.err, net.ErrClosed) {
			t.Fatalf("read after close: %v, want net.ErrClosed", res.err)
		}
	})
	t.Run("reset", func(t *testing.T) {
		// Errors of the read system call come back wrapped in a
		// *net.OpError, as the connection's own would.
		a, b := unixPair(t)
		r := New(a, time.Microsecond)
		b.Close()
		a.Close()
		_, err := r.Read(make([]byte, 4))
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Fatalf("read of a closed connection: %v, want a *net.OpError", err)
		}
	})
}

// TestNoSpinWithout: no descriptor, a budget of 0 or GOMAXPROCS 1: plain
// reads of the connection.
func TestNoSpinWithout(t *testing.T) {
	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	if New(p1, time.Second).Spinning() {
		t.Fatal("a pipe spins")
	}
	a, b := unixPair(t)
	if New(a, 0).Spinning() {
		t.Fatal("budget 0 spins")
	}
	prev := runtime.GOMAXPROCS(1)
	r := New(a, time.Second)
	runtime.GOMAXPROCS(prev)
	if r.Spinning() {
		t.Fatal("spins with GOMAXPROCS 1")
	}
	go b.Write([]byte("ok"))
	buf := make([]byte, 4)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "ok" {
		t.Fatalf("plain read %q, %v", buf[:n], err)
	}
}

// TestSpinnersBounded: with one reader spinning and room for one spinner,
// a second reader parks at once (not a failed spin) instead of spinning
// beside it; the slot is free again once the spin ends, also when it ends
// with the end of the stream.
func TestSpinnersBounded(t *testing.T) {
	needProcs(t)
	a1, b1 := unixPair(t)
	a2, b2 := unixPair(t)
	r1, r2 := New(a1, 20*time.Second), New(a2, 20*time.Second)
	r1.limit, r2.limit = 1, 1
	spinning := make(chan struct{})
	r1.Want = func() bool { close(spinning); return true }
	buf1, buf2 := make([]byte, 16), make([]byte, 16)
	got1 := readAsync(r1, buf1)
	await(t, spinning, "first spin")
	// Want runs just before the slot is taken: wait for the slot.
	for deadline := time.Now().Add(10 * time.Second); spinners.Load() != 1; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d spinners, want the first reader's", spinners.Load())
		}
	}
	parked := make(chan struct{}, 1)
	r2.parking = func() { parked <- struct{}{} }
	got2 := readAsync(r2, buf2)
	await(t, parked, "second reader parking")
	if r2.Failed != 0 || r2.Spins != 0 {
		t.Fatalf("second reader: %d failed, %d paid spins; want it parked without spinning", r2.Failed, r2.Spins)
	}
	write(t, b1, "one")
	write(t, b2, "two")
	if res := await(t, got1, "first read"); res.err != nil || string(buf1[:res.n]) != "one" {
		t.Fatalf("first read %q, %v", buf1[:res.n], res.err)
	}
	if res := await(t, got2, "second read"); res.err != nil || string(buf2[:res.n]) != "two" {
		t.Fatalf("second read %q, %v", buf2[:res.n], res.err)
	}
	if n := spinners.Load(); n != 0 {
		t.Fatalf("%d spinners after the spins ended", n)
	}
	// A spin that ends with the end of the stream gives its slot back.
	spinning2 := make(chan struct{})
	r1.Want = func() bool { close(spinning2); return true }
	got1 = readAsync(r1, buf1)
	await(t, spinning2, "spin before the end of the stream")
	b1.Close()
	if res := await(t, got1, "read at the end"); res.err != io.EOF {
		t.Fatalf("read at the end: %v, want io.EOF", res.err)
	}
	if n := spinners.Load(); n != 0 {
		t.Fatalf("%d spinners after a spin ended with the stream", n)
	}
}
