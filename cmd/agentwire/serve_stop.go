package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/agentwire/agentwire/agent"
)

// defaultStopGrace is the default of serve --stop-grace.
const defaultStopGrace = 5 * time.Second

// errForcedStop is returned by serve when a second signal cut the
// graceful stop short.
var errForcedStop = errors.New("agentwire: stopped by a second signal: connections closed without draining")

// errStopTimeout is returned by serve when the agent had not stopped
// --stop-grace after its hard close.
var errStopTimeout = errors.New("agentwire: agent did not stop")

// stopServe stops srv after the first SIGTERM or SIGINT and returns serve's
// result; errc carries the transport's result.
//
// The stop is bounded whatever the connections and handlers do: the
// graceful part (Drain, then Shutdown) gets f.drainTimeout, after which
// Shutdown closes every connection hard; if that has not finished
// f.stopGrace later (Close waits for every handler and connection
// goroutine, and a handler that ignores its context, or a goroutine
// parked where a closed connection does not reach it, would keep it
// waiting for ever) stopServe returns errStopTimeout and the process
// exits, which ends what was left. A second SIGTERM or SIGINT (f.force in
// tests) closes every connection at once and returns errForcedStop within
// f.stopGrace. Before, the signal context kept catching signals while the
// stop waited without a bound, so a hung stop ignored every further
// SIGTERM.
func stopServe(srv *agent.Server, f *serveFlags, errc <-chan error, stderr io.Writer) error {
	force := f.force
	if force == nil {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		defer signal.Stop(sig)
		ch := make(chan struct{})
		stopWatch := make(chan struct{})
		defer close(stopWatch)
		go func() {
			select {
			case <-sig:
				close(ch)
			case <-stopWatch:
			}
		}()
		force = ch
	}

	fmt.Fprintln(stderr, "draining")
	done := make(chan error, 1)
	go func() { done <- gracefulStop(srv, f.drainTimeout, errc) }()
	bound := time.NewTimer(f.drainTimeout + f.stopGrace)
	defer bound.Stop()
	select {
	case err := <-done:
		if err == nil {
			fmt.Fprintln(stderr, "stopped")
		}
		return err
	case <-force:
		fmt.Fprintln(stderr, "second signal: closing every connection now")
		go srv.Close() // idempotent; the graceful stop ends with it
		grace := time.NewTimer(f.stopGrace)
		defer grace.Stop()
		select {
		case <-done:
			return errForcedStop
		case <-grace.C:
			return fmt.Errorf("%w within %v of a second signal: %w", errStopTimeout, f.stopGrace, errForcedStop)
		}
	case <-bound.C:
		st := srv.Stats()
		return fmt.Errorf("%w within %v (--drain-timeout %v, then --stop-grace %v after closing every connection): %d events still in handlers, %d connections, %d streams",
			errStopTimeout, f.drainTimeout+f.stopGrace, f.drainTimeout, f.stopGrace, st.InFlight, st.Conns, st.Streams)
	}
}

// gracefulStop drains srv and shuts it down within drainTimeout (after
// which Shutdown closes every connection hard and waits for the server's
// goroutines), then waits for the transport's result.
func gracefulStop(srv *agent.Server, drainTimeout time.Duration, errc <-chan error) error {
	dctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	_ = srv.Drain(dctx)
	if err := srv.Shutdown(dctx); err != nil {
		<-errc
		return fmt.Errorf("graceful stop did not finish within %v: %w", drainTimeout, err)
	}
	if err := <-errc; err != nil && !errors.Is(err, agent.ErrServerClosed) {
		return err
	}
	return nil
}
