package agent

import (
	"errors"
	"net"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// TestReadSpinOption: WithReadSpin accepts 0..MaxReadSpin (ErrInvalidConfig
// otherwise) and sets the budget of the connections' readers;
// DefaultReadSpin without it.
func TestReadSpinOption(t *testing.T) {
	for _, d := range []time.Duration{-time.Microsecond, MaxReadSpin + 1} {
		if _, err := newServer(BaseHandler{}, WithReadSpin(d)); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("WithReadSpin(%v): err = %v, want ErrInvalidConfig", d, err)
		}
	}
	for _, tc := range []struct {
		opts []Option
		want time.Duration
	}{
		{nil, DefaultReadSpin},
		{[]Option{WithReadSpin(0)}, 0},
		{[]Option{WithReadSpin(MaxReadSpin)}, MaxReadSpin},
	} {
		s, err := newServer(BaseHandler{}, tc.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if got := s.cfg.uds.spinBudget(); got != tc.want {
			t.Errorf("budget %v, want %v", got, tc.want)
		}
		s.Close()
	}
}

// TestSpinGate: a connection's reader spins only while its reads of the
// socket bring at most one frame each (one event at a time); after a read
// that brought several it parks at once, until a read brings one again.
func TestSpinGate(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		prev := runtime.GOMAXPROCS(2) // spinning needs two processors
		t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	}
	s, err := newServer(BaseHandler{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := net.Pipe() // no descriptor: the gate must then stay unset
	defer a.Close()
	defer b.Close()
	_, sr := s.newFrameReader(a)
	uc := &udsConn{}
	uc.gateSpin(sr)
	if sr.Want != nil {
		t.Fatal("a gate on a reader that cannot spin")
	}

	ln, err := net.Listen("unix", filepath.Join(t.TempDir(), "g.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := net.Dial("unix", ln.Addr().String()); err == nil {
			defer c.Close()
			_, _ = c.Read(make([]byte, 1))
		}
	}()
	nc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_, sr = s.newFrameReader(nc)
	uc.gateSpin(sr)
	if sr.Want == nil || !sr.Want() {
		t.Fatal("no spin before the first read")
	}
	for _, tc := range []struct {
		frames int
		want   bool
	}{{1, true}, {3, false}, {0, true}, {2, false}, {1, true}} {
		uc.framesRead = tc.frames
		uc.noteRead()
		if got := sr.Want(); got != tc.want {
			t.Fatalf("after a read of %d frames: spin %v, want %v", tc.frames, got, tc.want)
		}
	}
}
