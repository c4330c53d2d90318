package wdeadline

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// countConn records SetWriteDeadline calls.
type countConn struct {
	net.Conn
	sets []time.Time
}

func (c *countConn) SetWriteDeadline(t time.Time) error {
	c.sets = append(c.sets, t)
	return nil
}

func TestArmMovesTheDeadlineLazily(t *testing.T) {
	c := &countConn{}
	var off Deadline
	off.Arm(c)
	if len(c.sets) != 0 {
		t.Fatal("a zero timeout set a deadline")
	}
	d := Deadline{Timeout: 100 * time.Millisecond}
	d.Arm(c)
	for range 100 {
		d.Arm(c) // well within half the timeout: no update
	}
	if len(c.sets) != 1 {
		t.Fatalf("%d deadline updates, want 1", len(c.sets))
	}
	time.Sleep(60 * time.Millisecond) // less than half is left now
	d.Arm(c)
	if len(c.sets) != 2 || !c.sets[1].After(c.sets[0]) {
		t.Fatalf("deadline not moved forward: %v", c.sets)
	}
}

func TestBlockedWriteFails(t *testing.T) {
	a, b := net.Pipe() // synchronous: a write blocks until the peer reads
	defer a.Close()
	defer b.Close()
	d := Deadline{Timeout: 50 * time.Millisecond}
	d.Arm(a)
	start := time.Now()
	_, err := a.Write([]byte("nobody reads this"))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blocked write returned %v", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("write failed after %v", el)
	}
}
