package engine

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/agentwire/agentwire"
	"github.com/agentwire/agentwire/codec/frame"
	"github.com/agentwire/agentwire/internal/payload"
)

// TestReverseContextBoundsSetupOnly: the context given to ListenReverse
// bounds its setup, as Dial's bounds the first connection: once it
// returned, the listener lives until Close (it used to close when the
// context ended), and a context that ended before makes it fail without
// leaving a socket file behind.
func TestReverseContextBoundsSetupOnly(t *testing.T) {
	path := sockPath(t)
	ctx, cancel := context.WithCancel(context.Background())
	l, err := ListenReverse(ctx, "unix://"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cancel()
	// Still accepting after the context ended.
	r, _ := register(t, "unix", path, regRequest("late", nil))
	if r == nil || !r.Success {
		t.Fatalf("registration after the setup context ended: %+v", r)
	}
	c, err := l.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if c.State() != StateConnected {
		t.Fatalf("state %v", c.State())
	}
	l.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after Close: %v", err)
	}

	// A context already ended: no listener, no file.
	path2 := sockPath(t)
	if _, err := ListenReverse(ctx, "unix://"+path2); !errors.Is(err, context.Canceled) {
		t.Fatalf("ListenReverse with an ended context: %v", err)
	}
	if _, err := os.Stat(path2); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file left by a failed ListenReverse: %v", err)
	}
}

// TestReverseMaxPendingRegistrations: connections beyond the cap of
// registrations in progress are closed at once, unread, and counted; a
// slot frees as soon as a registration is decided (admitted here).
func TestReverseMaxPendingRegistrations(t *testing.T) {
	l, path := listenReverse(t, WithMaxPendingRegistrations(2), WithRegistrationTimeout(time.Minute))
	var silent []net.Conn
	for range 2 {
		nc, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		silent = append(silent, nc)
	}
	waitUntil(t, "two registrations in progress", nil, func() bool { return l.Stats().Pending == 2 })

	// The third is dropped at once, long before the registration timeout.
	extra, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	if !closedByPeer(extra) {
		t.Fatal("connection over the cap not closed")
	}
	if st := l.Stats(); st.DroppedPending != 1 || st.Pending != 2 || st.Abandoned != 0 {
		t.Fatalf("stats %+v", st)
	}

	// One of the silent peers registers after all: its slot frees and a
	// new connection registers normally.
	if err := writeRegistration(silent[0], regRequest("slow", nil)); err != nil {
		t.Fatal(err)
	}
	if r := readAnswer(t, silent[0]); r == nil || !r.Success {
		t.Fatalf("answer %+v", r)
	}
	waitUntil(t, "the slot to free", nil, func() bool { return l.Stats().Pending == 1 })
	r, _ := register(t, "unix", path, regRequest("next", nil))
	if r == nil || !r.Success {
		t.Fatalf("registration after a slot freed: %+v", r)
	}
	waitUntil(t, "the second admission", nil, func() bool {
		st := l.Stats()
		return st.Registered == 2 && st.Pending == 1
	})
	if st := l.Stats(); st.DroppedPending != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// writeRegistration sends a registration frame on nc.
func writeRegistration(nc net.Conn, req *agentwire.RegistrationRequest) error {
	b, err := frame.AppendFrame(nil, frame.TypeHandshakeRequest, payload.AppendRegistrationRequestJSON(nil, req))
	if err != nil {
		return err
	}
	_, err = nc.Write(b)
	return err
}
