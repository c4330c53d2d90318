package engine

import (
	"fmt"
	"strconv"
)

// ConnState is the connection state of a Conn (see Conn.State and
// WithOnStateChange). The states and their transitions:
//
//	StateConnecting   --first session up------------> StateConnected
//	StateConnected    --session lost----------------> StateReconnecting
//	StateReconnecting --new session up--------------> StateConnected
//	any               --Close (or a reverse Conn's
//	                    session ended)---------------> StateClosed
//
// StateClosed is final. Draining (Conn.Drain) is not a connection state: a
// draining Conn is still connected, it only refuses new calls.
type ConnState uint8

const (
	// StateConnecting: the Conn has never had a session yet (NewConn, until
	// its first connection succeeds). Calls behave as while reconnecting
	// (see WithFailFastWhileReconnecting).
	StateConnecting ConnState = iota
	// StateConnected: a session is up.
	StateConnected
	// StateReconnecting: the session was lost; the Conn is connecting
	// again (with WithReconnectBackoff between attempts).
	StateReconnecting
	// StateClosed: Close was called (or a reverse Conn's socket died and
	// it closed itself). Calls fail with ErrClosed.
	StateClosed
)

// String returns "connecting", "connected", "reconnecting" or "closed".
func (s ConnState) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "ConnState(" + strconv.Itoa(int(s)) + ")"
}

// State returns the Conn's connection state (one atomic load; safe for
// concurrent use). It is a snapshot: the state may change right after.
// StateConnected is set once the session is published, so a call made
// after seeing it finds the session (unless it was lost meanwhile).
func (c *Conn) State() ConnState { return ConnState(c.cstate.Load()) }

// stateChange is one transition waiting for the WithOnStateChange callback.
type stateChange struct{ from, to ConnState }

// maxStateQueue bounds the transitions waiting for the callback (see
// WithOnStateChange).
const maxStateQueue = 1024

// setState moves the Conn to state to (nothing when it is already there or
// closed: StateClosed is final) and queues the transition for the
// callback. Transitions are rare (connection events), so they are
// serialized by a mutex: the queue order is the order of the transitions.
func (c *Conn) setState(to ConnState) {
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	from := ConnState(c.cstate.Load())
	if from == to || from == StateClosed {
		return
	}
	c.cstate.Store(uint32(to))
	c.log.Debug("agentwire: connection state", "from", from.String(), "to", to.String())
	if c.opts.onStateChange == nil {
		return
	}
	if n := len(c.stateQ); n >= maxStateQueue {
		// A callback that does not return while the agent flaps: merge
		// into the last waiting transition, keeping the chain
		// consistent.
		last := &c.stateQ[n-1]
		if last.from == to {
			c.stateQ = c.stateQ[:n-1]
		} else {
			last.to = to
		}
	} else {
		c.stateQ = append(c.stateQ, stateChange{from, to})
	}
	c.kickDispatcher()
}

// statesQueued reports whether transitions wait for the callback.
func (c *Conn) statesQueued() bool {
	c.stateMu.Lock()
	n := len(c.stateQ)
	c.stateMu.Unlock()
	return n > 0
}

// runStateChanges delivers the waiting transitions to the callback, in
// order, until none is left. Dispatcher goroutine only.
func (c *Conn) runStateChanges() {
	for {
		c.stateMu.Lock()
		if len(c.stateQ) == 0 {
			c.stateMu.Unlock()
			return
		}
		ch := c.stateQ[0]
		c.stateQ[0] = stateChange{}
		c.stateQ = c.stateQ[1:]
		if len(c.stateQ) == 0 {
			c.stateQ = nil
		}
		c.stateMu.Unlock()
		c.cbRunning.Store(true)
		c.runStateCallback(ch)
		c.cbRunning.Store(false)
	}
}

func (c *Conn) runStateCallback(ch stateChange) {
	defer func() {
		if r := recover(); r != nil {
			c.stats.callbackPanics.Add(1)
			c.log.Error("agentwire: state-change callback panicked", "panic", fmt.Sprint(r))
		}
	}()
	c.opts.onStateChange(ch.from, ch.to)
}
