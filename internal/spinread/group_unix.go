//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package spinread

import (
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Watchers. A reader that would spin but finds every spinning slot taken
// (spinners) does not park in the network poller: it waits for a spinner
// to see its connection readable. The spinner polls the watchers'
// descriptors (one poll(2) with no timeout) between its own reads and
// wakes the reader whose connection has data; the woken reader runs on
// the spinner's processor as soon as the spinner yields, without waking
// an idle thread or CPU. With one call in flight on each of several
// connections (a parallel fan-out to several agents) one spinning thread
// so covers every connection, where parked readers would each need a
// wake-up of a sleeping thread, and on a virtual machine of an idle CPU.
//
// When its spin ends the spinner hands its slot, and with it the
// watchers, to the first watcher if the spin paid (data came on its own
// connection or a watcher's within the budget); if it did not, it sends
// every watcher back to park in the network poller (a failed spin for
// each: they back off as a spinner would). A watcher is thus never left
// without a spinner: registration and the end of a spin meet on the group
// lock, and each checks the other's state after publishing its own.

// maxWatch bounds the watchers: beyond it readers park at once (a poll of
// many descriptors would cost the spinner more than the wake-ups it saves).
const maxWatch = 16

// Verdicts sent to a watcher.
const (
	wakeReady uint8 = iota + 1 // its connection is readable
	wakeSpin                   // it now holds a spinning slot
	wakePark                   // no spinner is left: park
)

type watchGroup struct {
	mu    sync.Mutex
	watch []*Reader    // under mu
	n     atomic.Int32 // len(watch), read without mu
}

var group watchGroup

// pollScratch is a spinner's poll set, reused from spin to spin.
type pollScratch struct {
	fds []unix.PollFd
	rs  []*Reader
}

// release gives back the slot of a spin that ended (paid: it found data).
// The last spinner to leave hands the watchers on (see above).
func (r *Reader) release(paid bool) {
	if spinners.Add(-1) > 0 || group.n.Load() == 0 {
		return
	}
	group.mu.Lock()
	defer group.mu.Unlock()
	if spinners.Load() > 0 || len(group.watch) == 0 {
		return // another spinner has the watchers
	}
	if paid {
		w := group.watch[0]
		group.remove(0)
		spinners.Add(1)
		w.wake <- wakeSpin
		return
	}
	for _, w := range group.watch {
		w.wake <- wakePark
	}
	clear(group.watch)
	group.watch = group.watch[:0]
	group.n.Store(0)
}

// remove drops watcher i, keeping the order of the others. Under mu.
func (g *watchGroup) remove(i int) {
	last := len(g.watch) - 1
	copy(g.watch[i:], g.watch[i+1:])
	g.watch[last] = nil
	g.watch = g.watch[:last]
	g.n.Store(int32(last))
}

// watch waits, instead of parking, for a spinner to see the connection
// readable. It reports false when it cannot (no spinner now, too many
// watchers): the read then parks. On true the read reads again; r.start
// is set when the wait ended with a spinning slot handed over.
func (r *Reader) watch() bool {
	group.mu.Lock()
	if len(group.watch) >= maxWatch {
		group.mu.Unlock()
		return false
	}
	group.watch = append(group.watch, r)
	group.n.Store(int32(len(group.watch)))
	group.mu.Unlock()
	if spinners.Load() == 0 {
		// The spinners may all have left before they could see this
		// watcher: withdraw, unless one of them already took it.
		group.mu.Lock()
		for i, w := range group.watch {
			if w == r {
				group.remove(i)
				group.mu.Unlock()
				return false
			}
		}
		group.mu.Unlock()
	}
	r.Watched++
	switch <-r.wake {
	case wakeReady:
		r.Spins++
		r.nextSkip = 1
	case wakeSpin:
		r.start = monoNow()
	default: // wakePark: a failed spin; the next read that finds nothing parks
		r.Failed++
		r.skip = r.nextSkip
		r.nextSkip = min(2*r.nextSkip, MaxSkip)
	}
	return true
}

// pollWatchers wakes the watchers whose connections are readable (or
// closed, or in error). Spinner only.
func (r *Reader) pollWatchers() {
	ps := &r.pfds
	ps.fds, ps.rs = ps.fds[:0], ps.rs[:0]
	group.mu.Lock()
	for _, w := range group.watch {
		ps.fds = append(ps.fds, unix.PollFd{Fd: int32(w.fd), Events: unix.POLLIN})
		ps.rs = append(ps.rs, w)
	}
	group.mu.Unlock()
	if len(ps.fds) == 0 {
		return
	}
	n, err := unix.Poll(ps.fds, 0)
	if err != nil || n <= 0 {
		return
	}
	group.mu.Lock()
	for i := range ps.fds {
		if ps.fds[i].Revents == 0 {
			continue
		}
		for j, w := range group.watch {
			if w == ps.rs[i] {
				group.remove(j)
				w.wake <- wakeReady
				r.served = true
				break
			}
		}
	}
	group.mu.Unlock()
	clear(ps.rs)
}
