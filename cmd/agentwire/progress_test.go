//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal pair: what is written to the returned
// terminal (the slave side, a *os.File for which term.IsTerminal is true)
// can be read from the returned output once the terminal is closed.
func openPTY(t *testing.T) (tty *os.File, output func() string) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pts: %v", err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&buf, m) // ends with EIO once the slave is closed
	}()
	closed := false
	finish := func() {
		if !closed {
			closed = true
			s.Close()
			<-done
			m.Close()
		}
	}
	t.Cleanup(finish)
	return s, func() string { finish(); return buf.String() }
}

// TestBenchProgress: agentwire bench draws its progress bar on a terminal
// stderr, and stays quiet with --json on a terminal and without --json
// when stderr is not a terminal (a pipe: a file, but no terminal).
func TestBenchProgress(t *testing.T) {
	addr := startServe(t, "--listen", "127.0.0.1:0", "--agent", "echo")
	bench := func(stderr io.Writer, json bool) int {
		args := []string{"bench", "--agent", addr, "--concurrency", "2", "--duration", "500ms", "--warmup", "0"}
		if json {
			args = append(args, "--json")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		return run(ctx, args, io.Discard, stderr)
	}
	isBar := func(s string) bool { return strings.Contains(s, "requests,") && strings.Contains(s, "/s") }

	t.Run("terminal", func(t *testing.T) {
		tty, out := openPTY(t)
		if code := bench(tty, false); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if got := out(); !isBar(got) {
			t.Fatalf("no progress bar on a terminal: %q", got)
		}
	})
	t.Run("terminal --json", func(t *testing.T) {
		tty, out := openPTY(t)
		if code := bench(tty, true); code != 0 {
			t.Fatalf("exit %d", code)
		}
		if got := out(); got != "" {
			t.Fatalf("--json wrote to the terminal: %q", got)
		}
	})
	t.Run("pipe", func(t *testing.T) {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		got := make(chan string, 1)
		go func() { b, _ := io.ReadAll(r); got <- string(b) }()
		code := bench(w, false)
		w.Close()
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if s := <-got; s != "" {
			t.Fatalf("progress on a pipe: %q", s)
		}
	})
}
