package agent

import (
	"context"
	"log/slog"
	"sync"
)

// Pushes on a connection with inline handlers.
//
// With WithInlineHandlers the reader writes every reply and pong itself
// (flushInline), so the writer goroutine and its queue would exist for
// pushes alone (health, metrics, flow control, config-update requests):
// a few frames a minute, for which every idle connection used to keep a
// parked goroutine (its stack grown under load and never shrunk while the
// process idles) and a 64-slot ring. Here pushes wait in a short list
// under a mutex (pushes are rare; replies never take it) and a writer
// goroutine is started by the push that finds none running; it writes
// what is queued and exits when the list is empty. Each write holds whole
// frames, so the reader's writes and the push writer's never interleave
// inside one (net.Conn serialises Write calls), as with the writer
// goroutine before.
//
// Order: pushes queued before the handshake reply is written (the
// connection is established, and so reachable by pushes, just before)
// wait for it: busy starts true, held by serveConn until
// startInlinePushes. At the end, closeInlinePushes refuses further pushes
// and waits until a running writer has written what was queued.

// inlinePushes is the push list of an inline connection.
type inlinePushes struct {
	mu     sync.Mutex
	q      []*[]byte // frames waiting for the writer; at most pushQueue
	busy   bool      // a writer runs (or serveConn holds the role)
	closed bool      // the connection is over: pushes are dropped
	wg     sync.WaitGroup
	broken bool // a write failed; the writer's only
}

// pushInline queues f and starts a writer if none runs; it never blocks.
// A full list (pushQueue frames waiting; the writer takes the whole list
// at once, so the frames it is writing do not count) drops f, counted in
// Stats.DroppedPushes as a full ring's drop is, and nothing else records
// it (TestUDSInlinePushListFullDrops).
func (uc *udsConn) pushInline(f *[]byte) {
	p := &uc.pushes
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if len(p.q) >= pushQueue {
		p.mu.Unlock()
		uc.srv.stats.droppedPushes.Add(1)
		return
	}
	p.q = append(p.q, f)
	start := !p.busy
	if start {
		p.busy = true
		p.wg.Add(1)
	}
	p.mu.Unlock()
	if start {
		go uc.pushWriter()
	}
}

// startInlinePushes gives up serveConn's hold on the writer role once the
// handshake reply is written, starting a writer for the pushes queued
// meanwhile.
func (uc *udsConn) startInlinePushes() {
	p := &uc.pushes
	p.mu.Lock()
	start := len(p.q) > 0
	if start {
		p.wg.Add(1)
	} else {
		p.busy = false
	}
	p.mu.Unlock()
	if start {
		go uc.pushWriter()
	}
}

// closeInlinePushes drops every later push and waits for a running writer,
// which writes what was queued before it returns.
func (uc *udsConn) closeInlinePushes() {
	p := &uc.pushes
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// pushWriter writes the queued pushes until the list is empty, then exits.
// After a write error it cancels the connection and drops the rest.
func (uc *udsConn) pushWriter() {
	p := &uc.pushes
	defer p.wg.Done()
	for {
		p.mu.Lock()
		q := p.q
		p.q = nil
		if len(q) == 0 {
			p.busy = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		for _, f := range q {
			if p.broken {
				break
			}
			uc.wd.Arm(uc.nc)
			if _, err := uc.nc.Write(*f); err != nil {
				p.broken = true
				uc.cancel()
				uc.nc.Close() // wakes the reader
				if !isClosedConnErr(err) {
					uc.srv.log.LogAttrs(context.Background(), slog.LevelDebug, "agentwire: Unix-socket write failed", slog.Any("error", err))
				}
			}
		}
	}
}
